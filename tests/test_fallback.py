"""numba is an accelerator, not a single point of failure (issue 12).

Without numba (missing, no writable cache, no threading layer) a factorization runs on the numpy
kernels with one warning per process and gives the same iterates; ``kernels_need_compiling`` tells
from numba's on-disk cache whether the first run will compile. Real subprocesses, not mocks: numba is
made unavailable the way users meet it.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent
SAMPLE = ROOT / "samples" / "hotcrossbuns_piano.wav"

#: (beta, free components, fixed bases, sparsity): IS, KL, EUC and a general beta at total ranks 4
#: (the register-blocked numba kernels for IS and KL) and 8 (the general ones), with sparsity and
#: with fixed bases.
CASES = [
    (0.0, 4, 0, 0.0),
    (1.0, 4, 0, 0.0),
    (2.0, 4, 0, 0.0),
    (0.5, 4, 0, 0.0),
    (0.0, 8, 0, 0.0),
    (1.0, 8, 0, 0.0),
    (2.0, 8, 0, 0.0),
    (0.5, 8, 0, 0.0),
    (1.0, 4, 0, 0.3),
    (2.0, 8, 0, 0.3),
    (0.0, 2, 2, 0.0),
    (1.5, 6, 2, 0.3),
]


def _factorize_cases() -> dict[str, np.ndarray]:
    """Every case of CASES with kernel="auto", float32; run here and in the subprocesses."""
    from nmfsep.nmf import factorize

    rng = np.random.default_rng(12)
    # frames that divide evenly into neither chunks, groups of four nor tiles
    Y = rng.gamma(1.0, size=(67, 6)) @ rng.gamma(0.5, size=(6, 611)) + 0.01
    fixed = rng.random((67, 2))
    results = {}
    for index, (beta, rank, n_fixed, sparsity) in enumerate(CASES):
        fit = factorize(
            Y,
            rank,
            beta=beta,
            fixed_bases=fixed if n_fixed else None,
            sparsity=sparsity,
            max_iter=25,
            tol=0,
            record_objective=True,
        )
        results[f"bases{index}"] = fit.bases
        results[f"activations{index}"] = fit.activations
        results[f"objective{index}"] = fit.objective
        results[f"kernel{index}"] = np.array(fit.settings["kernel"])
    return results


# Runs in the subprocess after its set-up: every case, then the explicit kernel="numba" and the
# helpers. Warnings are recorded with the "always" filter, so "once" is the engine's doing.
_DRIVER = """
import json, sys, warnings
sys.path.insert(0, {tests!r})
import nmfsep
from nmfsep.errors import NmfsepWarning, ParameterError
from nmfsep.nmf import factorize, kernels_need_compiling, numba_status
from test_fallback import _factorize_cases
import numpy as np

report = {{"package": nmfsep.__file__}}
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    np.savez({out!r}, **_factorize_cases())
report["warnings"] = [str(w.message) for w in caught if issubclass(w.category, NmfsepWarning)]
report["explicit"] = None
try:
    factorize(np.ones((5, 7)), 2, kernel="numba")
except ParameterError as error:
    report["explicit"] = str(error)
report["status"] = numba_status(4, 1.0)
report["need_compiling"] = kernels_need_compiling(4, "kl")
print(json.dumps(report))
"""


def _run(code: str, env: dict[str, str], cwd: Path) -> dict:
    """Run Python code in a fresh interpreter; the JSON object it prints last."""
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _copy_package(destination: Path, with_cache: bool = False) -> Path:
    """A copy of the nmfsep package under ``destination`` (its numba cache too if asked)."""
    ignore = None if with_cache else shutil.ignore_patterns("__pycache__")
    shutil.copytree(ROOT / "nmfsep", destination / "nmfsep", ignore=ignore)
    return destination / "nmfsep"


@pytest.fixture(scope="module")
def numba_results() -> dict[str, np.ndarray]:
    """The reference: every case on the numba kernels, in this process."""
    return _factorize_cases()


def _fallback(setup: str, env: dict[str, str], tmp_path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    out = tmp_path / "results.npz"
    report = _run(setup + _DRIVER.format(tests=str(TESTS), out=str(out)), env, tmp_path)
    with np.load(out) as stored:
        return report, dict(stored)


def _check_same_iterates(fallback: dict[str, np.ndarray], reference: dict[str, np.ndarray]) -> None:
    rtol = 2e-3  # float32 over 25 iterations, as in test_nmf's same-iterates test
    for index, case in enumerate(CASES):
        assert str(reference[f"kernel{index}"]) == "numba", case
        assert str(fallback[f"kernel{index}"]) == "numpy", case
        np.testing.assert_allclose(
            fallback[f"objective{index}"], reference[f"objective{index}"], rtol=rtol, err_msg=str(case)
        )
        np.testing.assert_allclose(
            fallback[f"bases{index}"],
            reference[f"bases{index}"],
            rtol=10 * rtol,
            atol=1e-6,
            err_msg=str(case),
        )
        scale = reference[f"activations{index}"].max()
        np.testing.assert_allclose(
            fallback[f"activations{index}"],
            reference[f"activations{index}"],
            rtol=10 * rtol,
            atol=1e-6 * scale,
            err_msg=str(case),
        )


def _check_one_warning(report: dict, reason: str) -> None:
    assert len(report["warnings"]) == 1, report["warnings"]  # once per process, for 12 factorizations
    message = report["warnings"][0]
    assert "\n" not in message and message.startswith("numba kernels unavailable (")
    assert reason in message and "using the numpy kernels" in message
    assert report["status"] is not None and reason in report["status"]
    assert report["explicit"].startswith("kernel='numba' cannot be used: ") and reason in report["explicit"]
    assert report["need_compiling"] is False


def test_without_numba_the_numpy_kernels_give_the_same_iterates(numba_results, tmp_path):
    """numba not installed (or failing to import): one warning naming the ImportError."""
    report, results = _fallback("import sys; sys.modules['numba'] = None\n", dict(os.environ), tmp_path)
    assert report["package"] == str(ROOT / "nmfsep" / "__init__.py")
    _check_one_warning(report, "Error: import of numba halted")
    _check_same_iterates(results, numba_results)


def test_without_a_writable_numba_cache_the_numpy_kernels_run(numba_results, tmp_path):
    """No cache locator: the package's __pycache__, NUMBA_CACHE_DIR and the user cache directory
    cannot be created (paths under a regular file: chmod does not stop root), so numba's
    ``cache=True`` raises its real RuntimeError when the kernels module is imported."""
    package = _copy_package(tmp_path / "site")
    (package / "nmf" / "__pycache__").write_text("not a directory")
    blocker = tmp_path / "blocker"
    blocker.write_text("a regular file")
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "site"))
    env.update(NUMBA_CACHE_DIR=str(blocker / "numba"), XDG_CACHE_HOME=str(blocker / "xdg"))
    report, results = _fallback("", env, tmp_path)
    assert report["package"] == str(package / "__init__.py")
    _check_one_warning(report, "RuntimeError: cannot cache function")
    assert "no locator available" in report["warnings"][0]
    _check_same_iterates(results, numba_results)


def test_without_a_threading_layer_the_numpy_kernels_run(numba_results, tmp_path):
    """numba imports and its kernels are cached, but they cannot run (no TBB for the threading
    layer asked for): the failure shows when the kernels are loaded, before any work."""
    report, results = _fallback("", dict(os.environ, NUMBA_THREADING_LAYER="tbb"), tmp_path)
    if report["status"] is None:
        pytest.skip("TBB is installed: its threading layer loads")
    _check_one_warning(report, "ValueError")
    _check_same_iterates(results, numba_results)


def test_with_numba_jit_disabled_the_numpy_kernels_run(tmp_path):
    """NUMBA_DISABLE_JIT would run the kernels as Python loops (hours per file): not usable."""
    code = """
import json, warnings
import numpy as np
from nmfsep.errors import ParameterError
from nmfsep.nmf import factorize
Y = np.random.default_rng(0).random((20, 30))
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    kernel = factorize(Y, 3, max_iter=5).settings["kernel"]
try:
    factorize(Y, 3, kernel="numba")
except ParameterError as error:
    explicit = str(error)
print(json.dumps({"kernel": kernel, "warnings": [str(w.message) for w in caught], "explicit": explicit}))
"""
    report = _run(code, dict(os.environ, NUMBA_DISABLE_JIT="1"), tmp_path)
    assert report["kernel"] == "numpy"
    assert [message.split(":")[0] for message in report["warnings"]] == [
        "numba kernels unavailable (NUMBA_DISABLE_JIT is set)"
    ]
    assert report["explicit"] == "kernel='numba' cannot be used: NUMBA_DISABLE_JIT is set"


@pytest.mark.parametrize("rank", [1, 4, 8])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_euclidean_objective_without_numba_keeps_float64_accuracy(rank, dtype):
    """The numpy fallback of the EUC objective's projections equals numba's (exact float32 products
    summed in float64), so the expansion ||Y||^2 - 2 <U, H^T Y> + <H^T H, U U^T> stays accurate for
    a fit so close that its terms cancel to 1e-14: float32 sums would be off by 1e-7."""
    from nmfsep.nmf import kernels
    from nmfsep.nmf.updates import EUC, N_CHUNKS, _NumpyKernel

    rng = np.random.default_rng(3)
    bases_t = rng.random((rank, 67)).astype(dtype)
    acts_t = rng.random((611, rank)).astype(dtype)
    data = acts_t @ bases_t  # Y = H U up to rounding
    bases64, acts64 = bases_t.astype(np.float64), acts_t.astype(np.float64)
    fallback, fused = np.empty_like(acts_t), np.empty_like(acts_t)
    cross = _NumpyKernel(data, EUC)._euclidean_cross(data, bases64, acts64, fallback)
    sums = np.empty(N_CHUNKS)
    kernels.euclidean_terms(data, bases_t, acts_t, fused, sums)
    assert cross == pytest.approx(math.fsum(sums), rel=1e-13)
    # float32: the same float64 sums, rounded once; float64: summed in another order
    np.testing.assert_allclose(
        fallback, fused, rtol=np.finfo(np.float32).eps if dtype == np.float32 else 1e-13
    )
    data64 = data.astype(np.float64)
    norm = math.fsum((data64 * data64).ravel())
    expansion = norm - 2.0 * cross + float(np.sum((bases64 @ bases64.T) * (acts64.T @ acts64)))
    direct = math.fsum(((data64 - acts64 @ bases64) ** 2).ravel())
    assert expansion == pytest.approx(direct, abs=1e-13 * norm)


_NEED_COMPILING = """
import json, time
import nmfsep
from nmfsep.nmf import kernels_need_compiling
started = time.perf_counter()
cases = [(4, "kl"), (3, "is"), (8, 0.5), (4, "euc"), (16, "euc"), (4, "kl", "auto", "float64"),
         (64, "kl"), (32, "euc"), (4, "euc", "numpy")]
answers = [kernels_need_compiling(*case) for case in cases]
print(json.dumps({"package": nmfsep.__file__, "answers": answers,
                  "seconds": time.perf_counter() - started}))
"""
#: The answers with an empty cache: numba kernels at small ranks (and the numpy kernel's EUC
#: objective); BLAS alone at large ranks.
_EMPTY = [True, True, True, True, True, True, False, False, True]


@pytest.fixture(scope="module")
def warm_cache() -> None:
    """Every kernel in numba's cache (compiles only if kernels.py changed since the last run)."""
    from nmfsep.nmf import kernels

    kernels.warm_up()


def test_kernels_need_compiling_is_false_after_the_warm_up(warm_cache, tmp_path):
    report = _run(_NEED_COMPILING, dict(os.environ), tmp_path)  # a fresh process: nothing loaded
    assert report["package"] == str(ROOT / "nmfsep" / "__init__.py")
    assert report["answers"] == [False] * len(_EMPTY)


def test_kernels_need_compiling_with_an_empty_cache_compiles_nothing(tmp_path):
    """A copy of the package with no __pycache__ and an empty NUMBA_CACHE_DIR (a fresh install):
    True where numba kernels will run, answered quickly and without compiling anything."""
    package = _copy_package(tmp_path / "site")
    cache = tmp_path / "numba-cache"
    cache.mkdir()
    env = dict(os.environ, PYTHONPATH=str(package.parent), NUMBA_CACHE_DIR=str(cache))
    report = _run(_NEED_COMPILING, env, tmp_path)
    assert report["package"] == str(package / "__init__.py")
    assert report["answers"] == _EMPTY
    assert report["seconds"] < 5
    assert not list(cache.rglob("*.nb*"))  # no index, no compiled code


def test_kernels_need_compiling_reads_a_stale_cache_as_empty(warm_cache, tmp_path):
    """A copy of the package with the warmed in-tree cache is fresh; once its kernels.py changes,
    numba will recompile, and the answer says so."""
    if not list((ROOT / "nmfsep" / "nmf" / "__pycache__").glob("kernels.*.nbi")):
        pytest.skip("numba caches elsewhere (NUMBA_CACHE_DIR or a read-only package)")
    package = _copy_package(tmp_path / "site", with_cache=True)
    env = {key: value for key, value in os.environ.items() if key != "NUMBA_CACHE_DIR"}
    env["PYTHONPATH"] = str(package.parent)
    report = _run(_NEED_COMPILING, env, tmp_path)
    assert report["package"] == str(package / "__init__.py")
    assert report["answers"] == [False] * len(_EMPTY)
    with open(package / "nmf" / "kernels.py", "a") as source:
        source.write("\n# edited\n")
    assert _run(_NEED_COMPILING, env, tmp_path)["answers"] == _EMPTY


def test_the_warm_up_covers_every_signature_the_engine_calls(warm_cache, tmp_path):
    """numba compiles per signature of argument types: if the engine called a kernel with types
    the warm-up does not (a read-only or strided array, an int32), a first run would compile and
    ``kernels_need_compiling`` would answer for the wrong code."""
    from nmfsep.nmf import factorize, kernels

    dispatchers = [
        kernel for family in kernels.FAMILIES for kernel, _ in kernels._examples(family, np.float32)
    ]
    before = {kernel: set(kernel.overloads) for kernel in dispatchers}
    rng = np.random.default_rng(0)
    Y = rng.random((30, 50))
    for dtype in (np.float32, np.float64):
        for beta in (0.0, 1.0, 2.0, 0.5):
            for rank, fixed in ((1, None), (4, None), (2, rng.random((30, 2))), (8, None), (16, None)):
                for kernel in ("auto", "numpy"):
                    factorize(
                        Y,
                        rank,
                        beta=beta,
                        dtype=dtype,
                        fixed_bases=fixed,
                        max_iter=2,
                        tol=1e-9,
                        kernel=kernel,
                    )
    # the pipeline's route: a frame-major memory map, scaled in place
    frames = np.lib.format.open_memmap(tmp_path / "frames.npy", mode="w+", dtype=np.float32, shape=(50, 30))
    for beta in (0.0, 1.0, 2.0, 0.5):
        frames[:] = Y.T
        factorize(frames.T, 4, beta=beta, max_iter=2, overwrite_input=True)
    assert {kernel.__name__: set(kernel.overloads) - before[kernel] for kernel in dispatchers} == {
        kernel.__name__: set() for kernel in dispatchers
    }


def _cli(args: list, env: dict[str, str], cwd: Path, setup: str = "") -> subprocess.CompletedProcess:
    """The real CLI in a fresh interpreter, after ``setup`` (code that breaks numba, say)."""
    code = f"{setup}\nimport sys\nfrom nmfsep.cli import main\nmain({[str(a) for a in args]!r}, prog_name='nmfsep')"
    return subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True, text=True, timeout=300
    )


def test_the_cli_without_numba_separates_the_same_with_one_warning(tmp_path):
    signal, rate = sf.read(SAMPLE, dtype="float32")
    # long enough for numba (shorter files run the numpy kernel anyway: see backend.SMALL_WORK)
    signal = np.tile(signal, 3)
    song = tmp_path / "song.wav"
    sf.write(song, signal, rate, subtype="FLOAT")
    args = ["separate", song, "-m", "3", "--max-iter", "30", "--tol", "0", "--subtype", "FLOAT"]
    with_numba = _cli([*args, "-o", tmp_path / "numba"], dict(os.environ), tmp_path)
    assert with_numba.returncode == 0 and with_numba.stderr.count("\n") == 1, with_numba.stderr
    without = _cli(
        [*args, "-o", tmp_path / "numpy"],
        dict(os.environ),
        tmp_path,
        "import sys; sys.modules['numba'] = None",
    )
    assert without.returncode == 0, without.stderr
    lines = without.stderr.splitlines()
    assert len(lines) == 2 and lines[0].startswith("Warning: numba kernels unavailable (ModuleNotFoundError")
    peak = np.abs(signal).max()
    for name in ("c1", "c2", "c3"):
        numba_part = sf.read(tmp_path / "numba" / "song" / f"{name}.wav")[0]
        numpy_part = sf.read(tmp_path / "numpy" / "song" / f"{name}.wav")[0]
        # float32 iterates of two summation orders over 30 iterations: ~1e-4 of full scale measured
        assert np.abs(numba_part - numpy_part).max() < 2e-3 * peak, name


def test_the_first_run_that_compiles_says_so(tmp_path):
    copy = _copy_package(tmp_path / "site")
    env = {**os.environ, "PYTHONPATH": str(copy.parent), "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    signal, rate = sf.read(SAMPLE, dtype="float32")
    song = tmp_path / "song.wav"
    sf.write(song, signal[: 2 * rate], rate)
    # the Euclidean kernels: the quickest family to compile (about 5 s)
    args = ["separate", song, "-m", "2", "-d", "euc", "--max-iter", "5", "--force", "-o", tmp_path / "out"]
    first = _cli(args, env, tmp_path, f"import nmfsep; assert nmfsep.__file__.startswith({str(copy)!r})")
    assert first.returncode == 0, first.stderr
    assert first.stderr.startswith("Compiling the numba kernels for this installation (once;"), first.stderr
    second = _cli(args, env, tmp_path)
    assert second.returncode == 0 and "Compiling" not in second.stderr, second.stderr


def test_the_kernel_for_a_size_is_numpy_only_up_to_small_work(monkeypatch):
    """The rule of backend.kernel_for_size at its edge (SMALL_WORK is 0 for now: see backend)."""
    from nmfsep.nmf import backend

    monkeypatch.setattr(backend, "SMALL_WORK", 1 << 22)
    assert backend.kernel_for_size("auto", 4, (1 << 22) // 4) == "numpy"
    assert backend.kernel_for_size("auto", 4, (1 << 22) // 4 + 1) == "auto"
    assert backend.kernel_for_size("numba", 4, 10) == "numba"  # an explicit choice stands
    monkeypatch.setattr(backend, "SMALL_WORK", 0)
    assert backend.kernel_for_size("auto", 1, 1) == "auto"
