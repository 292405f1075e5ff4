"""The separation pipeline: audio -> STFT -> NMF -> Wiener-style masks -> inverse STFT -> audio.

Used by the CLI and by library users alike. :func:`separate` works on arrays (or a path) and
returns every component; :func:`separate_file` streams a file through the same steps block by
block (:mod:`nmfsep.blockwise`) and writes the components as they are computed, atomically.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import string
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from . import audio as audio_io
from . import plan
from .blockwise import resynthesise, spectrogram_frames
from .errors import AudioError, ModelFileError, NmfsepError, NmfsepWarning, OutputError, ParameterError
from .modelfile import Model, save_model
from .nmf import Progress, beta_from_name, check_parameters, factorize
from .spectrogram import STFTSettings, n_frames

#: Defaults chosen by measurement on the dev set (see README, "Choosing the defaults").
DEFAULT_DIVERGENCE = "kl"
DEFAULT_POWER = 1.0
DEFAULT_MASK_POWER = 1.0
DEFAULT_INIT = "nndsvda"
DEFAULT_MAX_ITER = 200
DEFAULT_TOL = 1e-4

#: Shortest STFT frame a separation accepts (33 bins; 4 ms at 16 kHz): below it the spectra hold too
#: few bins to tell sources apart, and the per-frame overheads dominate (n_fft=7 ran 15x slower).
MIN_N_FFT = 64
#: Longest STFT frame (1.5 s at 44.1 kHz): beyond it no note is stationary and memory grows with K.
MAX_N_FFT = 65536

#: Default output name template, relative to the output folder.
DEFAULT_TEMPLATE = "{track}/{component}.{ext}"
TEMPLATE_FIELDS = ("track", "component", "index", "ext")


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
        """The factorization as a :class:`nmfsep.modelfile.Model` (for ``save_model``)."""
        return Model(
            self.bases,
            self.activations,
            self.component_names,
            self.sample_rate,
            self.settings,
            self.objective,
        )


@dataclass(frozen=True)
class FileResult:
    """What :func:`separate_file` did for one input."""

    input: Path
    outputs: tuple[Path, ...]
    separation: Separation | None  #: components not kept (written to disk instead); None when skipped
    seconds: float
    model_path: Path | None = None
    skipped: bool = False  #: every output existed (``skip_existing``): nothing was done


@dataclass(frozen=True)
class Options:
    """Every setting of a separation, validated on construction (before any audio is touched).

    The fields are the keyword arguments of :func:`separate`; see there.

    Raises
    ------
    ParameterError
        For any invalid value; the message names it.
    """

    n_components: int = 4
    divergence: str | float = DEFAULT_DIVERGENCE
    beta: float | None = None
    n_fft: int = 2048
    hop_length: int | None = None
    window: str = "hann"
    power: float = DEFAULT_POWER
    mask_power: float = DEFAULT_MASK_POWER
    max_iter: int = DEFAULT_MAX_ITER
    tol: float = DEFAULT_TOL
    n_init: int = 1
    init: str = DEFAULT_INIT
    seed: int | None = 0
    sparsity: float = 0.0
    sr: int | None = None
    n_sources: int | None = None
    free: int = 0
    rest_name: str = "rest"

    def __post_init__(self) -> None:
        n = self.n_components
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ParameterError(f"n_components={n!r} must be an integer >= 1")
        for name in ("power", "mask_power"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0):
                raise ParameterError(f"{name}={value!r} must be a finite number > 0")
        if self.seed is not None and (
            isinstance(self.seed, bool) or int(self.seed) != self.seed or self.seed < 0
        ):
            raise ParameterError(f"seed={self.seed!r} must be an integer >= 0")
        if self.sr is not None and (int(self.sr) != self.sr or self.sr <= 0):
            raise ParameterError(f"sr={self.sr!r} must be a positive integer")
        if self.n_sources is not None and not 1 <= self.n_sources <= self.n_components:
            raise ParameterError(
                f"n_sources={self.n_sources!r} must be between 1 and n_components={self.n_components}"
            )
        if isinstance(self.free, bool) or int(self.free) != self.free or self.free < 0:
            raise ParameterError(f"free={self.free!r} must be an integer >= 0")
        if not self.rest_name or "/" in self.rest_name:
            raise ParameterError(f"rest_name={self.rest_name!r} must be a non-empty file name")
        stft_settings = self.stft  # validates the STFT settings
        if stft_settings.n_fft < MIN_N_FFT:
            raise ParameterError(
                f"n_fft={stft_settings.n_fft} gives {stft_settings.n_bins} frequency bins, too few to "
                f"separate anything: use n_fft >= {MIN_N_FFT}"
            )
        if stft_settings.n_fft > MAX_N_FFT:
            raise ParameterError(
                f"n_fft={stft_settings.n_fft} is longer than any musical use needs: use n_fft <= {MAX_N_FFT}"
            )
        free = self.n_components if self.free == 0 else self.free
        if free > stft_settings.n_bins:
            raise ParameterError(
                f"{'free' if self.free else 'n_components'}={free} is more than the {stft_settings.n_bins} "
                f"frequency bins of n_fft={stft_settings.n_fft}: use at most {stft_settings.n_bins} "
                "components (or a larger n_fft)"
            )
        check_parameters(self.n_components, **{k: v for k, v in self.nmf_kwargs().items() if k != "seed"})

    @property
    def stft(self) -> STFTSettings:
        return STFTSettings(n_fft=self.n_fft, hop_length=self.hop_length, window=self.window)

    @property
    def resolved_beta(self) -> float:
        return beta_from_name(self.divergence if self.beta is None else self.beta)

    def nmf_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`nmfsep.nmf.factorize` (all but the data and M)."""
        return {
            "beta": self.resolved_beta,
            "max_iter": self.max_iter,
            "tol": self.tol,
            "n_init": self.n_init,
            "init": self.init,
            "seed": self.seed,
            "sparsity": self.sparsity,
        }


def _options(**kwargs: Any) -> Options:
    """Options from keyword arguments; an unknown keyword is a ParameterError, like a bad value."""
    try:
        return Options(**kwargs)
    except TypeError as exc:
        raise ParameterError(str(exc)) from None


def memory_budget(max_memory: float | str | None) -> float | None:
    """Bytes the spectrogram may take in memory: ``max_memory`` (bytes, or "500M", "2G"), or by
    default half of the memory available now (beyond it Y is memory-mapped to a temporary file).

    Raises
    ------
    ParameterError
        For a size that is not a positive number with an optional K, M or G suffix.
    """
    if max_memory is None:
        try:
            with open("/proc/meminfo") as meminfo:
                for line in meminfo:
                    if line.startswith("MemAvailable:"):
                        return int(line.split()[1]) * 1024 / 2
        except OSError:
            pass
        return None
    if isinstance(max_memory, str):
        text = max_memory.strip().upper().removesuffix("B")
        factor = {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1:], 1)
        try:
            value = float(text[:-1] if factor > 1 else text) * factor
        except ValueError:
            raise ParameterError(f"max_memory={max_memory!r} must be a size such as 500M or 2G") from None
    else:
        value = float(max_memory)
    if not (value > 0 and np.isfinite(value)):
        raise ParameterError(f"max_memory={max_memory!r} must be a positive size")
    return value


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


def _factorize_stream(
    stream: audio_io.AudioStream,
    options: Options,
    callback: Callable[[Progress], None] | None,
    sources: tuple[Model, ...] = (),
    max_memory: float | str | None = None,
) -> Separation:
    """The spectrogram of a stream (block by block) and its NMF; a Separation without signals.

    Three routes: blind components (named c1..cM, or grouped into ``options.n_sources`` sources
    s1..sJ), or supervised with the learned ``sources`` held fixed (plus ``options.free`` free
    components collected into ``options.rest_name``).
    """
    stft_settings = options.stft
    sample_rate = stream.sample_rate
    fixed = np.concatenate([model.bases for model in sources], axis=1) if sources else None
    n_free = options.free if sources else options.n_components
    frame_count = n_frames(stream.n_samples, stft_settings)
    if n_free > frame_count and stream.n_samples >= stft_settings.n_fft:  # (too short: an error of its own)
        raise ParameterError(
            f"{'free' if sources else 'n_components'}={n_free} is more than the {frame_count} STFT frames "
            f"of this audio: use at most {frame_count} components"
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
    # must be bit-identical whatever the machine or --jobs (measured cost: 8% on a 3-minute file).
    with threadpool_limits(limits=1, user_api="blas"):
        result = factorize(
            Y, n_free, fixed_bases=fixed, **options.nmf_kwargs(), callback=callback, overwrite_input=True
        )
    del Y, frames
    bases, activations = result.bases, result.activations
    if sources:
        bounds = np.cumsum([0] + [model.bases.shape[1] for model in sources] + [n_free])
        groups = [tuple(range(bounds[i], bounds[i + 1])) for i in range(len(bounds) - 1)]
        names = [source_name(model) for model in sources]
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


def source_name(model: Model) -> str:
    """The source name of a learned model (``nmfsep learn --name``)."""
    return str(model.settings.get("name") or (model.names[0] if model.names else "source"))


def check_sources(sources: tuple[Model, ...], options: Options, paths: tuple = ()) -> None:
    """Learned models must share this run's STFT, spectrogram power and divergence, and have distinct names.

    Raises
    ------
    ParameterError
        One source and no free components: its mask would be 1 everywhere, the output the input.
    ModelFileError
        A model that is not a source model (a separation saved by ``separate --save-model``), or
        one learned with other settings (naming the file and both settings).
    """
    wanted = {"stft": options.stft.as_dict(), "power": float(options.power), "beta": options.resolved_beta}
    seen: dict[str, int] = {}
    for index, model in enumerate(sources):
        where = paths[index] if index < len(paths) else None
        if model.settings.get("kind") != "source":
            raise ModelFileError(
                "this is a separation saved by `separate --save-model`, not a source model: "
                "learn one from clean examples with `nmfsep learn CLIP.wav -o NAME.npz`",
                where,
            )
        learned = {
            "stft": model.settings.get("stft"),
            "power": model.settings.get("power"),
            "beta": (model.settings.get("nmf") or {}).get("beta"),
        }
        for key, value in wanted.items():
            if learned[key] != value:
                raise ModelFileError(
                    f"model was learned with {key}={learned[key]}, this run uses {key}={value}: "
                    "use the same settings (--n-fft, --hop, --power, -d/--beta) as nmfsep learn",
                    where,
                )
        name = source_name(model)
        if options.free and name == options.rest_name:
            raise ModelFileError(f"--rest-name {name!r} is also a source's name: choose another", where)
        if name in seen:
            raise ModelFileError(f"two sources are named {name!r}: use nmfsep learn --name", where)
        seen[name] = index
    if len(sources) == 1 and not options.free:
        raise ParameterError(
            "one source model and no free components would give one output identical to the input: "
            "add free components for the rest of the mix (--free N) or a model of each other source"
        )


def _components(
    stream: audio_io.AudioStream, separation: Separation, stft_settings: STFTSettings
) -> np.ndarray:
    """Every output's (C, T) signal in one (S, C, T) array (in-memory separation)."""
    groups = separation.component_groups
    components = np.empty((len(groups), stream.n_channels, stream.n_samples), dtype=np.float32)
    filled = [0] * len(groups)

    def write(index: int, samples: np.ndarray) -> None:
        components[index, :, filled[index] : filled[index] + samples.shape[1]] = samples
        filled[index] += samples.shape[1]

    resynthesise(
        stream,
        stft_settings,
        separation.bases,
        separation.activations,
        groups,
        separation.settings["mask_power"],
        write,
    )
    return components


def _with_components(separation: Separation, components: np.ndarray) -> Separation:
    fields = {name: getattr(separation, name) for name in separation.__dataclass_fields__}
    fields["components"] = components
    return Separation(**fields)


def separate(
    audio: np.ndarray | str | os.PathLike,
    sample_rate: int | None = None,
    n_components: int | None = None,
    *,
    divergence: str | float = DEFAULT_DIVERGENCE,
    beta: float | None = None,
    n_fft: int = 2048,
    hop_length: int | None = None,
    window: str = "hann",
    power: float = DEFAULT_POWER,
    mask_power: float = DEFAULT_MASK_POWER,
    max_iter: int = DEFAULT_MAX_ITER,
    tol: float = DEFAULT_TOL,
    n_init: int = 1,
    init: str = DEFAULT_INIT,
    seed: int | None = 0,
    sparsity: float = 0.0,
    sr: int | None = None,
    n_sources: int | None = None,
    sources: tuple = (),
    free: int = 0,
    rest_name: str = "rest",
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
    divergence : {"kl", "is", "euc"} or float
        Divergence minimised by the NMF: Kullback-Leibler, Itakura-Saito, Euclidean (or a beta).
    beta : float, optional
        Any real beta; overrides ``divergence``.
    n_fft : int >= 2
        STFT frame length in samples (K = n_fft // 2 + 1 bins).
    hop_length : int, optional
        STFT hop in samples, <= n_fft; ``n_fft // 4`` by default.
    window : {"hann", "hamming", "blackman"}
    power : float > 0
        Spectrogram exponent p: Y = |X|^p (1 magnitude, 2 power).
    mask_power : float > 0
        Mask exponent a (1 ratio of model spectra, 2 Wiener-like, larger is harder).
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
    sparsity : float >= 0
        l1 penalty on the activations (bases have unit l2 norm).
    sr : int, optional
        Resample to this rate first.
    n_sources : int, optional
        Blind grouping: factorize with ``n_components`` and group the components into this many
        sources (named s1..sJ) with :func:`nmfsep.grouping.group_components`.
    sources : sequence of path or Model
        Supervised: bases learned by ``nmfsep learn`` (one model per source) are held fixed and only
        their activations are fitted; outputs are named after the sources. ``n_components`` is then
        unused; the audio is resampled to the models' rate.
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
        free=free,
        rest_name=rest_name,
    )
    models, model_paths = load_sources(sources)
    check_sources(models, options, model_paths)
    model_rate = target_rate(options, models)
    signal, sample_rate = _resolve_audio(audio, sample_rate, options.sr)
    if models and sample_rate != model_rate:
        raise AudioError(
            f"the input is at {sample_rate} Hz, the source models at {model_rate} Hz: "
            f"pass sr={model_rate} to separate a resampled copy"
        )
    stream = audio_io.AudioStream.from_samples(signal, sample_rate)
    separation = _factorize_stream(stream, options, callback, models)
    return _with_components(separation, _components(stream, separation, options.stft))


def _resolve_audio(audio, sample_rate, sr) -> tuple[np.ndarray, int]:
    if isinstance(audio, (str, os.PathLike)):
        loaded = audio_io.load(audio, sr=sr)
        return loaded.samples, loaded.sample_rate
    if sample_rate is None or int(sample_rate) != sample_rate or sample_rate <= 0:
        raise ParameterError(f"sample_rate={sample_rate!r} must be a positive integer for array input")
    signal = _as_signal(audio)
    if sr is not None and sr != sample_rate:
        return audio_io.resample(signal, int(sample_rate), int(sr)), int(sr)
    return signal, int(sample_rate)


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
        raise ParameterError(f"bad --filename template {template!r}: {exc}") from exc
    unknown = sorted(used - set(TEMPLATE_FIELDS))
    if unknown:
        bad = ", ".join("{" + name + "}" for name in unknown)
        raise ParameterError(
            f"unknown placeholder {bad} in --filename {template!r}; use "
            + ", ".join("{" + name + "}" for name in TEMPLATE_FIELDS)
        )
    try:
        template.format(track="track", component="c1", index=1, ext="wav")
    except (ValueError, KeyError, IndexError, AttributeError, TypeError) as exc:
        raise ParameterError(f"bad --filename template {template!r}: {exc}") from None
    if n_outputs > 1 and not used & {"component", "index"}:
        raise ParameterError(
            f"--filename {template!r} needs {{component}} or {{index}}: components would overwrite each other"
        )


def output_paths(
    template: str, out_dir: str | os.PathLike, track: str, names: list[str], ext: str
) -> list[Path]:
    """Output file of every component.

    Placeholders: ``{track}`` input file name without extension, ``{component}`` component name
    (``c1``...), ``{index}`` 1-based component number, ``{ext}`` output extension.
    """
    check_template(template, len(names))
    return [
        Path(out_dir) / template.format(track=track, component=name, index=index, ext=ext)
        for index, name in enumerate(names, start=1)
    ]


def _display_magnitude(stream: audio_io.AudioStream, stft_settings: STFTSettings) -> np.ndarray:
    """Sum over channels of |X_c| [shape=(K, N)]: what the figures show."""
    return spectrogram_frames(stream, stft_settings)[0].T


def _plot_data_from(separation: Separation, magnitude: np.ndarray | None, title: str):
    from .plot import PlotData

    stft_settings = separation.settings["stft"]
    return PlotData(
        sample_rate=separation.sample_rate,
        n_fft=stft_settings["n_fft"],
        hop_length=stft_settings["hop_length"],
        spectrogram=magnitude,
        bases=separation.bases,
        activations=separation.activations,
        names=separation.component_names,
        objective=separation.objective,
        mask_power=separation.settings.get("mask_power", DEFAULT_MASK_POWER),
        title=title,
    )


def plot_data(
    audio: np.ndarray | str | os.PathLike,
    sample_rate: int | None = None,
    n_components: int = 4,
    *,
    model: str | os.PathLike | Model | None = None,
    spectrogram_only: bool = False,
    title: str | None = None,
    callback: Callable[[Progress], None] | None = None,
    **options: Any,
):
    """What :mod:`nmfsep.plot` draws: from audio (factorized here), audio plus a saved model, or a model.

    Parameters
    ----------
    audio : np.ndarray [shape=(C, T) or (T,)] or path
        Audio samples or file. A path ending in ``.npz`` is a saved model, drawn without audio (the
        model spectrogram HU stands in for the input).
    sample_rate : int, optional
        For array input.
    n_components : int
        Components of the factorization (ignored with a model).
    model : path or Model, optional
        Use this saved factorization of ``audio`` instead of factorizing (no refit). Its STFT settings
        are used; a model that does not fit the audio is a ModelFileError.
    spectrogram_only : bool
        Only the input spectrogram (no factorization).
    title : str, optional
        Figure title; the file name by default.
    callback : callable, optional
    **options
        Any keyword argument of :func:`separate`.

    Returns
    -------
    nmfsep.plot.PlotData
    """
    from .modelfile import load_model

    if isinstance(audio, (str, os.PathLike)) and Path(audio).suffix.lower() == ".npz":
        saved = load_model(audio)
        separation = _separation_from_model(saved, audio)
        return _plot_data_from(separation, None, Path(audio).name if title is None else title)
    settings = _options(n_components=n_components, **options)
    if title is None:
        title = Path(audio).name if isinstance(audio, (str, os.PathLike)) else ""
    if model is not None:
        where = None if isinstance(model, Model) else model
        saved = model if isinstance(model, Model) else load_model(model)
        separation = _separation_from_model(saved, where)
        signal, rate = _resolve_audio(audio, sample_rate, settings.sr or saved.sample_rate)
        magnitude = _display_magnitude(
            audio_io.AudioStream.from_samples(signal, rate), STFTSettings(**separation.settings["stft"])
        )
        if magnitude.shape != (saved.bases.shape[0], saved.activations.shape[1]):
            raise ModelFileError(
                f"model does not fit the input: the model is {saved.bases.shape[0]} bins x "
                f"{saved.activations.shape[1]} frames, the input {magnitude.shape[0]} x {magnitude.shape[1]}",
                where,
            )
        return _plot_data_from(separation, magnitude, title)
    signal, rate = _resolve_audio(audio, sample_rate, settings.sr)
    if spectrogram_only:
        from .plot import PlotData

        stft_settings = settings.stft
        return PlotData(
            sample_rate=rate,
            n_fft=stft_settings.n_fft,
            hop_length=stft_settings.hop_length,
            spectrogram=_display_magnitude(audio_io.AudioStream.from_samples(signal, rate), stft_settings),
            title=title,
        )
    stream = audio_io.AudioStream.from_samples(signal, rate)
    separation = _factorize_stream(stream, settings, callback)
    return _plot_data_from(separation, _display_magnitude(stream, settings.stft), title)


def _separation_from_model(saved: Model, where) -> Separation:
    """A Separation (no component signals) from a saved model, checking what the figures need."""
    if saved.activations is None:
        raise ModelFileError("model has no activations to draw", where)
    stft_settings = saved.settings.get("stft") if isinstance(saved.settings, dict) else None
    if not isinstance(stft_settings, dict) or "n_fft" not in stft_settings:
        raise ModelFileError("model file has no STFT settings", where)
    try:
        STFTSettings(**stft_settings)
    except (TypeError, ParameterError) as exc:
        raise ModelFileError(f"model file has bad STFT settings: {exc}", where) from None
    return Separation(
        components=np.zeros((0,), dtype=np.float32),
        names=saved.names,
        sample_rate=saved.sample_rate,
        bases=saved.bases,
        activations=saved.activations,
        objective=saved.objective,
        n_iter=max(len(saved.objective) - 1, 0),
        converged=False,
        settings=saved.settings,
    )


def default_components(n_components: int | None, n_sources: int | None) -> int:
    """M when not given: 6 per source for blind grouping (measured best), else 4."""
    if n_components is not None:
        return n_components
    from .grouping import GROUPING_COMPONENTS_PER_SOURCE

    return GROUPING_COMPONENTS_PER_SOURCE * n_sources if n_sources else 4


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


def load_sources(sources) -> tuple[tuple[Model, ...], tuple]:
    """Learned source models from paths (or Model objects); returns the models and their paths."""
    from .modelfile import load_model

    models, paths = [], []
    for source in sources or ():
        if isinstance(source, Model):
            models.append(source)
            paths.append(None)
        else:
            models.append(load_model(source))
            paths.append(os.fspath(source))
    return tuple(models), tuple(paths)


def target_rate(options: Options, models: tuple[Model, ...]) -> int | None:
    """The sample rate to analyse at: --sr, or the learned models' rate (input resampled to it)."""
    rates = {model.sample_rate for model in models}
    if len(rates) > 1:
        raise ModelFileError(f"the source models were learned at different sample rates {sorted(rates)}")
    if rates:
        (rate,) = rates
        if options.sr is not None and options.sr != rate:
            raise ParameterError(f"--sr {options.sr} differs from the models' sample rate {rate}")
        return rate
    return options.sr


def planned_outputs(
    track: str,
    n_components: int | list[str],
    out_dir: str | os.PathLike = "separated",
    filename: str = DEFAULT_TEMPLATE,
    format: str = "wav",
    save_model_to: str | os.PathLike | None = None,
) -> tuple[list[Path], Path | None]:
    """The component files and model file :func:`separate_file` would write for a track.

    ``track`` is the ``{track}`` of the templates: an input's name without extension, or its path
    relative to a folder input (``album1/01``).

    Raises
    ------
    ParameterError
        Bad template, or two of the outputs share a name.
    """
    names = output_names(n_components) if isinstance(n_components, int) else list(n_components)
    outputs = output_paths(filename, out_dir, track, names, format)
    model_path = None if save_model_to is None else Path(str(save_model_to).replace("{track}", track))
    targets = outputs + ([model_path] if model_path else [])
    if len(set(targets)) != len(targets):
        raise ParameterError("two outputs would have the same name")
    return outputs, model_path


def _settings_record(path, settings, models, targets, filename, format, subtype) -> dict | None:
    """Everything the outputs of ``path`` depend on (see :func:`nmfsep.plan.settings_record`);
    None when the input is not a readable file (it fails on its own)."""
    if not path.is_file():
        return None
    return plan.settings_record(
        path,
        {
            **dataclasses.asdict(settings),
            # a model's bases, not its file name: a re-learned model makes the outputs stale
            "sources": [hashlib.sha256(np.ascontiguousarray(m.bases).tobytes()).hexdigest() for m in models],
            "filename": filename,
            "format": format,
            "subtype": subtype,
        },
        targets,
    )


def separate_file(
    path: str | os.PathLike,
    n_components: int | None = None,
    *,
    out_dir: str | os.PathLike = "separated",
    filename: str = DEFAULT_TEMPLATE,
    format: str = "wav",
    subtype: str | None = None,
    force: bool = False,
    save_model_to: str | os.PathLike | None = None,
    plot_to: str | os.PathLike | None = None,
    sources: tuple = (),
    skip_existing: bool = False,
    callback: Callable[[Progress], None] | None = None,
    max_memory: float | str | None = None,
    track: str | None = None,
    **options: Any,
) -> FileResult:
    """Separate an audio file and write one file per component (and optionally the model).

    The file is streamed in blocks of frames (:mod:`nmfsep.blockwise`): besides the spectrogram Y
    (one K x N float32 array, memory-mapped to a temporary file beyond ``max_memory``) memory holds
    one block, so hour-long files separate in bounded memory, with the same result as
    :func:`separate` on the decoded samples. Files libsndfile cannot stream, or that must be
    resampled, are decoded into memory first. Outputs are written as they are computed into
    temporary files, renamed into place together at the end; an error or interrupt leaves none.
    Without ``force`` an existing output is an error, raised before any work starts. Warnings
    (clipping, silence) are issued as :class:`nmfsep.errors.NmfsepWarning`.

    Parameters
    ----------
    path : str or os.PathLike
        Input audio file.
    n_components : int >= 1
    out_dir : path
        Folder the ``filename`` template is relative to (``separated`` by default).
    filename : str
        Output name template (see :func:`output_paths`); default ``{track}/{component}.{ext}``.
    format : {"wav", "flac", "ogg"}
    subtype : str, optional
        soundfile subtype (``PCM_16``, ``PCM_24``, ``FLOAT``, ...). By default the input's subtype
        where the format allows it.
    force : bool
        Overwrite existing outputs.
    save_model_to : path, optional
        Also write the model (bases, activations, settings, sample rate) as ``.npz``; ``{track}``
        in the path is replaced by the input's name.
    plot_to : path, optional
        Also draw the overview figure (:func:`nmfsep.plot.overview_figure`) to this file (png, pdf
        or svg by suffix); ``{track}`` is replaced.
    skip_existing : bool
        When every output exists and the settings record beside them (``nmfsep.json``, see
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
    **options
        Any keyword argument of :func:`separate` (``divergence``, ``n_fft``, ``sr``, ...).

    Returns
    -------
    FileResult
        Paths written, the model (``components`` left empty) and the wall time.

    Raises
    ------
    NmfsepError
        ParameterError, AudioError or OutputError; the message names the file.
    """
    started = time.perf_counter()
    path = Path(path)
    try:
        settings = _options(
            n_components=default_components(n_components, options.get("n_sources")), **options
        )
        audio_io.output_subtype(format, subtype, None)  # validates format and subtype early
        models, model_paths = load_sources(sources)
        check_sources(models, settings, model_paths)
        names = output_names(
            settings.n_components,
            n_sources=settings.n_sources,
            source_names=tuple(map(source_name, models)),
            free=settings.free,
            rest_name=settings.rest_name,
        )
        track = path.stem if track is None else track
        outputs, model_path = planned_outputs(track, names, out_dir, filename, format, save_model_to)
        plot_path = None if plot_to is None else Path(str(plot_to).replace("{track}", track))
        if plot_path is not None:
            from .plot import figure_format

            figure_format(plot_path)
        targets = outputs + [p for p in (model_path, plot_path) if p is not None]
        if len(set(targets)) != len(targets):
            raise ParameterError("two outputs would have the same name")
        record_at = plan.record_path(out_dir, filename, track)
        record = _settings_record(path, settings, models, targets, filename, format, subtype)
        previous = plan.read_record(record_at)
        if skip_existing:
            if all(target.is_file() for target in targets):
                if record is not None and previous == record:
                    seconds = time.perf_counter() - started
                    return FileResult(path, tuple(outputs), None, seconds, model_path, skipped=True)
                why = "no record of how they were made" if previous is None else "other settings or input"
                warnings.warn(
                    f"outputs existed from {why} ({record_at}): separated again", NmfsepWarning, stacklevel=2
                )
            force = True  # a partial set from a stopped run, or a stale set, is redone
        for target in targets:
            if target.is_dir():
                raise OutputError("output path is a directory", target)
            if target.exists() and not force:
                raise OutputError("output exists; use --force to overwrite", target)
        memory_budget(max_memory)  # validates the size early
        stream = audio_io.open_stream(path, sr=target_rate(settings, models))
        if models and settings.sr is None and stream.native_rate != stream.sample_rate:
            # resampling silently would give outputs that no longer sum to the input file
            raise AudioError(
                f"the input is at {stream.native_rate} Hz, the source models at {stream.sample_rate} Hz: "
                f"pass --sr {stream.sample_rate} to separate a resampled copy, or learn at {stream.native_rate} Hz"
            )
        out_subtype = audio_io.output_subtype(format, subtype, stream.subtype)
        try:
            audio_io.check_writable(format, out_subtype, stream.n_channels, stream.sample_rate)
        except OutputError:
            if subtype is not None or out_subtype == audio_io.output_subtype(format, None, None):
                raise
            # the input's subtype does not suit this rate or channel count: use the format's default
            out_subtype = audio_io.output_subtype(format, None, None)
            audio_io.check_writable(format, out_subtype, stream.n_channels, stream.sample_rate)
        separation = _factorize_stream(stream, settings, callback, models, max_memory)
        writers = audio_io.AudioWriters(
            outputs,
            stream.sample_rate,
            stream.n_channels,
            format=format,
            subtype=out_subtype,
            overwrite=force,
        )
        with writers:
            resynthesise(
                stream,
                settings.stft,
                separation.bases,
                separation.activations,
                separation.component_groups,
                settings.mask_power,
                writers.write,
            )
        if model_path is not None:
            save_model(model_path, separation.model(), overwrite=force)
        if plot_path is not None:
            from .plot import overview_figure, save_figure

            magnitude = _display_magnitude(stream, settings.stft)
            figure = overview_figure(_plot_data_from(separation, magnitude, path.name))
            save_figure(figure, plot_path, overwrite=force)
        if record is not None:
            plan.write_record(record_at, record)
        if force and previous is not None:
            # outputs of the replaced run that this one did not write (-m 2 after -m 4: c3, c4)
            plan.remove_stale_outputs(previous, targets)
    except NmfsepError as exc:
        if exc.path is None:
            exc.path = os.fspath(path)
        raise
    return FileResult(
        input=path,
        outputs=tuple(outputs),
        separation=separation,
        seconds=time.perf_counter() - started,
        model_path=model_path,
    )


def learn(
    audio_files,
    n_components: int = 16,
    *,
    name: str | None = None,
    callback: Callable[[Progress], None] | None = None,
    **options: Any,
) -> Model:
    """Learn the spectral bases of one source from clean examples (``nmfsep learn``).

    The files' spectrograms (channels summed, as in :func:`separate`) are concatenated in time and
    factorized; the bases, the name and every setting go into a :class:`Model` for
    ``separate(..., sources=[model])``. Files at another sample rate than the first (or ``sr``) are
    resampled to it.

    Parameters
    ----------
    audio_files : sequence of path
    n_components : int >= 1
        Bases learned for this source.
    name : str, optional
        The source's name (the output file name in supervised separation); the first file's stem
        by default.
    callback : callable, optional
    **options
        The STFT and NMF keyword arguments of :func:`separate` (``divergence``, ``n_fft``, ``power``...).

    Returns
    -------
    Model
        ``activations`` is None; ``settings["kind"] == "source"``.
    """
    paths = [Path(p) for p in audio_files]
    if not paths:
        raise ParameterError("learn needs at least one audio file")
    settings = _options(n_components=n_components, **options)
    name = name or paths[0].stem
    if not name or "/" in name or name.startswith("."):
        raise ParameterError(f"name={name!r} must be a plain file name")
    rate = settings.sr
    spectra = []
    for path in paths:
        try:
            stream = audio_io.open_stream(path, sr=rate)
            rate = stream.sample_rate
            spectra.append(spectrogram_frames(stream, settings.stft, settings.power)[0])
        except NmfsepError as exc:
            if exc.path is None:
                exc.path = os.fspath(path)
            raise
    frames = np.concatenate(spectra, axis=0)  # frame-major: the files one after the other
    del spectra
    Y = frames.T
    with threadpool_limits(limits=1, user_api="blas"):
        result = factorize(
            Y, settings.n_components, **settings.nmf_kwargs(), callback=callback, overwrite_input=True
        )
    order = _centroid_order(result.bases)
    model_settings = {
        "kind": "source",
        "name": name,
        "stft": settings.stft.as_dict(),
        "power": float(settings.power),
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
