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
