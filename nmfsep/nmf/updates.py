"""Majorization-minimization multiplicative updates, written once for both factors.

Y (K x N) ~ H (K x M) @ U (M x N). Updating U with H fixed and updating H with U fixed are the same
problem up to a transpose (Y^T ~ U^T H^T), so :meth:`MMWorkspace.step` updates the right factor X in
Y ~ W X, and the H update calls it on transposed views. Scratch arrays of the size of Y are allocated
once per factorization and reused; every elementwise operation writes in place.

For a factor X with the other factor W fixed, and V = W X, the MM update of Fevotte & Idier (2011) is::

    X <- X * ( W^T (Y * V^(beta-2)) / (W^T V^(beta-1)) ) ^ gamma(beta)

Sparsity adds ``lambda * sum_m ||h_m||_2 ||u_m||_1`` to the objective (the l1 norm of U when the bases
have unit l2 norm; invariant to rescaling a basis against its activations).

* U update: the penalty is linear in U, with weight ``lambda ||h_m||_2`` on row m. It goes into the
  denominator and the step stays an MM step for every beta: ``lambda x`` is majorized by
  ``lambda x~ ((x/x~)^s / s + 1 - 1/s)`` for any s >= 1, and s equal to the power of the majorizer's
  denominator term (1 for beta < 1, beta otherwise) keeps the closed form above.
* H update: ``||h||_2 <= ||h||^2 / (2 ||h~||) + ||h~|| / 2`` majorizes the penalty by a separable
  quadratic. The majorizer's minimiser per entry is the root of an increasing scalar function, found
  by bisection below the unpenalised update; a point between the current value and that root is
  taken, so the majorizer, and hence the objective, never increases.
"""

from __future__ import annotations

import math

import numpy as np

from .divergence import mm_exponent

#: Elements per block in the objective's sums: float32 BLAS dots over 16M entries lose ~1e-5 relative,
#: which is larger than the tolerance; block results added in float64 keep ~1e-9 at the same speed.
_BLOCK = 1 << 16


def _dot64(a: np.ndarray, b: np.ndarray) -> float:
    """sum(a * b) over all entries of two C-contiguous arrays, accumulated in float64 by blocks."""
    a, b = a.reshape(-1), b.reshape(-1)
    return math.fsum(float(np.dot(a[i : i + _BLOCK], b[i : i + _BLOCK])) for i in range(0, a.size, _BLOCK))


def _sum64(a: np.ndarray) -> float:
    """sum(a) over all entries of a C-contiguous array, accumulated in float64 by blocks."""
    a = a.reshape(-1)
    return math.fsum(float(a[i : i + _BLOCK].sum()) for i in range(0, a.size, _BLOCK))


def _mass(W: np.ndarray, X: np.ndarray) -> float:
    """sum(W @ X) = sum_m ||w_m||_1 ||x_m||_1 for non-negative factors, in float64."""
    return float(W.sum(axis=0, dtype=np.float64) @ X.sum(axis=1, dtype=np.float64))


def _project(W: np.ndarray, A: np.ndarray) -> np.ndarray:
    """W^T A for a thin W (M columns) and a large A, computed as (A^T W)^T.

    Measured with OpenBLAS (K=1025, N=15504, M=4): U @ V.T took 280 ms where (V @ U.T).T takes 9 ms,
    and H.T @ V 24 ms where (V.T @ H).T takes 15 ms; this form is the fast one in both orientations.
    """
    return (A.T @ W).T


class MMWorkspace:
    """Preallocated buffers and constants for the MM updates of one data matrix.

    Parameters
    ----------
    Y : np.ndarray [shape=(K, N)], positive, C-contiguous
        The (already floored) data; read only.
    beta : float
    sparsity : float >= 0
    """

    def __init__(self, Y: np.ndarray, beta: float, sparsity: float) -> None:
        self.Y = Y
        self.beta = beta
        self.gamma = mm_exponent(beta)
        self.sparsity = sparsity
        self.model = np.empty_like(Y)  # V = H U, then overwritten by the ratio terms
        # IS and general beta need a second K x N array (V^(beta-1)); KL and EUC do not.
        self.aux = None if beta in (1.0, 2.0) else np.empty_like(Y)
        self.tiny = np.finfo(Y.dtype).tiny
        # Constant parts of the objective, computed once.
        if beta == 0.0:
            self.const = -_sum64(np.log(Y)) - Y.size
        elif beta == 1.0:
            self.const = -_sum64(Y)
        elif beta == 2.0:
            self.const = 0.0
        else:
            self.const = _sum64(Y.astype(np.float64) ** beta) / (beta * (beta - 1.0))

    def objective(self, H: np.ndarray, U: np.ndarray) -> float:
        """Penalised objective of (H, U); see :func:`..factorize.factorize`. Clobbers the buffers."""
        np.matmul(H, U, out=self.model)
        return self.step(self.Y, self.model, self.aux, H, U, slice(0, 0), want_objective=True, is_bases=False)

    def update_activations(self, H: np.ndarray, U: np.ndarray, want_objective: bool) -> float | None:
        """One MM update of U in place; returns the objective *before* the update if asked."""
        if self.beta != 2.0 or want_objective:  # EUC updates need no model, only its objective does
            np.matmul(H, U, out=self.model)
        return self.step(self.Y, self.model, self.aux, H, U, slice(None), want_objective, is_bases=False)

    def update_bases(self, H: np.ndarray, U: np.ndarray, free: slice) -> None:
        """One MM update of the columns ``free`` of H in place (by the transposition symmetry)."""
        if self.beta != 2.0:
            np.matmul(H, U, out=self.model)
        aux_t = None if self.aux is None else self.aux.T
        self.step(self.Y.T, self.model.T, aux_t, U.T, H.T, free, want_objective=False, is_bases=True)

    def step(self, Y, model, aux, W, X, rows: slice, want_objective: bool, is_bases: bool) -> float | None:
        """Update ``X[rows]`` in Y ~ W X, with ``model`` holding V = W X on entry (overwritten).

        ``is_bases`` tells which factor X is (H^T, else U), which matters only for the penalty.

        Returns the penalised objective of the (W, X) given on entry when ``want_objective``;
        it is computed from the same passes over the data as the update. Objective sums run over
        C-ordered arrays, so ask for it only in the canonical orientation (the U update).
        """
        beta = self.beta
        W_rows = W[:, rows]
        value = None
        if beta == 2.0:
            # EUC: numerator W^T Y; denominator W^T (W X) = (W^T W) X: no K x N term needed.
            numerator = _project(W_rows, Y)
            denominator = (W_rows.T @ W) @ X
            if want_objective:
                # D = ||Y - V||^2 / 2 from the residual (more accurate than expanding the square)
                np.subtract(model, Y, out=model)
                value = 0.5 * _dot64(model, model)
        elif beta == 1.0:
            # KL: numerator W^T (Y / V); denominator W^T 1 = column sums of W.
            np.divide(Y, model, out=model)
            numerator = _project(W_rows, model)
            denominator = W_rows.sum(axis=0)[:, None].copy()
            if want_objective:
                # D = sum Y log(Y/V) - sum Y + sum V, with sum V = sum_m ||w_m||_1 ||x_m||_1
                np.log(model, out=model)
                value = _dot64(Y, model) + self.const + _mass(W, X)
        elif beta == 0.0:
            # IS: numerator W^T (Y / V^2); denominator W^T (1 / V).
            np.reciprocal(model, out=aux)
            np.multiply(Y, aux, out=model)  # Y / V
            if want_objective:
                # D = sum Y/V - sum log Y - sum log(1/V) - KN
                value = _sum64(model)
            np.multiply(model, aux, out=model)  # Y / V^2
            numerator = _project(W_rows, model)
            denominator = _project(W_rows, aux)
            if want_objective:
                np.log(aux, out=aux)
                value += self.const - _sum64(aux)
        else:
            # General beta: numerator W^T (Y V^(beta-2)); denominator W^T V^(beta-1).
            # Strong sparsity with beta > 2 can drive whole frames of the model to 0; keep
            # V^(beta-2) = V^(beta-1) / V finite there.
            np.maximum(model, self.tiny, out=model)
            np.power(model, beta - 1.0, out=aux)
            if want_objective:
                # D = [sum Y^b + (b-1) sum V^b - b sum Y V^(b-1)] / (b (b-1)), sum V^b = <V, V^(b-1)>
                sum_vb = _dot64(model, aux)
                sum_yvb = _dot64(Y, aux)
                value = self.const + ((beta - 1.0) * sum_vb - beta * sum_yvb) / (beta * (beta - 1.0))
            np.divide(aux, model, out=model)
            np.multiply(model, Y, out=model)
            numerator = _project(W_rows, model)
            denominator = _project(W_rows, aux)
        if value is not None and self.sparsity > 0.0:
            # penalty sum_m ||h_m||_2 ||u_m||_1, here W = H and X = U
            value += self.sparsity * float(
                np.linalg.norm(W.astype(np.float64), axis=0) @ X.sum(axis=1, dtype=np.float64)
            )
        if self.sparsity > 0.0 and not is_bases:
            denominator += self.sparsity * np.linalg.norm(W_rows, axis=0)[:, None]
        # Guards for a column of W that is all zero (0/0): such rows of X keep their value.
        np.maximum(denominator, self.tiny, out=denominator)
        np.maximum(numerator, self.tiny, out=numerator)
        if self.sparsity > 0.0 and is_bases:
            numerator = self._penalised_bases_ratio(numerator, denominator, X[rows], W_rows.sum(axis=0))
        else:
            np.divide(numerator, denominator, out=numerator)
            if self.gamma != 1.0:
                np.power(numerator, self.gamma, out=numerator)
        X[rows] *= numerator
        return value

    def _penalised_bases_ratio(self, p, q, bases_t, activation_l1, n_bisect: int = 48):
        """Multiplicative factor x for H^T with the penalty lambda * ||u_m||_1 * ||h_m||_2 (see top).

        With x = h / h~ per entry, p the numerator, q the denominator and
        ``a = lambda ||u_m||_1 h~ / ||h~_m||_2``, the majorizer's stationarity condition is::

            beta < 1:       q + a x - p x^(beta-2)   = 0
            1 <= beta <= 2: q x + a x^(3-beta) - p   = 0
            beta > 2:       q x^(beta-1) + a x - p   = 0

        each increasing in x, with its root below the unpenalised x0 = (p/q)^gamma.
        """
        beta = self.beta
        norms = np.linalg.norm(bases_t, axis=1, keepdims=True)
        a = (self.sparsity * activation_l1)[:, None] * bases_t / np.maximum(norms, self.tiny)

        def increasing(x):
            if beta < 1.0:
                return q + a * x - p * x ** (beta - 2.0)
            if beta <= 2.0:
                return q * x + a * x ** (3.0 - beta) - p
            return q * x ** (beta - 1.0) + a * x - p

        high = (p / q) ** self.gamma
        low = np.zeros_like(high)
        for _ in range(n_bisect):
            middle = 0.5 * (low + high)
            above = increasing(middle) >= 0
            high = np.where(above, middle, high)
            low = np.where(above, low, middle)
        # The majorizer is convex with its minimum in [low, high]: any point between 1 (the current
        # value) and the minimum lowers it, so take the bracket end on the side of 1, or stay put.
        return np.where(high <= 1.0, high, np.where(low >= 1.0, low, 1.0))
