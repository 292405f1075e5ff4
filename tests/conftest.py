"""Shared fixtures: seeded randomness, the shipped real audio, and small synthetic problems."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "hotcrossbuns_piano.wav"
SAMPLE_SOURCES = ROOT / "tests" / "data" / "hotcrossbuns"
SPEECH_SAMPLE = ROOT / "samples" / "speech_vibraphone.wav"


def run_cli(*args, cwd=None, stdin=None, timeout=300) -> subprocess.CompletedProcess:
    """The real CLI in a subprocess (``python -m nmfsep``), as a shell script runs it; text output."""
    return subprocess.run(
        [sys.executable, "-m", "nmfsep", *map(str, args)],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(seed=440)


@pytest.fixture(scope="session")
def piano() -> tuple[np.ndarray, int]:
    """The shipped piano sample, (T,) float32 and its rate."""
    samples, rate = sf.read(SAMPLE, dtype="float32")
    return samples, rate


@pytest.fixture(scope="session")
def piano_short(piano) -> tuple[np.ndarray, int]:
    """The first 3 s of the piano sample (fast pipeline tests)."""
    samples, rate = piano
    return samples[: 3 * rate].copy(), rate


@pytest.fixture(scope="session")
def stereo_short(piano) -> tuple[np.ndarray, int]:
    """3 s stereo: piano on the left, the speech/vibraphone sample on the right, (2, T)."""
    samples, rate = piano
    speech, _ = sf.read(SPEECH_SAMPLE, dtype="float32")
    n = 3 * rate
    return np.stack([samples[:n], 0.5 * speech[:n]]), rate


@pytest.fixture
def low_rank(rng) -> np.ndarray:
    """A 40 x 60 non-negative matrix of rank 4 with a zeroed block (digital silence)."""
    Y = rng.random((40, 4)) @ rng.random((4, 60))
    Y[:, 10:18] = 0.0
    Y[:3] = 0.0
    return Y


@pytest.fixture
def wav_file(tmp_path):
    """Factory: write (C, T) or (T,) float samples to a file under tmp_path and return its path."""

    def make(name: str, samples: np.ndarray, rate: int = 22050, subtype: str = "PCM_16") -> Path:
        path = tmp_path / name
        data = np.asarray(samples)
        sf.write(path, data.T if data.ndim == 2 else data, rate, subtype=subtype)
        return path

    return make
