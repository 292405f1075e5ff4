"""STFT settings and transforms: shapes, agreement with librosa, exact round trips, errors."""

from __future__ import annotations

import librosa
import numpy as np
import pytest

from nmfsep.errors import AudioError, ParameterError
from nmfsep.spectrogram import STFTSettings, istft, n_frames, stft


def test_defaults():
    settings = STFTSettings()
    assert (settings.n_fft, settings.hop_length, settings.window, settings.center) == (
        2048,
        512,
        "hann",
        True,
    )
    assert settings.n_bins == 1025
    assert STFTSettings(n_fft=1000).hop_length == 250
    with pytest.raises(AttributeError):
        settings.n_fft = 1024  # frozen


@pytest.mark.parametrize(
    "settings",
    [
        STFTSettings(),
        STFTSettings(n_fft=1000, hop_length=300),
        STFTSettings(n_fft=512, hop_length=128, window="hamming"),
    ],
)
@pytest.mark.parametrize("n_samples", [22050, 22051, 4097])
def test_matches_librosa_and_round_trips(rng, settings, n_samples):
    signal = (0.3 * rng.standard_normal((2, n_samples))).astype(np.float32)
    X = stft(signal, settings)
    reference = librosa.stft(
        signal,
        n_fft=settings.n_fft,
        hop_length=settings.hop_length,
        window=settings.window,
        center=True,
        pad_mode="constant",
    )
    assert X.shape == reference.shape == (2, settings.n_bins, n_frames(n_samples, settings))
    assert X.dtype == np.complex64
    np.testing.assert_allclose(X, reference, atol=1e-4 * np.abs(reference).max())
    back = istft(X, settings, n_samples)
    assert back.shape == signal.shape and back.dtype == np.float32
    np.testing.assert_allclose(back, signal, atol=1e-5)


def test_mono_and_float64(rng):
    signal = rng.standard_normal(8000)
    X = stft(signal, STFTSettings(n_fft=256))
    assert X.ndim == 2 and X.dtype == np.complex128
    np.testing.assert_allclose(istft(X, STFTSettings(n_fft=256), 8000), signal, atol=1e-10)


def test_input_is_not_mutated(rng):
    signal = rng.standard_normal((1, 5000)).astype(np.float32)
    copy = signal.copy()
    istft(stft(signal, STFTSettings(n_fft=512)), STFTSettings(n_fft=512), 5000)
    np.testing.assert_array_equal(signal, copy)


def test_shorter_than_one_frame_is_an_audio_error():
    with pytest.raises(AudioError, match=r"shorter than one STFT frame \(100 < n_fft=2048"):
        stft(np.zeros(100, dtype=np.float32), STFTSettings())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_fft": 1}, "n_fft=1 must be an integer >= 2"),
        ({"hop_length": 0}, "hop_length=0 must be a positive integer"),
        ({"n_fft": 512, "hop_length": 1024}, "must not exceed n_fft=512"),
        ({"n_fft": 512, "hop_length": 512}, "could not be inverted"),
        ({"window": "kaiser"}, "window='kaiser' is not one of"),
    ],
)
def test_bad_settings(kwargs, message):
    with pytest.raises(ParameterError, match=message):
        STFTSettings(**kwargs)


def test_frequencies_and_times():
    settings = STFTSettings(n_fft=1024, hop_length=256)
    freqs = settings.frequencies(22050)
    assert freqs[0] == 0 and freqs[-1] == pytest.approx(11025) and len(freqs) == 513
    assert settings.times(3, 22050)[1] == pytest.approx(256 / 22050)


@pytest.mark.parametrize(("n_fft", "hop"), [(5, 4), (17, 12), (64, 48), (101, 100), (2048, 1536), (16, 1)])
def test_round_trip_with_large_and_odd_hops(rng, n_fft, hop):
    """Hops above n_fft / 2 must not lose the end of the signal (extra right padding)."""
    settings = STFTSettings(n_fft=n_fft, hop_length=hop)
    for n_samples in (n_fft, n_fft + 1, 3 * n_fft + 7, 5000):
        signal = rng.standard_normal(n_samples)
        np.testing.assert_allclose(istft(stft(signal, settings), settings, n_samples), signal, atol=1e-9)


@pytest.mark.parametrize(("n_fft", "hop"), [(512, 128), (400, 300), (256, 192), (1024, 100)])
@pytest.mark.parametrize("block_frames", [1, 7, 64])
def test_blockwise_transforms_equal_the_whole_signal(rng, n_fft, hop, block_frames):
    """frame_blocks and OverlapAdd over small blocks give what stft and istft give at once."""
    from nmfsep.spectrogram import ArrayReader, OverlapAdd, frame_blocks

    settings = STFTSettings(n_fft=n_fft, hop_length=hop)
    signal = rng.standard_normal((2, 9001)).astype(np.float32)
    whole = stft(signal, settings)

    # a reader that returns fewer samples than asked, as a decoder may
    reader = ArrayReader(signal)
    stingy = lambda count: reader(max(1, count // 3))  # noqa: E731
    blocks = list(frame_blocks(stingy, 2, signal.shape[1], settings, block_frames=block_frames))
    assert [first for first, _ in blocks] == list(range(0, whole.shape[2], block_frames))
    pieces = np.concatenate([spectra for _, spectra in blocks], axis=1).transpose(0, 2, 1)
    np.testing.assert_allclose(pieces, whole, rtol=0, atol=1e-4)

    inverse = OverlapAdd(2, signal.shape[1], settings)
    out = [
        inverse.push(whole[:, :, s : s + block_frames].transpose(0, 2, 1))
        for s in range(0, whole.shape[2], block_frames)
    ]
    restored = np.concatenate(out + [inverse.finish()], axis=1)
    assert restored.shape == signal.shape
    np.testing.assert_allclose(restored, istft(whole, settings, signal.shape[1]), rtol=0, atol=1e-5)
    np.testing.assert_allclose(restored, signal, rtol=0, atol=1e-4)


@pytest.mark.parametrize("name", ["hann", "hamming", "blackman"])
def test_windows_and_nola_match_scipy_bit_for_bit(name):
    """Our windows (scipy.signal costs a second to import) are scipy's, value for value."""
    from scipy.signal import check_NOLA, get_window

    from nmfsep.spectrogram import _nola, periodic_window

    for n_fft in (2, 3, 400, 1024, 2048):
        window = periodic_window(name, n_fft)
        np.testing.assert_array_equal(window, get_window(name, n_fft, fftbins=True))
        for hop in sorted({1, max(1, n_fft // 4), max(1, n_fft // 2), max(1, 3 * n_fft // 4), n_fft}):
            assert _nola(window, hop) == check_NOLA(window, n_fft, n_fft - hop)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stft_window_is_the_settings_window(dtype):
    from nmfsep.spectrogram import periodic_window, stft_window

    settings = STFTSettings(n_fft=512, hop_length=128, window="hamming")
    window = stft_window(settings, dtype)
    assert window.dtype == dtype and window.shape == (512,)
    np.testing.assert_array_equal(window, periodic_window("hamming", 512).astype(dtype))
    window[:] = 0  # a new array each call
    assert stft_window(settings, dtype).any()
