"""Where the time of a long separation goes: one run of ``nmfsep separate SONG -m 4`` (defaults)
in this process, with every stage timed (issue 16).

Usage::

    python bench/profile_long.py [--minutes 60] [--keep DIR]

Makes a 44.1 kHz stereo file of the given length (bench/end_to_end.py's make_input) unless DIR
holds one, runs the CLI's command in-process (click, standalone_mode=False) and prints one markdown
table: seconds per stage, summed over the threads that ran it (the synthesis computes the outputs of
a block in parallel threads, so these can add up to more than the wall time), and the wall time of
each phase. Stages are timed by wrapping the functions that do them:

- read: ``soundfile.SoundFile.read`` (both passes read the input);
- STFT: ``scipy.fft.rfft`` (both passes transform the input);
- NMF: ``nmfsep.pipeline.factorize``;
- masks: ``GroupMasks.shared`` and ``GroupMasks.group_mask``;
- inverse STFT: ``OverlapAdd.push`` and ``OverlapAdd.finish`` (inverse FFT and overlap-add);
- encoding: ``nmfsep.audio._encoded`` (float to 16-bit);
- write: ``soundfile.SoundFile.write`` (libsndfile to the page cache).
"""

from __future__ import annotations

import argparse
import functools
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

_totals: dict[str, float] = defaultdict(float)
_calls: dict[str, int] = defaultdict(int)
_lock = threading.Lock()


def _timed(stage: str, function):
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            elapsed = time.perf_counter() - started
            with _lock:
                _totals[stage] += elapsed
                _calls[stage] += 1

    return wrapper


def _patch(owner, name: str, stage: str) -> None:
    setattr(owner, name, _timed(stage, getattr(owner, name)))


def instrument() -> None:
    import scipy.fft
    import soundfile

    import nmfsep.audio
    import nmfsep.blockwise
    import nmfsep.masks
    import nmfsep.pipeline
    import nmfsep.spectrogram

    _patch(soundfile.SoundFile, "read", "read")
    _patch(scipy.fft, "rfft", "STFT (forward FFTs, both passes)")
    _patch(nmfsep.pipeline, "factorize", "NMF")
    _patch(nmfsep.masks.GroupMasks, "shared", "masks")
    _patch(nmfsep.masks.GroupMasks, "group_mask", "masks")
    _patch(nmfsep.spectrogram.OverlapAdd, "push", "inverse STFT")
    _patch(nmfsep.spectrogram.OverlapAdd, "finish", "inverse STFT")
    _patch(nmfsep.audio, "_encoded", "encoding (float to PCM_16)")
    _patch(soundfile.SoundFile, "write", "write")
    # the phases
    _patch(nmfsep.pipeline, "spectrogram_frames", "phase: analysis (read, STFT, |X|)")
    _patch(nmfsep.pipeline, "resynthesise", "phase: synthesis (read, STFT, masks, inverse, write)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--keep", type=Path, help="folder for the input (reused when present)")
    args = parser.parse_args(argv)
    folder = args.keep or Path(tempfile.mkdtemp(prefix="nmfsep-profile-"))
    folder.mkdir(parents=True, exist_ok=True)
    song = folder / f"song{args.minutes:g}.wav"
    if not song.exists():
        from end_to_end import make_input

        make_input(song, args.minutes)
    started = time.perf_counter()
    instrument()
    from nmfsep.cli import main as cli

    try:
        cli.main(
            ["separate", str(song), "-m", "4", "-o", str(folder / "out"), "--force"], standalone_mode=False
        )
    except SystemExit as done:  # the command exits with its code
        if done.code:
            raise
    wall = time.perf_counter() - started
    print(f"\n`nmfsep separate {song.name} -m 4` in-process: {wall:.1f} s wall\n")
    print("| stage | seconds (summed over threads) | calls |")
    print("|---|---:|---:|")
    for stage in sorted(_totals, key=lambda s: (s.startswith("phase"), -_totals[s])):
        print(f"| {stage} | {_totals[stage]:.2f} | {_calls[stage]} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
