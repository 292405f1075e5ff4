"""Which kernel computes the MM updates: numba's fused loops or BLAS on tiles, and whether numba works.

numba is an accelerator, not a requirement: when it is missing, fails to import or compile, or has no
writable cache, ``"auto"`` runs the numpy kernel with one warning per process (:func:`numba_status`).
:func:`kernels_need_compiling` tells a caller that the first run will compile (tens of seconds).
"""

from __future__ import annotations

import threading
import warnings
from types import ModuleType

import numpy as np

from ..errors import NmfsepWarning, ParameterError
from .divergence import EUC, IS, KL, beta_from_name, update_kind

KERNELS = ("auto", "numba", "numpy")

#: "auto" uses the fused numba kernel up to this rank and BLAS on tiles above it (measured at
#: K=1025, N=7752: numba wins for IS and KL at ranks 4 to 32, BLAS at 64 and 128).
NUMBA_MAX_RANK = 32

#: The same for the Euclidean distance, whose updates are two projections of the data: four frames
#: by four bases in registers beat BLAS up to rank 16 for Y^T H (measured at K=1025, N=7752: 0.97
#: vs 3.5 ms at rank 4, 2.1 vs 3.2 ms at rank 16, 7.0 vs 4.4 ms at rank 32) ...
EUC_NUMBA_MAX_RANK = 16
#: ... and for U Y^T (1.35 vs 2.1 ms at 4 free bases, 2.1 vs 2.2 at 8). At 16, two-thread BLAS is
#: faster alone (2.9 vs 4.8 ms) but BLAS runs on one thread next to the numba kernels (see
#: factorize), where it is not (5.8 ms).
EUC_NUMBA_MAX_SUM_ROWS = 16

#: Up to this rank the numpy kernel takes the EUC objective from float64 projections in one fused
#: numba pass (no model: BLAS is slow with inner dimension M); above it from the model, a BLAS
#: product by tiles (measured at K=1025, N=7752: 2.3 vs 7 ms at rank 4; the other way round at rank
#: 16). The numba kernel always takes the projections (it runs BLAS on one thread).
EUC_FUSED_MAX_RANK = 8

#: Work per update (K x N x M multiply-adds) up to which a separation runs the numpy kernel, which
#: spares a process numba's start-up (about 0.5 s: 1.42 -> 0.80 s for a 10-second file at 1 << 22).
#: Off (0) for now: with it, tests/test_batch.py's interrupt test left .part files or a cffi
#: traceback in 4 runs of 6 (a short file reaches its writes before the signal lands), so the
#: interrupt handling of the writing phase must be made safe first.
SMALL_WORK = 0


# numba is an accelerator: when it is missing, broken or cannot cache, the numpy kernels run. What
# is known about it in this process: "import" -> None if numba and the kernels module import, else
# why not (one line); (dtype name, family) -> the same for loading that family of kernels.
_numba_states: dict[str | tuple[str, str], str | None] = {}
_load_lock = threading.Lock()  # concurrent factorize calls (threads) load each family once, in turn
_warning_lock = threading.Lock()
_fallback_warned = False


def _reason(error: BaseException) -> str:
    """An exception in one line (numba's messages run over many)."""
    lines = str(error).strip().splitlines()
    text = lines[0].strip() if lines else ""
    if len(text) > 200:
        text = text[:197] + "..."
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _import_kernels() -> tuple[ModuleType | None, str | None]:
    """The numba kernels module, or None and why it cannot be used. A failure is not retried."""
    if "import" not in _numba_states:
        try:
            # numba itself, then the kernels: cache=True raises at decoration if no cache is writable
            from . import kernels
        except Exception as error:  # noqa: BLE001 -- whatever breaks numba, the numpy kernels run
            _numba_states["import"] = _reason(error)
        else:
            # with the JIT disabled the kernels would run as Python loops: hours per file
            _numba_states["import"] = "NUMBA_DISABLE_JIT is set" if kernels.nb.config.DISABLE_JIT else None
    if _numba_states["import"] is not None:
        return None, _numba_states["import"]
    from . import kernels

    return kernels, None


def load_family(family: str, dtype) -> str | None:
    """Load a family of numba kernels (compiling them if they are not cached) once per process;
    None if they run, else why not."""
    kernels, reason = _import_kernels()
    if reason is not None:
        return reason
    key = (np.dtype(dtype).name, family)
    with _load_lock:
        if key not in _numba_states:
            try:
                kernels.load_family(family, dtype)
            except Exception as error:  # noqa: BLE001 -- a kernel that cannot compile or run
                _numba_states[key] = _reason(error)
            else:
                _numba_states[key] = None
    return _numba_states[key]


def uses_rank4(n_components: int, kind: int) -> bool:
    """Whether the numba kernel uses the register-blocked kernels (IS and KL up to rank 4)."""
    return n_components <= 4 and kind in (IS, KL)


def _choice(kernel: str, n_components: int, beta: float) -> str:
    """The kernel that a request means for this rank and beta if numba works: "numba" or "numpy"."""
    if kernel not in KERNELS:
        raise ParameterError(f"kernel={kernel!r} is not one of {list(KERNELS)}")
    if kernel == "auto":
        limit = EUC_NUMBA_MAX_RANK if beta == 2.0 else NUMBA_MAX_RANK
        return "numba" if n_components <= limit else "numpy"
    return kernel


def kernel_for_size(kernel: str, n_components: int, size: int) -> str:
    """The kernel a one-off factorization should ask for: "numpy" instead of "auto" when the data
    (``size`` = K x N entries) is too small for numba's start-up to pay off (see SMALL_WORK),
    ``kernel`` otherwise. Depends on the sizes only, so a file always gets the same kernel."""
    return "numpy" if kernel == "auto" and size * max(n_components, 1) <= SMALL_WORK else kernel


def _families(kernel_name: str, n_components: int, beta: float) -> tuple[str, ...]:
    """The families of numba kernels (see ``kernels.FAMILIES``) that a kernel calls."""
    kind = update_kind(beta)
    if kernel_name == "numba":
        if kind == EUC:
            return ("euclidean",)
        return ("rank4",) if uses_rank4(n_components, kind) else ("general",)
    # the numpy kernel borrows numba's fused EUC objective when numba works (see euclidean_objective)
    return ("euclidean_objective",) if kind == EUC and n_components <= EUC_FUSED_MAX_RANK else ()


def numba_status(
    n_components: int | None = None, beta: float = 1.0, kernel: str = "auto", dtype=np.float32
) -> str | None:
    """Why the numba kernels cannot be used, or None if they can (or none are needed).

    Parameters
    ----------
    n_components : int, optional
        Total rank of a factorization. Without it, only numba and the kernels module are imported;
        with it, the numba kernels that a factorization of this rank, ``beta``, ``kernel`` and
        ``dtype`` calls are also loaded (compiled if numba's cache does not hold them) and run on a
        tiny problem.
    beta : float
    kernel : {"auto", "numba", "numpy"}
    dtype : float32 or float64

    Returns
    -------
    str or None
        None if they work, else the reason in one line (e.g. ``"ModuleNotFoundError: No module
        named 'numba'"``). Cached for the process: each check runs once, a failure is not retried.
    """
    if n_components is None:
        return _import_kernels()[1]
    for family in _families(_choice(kernel, n_components, beta), n_components, beta):
        reason = load_family(family, dtype)
        if reason is not None:
            return reason
    return None


def _warn_fallback(reason: str) -> None:
    """The one warning per process that "auto" runs the numpy kernels instead of numba's."""
    global _fallback_warned
    with _warning_lock:
        if _fallback_warned:
            return
        _fallback_warned = True
    warnings.warn(
        f"numba kernels unavailable ({reason}): using the numpy kernels, up to ~6x slower at small ranks",
        NmfsepWarning,
        stacklevel=4,  # the caller of factorize (factorize -> resolve_kernel -> here)
    )


def resolve_kernel(kernel: str, n_components: int, beta: float, dtype=np.float32) -> str:
    """The kernel to use ("numba" or "numpy") for a requested one, a total rank, a beta and a dtype.

    "auto" falls back on the numpy kernels, with one :class:`NmfsepWarning` per process, when the
    numba kernels it would choose cannot be used (see :func:`numba_status`).

    Raises
    ------
    ParameterError
        For an unknown kernel, or "numba" when the numba kernels cannot be used (naming why).
    """
    if _choice(kernel, n_components, beta) == "numpy":
        return "numpy"
    return _numba_unless(numba_status(n_components, beta, "numba", dtype), kernel)


def _numba_unless(reason: str | None, kernel: str) -> str:
    """ "numba" when it works (``reason`` None); otherwise an error for an explicit "numba" request,
    or "numpy" with the one fallback warning per process for "auto"."""
    if reason is None:
        return "numba"
    if kernel == "numba":
        raise ParameterError(f"kernel='numba' cannot be used: {reason}")
    _warn_fallback(reason)
    return "numpy"


def resolve_spatial_kernel(kernel: str, n_channels: int, dtype=np.float32) -> str:
    """The kernel of the spatial model (:mod:`.spatial`): numba's fused stereo kernel for 2 channels
    when it works ("auto" falls back on numpy with the same one warning per process), else numpy.

    Raises
    ------
    ParameterError
        For an unknown kernel, or "numba" when the stereo kernel cannot be used (naming why).
    """
    if kernel not in KERNELS:
        raise ParameterError(f"kernel={kernel!r} is not one of {list(KERNELS)}")
    if kernel == "numpy" or n_channels != 2:
        return "numpy"
    return _numba_unless(load_family("spatial", dtype), kernel)


def kernels_need_compiling(
    n_components: int,
    beta: float | str = 1.0,
    kernel: str = "auto",
    dtype=np.float32,
    family: str | None = None,
    size: int | None = None,
) -> bool:
    """Whether a factorization of this rank and beta will first compile numba kernels (tens of
    seconds, once: e.g. the first run after ``pip install`` without ``make install``'s warm-up).

    ``family`` asks about one family of kernels instead (``"spatial"``: the stereo spatial model's).
    ``size`` (K x N entries of the data) asks about a separation's choice of kernel for data that
    size (see :func:`kernel_for_size`); a run that needs no numba kernel does not import numba.
    Cheap (imports numba and reads numba's on-disk cache index of each kernel it needs; compiles
    nothing) and never raises: False whenever it cannot tell, and when numba cannot be used at all
    (the numpy kernels need no compiling).
    """
    try:
        beta = beta_from_name(beta)
        if family is not None:  # one family by name (e.g. "spatial")
            families = (family,)
        else:
            if size is not None:
                kernel = kernel_for_size(kernel, n_components, size)
            families = _families(_choice(kernel, n_components, beta), n_components, beta)
        if not families:
            return False
        kernels, reason = _import_kernels()
        if reason is not None:
            return False
        name = np.dtype(dtype).name
        # loaded already in this process (or failed to): nothing more to compile
        return not all(
            (name, family) in _numba_states or kernels.cached(family, dtype) for family in families
        )
    except Exception:  # noqa: BLE001 -- a hint only: numba's cache internals may change
        return False
