"""Audio input and output: reading any format, resampling, atomic writes, output subtypes.

Internal layout everywhere in nmfsep: ``(channels, samples)`` float32. soundfile's
``(frames, channels)`` layout is transposed here and nowhere else.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from soundfile import _ffi, _snd  # soundfile's cffi handles: the PEAK command has no public API

from .atomic import atomic_write, commit, prepare_target, temporary
from .errors import AudioError, NmfsepWarning, OutputError, ParameterError

#: Output formats: the ``--format`` value, which is also the file extension, to soundfile's name.
FORMATS = {"wav": "WAV", "flac": "FLAC", "ogg": "OGG"}

#: Output formats whose encoding changes the samples (lossy): what is written is not what was computed.
LOSSY_FORMATS = frozenset({"ogg"})

#: File extensions taken from folders (case-insensitive); files named explicitly are always tried.
AUDIO_EXTENSIONS = frozenset(
    ".wav .wave .flac .ogg .oga .opus .mp3 .aif .aiff .aifc .au .snd .caf .w64 .rf64 .m4a .wma".split()
)

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


@dataclass(frozen=True)
class AudioStream:
    """Audio that can be read from the start, piece by piece, as many times as needed.

    A file that libsndfile reads at the wanted rate is streamed from disk, so a file of any
    length is processed in bounded memory; anything else (other codecs, resampling) is decoded
    into memory first by :func:`load`.

    Attributes
    ----------
    n_channels, n_samples, sample_rate : int
    subtype : str or None
    native_rate : int or None
        The file's own rate, before any resampling.
    path : pathlib.Path or None
        The file streamed from disk (None when decoded into ``samples``).
    samples : np.ndarray [shape=(C, T), dtype=float32] or None
    """

    n_channels: int
    n_samples: int
    sample_rate: int
    subtype: str | None = None
    native_rate: int | None = None
    path: Path | None = None
    samples: np.ndarray | None = None

    @classmethod
    def from_samples(cls, samples: np.ndarray, sample_rate: int, **fields) -> AudioStream:
        return cls(samples.shape[0], samples.shape[1], int(sample_rate), samples=samples, **fields)

    def reader(self) -> Callable[[int], np.ndarray]:
        """A new pass from the start: ``read(count)`` returns the next (C, <= count) float32 samples.

        Raises
        ------
        AudioError
            (from ``read``) NaN or infinite samples, or a file that cannot be decoded.
        """
        if self.samples is not None:
            from .spectrogram import ArrayReader

            return ArrayReader(self.samples)
        path = self.path
        try:
            handle = sf.SoundFile(path)
        except (sf.LibsndfileError, RuntimeError, OSError) as exc:
            raise AudioError(f"cannot read: {exc}", path) from exc

        # 16-bit audio is read as integers and scaled here: libsndfile's own conversion to float
        # costs 27x more (3.7 vs 0.14 s for an hour of stereo), and x / 32768, which it computes
        # too, is exact in float32 (the same samples, bit for bit).
        integers = handle.subtype == "PCM_16"
        scale = np.float32(1.0 / 32768.0)

        def read(count: int) -> np.ndarray:
            if handle.closed:
                return np.zeros((self.n_channels, 0), dtype=np.float32)
            try:
                block = handle.read(count, dtype="int16" if integers else "float32", always_2d=True)
            except (sf.LibsndfileError, RuntimeError) as exc:
                raise AudioError(f"cannot decode: {exc}", path) from exc
            if block.shape[0] < count or handle.tell() >= handle.frames:
                handle.close()  # the end: do not wait for the garbage collector
            if integers:
                samples = np.empty(block.shape[::-1], dtype=np.float32)
                for channel, values in enumerate(block.T):
                    np.multiply(values, scale, out=samples[channel])
                return samples
            if not np.all(np.isfinite(block)):
                raise AudioError("audio contains NaN or infinite samples", path)
            return np.ascontiguousarray(block.T)

        return read


def open_stream(path: str | os.PathLike, *, sr: int | None = None) -> AudioStream:
    """Open an audio file for reading piece by piece (see :class:`AudioStream`).

    Raises the same errors as :func:`load` for missing, empty or unreadable files; NaN samples are
    found while reading.
    """
    path = Path(path)
    if not path.exists():
        raise AudioError("no such file", path)
    if path.is_dir():
        raise AudioError("is a directory, not an audio file", path)
    try:
        info = sf.info(path)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError, OSError):
        info = None
    if info is None or info.frames <= 0 or (sr is not None and sr != info.samplerate):
        audio = load(path, sr=sr)  # decodes into memory, with load's checks and messages
        return AudioStream.from_samples(
            audio.samples, audio.sample_rate, subtype=audio.subtype, native_rate=audio.native_rate
        )
    return AudioStream(
        n_channels=int(info.channels),
        n_samples=int(info.frames),
        sample_rate=int(info.samplerate),
        subtype=info.subtype,
        native_rate=int(info.samplerate),
        path=path,
    )


def resample(samples: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample ``(C, T)`` audio with soxr (via librosa), high quality."""
    import librosa

    if target_sr <= 0:
        raise ParameterError(f"[[sr={target_sr}]] must be a positive integer")
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
        raise ParameterError(f"[[format={format!r}]] is not one of {list(FORMATS)}")
    container = FORMATS[format]
    if requested is not None:
        subtype = requested.upper()
        if not sf.check_format(container, subtype):
            allowed = sorted(sf.available_subtypes(container))
            raise ParameterError(f"[[subtype={requested!r}]] is not available for {format}; one of {allowed}")
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


class AudioWriters:
    """Several audio files written block by block, then moved into place together.

    Use as a context manager: :meth:`write` appends samples to output ``index``; on a clean exit
    every file is renamed into place (as :func:`atomic_write` does), on an error or interrupt every
    temporary file is removed and nothing is left behind. Samples beyond full scale are clipped
    (integer and lossy subtypes) with one :class:`NmfsepWarning` per file, as :func:`save` does.

    Parameters
    ----------
    paths : list of path
    sample_rate, n_channels : int
    format : {"wav", "flac", "ogg"}
    subtype : str, optional
    overwrite : bool
    """

    def __init__(
        self, paths, sample_rate: int, n_channels: int, *, format: str = "wav", subtype=None, overwrite=False
    ):
        self.paths = [Path(p) for p in paths]
        self.sample_rate, self.n_channels = int(sample_rate), int(n_channels)
        self.format = format
        self.subtype = output_subtype(format, subtype, None)
        self.overwrite = overwrite
        self.temporaries: list[str] = []
        self.files: list[sf.SoundFile] = []
        self.peaks = [0.0] * len(self.paths)

    def __enter__(self) -> AudioWriters:
        try:
            for path in self.paths:
                prepare_target(path, self.overwrite)
            for path in self.paths:
                temporary(path, self.temporaries)
                try:
                    self.files.append(
                        _open_for_write(
                            self.temporaries[-1], self.sample_rate, self.n_channels, self.format, self.subtype
                        )
                    )
                except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as exc:
                    reason = getattr(exc, "error_string", None) or str(exc)
                    raise OutputError(f"cannot write {self.format} {self.subtype}: {reason}", path) from exc
        except BaseException:
            self._discard()
            raise
        return self

    def write(self, index: int, samples: np.ndarray) -> None:
        """Append (C, s) samples to output ``index``."""
        if samples.shape[1] == 0:
            return
        frames, peak = _encoded(samples, self.subtype, self.format)
        self.peaks[index] = max(self.peaks[index], peak)
        try:
            self.files[index].write(frames)
        except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as exc:
            raise OutputError(f"cannot write: {exc}", self.paths[index]) from exc

    def __exit__(self, kind, value, traceback) -> None:
        if kind is not None:
            self._discard()
            return
        try:
            for handle in self.files:
                handle.close()
            for tmp, path in zip(self.temporaries, self.paths, strict=True):
                _finish(tmp, self.format, path)
            for tmp, path in zip(self.temporaries, self.paths, strict=True):
                commit(tmp, path, self.overwrite)
        except BaseException:
            self._discard()
            raise
        for path, peak in zip(self.paths, self.peaks, strict=True):
            if self.subtype not in _FLOAT_SUBTYPES and peak > 1.0:
                _warn_clipped(path, peak, self.subtype)

    def _discard(self) -> None:
        for handle in self.files:
            handle.close()
        for tmp in self.temporaries:
            if os.path.exists(tmp):
                os.unlink(tmp)


# Reproducible bytes: the same samples must give the same file on every run (``--seed``), but
# libsndfile puts the wall clock into two places -- the PEAK chunk of float WAV files and the
# serial number of Ogg streams -- which the two functions below remove.

_SFC_SET_ADD_PEAK_CHUNK = 0x1050  # sndfile.h; soundfile does not define it
_SAVE_BLOCK = 1 << 16  #: frames per write in :func:`save`


def _open_for_write(path: str, sample_rate: int, channels: int, format: str, subtype: str) -> sf.SoundFile:
    """Open ``path`` for writing with soundfile, without a PEAK chunk in float WAV files.

    libsndfile's PEAK chunk (float and double WAV) records the second it was written
    (``time(NULL)``), so two otherwise identical runs differ; it only caches each channel's peak,
    which readers recompute or ignore. It must be switched off before any data is written; then
    libsndfile rewrites the header with a zero-filled ``PAD`` chunk of the same size in its place
    (the data does not move), which readers skip like any unknown chunk.
    """
    handle = sf.SoundFile(
        path, "w", samplerate=sample_rate, channels=channels, subtype=subtype, format=FORMATS[format]
    )
    if format == "wav" and subtype in _FLOAT_SUBTYPES:
        _snd.sf_command(handle._file, _SFC_SET_ADD_PEAK_CHUNK, _ffi.NULL, _snd.SF_FALSE)
    return handle


#: An Ogg page header (little-endian): "OggS", version 0, flags, granule position (8 bytes), serial
#: (4, at byte 14), page number (4), CRC (4, at byte 22), segment count; then the segment lengths.
_OGG_HEADER = 27
_BIT_REVERSED = bytes(int(f"{byte:08b}"[::-1], 2) for byte in range(256))


def _ogg_crc(page: bytes | bytearray) -> int:
    """Ogg's page checksum: CRC-32 with polynomial 0x04C11DB7, MSB first, no initial or final XOR.

    zlib's CRC-32 is the same polynomial bit-reflected (LSB first) and inverted at both ends;
    reflecting every byte in and the result out gives Ogg's at C speed instead of a Python loop.
    """
    reflected = zlib.crc32(bytes(page).translate(_BIT_REVERSED), 0xFFFFFFFF) ^ 0xFFFFFFFF
    return int(f"{reflected:032b}"[::-1], 2)


def _ogg_pages(file) -> Iterator[tuple[int, bytearray]]:
    """``(offset, page)`` for every page of the Ogg file open in ``file``, from its position on.

    Raises
    ------
    ValueError
        Not a sequence of whole Ogg pages.
    """
    offset = file.tell()
    while header := file.read(_OGG_HEADER):
        if len(header) < _OGG_HEADER or header[:5] != b"OggS\0":
            raise ValueError(f"no Ogg page at byte {offset}")
        lacing = file.read(header[-1])
        body = file.read(sum(lacing))
        if len(lacing) < header[-1] or len(body) < sum(lacing):
            raise ValueError(f"truncated Ogg page at byte {offset}")
        page = bytearray(header + lacing + body)
        yield offset, page
        offset += len(page)


def _fix_ogg_serial(path: str) -> None:
    """Replace the random serial number of a one-stream Ogg file by one derived from its content.

    libsndfile gives every Ogg stream a serial from a generator seeded with the time of day (so
    that concatenated files make valid chained streams) and offers no way to set it. A hash of the
    pages with serial and checksum zeroed is as unlikely to repeat between different files, and
    the same on every run. Every page's serial is rewritten and its CRC recomputed, in place:
    two reads of the file and 12 bytes written per page.

    Raises
    ------
    ValueError
        Not a valid single-stream Ogg file (libsndfile writes nothing else).
    """
    with open(path, "r+b") as file:
        digest = hashlib.blake2b(digest_size=4, person=b"nmfsep-ogg")
        serials = set()
        for _, page in _ogg_pages(file):
            serials.add(bytes(page[14:18]))
            page[14:18] = page[22:26] = bytes(4)
            digest.update(page)
        if len(serials) != 1:
            raise ValueError(f"{len(serials)} logical streams, expected one")
        serial = digest.digest()
        file.seek(0)
        for offset, page in _ogg_pages(file):
            page[14:18], page[22:26] = serial, bytes(4)  # the CRC covers the page with a zero CRC field
            page[22:26] = _ogg_crc(page).to_bytes(4, "little")
            file.seek(offset + 14)
            file.write(page[14:26])  # serial, page number (unchanged), CRC
            file.seek(offset + len(page))


def _finish(tmp: str, format: str, path: Path) -> None:
    """Make a closed temporary output reproducible before it is moved into place (Ogg serials)."""
    if format != "ogg":
        return
    try:
        _fix_ogg_serial(tmp)
    except (OSError, ValueError) as exc:
        raise OutputError(f"cannot finish the Ogg file: {exc}", path) from exc


def _encoded(samples: np.ndarray, subtype: str, format: str) -> tuple[np.ndarray, float]:
    """(C, s) samples as soundfile takes them for ``subtype`` in ``format``, and their peak |value|.

    Returns (s, C) frames, clipped to full scale for integer and lossy subtypes. 16-bit WAV is
    converted here as libsndfile 1.2's PCM writer does it -- ``lrint(x * 2^31) >> 16``, clipped --
    so the file is the same byte for byte, but vectorised: libsndfile's per-sample loop costs more
    than the inverse transforms of the block. Every step is exact in float32 (scaling by powers of
    two, rounding, flooring), so no wider type is needed. FLAC and OGG keep libsndfile's own
    conversions (its FLAC writer rounds differently).
    """
    if samples.size == 0:
        return samples.T, 0.0
    peak = float(max(np.max(samples), -np.min(samples)))
    if subtype in _FLOAT_SUBTYPES:
        return samples.T, peak
    if format == "wav" and subtype == "PCM_16" and samples.dtype in (np.float32, np.float64):
        scaled = np.multiply(samples, samples.dtype.type(2.0**31))
        np.rint(scaled, out=scaled)
        scaled *= samples.dtype.type(2.0**-16)
        np.floor(scaled, out=scaled)  # the arithmetic shift right by 16
        np.clip(scaled, -0x8000, 0x7FFF, out=scaled)
        frames = np.empty(samples.shape[::-1], dtype=np.int16)
        for channel, values in enumerate(scaled):
            frames[:, channel] = values
        return frames, peak
    return (np.clip(samples, -1.0, 1.0) if peak > 1.0 else samples).T, peak


def _warn_clipped(path, peak: float, subtype: str) -> None:
    warnings.warn(
        f"{Path(path).name}: peak {peak:.3f} exceeds full scale, clipped in {subtype}; "
        "use [[subtype=FLOAT]] to keep it",
        NmfsepWarning,
        stacklevel=3,
    )


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
    frames, peak = _encoded(np.atleast_2d(samples), subtype, format)
    if subtype not in _FLOAT_SUBTYPES and peak > 1.0:
        _warn_clipped(path, peak, subtype)

    def write(tmp: str) -> None:
        try:
            with _open_for_write(tmp, sample_rate, frames.shape[1], format, subtype) as handle:
                # in blocks: libvorbis copies one write onto the stack (alloca), so a single write of
                # more than about 2 million frames crashes the process (SIGSEGV)
                for start in range(0, len(frames), _SAVE_BLOCK):
                    handle.write(frames[start : start + _SAVE_BLOCK])
        except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as exc:
            reason = getattr(exc, "error_string", None) or str(exc)
            raise OutputError(f"cannot write {format} {subtype}: {reason}", path) from exc
        _finish(tmp, format, path)

    return atomic_write(path, write, overwrite=overwrite)
