"""The NMF engine: divergence, MM monotonicity for every beta, initialisation, options, validation."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from nmfsep.errors import ParameterError
from nmfsep.nmf import DIVERGENCES, beta_divergence, beta_from_name, factorize, mm_exponent
from nmfsep.nmf.factorize import CHECK_EVERY
from nmfsep.nmf.init import nndsvda_init, random_init, randomized_svd
from nmfsep.nmf.updates import MMWorkspace

BETAS = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0]


def _naive_divergence(Y, V, beta):
    """Entry-by-entry reference, written independently of the engine."""
    total = 0.0
    for y, v in zip(Y.ravel(), V.ravel(), strict=True):
        if beta == 0:
            total += y / v - np.log(y / v) - 1
        elif beta == 1:
            total += (y * np.log(y / v) if y > 0 else 0.0) - y + v
        else:
            total += (y**beta + (beta - 1) * v**beta - beta * y * v ** (beta - 1)) / (beta * (beta - 1))
    return total


def _penalised(Y, result, beta, sparsity):
    Yf = np.maximum(Y, result.settings["absolute_floor"])
    H, U = result.bases.astype(float), result.activations.astype(float)
    return beta_divergence(Yf, H @ U, beta) + sparsity * float(np.linalg.norm(H, axis=0) @ U.sum(axis=1))


@pytest.mark.parametrize("beta", [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, -0.5])
def test_divergence_matches_naive_reference(rng, beta):
    Y = rng.random((6, 7)) + 0.1
    V = rng.random((6, 7)) + 0.1
    assert beta_divergence(Y, V, beta) == pytest.approx(_naive_divergence(Y, V, beta), rel=1e-10)
    assert beta_divergence(Y, Y, beta) == pytest.approx(0.0, abs=1e-12)
    assert beta_divergence(Y, V, beta) > 0


def test_kl_divergence_finite_with_zeros_in_data(rng):
    Y = rng.random((5, 5))
    Y[0] = 0
    assert np.isfinite(beta_divergence(Y, rng.random((5, 5)) + 0.1, 1.0))


def test_divergence_names():
    assert {name: beta_from_name(name) for name in ("is", "kl", "euc")} == {"is": 0.0, "kl": 1.0, "euc": 2.0}
    assert beta_from_name("Itakura-Saito") == 0.0
    assert beta_from_name(0.7) == 0.7
    assert set(DIVERGENCES.values()) == {0.0, 1.0, 2.0}
    with pytest.raises(ParameterError, match="divergence='fro' is not one of"):
        beta_from_name("fro")
    with pytest.raises(ValueError, match="finite"):
        beta_from_name(float("nan"))


@pytest.mark.parametrize(
    ("beta", "gamma"),
    [(-1.0, 1 / 3), (0.0, 0.5), (0.5, 1 / 1.5), (1.0, 1.0), (1.5, 1.0), (2.0, 1.0), (3.0, 0.5)],
)
def test_mm_exponent_follows_fevotte_idier(beta, gamma):
    assert mm_exponent(beta) == pytest.approx(gamma)


@pytest.mark.parametrize("beta", BETAS)
@pytest.mark.parametrize("sparsity", [0.0, 0.5])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("fixed", [False, True])
@pytest.mark.parametrize("kernel", ["numba", "numpy"])
def test_objective_never_increases(low_rank, beta, sparsity, dtype, fixed, kernel):
    """MM with the Fevotte-Idier exponent: non-increasing at every iteration, data with exact zeros."""
    fixed_bases = np.random.default_rng(1).random((low_rank.shape[0], 3)) if fixed else None
    result = factorize(
        low_rank,
        0 if fixed else 5,
        beta=beta,
        max_iter=60,
        tol=0,
        sparsity=sparsity,
        dtype=dtype,
        init="random",
        fixed_bases=fixed_bases,
        seed=3,
        kernel=kernel,
        record_objective=True,
    )
    assert result.settings["kernel"] == kernel
    history = result.objective
    assert len(history) == 61 and np.all(np.isfinite(history))
    # float64: exact to rounding; float32: objective sums carry ~1e-6 relative rounding
    slack = 1e-10 if dtype == np.float64 else 2e-5
    increases = np.diff(history) / np.abs(history[:-1])
    assert increases.max() <= slack, f"objective rose by {increases.max():.3g} (relative)"
    assert history[-1] < history[0]
    # the history's last value is the objective of what is returned
    assert history[-1] == pytest.approx(_penalised(low_rank, result, beta, sparsity), rel=1e-4)
    assert result.bases.dtype == dtype and result.activations.dtype == dtype
    assert np.all(result.bases >= 0) and np.all(result.activations >= 0)


@pytest.mark.parametrize("beta", [0.0, 0.5, 1.0, 2.0, 3.0])
@pytest.mark.parametrize("sparsity", [0.0, 0.3])
@pytest.mark.parametrize("n_fixed", [0, 1])
@pytest.mark.parametrize("rank", [3, 5])
@pytest.mark.parametrize(("dtype", "rtol"), [(np.float64, 1e-9), (np.float32, 2e-3)])
def test_kernels_give_the_same_iterates(rng, beta, sparsity, n_fixed, rank, dtype, rtol):
    """The fused numba kernels and BLAS on tiles compute the same updates (up to rounding).

    Ranks 3 and 4 (with a fixed basis) take the register-blocked kernels for IS and KL, rank 5 and
    6 the general ones. Shapes are chosen so that frames do not divide evenly into chunks, groups
    of four or tiles.
    """
    Y = rng.gamma(1.0, size=(67, 6)) @ rng.gamma(0.5, size=(6, 1237)) + 0.01
    fixed = rng.random((67, n_fixed)) if n_fixed else None
    kwargs = dict(max_iter=25, tol=0, init="nndsvda", seed=1, dtype=dtype, sparsity=sparsity)
    fused = factorize(Y, rank, beta=beta, kernel="numba", fixed_bases=fixed, **kwargs)
    tiled = factorize(Y, rank, beta=beta, kernel="numpy", fixed_bases=fixed, **kwargs)
    np.testing.assert_allclose(fused.objective, tiled.objective, rtol=rtol)
    np.testing.assert_allclose(fused.bases, tiled.bases, rtol=rtol * 10, atol=rtol * 1e-3)
    scale = tiled.activations.max()
    np.testing.assert_allclose(fused.activations, tiled.activations, rtol=rtol * 10, atol=rtol * 1e-3 * scale)


@pytest.fixture
def one_numba_thread():
    """One numba thread for small problems (results do not depend on it, see the test below): on
    2 busy cores the parallel regions spend longer waiting for each other than computing."""
    import numba

    previous = numba.get_num_threads()
    numba.set_num_threads(1)
    yield
    numba.set_num_threads(previous)


def _count_calls(monkeypatch, module, name):
    """Count the calls of ``module.name`` (a kernel looked up at call time) in a list."""
    calls = []
    original = getattr(module, name)

    def counted(*args):
        calls.append(name)
        return original(*args)

    monkeypatch.setattr(module, name, counted)
    return calls


@pytest.mark.parametrize("beta", [1.0, 0.0])
@pytest.mark.parametrize("tol", [0.0, 1e-4, 1e-2])
@pytest.mark.parametrize("sparsity", [0.0, 0.3])
@pytest.mark.parametrize(("rank", "n_fixed"), [(4, 0), (2, 1)])
def test_one_pass_iteration_matches_two_passes(
    rng, monkeypatch, one_numba_thread, beta, tol, sparsity, rank, n_fixed
):
    """The numba kernel's one pass per iteration (KL and IS up to rank 4) gives the iterates of a U
    pass then an H pass: bit for bit for KL, to float32 rounding for IS; the objective history and
    the stopping iteration too (tol 1e-2 stops early, between an iteration's U and H updates).

    Rank 4, and rank 3 with a fixed basis (padded to four, one row of the sums dropped); 1237
    frames: the chunks do not divide into groups of four, so single frames are covered too.
    """
    from nmfsep.nmf import kernels, updates
    from nmfsep.nmf.backend import load_family

    Y = rng.gamma(1.0, size=(67, 6)) @ rng.gamma(0.5, size=(6, 1237)) + 0.01
    fixed = rng.random((67, n_fixed)) if n_fixed else None
    kwargs = dict(beta=beta, max_iter=40, tol=tol, sparsity=sparsity, fixed_bases=fixed, kernel="numba")
    load_family("rank4", np.float32)  # once per process, before counting (it runs the kernels)
    passes = _count_calls(monkeypatch, kernels, "basis_terms4")
    one = factorize(Y, rank, **kwargs)
    assert passes == []  # the H updates took their sums from the U updates' passes
    monkeypatch.setattr(updates, "FUSED_ITERATION", False)
    two = factorize(Y, rank, **kwargs)
    assert len(passes) == two.n_iter  # one H update per iteration (not after the U update that stops)
    assert (one.n_iter, one.converged) == (two.n_iter, two.converged)
    if tol != 1e-4:
        assert two.converged == (tol == 1e-2)
    assert np.array_equal(np.isnan(one.objective), np.isnan(two.objective))
    if beta == 1.0:
        np.testing.assert_array_equal(one.bases, two.bases)
        np.testing.assert_array_equal(one.activations, two.activations)
        np.testing.assert_array_equal(one.objective, two.objective)
    else:
        np.testing.assert_allclose(one.bases, two.bases, rtol=1e-5)
        np.testing.assert_allclose(one.activations, two.activations, rtol=1e-5)
        np.testing.assert_allclose(one.objective, two.objective, rtol=1e-5)


@pytest.mark.parametrize("beta", [1.0, 0.0])
@pytest.mark.parametrize("sparsity", [0.0, 0.3])
def test_one_pass_reports_the_objective_and_drop_of_two_passes(rng, one_numba_thread, beta, sparsity):
    """MMWorkspace level: with ``stage_bases`` the U update returns the same objective, reports the
    same majorizer drop (summed in another order: float64 rounding), and the next H update uses the
    staged sums -- only for the same factors: other ones get a pass of their own."""
    Y = _spectrogram_like(rng, N=301)
    data = np.ascontiguousarray(Y.T / Y.max(), dtype=np.float32)
    M, free = 4, slice(1, 4)  # basis 0 fixed
    one = MMWorkspace(data, beta, sparsity, M, free, kernel="numba")
    two = MMWorkspace(data, beta, sparsity, M, free, kernel="numba")
    assert one.fused
    bases_t = (rng.random((M, Y.shape[0])) + 0.1).astype(np.float32)
    acts_t = (rng.random((Y.shape[1], M)) + 0.1).astype(np.float32)
    factors = {workspace: (bases_t.copy(), acts_t.copy()) for workspace in (one, two)}
    for _ in range(5):
        values, drops = [], []
        for workspace, stage in ((one, True), (two, False)):
            H, U = factors[workspace]
            values.append(workspace.update_activations(H, U, True, want_decrease=True, stage_bases=stage))
            drops.append(workspace.decrease)
            workspace.update_bases(H, U, want_decrease=True)
            drops.append(workspace.decrease)
        assert values[0] == pytest.approx(values[1], rel=0 if beta == 1.0 else 1e-6)
        assert drops[0] == pytest.approx(drops[2], rel=1e-12 if beta == 1.0 else 1e-5) and drops[0] > 0
        assert drops[1] == pytest.approx(drops[3], rel=0 if beta == 1.0 else 1e-5)
    if beta == 1.0:
        for got, expected in zip(factors[one], factors[two], strict=True):
            np.testing.assert_array_equal(got, expected)
    # staged sums belong to the factors they were computed with
    H, U = factors[one]
    one.update_activations(H, U, False, stage_bases=True)
    other = H.copy()
    one.update_bases(other, U)  # another H: its own pass, not the staged sums of H
    two.update_activations(*factors[two], False)
    two.update_bases(factors[two][0].copy(), factors[two][1])
    np.testing.assert_allclose(one.numerator_h, two.numerator_h, rtol=1e-5)


def test_one_pass_iteration_does_not_depend_on_the_thread_count(rng):
    """Fixed chunks summed in a fixed order: the same bits on one thread as on every core."""
    import numba

    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("numba runs one thread here")
    Y = rng.gamma(1.0, size=(67, 6)) @ rng.gamma(0.5, size=(6, 1237)) + 0.01
    results = {}
    previous = numba.get_num_threads()
    try:
        for threads in (1, numba.config.NUMBA_NUM_THREADS):
            numba.set_num_threads(threads)
            for beta in (0.0, 1.0):
                fit = factorize(Y, 4, beta=beta, max_iter=10, tol=1e-4, kernel="numba")
                results.setdefault(beta, []).append(fit)
    finally:
        numba.set_num_threads(previous)
    for expected, got in results.values():
        np.testing.assert_array_equal(got.bases, expected.bases)
        np.testing.assert_array_equal(got.activations, expected.activations)
        np.testing.assert_array_equal(got.objective, expected.objective)


def test_auto_kernel_by_rank(low_rank):
    from nmfsep.nmf.backend import EUC_NUMBA_MAX_RANK, NUMBA_MAX_RANK

    data = np.tile(low_rank, (2, 1))
    small = factorize(low_rank, 2, max_iter=1)
    euclidean = factorize(low_rank, 2, max_iter=1, beta="euc")
    large = factorize(data, NUMBA_MAX_RANK + 1, max_iter=1)
    large_euclidean = factorize(data, EUC_NUMBA_MAX_RANK + 1, max_iter=1, beta="euc")
    kernels = [result.settings["kernel"] for result in (small, euclidean, large, large_euclidean)]
    assert kernels == ["numba", "numba", "numpy", "numpy"]
    with pytest.raises(ParameterError, match="kernel='cuda' is not one of"):
        factorize(low_rank, 2, kernel="cuda")


@pytest.mark.parametrize("kernel", ["numba", "numpy"])
@pytest.mark.parametrize("beta", [0.0, 1.0, 2.0, 0.5])
@pytest.mark.parametrize("tol", [0.0, 1e-12])
def test_no_data_sized_allocation_inside_the_loop(rng, kernel, beta, tol):
    """Scratch is per tile or per frame: after the first iteration nothing near K x N is allocated.

    tracemalloc sees numpy's allocations (the numpy kernel and all glue code). The numba kernel
    allocates through numba's own runtime, so its allocations are counted there instead: a
    constant number per call (per chunk buffers), not per frame.
    """
    import tracemalloc

    from numba.core.runtime import _nrt_python as nrt
    from numba.core.runtime import rtsys

    Y = rng.gamma(1.0, size=(513, 8)) @ rng.gamma(0.5, size=(8, 6000)) + 0.01  # 12 MB in float32
    data_bytes = Y.size * 4
    peaks, numba_allocations, baseline = [], [], []

    def callback(progress):
        if progress.iteration == 1:
            tracemalloc.reset_peak()
            baseline.append(tracemalloc.get_traced_memory()[0])  # the data and factors, made before
        peaks.append(tracemalloc.get_traced_memory()[1] - baseline[0])
        numba_allocations.append(rtsys.get_allocation_stats().alloc)

    enabled = nrt.memsys_stats_enabled()
    nrt.memsys_enable_stats()
    tracemalloc.start()
    try:
        factorize(Y, 4, beta=beta, max_iter=6, tol=tol, kernel=kernel, callback=callback)
    finally:
        tracemalloc.stop()
        if not enabled:
            nrt.memsys_disable_stats()
    # a tile of 512 frames is 1/12 of the data; a K x N temporary would be the whole of it
    assert max(peaks[1:]) < data_bytes / 4, f"peak {max(peaks[1:]) / 1e6:.1f} MB inside the loop"
    per_iteration = np.diff(numba_allocations[1:])
    assert np.all(per_iteration == per_iteration[0]) and per_iteration[0] <= 8 * 16


@pytest.mark.parametrize("beta", [0.0, 1.0, 2.0])
def test_special_cases_agree_with_general_formula(low_rank, beta):
    """The beta = 0, 1, 2 branches are the limits of the general update (continuity in beta)."""
    kwargs = dict(max_iter=20, tol=0, init="random", seed=0, dtype=np.float64)
    exact = factorize(low_rank, 4, beta=beta, **kwargs)
    nearby = factorize(low_rank, 4, beta=beta + 1e-7, **kwargs)
    np.testing.assert_allclose(exact.bases, nearby.bases, rtol=1e-4, atol=1e-8)
    np.testing.assert_allclose(exact.activations, nearby.activations, rtol=1e-4, atol=1e-6)


def test_zeros_do_not_break_itakura_saito(rng):
    """IS on a spectrogram-like matrix with digital silence: finite, converging, zeros modelled small."""
    Y = rng.gamma(1.0, size=(64, 4)) @ rng.gamma(0.5, size=(4, 200))
    Y[:, :50] = 0.0  # silence
    Y[40:] = 0.0  # band-limited
    result = factorize(Y, 4, beta="is", max_iter=100, tol=0, record_objective=True)
    model = result.bases @ result.activations
    assert np.all(np.isfinite(model)) and np.all(np.isfinite(result.objective))
    assert np.all(np.diff(result.objective) <= 1e-5 * np.abs(result.objective[:-1]))
    floor = result.settings["absolute_floor"]
    assert floor == pytest.approx(1e-6 * Y.max())
    assert model[:, :50].max() < 100 * floor


def test_floor_zero_with_is_and_zeros_is_refused(low_rank):
    with pytest.raises(ParameterError, match="infinite where Y has zeros"):
        factorize(low_rank, 2, beta=0, floor=0)


def test_exact_low_rank_is_recovered(rng):
    Y = rng.random((30, 3)) @ rng.random((3, 50)) + 0.01
    result = factorize(Y, 3, beta="euc", max_iter=3000, tol=0, dtype=np.float64)
    residual = np.linalg.norm(result.bases @ result.activations - Y) / np.linalg.norm(Y)
    assert residual < 5e-3


@pytest.mark.parametrize("norm", ["l1", "l2"])
def test_bases_are_normalised(low_rank, norm):
    result = factorize(low_rank, 3, norm=norm, max_iter=10)
    norms = result.bases.sum(axis=0) if norm == "l1" else np.linalg.norm(result.bases, axis=0)
    np.testing.assert_allclose(norms, 1.0, rtol=1e-5)


def test_inputs_are_not_mutated(low_rank, rng):
    Y = low_rank.copy()
    fixed = rng.random((Y.shape[0], 2))
    fixed_copy = fixed.copy()
    factorize(Y, 2, fixed_bases=fixed, max_iter=5)
    np.testing.assert_array_equal(Y, low_rank)
    np.testing.assert_array_equal(fixed, fixed_copy)


def test_fixed_bases_are_kept_and_come_first(low_rank, rng):
    fixed = rng.random((low_rank.shape[0], 2))
    result = factorize(low_rank, 3, fixed_bases=fixed, max_iter=30)
    assert result.bases.shape == (low_rank.shape[0], 5)
    np.testing.assert_allclose(result.bases[:, :2], fixed / np.linalg.norm(fixed, axis=0), rtol=1e-5)
    assert result.settings["n_fixed"] == 2


def test_same_seed_same_result_and_restarts_keep_the_best(low_rank):
    one = factorize(low_rank, 3, init="random", seed=7, max_iter=20)
    two = factorize(low_rank, 3, init="random", seed=7, max_iter=20)
    np.testing.assert_array_equal(one.bases, two.bases)
    np.testing.assert_array_equal(one.activations, two.activations)
    many = factorize(low_rank, 3, init="random", seed=7, max_iter=20, tol=0, n_init=4)
    assert len(many.restart_objectives) == 4
    assert many.objective[-1] == min(many.restart_objectives)


def test_tolerance_stops_early_and_reports_convergence(low_rank):
    loose = factorize(low_rank, 3, tol=1e-2, max_iter=500)
    assert loose.converged and loose.n_iter < 500
    strict = factorize(low_rank, 3, tol=0, max_iter=15)
    assert not strict.converged and strict.n_iter == 15


@pytest.mark.parametrize("beta", [0.0, 1.0, 2.0])
def test_sparsity_makes_activations_sparser(rng, beta):
    """More l1 weight -> activations concentrate on fewer components per frame (Hoyer sparsity)."""
    Y = rng.random((40, 6)) @ (rng.random((6, 120)) ** 4) + 0.01

    def hoyer(U):
        n = U.shape[0]
        ratio = U.sum(axis=0) / np.maximum(np.linalg.norm(U, axis=0), 1e-30)
        return float(np.mean((np.sqrt(n) - ratio) / (np.sqrt(n) - 1)))

    scale = float(np.mean(Y)) ** (beta - 1)  # the data term's gradient scales as Y^(beta-1)
    values = [
        hoyer(factorize(Y, 6, beta=beta, max_iter=300, tol=0, sparsity=lam * scale).activations)
        for lam in (0, 0.3, 1.0)
    ]
    assert values[0] + 0.05 < values[1] <= values[2] + 1e-3


def test_callback_reports_every_iteration(low_rank):
    seen = []
    factorize(low_rank, 2, max_iter=7, tol=0, n_init=2, callback=seen.append, record_objective=True)
    assert [(p.restart, p.iteration) for p in seen] == [(r, i) for r in range(2) for i in range(1, 8)]
    assert all(np.isfinite(p.objective) and p.max_iter == 7 and p.n_init == 2 for p in seen)


def test_init_is_positive_seeded_and_scaled(rng):
    Y = (rng.random((50, 3)) @ rng.random((3, 70))).astype(np.float32)
    errors = {}
    for init in (random_init, nndsvda_init):
        H, U = init(Y, 3, np.random.default_rng(0))
        H2, _ = init(Y, 3, np.random.default_rng(0))
        assert H.shape == (50, 3) and U.shape == (3, 70)
        assert H.min() > 0 and U.min() > 0
        np.testing.assert_array_equal(H, H2)
        errors[init] = np.linalg.norm(H @ U - Y) / np.linalg.norm(Y)
    # the SVD-based start is closer to the data than a random one (same as scikit-learn's: 0.638)
    assert errors[nndsvda_init] < errors[random_init]
    H, U = random_init(Y, 5, np.random.default_rng(0))
    assert np.sqrt(Y.mean() / 5) * 0.5 < H.mean() < np.sqrt(Y.mean() / 5) * 1.5


def test_randomized_svd_matches_exact_svd(rng):
    Y = rng.random((60, 5)) @ rng.random((5, 90))
    left, values, right = randomized_svd(Y, 3, rng)
    exact = np.linalg.svd(Y, compute_uv=False)[:3]
    np.testing.assert_allclose(values, exact, rtol=1e-6)
    assert left.shape == (60, 3) and right.shape == (3, 90)


def test_more_components_than_rank_is_fine(rng):
    Y = rng.random((4, 6))
    result = factorize(Y, 8, max_iter=20)
    assert result.bases.shape == (4, 8) and np.all(np.isfinite(result.activations))


def test_all_zero_data_gives_a_finite_result():
    result = factorize(np.zeros((10, 12)), 2, beta="is", max_iter=5)
    assert np.all(np.isfinite(result.bases)) and np.all(np.isfinite(result.activations))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_components": 0}, "n_components must be >= 1"),
        ({"n_components": -1}, "n_components=-1"),
        ({"n_components": 2.5}, "n_components=2.5"),
        ({"beta": "frobenius"}, "not one of"),
        ({"max_iter": -1}, "max_iter=-1"),
        ({"tol": -1.0}, "tol=-1.0"),
        ({"init": "svd"}, "init='svd'"),
        ({"n_init": 0}, "n_init=0"),
        ({"sparsity": -0.1}, "sparsity=-0.1"),
        ({"norm": "l3"}, "norm='l3'"),
        ({"floor": float("inf")}, "floor=inf"),
        ({"dtype": np.int32}, "dtype=int32"),
        ({"fixed_bases": np.ones((3, 2))}, "fixed_bases must have shape"),
        ({"blas_threads": 0}, "blas_threads=0"),
        ({"blas_threads": "all"}, "blas_threads='all'"),
        ({"blas_threads": True}, "blas_threads=True"),
    ],
)
def test_invalid_parameters_raise_with_the_value(low_rank, kwargs, message):
    args = {"n_components": 2, **kwargs}
    with pytest.raises(ParameterError, match=message) as info:
        factorize(low_rank, args.pop("n_components"), **args)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("Y", "message"),
    [
        (-np.ones((3, 3)), "non-negative"),
        (np.full((3, 3), np.nan), "NaN or infinite"),
        (np.ones(5), "2-D"),
        (np.ones((0, 4)), "2-D"),
        (np.ones((3, 3)) * 1j, "real"),
    ],
)
def test_invalid_data_raises(Y, message):
    with pytest.raises(ParameterError, match=message):
        factorize(Y, 1)


def test_components_beyond_the_rank_are_distinct(rng):
    """More components than frames: NNDSVDa's extra columns start random, so they can differ."""
    Y = rng.random((30, 5))
    result = factorize(Y, 8, max_iter=50)
    bases = result.bases.T
    distinct = {tuple(np.round(column, 6)) for column in bases}
    assert len(distinct) == 8


@pytest.mark.parametrize("level", [1e-12, 1.0, 1e12])
def test_results_do_not_depend_on_the_data_level(rng, level):
    """The divergence is homogeneous: scaling Y scales U and the objective (by level^beta), nothing else."""
    Y = rng.random((20, 3)) @ rng.random((3, 30))
    for beta in (0.0, 1.0, 2.0, 3.0):
        base = factorize(Y, 3, beta=beta, max_iter=20, tol=0, dtype=np.float64)
        scaled = factorize(Y * level, 3, beta=beta, max_iter=20, tol=0, dtype=np.float64)
        np.testing.assert_allclose(scaled.bases, base.bases, rtol=1e-6)
        np.testing.assert_allclose(scaled.activations, base.activations * level, rtol=1e-6)
        np.testing.assert_allclose(scaled.objective, base.objective * level**beta, rtol=1e-6)


def test_overflow_is_reported_not_returned(rng):
    Y = rng.random((20, 30))
    Y[:, :5] = 0
    with pytest.raises(ParameterError, match="overflowed in float32"):
        factorize(Y, 3, beta=-10)


def test_custom_init_matches_the_engine_from_the_same_start(low_rank, rng):
    """init=(H, U) starts exactly there: one iteration equals one hand-written MM update pair."""
    Y = low_rank + 0.1
    K, N = Y.shape
    H0, U0 = rng.random((K, 3)) + 0.1, rng.random((3, N)) + 0.1
    result = factorize(Y, 3, beta=1.0, init=(H0, U0), max_iter=1, tol=0, dtype=np.float64, floor=0)
    assert result.settings["init"] == "custom"
    scale = np.linalg.norm(H0, axis=0)
    H, U = H0 / scale, U0 * scale[:, None]
    U = U * (H.T @ (Y / (H @ U))) / H.sum(axis=0)[:, None]
    H = H * ((Y / (H @ U)) @ U.T) / U.sum(axis=1)[None, :]
    np.testing.assert_allclose(result.bases @ result.activations, H @ U, rtol=1e-10)
    with pytest.raises(ParameterError, match="must have shapes"):
        factorize(low_rank, 3, init=(H0.T, U0))
    with pytest.raises(ParameterError, match="finite and positive"):
        factorize(low_rank, 3, init=(H0 * 0, U0))


def test_objective_is_recorded_when_needed(low_rank):
    """tol 0 skips the objective between the first and last iterations, unless asked for."""
    quiet = factorize(low_rank, 3, max_iter=8, tol=0)
    recorded = factorize(low_rank, 3, max_iter=8, tol=0, record_objective=True)
    assert np.isfinite(quiet.objective[[0, -1]]).all() and np.isnan(quiet.objective[1:-1]).all()
    assert np.isfinite(recorded.objective).all()
    np.testing.assert_array_equal(quiet.bases, recorded.bases)
    assert quiet.objective[-1] == recorded.objective[-1]
    # with a tolerance: exact values every CHECK_EVERY iterations (the stopping test's scale) and at
    # the end; recording the others changes nothing either
    n = 2 * CHECK_EVERY + 5
    stopping = factorize(low_rank, 3, max_iter=n, tol=1e-12)
    computed = np.flatnonzero(np.isfinite(stopping.objective))
    np.testing.assert_array_equal(computed, [0, CHECK_EVERY, 2 * CHECK_EVERY, n])
    both = factorize(low_rank, 3, max_iter=n, tol=1e-12, record_objective=True)
    np.testing.assert_array_equal(stopping.activations, both.activations)
    assert np.isfinite(both.objective).all() and both.objective[-1] == stopping.objective[-1]


def _spectrogram_like(rng, K=96, N=300, rank=6):
    return rng.gamma(0.6, size=(K, rank)) @ rng.gamma(0.4, size=(rank, N)) + 0.05 * rng.random((K, N))


@pytest.mark.parametrize("beta", [0.0, 0.5, 1.0, 1.5, 2.0, 3.0])
@pytest.mark.parametrize("sparsity", [0.0, 0.3])
def test_majorizer_drop_bounds_every_update(rng, beta, sparsity):
    """Each update's reported drop is at most the objective's true decrease (what makes the stopping
    test safe) and not a trivial bound: at least a third of it (measured: about half)."""
    Y = _spectrogram_like(rng)
    data = np.ascontiguousarray(Y.T / Y.max())
    M = 5
    workspace = MMWorkspace(data, beta, sparsity, M, slice(1, M), kernel="numpy")  # basis 0 fixed
    bases_t = rng.random((M, Y.shape[0])) + 0.1
    acts_t = rng.random((Y.shape[1], M)) + 0.1
    ratios = []
    for _ in range(12):
        for update in (workspace.update_activations, workspace.update_bases):
            before = workspace.objective(bases_t, acts_t)
            if update == workspace.update_activations:
                update(bases_t, acts_t, want_objective=False, want_decrease=True)
            else:
                update(bases_t, acts_t, want_decrease=True)
            decrease = before - workspace.objective(bases_t, acts_t)
            assert 0.0 <= workspace.decrease <= decrease * (1 + 1e-9) + 1e-12 * abs(before)
            if not (sparsity and update == workspace.update_bases):  # that one reports 0
                ratios.append(workspace.decrease / decrease)
    assert min(ratios) > 1 / 3, min(ratios)


@pytest.mark.parametrize("beta", [0.0, 1.0, 2.0])
@pytest.mark.parametrize("n_components", [3, 5])
def test_tolerance_stops_where_the_exact_test_does(rng, beta, n_components):
    """tol stops at the first iteration that lowered the objective by less than tol times its
    value, as with the objective computed at every iteration (or one later, see _run), though it
    computes the objective at a fraction of them."""
    Y = _spectrogram_like(rng, N=400)
    for tol in (1e-3, 1e-4):
        exact = factorize(
            Y, n_components, beta=beta, tol=0, max_iter=600, record_objective=True, dtype=np.float64
        )
        D = exact.objective
        stop = next(t for t in range(1, len(D)) if D[t - 1] - D[t] < tol * abs(D[t - 1]))
        fit = factorize(Y, n_components, beta=beta, tol=tol, max_iter=600, dtype=np.float64)
        assert fit.converged and stop <= fit.n_iter <= stop + 1, (fit.n_iter, stop)
        assert np.isnan(fit.objective).sum() > fit.n_iter / 3  # the point: most are skipped


def _blas_threads() -> dict[str, int]:
    """BLAS library -> its thread limit, for every BLAS loaded in the process."""
    from threadpoolctl import threadpool_info

    return {pool["filepath"]: pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}


@pytest.mark.parametrize(
    ("blas_threads", "kernel", "at_init", "iterating"),
    [
        ("auto", "numba", 2, 1),
        ("auto", "numpy", 2, 2),
        (None, "numba", 2, 2),
        (1, "numpy", 1, 1),
        (np.int64(1), "numba", 1, 1),
    ],
)
def test_blas_threads_is_the_callers_choice_and_is_restored(
    low_rank, monkeypatch, blas_threads, kernel, at_init, iterating
):
    """auto: one BLAS thread while the numba kernel iterates only; None: left alone; an int: that
    limit for the whole call. The caller's limits come back after the call, and after an exception."""
    from threadpoolctl import threadpool_limits

    module = sys.modules["nmfsep.nmf.factorize"]  # the package exports the function under that name

    def init(*args):
        seen_at_init.append(_blas_threads())
        return nndsvda_init(*args)

    def record():
        seen_iterating.append(_blas_threads())

    def callback(progress):
        record()
        if progress.iteration == 2:
            raise KeyboardInterrupt

    factorize(low_rank, 3, max_iter=1, kernel=kernel)  # loads every BLAS the call uses
    monkeypatch.setattr(module, "nndsvda_init", init)
    seen_at_init, seen_iterating = [], []
    with threadpool_limits(limits=2, user_api="blas"):
        before = _blas_threads()
        assert before and set(before.values()) == {2}
        with pytest.raises(KeyboardInterrupt):
            factorize(low_rank, 3, max_iter=5, kernel=kernel, blas_threads=blas_threads, callback=callback)
        assert _blas_threads() == before
        result = factorize(
            low_rank, 3, max_iter=5, kernel=kernel, blas_threads=blas_threads, callback=lambda _: record()
        )
        assert _blas_threads() == before
    assert [set(limits.values()) for limits in seen_at_init] == [{at_init}] * 2
    assert [set(limits.values()) for limits in seen_iterating] == [{iterating}] * (2 + 5)
    assert "blas_threads" not in result.settings  # saved in model files, whose bytes must not change


def test_update_kinds():
    from nmfsep.nmf.divergence import EUC, GENERAL, IS, KL, update_kind

    assert [update_kind(beta) for beta in (0.0, 1.0, 2.0, 0.5, 3.0, -1.0)] == [
        IS,
        KL,
        EUC,
        GENERAL,
        GENERAL,
        GENERAL,
    ]
    assert len({IS, KL, EUC, GENERAL}) == 4
