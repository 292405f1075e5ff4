"""Short-time Fourier transform settings and round-trip transforms (librosa underneath)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from .errors import AudioError, ParameterError

WINDOWS = ("hann", "hamming", "blackman")


@dataclass(frozen=True)
class STFTSettings:
    """Everything that defines the time-frequency grid.

    Attributes
    ----------
    n_fft : int > 1
        Frame length in samples; K = n_fft // 2 + 1 frequency bins.
    hop_length : int > 0, optional
        Frame step in samples, <= n_fft. Defaults to ``n_fft // 4``.
    window : {"hann", "hamming", "blackman"}
    center : bool
        Pad the signal by n_fft // 2 at both ends so frame n is centred on sample n * hop_length.

    Raises
    ------
    ParameterError
        For a bad value, or a window/hop pair that cannot be inverted (COLA/NOLA fails).
    """

    n_fft: int = 2048
    hop_length: int | None = None
    window: str = "hann"
    center: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.n_fft, bool) or int(self.n_fft) != self.n_fft or self.n_fft < 2:
            raise ParameterError(f"[[n_fft={self.n_fft!r}]] must be an integer >= 2")
        if self.hop_length is None:
            object.__setattr__(self, "hop_length", max(1, int(self.n_fft) // 4))
        hop = self.hop_length
        if isinstance(hop, bool) or int(hop) != hop or hop < 1:
            raise ParameterError(f"[[hop_length={hop!r}]] must be a positive integer")
        if hop > self.n_fft:
            raise ParameterError(f"[[hop_length={hop}]] must not exceed [[n_fft={self.n_fft}]]")
        if self.window not in WINDOWS:
            raise ParameterError(f"[[window={self.window!r}]] is not one of {list(WINDOWS)}")
        object.__setattr__(self, "n_fft", int(self.n_fft))
        object.__setattr__(self, "hop_length", int(hop))
        if not _nola(periodic_window(self.window, self.n_fft), self.hop_length):
            raise ParameterError(
                f"[[hop_length={self.hop_length}]] is too large for a {self.window} window of "
                f"[[n_fft={self.n_fft}]]: the STFT could not be inverted"
            )

    @property
    def n_bins(self) -> int:
        """K, the number of frequency bins."""
        return self.n_fft // 2 + 1

    def frequencies(self, sample_rate: float) -> np.ndarray:
        """Centre frequency of every bin in Hz [shape=(K,)]."""
        return np.arange(self.n_bins) * (sample_rate / self.n_fft)

    def times(self, n_frames: int, sample_rate: float) -> np.ndarray:
        """Centre time of every frame in seconds [shape=(N,)] (for ``center=True``)."""
        return np.arange(n_frames) * (self.hop_length / sample_rate)

    def as_dict(self) -> dict:
        return {
            "n_fft": self.n_fft,
            "hop_length": self.hop_length,
            "window": self.window,
            "center": self.center,
        }


#: Frames transformed per block: bounds the temporary frame buffer to a few MB.
_BLOCK_FRAMES = 1024

#: Threads for the FFTs: every core (each frame's transform is computed alone, so the result does
#: not depend on the thread count).
_WORKERS = -1


#: Cosine-sum coefficients of the windows, exactly as scipy.signal.windows derives them.
_COSINE_SUMS = {"hann": (0.5, 1.0 - 0.5), "hamming": (0.54, 1.0 - 0.54), "blackman": (0.42, 0.50, 0.08)}


def periodic_window(name: str, length: int) -> np.ndarray:
    """The periodic ("fftbins") window, computed as scipy.signal.get_window does, value for value.

    Importing scipy.signal costs over a second, more than separating a short file; this is the
    same arithmetic (a symmetric cosine sum of length + 1, truncated).
    """
    angles = np.linspace(-np.pi, np.pi, length + 1)
    window = np.zeros(length + 1)
    for k, coefficient in enumerate(_COSINE_SUMS[name]):
        window += coefficient * np.cos(k * angles)
    return window[:-1]


def _nola(window: np.ndarray, hop: int, tol: float = 1e-10) -> bool:
    """The nonzero overlap-add constraint (scipy.signal.check_NOLA): the STFT can be inverted."""
    n_fft = window.shape[0]
    sums = np.sum([window[i * hop : (i + 1) * hop] ** 2 for i in range(n_fft // hop)], axis=0)
    if n_fft % hop:
        sums[: n_fft % hop] += window[-(n_fft % hop) :] ** 2
    return bool(np.min(sums) > tol)


def stft_window(settings: STFTSettings, dtype: type | np.dtype = np.float32) -> np.ndarray:
    """The analysis and synthesis window of ``settings`` [shape=(n_fft,)], as ``dtype``.

    A new array each call: :func:`periodic_window` of ``settings.window`` and ``settings.n_fft``.
    """
    return periodic_window(settings.window, settings.n_fft).astype(dtype)


def _padding(n_samples: int, settings: STFTSettings) -> tuple[int, int]:
    """Zeros added before and after the signal.

    With ``center`` the signal is padded by n_fft // 2 on both sides, as in librosa. When the hop is
    so large that librosa's last frame would stop before the end of the signal (possible for
    hop > n_fft // 2), the right side gets just enough extra zeros for one more frame, so that the
    last samples can be reconstructed.
    """
    n_fft, hop = settings.n_fft, settings.hop_length
    left = n_fft // 2 if settings.center else 0
    count = 1 + (n_samples + 2 * left - n_fft) // hop
    uncovered = left + n_samples - ((count - 1) * hop + n_fft)
    extra_frames = -(-uncovered // hop) if uncovered > 0 else 0
    return left, left + extra_frames * hop


def n_frames(n_samples: int, settings: STFTSettings) -> int:
    """Number of STFT frames N for a signal of ``n_samples`` samples."""
    left, right = _padding(n_samples, settings)
    return 1 + (n_samples + left + right - settings.n_fft) // settings.hop_length


def frame_blocks(
    read: Callable[[int], np.ndarray],
    n_channels: int,
    n_samples: int,
    settings: STFTSettings,
    block_frames: int = _BLOCK_FRAMES,
    dtype: type = np.float32,
) -> Iterator[tuple[int, np.ndarray]]:
    """The STFT of a signal read piece by piece, block of frames after block of frames.

    Only the samples of the current block are held (plus one frame of overlap), so a signal of
    any length is transformed in bounded memory; :func:`stft` is this with the whole signal.

    Parameters
    ----------
    read : callable
        ``read(count)`` returns the next ``count`` samples as a (C, count) array (fewer at the end
        of the signal; missing samples are taken as zeros).
    n_channels, n_samples : int
        C and the signal's length T.
    settings : STFTSettings
    block_frames : int
        Frames per block.
    dtype : float32 or float64

    Yields
    ------
    first : int
        Index of the block's first frame.
    spectra : np.ndarray [shape=(C, b, K), dtype=complex]
        Frame-major: ``spectra[c, i]`` is frame ``first + i`` of channel c.

    Raises
    ------
    AudioError
        When the signal is shorter than one frame (T < n_fft).
    """
    import scipy.fft

    if n_samples < settings.n_fft:
        raise AudioError(
            f"audio is shorter than one STFT frame ({n_samples} < [[n_fft={settings.n_fft}]] samples)"
        )
    n_fft, hop = settings.n_fft, settings.hop_length
    left, _ = _padding(n_samples, settings)
    count = n_frames(n_samples, settings)
    window = stft_window(settings, dtype)
    buffer = np.zeros((n_channels, left), dtype=dtype)  # padded samples from position `origin` on
    origin, unread = 0, n_samples
    for first in range(0, count, block_frames):
        size = min(block_frames, count - first)
        end = (first + size - 1) * hop + n_fft
        missing = end - origin - buffer.shape[1]
        if missing > 0:
            take = min(missing, unread)
            unread -= take
            # the signal's next samples, then the right padding
            pieces = [buffer, read_exactly(read, n_channels, take, dtype)]
            pieces.append(np.zeros((n_channels, missing - take), dtype=dtype))
            buffer = np.concatenate(pieces, axis=1)
        local = buffer[:, first * hop - origin : end - origin]
        frames = np.lib.stride_tricks.sliding_window_view(local, n_fft, axis=-1)[:, ::hop]
        yield first, scipy.fft.rfft(frames * window, axis=-1, workers=_WORKERS)
        drop = (first + size) * hop - origin
        buffer = buffer[:, drop:]
        origin += drop


def stft(signal: np.ndarray, settings: STFTSettings) -> np.ndarray:
    """Complex STFT of every channel, identical to ``librosa.stft`` with the same settings.

    Frames are cut with a strided view and transformed in blocks with ``scipy.fft.rfft``, which is
    several times faster here than the numpy FFT librosa uses by default.

    Parameters
    ----------
    signal : np.ndarray [shape=(C, T) or (T,), dtype=float]
    settings : STFTSettings

    Returns
    -------
    X : np.ndarray [shape=(C, K, N) or (K, N), dtype=complex64 (complex128 for float64 input)]

    Raises
    ------
    AudioError
        When the signal is shorter than one frame (T < n_fft).
    """
    signal = np.asarray(signal)
    dtype = np.float64 if signal.dtype == np.float64 else np.float32
    channels = np.atleast_2d(signal).astype(dtype, copy=False)
    n_channels, n_samples = channels.shape
    X = np.empty(
        (n_channels, settings.n_bins, n_frames(n_samples, settings)),
        dtype=np.result_type(dtype, np.complex64),
    )
    for first, spectra in frame_blocks(ArrayReader(channels), n_channels, n_samples, settings, dtype=dtype):
        X[:, :, first : first + spectra.shape[1]] = spectra.transpose(0, 2, 1)
    return X if signal.ndim > 1 else X[0]


def read_exactly(
    read: Callable[[int], np.ndarray], n_channels: int, count: int, dtype: type = np.float32
) -> np.ndarray:
    """The next ``count`` samples [shape=(C, count)] from ``read``, however it splits them; zeros
    for any that a source ending early does not deliver. A new array (never a view of the source)."""
    pieces, missing = [], count
    while missing > 0:
        piece = np.asarray(read(missing), dtype=dtype)
        if piece.shape[1] == 0:
            break
        pieces.append(piece)
        missing -= piece.shape[1]
    pieces.append(np.zeros((n_channels, missing), dtype=dtype))
    return np.concatenate(pieces, axis=1)


class ArrayReader:
    """``read(count)`` over a (C, T) array, for :func:`frame_blocks`."""

    def __init__(self, samples: np.ndarray) -> None:
        self.samples = samples
        self.position = 0

    def __call__(self, count: int) -> np.ndarray:
        piece = self.samples[:, self.position : self.position + count]
        self.position += piece.shape[1]
        return piece


class OverlapAdd:
    """Inverse STFT block by block (weighted overlap-add), emitting samples as they are complete.

    Push consecutive blocks of frames with :meth:`push`, then call :meth:`finish`; the pieces
    returned, concatenated, are the inverse of :func:`stft` (exactly ``length`` samples). Memory
    holds one block of frames whatever the length: the overlap-add buffer is allocated once and
    reused, the samples still awaiting later frames moved to its front after each block.

    Parameters
    ----------
    n_channels : int
    length : int
        Number of samples of the original signal.
    settings : STFTSettings
        The settings of the forward transform.
    dtype : float32 or float64
    workers : int
        Threads for the inverse FFTs (-1: every core; 1 when the caller runs several in parallel).
    """

    def __init__(
        self,
        n_channels: int,
        length: int,
        settings: STFTSettings,
        dtype: type = np.float32,
        workers: int = _WORKERS,
    ) -> None:
        # imported here, in the thread that builds the object: push() runs in worker threads, and
        # Python's imports must not run concurrently with another thread's
        import scipy.fft

        self._irfft = scipy.fft.irfft
        self.settings = settings
        self.workers = workers
        self.length = length
        self.dtype = np.dtype(dtype)
        self.window = stft_window(settings, dtype)
        self.squared_window = self.window**2
        self.offset = settings.n_fft // 2 if settings.center else 0  # padded position of sample 0
        self.n_channels = n_channels
        # samples at padded positions origin .. origin + used; the buffer grows to the largest block
        self.signal = np.zeros((n_channels, 0), dtype=dtype)
        self.envelope = np.zeros(0, dtype=dtype)
        self.origin = 0
        self.used = 0
        self.next_frame = 0
        self.emitted = 0

    def push(self, spectra: np.ndarray) -> np.ndarray:
        """Add a block of frames [shape=(C, b, K)]; return the samples now complete [shape=(C, s)]."""
        n_fft, hop = self.settings.n_fft, self.settings.hop_length
        count = spectra.shape[1]
        frames = self._irfft(spectra, n=n_fft, axis=-1, workers=self.workers)
        if frames.dtype != self.dtype:
            frames = frames.astype(self.dtype)
        frames *= self.window  # (C, b, n_fft), in place
        first = self.next_frame - self.origin // hop  # origin is a multiple of hop
        # every frame's span, rounded up to whole hops so the strided adds stay in bounds
        needed = (first + count + -(-n_fft // hop)) * hop
        self._reserve(needed)
        for start in range(0, n_fft, hop):
            # piece [start, start + hop) of every frame lands on disjoint samples: one strided add
            width = min(hop, n_fft - start)
            begin = first * hop + start
            target = self.signal[:, begin : begin + count * hop].reshape(self.n_channels, count, hop)
            target[:, :, :width] += frames[:, :, start : start + width]
            weights = self.envelope[begin : begin + count * hop].reshape(count, hop)
            weights[:, :width] += self.squared_window[start : start + width]
        self.next_frame += count
        complete = self.next_frame * hop
        piece = self._emit(complete)
        # positions below `complete` are emitted (or padding): keep only what later frames add to
        self._drop(complete - self.origin)
        return piece

    def finish(self) -> np.ndarray:
        """The remaining samples, zero-padded to ``length`` if the frames stop short."""
        out = self._emit(self.origin + self.used)
        missing = self.length - self.emitted
        if missing > 0:  # frames do not reach the end: zero-pad as librosa does
            out = np.concatenate([out, np.zeros((out.shape[0], missing), self.dtype)], axis=1)
            self.emitted = self.length
        return out

    def _reserve(self, needed: int) -> None:
        """Make positions origin .. origin + needed addressable, the new ones zero."""
        if needed > self.signal.shape[1]:
            signal = np.zeros((self.n_channels, needed), self.dtype)
            envelope = np.zeros(needed, self.dtype)
            signal[:, : self.used] = self.signal[:, : self.used]
            envelope[: self.used] = self.envelope[: self.used]
            self.signal, self.envelope = signal, envelope
        elif needed > self.used:
            self.signal[:, self.used : needed] = 0
            self.envelope[self.used : needed] = 0
        self.used = max(self.used, needed)

    def _drop(self, count: int) -> None:
        """Forget the first ``count`` positions, moving the rest to the front of the buffer."""
        rest = self.used - count
        if rest > 0:
            self.signal[:, :rest] = self.signal[:, count : self.used].copy()
            self.envelope[:rest] = self.envelope[count : self.used].copy()
        self.used = max(rest, 0)
        self.origin += count

    def _emit(self, complete: int) -> np.ndarray:
        """Samples at padded positions below ``complete`` (no later frame reaches them)."""
        start = self.offset + self.emitted
        stop = min(complete, self.offset + self.length)
        if stop > start:
            envelope = self.envelope[start - self.origin : stop - self.origin]
            # divide where the window overlap is not negligible (leave the rest as it is)
            divisor = np.where(envelope > np.finfo(self.dtype).tiny, envelope, self.dtype.type(1))
            piece = self.signal[:, start - self.origin : stop - self.origin] / divisor
            self.emitted += stop - start
        else:
            piece = np.zeros((self.signal.shape[0], 0), self.dtype)
        return piece


def istft(X: np.ndarray, settings: STFTSettings, length: int) -> np.ndarray:
    """Inverse of :func:`stft` (weighted overlap-add), exactly ``length`` samples long.

    Agrees with ``librosa.istft(..., length=length)``: overlap-added frames are divided by the
    overlap-added squared window wherever that is not negligible. This is :class:`OverlapAdd`
    with the whole spectrogram.

    Parameters
    ----------
    X : np.ndarray [shape=(C, K, N) or (K, N), dtype=complex]
    settings : STFTSettings
        The settings used for the forward transform.
    length : int
        Number of samples of the original signal.

    Returns
    -------
    signal : np.ndarray [shape=(C, length) or (length,)]
    """
    X = np.asarray(X)
    dtype = np.float64 if X.dtype == np.complex128 else np.float32
    spectra = X if X.ndim == 3 else X[None]
    inverse = OverlapAdd(spectra.shape[0], length, settings, dtype)
    out = np.empty((spectra.shape[0], length), dtype=dtype)
    position = 0
    for start in range(0, spectra.shape[2] + 1, _BLOCK_FRAMES):
        block = spectra[:, :, start : start + _BLOCK_FRAMES]
        piece = inverse.push(block.transpose(0, 2, 1)) if block.shape[2] else inverse.finish()
        out[:, position : position + piece.shape[1]] = piece
        position += piece.shape[1]
    if position < length:
        out[:, position:] = inverse.finish()
    return out if X.ndim == 3 else out[0]
