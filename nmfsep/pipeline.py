"""The separation pipeline: audio -> STFT -> NMF -> Wiener-style masks -> inverse STFT -> audio.

Arrays or streams in, a :class:`Separation` out; no file naming, plotting or overwrite policy (see
:mod:`nmfsep.files` for files, :mod:`nmfsep.plan` for names). :func:`separate` works on arrays (or a
path) and returns every component; :func:`analyse` is the first pass shared with
:func:`nmfsep.separate_file`, which streams a file and writes the components as they are computed;
:func:`learn` fits the bases of one source from clean examples.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from . import audio as audio_io
from .blockwise import multichannel_spectrogram, resynthesise, resynthesise_images, spectrogram_frames
from .errors import AudioError, NmfsepError, NmfsepWarning, ParameterError
from .nmf import Progress, factorize
from .nmf.backend import kernel_for_size
from .nmf.spatial import SpatialModel, SpatialProgress, fit_spatial, pan_spread
from .options import (
    DEFAULTS,
    LEARN_COMPONENTS,
    LEARN_MASK_POWER,
    LEARN_SPARSITY,
    Options,
    default_components,
    memory_budget,
)
from .sources import NO_SOURCES, Model, Sources, check_source, load_sources
from .spectrogram import STFTSettings, n_frames

#: Below this spread of pan angles (radians, energy-weighted) the channels carry no spatial cue.
MIN_PAN_SPREAD = 1e-3


@dataclass(frozen=True)
class Separation:
    """The result of :func:`separate`.

    Attributes
    ----------
    components : np.ndarray [shape=(M, C, T), dtype=float32]
        One signal per component, each with the input's channels and length; they sum to the input.
    names : tuple of str
        ``("c1", ..., "cM")``, components ordered by the spectral centroid of their basis, low to high.
    sample_rate : int
    bases : np.ndarray [shape=(K, M)]
        Spectral bases H (unit l2 norm), in the same order as the components.
    activations : np.ndarray [shape=(M, N)]
        Activations U.
    objective : np.ndarray [shape=(n_iter + 1,)]
        Divergence (plus penalty) before the first iteration and after each one.
    n_iter : int
    converged : bool
    settings : dict
        Every setting used (STFT, spectrogram power, mask power, NMF), JSON-serialisable.
    groups : tuple of tuple of int
        The components of every output (sources); one each for plain components.
    covariances : np.ndarray [shape=(J, K, C, C), dtype=complex128], optional
        The spatial model's covariance of every source per frequency (trace 1), for the sources of
        multichannel input (see :func:`separate`); None for masks of one spectral model.
    """

    components: np.ndarray
    names: tuple[str, ...]
    sample_rate: int
    bases: np.ndarray
    activations: np.ndarray
    objective: np.ndarray
    n_iter: int
    converged: bool
    settings: dict[str, Any] = field(default_factory=dict)
    groups: tuple[tuple[int, ...], ...] = ()
    covariances: np.ndarray | None = None

    @property
    def spatial(self) -> bool:
        """True for the spatial model's sources (multichannel Wiener images, not masks)."""
        return self.covariances is not None

    def spatial_model(self) -> SpatialModel:
        """The spatial model of the sources (:mod:`nmfsep.nmf.spatial`), to filter a mixture with."""
        if self.covariances is None:
            raise ValueError("this separation has no spatial model (it masks one spectral model)")
        J = len(self.names)
        M = self.bases.shape[1] // J
        return SpatialModel(
            np.ascontiguousarray(self.bases.reshape(self.bases.shape[0], J, M).transpose(1, 0, 2)),
            np.ascontiguousarray(self.activations.reshape(J, M, -1)),
            self.covariances,
            float(self.settings["spatial"]["floor"]),
        )

    @property
    def component_groups(self) -> tuple[tuple[int, ...], ...]:
        """Components of each output (one group per name); one component each by default."""
        return self.groups or tuple((j,) for j in range(self.bases.shape[1]))

    @property
    def component_names(self) -> tuple[str, ...]:
        """The output name of every component (the name of its group)."""
        names = [""] * self.bases.shape[1]
        for name, group in zip(self.names, self.component_groups, strict=True):
            for j in group:
                names[j] = name
        return tuple(names)

    def as_dict(self) -> dict[str, np.ndarray]:
        """``{name: signal [shape=(C, T)]}`` for every component."""
        return dict(zip(self.names, self.components, strict=False))

    def model(self) -> Model:
        """The factorization as a :class:`nmfsep.sources.Model` (for ``save_model``)."""
        return Model(
            self.bases,
            self.activations,
            self.component_names,
            self.sample_rate,
            self.settings,
            self.objective,
            self.covariances,
        )


def _centroid_order(bases: np.ndarray) -> np.ndarray:
    """Component order by spectral centroid of the bases, low to high (stable for ties)."""
    bins = np.arange(bases.shape[0])
    weight = bases.sum(axis=0)
    centroid = (bins @ bases) / np.where(weight > 0, weight, 1)
    return np.argsort(centroid, kind="stable")


def _as_signal(signal: np.ndarray) -> np.ndarray:
    signal = np.asarray(signal)
    if signal.ndim == 1:
        signal = signal[None]
    if signal.ndim != 2 or signal.shape[1] == 0:
        raise AudioError(f"audio must be (samples,) or (channels, samples) and non-empty, got {signal.shape}")
    if not np.issubdtype(signal.dtype, np.floating):
        raise AudioError(f"audio must be floating point, got {signal.dtype}")
    if not np.all(np.isfinite(signal)):
        raise AudioError("audio contains NaN or infinite samples")
    return signal.astype(np.float32, copy=False)


def analyse(
    stream: audio_io.AudioStream,
    options: Options,
    sources: Sources = NO_SOURCES,
    *,
    callback: Callable[[Progress], None] | None = None,
    max_memory: float | str | None = None,
) -> Separation:
    """The spectrogram of a stream (block by block) and its NMF: a Separation without signals.

    Three routes: blind components (named c1..cM, or grouped into ``options.n_sources`` sources
    s1..sJ), or supervised with the learned ``sources`` held fixed (plus ``options.free`` free
    components collected into ``options.rest_name``). Options not given are settled first (see
    :meth:`nmfsep.sources.Sources.settle`).

    Raises
    ------
    ParameterError
        More free components than the audio has STFT frames.
    AudioError
        Audio shorter than one frame, or not finite.
    """
    options = sources.settle(options)
    if uses_spatial_model(options, sources, stream.n_channels):
        return _analyse_spatial(stream, options, callback=callback, max_memory=max_memory)
    stft_settings = options.stft
    sample_rate = stream.sample_rate
    models = sources.models
    fixed = np.concatenate([model.bases for model in models], axis=1) if models else None
    n_free = options.free if models else options.n_components
    frame_count = n_frames(stream.n_samples, stft_settings)
    if n_free > frame_count and stream.n_samples >= stft_settings.n_fft:  # (too short: an error of its own)
        raise ParameterError(
            f"[[{'free' if models else 'n_components'}={n_free}]] is more than the {frame_count} STFT "
            f"frames of this audio: use at most {frame_count} components"
        )
    # Everything runs in this thread up to the resynthesis: a background thread that loaded numba's
    # kernels while the audio was analysed raced the main thread's imports (KeyError 'scipy' in
    # 1 run of 4 on a busy machine); Python's import machinery is not safe for that.
    frames, silent = spectrogram_frames(
        stream, stft_settings, options.power, max_memory=memory_budget(max_memory)
    )
    if silent:
        warnings.warn("audio is silent: every component will be silence", NmfsepWarning, stacklevel=3)
    Y = frames.T  # K x N view; the engine scales and floors it in place (no copy)
    # One BLAS thread: OpenBLAS results change in the last bits with its thread count, and outputs
    # must be bit-identical whatever --jobs (measured cost: 8% on a 3-minute file).
    result = factorize(
        Y,
        n_free,
        fixed_bases=fixed,
        kernel=kernel_for_size("auto", n_free + (0 if fixed is None else fixed.shape[1]), Y.size),
        **options.nmf_kwargs(),
        callback=callback,
        overwrite_input=True,
        blas_threads=1,
    )
    del Y, frames
    bases, activations = result.bases, result.activations
    if models:
        bounds = np.cumsum([0] + [model.bases.shape[1] for model in models] + [n_free])
        groups = [tuple(range(bounds[i], bounds[i + 1])) for i in range(len(bounds) - 1)]
        names = list(sources.names)
        if n_free:
            names.append(options.rest_name)
        else:
            groups.pop()
    else:
        order = _centroid_order(bases)
        bases, activations = bases[:, order], activations[order]
        if options.n_sources is not None:
            from .grouping import group_components

            groups = [
                tuple(g)
                for g in group_components(
                    bases, activations, options.n_sources, sample_rate=sample_rate, n_fft=stft_settings.n_fft
                )
            ]
            # sources named s1..sJ by the mean spectral centroid of their components, low to high
            groups.sort(key=lambda group: float(np.mean(group)))
            names = [f"s{j + 1}" for j in range(len(groups))]
        else:
            groups = [(j,) for j in range(bases.shape[1])]
            names = [f"c{j + 1}" for j in range(bases.shape[1])]
    settings = {
        "stft": stft_settings.as_dict(),
        "power": float(options.power),
        "mask_power": float(options.mask_power),
        "sample_rate": int(sample_rate),
        "n_channels": int(stream.n_channels),
        "n_samples": int(stream.n_samples),
        "nmf": result.settings,
        "groups": [list(group) for group in groups],
    }
    separation = Separation(
        components=np.zeros((0,), dtype=np.float32),
        names=tuple(names),
        sample_rate=int(sample_rate),
        bases=np.ascontiguousarray(bases),
        activations=np.ascontiguousarray(activations),
        objective=result.objective,
        n_iter=result.n_iter,
        converged=result.converged,
        settings=settings,
        groups=tuple(tuple(int(j) for j in group) for group in groups),
    )
    return separation


def uses_spatial_model(options: Options, sources: Sources, n_channels: int) -> bool:
    """Whether blind sources of this input come from the spatial model: with ``n_sources``, input of
    2 or more channels, no source models and not ``mono``."""
    return options.n_sources is not None and not sources.models and n_channels >= 2 and not options.mono


def _analyse_spatial(
    stream: audio_io.AudioStream,
    options: Options,
    *,
    callback: Callable[[Progress], None] | None = None,
    max_memory: float | str | None = None,
) -> Separation:
    """The spatial route of :func:`analyse`: multichannel NMF of the complex STFT of every channel."""
    stft_settings = options.spatial_stft(stream.sample_rate, stream.n_samples)
    J = options.n_sources
    per_source = max(1, options.n_components // J)
    X, silent = multichannel_spectrogram(stream, stft_settings, max_memory=memory_budget(max_memory))
    if silent:
        warnings.warn("audio is silent: every source will be silence", NmfsepWarning, stacklevel=3)
    elif pan_spread(X) < MIN_PAN_SPREAD:
        # a mono recording saved as stereo: every bin sits at one place, and the spatial model would
        # put everything in one source (measured: 99.99999% of the energy, the others near silence)
        del X
        warnings.warn(
            "the channels are identical (or proportional): nothing tells the sources apart by place, "
            "so they come from the mono route, as with [[mono=True]]",
            NmfsepWarning,
            stacklevel=3,
        )
        return analyse(
            stream, replace(options, mono=True), NO_SOURCES, callback=callback, max_memory=max_memory
        )

    def progress(step: SpatialProgress) -> None:
        callback(Progress(0, 1, step.iteration + 1, step.max_iter, step.objective))

    model = fit_spatial(
        X,
        J,
        per_source,
        max_iter=options.max_iter,
        tol=options.tol,
        seed=options.seed or 0,
        callback=progress if callback is not None else None,
    )
    del X
    order = np.argsort(model.mean_pan(), kind="stable")  # s1 is the leftmost source
    H = model.bases[order]  # (J, K, M), columns summing to 1
    U = model.activations[order]
    norms = np.maximum(
        np.sqrt(np.sum(H.astype(np.float64) ** 2, axis=1)), np.finfo(np.float32).tiny
    )  # (J, M)
    # unit l2 bases as on the other routes; the spectra H_j U_j do not change
    bases = (H / norms[:, None, :].astype(H.dtype)).transpose(1, 0, 2).reshape(H.shape[1], -1)
    activations = (U * norms[:, :, None].astype(U.dtype)).reshape(J * per_source, -1)
    groups = tuple(tuple(range(j * per_source, (j + 1) * per_source)) for j in range(J))
    history = np.asarray(model.history, dtype=np.float64)
    settings = {
        "stft": stft_settings.as_dict(),
        "power": 2.0,
        "mask_power": float(options.mask_power),
        "sample_rate": int(stream.sample_rate),
        "n_channels": int(stream.n_channels),
        "n_samples": int(stream.n_samples),
        "spatial": {
            "model": "multichannel NMF, full-rank spatial covariances (Sawada et al. 2013)",
            "components_per_source": per_source,
            "floor": float(model.floor),
            "max_iter": int(options.max_iter),
            "tol": float(options.tol),
            "seed": int(options.seed or 0),
            "n_iter": int(model.n_iter),
            "pan": [float(p) for p in model.mean_pan()[order]],
        },
        "groups": [list(group) for group in groups],
    }
    return Separation(
        components=np.zeros((0,), dtype=np.float32),
        names=tuple(f"s{j + 1}" for j in range(J)),
        sample_rate=int(stream.sample_rate),
        bases=np.ascontiguousarray(bases),
        activations=np.ascontiguousarray(activations),
        objective=history,
        n_iter=model.n_iter,
        converged=model.converged,
        settings=settings,
        groups=groups,
        covariances=np.ascontiguousarray(model.covariances[order]),
    )


def synthesise(
    stream: audio_io.AudioStream,
    separation: Separation,
    write: Callable[[int, np.ndarray], None],
) -> None:
    """Every output of ``separation`` from the input stream, block by block: ``write(index, samples)``
    (see :func:`nmfsep.blockwise.resynthesise`); masks, or the spatial model's Wiener filters, with
    the STFT the separation was made with."""
    stft_settings = STFTSettings(**separation.settings["stft"])
    if separation.spatial:
        resynthesise_images(stream, stft_settings, separation.spatial_model(), write)
        return
    resynthesise(
        stream,
        stft_settings,
        separation.bases,
        separation.activations,
        separation.component_groups,
        separation.settings["mask_power"],
        write,
    )


def _components(stream: audio_io.AudioStream, separation: Separation) -> np.ndarray:
    """Every output's (C, T) signal in one (S, C, T) array (in-memory separation)."""
    groups = separation.component_groups
    components = np.empty((len(groups), stream.n_channels, stream.n_samples), dtype=np.float32)
    filled = [0] * len(groups)

    def write(index: int, samples: np.ndarray) -> None:
        components[index, :, filled[index] : filled[index] + samples.shape[1]] = samples
        filled[index] += samples.shape[1]

    synthesise(stream, separation, write)
    return components


def separate(
    audio: np.ndarray | str | os.PathLike,
    sample_rate: int | None = None,
    n_components: int | None = None,
    *,
    divergence: str | float | None = DEFAULTS["divergence"],
    beta: float | None = DEFAULTS["beta"],
    n_fft: int | None = DEFAULTS["n_fft"],
    hop_length: int | None = DEFAULTS["hop_length"],
    window: str | None = DEFAULTS["window"],
    power: float | None = DEFAULTS["power"],
    mask_power: float | None = DEFAULTS["mask_power"],
    max_iter: int = DEFAULTS["max_iter"],
    tol: float = DEFAULTS["tol"],
    n_init: int = DEFAULTS["n_init"],
    init: str = DEFAULTS["init"],
    seed: int | None = DEFAULTS["seed"],
    sparsity: float | None = DEFAULTS["sparsity"],
    sr: int | None = DEFAULTS["sr"],
    n_sources: int | None = DEFAULTS["n_sources"],
    mono: bool = DEFAULTS["mono"],
    sources: tuple = (),
    free: int = DEFAULTS["free"],
    rest_name: str = DEFAULTS["rest_name"],
    callback: Callable[[Progress], None] | None = None,
) -> Separation:
    """Separate audio into ``n_components`` NMF components.

    The STFT X of every channel is computed; Y = sum_c |X_c|^power is factorized as Y ~ H U under the
    chosen beta-divergence; component j gets the soft mask (h_j u_j)^a / sum_i (h_i u_i)^a
    (a = ``mask_power``), applied to every channel of X and inverted. Components keep the input's
    channels (and so its stereo image), sample rate and length, and sum back to the input.

    Parameters
    ----------
    audio : np.ndarray [shape=(C, T) or (T,), dtype=float] or path
        Samples (full scale [-1, 1]), or a file to read with :func:`nmfsep.audio.load`.
    sample_rate : int, optional
        Sample rate of ``audio`` (required for arrays; read from the file for paths).
    n_components : int >= 1, optional
        Number of components M: 4 by default, 6 per source with ``n_sources``.
    divergence : {"kl", "is", "euc"} or float, optional
        Divergence minimised by the NMF: Kullback-Leibler (the default), Itakura-Saito, Euclidean
        (or a beta).
    beta : float, optional
        Any real beta; overrides ``divergence``.
    n_fft : int, optional
        STFT frame length in samples (K = n_fft // 2 + 1 bins): 2048 by default, and for the
        spatial model (``n_sources`` on stereo) frames of about 93 ms (4096 samples at 44.1 kHz).
    hop_length : int, optional
        STFT hop in samples, <= n_fft; ``n_fft // 4`` by default.
    window : {"hann", "hamming", "blackman"}, optional
        ``"hann"`` by default.
    power : float > 0, optional
        Spectrogram exponent p: Y = |X|^p (1 magnitude, the default; 2 power).
    mask_power : float > 0, optional
        Mask exponent a (1 ratio of model spectra, the default; 2 Wiener-like, larger is harder).
    max_iter : int >= 0
        Maximum NMF iterations per restart.
    tol : float >= 0
        Stop when an iteration lowers the objective by less than this fraction.
    n_init : int >= 1
        Restarts; the one with the lowest objective is kept.
    init : {"nndsvda", "random"}
        Initialisation of the first restart (later ones are random).
    seed : int, optional
        Seed of every random choice: the same seed gives the same output, bit for bit.
    sparsity : float >= 0, optional
        l1 penalty on the activations (bases have unit l2 norm); 0 by default.
    sr : int, optional
        Resample to this rate first.
    n_sources : int, optional
        Blind sources s1..sJ. On input of 2 or more channels, a spatial model
        (:mod:`nmfsep.nmf.spatial`): every source has a spatial covariance per frequency (where it
        sits between the channels) and an NMF spectrum of ``n_components // n_sources`` bases,
        fitted jointly to the STFT of every channel; the outputs are the sources' multichannel
        Wiener images, which keep their place in the stereo field, named from the first channel's
        side (left) to the last's (right). ``max_iter`` and ``tol`` apply to that fit, the
        spectral settings (``divergence``, ``power``, ``mask_power``, ``sparsity``, ``n_init``,
        ``init``) do not. On mono input (or with ``mono``): factorize the channel sum with
        ``n_components`` and group the components into sources with
        :func:`nmfsep.grouping.group_components` (named by spectral centroid, low to high).
    mono : bool
        With ``n_sources`` on input of 2 or more channels: the grouping route of mono input
        (one spectral model of the channel sum, one mask for every channel).
    sources : sequence of path or Model
        Supervised: bases learned by ``nmfsep learn`` (one model per source) are held fixed and only
        their activations are fitted; outputs are named after the sources. ``n_components`` is then
        unused; the audio is resampled to the models' rate. The models' settings replace the
        defaults: their STFT (``n_fft``, ``hop_length``, ``window``), ``power`` and divergence, which
        the run may only repeat (another value is a ModelFileError), and the ``mask_power`` and
        ``sparsity`` recorded by ``learn``, which it may override.
    free : int >= 0
        Semi-supervised: with ``sources``, this many components are learned freely and collected into
        ``rest_name``.
    rest_name : str
    callback : callable, optional
        Receives a :class:`nmfsep.nmf.Progress` after every NMF iteration.

    Returns
    -------
    Separation
        ``components`` [shape=(S, C, T)] named ``c1..cM``, ``s1..sJ`` or after the sources (low to high spectral centroid), the model
        (bases, activations, objective history) and the settings used.

    Raises
    ------
    ParameterError
        For an invalid option (checked before any audio is processed).
    AudioError
        For unusable audio: empty, shorter than one frame, NaN/inf samples, unreadable file.

    Examples
    --------
    >>> import nmfsep
    >>> result = nmfsep.separate("song.wav", n_components=4)          # doctest: +SKIP
    >>> for name, signal in result.as_dict().items(): ...              # doctest: +SKIP
    """
    options = Options(
        n_components=default_components(n_components, n_sources),
        divergence=divergence,
        beta=beta,
        n_fft=n_fft,
        hop_length=hop_length,
        window=window,
        power=power,
        mask_power=mask_power,
        max_iter=max_iter,
        tol=tol,
        n_init=n_init,
        init=init,
        seed=seed,
        sparsity=sparsity,
        sr=sr,
        n_sources=n_sources,
        mono=mono,
        free=free,
        rest_name=rest_name,
    )
    loaded = load_sources(sources, options)
    options = loaded.settle(options)
    signal, sample_rate = load_input(audio, sample_rate, options.sr)
    if loaded.models and sample_rate != loaded.sample_rate:
        raise AudioError(
            f"the input is at {sample_rate} Hz, the source models at {loaded.sample_rate} Hz: "
            f"pass [[sr={loaded.sample_rate}]] to separate a resampled copy"
        )
    stream = audio_io.AudioStream.from_samples(signal, sample_rate)
    separation = analyse(stream, options, loaded, callback=callback)
    return replace(separation, components=_components(stream, separation))


def load_input(audio, sample_rate: int | None, sr: int | None) -> tuple[np.ndarray, int]:
    """Samples [shape=(C, T), float32] and their rate from a path or an array (resampled to ``sr``).

    Raises
    ------
    ParameterError
        An array without a valid ``sample_rate``.
    AudioError
        Unusable audio (see :func:`nmfsep.audio.load`).
    """
    if isinstance(audio, (str, os.PathLike)):
        loaded = audio_io.load(audio, sr=sr)
        return loaded.samples, loaded.sample_rate
    if sample_rate is None or int(sample_rate) != sample_rate or sample_rate <= 0:
        raise ParameterError(f"sample_rate={sample_rate!r} must be a positive integer for array input")
    signal = _as_signal(audio)
    if sr is not None and sr != sample_rate:
        return audio_io.resample(signal, int(sample_rate), int(sr)), int(sr)
    return signal, int(sample_rate)


def learn(
    audio_files,
    n_components: int = LEARN_COMPONENTS,
    *,
    name: str | None = None,
    callback: Callable[[Progress], None] | None = None,
    **options: Any,
) -> Model:
    """Learn the spectral bases of one source from clean examples (``nmfsep learn``).

    The files' spectrograms (channels summed, as in :func:`separate`) are concatenated in time and
    factorized; the bases, the name and every setting go into a :class:`Model` for
    ``separate(..., sources=[model])``, which uses the model's STFT, power, divergence, mask power
    and sparsity unless told otherwise. Files at another sample rate than the first (or ``sr``) are
    resampled to it.

    Parameters
    ----------
    audio_files : sequence of path
    n_components : int >= 1
        Bases learned for this source (:data:`nmfsep.options.LEARN_COMPONENTS` by default).
    name : str, optional
        The source's name (the output file name in supervised separation); the first file's stem
        by default.
    callback : callable, optional
    **options
        The STFT and NMF keyword arguments of :func:`separate` (``divergence``, ``n_fft``, ``power``,
        ``sparsity``...). ``n_fft`` defaults to frames of about
        :data:`nmfsep.options.LEARN_FRAME_SECONDS` (a power of two of samples: 8192 at 22.05 kHz,
        16384 at 44.1 kHz). ``mask_power`` and ``sparsity`` are recorded for the separation
        (defaults :data:`~nmfsep.options.LEARN_MASK_POWER` and
        :data:`~nmfsep.options.LEARN_SPARSITY`); the sparsity also applies to this fit.

    Returns
    -------
    Model
        ``activations`` is None; ``settings["kind"] == "source"``.
    """
    paths = [Path(p) for p in audio_files]
    if not paths:
        raise ParameterError("learn needs at least one audio file")
    settings = Options.from_keywords(n_components=n_components, **options)
    name = name or paths[0].stem
    check_source(name)
    rate = settings.sr
    spectra = []
    stft_settings = None
    for path in paths:
        try:
            stream = audio_io.open_stream(path, sr=rate)
            rate = stream.sample_rate
            if stft_settings is None:  # the frame's length in samples depends on the rate
                stft_settings = settings.learn_stft(rate)
                settings = settings.settled(
                    n_fft=stft_settings.n_fft,
                    hop_length=stft_settings.hop_length,
                    mask_power=LEARN_MASK_POWER,
                    sparsity=LEARN_SPARSITY,
                )
            spectra.append(spectrogram_frames(stream, stft_settings, settings.power)[0])
        except NmfsepError as exc:
            if exc.path is None:
                exc.path = os.fspath(path)
            raise
    frames = np.concatenate(spectra, axis=0)  # frame-major: the files one after the other
    del spectra
    if settings.n_components > frames.shape[0]:
        raise ParameterError(
            f"[[n_components={settings.n_components}]] is more than the {frames.shape[0]} STFT frames "
            f"of the training audio: use at most {frames.shape[0]} bases"
        )
    Y = frames.T
    result = factorize(
        Y,
        settings.n_components,
        kernel=kernel_for_size("auto", settings.n_components, Y.size),
        **settings.nmf_kwargs(),
        callback=callback,
        overwrite_input=True,
        blas_threads=1,
    )
    order = _centroid_order(result.bases)
    model_settings = {
        "kind": "source",
        "name": name,
        "stft": stft_settings.as_dict(),
        "power": float(settings.power),
        # what separate uses with these bases unless told otherwise (with the STFT, power and beta)
        "separation": {"mask_power": float(settings.mask_power), "sparsity": float(settings.sparsity)},
        "sample_rate": int(rate),
        "nmf": result.settings,
        "training": [p.name for p in paths],
        "training_frames": int(Y.shape[1]),
    }
    return Model(
        bases=np.ascontiguousarray(result.bases[:, order]),
        activations=None,
        names=(name,) * settings.n_components,
        sample_rate=int(rate),
        settings=model_settings,
        objective=result.objective,
    )
