"""nmfsep: separate audio into its parts with Non-negative Matrix Factorization.

Public API (the CLI is a thin shell over these)::

    separate(audio, sample_rate, n_components, ...) -> Separation     # arrays or a path in, signals out
    separate_file(path, n_components, out_dir=..., ...) -> FileResult  # what `nmfsep separate` runs
    factorize(Y, n_components, beta=..., ...) -> NMFResult             # the NMF engine alone
    learn(files, n_components, name=...) -> Model      # bases of one source, for separate(sources=[...])
    evaluate(reference, estimate, permute=...) -> Scores  # mir_eval bss_eval
    plot_data(audio, ...) -> PlotData; nmfsep.plot.draw(data, what, style)  # figures (matplotlib)
    load_audio / save_audio, STFTSettings / stft / istft, soft_masks, save_model / load_model

Matrix convention: Y (K bins x N frames) ~ H (K x M bases) @ U (M x N activations).
"""

from .audio import Audio
from .audio import load as load_audio
from .audio import save as save_audio
from .errors import AudioError, ModelFileError, NmfsepError, NmfsepWarning, OutputError, ParameterError
from .figures import plot_data
from .files import FileResult, separate_file
from .masks import iter_masks, soft_masks
from .nmf import NMFResult, Progress, beta_divergence, factorize
from .options import Options
from .pipeline import Separation, learn, separate
from .scoring import Scores, evaluate
from .sources import Model, load_model, save_model
from .spectrogram import STFTSettings, istft, stft
from .version import __version__


def save_figure(figure, path, *, dpi: int = 100, overwrite: bool = False):
    """Write a figure of :mod:`nmfsep.plot` atomically (png, pdf or svg by suffix); see ``plot.save_figure``."""
    from .plot import save_figure as _save

    return _save(figure, path, dpi=dpi, overwrite=overwrite)


__all__ = [
    "Audio",
    "AudioError",
    "FileResult",
    "Model",
    "ModelFileError",
    "NMFResult",
    "NmfsepError",
    "NmfsepWarning",
    "Options",
    "OutputError",
    "ParameterError",
    "Progress",
    "STFTSettings",
    "Scores",
    "Separation",
    "__version__",
    "beta_divergence",
    "factorize",
    "evaluate",
    "istft",
    "iter_masks",
    "learn",
    "load_audio",
    "load_model",
    "plot_data",
    "save_audio",
    "save_figure",
    "save_model",
    "separate",
    "separate_file",
    "soft_masks",
    "stft",
]
