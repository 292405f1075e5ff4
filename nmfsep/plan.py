"""Planning a run before any audio is touched: inputs and their track names, output names and
templates, collisions, writable folders, and the settings record that lets ``skip_existing`` tell
current outputs from stale ones.

Everything here is cheap (file names, one temporary file per folder), so a run that cannot succeed
is refused in well under a second, before the first file is analysed. The CLI and the batch runner
both plan through here; :func:`nmfsep.separate_file` runs one :class:`TrackPlan`.
"""

from __future__ import annotations

import json
import os
import string
import tempfile
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .audio import AUDIO_EXTENSIONS
from .errors import NmfsepWarning, OutputError, ParameterError
from .version import __version__

#: Version of the settings record's layout.
RECORD_VERSION = 1

#: The placeholders of output name templates.
TEMPLATE_FIELDS = ("track", "component", "index", "ext")


@dataclass(frozen=True)
class Track:
    """One input file and its track name (the ``{track}`` of output templates).

    Attributes
    ----------
    path : Path
        The audio file, as found.
    name : str
        The file name without its extension for files given by name or in a list; for files found
        in a folder, their path relative to that folder without the extension, with ``/`` between
        parts (``album1/01`` for ``music/album1/01.wav`` under ``music/``), so outputs mirror the
        input tree and two albums' ``01.wav`` do not collide.
    """

    path: Path
    name: str

    def __fspath__(self) -> str:
        return os.fspath(self.path)


def collect_inputs(
    paths: Iterable[str | os.PathLike],
    *,
    recursive: bool = False,
    from_list: Iterable[str] = (),
    exclude: Iterable[str | os.PathLike] = (),
) -> list[Track]:
    """Expand the command line into the list of input tracks: deduplicated, in a stable order.

    Files are kept as given (a missing file is kept too, and fails on its own). Folders contribute
    their audio files (by extension, sorted; sub-folders only with ``recursive``), named by their
    path relative to the folder (see :class:`Track`). ``from_list`` lines are paths; blank lines and
    lines starting with ``#`` are ignored. Folder searches skip hidden folders and the folders in
    ``exclude`` (the output folder: a rerun must not separate the last run's outputs).

    Raises
    ------
    ParameterError
        A folder without audio files (where it would search), or nothing at all to process.
    """
    listed = [line.strip() for line in from_list]
    candidates = [Path(p) for p in paths] + [
        Path(line) for line in listed if line and not line.startswith("#")
    ]
    excluded = [Path(folder).resolve() for folder in exclude]
    found: list[Track] = []
    for candidate in candidates:
        if not candidate.is_dir():
            found.append(Track(candidate, candidate.stem))
            continue
        pattern = "**/*" if recursive else "*"
        audio = sorted(
            p
            for p in candidate.glob(pattern)
            if p.is_file()
            and p.suffix.lower() in AUDIO_EXTENSIONS
            and not any(part.startswith(".") for part in p.relative_to(candidate).parts[:-1])
            and not any(_inside(p, folder) for folder in excluded)
        )
        if not audio:
            where = "or its sub-folders" if recursive else "(use [[recursive=True]] to search sub-folders)"
            raise ParameterError(f"no audio files in {candidate} {where}")
        found.extend(Track(p, p.relative_to(candidate).with_suffix("").as_posix()) for p in audio)
    unique: dict[str, Track] = {}
    for track in found:
        unique.setdefault(os.path.normpath(os.path.abspath(track.path)), track)
    if not unique:
        raise ParameterError(
            "no input files (folders are searched for audio by extension, sub-folders with [[recursive=True]])"
        )
    return list(unique.values())


def _inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` is inside ``folder`` (both resolved)."""
    return folder in path.resolve().parents


def output_names(
    n_components: int,
    *,
    n_sources: int | None = None,
    source_names: tuple[str, ...] = (),
    free: int = 0,
    rest_name: str = "rest",
) -> list[str]:
    """Names of the outputs: learned source names (+ rest), s1..sJ (blind grouping), or c1..cM."""
    if source_names:
        return list(source_names) + ([rest_name] if free else [])
    if n_sources is not None:
        return [f"s{j + 1}" for j in range(n_sources)]
    return [f"c{j + 1}" for j in range(n_components)]


def check_template(template: str, n_outputs: int = 2) -> None:
    """Check an output name template; see :func:`output_paths` for the placeholders.

    Raises
    ------
    ParameterError
        Unknown or malformed placeholder, or a template that would give every component the same name.
    """
    try:
        used = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        raise ParameterError(f"bad template [[filename={template!r}]]: {exc}") from exc
    unknown = sorted(used - set(TEMPLATE_FIELDS))
    if unknown:
        bad = ", ".join("{" + name + "}" for name in unknown)
        raise ParameterError(
            f"unknown placeholder {bad} in [[filename={template!r}]]; use "
            + ", ".join("{" + name + "}" for name in TEMPLATE_FIELDS)
        )
    try:
        template.format(track="track", component="c1", index=1, ext="wav")
    except (ValueError, KeyError, IndexError, AttributeError, TypeError) as exc:
        raise ParameterError(f"bad template [[filename={template!r}]]: {exc}") from None
    if n_outputs > 1 and not used & {"component", "index"}:
        raise ParameterError(
            f"[[filename={template!r}]] needs {{component}} or {{index}}: components would overwrite each other"
        )


def output_paths(
    template: str, out_dir: str | os.PathLike, track: str, names: list[str], ext: str
) -> list[Path]:
    """Output file of every component.

    Placeholders: ``{track}`` the track name (see :class:`Track`), ``{component}`` component name
    (``c1``...), ``{index}`` 1-based component number, ``{ext}`` output extension.
    """
    check_template(template, len(names))
    return [
        Path(out_dir) / template.format(track=track, component=name, index=index, ext=ext)
        for index, name in enumerate(names, start=1)
    ]


def overview_template(out_dir: str | os.PathLike, filename: str) -> str:
    """Where ``separate --plot`` draws, with ``{track}``: beside the components, one figure per track."""
    folder = Path(filename).parent
    name = "overview.png" if "{track}" in str(folder) else "{track}.overview.png"
    return os.fspath(Path(out_dir) / folder / name)


@dataclass(frozen=True)
class TrackPlan:
    """Every file one track's separation writes (see :func:`plan_track`)."""

    track: Track
    outputs: tuple[Path, ...]
    model_path: Path | None
    plot_path: Path | None
    record_path: Path

    @property
    def targets(self) -> tuple[Path, ...]:
        """The outputs, then the model file and the figure if asked for (not the record)."""
        return self.outputs + tuple(p for p in (self.model_path, self.plot_path) if p is not None)


def plan_track(
    track: Track,
    names: list[str],
    *,
    out_dir: str | os.PathLike,
    filename: str,
    format: str,
    save_model_to: str | os.PathLike | None = None,
    plot_to: str | os.PathLike | None = None,
) -> TrackPlan:
    """The files :func:`nmfsep.separate_file` writes for ``track``.

    ``{track}`` in ``save_model_to`` and ``plot_to`` is replaced by the track name.

    Raises
    ------
    ParameterError
        Bad template, or two of the outputs share a name.
    """
    outputs = output_paths(filename, out_dir, track.name, names, format)
    model_path = None if save_model_to is None else Path(str(save_model_to).replace("{track}", track.name))
    plot_path = None if plot_to is None else Path(str(plot_to).replace("{track}", track.name))
    plan = TrackPlan(track, tuple(outputs), model_path, plot_path, record_path(filename, track.name, outputs))
    if len(set(plan.targets)) != len(plan.targets):
        raise ParameterError("two outputs would have the same name")
    return plan


def plan_run(tracks: list[Track], names: list[str], **where: Any) -> list[TrackPlan]:
    """The plans of every track of a run, checked against each other (keywords of :func:`plan_track`).

    Raises
    ------
    ParameterError
        A template fault, or two inputs that would write the same file (``song.wav`` and
        ``song.flac`` into ``{track}/...``), or ``{track}`` missing from ``save_model_to`` with
        several inputs.
    """
    save_model_to = where.get("save_model_to")
    if save_model_to is not None and len(tracks) > 1 and "{track}" not in str(save_model_to):
        raise ParameterError("[[save_model_to]] needs {track} in its path when there are several inputs")
    plans = [plan_track(track, names, **where) for track in tracks]
    owner: dict[Path, Path] = {}
    for plan in plans:
        for target in plan.targets:
            resolved = target.resolve()
            if resolved in owner:
                hint = (
                    "give their common folder (with [[recursive=True]]) so that each keeps its path"
                    if "{track}" in str(where.get("filename", ""))
                    else "use {track} in [[filename]]"
                )
                raise ParameterError(
                    f"{owner[resolved]} and {plan.track.path} would both write {target}; {hint}"
                )
            owner[resolved] = plan.track.path
    return plans


def decide(
    plan: TrackPlan, record: dict | None, previous: dict | None, *, force: bool, skip_existing: bool
) -> tuple[bool, bool]:
    """The overwrite policy for one track: ``(skip, overwrite)``.

    With ``skip_existing``, a track whose every target exists and whose record matches ``record``
    (same input, same settings) is skipped; any other is redone over its old outputs, with a
    warning when they all existed (stale outputs). Otherwise existing outputs need ``force``.

    Raises
    ------
    OutputError
        A target that is a folder, or one that exists without ``force`` or ``skip_existing``.
    """
    targets = plan.targets
    if skip_existing:
        if all(target.is_file() for target in targets):
            if record is not None and previous == record:
                return True, False
            why = "no record of how they were made" if previous is None else "other settings or input"
            warnings.warn(
                f"outputs existed from {why} ({plan.record_path}): separated again",
                NmfsepWarning,
                stacklevel=4,
            )
        force = True  # a partial set from a stopped run, or a stale set, is redone
    for target in targets:
        if target.is_dir():
            raise OutputError("output path is a directory", target)
        if target.exists() and not force:
            raise OutputError("output exists; use [[force=True]] to overwrite", target)
    return False, force


def check_folders_writable(folders: Iterable[str | os.PathLike]) -> None:
    """Fail now if files cannot be created in one of ``folders`` (created later where missing).

    For each folder, its nearest existing ancestor must be a folder in which a file can be created:
    a real temporary file is made and removed (once per ancestor), which also catches read-only
    file systems and, unlike ``os.access``, does not trust permission bits that root ignores.

    Raises
    ------
    OutputError
        Naming the first folder that cannot be written and the reason.
    """
    checked: set[Path] = set()
    for folder in map(Path, folders):
        existing = folder
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if existing in checked:
            continue
        if not existing.is_dir():
            raise OutputError(f"cannot write to folder: {existing} is not a folder", folder)
        try:
            with tempfile.TemporaryFile(dir=existing, prefix=".nmfsep-check."):
                pass
        except OSError as exc:
            raise OutputError(f"cannot write to folder: {exc.strerror or exc}", folder) from None
        checked.add(existing)


def check_new_file(path: Path, force: bool) -> None:
    """A figure or model file can be written: refused before the work, not after it.

    Raises
    ------
    OutputError
        The path is a folder, exists (without ``force``), or its folder cannot be written.
    """
    if path.is_dir():
        raise OutputError("output path is a directory", path)
    if path.exists() and not force:
        raise OutputError("output exists; use [[force=True]] to overwrite", path)
    check_folders_writable([path.parent])


def record_path(filename: str, track: str, outputs: list[Path]) -> Path:
    """Where the settings record of a track lives: hidden, in the folder that holds its outputs.

    ``.nmfsep.json`` when that folder is the track's own (``{track}/{component}.{ext}``), else
    ``.TRACK.nmfsep.json`` in the outputs' common folder (flat templates, or a folder per component).
    """
    folder = Path(os.path.commonpath([os.path.abspath(p.parent) for p in outputs]))
    template_folder = str(Path(filename).parent)
    own = (
        "{track}" in template_folder
        and "{component}" not in template_folder
        and "{index}" not in template_folder
    )
    return folder / (".nmfsep.json" if own else f".{Path(track).name}.nmfsep.json")


def file_identity(path: str | os.PathLike) -> dict[str, Any]:
    """Size and modification time of a file: enough to notice that an input was replaced."""
    stat = os.stat(path)
    return {"path": os.path.abspath(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def settings_record(input_path: str | os.PathLike, settings: dict[str, Any], plan: TrackPlan) -> dict:
    """What a track's audio outputs were made from: the input file, every setting, the output files
    (relative to the record's folder, so a copied or moved output folder still matches)."""
    folder = plan.record_path.parent
    return json.loads(
        json.dumps(
            {
                "nmfsep_record": RECORD_VERSION,
                "nmfsep_version": __version__,
                "input": file_identity(input_path),
                "settings": settings,
                "outputs": [
                    Path(os.path.relpath(os.path.abspath(p), folder)).as_posix() for p in plan.outputs
                ],
            },
            sort_keys=True,
            default=str,
        )
    )


def read_record(path: str | os.PathLike) -> dict | None:
    """The settings record at ``path``, or None when there is none or it cannot be read."""
    try:
        with open(path, encoding="utf-8") as handle:
            record = json.load(handle)
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def write_record(path: str | os.PathLike, record: dict) -> None:
    """Write a settings record atomically (it always replaces an older one)."""
    from .atomic import atomic_write

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(record, handle, indent=1, sort_keys=True)
            handle.write("\n")

    atomic_write(path, write, overwrite=True)


def remove_stale_outputs(previous: dict, plan: TrackPlan) -> list[Path]:
    """Delete the audio outputs a previous record of this track lists that this plan does not write
    (``-m 2`` after ``-m 4``: ``c3``, ``c4``); return them.

    Only names inside the record's folder are touched (never ``..`` or absolute ones), and never a
    model or figure: the record lists only the audio outputs.
    """
    folder = plan.record_path.parent
    keep = {os.path.abspath(p) for p in plan.outputs}
    removed = []
    for name in previous.get("outputs", []):
        if not isinstance(name, str) or os.path.isabs(name) or ".." in Path(name).parts:
            continue
        stale = folder / name
        if os.path.abspath(stale) not in keep and stale.is_file():
            stale.unlink()
            removed.append(stale)
    return removed


@dataclass(frozen=True)
class RunPlan:
    """A checked batch: its tracks and their files, and the keyword arguments of
    :func:`nmfsep.separate_file` for each (source models loaded once, passed as Model objects)."""

    tracks: list[Track]
    plans: list[TrackPlan]
    settings: dict[str, Any]
    options: Any  #: the validated :class:`nmfsep.options.Options`
    rank: int  #: components of each factorization (learned bases and free ones)


def plan_separation(
    inputs: Iterable[str | os.PathLike],
    *,
    recursive: bool = False,
    from_list: Iterable[str] = (),
    plot: bool = False,
    also_writes: Iterable[str | os.PathLike] = (),
    **settings: Any,
) -> RunPlan:
    """Check a batch separation before any audio is touched: options, source models, inputs, output
    names, collisions and writable folders.

    Parameters
    ----------
    inputs : files or folders
    recursive, from_list
        See :func:`collect_inputs`.
    plot : bool
        Also draw each track's overview beside its outputs (:func:`overview_template`).
    also_writes : paths
        Other files the run writes (a manifest): their folders must be writable too.
    **settings
        Keyword arguments of :func:`nmfsep.separate_file` (``n_components`` may be None: 4, or 6
        per source with ``n_sources``).

    Raises
    ------
    ParameterError
        Bad or contradictory options, no inputs, a folder without audio, colliding outputs.
    ModelFileError
        A source model that cannot be used.
    OutputError
        A folder the run would write to that cannot be written.
    """
    from .audio import output_subtype
    from .options import DEFAULTS, Options, default_components, memory_budget
    from .sources import load_sources

    settings = {name: settings.get(name, DEFAULTS[name]) for name in DEFAULTS} | settings
    settings.pop("recursive")  # how inputs are found, not a setting of each file
    sources = settings.get("sources") or ()
    if settings["force"] and settings["skip_existing"]:
        raise ParameterError("[[force=True]] and [[skip_existing=True]] contradict each other")
    if sources and settings["n_sources"] is not None:
        raise ParameterError("[[sources]] (supervised) and [[n_sources]] (blind) do not go together")
    if settings["free"] and not sources:
        raise ParameterError(
            "[[free]] adds components to [[sources]] models; without them use [[n_components]]"
        )
    settings["n_components"] = default_components(settings.get("n_components"), settings["n_sources"])
    option_names = set(Options.__dataclass_fields__)
    options = Options.from_keywords(**{k: v for k, v in settings.items() if k in option_names})
    memory_budget(settings["max_memory"])
    output_subtype(settings["format"], settings["subtype"], None)
    loaded = load_sources(sources, options)
    options = loaded.settle(options)
    names = output_names(
        options.n_components,
        n_sources=options.n_sources,
        source_names=loaded.names,
        free=options.free,
        rest_name=options.rest_name,
    )
    check_template(settings["filename"], len(names))
    tracks = collect_inputs(inputs, recursive=recursive, from_list=from_list, exclude=[settings["out_dir"]])
    plot_to = overview_template(settings["out_dir"], settings["filename"]) if plot else None
    plans = plan_run(
        tracks,
        names,
        out_dir=settings["out_dir"],
        filename=settings["filename"],
        format=settings["format"],
        save_model_to=settings["save_model_to"],
        plot_to=plot_to,
    )
    folders = {target.parent for plan in plans for target in plan.targets}
    check_folders_writable(sorted(folders | {Path(path).parent for path in also_writes}))
    settings.update(sources=loaded.models, plot_to=plot_to)
    rank = loaded.n_bases + options.free if loaded.models else options.n_components
    return RunPlan(tracks, plans, settings, options, rank)
