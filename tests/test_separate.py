"""The pipeline on real audio: conservation, stereo, determinism, ordering, quality, edge cases."""

from __future__ import annotations

import warnings

import mir_eval
import numpy as np
import pytest
import soundfile as sf
from conftest import SAMPLE, SAMPLE_SOURCES

import nmfsep
from nmfsep.errors import AudioError, NmfsepWarning, OutputError, ParameterError

FAST = {"max_iter": 30}


def test_components_sum_back_to_mono_input(piano_short):
    signal, rate = piano_short
    result = nmfsep.separate(signal, rate, 3, **FAST)
    assert result.components.shape == (3, 1, signal.shape[0])
    assert result.names == ("c1", "c2", "c3")
    peak = np.abs(signal).max()
    assert np.abs(result.components.sum(axis=0)[0] - signal).max() < 1e-4 * peak


@pytest.mark.parametrize("mask_power", [1.0, 2.0])
@pytest.mark.parametrize("divergence", ["is", "kl", "euc"])
def test_components_sum_back_to_stereo_input(stereo_short, divergence, mask_power):
    signal, rate = stereo_short
    result = nmfsep.separate(signal, rate, 4, divergence=divergence, mask_power=mask_power, **FAST)
    assert result.components.shape == (4,) + signal.shape
    residual = np.abs(result.components.sum(axis=0) - signal).max(axis=1)
    assert np.all(residual < 1e-4 * np.abs(signal).max(axis=1))


def test_stereo_components_keep_the_stereo_image(stereo_short):
    """One set of masks for both channels: a component of a hard-left source stays left."""
    signal, rate = stereo_short
    left_only = signal.copy()
    left_only[1] = 0.0
    result = nmfsep.separate(left_only, rate, 3, **FAST)
    assert np.abs(result.components[:, 1]).max() == 0.0
    assert result.settings["n_channels"] == 2


def test_same_seed_same_output_and_input_untouched(piano_short):
    signal, rate = piano_short
    copy = signal.copy()
    one = nmfsep.separate(signal, rate, 3, init="random", seed=5, **FAST)
    two = nmfsep.separate(signal, rate, 3, init="random", seed=5, **FAST)
    other = nmfsep.separate(signal, rate, 3, init="random", seed=6, **FAST)
    np.testing.assert_array_equal(one.components, two.components)
    assert not np.array_equal(one.components, other.components)
    np.testing.assert_array_equal(signal, copy)


def test_components_are_ordered_by_spectral_centroid(piano_short):
    signal, rate = piano_short
    result = nmfsep.separate(signal, rate, 4, **FAST)
    bins = np.arange(result.bases.shape[0])
    centroids = bins @ result.bases / result.bases.sum(axis=0)
    assert np.all(np.diff(centroids) >= 0)


def test_piano_pitches_are_recovered_above_20_db():
    """The shipped piano sample, three pitches, separated blind with the defaults.

    mir_eval's bss_eval_sources with the best permutation; the item's SDR is the mean over its
    sources (as in the project's reference figures), and no pitch may fall below 15 dB.
    """
    mix, rate = sf.read(SAMPLE, dtype="float32")
    references = np.stack(
        [sf.read(SAMPLE_SOURCES / f"{pitch}.wav", dtype="float32")[0] for pitch in ("F4", "G4", "A4")]
    )
    result = nmfsep.separate(mix, rate, 3)
    sdr, _, _, _ = mir_eval.separation.bss_eval_sources(references, result.components[:, 0])
    assert sdr.mean() >= 20.0 and sdr.min() >= 15.0, f"SDR per pitch {sdr}"


def test_path_input_and_resampling(piano_short, wav_file):
    signal, rate = piano_short
    path = wav_file("short.wav", signal, rate)
    result = nmfsep.separate(path, n_components=2, sr=16000, **FAST)
    assert result.sample_rate == 16000
    assert result.components.shape == (2, 1, 3 * 16000)


def test_silent_audio_gives_silent_components_and_a_warning():
    with pytest.warns(NmfsepWarning, match="silent"):
        result = nmfsep.separate(np.zeros(8000, dtype=np.float32), 8000, 2, **FAST)
    assert np.all(result.components == 0) and np.all(np.isfinite(result.bases))


@pytest.mark.parametrize(
    ("signal", "error", "message"),
    [
        (np.zeros(100, dtype=np.float32), AudioError, "shorter than one STFT frame"),
        (np.array([0.1, np.nan] * 2000, dtype=np.float32), AudioError, "NaN or infinite"),
        (np.zeros((0,), dtype=np.float32), AudioError, "non-empty"),
        (np.zeros(5000, dtype=np.int16), AudioError, "floating point"),
    ],
)
def test_bad_audio(signal, error, message):
    with pytest.raises(error, match=message):
        nmfsep.separate(signal, 8000, 2)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_components": 0}, "n_components=0"),
        ({"divergence": "xx"}, "divergence='xx'"),
        ({"hop_length": 4096}, "must not exceed n_fft"),
        ({"power": 0}, "power=0"),
        ({"mask_power": -1}, "mask_power=-1"),
        ({"max_iter": -5}, "max_iter=-5"),
        ({"sr": 0}, "sr=0"),
    ],
)
def test_bad_options_fail_before_any_work(kwargs, message):
    args = {"n_components": 2, **kwargs}
    with pytest.raises(ParameterError, match=message):
        nmfsep.separate(np.zeros(10, dtype=np.float32), 8000, **args)


def test_separate_file_writes_components_and_model(tmp_path, piano_short, wav_file):
    signal, rate = piano_short
    path = wav_file("song.wav", signal, rate, subtype="PCM_24")
    result = nmfsep.separate_file(
        path, 3, out_dir=tmp_path / "out", save_model_to=tmp_path / "{track}.npz", **FAST
    )
    assert [p.name for p in result.outputs] == ["c1.wav", "c2.wav", "c3.wav"]
    assert all(p.parent == tmp_path / "out" / "song" for p in result.outputs)
    infos = [sf.info(p) for p in result.outputs]
    assert {info.subtype for info in infos} == {"PCM_24"}  # the input's subtype is kept
    total = sum(sf.read(p, dtype="float64")[0] for p in result.outputs)
    assert np.abs(total - signal).max() < 3 * 2**-23 + 1e-6  # 3 components x PCM_24 quantisation
    model = nmfsep.load_model(tmp_path / "song.npz")
    np.testing.assert_array_equal(model.bases, result.separation.bases)
    assert model.names == ("c1", "c2", "c3") and model.sample_rate == rate
    assert model.settings["stft"]["n_fft"] == 2048
    # a second run without force changes nothing and says why
    before = result.outputs[0].read_bytes()
    with pytest.raises(OutputError, match="output exists"):
        nmfsep.separate_file(path, 3, out_dir=tmp_path / "out", **FAST)
    assert result.outputs[0].read_bytes() == before


def test_separate_file_names_the_file_in_errors(tmp_path):
    with pytest.raises(AudioError) as info:
        nmfsep.separate_file(tmp_path / "missing.wav", 2, out_dir=tmp_path)
    assert str(info.value) == f"no such file ({tmp_path / 'missing.wav'})"


def test_public_api_is_documented():
    for name in nmfsep.__all__:
        obj = getattr(nmfsep, name)
        if callable(obj):
            assert obj.__doc__, f"nmfsep.{name} has no docstring"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert "Parameters" in nmfsep.separate.__doc__ and "Returns" in nmfsep.separate.__doc__


@pytest.mark.parametrize("divergence", ["kl", "is"])
def test_streamed_file_equals_in_memory_separation(tmp_path, monkeypatch, divergence):
    """separate_file streams the file in small blocks with Y memory-mapped; separate() holds it all.

    Same factorization and, to float32 rounding, the same outputs; they still sum to the input.
    """
    import nmfsep.blockwise as blockwise

    samples, rate = sf.read(SAMPLE, dtype="float32", always_2d=True)
    stereo = np.ascontiguousarray(np.stack([samples[:, 0], 0.5 * samples[::-1, 0]])[:, : 6 * rate])
    song = tmp_path / "song.wav"
    sf.write(song, stereo.T, rate, subtype="FLOAT")
    options = dict(divergence=divergence, max_iter=30, n_fft=1024)
    in_memory = nmfsep.separate(stereo, rate, 3, **options)

    spectrogram_frames = blockwise.spectrogram_frames
    memory_maps = []

    def recording(*args, **kwargs):
        frames, silent = spectrogram_frames(*args, **kwargs)
        memory_maps.append(isinstance(frames, np.memmap))
        return frames, silent

    monkeypatch.setattr(blockwise, "BLOCK_FRAMES", 37)  # frames per block: not a divisor of anything
    monkeypatch.setattr(nmfsep.pipeline, "spectrogram_frames", recording)
    result = nmfsep.separate_file(song, 3, out_dir=tmp_path / "out", max_memory="64K", **options)
    assert memory_maps == [True]
    np.testing.assert_array_equal(result.separation.objective, in_memory.objective)
    np.testing.assert_array_equal(result.separation.activations, in_memory.activations)
    streamed = np.stack([sf.read(path, dtype="float32", always_2d=True)[0].T for path in result.outputs])
    assert streamed.shape == in_memory.components.shape
    np.testing.assert_allclose(streamed, in_memory.components, rtol=0, atol=2e-6)
    np.testing.assert_allclose(streamed.sum(axis=0), stereo, rtol=0, atol=2e-5)


@pytest.mark.parametrize(
    ("size", "expected"),
    [("2G", 2 * 2**30), ("500M", 500 * 2**20), ("64k", 65536), (1e6, 1e6), ("1.5GB", 1.5 * 2**30)],
)
def test_memory_budget_sizes(size, expected):
    from nmfsep.options import memory_budget

    assert memory_budget(size) == expected
    assert memory_budget(None) is None or memory_budget(None) > 0


@pytest.mark.parametrize("size", ["lots", "-1G", "0", "G"])
def test_bad_memory_budget_is_refused(tmp_path, size):
    with pytest.raises(ParameterError, match="max_memory"):
        nmfsep.separate_file(SAMPLE, 2, out_dir=tmp_path, max_memory=size)
