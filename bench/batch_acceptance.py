"""Batch acceptance run: 200 files (195 good copies of the samples, 5 broken in different ways).

Usage::

    python bench/batch_acceptance.py [--files 200] [--workdir DIR]

1. ``--jobs 1`` and ``--jobs 2`` over the folder with a manifest: exit codes, counts, wall times, and
   whether both runs wrote the same bytes.
2. A ``--jobs 2`` run killed with SIGKILL part-way, then rerun with ``--skip-existing``: every output
   complete and equal to the reference, and no file that was complete before the kill redone.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
OPTIONS = ["-m", "3"]


def build(folder: Path, count: int) -> None:
    folder.mkdir(parents=True)
    samples = [ROOT / "samples" / "hotcrossbuns_piano.wav", ROOT / "samples" / "speech_vibraphone.wav"]
    for index in range(count - 5):
        shutil.copy(samples[index % 2], folder / f"track{index:03d}.wav")
    (folder / "broken_empty.wav").write_bytes(b"")
    (folder / "broken_text.wav").write_text("not audio\n" * 100)
    (folder / "broken_truncated.wav").write_bytes(samples[0].read_bytes()[:30])
    sf.write(folder / "broken_nan.wav", np.array([0.1, np.nan] * 4000), 22050, subtype="FLOAT")
    sf.write(folder / "broken_short.wav", np.zeros(100), 22050)


def run(folder: Path, out: Path, *extra: str) -> tuple[int, float]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "nmfsep", "separate", str(folder), *OPTIONS, "-o", str(out), "-q", *extra],
        capture_output=True,
        text=True,
    )
    return done.returncode, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="nmfsep-batch-"))
    folder = work / "in"
    build(folder, args.files)
    print(f"{args.files} files in {folder}")
    results = {}
    for jobs in (1, 2):
        code, wall = run(
            folder, work / f"out{jobs}", "--jobs", str(jobs), "--manifest", str(work / f"run{jobs}.json")
        )
        manifest = json.loads((work / f"run{jobs}.json").read_text())
        failed = {Path(f["input"]).name: f["error"] for f in manifest["files"] if f["status"] == "failed"}
        results[jobs] = wall
        print(f"--jobs {jobs}: exit {code}, {manifest['summary']}, wall {wall:.1f} s")
        for name, error in sorted(failed.items()):
            print(f"    {name}: {error}")
    reference = sorted((work / "out1").rglob("*.wav"))
    same = all(
        (work / "out2" / p.relative_to(work / "out1")).read_bytes() == p.read_bytes() for p in reference
    )
    print(
        f"--jobs 2 / --jobs 1 wall: {results[2] / results[1]:.2f}; identical bytes: {same} ({len(reference)} files)"
    )

    out = work / "killed"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "nmfsep",
            "separate",
            str(folder),
            *OPTIONS,
            "-o",
            str(out),
            "-q",
            "--jobs",
            "2",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    while len(list(out.glob("*/c3.wav"))) < 60 and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    complete = {
        p.parent.name: p.stat().st_mtime_ns
        for p in out.glob("*/c3.wav")
        if all((p.parent / f"c{j}.wav").exists() for j in (1, 2))
    }
    partial = [d.name for d in out.iterdir() if d.is_dir() and d.name not in complete]
    temp_files = len(list(out.rglob("*.part")))
    print(f"SIGKILL: {len(complete)} tracks complete, {len(partial)} partial, {temp_files} temp files left")
    code, wall = run(folder, out, "--jobs", "2", "--skip-existing", "--manifest", str(work / "resume.json"))
    manifest = json.loads((work / "resume.json").read_text())
    outputs = sorted(out.rglob("*.wav"))
    equal = len(outputs) == len(reference) and all(
        (work / "out1" / p.relative_to(out)).read_bytes() == p.read_bytes() for p in outputs
    )
    redone = [name for name, mtime in complete.items() if (out / name / "c3.wav").stat().st_mtime_ns != mtime]
    print(
        f"--skip-existing: exit {code}, {manifest['summary']}, wall {wall:.1f} s; outputs {len(outputs)} "
        f"equal to the reference: {equal}; complete tracks redone: {len(redone)}; "
        f"temp files left: {len(list(out.rglob('*.part')))}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
