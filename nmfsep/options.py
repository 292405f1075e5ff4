"""Every separation option, defined once: name, CLI flags, type, default, range and help.

The Python API (:class:`Options`, the keyword arguments of :func:`nmfsep.separate`,
:func:`nmfsep.separate_file` and :func:`nmfsep.learn`), the CLI's click declarations and the bench
all read :data:`OPTIONS`; a test checks that every CLI default is the API default. :class:`Options`
validates a whole set before any audio is touched.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

from .audio import FORMATS
from .errors import ParameterError
from .nmf import beta_from_name, check_parameters
from .nmf.init import INITS
from .spectrogram import WINDOWS, STFTSettings

#: Shortest STFT frame a separation accepts (33 bins; 4 ms at 16 kHz): below it the spectra hold too
#: few bins to tell sources apart, and the per-frame overheads dominate (n_fft=7 ran 15x slower).
MIN_N_FFT = 64
#: Longest STFT frame (1.5 s at 44.1 kHz): beyond it no note is stationary and memory grows with K.
MAX_N_FFT = 65536

#: STFT frame length of the NMF routes when --n-fft is not given (and no source model gives one).
DEFAULT_N_FFT = 2048
#: Frame duration of the spatial model when --n-fft is not given: the power of two of samples nearest
#: to it (4096 at 44.1 and 48 kHz, 2048 at 22.05 and 16 kHz). Measured on real stereo recordings at
#: 44.1 kHz (8 bases per source, 60 iterations): mean SDR 7.2 dB at n_fft 2048, 9.5 at 4096, 8.8 at 8192.
SPATIAL_FRAME_SECONDS = 0.093

#: Blind grouping factorizes this many components per source by default (measured best of 3, 4 and 6).
COMPONENTS_PER_SOURCE = 6

#: ``learn``'s defaults, recorded in the model file with the STFT, power and divergence, so that
#: ``separate --source`` uses them without a flag: bases per source, the STFT frame in seconds (the
#: nearest power of two of samples: 8192 at 22.05 and 16 kHz, 16384 at 44.1 and 48 kHz), and the
#: mask power and sparsity of the separation. Measured (README, "Named sources"): chosen on the dev
#: set among the settings that beat scikit-learn's supervised baseline on every held-out check
#: (64 bases and 186 ms frames scored higher on dev, 13.59 dB against 13.38, but lost to it on two
#: of the three); sparsity 1 scored 0.1-0.2 dB more on dev and lost on 8 of 9 held-out comparisons
#: (the l1 penalty silences quiet sources: a real drum kit 12 dB below the saxophone).
LEARN_COMPONENTS = 64
LEARN_FRAME_SECONDS = 0.372
LEARN_MASK_POWER = 2.0
LEARN_SPARSITY = 0.0

#: What an option left at None stands for when no source model and no command decides it.
FALLBACKS: dict[str, Any] = {
    "divergence": "kl",
    "window": "hann",
    "power": 1.0,
    "mask_power": 1.0,
    "sparsity": 0.0,
}

#: Default output name template, relative to the output folder.
DEFAULT_TEMPLATE = "{track}/{component}.{ext}"

#: What ``nmfsep plot`` draws.
FIGURES = ("overview", "components", "spectrogram", "bases", "activations")

#: Output formats: the ``--format`` value, which is also the file extension.
FORMAT_NAMES = tuple(FORMATS)


@dataclass(frozen=True)
class Option:
    """One option: its API keyword, CLI flags, kind, default, range and help.

    ``kind`` is one of ``int``, ``float``, ``str``, ``choice``, ``path``, ``flag``; ``low`` and
    ``high`` bound numbers (``low_open``: strictly above ``low``); ``commands`` are the CLI commands
    that offer it; ``shown`` stands for a default of None in the help (where it is computed), and
    ``per_command_shown`` for it where a command computes it otherwise.
    """

    name: str
    flags: tuple[str, ...]
    kind: str
    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    choices: tuple[str, ...] = ()
    commands: frozenset[str] = frozenset({"separate", "plot", "learn"})
    shown: str | None = None
    per_command: tuple[tuple[str, Any], ...] = ()  #: (command, default) where a command differs
    multiple: bool = False  #: given once per value (``--source a.npz --source b.npz``)
    per_command_shown: tuple[tuple[str, str], ...] = ()  #: (command, shown) where a command differs

    def default_for(self, command: str) -> Any:
        """The default a CLI command shows and uses (the API's own, unless ``per_command`` says)."""
        return dict(self.per_command).get(command, self.default)

    def shown_for(self, command: str) -> str | None:
        """What the help of a CLI command shows for a default of None."""
        return dict(self.per_command_shown).get(command, self.shown)

    @property
    def flag(self) -> str:
        """The long flag (``--n-fft``)."""
        return self.flags[-1]


_FACTORIZATION = frozenset({"separate", "plot", "learn"})
_SEPARATE = frozenset({"separate"})

#: Every option of a separation, in the order ``--help`` lists them.
OPTIONS: tuple[Option, ...] = (
    Option(
        "n_components",
        ("-m", "--components"),
        "int",
        4,
        "Number of NMF components M.",
        low=1,
        # separate: None is 4, or 6 per source with --sources (default_components); learn fits more
        per_command=(("separate", None), ("plot", 4), ("learn", LEARN_COMPONENTS)),
        shown="4, or 6 per source with --sources",
    ),
    Option(
        "divergence",
        ("-d", "--divergence"),
        "choice",
        None,
        "Divergence: Kullback-Leibler, Itakura-Saito or Euclidean.",
        choices=("kl", "is", "euc"),
        shown="kl",
        per_command_shown=(("separate", "kl, or the --source models'"),),
    ),
    Option("beta", ("--beta",), "float", None, "Any real beta of the beta-divergence (overrides -d)."),
    Option(
        "n_fft",
        ("--n-fft",),
        "int",
        None,
        f"STFT frame length in samples ({MIN_N_FFT} to {MAX_N_FFT}).",
        shown=str(DEFAULT_N_FFT),
        per_command_shown=(
            (
                "separate",
                f"{DEFAULT_N_FFT}; with --source the models'; --sources on stereo: ~93 ms (4096 at 44.1 kHz)",
            ),
            ("learn", f"~{LEARN_FRAME_SECONDS * 1000:.0f} ms: 8192 at 22.05 kHz, 16384 at 44.1 kHz"),
        ),
    ),
    Option(
        "hop_length",
        ("--hop",),
        "int",
        None,
        "STFT hop in samples (<= --n-fft).",
        low=1,
        shown="n-fft/4",
        per_command_shown=(("separate", "n-fft/4, or the --source models'"),),
    ),
    Option(
        "window",
        ("--window",),
        "choice",
        None,
        "STFT window.",
        choices=tuple(WINDOWS),
        shown="hann",
        per_command_shown=(("separate", "hann, or the --source models'"),),
    ),
    Option(
        "power",
        ("--power",),
        "float",
        None,
        "Spectrogram exponent p: Y = |X|^p (1 magnitude, 2 power).",
        low=0,
        low_open=True,
        shown="1",
        per_command_shown=(("separate", "1, or the --source models'"),),
    ),
    Option(
        "mask_power",
        ("--mask-power",),
        "float",
        None,
        "Mask exponent a in (h_j u_j)^a / sum_i (h_i u_i)^a.",
        low=0,
        low_open=True,
        per_command=(("learn", LEARN_MASK_POWER),),
        shown="1",
        per_command_shown=(("separate", f"1, or the --source models' ({LEARN_MASK_POWER:g} from learn)"),),
    ),
    Option("max_iter", ("--max-iter",), "int", 200, "Maximum NMF iterations per restart.", low=0),
    Option(
        "tol",
        ("--tol",),
        "float",
        1e-4,
        "Stop when an iteration lowers the divergence by less than this fraction.",
        low=0,
    ),
    Option("n_init", ("--n-init",), "int", 1, "Restarts; the best fit is kept.", low=1),
    Option(
        "init",
        ("--init",),
        "choice",
        "nndsvda",
        "Initialisation of the first restart (later restarts are random).",
        choices=tuple(INITS),
    ),
    Option("seed", ("--seed",), "int", 0, "Random seed: same seed, same bytes.", low=0),
    Option(
        "sparsity",
        ("--sparsity",),
        "float",
        None,
        "l1 penalty on the activations.",
        low=0,
        per_command=(("learn", LEARN_SPARSITY),),
        shown="0",
        per_command_shown=(("separate", f"0, or the --source models' ({LEARN_SPARSITY:g} from learn)"),),
    ),
    Option("sr", ("--sr",), "int", None, "Resample to this rate first.", low=1, shown="keep"),
    Option(
        "n_sources",
        ("--sources",),
        "int",
        None,
        "Blind: this many sources s1..sJ; on stereo, placed in the stereo field by a spatial model "
        "(left to right), else grouped components (-m default: 6 per source).",
        low=1,
        commands=_SEPARATE,
    ),
    Option(
        "mono",
        ("--mono",),
        "flag",
        False,
        "With --sources on input of 2 or more channels: one spectral model of the channel sum, "
        "one mask for every channel (instead of sources placed in the stereo field).",
        commands=_SEPARATE,
    ),
    Option(
        "free",
        ("--free",),
        "int",
        0,
        "Semi-supervised: components learned freely besides --source, collected into --rest-name.",
        low=0,
        commands=_SEPARATE,
    ),
    Option(
        "sources",
        ("--source",),
        "path",
        (),
        "Supervised: a source model from `nmfsep learn` (repeat per source); outputs get its name.",
        commands=_SEPARATE,
        multiple=True,
    ),
    Option(
        "recursive",
        ("-r", "--recursive"),
        "flag",
        False,
        "Search folders recursively; the outputs mirror their tree.",
        commands=_SEPARATE,
    ),
    Option(
        "rest_name",
        ("--rest-name",),
        "str",
        "rest",
        "Output name of the --free components.",
        commands=_SEPARATE,
    ),
    # what separate_file writes
    Option("out_dir", ("-o", "--out"), "path", "separated", "Output folder.", commands=_SEPARATE),
    Option(
        "filename",
        ("--filename",),
        "str",
        DEFAULT_TEMPLATE,
        "Output name template; placeholders {track} {component} {index} {ext}.",
        commands=_SEPARATE,
    ),
    Option(
        "format", ("--format",), "choice", "wav", "Output format.", choices=FORMAT_NAMES, commands=_SEPARATE
    ),
    Option(
        "subtype",
        ("--subtype",),
        "str",
        None,
        "Output sample format (PCM_16, PCM_24, FLOAT, ...).",
        commands=_SEPARATE,
        shown="the input's where possible",
    ),
    Option(
        "save_model_to",
        ("--save-model",),
        "path",
        None,
        "Also save bases, activations and settings to this .npz ({track} is replaced).",
        commands=_SEPARATE,
    ),
    Option(
        "max_memory",
        ("--max-memory",),
        "str",
        None,
        "Memory the spectrogram may take (e.g. 500M, 2G); beyond it, it is memory-mapped to a temporary "
        "file in TMPDIR.",
        commands=_SEPARATE,
        shown="half of the available memory",
    ),
    Option("force", ("-f", "--force"), "flag", False, "Overwrite existing outputs.", commands=_FACTORIZATION),
    Option(
        "skip_existing",
        ("--skip-existing",),
        "flag",
        False,
        "Skip inputs whose outputs all exist with the same settings; redo the others (resume a run).",
        commands=_SEPARATE,
    ),
)

#: The options of figures (:class:`nmfsep.plot.Style` and what ``nmfsep plot`` draws).
_PLOT = frozenset({"plot"})
FIGURE_OPTIONS: tuple[Option, ...] = (
    Option(
        "what", ("--what",), "choice", "overview", "Which figure to draw.", choices=FIGURES, commands=_PLOT
    ),
    Option(
        "freq_scale",
        ("--freq-scale",),
        "choice",
        "log",
        "Frequency axis.",
        choices=("linear", "log", "mel"),
        commands=_PLOT,
    ),
    Option(
        "db_range",
        ("--db-range",),
        "float",
        80.0,
        "Dynamic range of the colour scale (dB below the peak).",
        low=0,
        low_open=True,
        commands=_PLOT,
    ),
    Option(
        "fmax",
        ("--fmax",),
        "float",
        None,
        "Highest frequency shown (Hz).",
        low=0,
        low_open=True,
        commands=_PLOT,
        shown="Nyquist",
    ),
    Option("cmap", ("--cmap",), "str", "magma", "Matplotlib colour map of the spectrograms.", commands=_PLOT),
    Option("dpi", ("--dpi",), "int", 100, "Pixels per inch.", low=10, high=1200, commands=_PLOT),
    Option(
        "size",
        ("--size",),
        "str",
        None,
        "Figure size in inches, WIDTHxHEIGHT (e.g. 12x8).",
        commands=_PLOT,
        shown="per view",
    ),
    Option(
        "title", ("--title",), "str", None, "Figure title.", commands=_PLOT, shown="the input's file name"
    ),
)

#: The options of ``nmfsep learn`` besides the factorization's.
LEARN_OPTIONS: tuple[Option, ...] = (
    Option(
        "name",
        ("--name",),
        "str",
        None,
        "The source's name (its output file name in supervised separation).",
        commands=frozenset({"learn"}),
        shown="the first file's name",
    ),
)

#: The options of ``nmfsep eval`` (:func:`nmfsep.evaluate`).
EVAL_OPTIONS: tuple[Option, ...] = (
    Option(
        "permute",
        ("--permute",),
        "flag",
        False,
        "Match estimates to references by the best permutation, not by name.",
        commands=frozenset({"eval"}),
    ),
)

#: The options by API name.
#: Every option of every command.
ALL_OPTIONS: tuple[Option, ...] = OPTIONS + FIGURE_OPTIONS + LEARN_OPTIONS + EVAL_OPTIONS
BY_NAME: dict[str, Option] = {option.name: option for option in ALL_OPTIONS}


#: The default of every option, by API name (the defaults of the Python API's keyword arguments).
DEFAULTS: dict[str, Any] = {option.name: option.default for option in OPTIONS}
#: The same for figures.
FIGURE_DEFAULTS: dict[str, Any] = {option.name: option.default for option in FIGURE_OPTIONS}


def spell_flag(name: str, value: str | None) -> str:
    """How the CLI names an option in a message: ``--n-fft 7``, ``--force`` (see NmfsepError.render)."""
    option = BY_NAME.get(name)
    if option is None:  # not a CLI option (e.g. an engine parameter): keep the API spelling
        return name if value is None else f"{name}={value}"
    if value is None or option.kind == "flag":
        return option.flag
    return f"{option.flag} {value.strip(chr(39))}"


def parse_size(text: str | None) -> tuple[float, float] | None:
    """A figure size ``"12x8"`` (inches) as ``(12.0, 8.0)``; None stays None.

    Raises
    ------
    ParameterError
        Not WIDTHxHEIGHT.
    """
    if text is None:
        return None
    try:
        width, height = (float(part) for part in text.lower().split("x"))
    except ValueError:
        raise ParameterError(f"[[size={text!r}]] is not WIDTHxHEIGHT in inches, e.g. 12x8") from None
    return width, height


def default_components(n_components: int | None, n_sources: int | None) -> int:
    """M when not given: 6 per source for blind grouping (measured best), else 4."""
    if n_components is not None:
        return n_components
    return COMPONENTS_PER_SOURCE * n_sources if n_sources else DEFAULTS["n_components"]


def _integer(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, np.integer))


@dataclass(frozen=True)
class Options:
    """Every setting of a factorization and its masks, validated on construction (before any audio
    is touched). The fields are the keyword arguments of :func:`nmfsep.separate`; see there.

    A field left at None was not given: a source model decides it (see
    :meth:`nmfsep.sources.Sources.settle`), or :meth:`settled` gives it its fallback
    (:data:`FALLBACKS`; ``n_fft`` and ``hop_length`` follow :attr:`stft` or :meth:`spatial_stft`).

    Raises
    ------
    ParameterError
        For any invalid value; the message names it.
    """

    n_components: int = DEFAULTS["n_components"]
    divergence: str | float | None = DEFAULTS["divergence"]
    beta: float | None = DEFAULTS["beta"]
    n_fft: int | None = DEFAULTS["n_fft"]
    hop_length: int | None = DEFAULTS["hop_length"]
    window: str | None = DEFAULTS["window"]
    power: float | None = DEFAULTS["power"]
    mask_power: float | None = DEFAULTS["mask_power"]
    max_iter: int = DEFAULTS["max_iter"]
    tol: float = DEFAULTS["tol"]
    n_init: int = DEFAULTS["n_init"]
    init: str = DEFAULTS["init"]
    seed: int | None = DEFAULTS["seed"]
    sparsity: float | None = DEFAULTS["sparsity"]
    sr: int | None = DEFAULTS["sr"]
    n_sources: int | None = DEFAULTS["n_sources"]
    mono: bool = DEFAULTS["mono"]
    free: int = DEFAULTS["free"]
    rest_name: str = DEFAULTS["rest_name"]

    def __post_init__(self) -> None:
        n = self.n_components
        if not _integer(n) or n < 1:
            raise ParameterError(f"[[n_components={n!r}]] must be an integer >= 1")
        for name in ("power", "mask_power"):
            value = getattr(self, name)
            if value is not None and not (np.isfinite(value) and value > 0):
                raise ParameterError(f"[[{name}={value!r}]] must be a finite number > 0")
        if self.seed is not None and (not _integer(self.seed) or self.seed < 0):
            raise ParameterError(f"[[seed={self.seed!r}]] must be an integer >= 0")
        if self.sr is not None and (not _integer(self.sr) or self.sr <= 0):
            raise ParameterError(f"[[sr={self.sr!r}]] must be a positive integer")
        if self.n_sources is not None and not 1 <= self.n_sources <= self.n_components:
            raise ParameterError(
                f"[[n_sources={self.n_sources!r}]] must be between 1 and [[n_components={self.n_components}]]"
            )
        if not _integer(self.free) or self.free < 0:
            raise ParameterError(f"[[free={self.free!r}]] must be an integer >= 0")
        if not self.rest_name or "/" in self.rest_name:
            raise ParameterError(f"[[rest_name={self.rest_name!r}]] must be a non-empty file name")
        stft = self.stft  # validates the STFT settings
        if not MIN_N_FFT <= stft.n_fft <= MAX_N_FFT:
            reason = (
                f"gives {stft.n_bins} frequency bins, too few to separate anything"
                if stft.n_fft < MIN_N_FFT
                else "is longer than any musical use needs"
            )
            raise ParameterError(
                f"[[n_fft={stft.n_fft}]] {reason}: use [[n_fft]] between {MIN_N_FFT} and {MAX_N_FFT}"
            )
        name, free = ("free", self.free) if self.free else ("n_components", self.n_components)
        if free > stft.n_bins:
            raise ParameterError(
                f"[[{name}={free}]] is more than the {stft.n_bins} frequency bins of [[n_fft={stft.n_fft}]]: "
                f"use at most {stft.n_bins} components (or a larger [[n_fft]])"
            )
        check_parameters(self.n_components, **{k: v for k, v in self.nmf_kwargs().items() if k != "seed"})

    @classmethod
    def from_keywords(cls, **keywords: Any) -> Options:
        """Options from keyword arguments; an unknown keyword is a ParameterError, like a bad value."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(keywords) - known)
        if unknown:
            raise ParameterError(f"unknown option {unknown[0]!r}; the options are {sorted(known)}")
        return cls(**keywords)

    def as_dict(self) -> dict[str, Any]:
        """The settings as plain values (JSON-serialisable)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def settled(self, **values: Any) -> Options:
        """These options with every field that was not given (None) set: to ``values[name]`` where
        it holds one (a source model's settings, ``learn``'s defaults), else to its fallback in
        :data:`FALLBACKS`; given fields are kept. ``beta`` in ``values`` stands for the divergence
        (taken when neither ``divergence`` nor ``beta`` was given); ``n_fft`` and ``hop_length``
        stay None unless ``values`` holds them."""
        changes = {name: value for name, value in values.items() if getattr(self, name) is None}
        if self.divergence_given:
            changes.pop("beta", None)
        for name, fallback in FALLBACKS.items():
            if getattr(self, name) is None and name not in changes:
                changes[name] = fallback
        if "beta" in changes or self.beta is not None:
            changes.pop("divergence", None)  # a beta stands for the divergence
        return replace(self, **changes) if changes else self

    def _window(self) -> str:
        return FALLBACKS["window"] if self.window is None else self.window

    @property
    def stft(self) -> STFTSettings:
        """The STFT of the NMF routes (``n_fft`` 2048 unless given)."""
        n_fft = DEFAULT_N_FFT if self.n_fft is None else self.n_fft
        return STFTSettings(n_fft=n_fft, hop_length=self.hop_length, window=self._window())

    def learn_stft(self, sample_rate: int) -> STFTSettings:
        """The STFT of ``learn``: ``n_fft`` if given, else frames of about :data:`LEARN_FRAME_SECONDS`."""
        if self.n_fft is not None:
            return self.stft
        return STFTSettings(
            n_fft=frame_length(LEARN_FRAME_SECONDS, sample_rate),
            hop_length=self.hop_length,
            window=self._window(),
        )

    def spatial_stft(self, sample_rate: int, n_samples: int | None = None) -> STFTSettings:
        """The STFT of the spatial model: ``n_fft`` if given, else frames of about
        :data:`SPATIAL_FRAME_SECONDS` (a power of two of samples; shorter for audio shorter than
        that, down to the default 2048)."""
        if self.n_fft is not None:
            return self.stft
        n_fft = frame_length(SPATIAL_FRAME_SECONDS, sample_rate)
        if n_samples is not None and n_samples < n_fft:
            n_fft = max(DEFAULT_N_FFT, 2 ** int(np.floor(np.log2(max(n_samples, 1)))))
        n_fft = int(min(MAX_N_FFT, max(MIN_N_FFT, n_fft)))
        hop = None if self.hop_length is None else min(self.hop_length, n_fft)
        return STFTSettings(n_fft=n_fft, hop_length=hop, window=self._window())

    @property
    def resolved_beta(self) -> float:
        if self.beta is not None:
            return beta_from_name(self.beta)
        return beta_from_name(FALLBACKS["divergence"] if self.divergence is None else self.divergence)

    @property
    def divergence_given(self) -> bool:
        """Whether the divergence was chosen (by name or beta), not left to its default."""
        return self.divergence is not None or self.beta is not None

    def nmf_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`nmfsep.nmf.factorize` (all but the data and M)."""
        return {
            "beta": self.resolved_beta,
            "max_iter": self.max_iter,
            "tol": self.tol,
            "n_init": self.n_init,
            "init": self.init,
            "seed": self.seed,
            "sparsity": FALLBACKS["sparsity"] if self.sparsity is None else self.sparsity,
        }


def frame_length(seconds: float, sample_rate: int) -> int:
    """The power of two of samples nearest to ``seconds`` at ``sample_rate`` (in log terms), within
    :data:`MIN_N_FFT` and :data:`MAX_N_FFT`."""
    n_fft = 2 ** int(round(np.log2(seconds * sample_rate)))
    return int(min(MAX_N_FFT, max(MIN_N_FFT, n_fft)))


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
            raise ParameterError(f"[[max_memory={max_memory!r}]] must be a size such as 500M or 2G") from None
    else:
        value = float(max_memory)
    if not (value > 0 and np.isfinite(value)):
        raise ParameterError(f"[[max_memory={max_memory!r}]] must be a positive size")
    return value
