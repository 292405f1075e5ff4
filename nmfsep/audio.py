"""Audio input and output: reading any format, resampling, atomic writes, output subtypes.

Internal layout everywhere in nmfsep: ``(channels, samples)`` float32. soundfile's
``(frames, channels)`` layout is transposed here and nowhere else.
"""

from __future__ import annotations

import glob
import io
import os
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from .errors import AudioError, NmfsepWarning, OutputError, ParameterError
from .interrupts import held

#: Output formats: the ``--format`` value, which is also the file extension, to soundfile's name.
FORMATS = {"wav": "WAV", "flac": "FLAC", "ogg": "OGG"}

_FLOAT_SUBTYPES = {"FLOAT", "DOUBLE"}


@dataclass(frozen=True)
class Audio:
    """Decoded audio.

    Attributes
    ----------
    samples : np.ndarray [shape=(C, T), dtype=float32]
        One row per channel, full scale is [-1, 1].
    sample_rate : int
    subtype : str or None
        The file's soundfile subtype (``"PCM_16"``, ``"FLOAT"``, ...), None when not known.
    """

    samples: np.ndarray
    sample_rate: int
    subtype: str | None = None
    native_rate: int | None = None  #: the file's own rate, before any resampling

    @property
    def n_channels(self) -> int:
        return self.samples.shape[0]

    @property
    def duration(self) -> float:
        return self.samples.shape[1] / self.sample_rate


def load(path: str | os.PathLike, *, sr: int | None = None) -> Audio:
    """Read an audio file, keeping its channels and (unless ``sr`` is given) its sample rate.

    Everything libsndfile reads (WAV, FLAC, OGG/Vorbis, Opus, AIFF, MP3, ...; 8/16/24/32-bit
    integer and float) is read by soundfile; anything else goes through librosa/audioread.

    Parameters
    ----------
    path : str or os.PathLike
    sr : int > 0, optional
        Resample to this rate (soxr, high quality).

    Returns
    -------
    Audio

    Raises
    ------
    AudioError
        Missing file, a directory, not audio, no samples, or NaN/inf samples.
    """
    path = Path(path)
    if not path.exists():
        raise AudioError("no such file", path)
    if path.is_dir():
        raise AudioError("is a directory, not an audio file", path)
    subtype = None
    try:
        data, rate = sf.read(path, dtype="float32", always_2d=True)
        samples = np.ascontiguousarray(data.T)
        subtype = sf.info(path).subtype
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as sf_error:
        samples, rate = _load_fallback(path, sf_error)
    except OSError as exc:
        raise AudioError(f"cannot read: {exc.strerror or exc}", path) from exc
    if samples.shape[1] == 0:
        raise AudioError("audio is empty (0 samples)", path)
    if not np.all(np.isfinite(samples)):
        raise AudioError("audio contains NaN or infinite samples", path)
    native = int(rate)
    if sr is not None and sr != rate:
        samples = resample(samples, rate, sr)
        rate = sr
    return Audio(samples=samples, sample_rate=int(rate), subtype=subtype, native_rate=native)


def _load_fallback(path: Path, sf_error: Exception) -> tuple[np.ndarray, int]:
    """Decode with librosa (audioread backends) what libsndfile cannot read."""
    if path.stat().st_size == 0:
        raise AudioError("file is empty (0 bytes)", path)
    import librosa

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # librosa warns before falling back to audioread
            samples, rate = librosa.load(path, sr=None, mono=False, dtype=np.float32)
    except Exception as exc:  # audioread raises many unrelated types for non-audio input
        raise AudioError("not a readable audio file", path) from exc
    return np.atleast_2d(samples).astype(np.float32, copy=False), int(rate)


def resample(samples: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample ``(C, T)`` audio with soxr (via librosa), high quality."""
    import librosa

    if target_sr <= 0:
        raise ParameterError(f"sr={target_sr} must be a positive integer")
    out = librosa.resample(samples, orig_sr=orig_sr, target_sr=target_sr, res_type="soxr_hq", axis=-1)
    return np.ascontiguousarray(out, dtype=np.float32)


def output_subtype(format: str, requested: str | None, input_subtype: str | None) -> str:
    """The subtype to write: the requested one, else the input's where the format allows it.

    Float input written to a format without float samples (FLAC) gets PCM_24; otherwise the
    format's default (PCM_16 for WAV and FLAC, VORBIS for OGG).

    Raises
    ------
    ParameterError
        For an unknown format or a subtype the format cannot hold.
    """
    if format not in FORMATS:
        raise ParameterError(f"format={format!r} is not one of {list(FORMATS)}")
    container = FORMATS[format]
    if requested is not None:
        subtype = requested.upper()
        if not sf.check_format(container, subtype):
            allowed = sorted(sf.available_subtypes(container))
            raise ParameterError(f"subtype={requested!r} is not available for {format}; one of {allowed}")
        return subtype
    candidates = [input_subtype]
    if input_subtype in _FLOAT_SUBTYPES or input_subtype == "PCM_32":
        candidates.append("PCM_24")
    for subtype in candidates:
        if subtype and sf.check_format(container, subtype):
            return subtype
    return sf.default_subtype(container)


def check_writable(format: str, subtype: str, channels: int, sample_rate: int) -> None:
    """Check that libsndfile can write this format, subtype, channel count and rate.

    Some limits only show when a file is opened (FLAC holds at most 8 channels, Opus only a few
    sample rates, GSM610 only mono): a tiny trial write in memory finds them before any work.

    Raises
    ------
    OutputError
        With libsndfile's reason.
    """
    try:
        sf.write(
            io.BytesIO(),
            np.zeros((16, channels), dtype=np.float32),
            sample_rate,
            format=FORMATS[format],
            subtype=subtype,
        )
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as exc:
        reason = getattr(exc, "error_string", None) or str(exc) or type(exc).__name__
        raise OutputError(
            f"cannot write {format} {subtype} with {channels} channel(s) at {sample_rate} Hz: {reason}"
        ) from None


_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write(path: str | os.PathLike, write: Callable[[str], None], *, overwrite: bool = False) -> Path:
    """Create ``path`` through a temporary file in the same folder, then rename it into place.

    A reader never sees a partial file and an interrupted run leaves none behind. Without
    ``overwrite`` an existing file is never replaced (the final step is a hard link, which fails if
    the name has appeared meanwhile).

    Parameters
    ----------
    path : str or os.PathLike
        Final name. Missing parent folders are created.
    write : callable
        ``write(temporary_path)`` writes the whole content.
    overwrite : bool

    Raises
    ------
    OutputError
        The file exists (and not ``overwrite``) or the folder cannot be written.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputError("output path is a directory", path)
    if path.exists() and not overwrite:
        raise OutputError("output exists; use --force to overwrite", path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # temporary files of this output left by a killed run (SIGKILL cannot clean up)
        for stale in path.parent.glob(f".{glob.escape(path.name)}.*.part"):
            stale.unlink(missing_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot write to folder: {exc.strerror or exc}", path.parent) from exc
    tmp = None
    try:
        with held():  # a SIGINT/SIGTERM inside mkstemp is raised once the name is known
            try:
                fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
            except OSError as exc:
                raise OutputError(f"cannot write to folder: {exc.strerror or exc}", path.parent) from exc
        os.close(fd)
        write(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the usual permissions
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise OutputError("output exists; use --force to overwrite", path) from None
            finally:
                os.unlink(tmp)
    except BaseException:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def save(
    path: str | os.PathLike,
    samples: np.ndarray,
    sample_rate: int,
    *,
    format: str = "wav",
    subtype: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``(C, T)`` or ``(T,)`` audio atomically.

    Integer and lossy subtypes cannot hold samples beyond full scale: such samples are clipped to
    [-1, 1] and an :class:`NmfsepWarning` says so (never silently).

    Parameters
    ----------
    path : str or os.PathLike
    samples : np.ndarray [shape=(C, T) or (T,)]
    sample_rate : int
    format : {"wav", "flac", "ogg"}
    subtype : str, optional
        soundfile subtype; the format's default when None.
    overwrite : bool

    Returns
    -------
    path : pathlib.Path
    """
    subtype = output_subtype(format, subtype, None)
    samples = np.atleast_2d(samples)
    peak = float(np.max(np.abs(samples))) if samples.size else 0.0
    if subtype not in _FLOAT_SUBTYPES and peak > 1.0:
        warnings.warn(
            f"{Path(path).name}: peak {peak:.3f} exceeds full scale, clipped in {subtype}; "
            "use --subtype FLOAT to keep it",
            NmfsepWarning,
            stacklevel=2,
        )
        samples = np.clip(samples, -1.0, 1.0)
    frames = samples.T  # soundfile wants (frames, channels)

    def write(tmp: str) -> None:
        try:
            sf.write(tmp, frames, sample_rate, subtype=subtype, format=FORMATS[format])
        except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as exc:
            reason = getattr(exc, "error_string", None) or str(exc)
            raise OutputError(f"cannot write {format} {subtype}: {reason}", path) from exc

    return atomic_write(path, write, overwrite=overwrite)
