"""Source models and saved factorizations: the ``.npz`` file format, loading, and the checks that
learned sources fit a run.

A model file holds bases, optional activations, names, settings and the sample rate. ``nmfsep learn``
writes *source* models (``settings["kind"] == "source"``: bases only); ``separate --save-model``
writes whole separations (bases and activations), which ``plot`` can draw.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_write
from .errors import ModelFileError, ParameterError
from .nmf.divergence import DIVERGENCES

FORMAT_NAME = "nmfsep-model"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Model:
    """A factorization as stored on disk.

    Attributes
    ----------
    bases : np.ndarray [shape=(K, M)]
    activations : np.ndarray [shape=(M, N)] or None
        None for models that only carry bases.
    names : tuple of str
        One name per component (``c1``.. or source names).
    sample_rate : int
    settings : dict
        The STFT and NMF settings used (JSON-serialisable).
    objective : np.ndarray [shape=(n_iter + 1,)]
    covariances : np.ndarray [shape=(J, K, C, C), dtype=complex128], optional
        The spatial covariances of the sources of a spatial model (see
        :class:`nmfsep.pipeline.Separation`); None otherwise.
    """

    bases: np.ndarray
    activations: np.ndarray | None
    names: tuple[str, ...]
    sample_rate: int
    settings: dict[str, Any] = field(default_factory=dict)
    objective: np.ndarray = field(default_factory=lambda: np.zeros(0))
    covariances: np.ndarray | None = None


def save_model(path: str | os.PathLike, model: Model, *, overwrite: bool = False) -> Path:
    """Write ``model`` to ``path`` atomically (see :func:`nmfsep.atomic.atomic_write`)."""
    arrays = {
        "format": np.array(FORMAT_NAME),
        "version": np.array(FORMAT_VERSION),
        "bases": model.bases,
        "names": np.array(model.names, dtype=str),
        "sample_rate": np.array(model.sample_rate),
        "settings": np.array(json.dumps(model.settings, sort_keys=True)),
        "objective": np.asarray(model.objective, dtype=np.float64),
    }
    if model.activations is not None:
        arrays["activations"] = model.activations
    if model.covariances is not None:
        arrays["covariances"] = np.asarray(model.covariances, dtype=np.complex128)

    def write(tmp: str) -> None:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)

    return atomic_write(path, write, overwrite=overwrite)


def _check_is_npz(path: Path) -> None:
    """A model is a zip archive (.npz); say what the file is instead when it is not one.

    np.load would otherwise try to unpickle an audio or text file and report "pickled objects".
    """
    try:
        with open(path, "rb") as handle:
            magic = handle.read(4)
    except OSError as exc:
        raise ModelFileError(f"cannot read model file: {exc.strerror or exc}", path) from exc
    if magic == b"PK\x03\x04":
        return
    import soundfile as sf

    try:
        sf.info(path)
    except Exception:  # noqa: BLE001 -- not audio either: libsndfile raises several types
        raise ModelFileError(
            "not a readable model file: not an .npz written by nmfsep (learn, or separate with [[save_model_to]])",
            path,
        ) from None
    raise ModelFileError(
        f"this is an audio file, not a source model: learn one from it with "
        f"`nmfsep learn {path.name} -o {path.stem}.npz`",
        path,
    )


def load_model(path: str | os.PathLike) -> Model:
    """Read and check a model file written by :func:`save_model`.

    Raises
    ------
    ModelFileError
        Missing, not an npz, truncated, another format or version, or inconsistent shapes.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError("no such model file", path)
    _check_is_npz(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            contents = {key: data[key] for key in data.files}
    except ValueError as exc:
        reason = "it holds pickled objects" if "pickle" in str(exc) else str(exc)
        raise ModelFileError(f"not a readable model file: {reason}", path) from exc
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise ModelFileError(f"not a readable model file: {exc}", path) from exc
    if not isinstance(contents, dict) or str(contents.get("format", "")) != FORMAT_NAME:
        raise ModelFileError(f"not an {FORMAT_NAME} file", path)
    version = int(contents.get("version", -1))
    if version != FORMAT_VERSION:
        raise ModelFileError(
            f"model file version {version} is not supported (expected {FORMAT_VERSION})", path
        )
    try:
        bases = np.asarray(contents["bases"])
        activations = contents.get("activations")
        names = tuple(str(name) for name in contents["names"])
        sample_rate = int(contents["sample_rate"])
        settings = json.loads(str(contents["settings"]))
        objective = np.asarray(contents.get("objective", np.zeros(0)), dtype=np.float64)
        covariances = contents.get("covariances")
    except (KeyError, ValueError, TypeError) as exc:
        raise ModelFileError(f"model file is missing or has a bad field: {exc}", path) from exc
    if bases.ndim != 2 or not np.issubdtype(bases.dtype, np.floating):
        raise ModelFileError(f"bases must be a 2-D float array, got {bases.dtype} {bases.shape}", path)
    if len(names) != bases.shape[1]:
        raise ModelFileError(f"{len(names)} names for {bases.shape[1]} bases", path)
    if activations is not None and (activations.ndim != 2 or activations.shape[0] != bases.shape[1]):
        raise ModelFileError(f"activations {activations.shape} do not fit bases {bases.shape}", path)
    if not np.all(np.isfinite(bases)) or bases.min() < 0:
        raise ModelFileError("bases must be finite and non-negative", path)
    if sample_rate <= 0:
        raise ModelFileError(f"sample_rate={sample_rate} must be positive", path)
    if covariances is not None and (
        covariances.ndim != 4
        or covariances.shape[1] != bases.shape[0]
        or covariances.shape[2] != covariances.shape[3]
        or not np.all(np.isfinite(covariances))
    ):
        raise ModelFileError(
            f"covariances {covariances.shape} are not finite (sources, {bases.shape[0]} bins, channels, "
            "channels) matrices",
            path,
        )
    return Model(bases, activations, names, sample_rate, settings, objective, covariances)


def check_source(name: str, path: str | os.PathLike | None = None) -> None:
    """A source's name is a plain file name (its output file), and its model file ends in ``.npz``.

    Raises
    ------
    ParameterError
        Naming the bad value.
    """
    if not name or "/" in name or name.startswith("."):
        raise ParameterError(f"[[name={name!r}]] must be a plain file name")
    if path is not None and Path(path).suffix.lower() != ".npz":
        raise ParameterError(f"the model file must end in .npz, not {Path(path).name!r}")


def source_name(model: Model) -> str:
    """The source name of a learned model (``nmfsep learn --name``)."""
    return str(model.settings.get("name") or (model.names[0] if model.names else "source"))


@dataclass(frozen=True)
class Sources:
    """Learned source models, loaded and checked against a run's settings (see :func:`load_sources`).

    Attributes
    ----------
    models : tuple of Model
    paths : tuple of str or None
        The file of each model (None for Model objects given directly).
    sample_rate : int or None
        The rate to analyse at: the models' (the input is resampled to it), or ``sr``, or None.
    settings : dict
        The separation settings the models share (see :func:`separation_settings`); a mask power
        or sparsity they do not share is None (the run must give it).
    """

    models: tuple[Model, ...] = ()
    paths: tuple[str | None, ...] = ()
    sample_rate: int | None = None
    settings: dict[str, Any] = field(default_factory=dict)  #: the models' :func:`separation_settings`

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(source_name(model) for model in self.models)

    @property
    def n_bases(self) -> int:
        """Bases of all the sources together (the fixed part of the factorization)."""
        return sum(model.bases.shape[1] for model in self.models)

    def identity(self) -> list[str]:
        """A digest of every source's bases: what the outputs depend on (not the file names)."""
        return [hashlib.sha256(np.ascontiguousarray(m.bases).tobytes()).hexdigest() for m in self.models]

    def settle(self, options):
        """The run's options with what it did not give taken from the models (their STFT, power,
        divergence, mask power and sparsity), then from the fallbacks (see
        :meth:`nmfsep.options.Options.settled`). Without models: the fallbacks only.

        Raises
        ------
        ModelFileError
            An option given that contradicts the models' STFT, power or divergence.
        """
        if not self.models:
            return options.settled()
        _check_given(options, self.settings, self.paths)
        return options.settled(**{name: value for name, value in self.settings.items() if value is not None})


#: No learned sources: blind separation.
NO_SOURCES = Sources()


def load_sources(sources, options) -> Sources:
    """Load learned source models (paths or :class:`Model` objects) and check them against a run.

    Parameters
    ----------
    sources : sequence of path or Model
    options : nmfsep.options.Options
        The run's settings.

    Returns
    -------
    Sources

    Raises
    ------
    ParameterError
        One source and no free components (its mask would be 1 everywhere: the output the input),
        or ``sr`` other than the models' rate.
    ModelFileError
        A damaged file, an audio file, a separation saved with ``save_model_to`` instead of a
        source model, models learned with different STFT, power or divergence settings (or mask
        power or sparsity, when the run does not give them), an option given that contradicts the
        models' STFT, power or divergence, two sources of the same name, or models learned at
        different rates; naming the file.
    """
    models, paths = [], []
    for source in sources or ():
        if isinstance(source, Model):
            models.append(source)
            paths.append(None)
        else:
            models.append(load_model(source))
            paths.append(os.fspath(source))
    settings = _check_fit(models, paths, options)
    rates = {model.sample_rate for model in models}
    if len(rates) > 1:
        raise ModelFileError(f"the source models were learned at different sample rates {sorted(rates)}")
    rate = options.sr
    if rates:
        (rate,) = rates
        if options.sr is not None and options.sr != rate:
            raise ParameterError(f"[[sr={options.sr}]] differs from the models' sample rate {rate}")
    return Sources(tuple(models), tuple(paths), rate, settings)


#: The settings of a source model that a run must share: its bases model this spectrogram only.
MATCHED = ("n_fft", "hop_length", "window", "power", "beta")
#: The settings a source model proposes for its separation (a run may give others), and what a model
#: file written before models carried them stands for (the separation's defaults of that time).
PROPOSED = {"mask_power": 1.0, "sparsity": 0.0}


def separation_settings(model: Model) -> dict[str, Any]:
    """What a source model's separation uses: its STFT (``n_fft``, ``hop_length``, ``window``),
    spectrogram ``power`` and divergence (``beta``) as learned, and the ``mask_power`` and
    ``sparsity`` recorded by ``learn`` (a model file without them: 1 and 0).

    Raises
    ------
    ModelFileError
        A model without STFT, power or divergence settings.
    """
    stft = model.settings.get("stft")
    nmf = model.settings.get("nmf")
    separation = model.settings.get("separation") or {}
    try:
        values = {
            "n_fft": int(stft["n_fft"]),
            "hop_length": int(stft["hop_length"]),
            "window": str(stft.get("window", "hann")),
            "power": float(model.settings["power"]),
            "beta": float(nmf["beta"]),
        }
        values |= {name: float(separation.get(name, old)) for name, old in PROPOSED.items()}
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(
            f"source model has no usable STFT, power or divergence settings: {exc}"
        ) from None
    return values


def _spelled(name: str, value: Any) -> str:
    """``[[name=value]]`` for a message; a beta of a named divergence as ``[[divergence=kl]]``."""
    if name == "beta":
        for divergence, beta in DIVERGENCES.items():
            if beta == value:
                return f"[[divergence={divergence}]]"
    return f"[[{name}={value:g}]]" if isinstance(value, float) else f"[[{name}={value}]]"


def _given(options) -> dict[str, Any]:
    """The settings the run chose (None where it left them to the models or the fallbacks)."""
    given = {name: getattr(options, name) for name in ("n_fft", "hop_length", "window", "power")}
    given["beta"] = options.resolved_beta if options.divergence_given else None
    return given | {name: getattr(options, name) for name in PROPOSED}


def _check_given(options, settings: dict[str, Any], paths: tuple[str | None, ...]) -> None:
    """Options given that contradict the models' STFT, power or divergence are an error naming both."""
    for name, value in _given(options).items():
        if name in MATCHED and value is not None and value != settings[name]:
            models = "the source model was" if len(paths) == 1 else "the source models were"
            raise ModelFileError(
                f"{models} learned with {_spelled(name, settings[name])}, this run asks for "
                f"{_spelled(name, value)}: leave it out to use the model's, or learn again with it",
                paths[0] if len(paths) == 1 else None,
            )


def _describe(model: Model, where: str | None) -> str:
    return Path(where).name if where is not None else f"the model of {source_name(model)!r}"


def _check_fit(models: list[Model], paths: list[str | None], options) -> dict[str, Any]:
    """Source models are source models with distinct names, learned with the same STFT, power and
    divergence (and mask power and sparsity, unless the run gives them), and the run gives none
    that contradicts theirs; return their common separation settings (see :class:`Sources`)."""
    settings: dict[str, Any] = {}
    first: dict[str, tuple[Model, str | None]] = {}
    given = _given(options)
    differ: set[str] = set()
    seen: set[str] = set()
    for model, where in zip(models, paths, strict=True):
        if model.settings.get("kind") != "source":
            raise ModelFileError(
                "this is a separation saved with [[save_model_to]], not a source model: "
                "learn one from clean examples with `nmfsep learn CLIP.wav -o NAME.npz`",
                where,
            )
        try:
            values = separation_settings(model)
        except ModelFileError as exc:
            exc.path = where
            raise
        for name, value in values.items():
            if name not in settings:
                settings[name], first[name] = value, (model, where)
            elif value != settings[name] and name not in MATCHED and given[name] is not None:
                differ.add(name)  # the run's own value settles it
            elif value != settings[name]:
                other = _describe(*first[name])
                hint = (
                    "learn them again with the same settings"
                    if name in MATCHED
                    else f"give [[{name}]] to choose, or learn them again with the same"
                )
                raise ModelFileError(
                    f"the source models disagree: {other} has {_spelled(name, settings[name])}, "
                    f"{_describe(model, where)} {_spelled(name, value)}: {hint}"
                )
        name = source_name(model)
        if options.free and name == options.rest_name:
            raise ModelFileError(f"[[rest_name={name!r}]] is also a source's name: choose another", where)
        if name in seen:
            raise ModelFileError(f"two sources are named {name!r}: learn them with distinct names", where)
        seen.add(name)
    if models:
        _check_given(options, settings, tuple(paths))
    settings.update(dict.fromkeys(differ))
    if len(models) == 1 and not options.free:
        raise ParameterError(
            "one source model and no free components would give one output identical to the input: "
            "add free components for the rest of the mix ([[free=N]]) or a model of each other source"
        )
    return settings
