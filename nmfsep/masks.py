"""Wiener-style soft masks from an NMF model.

For components j = 1..M with bases h_j and activations u_j, the mask of component j is::

    m_j = (h_j u_j)^a / sum_i (h_i u_i)^a        (a = mask power; a = 1 is the classic Wiener-like
                                                 ratio of model spectra, larger a is harder)

Masks lie in [0, 1] and sum to 1 in every time-frequency bin, so the masked mixture STFTs sum to the
mixture STFT and the separated signals sum back to the input. Bins where every component's model is
zero (or underflows) are split equally, 1/M each: with no evidence for any component, none is
preferred, and the sum stays 1.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .errors import ParameterError


def _powered_factors(bases: np.ndarray, activations: np.ndarray, power: float):
    if bases.ndim != 2 or activations.ndim != 2 or bases.shape[1] != activations.shape[0]:
        raise ParameterError(
            f"Shape mismatch: bases {bases.shape} and activations {activations.shape} "
            "must be (K, M) and (M, N)"
        )
    if not (power > 0 and np.isfinite(power)):
        raise ParameterError(f"mask power={power!r} must be a finite number > 0")
    dtype = np.result_type(bases.dtype, activations.dtype, np.float32)
    # (h u)^a = h^a u^a. Scaling each factor by its maximum first cannot overflow for any a, and the
    # scale cancels in the ratio.
    H = bases / max(float(bases.max()), np.finfo(dtype).tiny)
    U = activations / max(float(activations.max()), np.finfo(dtype).tiny)
    if power != 1:
        H, U = H**power, U**power
    return H.astype(dtype, copy=False), U.astype(dtype, copy=False)


def iter_masks(bases: np.ndarray, activations: np.ndarray, power: float = 1.0) -> Iterator[np.ndarray]:
    """Yield the mask of each component in turn, computing the shared denominator once.

    Peak memory is three K x N arrays whatever M is. The yielded array is reused: copy it if you
    keep it past the next iteration.

    Parameters
    ----------
    bases : np.ndarray [shape=(K, M)], non-negative
    activations : np.ndarray [shape=(M, N)], non-negative
    power : float > 0
        The mask exponent a.

    Yields
    ------
    mask : np.ndarray [shape=(K, N)], values in [0, 1]
    """
    return iter_group_masks(bases, activations, [[j] for j in range(np.shape(bases)[1])], power)


def soft_masks(bases: np.ndarray, activations: np.ndarray, power: float = 1.0) -> np.ndarray:
    """All masks at once (see :func:`iter_masks`).

    Returns
    -------
    masks : np.ndarray [shape=(M, K, N)], values in [0, 1], summing to 1 over M
    """
    return np.stack([mask.copy() for mask in iter_masks(bases, activations, power)])


def iter_group_masks(
    bases: np.ndarray, activations: np.ndarray, groups: list[list[int]], power: float = 1.0
) -> Iterator[np.ndarray]:
    """Yield one mask per group of components: the sum of its components' masks.

    ``groups`` must partition the components (every index exactly once), so the group masks also
    lie in [0, 1] and sum to 1 in every bin. Bins that no component explains are split equally
    between the components, so a group gets ``len(group) / M`` there.

    Yields
    ------
    mask : np.ndarray [shape=(K, N)]
    """
    masks = GroupMasks(bases, activations, groups, power)
    for mask in masks.block(0, masks.n_frames):
        yield mask.T


class GroupMasks:
    """Group masks computed block of frames by block of frames (see :func:`iter_group_masks`).

    The factors are normalised and raised to the mask power once, for the whole signal, so every
    block gives the same values as the whole-signal masks. Scratch is per block.

    Parameters
    ----------
    bases : np.ndarray [shape=(K, M)], non-negative
    activations : np.ndarray [shape=(M, N)], non-negative
    groups : list of list of int
        A partition of the M components.
    power : float > 0
    """

    def __init__(
        self, bases: np.ndarray, activations: np.ndarray, groups: list[list[int]], power: float = 1.0
    ):
        H, U = _powered_factors(bases, activations, power)
        self.M = H.shape[1]
        flat = sorted(index for group in groups for index in group)
        if flat != list(range(self.M)):
            raise ParameterError(
                f"groups {groups} must use every one of the {self.M} components exactly once"
            )
        self.groups = [list(group) for group in groups]
        self.bases_t = np.ascontiguousarray(H.T)  # frame-major layout: (M, K) and (N, M)
        self.acts_t = np.ascontiguousarray(U.T)
        self.n_frames = self.acts_t.shape[0]

    def block(self, start: int, stop: int) -> Iterator[np.ndarray]:
        """Yield the mask of each group for frames [start, stop) [shape=(b, K)], frame-major.

        The yielded array is reused: copy it to keep it past the next one.
        """
        shared = self.shared(start, stop)
        mask = np.empty_like(shared[0])
        for index in range(len(self.groups)):
            yield self.group_mask(index, start, stop, shared, mask)

    def shared(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """What every group's mask of frames [start, stop) needs: 1 / sum_i (h_i u_i)^a [shape=(b, K)]
        and the flat indices of the bins no component explains."""
        total = self.acts_t[start:stop] @ self.bases_t
        tiny = np.finfo(total.dtype).tiny
        empty = np.flatnonzero(total <= tiny)
        np.maximum(total, tiny, out=total)
        np.reciprocal(total, out=total)
        return total, empty

    def group_mask(self, index: int, start: int, stop: int, shared, out: np.ndarray) -> np.ndarray:
        """The mask of group ``index`` for frames [start, stop), written into ``out`` [shape=(b, K)]."""
        reciprocal, empty = shared
        group = self.groups[index]
        np.matmul(self.acts_t[start:stop, group], self.bases_t[group], out=out)
        out *= reciprocal
        np.minimum(out, 1.0, out=out)
        out.reshape(-1)[empty] = len(group) / self.M
        return out
