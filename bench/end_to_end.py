"""End-to-end speed and memory of `nmfsep separate` on a 3-minute 44.1 kHz stereo file.

Usage::

    python bench/end_to_end.py [--minutes 3] [--components 4] [--repeat 1] [-- extra nmfsep options]

Builds the input from the shipped samples (piano on the left, speech + vibraphone on the right,
resampled to 44.1 kHz and repeated to length), then runs the real command line in a subprocess and
reports its wall time and peak resident memory (wait4 in a small launcher, see run.py). One line per run;
`make bench` (bench/run.py) runs the full comparison.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent


def make_input(path: Path, minutes: float, rate: int = 44100) -> None:
    import librosa

    left, sr = sf.read(ROOT / "samples" / "hotcrossbuns_piano.wav", dtype="float32")
    right, _ = sf.read(ROOT / "samples" / "speech_vibraphone.wav", dtype="float32")
    stereo = librosa.resample(np.stack([left, right]), orig_sr=sr, target_sr=rate, res_type="soxr_hq")
    n = int(minutes * 60 * rate)
    stereo = np.tile(stereo, (1, -(-n // stereo.shape[1])))[:, :n]
    sf.write(path, 0.9 * stereo.T / np.abs(stereo).max(), rate, subtype="PCM_16")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--components", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("extra", nargs="*", help="more nmfsep separate options (after --)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        song = tmp / "bench.wav"
        make_input(song, args.minutes)
        info = sf.info(song)
        print(f"input: {info.duration:.0f} s, {info.samplerate} Hz, {info.channels} channels, {info.subtype}")
        from run import run_measured, separate_command  # peak RSS of the command alone (see run.py)

        command = separate_command(song, tmp / "out", ("-m", str(args.components), *args.extra))
        print("command: nmfsep " + " ".join(command[3:]))
        for index in range(args.repeat):
            try:
                wall, peak_mb, log = run_measured(command)
            except RuntimeError as exc:
                print(exc, file=sys.stderr)
                return 1
            print(f"run {index + 1}: wall {wall:.1f} s, peak RSS {peak_mb:.0f} MB | {log}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
