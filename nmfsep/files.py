"""One file in, one file per component out: :func:`separate_file` is plan -> run -> write.

The plan (:mod:`nmfsep.plan`) names every output and decides, from the settings record, whether to
skip, refuse or overwrite; the run streams the file through the pipeline (:func:`nmfsep.pipeline.analyse`,
then :func:`nmfsep.blockwise.resynthesise`); the writes are atomic (temporary files renamed together).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import audio as audio_io
from . import plan
from .errors import AudioError, NmfsepError, OutputError
from .nmf import Progress
from .options import DEFAULTS, Options, default_components, memory_budget
from .pipeline import Separation, analyse, synthesise
from .sources import Sources, load_sources, save_model


@dataclass(frozen=True)
class FileResult:
    """What :func:`separate_file` did for one input."""

    input: Path
    outputs: tuple[Path, ...]
    separation: Separation | None  #: components not kept (written to disk instead); None when skipped
    seconds: float
    model_path: Path | None = None
    skipped: bool = False  #: every output existed with the same settings (``skip_existing``)


@dataclass(frozen=True)
class FileJob:
    """A planned separation of one file: settings, sources, files to write and whether to overwrite."""

    path: Path
    options: Options
    sources: Sources
    plan: plan.TrackPlan
    format: str
    subtype: str | None
    skip: bool  #: the outputs exist and are current (``skip_existing``): nothing to do
    overwrite: bool
    record: dict | None  #: what the outputs will have been made from (None: the input is not a file)
    previous: dict | None  #: the record of the outputs there now, if any
    max_memory: float | str | None


def prepare(
    path: str | os.PathLike,
    n_components: int | None = None,
    *,
    out_dir: str | os.PathLike = DEFAULTS["out_dir"],
    filename: str = DEFAULTS["filename"],
    format: str = DEFAULTS["format"],
    subtype: str | None = DEFAULTS["subtype"],
    force: bool = DEFAULTS["force"],
    save_model_to: str | os.PathLike | None = DEFAULTS["save_model_to"],
    plot_to: str | os.PathLike | None = None,
    sources: tuple = (),
    skip_existing: bool = DEFAULTS["skip_existing"],
    max_memory: float | str | None = DEFAULTS["max_memory"],
    track: str | None = None,
    **options: Any,
) -> FileJob:
    """Validate everything that can be known without the audio and plan the files (see
    :func:`separate_file` for the parameters).

    Raises
    ------
    ParameterError, ModelFileError, OutputError
        Bad options or templates, unusable source models, outputs that exist (without ``force``).
    """
    path = Path(path)
    settings = Options.from_keywords(
        n_components=default_components(n_components, options.get("n_sources")), **options
    )
    audio_io.output_subtype(format, subtype, None)  # validates format and subtype early
    memory_budget(max_memory)  # validates the size early
    loaded = load_sources(sources, settings)
    settings = loaded.settle(settings)  # the models' settings, or the fallbacks, where none was given
    names = plan.output_names(
        settings.n_components,
        n_sources=settings.n_sources,
        source_names=loaded.names,
        free=settings.free,
        rest_name=settings.rest_name,
    )
    track_plan = plan.plan_track(
        plan.Track(path, path.stem if track is None else track),
        names,
        out_dir=out_dir,
        filename=filename,
        format=format,
        save_model_to=save_model_to,
        plot_to=plot_to,
    )
    if track_plan.plot_path is not None:
        from .plot import figure_format

        figure_format(track_plan.plot_path)
    record = None
    if path.is_file():  # (a missing input fails on its own when it is opened)
        # resolved values, so that equivalent spellings (-d is, --beta 0; pcm_16, PCM_16) match
        recorded = {
            k: v
            for k, v in settings.as_dict().items()
            if k not in ("divergence", "beta", "n_fft", "hop_length", "mono")
        }
        recorded["beta"] = settings.resolved_beta
        if settings.n_sources is not None and not settings.mono and not loaded.models:
            # the spatial model's STFT depends on the input's channels and rate: the values as given
            recorded |= {"n_fft": settings.n_fft, "hop_length": settings.hop_length, "spatial": True}
        else:  # resolved, as before the spatial model (older records still match)
            recorded |= {"n_fft": settings.stft.n_fft, "hop_length": settings.stft.hop_length}
        if settings.mono:
            recorded["mono"] = True
        record = plan.settings_record(
            path,
            {
                **recorded,
                "sources": loaded.identity(),  # the bases, not the file names: a re-learned model counts
                "filename": filename,
                "format": format,
                "subtype": subtype.upper() if subtype else None,
            },
            track_plan,
        )
    previous = plan.read_record(track_plan.record_path)
    skip, overwrite = plan.decide(track_plan, record, previous, force=force, skip_existing=skip_existing)
    if not skip:  # a folder that cannot be written is found now, not after the factorization
        plan.check_folders_writable({target.parent for target in track_plan.targets})
    return FileJob(
        path, settings, loaded, track_plan, format, subtype, skip, overwrite, record, previous, max_memory
    )


def _output_subtype(job: FileJob, stream: audio_io.AudioStream) -> str:
    """The subtype to write: the one asked for, else the input's where the format can hold it at this
    rate and channel count, else the format's default.

    Raises
    ------
    OutputError
        The format cannot hold this audio (e.g. FLAC above 8 channels).
    """
    chosen = audio_io.output_subtype(job.format, job.subtype, stream.subtype)
    fallback = audio_io.output_subtype(job.format, None, None)
    try:
        audio_io.check_writable(job.format, chosen, stream.n_channels, stream.sample_rate)
    except OutputError:
        if job.subtype is not None or chosen == fallback:
            raise
        chosen = fallback
        audio_io.check_writable(job.format, chosen, stream.n_channels, stream.sample_rate)
    return chosen


def run(
    job: FileJob, callback: Callable[[Progress], None] | None = None
) -> tuple[audio_io.AudioStream, str, Separation]:
    """Open the input, choose the output subtype and factorize: (stream, subtype, separation)."""
    stream = audio_io.open_stream(job.path, sr=job.sources.sample_rate)
    if job.sources.models and job.options.sr is None and stream.native_rate != stream.sample_rate:
        # resampling silently would give outputs that no longer sum to the input file
        raise AudioError(
            f"the input is at {stream.native_rate} Hz, the source models at {stream.sample_rate} Hz: "
            f"pass [[sr={stream.sample_rate}]] to separate a resampled copy, or learn at {stream.native_rate} Hz"
        )
    subtype = _output_subtype(job, stream)
    separation = analyse(stream, job.options, job.sources, callback=callback, max_memory=job.max_memory)
    return stream, subtype, separation


def write(job: FileJob, stream: audio_io.AudioStream, subtype: str, separation: Separation) -> None:
    """Resynthesise and write every output, then the model, the figure and the settings record."""
    target = job.plan
    if job.overwrite and job.previous is not None:
        # the old record goes first: a run killed between replacing the outputs and writing the new
        # record must leave outputs without a record (redone), never new outputs under an old record
        target.record_path.unlink(missing_ok=True)
    writers = audio_io.AudioWriters(
        list(target.outputs),
        stream.sample_rate,
        stream.n_channels,
        format=job.format,
        subtype=subtype,
        overwrite=job.overwrite,
    )
    with writers:
        synthesise(stream, separation, writers.write)
    if target.model_path is not None:
        save_model(target.model_path, separation.model(), overwrite=job.overwrite)
    if target.plot_path is not None:
        from .figures import overview_data
        from .plot import overview_figure, save_figure

        figure = overview_figure(overview_data(separation, stream, job.path.name))
        save_figure(figure, target.plot_path, overwrite=job.overwrite)
    if job.overwrite and job.previous is not None:
        plan.remove_stale_outputs(job.previous, target)  # before the record: none is left unlisted
    if job.record is not None:
        plan.write_record(target.record_path, job.record)


def separate_file(
    path: str | os.PathLike,
    n_components: int | None = None,
    *,
    callback: Callable[[Progress], None] | None = None,
    **settings: Any,
) -> FileResult:
    """Separate an audio file and write one file per component (and optionally the model).

    The file is streamed in blocks of frames (:mod:`nmfsep.blockwise`): besides the spectrogram Y
    (one K x N float32 array, memory-mapped to a temporary file beyond ``max_memory``) memory holds
    one block, so hour-long files separate in bounded memory, with the same result as
    :func:`nmfsep.separate` on the decoded samples. Files libsndfile cannot stream, or that must be
    resampled, are decoded into memory first. Outputs are written as they are computed into
    temporary files, renamed into place together at the end; an error or interrupt leaves none.
    Without ``force`` an existing output is an error, raised before any work starts. Warnings
    (clipping, silence, redone outputs) are issued as :class:`nmfsep.errors.NmfsepWarning`.

    Parameters
    ----------
    path : str or os.PathLike
        Input audio file.
    n_components : int >= 1, optional
        4 by default, 6 per source with ``n_sources``.
    out_dir : path
        Folder the ``filename`` template is relative to (``separated`` by default).
    filename : str
        Output name template (see :func:`nmfsep.plan.output_paths`); ``{track}/{component}.{ext}``.
    format : {"wav", "flac", "ogg"}
    subtype : str, optional
        soundfile subtype (``PCM_16``, ``PCM_24``, ``FLOAT``, ...). By default the input's subtype
        where the format allows it.
    force : bool
        Overwrite existing outputs.
    save_model_to : path, optional
        Also write the model (bases, activations, settings, sample rate) as ``.npz``; ``{track}``
        in the path is replaced by the track name.
    plot_to : path, optional
        Also draw the overview figure (:func:`nmfsep.plot.overview_figure`) to this file (png, pdf
        or svg by suffix); ``{track}`` is replaced.
    sources : sequence of path or Model
        Supervised separation with learned source models (see :func:`nmfsep.separate`).
    skip_existing : bool
        When every output exists and the settings record beside them (``.nmfsep.json``, see
        :func:`nmfsep.plan.record_path`) shows they were made from this input with these settings,
        do nothing (``FileResult.skipped``); otherwise (some outputs missing after a stopped run,
        other settings, a changed input, no record) separate again and replace them.
    callback : callable, optional
        Receives a :class:`nmfsep.nmf.Progress` after every NMF iteration.
    max_memory : int or str, optional
        Bytes the spectrogram may take in memory (``"500M"``, ``"2G"``); beyond it, it is
        memory-mapped to a temporary file in TMPDIR. Default: half of the memory available.
    track : str, optional
        The ``{track}`` of the templates; the file name without extension by default. Batch runs
        over folders pass the path relative to the folder (``album1/01``) to mirror the input tree.
    **settings
        Any keyword argument of :func:`nmfsep.separate` (``divergence``, ``n_fft``, ``sr``, ...).

    Returns
    -------
    FileResult
        Paths written, the model (``components`` left empty) and the wall time.

    Raises
    ------
    NmfsepError
        ParameterError, AudioError, ModelFileError or OutputError; the message names the file.
    """
    started = time.perf_counter()
    try:
        job = prepare(path, n_components, **settings)
        if job.skip:
            seconds = time.perf_counter() - started
            return FileResult(job.path, job.plan.outputs, None, seconds, job.plan.model_path, skipped=True)
        stream, subtype, separation = run(job, callback)
        write(job, stream, subtype, separation)
    except NmfsepError as exc:
        if exc.path is None:
            exc.path = os.fspath(path)
        raise
    return FileResult(
        input=job.path,
        outputs=job.plan.outputs,
        separation=separation,
        seconds=time.perf_counter() - started,
        model_path=job.plan.model_path,
    )
