"""The beta-divergence, its named special cases, the Fevotte-Idier MM exponent and the kinds of update."""

from __future__ import annotations

import numpy as np

from ..errors import ParameterError

#: Names accepted wherever a divergence is expected, mapped to their beta.
DIVERGENCES: dict[str, float] = {
    "is": 0.0,
    "itakura-saito": 0.0,
    "kl": 1.0,
    "kullback-leibler": 1.0,
    "euc": 2.0,
    "euclidean": 2.0,
}

#: The kinds of update, one per special case of beta (0, 1, 2) and one for any other beta: both
#: kernels (:mod:`.updates`, :mod:`.kernels`) branch on them. numba compiles these values into the
#: cached machine code, and its cache only notices edits to ``kernels.py``: after changing them,
#: clear numba's cache (``make install`` re-warms it).
IS, KL, EUC, GENERAL = 0, 1, 2, 3
_KINDS = {0.0: IS, 1.0: KL, 2.0: EUC}


def beta_from_name(divergence: str | float) -> float:
    """Return the beta of a divergence given by name (``"is"``, ``"kl"``, ``"euc"``, ...) or number.

    Parameters
    ----------
    divergence : str or float
        One of the keys of :data:`DIVERGENCES`, or any finite real beta.

    Returns
    -------
    beta : float

    Raises
    ------
    ParameterError
        For an unknown name or a non-finite number; the message lists the names allowed.
    """
    if isinstance(divergence, str):
        key = divergence.strip().lower()
        if key in DIVERGENCES:
            return DIVERGENCES[key]
        raise ParameterError(f"[[divergence={divergence!r}]] is not one of {sorted(DIVERGENCES)} or a number")
    beta = float(divergence)
    if not np.isfinite(beta):
        raise ParameterError(f"[[beta={divergence!r}]] must be a finite number")
    return beta


def update_kind(beta: float) -> int:
    """The kind of update for ``beta``: IS (0), KL (1), EUC (2), or GENERAL for any other beta."""
    return _KINDS.get(beta, GENERAL)


def mm_exponent(beta: float) -> float:
    """Exponent gamma(beta) that makes the multiplicative update a majorization-minimization step.

    With it the beta-divergence is non-increasing at every update, for every real beta
    (C. Fevotte and J. Idier, "Algorithms for nonnegative matrix factorization with the
    beta-divergence", Neural Computation 23(9), 2011, eq. 4.5 / table 2)::

        gamma = 1 / (2 - beta)   if beta < 1
                1                if 1 <= beta <= 2
                1 / (beta - 1)   if beta > 2
    """
    if beta < 1.0:
        return 1.0 / (2.0 - beta)
    if beta > 2.0:
        return 1.0 / (beta - 1.0)
    return 1.0


def beta_divergence(Y: np.ndarray, model: np.ndarray, beta: float) -> float:
    """Sum over all entries of the beta-divergence d_beta(Y | model).

    ``d(y|v) = (y^b + (b-1) v^b - b y v^(b-1)) / (b (b-1))``, with the limits
    ``y/v - log(y/v) - 1`` (b = 0, Itakura-Saito), ``y log(y/v) - y + v`` (b = 1, generalised
    Kullback-Leibler) and ``(y - v)^2 / 2`` (b = 2, Euclidean).

    This is the plain reference formula (it allocates temporaries); the solver computes the same
    value fused with its updates. Entries are expected to be positive where log or negative
    powers appear (the solver floors Y for that reason).

    Parameters
    ----------
    Y : np.ndarray [shape=(K, N)], non-negative
    model : np.ndarray [shape=(K, N)], positive
    beta : float

    Returns
    -------
    divergence : float
    """
    Y = np.asarray(Y, dtype=np.float64)
    V = np.asarray(model, dtype=np.float64)
    if beta == 0.0:
        ratio = Y / V
        return float(np.sum(ratio - np.log(ratio) - 1.0))
    if beta == 1.0:
        # y log(y/v) is 0 at y = 0 by continuity
        with np.errstate(divide="ignore", invalid="ignore"):
            ylog = np.where(Y > 0, Y * np.log(Y / V), 0.0)
        return float(np.sum(ylog - Y + V))
    if beta == 2.0:
        return float(0.5 * np.sum((Y - V) ** 2))
    return float(
        np.sum(Y**beta + (beta - 1.0) * V**beta - beta * Y * V ** (beta - 1.0)) / (beta * (beta - 1.0))
    )


def majorizer_decrease(
    previous: np.ndarray, ratio: np.ndarray, denominator: np.ndarray, beta: float
) -> float:
    """How much one MM update lowered its majorizer: a lower bound of the objective's decrease.

    The update ``x = previous * ratio`` with ``ratio = (p / q)^gamma`` minimises the Fevotte-Idier
    auxiliary function G(x | previous), which touches the objective at ``previous`` and lies above
    it elsewhere, so ``D(previous) - D(x) >= G(previous | previous) - G(x | previous)``. That drop is
    separable and, with ``p = q ratio^(1/gamma)`` at the minimiser, depends only on
    ``previous * q`` and the ratio r::

        sum previous * q * phi(r),   phi(r) = (r - 1)^2                                   b = 0
                                              r log r - r + 1 >= e^2 / 2 - e^3 / 6        b = 1
                                              (r - 1)^2 / 2                               b = 2
                                              r (r^(1-b) - 1) / (1-b) - (r - 1)           b < 1
                                              r (r^(b-1) - 1) / (b-1) - (r^b - 1) / b     1 < b <= 2
                                              r^(b-1) (r - 1) - (r^b - 1) / b             b > 2

    with e = r - 1 (for KL the cubic lower bound, which holds for every r >= 0: no log, and no
    cancellation near r = 1 in float32). It costs one pass over the factor (M x N or F x K)
    instead of one over the data (K x N), so the stopping test can use it at every iteration
    (see :func:`nmfsep.nmf.factorize.factorize`, ``tol``).

    Parameters
    ----------
    previous : np.ndarray [shape=(R, C)]
        The factor before the update (U^T or the updated rows of H^T).
    ratio : np.ndarray [shape=(R, C)]
        The multiplicative factor that was applied.
    denominator : np.ndarray [shape=(R, C), (1, C) or (R, 1)]
        q, the (floored) denominator of the ratio, penalty included.
    beta : float

    Returns
    -------
    decrease : float >= 0
    """
    if beta in (0.0, 1.0, 2.0):
        phi = ratio - 1.0
        if beta == 1.0:
            cubic = 3.0 - phi
            phi *= phi
            phi *= cubic
            phi *= 1.0 / 6.0
            np.maximum(phi, 0.0, out=phi)
        else:
            phi *= phi
            if beta == 2.0:
                phi *= 0.5
    else:  # any other beta (rare): the exact drop, in float64 where it does not cancel away
        r = ratio.astype(np.float64)
        x = np.log(r)
        if beta < 1.0:
            phi = r * np.expm1((1.0 - beta) * x) / (1.0 - beta) - np.expm1(x)
        elif beta <= 2.0:
            phi = r * np.expm1((beta - 1.0) * x) / (beta - 1.0) - np.expm1(beta * x) / beta
        else:
            phi = np.exp((beta - 1.0) * x) * np.expm1(x) - np.expm1(beta * x) / beta
    phi *= previous
    if denominator.shape[0] == 1 and phi.shape[0] != 1:  # q per column (KL: H^T 1)
        return max(float(phi.sum(axis=0, dtype=np.float64) @ denominator[0].astype(np.float64)), 0.0)
    if denominator.shape[1] == 1 and phi.shape[1] != 1:  # q per row (KL: U 1)
        return max(float(phi.sum(axis=1, dtype=np.float64) @ denominator[:, 0].astype(np.float64)), 0.0)
    phi *= denominator
    return max(float(phi.sum(dtype=np.float64)), 0.0)
