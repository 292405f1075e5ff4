"""Blind grouping of NMF components into sources (no reference signals).

Placeholder method until measured: agglomerative clustering of the bases' log-spectral shapes.
"""

from __future__ import annotations

import numpy as np

from .errors import ParameterError

#: Components per source when ``--sources J`` is given without ``-m``.
GROUPING_COMPONENTS_PER_SOURCE = 4


def group_components(bases: np.ndarray, activations: np.ndarray, n_sources: int) -> list[list[int]]:
    """Partition the M components into ``n_sources`` groups.

    Parameters
    ----------
    bases : np.ndarray [shape=(K, M)]
    activations : np.ndarray [shape=(M, N)]
    n_sources : int, 1 <= n_sources <= M

    Returns
    -------
    groups : list of lists of component indices, every component exactly once, none empty
    """
    from scipy.cluster.hierarchy import fcluster, linkage

    M = bases.shape[1]
    if not 1 <= n_sources <= M:
        raise ParameterError(f"n_sources={n_sources} must be between 1 and the {M} components")
    if n_sources == M:
        return [[j] for j in range(M)]
    if n_sources == 1:
        return [list(range(M))]
    shape = np.log(bases.astype(np.float64) + 1e-6 * bases.max())
    shape -= shape.mean(axis=0)
    shape /= np.maximum(np.linalg.norm(shape, axis=0), 1e-12)
    labels = fcluster(linkage(shape.T, method="average", metric="cosine"), n_sources, criterion="maxclust")
    groups = [list(np.flatnonzero(labels == label)) for label in np.unique(labels)]
    return [[int(j) for j in group] for group in groups]
