"""What the figures show, from audio (factorized here), audio plus a saved model, or a model alone.

:func:`plot_data` builds a :class:`nmfsep.plot.PlotData` (spectrogram, H, U, names, objective);
:mod:`nmfsep.plot` draws it. Nothing here imports matplotlib.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from . import audio as audio_io
from .blockwise import spectrogram_frames
from .errors import ModelFileError, ParameterError
from .nmf import Progress
from .options import DEFAULTS, FALLBACKS, Options
from .pipeline import Separation, analyse, load_input
from .sources import Model, load_model
from .spectrogram import STFTSettings


def _display_magnitude(stream: audio_io.AudioStream, stft_settings: STFTSettings) -> np.ndarray:
    """Sum over channels of |X_c| [shape=(K, N)]: what the figures show."""
    return spectrogram_frames(stream, stft_settings)[0].T


def _plot_data_from(separation: Separation, magnitude: np.ndarray | None, title: str):
    from .plot import PlotData  # matplotlib is imported by drawing, not by this import

    stft_settings = separation.settings["stft"]
    pans = pan_weights = None
    if separation.covariances is not None and separation.covariances.shape[-1] == 2:
        R = separation.covariances
        power = R[:, :, 0, 0].real + R[:, :, 1, 1].real
        pans = (R[:, :, 1, 1].real - R[:, :, 0, 0].real) / np.maximum(power, np.finfo(float).tiny)
        totals = separation.activations.sum(axis=1)
        pan_weights = np.stack(
            [separation.bases[:, list(group)] @ totals[list(group)] for group in separation.component_groups]
        )
    return PlotData(
        sample_rate=separation.sample_rate,
        n_fft=stft_settings["n_fft"],
        hop_length=stft_settings["hop_length"],
        spectrogram=magnitude,
        bases=separation.bases,
        activations=separation.activations,
        names=separation.component_names,
        objective=separation.objective,
        mask_power=separation.settings.get("mask_power", FALLBACKS["mask_power"]),
        title=title,
        pans=pans,
        pan_weights=pan_weights,
        model_power=2.0 if separation.covariances is not None else 1.0,
    )


def needs_factorization(audio, model, what: str) -> bool:
    """Whether drawing ``what`` of ``audio`` (a path or array; a ``.npz`` path is a saved model)
    means factorizing it: not for the spectrogram alone, a saved model, or audio with its model.

    Raises
    ------
    ParameterError
        A saved model given both as the input and as ``model``.
    """
    is_model = isinstance(audio, (str, os.PathLike)) and Path(audio).suffix.lower() == ".npz"
    if model is not None and is_model:
        raise ParameterError("[[model]] goes with audio; to draw a saved model alone, give it as the input")
    return what != "spectrogram" and model is None and not is_model


def overview_data(separation: Separation, stream: audio_io.AudioStream, title: str):
    """What the overview figure of a separation shows: the stream's spectrogram and the model."""
    return _plot_data_from(
        separation, _display_magnitude(stream, STFTSettings(**separation.settings["stft"])), title
    )


def plot_data(
    audio: np.ndarray | str | os.PathLike,
    sample_rate: int | None = None,
    n_components: int = DEFAULTS["n_components"],
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
    if isinstance(audio, (str, os.PathLike)) and Path(audio).suffix.lower() == ".npz":
        saved = load_model(audio)
        separation = _separation_from_model(saved, audio)
        return _plot_data_from(separation, None, Path(audio).name if title is None else title)
    settings = Options.from_keywords(n_components=n_components, **options)
    if title is None:
        title = Path(audio).name if isinstance(audio, (str, os.PathLike)) else ""
    if model is not None:
        where = None if isinstance(model, Model) else model
        saved = model if isinstance(model, Model) else load_model(model)
        separation = _separation_from_model(saved, where)
        signal, rate = load_input(audio, sample_rate, settings.sr or saved.sample_rate)
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
    signal, rate = load_input(audio, sample_rate, settings.sr)
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
    separation = analyse(stream, settings, callback=callback)
    return overview_data(separation, stream, title)  # with the STFT the separation used


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
    names = list(dict.fromkeys(saved.names))  # outputs, in order; components of one share its name
    groups = tuple(tuple(j for j, name in enumerate(saved.names) if name == output) for output in names)
    covariances = saved.covariances
    if covariances is not None and covariances.shape[0] != len(names):
        raise ModelFileError(f"{covariances.shape[0]} spatial covariances for {len(names)} sources", where)
    if covariances is not None and "spatial" not in saved.settings:
        raise ModelFileError("model file has spatial covariances but no spatial settings", where)
    return Separation(
        components=np.zeros((0,), dtype=np.float32),
        names=tuple(names),
        sample_rate=saved.sample_rate,
        bases=saved.bases,
        activations=saved.activations,
        objective=saved.objective,
        n_iter=max(len(saved.objective) - 1, 0),
        converged=False,
        settings=saved.settings,
        groups=groups,
        covariances=covariances,
    )
