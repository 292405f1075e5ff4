"""Same seed, same bytes: every output format and subtype is identical between runs (issue 12).

libsndfile writes the wall clock into float WAV files (the PEAK chunk's timestamp, in seconds) and
into Ogg files (a stream serial number seeded from the time of day), so the reruns here are real
CLI processes more than a second apart.
"""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

from nmfsep import audio

CASES = [
    ("wav", "PCM_16"),
    ("wav", "PCM_24"),
    ("wav", "PCM_32"),
    ("wav", "FLOAT"),
    ("wav", "DOUBLE"),
    ("flac", "PCM_16"),
    ("flac", "PCM_24"),
    ("ogg", "VORBIS"),
]

# nmfsep.save_audio in a fresh process: argv[1] the folder, then "format:subtype" cases.
SAVE_SCRIPT = """
import sys
import numpy as np
import nmfsep
t = np.arange(22050) / 22050
x = np.stack([0.5 * np.sin(2 * np.pi * 440 * t), 0.3 * np.sin(2 * np.pi * 660 * t)]).astype(np.float32)
for case in sys.argv[2:]:
    fmt, subtype = case.split(":")
    nmfsep.save_audio(f"{sys.argv[1]}/{subtype}.{fmt}", x, 22050, format=fmt, subtype=subtype)
"""


def _one_pass(source, out, not_before: dict[str, float]) -> dict[str, float]:
    """Every case once: a CLI separation per format/subtype, then save_audio for all of them.

    Each run starts no earlier than ``not_before[name]`` (wall clock) and its end time is returned:
    a whole-second clock then differs between a run and its rerun.
    """
    runs = {}
    for fmt, subtype in CASES:
        command = [sys.executable, "-m", "nmfsep", "separate", str(source), "-m", "3", "--max-iter", "10"]
        command += ["--seed", "7", "-q", "-o", str(out / f"{fmt}_{subtype}"), "--format", fmt]
        runs[f"{fmt}_{subtype}"] = [*command, "--subtype", subtype]
    (out / "save").mkdir(parents=True)
    runs["save"] = [sys.executable, "-c", SAVE_SCRIPT, str(out / "save")] + [f"{f}:{s}" for f, s in CASES]
    ended = {}
    for name, command in runs.items():
        time.sleep(max(0.0, not_before.get(name, 0.0) - time.time()))
        subprocess.run(command, check=True, capture_output=True, timeout=120)
        ended[name] = time.time()
    return ended


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, piano_short):
    """Two passes over every case; each rerun starts more than a second after its first run ended.

    A rerun comes a whole pass (several seconds) after its first run, so nothing normally waits;
    the wait only matters on a machine fast enough to finish a pass within a second.
    """
    root = tmp_path_factory.mktemp("determinism")
    source = root / "piano3s.wav"
    sf.write(source, *piano_short, subtype="PCM_16")
    ended = _one_pass(source, root / "a", {})
    _one_pass(source, root / "b", {name: end + 1.1 for name, end in ended.items()})
    return root / "a", root / "b"


@pytest.mark.parametrize(("fmt", "subtype"), CASES)
def test_cli_reruns_are_byte_identical(two_runs, fmt, subtype):
    first, second = (run / f"{fmt}_{subtype}" / "piano3s" for run in two_runs)
    names = sorted(p.name for p in first.glob(f"*.{fmt}"))  # the audio (not the run's own record)
    assert names == [f"c{i}.{fmt}" for i in (1, 2, 3)]
    for name in names:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
        assert sf.info(first / name).subtype == subtype


@pytest.mark.parametrize(("fmt", "subtype"), CASES)
def test_save_audio_reruns_are_byte_identical(two_runs, fmt, subtype):
    first, second = (run / "save" / f"{subtype}.{fmt}" for run in two_runs)
    assert first.read_bytes() == second.read_bytes()


@pytest.mark.parametrize("subtype", ["FLOAT", "DOUBLE"])
def test_float_wav_has_no_peak_chunk_and_the_same_samples(tmp_path, stereo_short, subtype):
    samples, rate = stereo_short
    ours = audio.save(tmp_path / "ours.wav", samples, rate, subtype=subtype)
    sf.write(tmp_path / "libsndfile.wav", samples.T, rate, subtype=subtype)
    ours_bytes, reference = ours.read_bytes(), (tmp_path / "libsndfile.wav").read_bytes()
    assert b"PEAK" in reference[:256] and b"PEAK" not in ours_bytes[:256]
    assert ours_bytes[ours_bytes.index(b"data") :] == reference[reference.index(b"data") :]
    info = sf.info(ours)
    assert (info.subtype, info.channels, info.frames, info.samplerate) == (subtype, 2, samples.shape[1], rate)


def _bitwise_ogg_crc(data: bytes) -> int:
    """The Ogg CRC as its specification states it: polynomial 0x04C11DB7, MSB first, zero start."""
    crc = 0
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ (0x04C11DB7 if crc & 0x80000000 else 0)) & 0xFFFFFFFF
    return crc


def test_ogg_crc_matches_the_specification(rng):
    for size in (0, 1, 27, 1000):
        data = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
        assert audio._ogg_crc(data) == _bitwise_ogg_crc(data)


def test_ogg_serials_are_rewritten_consistently(tmp_path, stereo_short):
    samples, rate = stereo_short
    sf.write(tmp_path / "libsndfile.ogg", samples.T, rate, format="OGG", subtype="VORBIS")
    paths = [audio.save(tmp_path / f"{i}.ogg", samples[i], rate, format="ogg") for i in (0, 1)]
    paths.append(audio.save(tmp_path / "2.ogg", samples, rate, format="ogg"))
    serials = set()
    for path in paths:
        with open(path, "rb") as file:
            pages = list(audio._ogg_pages(file))
        assert len({bytes(page[14:18]) for _, page in pages}) == 1
        serials.add(bytes(pages[0][1][14:18]))
        for _, page in pages:  # every page's stored CRC is the CRC of the page with that field zeroed
            stored = int.from_bytes(page[22:26], "little")
            page[22:26] = bytes(4)
            assert audio._ogg_crc(page) == stored
    assert len(serials) == 3  # different content, different serials: concatenations still chain
    # only the serial and CRC fields change: the audio decodes exactly as libsndfile's own file
    ours, reference = paths[2].read_bytes(), (tmp_path / "libsndfile.ogg").read_bytes()
    assert len(ours) == len(reference)
    np.testing.assert_array_equal(sf.read(paths[2])[0], sf.read(tmp_path / "libsndfile.ogg")[0])


def test_save_audio_writes_long_ogg_in_blocks(tmp_path):
    # Not determinism, but the same write path: libvorbis puts one whole write on the stack, so a
    # single write of 2.5 million frames killed the process (SIGSEGV) before save() wrote in blocks.
    script = (
        "import sys, numpy as np, nmfsep\n"
        "x = (0.1 * np.sin(np.arange(2_500_000) * 0.05)).astype(np.float32)\n"
        "nmfsep.save_audio(sys.argv[1], x, 8000, format='ogg')\n"
    )
    path = tmp_path / "long.ogg"
    done = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    assert sf.info(path).frames == 2_500_000
