"""Majorization-minimization multiplicative updates over tiles of frames.

Y (K x N) ~ H (K x M) @ U (M x N). The MM update of Fevotte & Idier (2011) of the activations, with
the model V = H U, is::

    U <- U * ( H^T (Y * V^(beta-2)) / (H^T V^(beta-1)) ) ^ gamma(beta)

and that of the bases the same on the transposes (Y^T ~ U^T H^T).

The engine stores everything frame-major -- the data as Y^T (N x K), the bases as H^T (M x K), the
activations as U^T (N x M) -- and streams over frames. An update needs, per frame, the model
v = H u_n and two elementwise terms a(y, v), b(v); then

* U update: per frame, numerator H^T a and denominator H^T b (frames are independent);
* H update: numerator sum_n a_n u_n^T and denominator sum_n b_n u_n^T, accumulated over frames,
  after the U update (the same algorithm as with whole matrices, not an approximation).

A frame's U update needs only that frame, so the H update's sums of a frame can follow its U
update at once: at ranks up to 4 (IS, KL) the numba kernel does a whole iteration in one pass over
the data (``update_activations(..., stage_bases=True)``, then ``update_bases``), the same iterates
as two passes; at long inputs, where every pass streams Y from memory, it halves the traffic.

Two interchangeable kernels compute those sums and give the same iterates up to float rounding:
``"numba"`` fuses model, terms and reductions in one pass over the data (fast at small ranks, where an
update is memory-bound), ``"numpy"`` runs BLAS on tiles of frames (fast at large ranks, where the
products dominate). Neither allocates a K x N array: scratch is per tile (numpy) or per frame (numba).
numba is an accelerator only: when it is missing, broken or has no writable cache, ``"auto"`` runs
the numpy kernel with one warning per process (see :func:`.backend.numba_status`).

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

from .backend import (
    EUC_FUSED_MAX_RANK,
    EUC_NUMBA_MAX_SUM_ROWS,
    load_family,
    resolve_kernel,
    uses_rank4,
)
from .divergence import EUC, GENERAL, IS, KL, majorizer_decrease, mm_exponent, update_kind

#: Frames are split into this many chunks whatever the thread count, each with its own partial sums
#: added in a fixed order: results do not depend on the number of threads.
N_CHUNKS = 16

#: Whether the numba kernel does a whole iteration in one pass over the data where it can (KL and
#: IS at ranks up to 4, see :meth:`MMWorkspace.update_activations`): the same iterates either way
#: (tests compare both), the one pass at half the memory traffic (measured at K=1025, rank 4, 2
#: threads: 149 -> 112 ms per KL iteration and 182 -> 158 ms per IS one at N=310000, an hour of
#: audio; 3.9 -> 2.9 ms for KL at N=7752). It is then compute-bound: the same arithmetic as the
#: two passes, only the second read of Y saved.
FUSED_ITERATION = True

#: Frames per tile in the numpy kernel: its K x tile scratch (4 MB at K=1025) stays in cache.
NUMPY_TILE = 1024

#: Elements per block in float64 sums of float32 arrays (float32 BLAS dots over millions of entries
#: lose ~1e-5 relative, more than the tolerance; block results added in float64 keep ~1e-9).
_BLOCK = 1 << 16


def _dot64(a: np.ndarray, b: np.ndarray) -> float:
    """sum(a * b) over all entries of two C-contiguous arrays, in float64 (block by block, so the
    float64 copies stay small): np.dot of float32 blocks would sum in float32 (measured: the EUC
    objective off by 1.8e-4 relative, the general-beta one by 2e-5)."""
    a, b = a.reshape(-1), b.reshape(-1)
    return math.fsum(
        float(
            np.dot(
                a[i : i + _BLOCK].astype(np.float64, copy=False),
                b[i : i + _BLOCK].astype(np.float64, copy=False),
            )
        )
        for i in range(0, a.size, _BLOCK)
    )


def _sum64(a: np.ndarray) -> float:
    """sum(a) over all entries of a C-contiguous array, accumulated in float64 by blocks."""
    a = a.reshape(-1)
    return math.fsum(float(a[i : i + _BLOCK].sum(dtype=np.float64)) for i in range(0, a.size, _BLOCK))


#: Frames per tile in the numpy fallback for the EUC objective: float64 copies, 2 MB at K=1025.
EUC_TILE64 = 256


class _NumpyKernel:
    """The update sums with BLAS on tiles of frames; per-tile scratch only."""

    def __init__(self, data: np.ndarray, kind: int) -> None:
        tile = min(NUMPY_TILE, data.shape[0])
        self.model = np.empty((tile, data.shape[1]), dtype=data.dtype)
        self.data_norm = None  # ||Y||^2, for the EUC objective (on first use)
        self.wide = self.projections = None  # float64 scratch of the EUC objective without numba
        self.aux = np.empty_like(self.model) if kind in (IS, GENERAL) else None

    def _tiles(self, N: int):
        tile = self.model.shape[0]
        for start in range(0, N, tile):
            stop = min(start + tile, N)
            yield (
                slice(start, stop),
                self.model[: stop - start],
                (None if self.aux is None else self.aux[: stop - start]),
            )

    def _terms(self, kind, beta, tiny, y, model, aux, want_objective):
        """a in ``model``, b in ``aux`` (IS, GENERAL); returns the tile's objective sums."""
        first = second = 0.0
        if kind == KL:
            np.divide(y, model, out=model)
            if want_objective:
                first = _dot64(y, np.log(model))
        elif kind == IS:
            np.reciprocal(model, out=aux)
            np.multiply(y, aux, out=model)
            if want_objective:
                first, second = _sum64(model), _sum64(np.log(model))
            np.multiply(model, aux, out=model)
        elif kind == EUC:
            if want_objective:
                np.subtract(model, y, out=model)
                first = _dot64(model, model)
        else:
            np.maximum(model, tiny, out=model)
            np.power(model, beta - 1.0, out=aux)
            if want_objective:
                first, second = _dot64(model, aux), _dot64(y, aux)
            np.divide(aux, model, out=model)
            np.multiply(model, y, out=model)
        return first, second

    def activation_terms(
        self, data, bases_t, acts_t, kind, beta, tiny, numerator, denominator, want_objective
    ):
        if kind == EUC and want_objective and bases_t.shape[0] <= EUC_FUSED_MAX_RANK:
            return self.euclidean_objective(data, bases_t, acts_t, numerator)
        if kind == EUC and not want_objective:
            # no elementwise terms: one product over all frames is BLAS at its most efficient
            np.matmul(data, bases_t.T, out=numerator)
            return 0.0, 0.0
        first = second = 0.0
        for frames, model, aux in self._tiles(data.shape[0]):
            y = data[frames]
            if kind != EUC or want_objective:
                np.matmul(acts_t[frames], bases_t, out=model)
            f, s = self._terms(kind, beta, tiny, y, model, aux, want_objective)
            first, second = first + f, second + s
            np.matmul(y if kind == EUC else model, bases_t.T, out=numerator[frames])
            if aux is not None:
                np.matmul(aux, bases_t.T, out=denominator[frames])
        return first, second

    def euclidean_objective(self, data, bases_t, acts_t, numerator):
        """EUC numerator H^T y_n per frame, and 2 D = ||Y||^2 - 2 <U, H^T Y> + <H^T H, U U^T>.

        The expansion needs no model, but it subtracts nearly equal terms when the fit is close:
        the projections are accumulated in float64 (float32 products are exact there), so the
        objective keeps float64 accuracy.
        """
        if self.data_norm is None:
            tiles = self._tiles(data.shape[0])
            self.data_norm = math.fsum(_dot64(data[frames], data[frames]) for frames, _, _ in tiles)
        bases64 = bases_t.astype(np.float64)
        acts64 = acts_t.astype(np.float64)
        if load_family("euclidean_objective", data.dtype) is None:
            from .kernels import euclidean_terms

            sums = np.empty(N_CHUNKS)
            euclidean_terms(data, bases_t, acts_t, numerator, sums)
            cross = math.fsum(sums)
        else:
            cross = self._euclidean_cross(data, bases64, acts64, numerator)
        gram = float(np.sum((bases64 @ bases64.T) * (acts64.T @ acts64)))
        return self.data_norm - 2.0 * cross + gram, 0.0

    def _euclidean_cross(self, data, bases64, acts64, numerator) -> float:
        """Without numba: numerator = Y^T H and <U, H^T Y>, from float64 BLAS products on tiles of
        frames (the data copied to float64 tile by tile: the same float64 projections as numba's)."""
        N, K = data.shape
        tile = min(EUC_TILE64, N)
        if self.projections is None:  # per-tile scratch, made once
            self.projections = np.empty((tile, bases64.shape[0]))
            self.wide = np.empty((tile, K)) if data.dtype != np.float64 else None
        parts = []
        for start in range(0, N, tile):
            stop = min(start + tile, N)
            frames = data[start:stop]
            if self.wide is not None:
                frames = self.wide[: stop - start]
                np.copyto(frames, data[start:stop])  # exact: float32 values (and their products) fit
            projections = self.projections[: stop - start]
            np.matmul(frames, bases64.T, out=projections)
            numerator[start:stop] = projections
            parts.append(float(np.vdot(projections, acts64[start:stop])))
        return math.fsum(parts)

    def basis_terms(self, data, bases_t, acts_t, kind, beta, tiny, rows, numerator, denominator):
        if kind == EUC:  # Y U^T for the free rows: one product, no elementwise terms
            np.matmul(acts_t[:, rows].T, data, out=numerator)
            return
        numerator[:] = 0
        if denominator is not None:
            denominator[:] = 0
        for frames, model, aux in self._tiles(data.shape[0]):
            y = data[frames]
            if kind != EUC:
                np.matmul(acts_t[frames], bases_t, out=model)
            self._terms(kind, beta, tiny, y, model, aux, False)
            weights = acts_t[frames, rows].T
            numerator += weights @ (y if kind == EUC else model)
            if aux is not None:
                denominator += weights @ aux


class _NumbaKernel:
    """The update sums with the fused kernels of :mod:`.kernels` (register-blocked ones for KL and
    IS at ranks up to 4, and for the Euclidean projections)."""

    def __init__(self, data: np.ndarray, kind: int, n_free: int, n_components: int) -> None:
        from . import kernels  # numba is imported (and kernels loaded from its cache) on first use

        self.kernels = kernels
        self.sums = np.empty((N_CHUNKS, 2))
        self.iteration_sums = np.empty((N_CHUNKS, 3))  # and the U update's drop (iteration_terms)
        # EUC: the objective from float64 projections (numba too), BLAS for the sums of many bases
        self.blas = _NumpyKernel(data, kind) if kind == EUC else None
        self.euclidean_sums = kind == EUC and n_free <= EUC_NUMBA_MAX_SUM_ROWS
        self.rank4 = uses_rank4(n_components, kind)
        # per chunk sums of the H update; whole groups of four rows for the register-blocked kernels
        rows = 4 if self.rank4 else (-(-n_free // 4) * 4 if self.euclidean_sums else n_free)
        self.numerators = np.empty((N_CHUNKS, rows, data.shape[1]), dtype=data.dtype)
        # KL: no denominators (written nowhere; numba needs an array of the same type)
        self.denominators = np.empty_like(self.numerators) if kind in (IS, GENERAL) else self.numerators
        # H^T padded with zero rows to four (the rank-4 kernels' layout), and the per basis part of
        # the U update's denominator likewise (iteration_terms)
        self.bases4 = np.zeros((4, data.shape[1]), dtype=data.dtype) if self.rank4 else None
        self.column4 = np.zeros(4, dtype=data.dtype) if self.rank4 else None

    def _padded(self, bases_t: np.ndarray) -> np.ndarray:
        self.bases4[: bases_t.shape[0]] = bases_t
        return self.bases4

    def activation_terms(
        self, data, bases_t, acts_t, kind, beta, tiny, numerator, denominator, want_objective
    ):
        if kind == EUC:
            if want_objective:  # writes the numerator too
                return self.blas.euclidean_objective(data, bases_t, acts_t, numerator)
            self.kernels.euclidean_projections(data, bases_t, numerator)
            return 0.0, 0.0
        if denominator is None:  # KL: not written; numba needs an array of the same type
            denominator = numerator
        if self.rank4:
            self.kernels.activation_terms4(
                data, self._padded(bases_t), acts_t, kind, numerator, denominator, want_objective, self.sums
            )
        else:
            self.kernels.activation_terms(
                data, bases_t, acts_t, kind, beta, tiny, numerator, denominator, want_objective, self.sums
            )
        return math.fsum(self.sums[:, 0]), math.fsum(self.sums[:, 1])

    def basis_terms(self, data, bases_t, acts_t, kind, beta, tiny, rows, numerator, denominator):
        if kind == EUC:
            if self.euclidean_sums:
                n_rows = rows.stop - rows.start
                self.kernels.euclidean_sums(data, acts_t, rows.start, n_rows, self.numerators)
                np.sum(self.numerators[:, :n_rows], axis=0, out=numerator)
            else:
                self.blas.basis_terms(data, bases_t, acts_t, kind, beta, tiny, rows, numerator, denominator)
            return
        if self.rank4:
            self.kernels.basis_terms4(
                data, self._padded(bases_t), acts_t, kind, self.numerators, self.denominators
            )
            self.staged_basis_terms(rows, numerator, denominator)
            return
        self.kernels.basis_terms(
            data, bases_t, acts_t, kind, beta, tiny, rows.start, self.numerators, self.denominators
        )
        np.sum(self.numerators, axis=0, out=numerator)
        if denominator is not None:
            np.sum(self.denominators, axis=0, out=denominator)

    def iteration_terms(
        self,
        data,
        bases_t,
        acts_t,
        kind,
        column,
        tiny,
        numerator,
        denominator,
        want_objective,
        want_decrease,
    ):
        """KL or IS at ranks up to 4: the U update in place and the H update's per chunk sums (for
        :meth:`staged_basis_terms`) in one pass (:func:`.kernels.iteration_terms4`); returns the
        objective sums of (H, U) before the update and the update's majorizer drop."""
        if denominator is None:  # KL: not written; numba needs an array of the same type
            denominator = numerator
        self.column4[: column.shape[0]] = column
        self.kernels.iteration_terms4(
            data,
            self._padded(bases_t),
            acts_t,
            kind,
            self.column4,
            tiny,
            numerator,
            denominator,
            self.numerators,
            self.denominators,
            bool(want_objective),
            bool(want_decrease),
            self.iteration_sums,
        )
        sums = self.iteration_sums
        return math.fsum(sums[:, 0]), math.fsum(sums[:, 1]), max(math.fsum(sums[:, 2]), 0.0)

    def staged_basis_terms(self, rows, numerator, denominator):
        """The H update's sums of the free rows from the rank-4 kernels' per chunk sums."""
        np.sum(self.numerators[:, rows], axis=0, out=numerator)
        if denominator is not None:
            np.sum(self.denominators[:, rows], axis=0, out=denominator)


class MMWorkspace:
    """Preallocated buffers and constants for the MM updates of one data matrix.

    Parameters
    ----------
    data : np.ndarray [shape=(N, K)], positive, C-contiguous
        The (already floored) data, frame-major (Y^T); read only. May be a memory map.
    beta : float
    sparsity : float >= 0
    n_components : int
        Total rank M (fixed plus free bases).
    free : slice
        The columns of H that are updated (the free bases); the others are held fixed.
    kernel : {"auto", "numba", "numpy"}
    """

    def __init__(
        self,
        data: np.ndarray,
        beta: float,
        sparsity: float,
        n_components: int,
        free: slice,
        kernel: str = "auto",
    ) -> None:
        N, K = data.shape
        self.data = data
        self.beta = beta
        self.kind = update_kind(beta)
        self.gamma = mm_exponent(beta)
        self.sparsity = sparsity
        self.free = free
        self.decrease = 0.0  # lower bound of the last update's decrease (see update_activations)
        self.kernel_name = resolve_kernel(kernel, n_components, beta, data.dtype)
        self.tiny = float(np.finfo(data.dtype).tiny)
        two_terms = self.kind in (IS, GENERAL)
        n_free = free.stop - free.start
        # U-update projections (N x M) and H-update sums (F x K): small next to the data.
        self.numerator_u = np.empty((N, n_components), dtype=data.dtype)
        self.denominator_u = np.empty_like(self.numerator_u) if two_terms else None
        self.numerator_h = np.empty((n_free, K), dtype=data.dtype)
        self.denominator_h = np.empty_like(self.numerator_h) if two_terms else None
        if self.kernel_name == "numba":
            self.kernel = _NumbaKernel(data, self.kind, n_free, n_components)
        else:
            self.kernel = _NumpyKernel(data, self.kind)
        # one pass per iteration (see update_activations): the numba rank-4 kernels, free bases
        self.fused = FUSED_ITERATION and self.kernel_name == "numba" and self.kernel.rank4 and n_free > 0
        self._staged = None  # (bases_t, acts_t) whose H-update sums the last U update computed
        # Constant parts of the objective, computed once (blockwise: data may be a memory map).
        if self.kind == KL:
            self.const = -self._data_sum(lambda block: block.sum(dtype=np.float64))
        elif self.kind == IS:
            self.const = -float(N * K)
        elif self.kind == EUC:
            self.const = 0.0
        else:
            self.const = self._data_sum(lambda block: (block.astype(np.float64) ** beta).sum()) / (
                beta * (beta - 1.0)
            )

    def _data_sum(self, function) -> float:
        step = max(1, _BLOCK * 16 // self.data.shape[1])
        return math.fsum(float(function(self.data[i : i + step])) for i in range(0, self.data.shape[0], step))

    def objective(self, bases_t: np.ndarray, acts_t: np.ndarray) -> float:
        """Penalised objective of (H, U), given as H^T [shape=(M, K)] and U^T [shape=(N, M)]."""
        return self._activation_sums(bases_t, acts_t, want_objective=True)

    def _activation_sums(self, bases_t, acts_t, want_objective):
        acts_l1 = self._activation_l1(acts_t, want_objective)
        first, second = self.kernel.activation_terms(
            self.data,
            bases_t,
            acts_t,
            self.kind,
            self.beta,
            self.tiny,
            self.numerator_u,
            self.denominator_u,
            want_objective,
        )
        if not want_objective:
            return None
        return self._value(first, second, bases_t, acts_l1)

    def _activation_l1(self, acts_t, want_objective):
        """||u_m||_1 per basis in float64, where the objective needs them (KL's sum of the model,
        the penalty), else None."""
        if want_objective and (self.kind == KL or self.sparsity > 0.0):
            return acts_t.sum(axis=0, dtype=np.float64)
        return None

    def _value(self, first, second, bases_t, acts_l1):
        """The penalised objective from a kernel's objective sums, H^T and the l1 norms of U's rows."""
        if self.kind == KL:
            # D = sum y log(y/v) - sum y + sum v, with sum v = sum_m ||h_m||_1 ||u_m||_1
            mass = float(bases_t.sum(axis=1, dtype=np.float64) @ acts_l1)
            value = first + self.const + mass
        elif self.kind == IS:
            value = first - second + self.const  # sum y/v - sum log(y/v) - KN
        elif self.kind == EUC:
            value = 0.5 * first
        else:
            beta = self.beta
            value = self.const + ((beta - 1.0) * first - beta * second) / (beta * (beta - 1.0))
        if self.sparsity > 0.0:
            value += self.sparsity * float(np.linalg.norm(bases_t.astype(np.float64), axis=1) @ acts_l1)
        return value

    def update_activations(
        self,
        bases_t: np.ndarray,
        acts_t: np.ndarray,
        want_objective: bool,
        want_decrease: bool = False,
        stage_bases: bool = False,
    ) -> float | None:
        """One MM update of U^T in place; returns the objective *before* the update if asked.

        With ``want_decrease``, :attr:`decrease` is set to a lower bound of how much the update
        lowered the objective (the majorizer's drop, see :func:`.divergence.majorizer_decrease`).

        With ``stage_bases``, where :attr:`fused` holds, the same pass over the data also computes
        the sums of the H update that follows (with the new U): the next :meth:`update_bases` with
        these same ``bases_t`` and ``acts_t`` objects, unchanged meanwhile, uses them instead of a
        pass of its own. The iterates are those of the two passes, bit for bit for KL (IS: to a few
        float32 ulps). Elsewhere ``stage_bases`` changes nothing.
        """
        self._staged = None
        if stage_bases and self.fused:
            return self._update_in_one_pass(bases_t, acts_t, want_objective, want_decrease)
        value = self._activation_sums(bases_t, acts_t, want_objective)
        numerator = self.numerator_u
        if self.kind == KL:
            denominator = bases_t.sum(axis=1)[None, :]  # H^T 1: column sums of H
        elif self.kind == EUC:
            denominator = acts_t @ (bases_t @ bases_t.T)  # (H^T H) U, no K x N term
        else:
            denominator = self.denominator_u
        if self.sparsity > 0.0:
            denominator = denominator + self.sparsity * np.linalg.norm(bases_t, axis=1)[None, :]
        self.decrease = self._apply(acts_t, numerator, denominator, want_decrease)
        return value

    def _update_in_one_pass(self, bases_t, acts_t, want_objective, want_decrease):
        """:meth:`update_activations` and the next :meth:`update_bases`'s sums in one pass (numba,
        KL and IS at ranks up to 4): the kernel applies the update as :meth:`_apply` does."""
        acts_l1 = self._activation_l1(acts_t, want_objective)  # of U before the update
        # the U update's denominator per basis: KL, H^T 1 (column sums of H); IS, only the penalty
        if self.kind == KL:
            column = bases_t.sum(axis=1)
        else:
            column = np.zeros(bases_t.shape[0], dtype=bases_t.dtype)
        if self.sparsity > 0.0:
            column = column + self.sparsity * np.linalg.norm(bases_t, axis=1)
        first, second, decrease = self.kernel.iteration_terms(
            self.data,
            bases_t,
            acts_t,
            self.kind,
            column,
            self.tiny,
            self.numerator_u,
            self.denominator_u,
            want_objective,
            want_decrease,
        )
        self.decrease = decrease if want_decrease else 0.0
        self._staged = (bases_t, acts_t)
        return self._value(first, second, bases_t, acts_l1) if want_objective else None

    def update_bases(self, bases_t: np.ndarray, acts_t: np.ndarray, want_decrease: bool = False) -> None:
        """One MM update of the free rows of H^T in place (with U^T already updated).

        With ``want_decrease``, :attr:`decrease` is set as in :meth:`update_activations` (0 with a
        sparsity penalty, whose bases update minimises another majorizer: still a lower bound).
        """
        rows = self.free
        staged, self._staged = self._staged, None
        if staged is not None and staged[0] is bases_t and staged[1] is acts_t:
            # summed by the U update's pass (update_activations with stage_bases)
            self.kernel.staged_basis_terms(rows, self.numerator_h, self.denominator_h)
        else:
            self.kernel.basis_terms(
                self.data,
                bases_t,
                acts_t,
                self.kind,
                self.beta,
                self.tiny,
                rows,
                self.numerator_h,
                self.denominator_h,
            )
        numerator = self.numerator_h
        if self.kind == KL:
            denominator = acts_t[:, rows].sum(axis=0)[:, None]  # U 1: row sums of U
        elif self.kind == EUC:
            denominator = (acts_t[:, rows].T @ acts_t) @ bases_t  # (U U^T) H^T
        else:
            denominator = self.denominator_h
        if self.sparsity > 0.0:
            np.maximum(denominator, self.tiny, out=denominator)
            np.maximum(numerator, self.tiny, out=numerator)
            factor = self._penalised_bases_ratio(
                numerator, denominator, bases_t[rows], acts_t[:, rows].sum(axis=0)
            )
            bases_t[rows] *= factor
            self.decrease = 0.0
        else:
            self.decrease = self._apply(bases_t[rows], numerator, denominator, want_decrease)

    def _apply(
        self, factor: np.ndarray, numerator: np.ndarray, denominator: np.ndarray, want_decrease: bool = False
    ) -> float:
        """factor *= (numerator / denominator)^gamma in place (numerator is overwritten); returns the
        majorizer's drop if asked (0.0 otherwise)."""
        # Guards for a basis or activation that is all zero (0/0): such entries keep their value.
        denominator = np.maximum(denominator, self.tiny)
        np.maximum(numerator, self.tiny, out=numerator)
        np.divide(numerator, denominator, out=numerator)
        if self.gamma != 1.0:
            np.power(numerator, self.gamma, out=numerator)
        decrease = majorizer_decrease(factor, numerator, denominator, self.beta) if want_decrease else 0.0
        factor *= numerator
        return decrease

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
