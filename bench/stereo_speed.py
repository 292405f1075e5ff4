"""Speed of the spatial model (`nmfsep separate --sources J` on stereo) next to pyroomacoustics' FastMNMF.

Usage::

    python bench/stereo_speed.py [--seconds 30] [--sources 4] [--bases 16] [--iterations 100]

Both fit J sources with the same number of NMF bases per source and the same number of iterations
(tol 0) to the same stereo file, made from the shipped samples (:func:`make_panned_input`), and
return J stereo images; the time is the whole separation (STFT, fit, Wiener filtering, inverse STFT),
in this process, min of ``repeats`` interleaved runs, each after a pause (BLAS threads spin for a
while after a product). FastMNMF runs as in bench/stereo_baselines.py (pyroomacoustics' STFT, block
4096, hop 2048); nmfsep with its defaults at 44.1 kHz (n_fft 4096, hop 1024: twice the frames).
`make bench` (bench/run.py) reports these rows in bench/results.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
#: Where the four sources of the panned input sit (constant-power law, -1 left .. +1 right).
PANS = (-0.6, -0.2, 0.2, 0.6)


def make_panned_input(path: Path, minutes: float, rate: int = 44100) -> None:
    """A 44.1 kHz stereo PCM_16 file of four sources panned apart: the piano sample, the speech and
    the vibraphone of the other sample (its true sources, tests/data), and the piano 5 s later."""
    import librosa

    piano, sr = sf.read(ROOT / "samples" / "hotcrossbuns_piano.wav", dtype="float32")
    data = ROOT / "tests" / "data" / "speech_vibraphone" / "sources"
    speech, _ = sf.read(data / "speech.wav", dtype="float32")
    vibraphone, _ = sf.read(data / "vibraphone.wav", dtype="float32")
    n = min(len(piano), len(speech), len(vibraphone))
    sources = [piano[:n], speech[:n], vibraphone[:n], np.roll(piano[:n], 5 * sr)]
    mix = np.zeros((2, n), dtype=np.float32)
    for source, position in zip(sources, PANS, strict=True):
        angle = (position + 1) * np.pi / 4
        mix += np.stack([np.cos(angle) * source, np.sin(angle) * source])
    mix = librosa.resample(mix, orig_sr=sr, target_sr=rate, res_type="soxr_hq")
    length = int(minutes * 60 * rate)
    mix = np.tile(mix, (1, -(-length // mix.shape[1])))[:, :length]
    sf.write(path, 0.9 * mix.T / np.abs(mix).max(), rate, subtype="PCM_16")


def separate_fastmnmf(mix: np.ndarray, rate: int, sources: int, bases: int, iterations: int) -> np.ndarray:
    sys.path.insert(0, str(ROOT / "bench"))
    import stereo_baselines

    stereo_baselines.FASTMNMF_COMPONENTS = bases
    stereo_baselines.FASTMNMF_ITERATIONS = iterations
    return stereo_baselines.separate_fastmnmf(mix.astype(np.float64), rate, sources, None, 0)


def separate_nmfsep(mix: np.ndarray, rate: int, sources: int, bases: int, iterations: int) -> np.ndarray:
    import nmfsep

    result = nmfsep.separate(
        mix, rate, n_sources=sources, n_components=bases * sources, max_iter=iterations, tol=0.0
    )
    return result.components


def compare(path: Path, sources: int = 4, bases: int = 16, iterations: int = 100, repeats: int = 2) -> dict:
    """Seconds of each separation of the file at the same J, bases and iterations (min of repeats)."""
    mix, rate = sf.read(path, dtype="float32", always_2d=True)
    mix = mix.T
    runs = {"fastmnmf": separate_fastmnmf, "nmfsep": separate_nmfsep}
    best = dict.fromkeys(runs, np.inf)
    for _ in range(repeats):
        for name, run in runs.items():
            time.sleep(0.3)
            started = time.perf_counter()
            images = run(mix, rate, sources, bases, iterations)
            best[name] = min(best[name], time.perf_counter() - started)
            error = float(np.abs(np.asarray(images, dtype=np.float64).sum(axis=0) - mix).max())
            print(f"  {name}: {best[name]:.1f} s, images sum to the mix within {error:.1e}", flush=True)
    return {
        "seconds": mix.shape[1] / rate,
        "sources": sources,
        "bases": bases,
        "iterations": iterations,
        **best,
    }


def main(argv=None) -> int:
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--sources", type=int, default=4)
    parser.add_argument("--bases", type=int, default=16)
    parser.add_argument("--iterations", type=int, default=100)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "panned.wav"
        make_panned_input(path, args.seconds / 60)
        row = compare(path, args.sources, args.bases, args.iterations)
    print(row)
    print(f"nmfsep is {row['fastmnmf'] / row['nmfsep']:.1f}x faster")
    return 0


if __name__ == "__main__":
    sys.exit(main())
