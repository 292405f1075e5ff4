"""`make bench`: nmfsep's speed and memory next to scikit-learn and the machine's own bound.

Usage::

    python bench/run.py [--out bench/results.md] [--quick]

One run on the same data measures, and writes to bench/results.md (printing it too):

1. milliseconds per MM iteration (both updates) of nmfsep's engine and scikit-learn's NMF (solver
   'mu', same beta, rank, float32 input, same initialisation, fixed iteration count, tol 0) for
   beta in {0, 1, 2} x rank in {4, 16, 64} on a real spectrogram (K=1025 x N=7752: 3 minutes at
   22.05 kHz from the shipped samples, repeated), interleaved, min of 5, with the ratio and the
   final divergence of each;
2. the machine's bound, measured in the same run: float32 bandwidth (a large add) and sgemm GFLOP/s
   (square and at the NMF shapes), the least time an iteration can take, and our distance from it;
3. time-to-quality: nmfsep's time to reach the divergence scikit-learn has after 200 iterations;
4. end to end: `nmfsep separate` of a 3-minute 44.1 kHz stereo file, -m 4, next to the pipeline a
   user would write today (bench/reference_pipeline.py: librosa.stft per channel, scikit-learn NMF
   on the summed magnitude, Wiener masks, librosa.istft, soundfile), same rank, divergence and
   iteration count: wall time, ratio, peak RSS (of that process alone, from wait4);
5. growth with duration: 30 s, 3 min, 15 min, 60 min of 44.1 kHz stereo;
6. stereo sources (the spatial model of ``--sources J``): its time next to pyroomacoustics' FastMNMF
   at the same sources, bases and iterations on the same file (bench/stereo_speed.py), `nmfsep
   separate --sources 4` on a 3-minute 44.1 kHz stereo file, and, where the private stereo dev set
   is present (../shared/data/real-stereo-dev; only read), its quality next to FastMNMF, pan
   clustering, the mono route and the oracle (bench/stereo_baselines.py);
7. the machine, BLAS and thread settings.

Speeds are ratios measured side by side: the machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
BETAS = (0.0, 1.0, 2.0)
RANKS = (4, 8, 16, 32, 64)
NAMES = {0.0: "IS", 1.0: "KL", 2.0: "EUC"}
#: K x N x M products per iteration that no algorithm can avoid: the model (for IS and KL) and
#: the projections (two for IS: numerator and denominator; EUC's denominators are M x M work).
PRODUCTS = {0.0: 6, 1.0: 4, 2.0: 2}
#: Least passes over a K x N float32 array per iteration: each update must read Y once.
PASSES = 2
#: Interleaved repeats of each per-iteration timing (the minimum is kept): the machines are shared.
REPEATS = 5


# ----------------------------------------------------------------------------------------- data
def spectrogram(frames: int = 7752) -> np.ndarray:
    """|STFT| of the shipped samples at 22.05 kHz (n_fft 2048, hop 512), repeated to ``frames``."""
    import soundfile as sf

    from nmfsep.spectrogram import STFTSettings, stft

    signal = np.concatenate(
        [
            sf.read(ROOT / "samples" / name, dtype="float32")[0]
            for name in ("hotcrossbuns_piano.wav", "speech_vibraphone.wav")
        ]
    )
    Y = np.abs(stft(signal, STFTSettings()))
    Y = np.tile(Y, (1, -(-frames // Y.shape[1])))[:, :frames]
    # a -120 dB floor, so every divergence is finite for both engines
    return np.ascontiguousarray(np.maximum(Y, 1e-6 * Y.max()), dtype=np.float32)


def random_start(Y: np.ndarray, rank: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's init='random' scaling, unit-norm bases (the same start for both engines)."""
    rng = np.random.default_rng(seed)
    scale = np.sqrt(Y.mean() / rank)
    H = (np.abs(rng.standard_normal((Y.shape[0], rank))) * scale).astype(np.float32)
    U = (np.abs(rng.standard_normal((rank, Y.shape[1]))) * scale).astype(np.float32)
    norms = np.linalg.norm(H, axis=0)
    return H / norms, U * norms[:, None]


# -------------------------------------------------------------------------------------- engines
def run_nmfsep(Y, H0, U0, beta, iters, callback=None):
    """nmfsep's factorize from (H0, U0), ``iters`` iterations, tol 0; the objective at every
    iteration only with a callback (with tol 0 neither engine needs it otherwise)."""
    from nmfsep.nmf import factorize

    started = time.perf_counter()
    result = factorize(
        Y,
        H0.shape[1],
        beta=beta,
        init=(H0, U0),
        max_iter=iters,
        tol=0,
        floor=0,
        callback=callback,
        record_objective=callback is not None,
    )
    return time.perf_counter() - started, result


def run_sklearn(Y, H0, U0, beta, iters):
    from sklearn.decomposition import NMF

    model = NMF(n_components=H0.shape[1], solver="mu", beta_loss=beta, init="custom", max_iter=iters, tol=0)
    # Frames as samples, as librosa.decompose.decompose calls it: Y^T ~ U^T H^T, so scikit-learn's
    # W is U^T, updated first, like nmfsep's U: both follow the same iterates from the same start.
    W0, components0 = np.ascontiguousarray(U0.T), np.ascontiguousarray(H0.T)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "maximum number of iterations reached"
        started = time.perf_counter()
        activations_t = model.fit_transform(np.ascontiguousarray(Y.T), W=W0, H=components0)
        elapsed = time.perf_counter() - started
    return elapsed, model.components_.T, activations_t.T


def divergence(Y, H, U, beta) -> float:
    from nmfsep.nmf import beta_divergence

    return beta_divergence(Y, H.astype(np.float64) @ U.astype(np.float64), beta)


# ---------------------------------------------------------------------------------------- bound
def machine_bound(Y: np.ndarray) -> dict:
    """float32 bandwidth (GB/s, a large add and copy) and sgemm GFLOP/s (square and at the NMF shapes).

    The bandwidth arrays (256 MB each) are far larger than any cache, so this is memory's speed.
    """
    a, b = np.ones(1 << 26, dtype=np.float32), np.ones(1 << 26, dtype=np.float32)
    best = np.inf
    for _ in range(5):
        started = time.perf_counter()
        np.add(a, b, out=a)
        best = min(best, time.perf_counter() - started)
    bandwidth = 3 * a.nbytes / best / 1e9
    best = np.inf
    for _ in range(5):
        started = time.perf_counter()
        np.copyto(a, b)
        best = min(best, time.perf_counter() - started)
    copy_bandwidth = 2 * a.nbytes / best / 1e9
    del a, b
    square = np.ones((2048, 2048), dtype=np.float32)
    best = np.inf
    for _ in range(5):
        started = time.perf_counter()
        square @ square  # noqa: B018
        best = min(best, time.perf_counter() - started)
    peak = 2 * 2048**3 / best / 1e9
    shaped = {}
    K, N = Y.shape
    for rank in RANKS:
        U = np.ones((N, rank), dtype=np.float32)
        H = np.ones((rank, K), dtype=np.float32)
        out = np.empty((N, K), dtype=np.float32)
        best = np.inf
        for _ in range(3):
            started = time.perf_counter()
            np.matmul(U, H, out=out)  # the model, V^T = U^T H^T
            best = min(best, time.perf_counter() - started)
        shaped[rank] = 2 * K * N * rank / best / 1e9
    return {"bandwidth": bandwidth, "copy_bandwidth": copy_bandwidth, "peak": peak, "shaped": shaped}


def last_level_cache() -> str:
    """The largest CPU cache's size as Linux reports it (e.g. "32768K"), or "unknown"."""
    sizes = []
    for path in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*/size"):
        text = path.read_text().strip()
        if text.endswith("K") and text[:-1].isdigit():
            sizes.append(int(text[:-1]))
    return f"{max(sizes) // 1024} MB" if sizes else "unknown"


def least_time(Y: np.ndarray, beta: float, rank: int, bound: dict) -> float:
    """Seconds per iteration at the bound: PASSES reads of Y plus the unavoidable products.

    The products are counted at the best sgemm rate measured (square or at the NMF shape), so the
    bound is the lowest defensible one.
    """
    gflops = max(bound["peak"], bound["shaped"][rank])
    bandwidth = max(bound["bandwidth"], bound["copy_bandwidth"])
    return PASSES * Y.nbytes / (bandwidth * 1e9) + PRODUCTS[beta] * 2 * Y.size * rank / (gflops * 1e9)


# ------------------------------------------------------------------------------- measurements
def settle(seconds: float = 0.3) -> None:
    """Wait before a timed run: OpenBLAS threads keep spinning for a while after a product (up to
    ~0.1 s), and would take the cores of whatever runs next -- the other engine's timing."""
    time.sleep(seconds)


def per_iteration(Y, bound, iters=10, repeats=REPEATS, ranks=RANKS, betas=BETAS) -> list[dict]:
    """ms per iteration as (T(BASE + iters) - T(BASE)) / iters for each engine: set-up (input checks,
    copies, the first objective) cancels out. Interleaved; the min over repeats of each time."""
    base = 2
    rows = []
    for rank in ranks:
        H0, U0 = random_start(Y, rank)
        for beta in betas:
            run_nmfsep(Y, H0, U0, beta, 1)  # load the kernels outside the timing
            times = {key: np.inf for key in ("ours", "ours_base", "theirs", "theirs_base")}
            for _ in range(repeats):
                settle()
                seconds, result = run_nmfsep(Y, H0, U0, beta, base + iters)
                times["ours"] = min(times["ours"], seconds)
                settle()
                times["ours_base"] = min(times["ours_base"], run_nmfsep(Y, H0, U0, beta, base)[0])
                settle()
                seconds, W, Hs = run_sklearn(Y, H0, U0, beta, base + iters)
                times["theirs"] = min(times["theirs"], seconds)
                settle()
                times["theirs_base"] = min(times["theirs_base"], run_sklearn(Y, H0, U0, beta, base)[0])
            ours = (times["ours"] - times["ours_base"]) / iters
            theirs = (times["theirs"] - times["theirs_base"]) / iters
            rows.append(
                {
                    "beta": beta,
                    "rank": rank,
                    "ours": ours,
                    "theirs": theirs,
                    "kernel": result.settings["kernel"],
                    "least": least_time(Y, beta, rank, bound),
                    "d_ours": divergence(Y, result.bases, result.activations, beta),
                    "d_theirs": divergence(Y, W, Hs, beta),
                }
            )
            print(
                f"  per iteration: {NAMES[beta]} rank {rank}: {ours * 1e3:.1f} vs {theirs * 1e3:.1f} ms",
                flush=True,
            )
    return rows


def time_to_quality(Y, iters=200, ranks=(4, 16), betas=BETAS) -> list[dict]:
    rows = []
    for rank in ranks:
        H0, U0 = random_start(Y, rank, seed=1)
        for beta in betas:
            settle()
            theirs, W, Hs = run_sklearn(Y, H0, U0, beta, iters)
            target = divergence(Y, W, Hs, beta)
            settle()
            stamps = []
            started = time.perf_counter()

            def callback(progress, stamps=stamps, started=started):
                stamps.append((time.perf_counter() - started, progress.objective))

            total, result = run_nmfsep(Y, H0, U0, beta, 2 * iters, callback)
            # the objective reported after iteration i+1 is that of i iterations: conservative
            reached = next(
                ((i + 1, t) for i, (t, value) in enumerate(stamps) if value <= target), (None, None)
            )
            rows.append(
                {
                    "beta": beta,
                    "rank": rank,
                    "target": target,
                    "theirs": theirs,
                    "iterations": reached[0],
                    "ours": reached[1],
                    "final": result.objective[-1],
                }
            )
            print(
                f"  time to quality: {NAMES[beta]} rank {rank}: {reached[1]} s vs {theirs:.1f} s", flush=True
            )
    return rows


#: Runs a command and reports its peak RSS. A child's peak RSS starts at its parent's when it execs
#: (Linux carries the old address space's high-water mark over), so commands are started from this
#: small launcher rather than from the benchmark process, which holds large arrays.
_LAUNCHER = """
import os, subprocess, sys
process = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
stderr = process.stderr.read()
_, status, usage = os.wait4(process.pid, 0)
sys.stderr.write(stderr.decode(errors="replace"))
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)
"""


def tolerance_cost(Y, ranks=(4, 16), betas=(0.0, 1.0), repeats=REPEATS) -> list[dict]:
    """ms per iteration with the default tol 1e-4 (the stopping test's objective values and bounds
    included, and the final objective) against tol 0 over the same number of iterations, each as
    (T(run) - T(2 iterations)) / (iterations - 2), min over interleaved repeats."""
    from nmfsep.nmf import factorize

    rows = []
    for rank in ranks:
        H0, U0 = random_start(Y, rank, seed=2)
        for beta in betas:

            def timed(rank=rank, beta=beta, start=(H0, U0), **kwargs):
                settle()
                started = time.perf_counter()
                result = factorize(Y, rank, beta=beta, init=start, **kwargs)
                return time.perf_counter() - started, result

            n = timed(tol=1e-4, max_iter=400)[1].n_iter
            best = {"tol": np.inf, "zero": np.inf, "base": np.inf}
            for _ in range(repeats):
                seconds, fit = timed(tol=1e-4, max_iter=400)
                best["tol"] = min(best["tol"], seconds)
                best["zero"] = min(best["zero"], timed(tol=0, max_iter=n)[0])
                best["base"] = min(best["base"], timed(tol=0, max_iter=2)[0])
            computed = int(np.isfinite(fit.objective).sum())
            per = {key: (best[key] - best["base"]) / (n - 2) for key in ("tol", "zero")}
            rows.append({"beta": beta, "rank": rank, "n": n, "computed": computed, **per})
            print(
                f"  tolerance: {NAMES[beta]} rank {rank}: {n} iterations, {per['tol'] * 1e3:.2f} vs "
                f"{per['zero'] * 1e3:.2f} ms",
                flush=True,
            )
    return rows


def start_up(tmp: Path, repeats: int = 5) -> dict:
    """Wall seconds (min of ``repeats``) of `nmfsep --help` and of separating a 10-second 44.1 kHz
    stereo file with the defaults (-m 4), each a fresh process as a user or a script runs it."""
    song = tmp / "song10s.wav"
    make_input(song, 10 / 60)
    commands = {
        "help": [sys.executable, "-m", "nmfsep", "--help"],
        "separate": separate_command(song, tmp / "out10s"),
    }
    best = {name: np.inf for name in commands}
    for _ in range(repeats):
        for name, command in commands.items():
            started = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True)
            best[name] = min(best[name], time.perf_counter() - started)
    print(f"  start-up: --help {best['help']:.2f} s, 10 s file {best['separate']:.2f} s", flush=True)
    return best


def long_profile(tmp: Path, minutes: float = 60) -> str:
    """bench/profile_long.py's table for a file of ``minutes`` (stages of one in-process run)."""
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "profile_long.py"),
            "--minutes",
            str(minutes),
            "--keep",
            str(tmp),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    table = done.stdout[done.stdout.index("`nmfsep separate") :]
    print(table, flush=True)
    return table


def run_measured(command: list[str]) -> tuple[float, float, str]:
    """(wall seconds, peak RSS in MB of the command's process alone, its stderr)."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-S", "-c", _LAUNCHER, *command], capture_output=True, text=True)
    wall = time.perf_counter() - started
    code, peak_kb = (int(value) for value in done.stdout.split())
    if code != 0 or done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr}")
    return wall, peak_kb / 1024, done.stderr.strip()


def make_input(path: Path, minutes: float) -> None:
    """A 44.1 kHz stereo PCM_16 file (piano left, speech + vibraphone right), made in a subprocess
    so this process stays small (a child forked from a large parent reports its size as peak RSS)."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[3]); from end_to_end import make_input; "
        "from pathlib import Path; make_input(Path(sys.argv[1]), float(sys.argv[2]))"
    )
    subprocess.run([sys.executable, "-c", code, str(path), str(minutes), str(ROOT / "bench")], check=True)


def separate_command(song: Path, out: Path, options: tuple[str, ...] = ("-m", "4")) -> list[str]:
    """`nmfsep separate SONG OPTIONS` into OUT (`-m 4` by default), as a user runs it (defaults otherwise)."""
    return [sys.executable, "-m", "nmfsep", "separate", str(song), *options, "-o", str(out), "--force"]


def end_to_end(tmp: Path, repeats: int = 3, iters: int = 200) -> list[dict]:
    song = tmp / "song3.wav"
    make_input(song, 3)
    nmfsep = separate_command(song, tmp / "out")
    same = ["-d", "kl", "--max-iter", str(iters), "--tol", "0"]
    reference = [sys.executable, str(ROOT / "bench" / "reference_pipeline.py"), str(song), "-m", "4"]
    reference += ["--max-iter", str(iters), "-o", str(tmp / "reference")]
    runs = {"nmfsep": nmfsep + same, "reference": reference, "nmfsep defaults": nmfsep}
    results = {name: (np.inf, 0.0, "") for name in runs}
    for _ in range(repeats):  # interleaved, min of repeats
        for name, command in runs.items():
            wall, rss, stderr = run_measured(command)
            best = results[name]
            results[name] = (min(best[0], wall), max(best[1], rss), stderr if wall < best[0] else best[2])
            print(f"  end to end: {name}: {wall:.1f} s, {rss:.0f} MB", flush=True)
    # the reference at the iteration count the default command reached (tol 1e-4 decided it)
    reached = int(results["nmfsep defaults"][2].split(" iterations")[0].rsplit(" ", 1)[1])
    same_count = [*reference[:-4], "--max-iter", str(reached), "-o", str(tmp / "reference")]
    best = (np.inf, 0.0, "")
    for _ in range(repeats):
        wall, rss, _ = run_measured(same_count)
        best = (min(best[0], wall), max(best[1], rss), f"{reached} iterations")
        print(f"  end to end: reference at {reached} iterations: {wall:.1f} s, {rss:.0f} MB", flush=True)
    results[REACHED] = best
    return [{"name": name, "wall": w, "rss": r, "log": log} for name, (w, r, log) in results.items()]


def scaling(tmp: Path, durations=(0.5, 3, 15, 60)) -> list[dict]:
    rows = []
    for minutes in durations:
        song = tmp / f"song{minutes:g}.wav"
        make_input(song, minutes)
        command = separate_command(song, tmp / "out")
        wall, rss, log = run_measured(command)
        song.unlink()
        rows.append({"minutes": minutes, "wall": wall, "rss": rss, "log": log})
        print(f"  scaling: {minutes:g} min: {wall:.1f} s, {rss:.0f} MB", flush=True)
    return rows


#: The private stereo dev set (only read, where present): beside the checkout, or NMFSEP_STEREO_DEV.
REACHED = "reference at the default's iterations"

STEREO_DEV = Path(os.environ.get("NMFSEP_STEREO_DEV", ROOT.parent / "shared" / "data" / "real-stereo-dev"))


def stereo(tmp: Path, quick: bool = False) -> dict:
    """The spatial model's rows (see the module docstring, 6)."""
    sys.path.insert(0, str(ROOT / "bench"))
    import stereo_speed

    rows: dict = {}
    song = tmp / "panned30.wav"
    stereo_speed.make_panned_input(song, 0.5 if not quick else 0.1)
    rows["speed"] = stereo_speed.compare(song, 4, 16, 100 if not quick else 10, repeats=1 if quick else 2)
    song.unlink()
    song = tmp / "panned3.wav"
    stereo_speed.make_panned_input(song, 3 if not quick else 0.5)
    # the default command, as a user runs it, and both engines at 10 iterations on the same file
    command = separate_command(song, tmp / "out", ("--sources", "4"))
    wall, rss, log = run_measured(command)
    print(f"  stereo: --sources 4, 3 min: {wall:.1f} s, {rss:.0f} MB", flush=True)
    rows["three"] = {"wall": wall, "rss": rss, "log": log}
    rows["three_speed"] = stereo_speed.compare(song, 4, 16, 10, repeats=1)
    song.unlink()
    if not STEREO_DEV.is_dir():
        print(f"  stereo: no stereo dev set at {STEREO_DEV} (set NMFSEP_STEREO_DEV): quality not measured")
    elif not quick:
        import stereo_baselines

        methods = ["nmfsep", "nmfsep-mono", "pan", "fastmnmf", "fastmnmf2", "oracle"]
        rows["quality"] = stereo_baselines.evaluate(STEREO_DEV, methods)
    return rows


def stereo_report(rows: dict) -> list[str]:
    speed, three, at_three = rows["speed"], rows["three"], rows["three_speed"]
    out = [
        "",
        "## Stereo sources: the spatial model of `--sources J`",
        "",
        "`nmfsep separate song.wav --sources J` on stereo fits a multichannel NMF (a spatial covariance per",
        "source and frequency and an NMF spectrum per source, Sawada et al. 2013) and writes the sources'",
        "multichannel Wiener images. Next to pyroomacoustics' FastMNMF (Sekiguchi et al. 2019), the nearest",
        "installable tool, with the same sources, NMF bases per source and iterations (tol 0) on the same file",
        "(bench/stereo_speed.py: four sources of the shipped samples panned apart, 44.1 kHz): the whole",
        "separation in-process (STFT, fit, Wiener filters, inverse STFT), min of interleaved runs. FastMNMF",
        "uses its own STFT (block 4096, hop 2048), nmfsep its defaults (n_fft 4096, hop 1024: twice the frames).",
        "",
        "| file | J | bases per source | iterations | FastMNMF (s) | nmfsep (s) | speed-up |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in (speed, at_three):
        out.append(
            f"| {row['seconds']:.0f} s | {row['sources']} | {row['bases']} | {row['iterations']} | "
            f"{row['fastmnmf']:.1f} | {row['nmfsep']:.1f} | **{row['fastmnmf'] / row['nmfsep']:.1f}x** |"
        )
    per_iteration = (
        (at_three["fastmnmf"] / at_three["iterations"]) if at_three["iterations"] else float("nan")
    )
    out += [
        "",
        "The default command on the 3-minute file, `nmfsep separate song.wav --sources 4` (6 bases per source,",
        f"stops at tol 1e-4 or 200 iterations): **{three['wall']:.1f} s** wall, peak RSS {three['rss']:.0f} MB:",
        f"`{three['log']}`. FastMNMF at the same size takes {per_iteration:.1f} s per iteration (above: 10",
        f"iterations), so its usual 100 iterations would take about {100 * per_iteration / 60:.0f} minutes.",
        "Memory holds the complex STFT of both channels (C x K x N complex64: 8 bytes per bin and channel,",
        "memory-mapped to a temporary file beyond `--max-memory`) and the terms of one block of 256 frames;",
        "the spatial statistics are J x K 2 x 2 matrices.",
    ]
    quality = rows.get("quality")
    if quality is None:
        out += ["", f"(Quality on real stereo recordings: no stereo dev set at `{STEREO_DEV}` in this run.)"]
    else:
        sys.path.insert(0, str(ROOT / "bench"))
        import stereo_baselines

        out += [
            "",
            "### Quality on real stereo recordings (private dev set, only read)",
            "",
            f"`python bench/stereo_baselines.py {STEREO_DEV} --methods {' '.join(quality['methods'])}`: mono",
            "downmix SDR (mir_eval bss_eval_sources on the channel means, its best-SIR permutation) and image",
            "SDR (bss_eval_images), per item and source; `nmfsep` is `nmfsep.separate(mix, rate, n_sources=J)`",
            "with every default, `nmfsep-mono` the same with `mono=True` (the grouping route).",
            "",
            stereo_baselines.markdown(quality),
        ]
    return out


def machine() -> list[str]:
    import numba
    import sklearn
    from threadpoolctl import threadpool_info

    cpu = next(
        (line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
        "?",
    )
    memory = next((line.split()[1] for line in open("/proc/meminfo") if line.startswith("MemTotal")), "0")
    numba_layer = numba.threading_layer()  # known once a parallel kernel has run (the benchmarks did)
    lines = [
        f"- CPU: {cpu}, {os.cpu_count()} logical cores; memory {int(memory) / 2**20:.1f} GiB; {platform.platform()}",
        f"- Python {platform.python_version()}, numpy {np.__version__}, scikit-learn {sklearn.__version__}, "
        f"numba {numba.__version__} ({numba_layer} threading layer, {numba.get_num_threads()} threads)",
    ]
    for pool in threadpool_info():
        lines.append(
            f"- {pool['user_api']}: {pool['internal_api']} {pool.get('version')}, {pool['num_threads']} threads "
            f"({pool.get('threading_layer', '')}, {pool.get('architecture', '')})"
        )
    lines.append(
        "- nmfsep separate runs the NMF with one BLAS thread (bit-identical output whatever the machine or --jobs);"
    )
    lines.append(
        "  its numba kernel uses every core, with results independent of the thread count (fixed chunks)."
    )
    return lines


# --------------------------------------------------------------------------------------- report
def report(args, K, N, bound, rows: dict, seconds: float) -> str:
    """results.md from the rows of every part (keys: iteration, quality, e2e, scaling, stereo,
    tolerance, startup, profile)."""
    iteration_rows, quality_rows, e2e_rows = rows["iteration"], rows["quality"], rows["e2e"]
    scaling_rows, stereo_rows, tolerance_rows = rows["scaling"], rows["stereo"], rows["tolerance"]
    startup, profile = rows["startup"], rows["profile"]
    out = [
        "# nmfsep benchmark",
        "",
        f"Written by `make bench` (`python bench/run.py`) on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} "
        f"in {seconds / 60:.1f} minutes. Every ratio below comes from this one run; the machine is shared, so",
        "compare ratios, not absolute times.",
        "",
        "## Machine",
        "",
        *machine(),
        "",
        "## Per iteration: nmfsep vs scikit-learn MU",
        "",
        f"Y: real magnitude spectrogram, K={K} x N={N} float32 ({K * N * 4 / 1e6:.0f} MB; the shipped samples at "
        "22.05 kHz, repeated). Same random initialisation for both; scikit-learn sees frames as samples",
        "(Y^T ~ U^T H^T, as librosa.decompose does), so both update the activations first and follow the same",
        "iterates. Milliseconds per iteration (both updates) = (T(12 iterations) - T(2 iterations)) / 10 for each",
        f"engine, tol 0, interleaved, min of {REPEATS} for each time, each after a 0.3 s pause (OpenBLAS threads",
        "spin for up to ~0.1 s after a product and would slow whichever engine runs next): set-up cancels out.",
        "With tol 0 neither",
        "engine computes the objective between the first and last iterations (nmfsep does at every iteration",
        "when tol > 0: see time to quality). Final divergence: D(Y | HU) after the 12 iterations, float64.",
        "Kernel: numba (fused passes over the data: register-blocked for IS and KL at rank 4 and for EUC up",
        "to rank 16, staged in small buffers otherwise) or numpy (BLAS on tiles of frames).",
        "",
        "| divergence | rank | nmfsep kernel | nmfsep ms/it | scikit-learn ms/it | speed-up | bound ms/it | nmfsep / bound | D nmfsep | D scikit-learn |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in iteration_rows:
        out.append(
            f"| {NAMES[row['beta']]} (beta={row['beta']:g}) | {row['rank']} | {row['kernel']} | {row['ours'] * 1e3:.1f} | "
            f"{row['theirs'] * 1e3:.1f} | **{row['theirs'] / row['ours']:.2f}x** | {row['least'] * 1e3:.2f} | "
            f"{row['ours'] / row['least']:.2f}x | {row['d_ours']:.7g} | {row['d_theirs']:.7g} |"
        )
    shaped = ", ".join(f"rank {r}: {g:.0f}" for r, g in bound["shaped"].items())
    out += [
        "",
        f"Bound, measured in this run: float32 bandwidth {bound['bandwidth']:.1f} GB/s (large add; copy "
        f"{bound['copy_bandwidth']:.1f} GB/s), sgemm {bound['peak']:.0f} GFLOP/s (2048 x 2048 square; at the model's",
        f"shape (N x M) @ (M x K): {shaped}). Least time per iteration = {PASSES} passes over Y at the better",
        "bandwidth + the unavoidable K x N x M products (IS 6: model and two projections per update; KL 4; EUC 2)",
        "at the better sgemm rate. The bandwidth is memory's (arrays of 256 MB); Y is "
        f"{K * N * 4 / 1e6:.0f} MB and this machine's last-level",
        f"cache {last_level_cache()}, so a fused kernel that reads Y twice per iteration can beat this bound (a ratio",
        "below 1 above): the bound assumes every pass comes from memory.",
        "",
        "## The stopping test's cost",
        "",
        "ms per iteration with the default tol 1e-4 against tol 0 over the same iterations, on the same Y, each",
        "(T(run) - T(2 iterations)) / (iterations - 2), min of interleaved runs. With tol the updates bound the",
        "decrease from below at the cost of a pass over the factors, and the objective (a pass over the data",
        "with a log per entry) is computed every 20 iterations and at every one from where the test can hold:",
        "the fit stops at the same iteration as with it computed throughout.",
        "",
        "| divergence | rank | iterations (tol 1e-4) | objective computed | ms/it tol 1e-4 | ms/it tol 0 | ratio |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in tolerance_rows:
        out.append(
            f"| {NAMES[row['beta']]} | {row['rank']} | {row['n']} | {row['computed']} | {row['tol'] * 1e3:.2f} | "
            f"{row['zero'] * 1e3:.2f} | **{row['tol'] / row['zero']:.2f}x** |"
        )
    out += [
        "",
        "## Time to quality",
        "",
        "Seconds for nmfsep to reach the divergence scikit-learn's MU reaches after 200 iterations, from the same",
        "random initialisation (nmfsep computing its objective at every iteration to know, timed to the end of",
        "the iteration after the one that reached it).",
        "",
        "| divergence | rank | scikit-learn: 200 iterations (s) | its divergence | nmfsep: iterations | nmfsep (s) | speed-up |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in quality_rows:
        ours = "not reached" if row["ours"] is None else f"{row['ours']:.2f}"
        ratio = "" if row["ours"] is None else f"**{row['theirs'] / row['ours']:.1f}x**"
        out.append(
            f"| {NAMES[row['beta']]} | {row['rank']} | {row['theirs']:.2f} | {row['target']:.7g} | "
            f"{row['iterations'] or '-'} | {ours} | {ratio} |"
        )
    e2e = {row["name"]: row for row in e2e_rows}
    ours, reference = e2e["nmfsep"], e2e["reference"]
    out += [
        "",
        "## End to end: 3-minute 44.1 kHz stereo, rank 4",
        "",
        "The reference is what a user would write today (`bench/reference_pipeline.py`: librosa.stft per channel,",
        "scikit-learn NMF (solver mu, nndsvda) on the summed magnitude, Wiener masks, librosa.istft per channel per",
        "component, soundfile). Both: KL, 200 iterations (tol 0), 4 components written as WAV. Wall time of the",
        "whole command including start-up, min of 3 interleaved runs; peak RSS of that process alone (wait4).",
        "",
        "| pipeline | wall (s) | peak RSS (MB) |",
        "|---|---:|---:|",
        f"| reference: librosa + scikit-learn | {reference['wall']:.1f} | {reference['rss']:.0f} |",
        f"| `nmfsep separate -m 4 -d kl --max-iter 200 --tol 0` | {ours['wall']:.1f} | {ours['rss']:.0f} |",
        f"| `nmfsep separate -m 4` (defaults: stops at tol 1e-4) | {e2e['nmfsep defaults']['wall']:.1f} | "
        f"{e2e['nmfsep defaults']['rss']:.0f} |",
        f"| reference at the default's {e2e[REACHED]['log']} | {e2e[REACHED]['wall']:.1f} | "
        f"{e2e[REACHED]['rss']:.0f} |",
        "",
        f"Same settings: nmfsep is **{reference['wall'] / ours['wall']:.1f}x** faster with "
        f"**{reference['rss'] / ours['rss']:.1f}x** less memory. nmfsep's own line: `{ours['log']}`. The default",
        f"command against the reference at the same iteration count: **{e2e[REACHED]['wall'] / e2e['nmfsep defaults']['wall']:.1f}x**"
        f" (`{e2e['nmfsep defaults']['log']}`).",
        "",
    ]
    if startup is not None:
        out += [
            "## Start-up",
            "",
            "Wall seconds of a fresh process, min of 5: `nmfsep --help`, and `nmfsep separate song.wav -m 4` on a",
            "10-second 44.1 kHz stereo file (862 frames: at or below backend.SMALL_WORK, when it is on, the numpy",
            "kernel runs and numba, about 0.5 s to import and load, is never imported).",
            "",
            "| command | wall (s) |",
            "|---|---:|",
            f"| `nmfsep --help` | {startup['help']:.2f} |",
            f"| `nmfsep separate song10s.wav -m 4` | {startup['separate']:.2f} |",
            "",
        ]
    if profile:
        out += [
            "## Where an hour goes",
            "",
            "`python bench/profile_long.py --minutes 60` (run by this bench): one in-process run of the default",
            "command on 60 minutes of 44.1 kHz stereo, each stage timed by wrapping the functions that do it. The",
            "synthesis computes the outputs of a block in parallel threads, so its stages add up to more than its",
            "wall time.",
            "",
            profile.strip(),
            "",
        ]
    out += [
        "",
        "## Growth with duration (44.1 kHz stereo, `nmfsep separate -m 4`, defaults)",
        "",
        "| duration | wall (s) | s per audio minute | vs 3 min | peak RSS (MB) |",
        "|---|---:|---:|---:|---:|",
    ]
    three = next((row for row in scaling_rows if row["minutes"] == 3), scaling_rows[0])
    per_minute_3 = three["wall"] / three["minutes"]
    for row in scaling_rows:
        per_minute = row["wall"] / row["minutes"]
        out.append(
            f"| {row['minutes']:g} min | {row['wall']:.1f} | {per_minute:.2f} | {per_minute / per_minute_3:.2f}x | {row['rss']:.0f} |"
        )
    out += [
        "",
        "Memory holds one K x N float32 spectrogram (1.27 GB for 60 minutes at n_fft 2048, hop 512) plus one",
        "block of frames: audio is read, transformed, masked, inverted and written block by block. Beyond",
        "`--max-memory` (default: half the available memory) the spectrogram is memory-mapped to a temporary file.",
        "Iteration counts differ with duration (tol 1e-4 decides); see each run's line:",
        "",
    ]
    out += [f"- {row['minutes']:g} min: `{row['log']}`" for row in scaling_rows]
    out += stereo_report(stereo_rows)
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results.md")
    parser.add_argument(
        "--quick", action="store_true", help="small sizes, to check the script (not for results)"
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    Y = spectrogram(1500 if args.quick else 7752)
    K, N = Y.shape
    print(f"Y: {K} x {N} float32", flush=True)
    bound = machine_bound(Y)
    iteration_rows = per_iteration(
        Y, bound, iters=3 if args.quick else 10, repeats=2 if args.quick else REPEATS
    )
    tolerance_rows = tolerance_cost(Y, repeats=2 if args.quick else REPEATS)
    quality_rows = time_to_quality(Y, iters=20 if args.quick else 200)
    with tempfile.TemporaryDirectory(prefix="nmfsep-bench-") as tmp:
        tmp = Path(tmp)
        e2e_rows = end_to_end(tmp, repeats=1 if args.quick else 3, iters=20 if args.quick else 200)
        scaling_rows = scaling(tmp, (0.5, 1) if args.quick else (0.5, 3, 15, 60))
        startup = start_up(tmp, repeats=2 if args.quick else 5)
        profile = long_profile(tmp, 1 if args.quick else 60)
        stereo_rows = stereo(tmp, quick=args.quick)
    rows = {
        "iteration": iteration_rows,
        "quality": quality_rows,
        "e2e": e2e_rows,
        "scaling": scaling_rows,
        "stereo": stereo_rows,
        "tolerance": tolerance_rows,
        "startup": startup,
        "profile": profile,
    }
    text = report(args, K, N, bound, rows, time.perf_counter() - started)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
