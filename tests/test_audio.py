"""Audio I/O: formats and subtypes round trip, layout, clipping policy, atomic and safe writes."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from nmfsep import atomic, audio
from nmfsep.errors import AudioError, NmfsepWarning, OutputError, ParameterError


@pytest.mark.parametrize(
    ("fmt", "subtype", "tolerance"),
    [
        ("wav", "PCM_16", 1 / 32768),
        ("wav", "PCM_24", 1 / 2**23),
        ("wav", "FLOAT", 1e-7),
        ("flac", "PCM_16", 1 / 32768),
        ("flac", "PCM_24", 1 / 2**23),
        ("ogg", "VORBIS", None),
    ],
)
@pytest.mark.parametrize("channels", [1, 2])
def test_save_load_round_trip(tmp_path, rng, fmt, subtype, tolerance, channels):
    samples = (0.5 * np.sin(np.linspace(0, 800, 22050 * channels))).reshape(channels, -1).astype(np.float32)
    path = audio.save(tmp_path / f"x.{fmt}", samples, 22050, format=fmt, subtype=subtype)
    loaded = audio.load(path)
    assert loaded.samples.shape == (channels, 22050)
    assert loaded.samples.dtype == np.float32
    assert loaded.sample_rate == 22050 and loaded.subtype == subtype
    if tolerance is not None:
        np.testing.assert_allclose(loaded.samples, samples, atol=tolerance)
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".part")]


@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"])
def test_load_reads_every_bit_depth(wav_file, subtype):
    samples = np.linspace(-0.5, 0.5, 4000)
    loaded = audio.load(wav_file(f"{subtype}.wav", samples, subtype=subtype))
    np.testing.assert_allclose(loaded.samples[0], samples, atol=1 / 100)
    assert loaded.subtype == subtype


def test_load_aiff_and_resample(tmp_path):
    samples = np.sin(np.linspace(0, 100, 44100)).astype(np.float32) * 0.5
    sf.write(tmp_path / "x.aiff", samples, 44100, subtype="PCM_16")
    loaded = audio.load(tmp_path / "x.aiff", sr=22050)
    assert loaded.sample_rate == 22050 and loaded.samples.shape == (1, 22050)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: None, "no such file"),
        (lambda p: p.mkdir(), "is a directory"),
        (lambda p: p.write_bytes(b""), "file is empty"),
        (lambda p: p.write_text("this is not audio\n" * 50), "not a readable audio file"),
    ],
)
def test_load_errors(tmp_path, make, message):
    path = tmp_path / "input.wav"
    make(path)
    with pytest.raises(AudioError, match=message) as info:
        audio.load(path)
    assert str(path) in str(info.value)


def test_load_rejects_zero_samples_and_nan(tmp_path):
    sf.write(tmp_path / "empty.wav", np.zeros(0), 8000)
    with pytest.raises(AudioError, match="0 samples"):
        audio.load(tmp_path / "empty.wav")
    sf.write(tmp_path / "nan.wav", np.array([0.1, np.nan, 0.2]), 8000, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN or infinite"):
        audio.load(tmp_path / "nan.wav")


def test_save_warns_and_clips_integer_outputs(tmp_path):
    loud = np.array([[0.0, 1.5, -2.0, 0.5]], dtype=np.float32)
    with pytest.warns(NmfsepWarning, match="peak 2.000 exceeds full scale"):
        path = audio.save(tmp_path / "loud.wav", loud, 8000, subtype="PCM_16")
    assert np.abs(audio.load(path).samples).max() <= 1.0
    path = audio.save(tmp_path / "loud_float.wav", loud, 8000, subtype="FLOAT")  # no warning needed
    np.testing.assert_allclose(audio.load(path).samples, loud)


def test_save_refuses_to_overwrite_without_permission(tmp_path):
    target = tmp_path / "out.wav"
    audio.save(target, np.zeros((1, 100)), 8000)
    before = target.read_bytes()
    with pytest.raises(OutputError, match="output exists"):
        audio.save(target, np.ones((1, 100)) * 0.1, 8000)
    assert target.read_bytes() == before
    audio.save(target, np.ones((1, 100)) * 0.1, 8000, overwrite=True)
    assert target.read_bytes() != before


def test_atomic_write_leaves_nothing_when_the_writer_fails(tmp_path):
    def failing(tmp):
        with open(tmp, "wb") as handle:
            handle.write(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic.atomic_write(tmp_path / "sub" / "x.wav", failing)
    assert os.listdir(tmp_path / "sub") == []


def test_unwritable_folder_is_an_output_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="cannot write to folder"):
        audio.save(blocker / "x.wav", np.zeros((1, 10)), 8000)


@pytest.mark.parametrize(
    ("fmt", "requested", "input_subtype", "expected"),
    [
        ("wav", None, "PCM_24", "PCM_24"),
        ("wav", None, "FLOAT", "FLOAT"),
        ("flac", None, "FLOAT", "PCM_24"),
        ("flac", None, "PCM_16", "PCM_16"),
        ("ogg", None, "PCM_16", "VORBIS"),
        ("wav", None, None, "PCM_16"),
        ("wav", "float", "PCM_16", "FLOAT"),
    ],
)
def test_output_subtype(fmt, requested, input_subtype, expected):
    assert audio.output_subtype(fmt, requested, input_subtype) == expected


def test_output_subtype_errors():
    with pytest.raises(ParameterError, match="not available for flac"):
        audio.output_subtype("flac", "FLOAT", None)
    with pytest.raises(ParameterError, match="format='mp4'"):
        audio.output_subtype("mp4", None, None)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pcm16_encoding_is_libsndfiles_byte_for_byte(tmp_path, rng, dtype):
    """nmfsep converts to 16-bit itself (vectorised); the files must be what libsndfile writes."""
    samples = np.concatenate(
        [
            rng.standard_normal((2, 20000)) * 0.4,  # some beyond full scale: clipped
            rng.standard_normal((2, 20000)) * 1e-4,  # quiet: rounding at the smallest steps
            (rng.integers(-200, 200, (2, 2000)) - 2.0**-17) / 32768,  # just below a step
        ],
        axis=1,
    ).astype(dtype)
    samples[0, :6] = [1.0, -1.0, 0.99999, -0.99999, 3 / 32768, -3 / 32768]
    with pytest.warns(NmfsepWarning, match="clipped"):
        ours = audio.save(tmp_path / "ours.wav", samples, 44100, subtype="PCM_16")
    sf.write(tmp_path / "theirs.wav", np.clip(samples, -1.0, 1.0).T, 44100, subtype="PCM_16")
    assert ours.read_bytes() == (tmp_path / "theirs.wav").read_bytes()
    with pytest.warns(NmfsepWarning, match="clipped"):
        with audio.AudioWriters([tmp_path / "blocks.wav"], 44100, 2, subtype="PCM_16") as writers:
            for start in range(0, samples.shape[1], 7000):
                writers.write(0, samples[:, start : start + 7000])
    assert (tmp_path / "blocks.wav").read_bytes() == ours.read_bytes()
    # FLAC keeps libsndfile's own conversion (it rounds where the WAV writer floors)
    quiet = np.clip(samples, -1.0, 1.0)
    flac = audio.save(tmp_path / "ours.flac", quiet, 44100, format="flac", subtype="PCM_16")
    sf.write(tmp_path / "theirs.flac", quiet.T, 44100, subtype="PCM_16", format="FLAC")
    np.testing.assert_array_equal(
        sf.read(flac, dtype="int16")[0], sf.read(tmp_path / "theirs.flac", dtype="int16")[0]
    )


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_outputs_get_the_permissions_of_any_new_file(tmp_path, mask):
    """0o666 less the umask, as ``open(path, "w")`` gives: for save, atomic_write and AudioWriters."""
    previous = os.umask(mask)
    try:
        saved = audio.save(tmp_path / "saved.wav", np.zeros((1, 100)), 8000)
        written = atomic.atomic_write(tmp_path / "written.txt", lambda tmp: Path(tmp).write_text("x"))
        with audio.AudioWriters([tmp_path / "streamed.flac"], 8000, 1, format="flac") as writers:
            writers.write(0, np.zeros((1, 100), dtype=np.float32))
        plain = tmp_path / "plain"
        plain.write_bytes(b"")
    finally:
        os.umask(previous)
    modes = {
        path.name: stat.S_IMODE(path.stat().st_mode) for path in (saved, written, tmp_path / "streamed.flac")
    }
    assert modes == dict.fromkeys(modes, 0o666 & ~mask)
    assert stat.S_IMODE(plain.stat().st_mode) == 0o666 & ~mask
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "plain",
        "saved.wav",
        "streamed.flac",
        "written.txt",
    ]


def test_no_process_wide_state_is_changed(tmp_path):
    """Importing nmfsep and writing files neither reads nor sets the umask (os.umask sets it, even
    for a moment that other threads would see) nor uses the global random state."""
    script = """
import os, random, sys
import numpy as np
calls = []
real_umask = os.umask
os.umask = lambda mask: calls.append(mask) or real_umask(mask)
random.seed(7)
state = random.getstate()
from nmfsep import audio
audio.save(sys.argv[1] + "/a.wav", np.zeros((1, 100)), 8000)
with audio.AudioWriters([sys.argv[1] + "/b.ogg"], 8000, 1, format="ogg") as writers:
    writers.write(0, np.zeros((1, 100), dtype=np.float32))
assert calls == [], calls
assert random.getstate() == state
print("ok")
"""
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_temporary_names_are_hidden_and_cleaned_up(tmp_path, monkeypatch):
    seen = []
    atomic.atomic_write(tmp_path / "x.wav", lambda tmp: seen.append(tmp) or Path(tmp).write_bytes(b"1"))
    (tmp,) = seen
    assert os.path.isabs(tmp) and Path(tmp).parent == tmp_path
    assert re.fullmatch(r"\.x\.wav\.[0-9a-f]{8}\.part", Path(tmp).name)
    assert sorted(os.listdir(tmp_path)) == ["x.wav"]
    # a name already taken is skipped, never opened
    taken = iter(["00000000", "00000000", "11111111"])
    monkeypatch.setattr(atomic.secrets, "token_hex", lambda _: next(taken))
    (tmp_path / ".y.wav.00000000.part").write_bytes(b"someone else's")
    created = []
    assert atomic.temporary(tmp_path / "y.wav", created).endswith(".y.wav.11111111.part")
    assert [Path(p).name for p in created] == [".y.wav.11111111.part"]
    assert (tmp_path / ".y.wav.00000000.part").read_bytes() == b"someone else's"


def test_an_interrupt_held_over_creating_a_temporary_file_still_removes_it(tmp_path):
    """A SIGTERM that arrives while the temporary file is created is raised at the end of that step:
    the caller must already know the name, or the file is left behind."""
    import signal

    from nmfsep.interrupts import Interrupted, raise_interrupted

    previous = signal.signal(signal.SIGTERM, raise_interrupted)
    real_open = os.open

    def open_then_signal(*args, **kwargs):
        fd = real_open(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)  # handled at the next bytecode, inside held()
        return fd

    try:
        atomic.os.open = open_then_signal
        with pytest.raises(Interrupted):
            with audio.AudioWriters([tmp_path / "a.wav", tmp_path / "b.wav"], 8000, 1):
                pass
        with pytest.raises(Interrupted):
            atomic.atomic_write(tmp_path / "c.wav", lambda tmp: None)
    finally:
        atomic.os.open = real_open
        signal.signal(signal.SIGTERM, previous)
    assert os.listdir(tmp_path) == []
