"""No failure by chance: the real CLI, many times, on a machine whose every core is busy.

A background thread that loaded numba's kernels while the main thread imported scipy.fft made
`nmfsep separate` fail one run in four on a loaded machine (``KeyError: 'scipy'``): Python's import
machinery is not safe for concurrent imports. Races show up under load, so this test makes load.
"""

from __future__ import annotations

import os
import subprocess
import sys

import soundfile as sf

RUNS = 30
AT_ONCE = 3  # CLI runs in parallel, besides one busy-loop process per core


def test_thirty_runs_of_the_default_route_on_a_loaded_machine_all_succeed_with_the_same_bytes(
    tmp_path, piano_short
):
    signal, rate = piano_short
    mix = tmp_path / "mix.wav"
    sf.write(mix, signal[: 2 * rate], rate, subtype="PCM_16")
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 2)]
    results = []
    try:
        for start in range(0, RUNS, AT_ONCE):
            batch = [
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "nmfsep",
                        "separate",
                        mix,
                        "-m",
                        "4",
                        "--max-iter",
                        "5",
                        "-o",
                        tmp_path / f"run{run}",
                        "-q",
                    ],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                for run in range(start, min(start + AT_ONCE, RUNS))
            ]
            for process in batch:
                _, stderr = process.communicate(timeout=300)
                results.append((process.returncode, stderr))
    finally:
        for process in busy:
            process.kill()
            process.wait()
    failures = [(code, stderr) for code, stderr in results if code != 0 or stderr]
    assert failures == [], f"{len(failures)} of {RUNS} runs failed: {failures[:3]}"
    reference = [(tmp_path / "run0" / "mix" / f"c{j}.wav").read_bytes() for j in (1, 2, 3, 4)]
    for run in range(1, RUNS):
        assert [
            (tmp_path / f"run{run}" / "mix" / f"c{j}.wav").read_bytes() for j in (1, 2, 3, 4)
        ] == reference
