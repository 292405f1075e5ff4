"""Figures of a factorization: input spectrogram, bases H, activations U, model HU, per-component views.

Matplotlib is imported only when a figure is drawn, and never pyplot: every function returns a
``matplotlib.figure.Figure`` on its own Agg canvas, so the user's backend (a notebook's, say) and
pyplot's list of open figures are left alone. :func:`save_figure` writes it atomically, format
from the suffix.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_write
from .errors import OutputError, ParameterError
from .masks import iter_group_masks

#: What ``nmfsep plot --what`` can draw.
VIEWS = ("overview", "components", "spectrogram", "bases", "activations")
FREQ_SCALES = ("linear", "log", "mel")
#: Output formats, by file suffix.
FIGURE_FORMATS = {".png": "png", ".pdf": "pdf", ".svg": "svg"}
#: Default figure size (inches) of each view.
DEFAULT_SIZES = {
    "overview": (12.0, 9.0),
    "components": (12.0, 8.0),
    "spectrogram": (10.0, 4.5),
    "bases": (8.0, 5.0),
    "activations": (10.0, 4.5),
}
#: Time columns drawn at most per spectrogram panel; longer inputs are max-pooled (keeps onsets).
MAX_COLUMNS = 1600


@dataclass(frozen=True)
class PlotData:
    """What the figures show.

    Attributes
    ----------
    sample_rate : int
    n_fft, hop_length : int
        STFT settings, for the frequency and time axes.
    spectrogram : np.ndarray [shape=(K, N)] or None
        Input magnitude (summed over channels). None for a model drawn without its audio: the model
        HU is shown in its place.
    bases : np.ndarray [shape=(K, M)] or None
    activations : np.ndarray [shape=(M, N)] or None
    names : tuple of str
        Component names (``c1``.. or source names).
    objective : np.ndarray [shape=(n_iter + 1,)]
    mask_power : float
    title : str
    pans : np.ndarray [shape=(J, K)] or None
        For sources of the spatial model (stereo): where each source sits at every frequency,
        (r22 - r11) / (r11 + r22) of its spatial covariance: -1 left, 0 centre, +1 right.
    pan_weights : np.ndarray [shape=(J, K)] or None
        Each source's energy per frequency (its model spectrum summed over time): how much each
        point of the pan view counts.
    model_power : float
        The power of the spectrogram HU models (2 for the spatial model's power spectra): the model
        is shown as (HU)^(1 / model_power), a magnitude like the input.
    """

    sample_rate: int
    n_fft: int
    hop_length: int
    spectrogram: np.ndarray | None = None
    bases: np.ndarray | None = None
    activations: np.ndarray | None = None
    names: tuple[str, ...] = ()
    objective: np.ndarray = field(default_factory=lambda: np.zeros(0))
    mask_power: float = 1.0
    title: str = ""
    pans: np.ndarray | None = None
    pan_weights: np.ndarray | None = None
    model_power: float = 1.0

    @property
    def frequencies(self) -> np.ndarray:
        return np.arange(self.n_fft // 2 + 1) * self.sample_rate / self.n_fft

    @property
    def n_frames(self) -> int:
        source = self.spectrogram if self.spectrogram is not None else self.activations
        return source.shape[1]

    @property
    def model(self) -> np.ndarray:
        model = self.bases @ self.activations
        return model if self.model_power == 1 else model ** (1 / self.model_power)

    @property
    def display(self) -> np.ndarray:
        """The spectrogram to show: the input, or the model when there is no input."""
        return self.spectrogram if self.spectrogram is not None else self.model


@dataclass(frozen=True)
class Style:
    """Drawing options shared by every view (see ``nmfsep plot --help``)."""

    freq_scale: str = "log"
    db_range: float = 80.0
    fmax: float | None = None
    cmap: str = "magma"
    dpi: int = 100
    size: tuple[float, float] | None = None
    title: str | None = None

    def __post_init__(self) -> None:
        if self.freq_scale not in FREQ_SCALES:
            raise ParameterError(f"[[freq_scale={self.freq_scale!r}]] is not one of {list(FREQ_SCALES)}")
        if not (self.db_range > 0 and np.isfinite(self.db_range)):
            raise ParameterError(f"[[db_range={self.db_range!r}]] must be a positive number")
        if self.fmax is not None and not self.fmax > 0:
            raise ParameterError(f"[[fmax={self.fmax!r}]] must be positive")
        if not 10 <= self.dpi <= 1200:
            raise ParameterError(f"[[dpi={self.dpi!r}]] must be between 10 and 1200")
        if self.size is not None and not (0 < self.size[0] <= 100 and 0 < self.size[1] <= 100):
            raise ParameterError(f"[[size={self.size!r}]] must be between 0 and 100 inches each way")
        try:
            from matplotlib import colormaps
        except ImportError:  # a dependency, but a broken install should say so in one line
            raise ParameterError(
                "drawing needs matplotlib, a dependency of nmfsep: pip install matplotlib"
            ) from None
        if self.cmap not in colormaps:
            raise ParameterError(
                f"[[cmap={self.cmap!r}]] is not a matplotlib colour map (e.g. magma, viridis, gray_r)"
            )


def figure_format(path: str | os.PathLike) -> str:
    """matplotlib format name from the suffix of ``path``; ParameterError for anything else."""
    suffix = Path(path).suffix.lower()
    if suffix not in FIGURE_FORMATS:
        raise ParameterError(
            f"cannot tell the figure format from {Path(path).name!r}: use one of {sorted(FIGURE_FORMATS)}"
        )
    return FIGURE_FORMATS[suffix]


def _to_db(magnitude: np.ndarray, reference: float) -> np.ndarray:
    """20 log10(magnitude / reference), floored at -200 dB (zeros stay drawable)."""
    return 20.0 * np.log10(np.maximum(magnitude, reference * 1e-10) / reference)


def _pool_columns(image: np.ndarray, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Max-pool the time axis down to at most MAX_COLUMNS columns; returns the image and edges."""
    n = image.shape[1]
    step = max(1, -(-n // MAX_COLUMNS))
    if step > 1:
        pad = (-n) % step
        padded = np.pad(image, ((0, 0), (0, pad)), mode="edge") if pad else image
        image = padded.reshape(image.shape[0], -1, step).max(axis=2)
    edges = np.append(times[::step], times[-1] + (times[1] - times[0] if len(times) > 1 else 1.0))
    return image, edges


def _frequency_edges(frequencies: np.ndarray) -> np.ndarray:
    step = frequencies[1] - frequencies[0] if len(frequencies) > 1 else 1.0
    return np.concatenate([[0.0], frequencies[:-1] + step / 2, [frequencies[-1]]])


def _hz_to_mel(hz):
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=float) / 700.0)


def _mel_to_hz(mel):
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=float) / 2595.0) - 1.0)


#: Tick positions (Hz) on the log and mel frequency axes: octaves, labelled in Hz.
_OCTAVE_TICKS = (0, 63, 125, 250, 500, 1000, 2000, 4000, 8000, 16000, 32000)


def _hz_label(value: float, _position=None) -> str:
    return f"{value / 1000:g}k" if value >= 1000 else f"{value:g}"


def _frequency_axis(ax, data: PlotData, style: Style, label: bool = True) -> None:
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    top = min(style.fmax or data.sample_rate / 2, data.sample_rate / 2)
    if style.freq_scale == "log":
        # as librosa.display: logarithmic above C2 (65.4 Hz), linear below, so 0 Hz stays on the axis
        ax.set_yscale("symlog", base=2, linthresh=65.4, linscale=0.5)
    elif style.freq_scale == "mel":
        ax.set_yscale("function", functions=(_hz_to_mel, _mel_to_hz))
    if style.freq_scale != "linear":
        ax.yaxis.set_major_locator(FixedLocator([f for f in _OCTAVE_TICKS if f <= top]))
        ax.yaxis.set_minor_locator(NullLocator())
    ax.yaxis.set_major_formatter(FuncFormatter(_hz_label))
    ax.set_ylim(0, top)
    if label:
        ax.set_ylabel("Frequency (Hz)")


def _spectrogram_panel(ax, magnitude, data: PlotData, style: Style, vmax_db: float, title: str):
    """Draw a magnitude spectrogram in dB; returns the mappable for a colour bar."""
    times = np.arange(magnitude.shape[1]) * data.hop_length / data.sample_rate
    image, time_edges = _pool_columns(_to_db(magnitude, 1.0), times)
    mesh = ax.pcolormesh(
        time_edges,
        _frequency_edges(data.frequencies),
        image,
        cmap=style.cmap,
        vmin=vmax_db - style.db_range,
        vmax=vmax_db,
        shading="flat",
        rasterized=True,
    )
    _frequency_axis(ax, data, style)
    ax.set_title(title, fontsize=10, loc="left")
    return mesh


def _peak_db(magnitude: np.ndarray) -> float:
    peak = float(np.max(magnitude)) if magnitude.size else 0.0
    return float(_to_db(np.array([peak if peak > 0 else 1.0]), 1.0)[0])


def _bases_panel(ax, data: PlotData, style: Style):
    """One column per basis, in dB re its own peak, frequency on the vertical axis (as the spectrogram)."""
    count = len(data.names)
    peaks = np.maximum(data.bases.max(axis=0), 1e-30)
    image = _to_db(data.bases / peaks, 1.0)
    mesh = ax.pcolormesh(
        np.arange(count + 1) - 0.5,
        _frequency_edges(data.frequencies),
        image,
        cmap=style.cmap,
        vmin=-style.db_range,
        vmax=0.0,
        shading="flat",
        rasterized=True,
    )
    # grouped components (learned sources, s1..sJ) share a name: label the first of each run only
    labels = [name if j == 0 or name != data.names[j - 1] else "" for j, name in enumerate(data.names)]
    ax.set_xticks(np.arange(count), labels, fontsize=8 if count > 8 else 10)
    ax.set_xlabel("Component")
    _frequency_axis(ax, data, style)
    ax.set_title("Bases H (dB re peak)", fontsize=10, loc="left")
    return mesh


def _activations_panel(ax, data: PlotData) -> None:
    """One row per component (per source when components share a name), scaled to its peak, offset."""
    times = np.arange(data.activations.shape[1]) * data.hop_length / data.sample_rate
    labels = list(dict.fromkeys(data.names))
    grouped = len(labels) < len(data.names)
    if grouped:  # learned sources or blind groups: one summed row per source
        names = np.asarray(data.names)
        rows = np.stack([data.activations[names == label].sum(axis=0) for label in labels])
    else:
        rows = data.activations
    colors = _component_colors(len(labels))
    for j, row in enumerate(rows):
        peak = float(row.max()) if row.size else 0.0
        ax.fill_between(
            times, j, j + 0.9 * row / (peak if peak > 0 else 1.0), color=colors[j], lw=0.6, alpha=0.85
        )
    step = max(1, len(labels) // 24)  # keep the labels readable for large M
    ax.set_yticks(np.arange(0, len(labels), step) + 0.45, labels[::step])
    ax.set_ylim(-0.1, len(labels))
    ax.set_xlim(0, times[-1] if len(times) > 1 else 1)
    ax.set_xlabel("Time (s)")
    title = (
        "Activations U (summed per source, scaled to peak)"
        if grouped
        else "Activations U (each row scaled to its peak)"
    )
    ax.set_title(title, fontsize=10, loc="left")


def _objective_panel(ax, data: PlotData) -> None:
    objective = np.asarray(data.objective, dtype=float)
    iterations = np.flatnonzero(np.isfinite(objective))  # NaN: not computed (tol 0)
    objective = objective[iterations]
    style = {"color": "black", "lw": 1.2, "marker": "o" if objective.size < 3 else None}
    if objective.size and np.all(objective > 0):
        ax.semilogy(iterations, objective, **style)
    elif objective.size:
        ax.plot(iterations, objective, **style)
    ax.set_xlabel("Iteration")
    ax.set_ylabel("Divergence" if data.pans is None else "-log-likelihood")
    ax.set_title("Objective", fontsize=10, loc="left")
    ax.grid(True, which="both", alpha=0.3)


def _pan_panel(ax, data: PlotData, style: Style) -> None:
    """Where each source sits per frequency: its pan (-1 left .. +1 right) against frequency, drawn
    where it has energy (within ``db_range`` of its peak, opacity by level), and its mean as a line."""
    labels = list(dict.fromkeys(data.names))
    colors = _component_colors(len(labels))
    frequencies = np.maximum(data.frequencies, data.frequencies[1] / 2)  # 0 Hz on a log axis
    for j, (pans, weights) in enumerate(zip(data.pans, data.pan_weights, strict=True)):
        level = _to_db(weights / max(float(weights.max()), 1e-30), 1.0)
        shown = level > -style.db_range
        alpha = np.clip(1 + level / style.db_range, 0.05, 1.0)[shown]
        color = np.tile(np.asarray(colors[j]), (int(shown.sum()), 1))
        color[:, 3] = alpha
        ax.scatter(pans[shown], frequencies[shown], s=4, c=color, linewidths=0, rasterized=True)
        mean = float(np.sum(pans * weights) / max(float(weights.sum()), 1e-30))
        ax.axvline(mean, color=colors[j], lw=1.5, label=labels[j] if j < len(labels) else None)
    ax.set_xlim(-1.05, 1.05)
    ax.set_xticks([-1, 0, 1], ["L", "C", "R"])
    ax.set_xlabel("Pan")
    _frequency_axis(ax, data, style)
    ax.legend(fontsize=7, loc="upper right", framealpha=0.6)
    ax.set_title("Where each source sits", fontsize=10, loc="left")


def _component_colors(count: int):
    from matplotlib import colormaps

    cmap = colormaps["tab10" if count <= 10 else "tab20"]
    return [cmap(j % cmap.N) for j in range(count)]


def _new_figure(view: str, style: Style):
    """A figure drawn by its own Agg canvas: no pyplot, no ``matplotlib.use``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    size = style.size or DEFAULT_SIZES[view]
    fig = Figure(figsize=size, dpi=style.dpi, layout="constrained")
    FigureCanvasAgg(fig)  # attaches itself as fig.canvas
    return fig


def _title(fig, data: PlotData, style: Style) -> None:
    text = style.title if style.title is not None else data.title
    if text:
        fig.suptitle(text, fontsize=12)


def overview_figure(data: PlotData, style: Style = Style()):
    """Input spectrogram, bases, activations, model HU and the objective in one figure (and, for
    sources of the spatial model, where each sits in the stereo field)."""
    fig = _new_figure("overview", style)
    grid = fig.add_gridspec(3, 2, width_ratios=(1, 3.2), height_ratios=(1.2, 0.9, 1.2))
    ax_spec = fig.add_subplot(grid[0, 1])
    ax_bases = fig.add_subplot(grid[0, 0], sharey=ax_spec)
    ax_act = fig.add_subplot(grid[1, 1], sharex=ax_spec)
    ax_model = fig.add_subplot(grid[2, 1], sharex=ax_spec, sharey=ax_spec)
    ax_obj = fig.add_subplot(grid[2, 0])
    vmax = _peak_db(data.display)
    source = "Input spectrogram" if data.spectrogram is not None else "Model spectrogram HU (no audio given)"
    mesh = _spectrogram_panel(ax_spec, data.display, data, style, vmax, source)
    _bases_panel(ax_bases, data, style)
    _activations_panel(ax_act, data)
    _spectrogram_panel(ax_model, data.model, data, style, vmax, "Model spectrogram HU")
    ax_model.set_xlabel("Time (s)")
    _objective_panel(ax_obj, data)
    if data.pans is not None:  # sources of the spatial model: their places beside their activations
        _pan_panel(fig.add_subplot(grid[1, 0]), data, style)
    fig.colorbar(mesh, ax=[ax_spec, ax_model], label="dB", shrink=0.8, aspect=40)
    _title(fig, data, style)
    return fig


def components_figure(data: PlotData, style: Style = Style()):
    """The masked spectrogram of every output (component or named source), on the input's colour scale."""
    fig = _new_figure("components", style)
    labels = list(
        dict.fromkeys(data.names)
    )  # one panel per output (components sharing a name are one source)
    names = np.asarray(data.names)
    groups = [list(np.flatnonzero(names == label)) for label in labels]
    count = len(labels)
    columns = 1 if count <= 3 else 2
    rows = -(-count // columns)
    axes = fig.subplots(rows, columns, sharex=True, sharey=True, squeeze=False)
    vmax = _peak_db(data.display)
    mesh = None
    masks = iter_group_masks(data.bases, data.activations, groups, data.mask_power)
    for j, (ax, mask) in enumerate(zip(axes.flat, masks, strict=False)):
        mesh = _spectrogram_panel(ax, mask * data.display, data, style, vmax, labels[j])
        if j // columns == rows - 1:
            ax.set_xlabel("Time (s)")
    for ax in list(axes.flat)[count:]:
        ax.set_visible(False)
    fig.colorbar(mesh, ax=axes, label="dB", shrink=0.9)
    _title(fig, data, style)
    return fig


def spectrogram_figure(data: PlotData, style: Style = Style()):
    """The input spectrogram alone (no factorization needed)."""
    fig = _new_figure("spectrogram", style)
    ax = fig.add_subplot()
    label = "Input spectrogram" if data.spectrogram is not None else "Model spectrogram HU"
    mesh = _spectrogram_panel(ax, data.display, data, style, _peak_db(data.display), label)
    ax.set_xlabel("Time (s)")
    fig.colorbar(mesh, ax=ax, label="dB")
    _title(fig, data, style)
    return fig


def bases_figure(data: PlotData, style: Style = Style()):
    """The bases alone, one column per component."""
    fig = _new_figure("bases", style)
    ax = fig.add_subplot()
    fig.colorbar(_bases_panel(ax, data, style), ax=ax, label="dB re peak")
    _title(fig, data, style)
    return fig


def activations_figure(data: PlotData, style: Style = Style()):
    """The activations alone, one row per component."""
    fig = _new_figure("activations", style)
    _activations_panel(fig.add_subplot(), data)
    _title(fig, data, style)
    return fig


FIGURES = {
    "overview": overview_figure,
    "components": components_figure,
    "spectrogram": spectrogram_figure,
    "bases": bases_figure,
    "activations": activations_figure,
}


def draw(data: PlotData, what: str = "overview", style: Style = Style()):
    """The figure for one view (see :data:`VIEWS`)."""
    if what not in FIGURES:
        raise ParameterError(f"what={what!r} is not one of {list(VIEWS)}")
    if what != "spectrogram" and (data.bases is None or data.activations is None):
        raise ParameterError(f"[[what={what}]] needs a factorization (bases and activations)")
    return FIGURES[what](data, style)


def save_figure(fig: Any, path: str | os.PathLike, *, dpi: int = 100, overwrite: bool = False) -> Path:
    """Write ``fig`` atomically in the format of the suffix (png, pdf, svg), then close it.

    Closing only concerns a figure made with pyplot (which keeps it until closed); the figures of
    this module are not pyplot's and are freed with their last reference.
    """
    fmt = figure_format(path)

    def write(tmp: str) -> None:
        try:
            fig.savefig(tmp, format=fmt, dpi=dpi, metadata=_metadata(fmt))
        except (OSError, ValueError) as exc:
            raise OutputError(f"cannot write the figure: {exc}", path) from exc

    try:
        return atomic_write(path, write, overwrite=overwrite)
    finally:
        pyplot = sys.modules.get("matplotlib.pyplot")  # loaded by the caller, if at all: not imported here
        if pyplot is not None:
            pyplot.close(fig)


def _metadata(fmt: str) -> dict[str, Any]:
    """No creation dates: the same figure gives the same bytes."""
    if fmt == "pdf":
        return {"CreationDate": None, "ModDate": None}
    if fmt == "svg":
        return {"Date": None}
    return {}
