"""``factorize``: beta-divergence NMF by majorization-minimization, with restarts and fixed bases."""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
from threadpoolctl import threadpool_limits

from ..errors import ParameterError
from .backend import resolve_kernel
from .divergence import beta_from_name
from .init import INITS, nndsvda_init, random_init
from .updates import MMWorkspace

NORMS = ("l2", "l1")

#: Default floor, relative to max(Y): entries of Y below ``floor * max(Y)`` are raised to it.
DEFAULT_FLOOR = 1e-6


#: Iterations between exact objective values when stopping on ``tol``: an exact value costs about a
#: whole update (a log per data entry); in between, the stopping test uses the updates' bounds.
CHECK_EVERY = 20


class Progress(NamedTuple):
    """What the optional callback of :func:`factorize` receives after every iteration."""

    restart: int  #: 0-based index of the current restart
    n_init: int  #: number of restarts
    iteration: int  #: iterations done in this restart
    max_iter: int
    objective: float  #: penalised objective before this iteration's updates (NaN if not computed)


@dataclass(frozen=True)
class NMFResult:
    """The outcome of :func:`factorize`.

    Attributes
    ----------
    bases : np.ndarray [shape=(K, M)]
        Spectral bases H, one column per component, each of unit norm (``settings["norm"]``).
        Fixed bases, when given, come first.
    activations : np.ndarray [shape=(M, N)]
        Activations U; ``bases @ activations`` models Y.
    objective : np.ndarray [shape=(n_iter + 1,)]
        Penalised objective of the kept restart: before the first iteration, then after each one
        (NaN for iterations where it was not computed; see ``record_objective``).
    n_iter : int
        Iterations run by the kept restart.
    converged : bool
        True when the relative decrease fell below ``tol`` before ``max_iter``.
    restart_objectives : tuple of float
        Final objective of every restart (the kept one is the smallest).
    settings : dict
        Every parameter used, with resolved values (beta as a float, the floor as an absolute value).
    """

    bases: np.ndarray
    activations: np.ndarray
    objective: np.ndarray
    n_iter: int
    converged: bool
    restart_objectives: tuple[float, ...]
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def n_components(self) -> int:
        return self.bases.shape[1]


def _column_blocks(Y: np.ndarray, size: int = 4096):
    """Blocks of frames (columns) of Y, so checks never allocate a K x N temporary."""
    for start in range(0, Y.shape[1], size):
        yield Y[:, start : start + size]


def _check_data(Y: Any) -> tuple[np.ndarray, float]:
    """Y as an array, validated; and its maximum."""
    Y = np.asarray(Y)
    if Y.ndim != 2 or 0 in Y.shape:
        raise ParameterError(f"Y must be a non-empty 2-D array (K bins x N frames), got shape {Y.shape}")
    if not np.issubdtype(Y.dtype, np.number) or np.iscomplexobj(Y):
        raise ParameterError(f"Y must be real and non-negative, got dtype {Y.dtype}")
    lowest, highest = math.inf, -math.inf
    for block in _column_blocks(Y):
        if not np.all(np.isfinite(block)):
            raise ParameterError("Y contains NaN or infinite values")
        lowest, highest = min(lowest, float(block.min())), max(highest, float(block.max()))
    if lowest < 0:
        raise ParameterError(f"Y must be non-negative, its minimum is {lowest:g}")
    return Y, highest


def _normalize(H: np.ndarray, U: np.ndarray, norm: str, columns: slice) -> None:
    """Scale the chosen columns of H to unit norm and move the scale into the rows of U (in place).

    H U is unchanged, and so is the objective: its penalty sum_m ||h_m||_2 ||u_m||_1 is
    invariant to this rescaling. All-zero columns are left alone.
    """
    block = H[:, columns]
    if norm == "l1":
        scale = block.sum(axis=0)
    else:
        scale = np.sqrt(np.einsum("km,km->m", block, block))
    scale[scale <= 0] = 1
    block /= scale
    U[columns] *= scale[:, None]


def check_parameters(
    n_components: int,
    beta: float | str,
    *,
    max_iter: int,
    tol: float,
    init: str | tuple,
    n_init: int,
    sparsity: float,
    norm: str = "l2",
    floor: float = DEFAULT_FLOOR,
    dtype: type | np.dtype = np.float32,
    fixed: bool = False,
    blas_threads: int | None | str = "auto",
) -> np.dtype:
    """Validate the parameters of :func:`factorize` without any data; return the dtype.

    Raises
    ------
    ParameterError
        Naming the first invalid value.
    """
    dtype = np.dtype(dtype)
    if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ParameterError(f"dtype={dtype} must be float32 or float64")
    beta_from_name(beta)
    if isinstance(n_components, bool) or int(n_components) != n_components or n_components < 0:
        raise ParameterError(f"[[n_components={n_components!r}]] must be an integer >= 0")
    if n_components < 1 and not fixed:
        raise ParameterError("[[n_components]] must be >= 1 when no fixed bases are given")
    if isinstance(max_iter, bool) or int(max_iter) != max_iter or max_iter < 0:
        raise ParameterError(f"[[max_iter={max_iter!r}]] must be an integer >= 0")
    if not (tol >= 0 and math.isfinite(tol)):
        raise ParameterError(f"[[tol={tol!r}]] must be a finite number >= 0")
    if isinstance(init, str) and init not in INITS:
        raise ParameterError(f"[[init={init!r}]] is not one of {list(INITS)} or a pair (H, U) of arrays")
    if not isinstance(init, str) and (not isinstance(init, (tuple, list)) or len(init) != 2):
        raise ParameterError(f"[[init]] must be one of {list(INITS)} or a pair (H, U) of arrays")
    if isinstance(n_init, bool) or int(n_init) != n_init or n_init < 1:
        raise ParameterError(f"[[n_init={n_init!r}]] must be an integer >= 1")
    if not (sparsity >= 0 and math.isfinite(sparsity)):
        raise ParameterError(f"[[sparsity={sparsity!r}]] must be a finite number >= 0")
    if norm not in NORMS:
        raise ParameterError(f"norm={norm!r} is not one of {list(NORMS)}")
    if not (floor >= 0 and math.isfinite(floor)):
        raise ParameterError(f"floor={floor!r} must be a finite number >= 0")
    if not (
        blas_threads is None
        or (isinstance(blas_threads, str) and blas_threads == "auto")
        or (
            isinstance(blas_threads, (int, np.integer))
            and not isinstance(blas_threads, bool)
            and blas_threads >= 1
        )
    ):
        raise ParameterError(f"blas_threads={blas_threads!r} must be 'auto', None or an integer >= 1")
    return dtype


def factorize(
    Y: np.ndarray,
    n_components: int,
    *,
    beta: float | str = 1.0,
    max_iter: int = 200,
    tol: float = 1e-4,
    init: str | tuple[np.ndarray, np.ndarray] = "nndsvda",
    n_init: int = 1,
    sparsity: float = 0.0,
    fixed_bases: np.ndarray | None = None,
    norm: str = "l2",
    floor: float = DEFAULT_FLOOR,
    seed: int | np.random.Generator | None = 0,
    dtype: type | np.dtype = np.float32,
    callback: Callable[[Progress], None] | None = None,
    kernel: str = "auto",
    overwrite_input: bool = False,
    record_objective: bool | None = None,
    blas_threads: int | None | str = "auto",
) -> NMFResult:
    """Factorize a non-negative matrix, Y ~ H U, by minimising a beta-divergence.

    Minimises ``D_beta(Y | H U) + sparsity * sum_m ||h_m||_2 ||u_m||_1``. The penalty is the l1
    norm of the activations when bases have unit l2 norm, and it does not change when a basis is
    rescaled and its activation row rescaled inversely, so normalising the bases never changes the
    objective. H and U are updated alternately with the majorization-minimization (MM) updates of
    Fevotte & Idier (2011), which make the objective non-increasing at every update, for every beta.

    Parameters
    ----------
    Y : np.ndarray [shape=(K, N)], non-negative, finite
        The data, e.g. a magnitude or power spectrogram (K frequency bins x N frames). Not modified.
    n_components : int >= 0
        Number of components M learned freely. May be 0 when ``fixed_bases`` are given.
    beta : float or {"is", "kl", "euc"}
        The divergence: Itakura-Saito (0), generalised Kullback-Leibler (1), Euclidean (2), or any
        real beta. Long names ("itakura-saito", ...) are accepted too.
    max_iter : int >= 0
        Maximum number of iterations (one U update and one H update each) per restart.
    tol : float >= 0
        Stop when the objective decreased by less than ``tol`` times its value over the last
        iteration. 0 always runs ``max_iter`` iterations. The objective costs about as much as an
        update, so it is computed every ``CHECK_EVERY`` (10) iterations and, from the first
        iteration where the test could hold (the updates' majorizer drops bound the decrease from
        below), at every one: the fit stops where computing it throughout would, or one iteration
        later.
    init : {"nndsvda", "random"} or (H, U)
        Initialisation of the first restart: NNDSVDa (SVD based, zeros filled with mean(Y)),
        random positive factors, or given positive factors H [shape=(K, M)] and U [shape=(M, N)]
        (copied; not with ``fixed_bases``). Later restarts are always random.
    n_init : int >= 1
        Number of restarts; the one with the smallest final objective is returned.
    sparsity : float >= 0
        Weight of the l1 penalty on the activations (see above), relative to unit-l2 bases.
    fixed_bases : np.ndarray [shape=(K, F)], optional
        Bases that are held fixed (supervised separation); only their activations are learned.
        They come first in the result, followed by the ``n_components`` free bases.
    norm : {"l2", "l1"}
        Norm to which every basis is scaled (the scale moves into the activations). It does not
        change the model or the objective, only how the scale is split between H and U.
    floor : float >= 0
        Entries of Y below ``floor * max(Y)`` are raised to that value before factorizing. The
        Itakura-Saito divergence (and any beta <= 0) is infinite at y = 0, and negative powers of
        the model blow up where the data is digital silence; a floor relative to the data's scale
        (default 1e-6, i.e. -120 dB for a magnitude spectrogram) avoids both without touching any
        audible bin. Applied for every beta, so results stay continuous in beta.
    seed : int or np.random.Generator or None
        Seed of the random generator used for the initialisations (and the randomized SVD).
    dtype : float32 or float64
        Working precision (float32 by default: half the memory traffic).
    callback : callable, optional
        Called as ``callback(Progress(...))`` after every iteration.
    kernel : {"auto", "numba", "numpy"}
        How the updates are computed: fused numba loops over frames (fastest at small ranks), BLAS
        on tiles of frames (fastest at large ranks and for beta=2), or chosen by rank and beta
        ("auto"). All give the same iterates up to float rounding.
    overwrite_input : bool
        Let the engine scale and floor Y in place instead of working on a copy: saves one K x N
        array when Y is ``dtype`` and frame-major (the transpose of a C-contiguous N x K array,
        possibly a memory map, as :func:`nmfsep.blockwise.spectrogram_frames` returns).
        Y's values are changed. Ignored for other layouts.
    record_objective : bool, optional
        Compute the objective at every iteration (about one update's cost each). By default the
        history holds the initial and final values, those the stopping test used with ``tol > 0``,
        and NaN in between. Recording never changes the result.
    blas_threads : "auto", None or int >= 1
        BLAS threads (threadpoolctl). An integer limits BLAS to that many threads for the whole
        call, initialisation included; None leaves BLAS alone; "auto" (the default) limits it to
        one thread while the numba kernel iterates (its threads take every core, and idle
        OpenBLAS threads spinning after each small product would compete with them) and leaves
        it alone otherwise. A limit is process-wide, so it also holds for the caller's other
        threads meanwhile; the previous limits are restored when the call returns or raises.
        OpenBLAS results can change in the last bits with its thread count.

    Returns
    -------
    NMFResult
        ``bases`` [shape=(K, F + M)], ``activations`` [shape=(F + M, N)], objective history,
        ``n_iter``, ``converged`` and the resolved ``settings``.

    Raises
    ------
    ParameterError
        For invalid data (negative, NaN/inf, not 2-D) or parameters; the message names the value.

    Examples
    --------
    >>> import numpy as np
    >>> Y = np.random.default_rng(0).random((64, 100))
    >>> result = factorize(Y, 4, beta="kl", max_iter=50)
    >>> result.bases.shape, result.activations.shape
    ((64, 4), (4, 100))
    """
    dtype = check_parameters(
        n_components,
        beta,
        max_iter=max_iter,
        tol=tol,
        init=init,
        n_init=n_init,
        sparsity=sparsity,
        norm=norm,
        floor=floor,
        dtype=dtype,
        fixed=fixed_bases is not None,
        blas_threads=blas_threads,
    )
    with _call_limit(blas_threads):
        beta = beta_from_name(beta)
        Y, peak = _check_data(Y)
        K, N = Y.shape
        if fixed_bases is not None:
            fixed = np.array(fixed_bases, dtype=dtype)  # a copy: the caller's array is never modified
            if fixed.ndim != 2 or fixed.shape[0] != K or fixed.shape[1] < 1:
                raise ParameterError(f"fixed_bases must have shape ({K}, F) with F >= 1, got {fixed.shape}")
            if not np.all(np.isfinite(fixed)) or fixed.min() < 0:
                raise ParameterError("fixed_bases must be finite and non-negative")
            if np.any(fixed.sum(axis=0) <= 0):
                raise ParameterError("fixed_bases has an all-zero column")
        else:
            fixed = np.zeros((K, 0), dtype=dtype)
        n_fixed = fixed.shape[1]
        n_components = int(n_components)
        if floor == 0 and beta <= 0 and not all(np.all(block > 0) for block in _column_blocks(Y)):
            raise ParameterError(
                f"[[beta={beta:g}]] is infinite where Y has zeros; use floor > 0 or a [[beta]] > 0"
            )
        kernel_name = resolve_kernel(kernel, n_fixed + n_components, beta, dtype)  # numba, or a fallback

        # The beta-divergence is homogeneous, d(s y | s v) = s^beta d(y | v), so the engine works on Y / max(Y)
        # (entries in [floor, 1]) and scales back at the end: powers of the model then neither overflow
        # nor underflow for data of any level. The penalty scales as s, hence the weight s^(1 - beta).
        # The engine is frame-major: it works on data = Y^T (N x K).
        scale = peak if peak > 0 else 1.0
        absolute_floor = floor * scale if peak > 0 else 1.0
        if overwrite_input and Y.dtype == dtype and Y.T.flags.c_contiguous and Y.flags.writeable:
            data = Y.T
        else:
            data = np.empty((N, K), dtype=dtype)
        least = absolute_floor / scale if absolute_floor > 0 else float(np.finfo(dtype).tiny)
        for start in range(0, N, 4096):  # blockwise: no K x N temporary, memory maps page through
            block = data[start : start + 4096]
            np.multiply(Y.T[start : start + 4096], 1.0 / scale, out=block, casting="unsafe")
            # floor=0 with beta > 0 still keeps the ratio terms finite where Y and the model vanish
            np.maximum(block, least, out=block)
        objective_scale = scale**beta
        custom = (
            None if isinstance(init, str) else _custom_init(init, K, N, n_components, n_fixed, dtype, scale)
        )
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)

        free = slice(n_fixed, n_fixed + n_components)
        workspace = MMWorkspace(
            data, beta, float(sparsity) * scale ** (1.0 - beta), n_fixed + n_components, free, kernel_name
        )
        best = None
        restart_objectives = []
        for restart in range(int(n_init)):
            if restart == 0 and custom is not None:
                H, U = (factor.copy() for factor in custom)
            else:
                method = init if restart == 0 and custom is None else "random"
                H, U = _initial_factors(data.T, fixed, n_components, method, rng)
            # The engine's layout: H^T (M x K) and U^T (N x M), C-contiguous; H and U are views of them.
            H, U = np.ascontiguousarray(H.T).T, np.ascontiguousarray(U.T).T
            # Extreme betas can overflow float32; that is detected below and reported as one error.
            with (
                _iteration_limit(blas_threads, kernel_name),
                np.errstate(over="ignore", invalid="ignore", divide="ignore"),
            ):
                history, converged = _run(
                    workspace,
                    H,
                    U,
                    free,
                    int(max_iter),
                    tol,
                    norm,
                    restart,
                    int(n_init),
                    callback,
                    objective_scale,
                    bool(record_objective),
                )
            restart_objectives.append(history[-1])
            if best is None or history[-1] < best[2][-1]:
                best = (H, U, history, converged)
        H, U, history, converged = best
        H, U = np.ascontiguousarray(H), np.ascontiguousarray(U)
        U *= dtype.type(scale)
        computed = np.asarray(history)[~np.isnan(history)]
        if not (np.all(np.isfinite(computed)) and np.all(np.isfinite(H)) and np.all(np.isfinite(U))):
            raise ParameterError(
                f"[[beta={beta:g}]] overflowed in {dtype.name}: use a [[beta]] closer to [0, 2], a larger floor, "
                "or dtype=float64"
            )

        settings = {
            "beta": beta,
            "max_iter": int(max_iter),
            "tol": float(tol),
            "init": init if custom is None else "custom",
            "n_init": int(n_init),
            "sparsity": float(sparsity),
            "n_fixed": n_fixed,
            "norm": norm,
            "floor": float(floor),
            "absolute_floor": absolute_floor,
            "dtype": dtype.name,
            "kernel": kernel_name,
            "seed": seed if isinstance(seed, (int, type(None))) else "generator",
        }
        return NMFResult(
            bases=H,
            activations=U,
            objective=np.asarray(history),
            n_iter=len(history) - 1,
            converged=converged,
            restart_objectives=tuple(restart_objectives),
            settings=settings,
        )


def _call_limit(blas_threads: int | None | str) -> AbstractContextManager:
    """The BLAS thread limit of a whole call: an integer ``blas_threads``, restored on exit."""
    if blas_threads is None or isinstance(blas_threads, str):
        return nullcontext()
    return threadpool_limits(limits=int(blas_threads), user_api="blas")


def _iteration_limit(blas_threads: int | None | str, kernel_name: str) -> AbstractContextManager:
    """The BLAS thread limit while the iterations run, for "auto" (see :func:`factorize`)."""
    if isinstance(blas_threads, str) and blas_threads == "auto" and kernel_name == "numba":
        # The numba kernels run on every core; OpenBLAS threads, left spinning after each of the small
        # products around them, would take those cores: one BLAS thread while they run.
        return threadpool_limits(limits=1, user_api="blas")
    return nullcontext()


def _custom_init(init, K, N, n_components, n_fixed, dtype, scale):
    """Given initial factors, validated, in the engine's units (U divided by the data's scale)."""
    if n_fixed:
        raise ParameterError("init=(H, U) cannot be combined with fixed_bases")
    H, U = (np.array(factor, dtype=dtype) for factor in init)
    if H.shape != (K, n_components) or U.shape != (n_components, N):
        raise ParameterError(
            f"init=(H, U) must have shapes ({K}, {n_components}) and ({n_components}, {N}), "
            f"got {H.shape} and {U.shape}"
        )
    if not (np.all(np.isfinite(H)) and np.all(np.isfinite(U)) and H.min() > 0 and U.min() > 0):
        raise ParameterError("init=(H, U) must be finite and positive (zeros never move)")
    U /= dtype.type(scale)
    return H, U


def _initial_factors(data, fixed, n_components, method, rng):
    """Initial (H, U) with the fixed bases (normalised) first, then the free ones."""
    n_fixed = fixed.shape[1]
    total = n_fixed + n_components
    init = nndsvda_init if method == "nndsvda" else random_init
    if n_fixed == 0:
        return init(data, total, rng)
    # Supervised: the free part starts from the init; activations of fixed bases start at a
    # constant that makes H U have the mean of the data.
    H = np.empty((data.shape[0], total), dtype=data.dtype)
    H[:, :n_fixed] = fixed / fixed.sum(axis=0)
    U = np.empty((total, data.shape[1]), dtype=data.dtype)
    U[:n_fixed] = float(data.mean()) * data.shape[0] / total
    if n_components:
        H[:, n_fixed:], U[n_fixed:] = init(data, n_components, rng)
    return H, U


def _run(workspace, H, U, free, max_iter, tol, norm, restart, n_init, callback, objective_scale, record):
    """Iterate from (H, U) in place; return (objective history in the data's units, converged).

    H and U are the transposes of C-contiguous arrays (the engine's frame-major layout).

    The stopping test is exact -- stop at the first iteration that lowered the objective by less
    than ``tol`` times its value -- but the objective (a log per data entry, about an update's cost)
    is only computed where that test can hold. Each update reports its majorizer's drop, a lower
    bound of its decrease (:func:`.divergence.majorizer_decrease`, a pass over the factors), and
    ``reference``, the last exact value (every CHECK_EVERY iterations) minus the drops since, bounds
    the objective from above. While ``drop >= tol * reference`` the iteration's decrease is at least
    tol times the objective, so the test cannot hold; from the first iteration where it could, the
    objective is computed at every iteration and tested as before. The fit stops at the same
    iteration as with the objective computed throughout, or one later when that first possible
    iteration is the one (its predecessor's value is then only bounded).
    """
    all_columns = slice(None)
    bases_t, acts_t = H.T, U.T
    _normalize(H, U, norm, all_columns)
    history: list[float] = []
    converged = False
    stopping = tol > 0
    exact = False  # computing the objective at every iteration (the test may hold)
    reference = math.inf  # >= the objective of the current (H, U)
    previous = None  # the previous iteration's objective, when computed for the test
    for iteration in range(max_iter + 1):
        if iteration == max_iter:
            history.append(workspace.objective(bases_t, acts_t))
            break
        # The U update also returns the objective of the current (H, U) from the same passes, and
        # where it can (numba, KL and IS at ranks up to 4) sums the H update's terms in its pass too.
        tested = stopping and (exact or iteration % CHECK_EVERY == 0)
        value = workspace.update_activations(
            bases_t,
            acts_t,
            want_objective=record or tested or iteration == 0,
            want_decrease=stopping and not exact,
            stage_bases=free.stop > free.start,
        )
        history.append(math.nan if value is None else value)
        if tested:
            if exact:
                before = previous if previous is not None else reference
                if before - value < tol * abs(before):
                    converged = True
                    # U has been updated already: record the objective of what is returned.
                    history[-1] = workspace.objective(bases_t, acts_t)
                    break
            reference = value
        previous = value if tested else None
        drop = workspace.decrease
        if free.stop > free.start:
            workspace.update_bases(bases_t, acts_t, want_decrease=stopping and not exact)
            drop += workspace.decrease
            _normalize(H, U, norm, free)
        if callback is not None:
            callback(Progress(restart, n_init, iteration + 1, max_iter, history[-1] * objective_scale))
        if stopping and not exact:
            exact = drop < tol * abs(reference)
            reference -= drop
    return [value * objective_scale for value in history], converged
