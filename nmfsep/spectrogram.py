"""Short-time Fourier transform settings and round-trip transforms (librosa underneath)."""

from __future__ import annotations

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
            raise ParameterError(f"n_fft={self.n_fft!r} must be an integer >= 2")
        if self.hop_length is None:
            object.__setattr__(self, "hop_length", max(1, int(self.n_fft) // 4))
        hop = self.hop_length
        if isinstance(hop, bool) or int(hop) != hop or hop < 1:
            raise ParameterError(f"hop_length={hop!r} must be a positive integer")
        if hop > self.n_fft:
            raise ParameterError(f"hop_length={hop} must not exceed n_fft={self.n_fft}")
        if self.window not in WINDOWS:
            raise ParameterError(f"window={self.window!r} is not one of {list(WINDOWS)}")
        object.__setattr__(self, "n_fft", int(self.n_fft))
        object.__setattr__(self, "hop_length", int(hop))
        from scipy.signal import check_NOLA, get_window

        if not check_NOLA(get_window(self.window, self.n_fft), self.n_fft, self.n_fft - self.hop_length):
            raise ParameterError(
                f"hop_length={self.hop_length} is too large for a {self.window} window of "
                f"n_fft={self.n_fft}: the STFT could not be inverted"
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


def _window(settings: STFTSettings, dtype) -> np.ndarray:
    from scipy.signal import get_window

    return get_window(settings.window, settings.n_fft, fftbins=True).astype(dtype)


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
    import scipy.fft

    signal = np.asarray(signal)
    dtype = np.float64 if signal.dtype == np.float64 else np.float32
    n_samples = signal.shape[-1]
    if n_samples < settings.n_fft:
        raise AudioError(
            f"audio is shorter than one STFT frame ({n_samples} < n_fft={settings.n_fft} samples)"
        )
    channels = np.atleast_2d(signal).astype(dtype, copy=False)
    left, right = _padding(n_samples, settings)
    if left or right:
        channels = np.pad(channels, ((0, 0), (left, right)), mode="constant")
    frames = np.lib.stride_tricks.sliding_window_view(channels, settings.n_fft, axis=-1)
    frames = frames[:, :: settings.hop_length]  # (C, N, n_fft) view, no copy
    window = _window(settings, dtype)
    n_channels, count = frames.shape[:2]
    X = np.empty((n_channels, settings.n_bins, count), dtype=np.result_type(dtype, np.complex64))
    for start in range(0, count, _BLOCK_FRAMES):
        block = frames[:, start : start + _BLOCK_FRAMES] * window
        X[:, :, start : start + block.shape[1]] = scipy.fft.rfft(block, axis=-1).transpose(0, 2, 1)
    return X if signal.ndim > 1 else X[0]


def istft(X: np.ndarray, settings: STFTSettings, length: int) -> np.ndarray:
    """Inverse of :func:`stft` (weighted overlap-add), exactly ``length`` samples long.

    Agrees with ``librosa.istft(..., length=length)``: overlap-added frames are divided by the
    overlap-added squared window wherever that is not negligible.

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
    import scipy.fft

    X = np.asarray(X)
    dtype = np.float64 if X.dtype == np.complex128 else np.float32
    spectra = X if X.ndim == 3 else X[None]
    n_channels, _, count = spectra.shape
    n_fft, hop = settings.n_fft, settings.hop_length
    window = _window(settings, dtype)
    offset = n_fft // 2 if settings.center else 0
    # Room for every frame, rounded up to whole hops so the strided adds below stay in bounds.
    total = (count + -(-n_fft // hop)) * hop
    signal = np.zeros((n_channels, total), dtype=dtype)
    for start in range(0, count, _BLOCK_FRAMES):
        block = scipy.fft.irfft(spectra[:, :, start : start + _BLOCK_FRAMES], n=n_fft, axis=1)
        block = (block * window[:, None]).astype(dtype, copy=False)  # (C, n_fft, b)
        _overlap_add(signal, block, start, hop)
    envelope = np.zeros(total, dtype=dtype)
    _overlap_add(envelope[None], np.broadcast_to((window**2)[None, :, None], (1, n_fft, count)), 0, hop)
    nonzero = envelope > np.finfo(dtype).tiny
    signal[:, nonzero] /= envelope[nonzero]
    out = signal[:, offset : offset + length]
    if out.shape[1] < length:  # frames do not reach the end: zero-pad as librosa does
        out = np.pad(out, ((0, 0), (0, length - out.shape[1])))
    out = np.ascontiguousarray(out)
    return out if X.ndim == 3 else out[0]


def _overlap_add(signal: np.ndarray, frames: np.ndarray, first: int, hop: int) -> None:
    """Add ``frames`` [shape=(C, n_fft, b)] at positions (first + i) * hop of ``signal`` (C, total).

    Each frame is split into hop-long pieces; piece j of every frame lands on disjoint samples, so
    it is one strided add per piece instead of one add per frame.
    """
    n_fft, count = frames.shape[1], frames.shape[2]
    for j in range(0, n_fft, hop):
        width = min(hop, n_fft - j)
        begin = first * hop + j
        target = signal[:, begin : begin + count * hop].reshape(signal.shape[0], count, hop)
        target[:, :, :width] += frames[:, j : j + width].transpose(0, 2, 1)
