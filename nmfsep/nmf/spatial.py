"""Multichannel NMF: sources with a spatial covariance per frequency and an NMF spectrum each.

Model (Sawada, Kameoka, Araki & Ueda, "Multichannel extensions of non-negative matrix factorization
with complex-valued data", IEEE TASLP 21(5), 2013; the full-rank spatial covariances of Duong,
Vincent & Gribonval 2010; Ozerov & Fevotte 2010 for the EM ancestor). At every bin (k, n) the
C-channel STFT x_kn is a zero-mean complex Gaussian with covariance

    X^_kn = sum_j P_j[k, n] R_j[k] + floor I,      P_j = H_j U_j  (K x N, the source's NMF spectrum)

R_j[k] (C x C Hermitian, trace 1) is where source j sits, per frequency: rank one for a source
panned or delayed between the channels, full rank for a wide or reverberant one. The fit minimises
the negative log-likelihood (the multichannel Itakura-Saito divergence up to a constant)

    D = sum_kn  log det X^_kn + x_kn^H X^_kn^-1 x_kn

by Sawada et al.'s majorization-minimization updates, which never increase D:

    H_j <- H_j * sqrt((B_j U_j^T) / (A_j U_j^T)),   U_j <- U_j * sqrt((H_j^T B_j) / (H_j^T A_j))
    R_j[k] <- G^-1 # (R_j S R_j),  G = sum_n P_j X^-1,  S = sum_n P_j y y^H  (# the matrix geometric
                                                        mean: the solution R of R G R = R_j S R_j)

with A_j = tr(X^-1 R_j), B_j = y^H R_j y, y = X^-1 x, all from the model before the update. The
fixed ``floor`` (1e-6 of the mixture's mean power) keeps X^ invertible in digital silence and is
part of the model, so the updates stay monotone.

The sources' images are the multichannel Wiener filters s_j = (P_j R_j + floor I / J) X^-1 x: they
add up to x exactly. The spectrogram is read block of frames by block of frames (it may be a
memory map); only the J x K x block terms of one block are held at a time.

Initialisation: every bin goes to one of J clusters of its inter-channel level ratio (k-means on
the pan angle for stereo), R_j[k] from the covariance of its bins and H_j, U_j from a KL NMF of its
bins' power. Measured on real stereo recordings this is what makes the fit find quiet sources (see
bench/results.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from threadpoolctl import threadpool_limits

from .factorize import factorize

#: Frames per block: J x K x BLOCK_FRAMES float32 terms (a 4-source, n_fft 4096 block is 8 MB each).
BLOCK_FRAMES = 256
#: Model floor, relative to the mixture's mean power per channel.
FLOOR = 1e-6
#: Share of the identity mixed into the initial covariances (keeps them full rank at the start).
LOADING = 1e-3
#: Iterations of the KL NMF that starts each source's spectrum from its cluster's bins.
INIT_ITER = 30
#: Bins sampled for the pan k-means (evenly spaced; enough for J centres, cheap on hours of audio).
CLUSTER_SAMPLE = 200_000


@dataclass
class SpatialProgress:
    """What a callback sees after every iteration."""

    iteration: int
    max_iter: int
    objective: float


@dataclass
class SpatialModel:
    """A fitted multichannel NMF.

    Attributes
    ----------
    bases : np.ndarray [shape=(J, K, M)]
        Spectral bases of every source, each column summing to 1.
    activations : np.ndarray [shape=(J, M, N)]
        Their activations.
    covariances : np.ndarray [shape=(J, K, C, C)], complex128
        Spatial covariance of every source per frequency, Hermitian, trace 1 (float64: they are
        small, and a rank-one covariance must stay positive semi-definite).
    floor : float
        The model's noise floor (times the identity).
    objective : float
        D at the last iteration's start (see the module docstring), float64.
    history : list of float
        D at the start of every iteration.
    steps : list of float
        With ``record_steps``: D after every update (bases, activations, covariances in turn), from
        the passes that the next update makes anyway, the sequence the MM updates keep
        non-increasing; otherwise D at the start of every iteration (as ``history``).
    n_iter : int
    converged : bool
    """

    bases: np.ndarray
    activations: np.ndarray
    covariances: np.ndarray
    floor: float
    objective: float = float("nan")
    history: list[float] = field(default_factory=list)
    steps: list[float] = field(default_factory=list)
    n_iter: int = 0
    converged: bool = False

    @property
    def n_sources(self) -> int:
        return self.bases.shape[0]

    def spectra(self, frames: slice = slice(None)) -> np.ndarray:
        """P_j = H_j U_j for the given frames [shape=(J, K, B)]."""
        return _spectra(self.bases, self.activations, frames)

    def images(self, X: np.ndarray, frames: slice = slice(None), *, kernel: str = "auto") -> np.ndarray:
        """Multichannel Wiener estimates of the J source images for a block of the STFT.

        Parameters
        ----------
        X : np.ndarray [shape=(C, K, B)], complex
            The mixture's STFT at ``frames`` (B frames).

        Returns
        -------
        np.ndarray [shape=(J, C, K, B)], complex: they add up to X.
        """
        P = self.spectra(frames)
        return _images(X, P, self.covariances, self.floor, _use_numba(kernel, X.shape[0], P.dtype))

    def pan(self) -> np.ndarray:
        """Where each source sits, per frequency: -1 left ... +1 right [shape=(J, K)] (stereo).

        From the covariance's channel powers: (r22 - r11) / (r11 + r22).
        """
        r11 = self.covariances[:, :, 0, 0].real
        r22 = self.covariances[:, :, -1, -1].real
        return (r22 - r11) / np.maximum(r11 + r22, np.finfo(np.float32).tiny)

    def mean_pan(self) -> np.ndarray:
        """Each source's pan, weighted by its spectral energy per frequency [shape=(J,)]."""
        energy = np.einsum("jkm,jm->jk", self.bases, self.activations.sum(axis=2))
        return np.sum(self.pan() * energy, axis=1) / np.maximum(energy.sum(axis=1), np.finfo(float).tiny)


# ----------------------------------------------------------------------------------------- terms

# numpy's matmul of stacks of matrices does not call BLAS (measured: 23 ms against 0.26 ms for
# three 2049 x 8 @ 8 x 256 products), so every product below loops over the sources.


def _spectra(H: np.ndarray, U: np.ndarray, frames: slice) -> np.ndarray:
    """P_j = H_j U_j[:, frames] [shape=(J, K, B)]."""
    first = U[0, :, frames]
    out = np.empty((H.shape[0], H.shape[1], first.shape[1]), dtype=np.result_type(H, U))
    for j in range(H.shape[0]):
        np.matmul(H[j], U[j, :, frames], out=out[j])
    return out


def _use_numba(kernel: str, n_channels: int, dtype=np.float32) -> bool:
    from .backend import resolve_spatial_kernel

    return resolve_spatial_kernel(kernel, n_channels, dtype) == "numba"


def _pack(covariances: np.ndarray) -> np.ndarray:
    """(J, K, 2, 2) complex -> (J, K, 4) float64: r11, r22, re r12, im r12 (the stereo kernel's layout).

    float64 like the covariances themselves: a rank-one covariance rounded to float32 has a negative
    eigenvalue of ~1e-8 of its trace, which times a loud source's spectrum outweighs the floor and
    makes X^ indefinite (measured: NaN objective after 40 iterations on a panned trio)."""
    packed = np.empty(covariances.shape[:2] + (4,))
    packed[..., 0] = covariances[..., 0, 0].real
    packed[..., 1] = covariances[..., 1, 1].real
    packed[..., 2] = covariances[..., 0, 1].real
    packed[..., 3] = covariances[..., 0, 1].imag
    return packed


def _unpack_sums(sums: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(J, K, 8) float64 sums of the stereo kernel -> G, S as (J, K, 2, 2) complex."""
    G = np.empty(sums.shape[:2] + (2, 2), dtype=np.complex128)
    S = np.empty_like(G)
    for matrix, offset in ((G, 0), (S, 4)):
        matrix[..., 0, 0] = sums[..., offset]
        matrix[..., 1, 1] = sums[..., offset + 1]
        matrix[..., 0, 1] = sums[..., offset + 2] + 1j * sums[..., offset + 3]
        matrix[..., 1, 0] = np.conj(matrix[..., 0, 1])
    return G, S


class _Terms:
    """A, B (and optionally G, S) of every block, from numba's stereo kernel or numpy for any C."""

    def __init__(self, n_sources: int, n_bins: int, n_channels: int, dtype, use_numba: bool):
        self.use_numba = use_numba
        self.dtype = dtype
        self.shape = (n_sources, n_bins)
        self.n_channels = n_channels
        if use_numba:
            from .spatial_kernels import stereo_terms

            self._kernel = stereo_terms
        self.objective_rows = np.zeros(n_bins)
        self.reset()

    def reset(self, want_sums: bool = False, want_objective: bool = True) -> None:
        self.objective_rows[:] = 0.0
        self.want_sums = want_sums
        self.want_objective = want_objective
        if self.use_numba:
            self.sums = np.zeros(self.shape + (8,))
        else:
            C = self.n_channels
            self.G = np.zeros(self.shape + (C, C), dtype=np.complex128)
            self.S = np.zeros_like(self.G)

    def set_covariances(self, covariances: np.ndarray) -> None:
        self.covariances = covariances
        if self.use_numba:
            self.packed = _pack(covariances)

    def __call__(self, X: np.ndarray, P: np.ndarray, floor: float) -> tuple[np.ndarray, np.ndarray]:
        if self.use_numba:
            A = np.empty_like(P)
            B = np.empty_like(P)
            self._kernel(
                X,
                P,
                self.packed,
                self.dtype(floor),
                A,
                B,
                self.objective_rows,
                self.want_objective,
                self.sums,
                self.want_sums,
            )
            return A, B
        return self._numpy(X, P, floor)

    def _numpy(self, X, P, floor):
        C = X.shape[0]
        R = self.covariances.astype(np.complex128)
        model = np.einsum("jkb,jkcd->kbcd", P.astype(np.float64), R) + floor * np.eye(C)
        inverse = np.linalg.inv(model)
        x = np.moveaxis(X, 0, -1).astype(np.complex128)  # (K, B, C)
        y = np.einsum("kbcd,kbd->kbc", inverse, x)
        if self.want_objective:
            sign, logdet = np.linalg.slogdet(model)
            logdet = np.where(sign > 0, logdet, np.nan)  # an indefinite model must not pass unseen
            self.objective_rows += logdet.sum(axis=1) + np.einsum("kbc,kbc->k", np.conj(x), y).real
        A = np.einsum("kbcd,jkdc->jkb", inverse, R).real
        B = np.einsum("kbc,jkcd,kbd->jkb", np.conj(y), R, y).real
        if self.want_sums:
            P64 = P.astype(np.float64)
            self.G += np.einsum("jkb,kbcd->jkcd", P64, inverse)
            self.S += np.einsum("jkb,kbc,kbd->jkcd", P64, y, np.conj(y))
        return A.astype(self.dtype), B.astype(self.dtype)

    def objective(self) -> float:
        return float(np.sum(self.objective_rows)) if self.want_objective else float("nan")

    def spatial_sums(self) -> tuple[np.ndarray, np.ndarray]:
        if self.use_numba:
            return _unpack_sums(self.sums)
        return self.G, self.S


def _images(X, P, covariances, floor, use_numba):
    J = P.shape[0]
    C = X.shape[0]
    if use_numba:
        from .spatial_kernels import stereo_images

        out = np.empty((J, C) + X.shape[1:], dtype=X.dtype)
        stereo_images(X, P, _pack(covariances), P.dtype.type(floor), out)
        return out
    R = covariances.astype(np.complex128)
    model = np.einsum("jkb,jkcd->kbcd", P.astype(np.float64), R) + floor * np.eye(C)
    y = np.linalg.solve(model, np.moveaxis(X, 0, -1)[..., None].astype(np.complex128))[..., 0]
    images = np.einsum("jkb,jkcd,kbd->jckb", P.astype(np.float64), R, y) + (floor / J) * np.moveaxis(y, -1, 0)
    return images.astype(X.dtype)


# ----------------------------------------------------------------------------------------- spatial update


def _hermitian_power(M: np.ndarray, power: float) -> np.ndarray:
    """M^power for Hermitian positive semi-definite matrices (batched), eigenvalues floored at 0."""
    values, vectors = np.linalg.eigh(M)
    values = np.maximum(values, 0.0) ** power if power > 0 else np.maximum(values, 1e-300) ** power
    return np.einsum("...cd,...d,...ed->...ce", vectors, values, np.conj(vectors))


def geometric_mean_solution(G: np.ndarray, B: np.ndarray) -> np.ndarray:
    """The Hermitian positive semi-definite R with R G R = B: G^-1 # B (batched, any size).

    R = G^-1/2 (G^1/2 B G^1/2)^1/2 G^-1/2 (Sawada et al. 2013, eq. 31). For 2 x 2 matrices the
    square roots are closed-form, sqrt(M) = (M + sqrt(det M) I) / sqrt(tr M + 2 sqrt(det M)),
    which holds for singular M too (a rank-one B, from a source panned to one point) and is 10
    times faster than numpy's batched eigh; G and B are scaled to unit trace first.
    """
    if G.shape[-1] != 2:
        root = _hermitian_power(G, 0.5)
        inverse_root = _hermitian_power(G, -0.5)
        inner = root @ B @ root
        inner = (inner + np.conj(np.swapaxes(inner, -1, -2))) / 2
        R = inverse_root @ _hermitian_power(inner, 0.5) @ inverse_root
        return (R + np.conj(np.swapaxes(R, -1, -2))) / 2
    tiny = np.finfo(np.float64).tiny
    g = np.maximum(np.trace(G, axis1=-2, axis2=-1).real, tiny)[..., None, None]
    b = np.maximum(np.trace(B, axis1=-2, axis2=-1).real, tiny)[..., None, None]
    root = _sqrt2(G / g)
    # G is singular only where the source has no spectrum (P_j = 0 at that frequency): no solution
    # there, R = 0, which the caller replaces by the previous covariance
    singular = _det2(root) <= 1e-12
    root[singular] = np.eye(2)
    inverse_root = _inverse2(root)
    inner = root @ (B / b) @ root
    R = inverse_root @ _sqrt2((inner + np.conj(np.swapaxes(inner, -1, -2))) / 2) @ inverse_root
    R *= np.sqrt(b / g)  # R G R = B from the unit-trace solution
    R[singular] = 0.0
    return (R + np.conj(np.swapaxes(R, -1, -2))) / 2


def _sqrt2(M: np.ndarray) -> np.ndarray:
    """Square root of 2 x 2 Hermitian positive semi-definite matrices (batched)."""
    root_det = np.sqrt(np.maximum(_det2(M), 0.0))
    scale = np.sqrt(
        np.maximum(np.trace(M, axis1=-2, axis2=-1).real + 2 * root_det, np.finfo(np.float64).tiny)
    )
    return (M + root_det[..., None, None] * np.eye(2)) / scale[..., None, None]


def _det2(M: np.ndarray) -> np.ndarray:
    return (M[..., 0, 0] * M[..., 1, 1] - M[..., 0, 1] * M[..., 1, 0]).real


def _inverse2(M: np.ndarray) -> np.ndarray:
    inverse = np.empty_like(M)
    inverse[..., 0, 0] = M[..., 1, 1]
    inverse[..., 1, 1] = M[..., 0, 0]
    inverse[..., 0, 1] = -M[..., 0, 1]
    inverse[..., 1, 0] = -M[..., 1, 0]
    return inverse / _det2(M)[..., None, None]


def _positive(R: np.ndarray, share: float = 1e-9) -> np.ndarray:
    """R with its smallest eigenvalue raised to at least ``share`` of its trace (by adding a multiple
    of the identity): rounding leaves a rank-one solution with a slightly negative eigenvalue, which
    a loud spectrum would amplify into an indefinite model."""
    trace = np.trace(R, axis1=-2, axis2=-1).real
    if R.shape[-1] == 2:
        half = trace / 2
        smallest = half - np.sqrt(np.maximum(half**2 - _det2(R), 0.0))
    else:
        smallest = np.linalg.eigvalsh(R)[..., 0]
    lift = np.maximum(share * np.maximum(trace, 0.0) - smallest, 0.0)
    return R + lift[..., None, None] * np.eye(R.shape[-1])


# ----------------------------------------------------------------------------------------- initialisation


def cluster_bins(
    X: np.ndarray, n_sources: int, *, seed: int = 0, block_frames: int = BLOCK_FRAMES
) -> np.ndarray:
    """Which of J clusters of inter-channel level every bin belongs to [shape=(K, N)], int8.

    Weighted k-means (energy weights, scikit-learn, seeded) of each bin's channel magnitudes
    normalised to unit length (for stereo: the pan angle), fitted on at most CLUSTER_SAMPLE evenly
    spaced bins and applied to all. Clusters are numbered by their first channel's share, from
    the first channel (left) to the last (right).
    """
    from sklearn.cluster import KMeans

    C, K, N = X.shape
    step = max(1, (K * N) // CLUSTER_SAMPLE)
    sample = np.abs(X.reshape(C, K * N)[:, ::step]).astype(np.float64).T  # (S, C)
    features, weights = _directions(sample)
    keep = weights > 0
    # no more clusters than distinct places (k-means would warn; the other sources start empty)
    distinct = len(np.unique(np.round(features[keep], 9), axis=0)) if np.any(keep) else 0
    n_clusters = min(n_sources, max(1, distinct))
    if distinct:
        kmeans = KMeans(n_clusters=n_clusters, n_init=4, random_state=seed)
        kmeans.fit(features[keep], sample_weight=weights[keep])
        centres = kmeans.cluster_centers_
    else:  # silence: any split will do
        centres = np.zeros((n_clusters, features.shape[1]))
    # left to right: the pan angle increasing (stereo), else the first channel's share decreasing
    order = np.argsort(centres[:, 0] if C == 2 else -centres[:, 0], kind="stable")
    centres = centres[order]
    labels = np.empty((K, N), dtype=np.int8)
    for start in range(0, N, block_frames):
        frames = slice(start, min(N, start + block_frames))
        block = np.abs(X[:, :, frames]).astype(np.float64)
        features, _ = _directions(np.moveaxis(block, 0, -1).reshape(-1, C))
        distance = ((features[:, None, :] - centres[None]) ** 2).sum(axis=2)
        labels[:, frames] = np.argmin(distance, axis=1).reshape(K, -1)
    return labels


def pan_spread(X: np.ndarray) -> float:
    """How far apart the bins sit between the channels: the energy-weighted standard deviation of the
    channel directions (for stereo, of the pan angle, in radians) over at most CLUSTER_SAMPLE bins.
    0 when the channels are proportional (a mono recording saved as stereo): no spatial cue."""
    C, K, N = X.shape
    step = max(1, (K * N) // CLUSTER_SAMPLE)
    sample = np.abs(X.reshape(C, K * N)[:, ::step]).astype(np.float64).T
    features, weights = _directions(sample)
    total = float(weights.sum())
    if total <= 0:
        return 0.0
    mean = (features * weights[:, None]).sum(axis=0) / total
    return float(np.sqrt(np.sum(((features - mean) ** 2).sum(axis=1) * weights) / total))


def _directions(magnitudes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit-length channel magnitudes (for C = 2 the pan angle, as a 1-D feature) and bin weights."""
    weights = magnitudes.sum(axis=1)
    if magnitudes.shape[1] == 2:
        return np.arctan2(magnitudes[:, 1], magnitudes[:, 0])[:, None], weights
    norm = np.sqrt((magnitudes**2).sum(axis=1, keepdims=True))
    return magnitudes / np.maximum(norm, 1e-300), weights


def initial_model(
    X: np.ndarray,
    labels: np.ndarray,
    n_sources: int,
    n_components: int,
    *,
    seed: int = 0,
    dtype=np.float32,
    block_frames: int = BLOCK_FRAMES,
) -> SpatialModel:
    """R_j from the covariance of cluster j's bins, H_j and U_j from a KL NMF of their power."""
    C, K, N = X.shape
    J = n_sources
    covariances = np.zeros((J, K, C, C), dtype=np.complex128)
    power = np.zeros((K, N), dtype=dtype)
    for start in range(0, N, block_frames):
        frames = slice(start, min(N, start + block_frames))
        block = X[:, :, frames].astype(np.complex128)
        block_labels = labels[:, frames]
        for j in range(J):
            member = block_labels == j
            covariances[j] += np.einsum("kb,ckb,dkb->kcd", member, block, np.conj(block))
        power[:, frames] = (np.abs(block) ** 2).sum(axis=0)  # tr(x x^H): the covariances have trace 1
    trace = np.trace(covariances, axis1=2, axis2=3).real
    empty = trace <= 0
    covariances[empty] = np.eye(C) / C
    trace[empty] = 1.0
    covariances /= trace[:, :, None, None]
    covariances = (1 - LOADING) * covariances + LOADING * np.eye(C) / C
    floor = FLOOR * float(np.mean(power)) / C if np.any(power) else 1e-20  # per channel
    bases = np.empty((J, K, n_components), dtype=dtype)
    activations = np.empty((J, n_components, N), dtype=dtype)
    masked = np.empty_like(power)
    for j in range(J):
        np.multiply(power, labels == j, out=masked)
        masked += floor
        result = factorize(
            masked,
            n_components,
            beta=1.0,
            max_iter=INIT_ITER,
            tol=0.0,
            init="random",
            norm="l1",
            seed=seed + j,
            dtype=dtype,
            overwrite_input=True,
        )
        bases[j], activations[j] = result.bases, result.activations
    return SpatialModel(bases, activations, covariances, floor)


# ----------------------------------------------------------------------------------------- the fit


def fit_spatial(
    X: np.ndarray,
    n_sources: int,
    n_components: int,
    *,
    max_iter: int = 100,
    tol: float = 1e-4,
    seed: int = 0,
    init: SpatialModel | np.ndarray | None = None,
    dtype=np.float32,
    kernel: str = "auto",
    block_frames: int = BLOCK_FRAMES,
    callback: Callable[[SpatialProgress], None] | None = None,
    record_steps: bool = False,
) -> SpatialModel:
    """Fit the multichannel NMF of the module docstring to a multichannel STFT.

    Parameters
    ----------
    X : np.ndarray [shape=(C, K, N)], complex, C >= 2
        The mixture's STFT (may be a memory map: it is read block by block, never copied).
    n_sources : int >= 1
        J, the number of sources.
    n_components : int >= 1
        M, spectral bases per source.
    max_iter : int >= 0
        Iterations (one update of the bases, the activations and the covariances each).
    tol : float >= 0
        Stop when an iteration decreases D by less than ``tol`` times the decrease since the first
        iteration (D is a log-likelihood with no natural zero, so the scale is its own progress).
    seed : int
        Seed of the clustering and the NMF initialisations.
    init : SpatialModel, labels [shape=(K, N)] or None
        A model to continue from (copied), cluster labels to start from, or None: pan clustering
        (:func:`cluster_bins`).
    kernel : {"auto", "numba", "numpy"}
        numba's fused stereo kernel (C = 2) or numpy (any C; the reference).
    block_frames : int
        Frames per block of the passes over X.
    callback : callable, optional
        Receives a :class:`SpatialProgress` after every iteration.
    record_steps : bool
        Also compute D after the bases' and the activations' updates (``SpatialModel.steps``; a
        logarithm per bin and pass, about a third of a pass): for tests of monotonicity.

    Returns
    -------
    SpatialModel
    """
    C, K, N = X.shape
    if C < 2:
        raise ValueError(f"the spatial model needs 2 or more channels, not {C}")
    # One BLAS thread: the products here are small, and OpenBLAS threads left spinning after each
    # would take the cores from the numba kernel between them; it also makes results independent
    # of the machine's core count.
    with threadpool_limits(limits=1, user_api="blas"):
        return _fit(
            X,
            n_sources,
            n_components,
            max_iter,
            tol,
            seed,
            init,
            dtype,
            kernel,
            block_frames,
            callback,
            record_steps,
        )


def _fit(
    X, n_sources, n_components, max_iter, tol, seed, init, dtype, kernel, block_frames, callback, record_steps
):
    C, K, N = X.shape
    dtype = np.dtype(dtype).type
    if isinstance(init, SpatialModel):
        model = SpatialModel(
            init.bases.astype(dtype),
            init.activations.astype(dtype),
            init.covariances.astype(np.complex128),
            init.floor,
        )
    else:
        labels = cluster_bins(X, n_sources, seed=seed, block_frames=block_frames) if init is None else init
        model = initial_model(
            X, labels, n_sources, n_components, seed=seed, dtype=dtype, block_frames=block_frames
        )
    terms = _Terms(n_sources, K, C, dtype, _use_numba(kernel, C, dtype))
    tiny = np.finfo(dtype).tiny
    H, U = model.bases, model.activations
    blocks = [slice(start, min(N, start + block_frames)) for start in range(0, N, block_frames)]
    first = None
    for iteration in range(max_iter):
        # bases: numerators and denominators summed over all blocks
        terms.reset()
        terms.set_covariances(model.covariances)
        numerator = np.zeros_like(H)
        denominator = np.zeros_like(H)
        for frames in blocks:
            A, B = terms(X[:, :, frames], _spectra(H, U, frames), model.floor)
            for j in range(n_sources):
                Ut = U[j, :, frames].T
                numerator[j] += B[j] @ Ut
                denominator[j] += A[j] @ Ut
        objective = terms.objective()
        model.history.append(objective)
        model.steps.append(objective)
        if callback is not None:
            callback(SpatialProgress(iteration, max_iter, objective))
        if first is None:
            first = objective
        elif tol > 0 and model.history[-2] - objective <= tol * (first - objective):
            model.converged = True
            break
        H *= np.sqrt(numerator / np.maximum(denominator, tiny))
        # activations: each block's own update
        terms.reset(want_objective=record_steps)
        for frames in blocks:
            A, B = terms(X[:, :, frames], _spectra(H, U, frames), model.floor)
            for j in range(n_sources):
                U[j, :, frames] *= np.sqrt((H[j].T @ B[j]) / np.maximum(H[j].T @ A[j], tiny))
        if record_steps:
            model.steps.append(terms.objective())
        # covariances: G and S summed over all blocks, then the geometric-mean solution
        terms.reset(want_sums=True, want_objective=record_steps)
        for frames in blocks:
            terms(X[:, :, frames], _spectra(H, U, frames), model.floor)
        if record_steps:
            model.steps.append(terms.objective())
        G, S = terms.spatial_sums()
        R = model.covariances
        updated = _positive(geometric_mean_solution(G, R @ S @ R))
        trace = np.trace(updated, axis1=2, axis2=3).real
        keep = trace > 1e-30  # a source silent at a frequency keeps its covariance there
        updated[keep] /= trace[keep][:, None, None]
        updated[~keep] = R[~keep]
        trace[~keep] = 1.0
        model.covariances = updated
        H *= trace[:, :, None].astype(dtype)  # the scale moves into the spectra: X^ is unchanged
        # bases sum to 1 per column, the scale moves into the activations
        scale = np.maximum(H.sum(axis=1), tiny)  # (J, M)
        H /= scale[:, None, :]
        U *= scale[:, :, None]
        model.n_iter = iteration + 1
    if model.converged:  # the stopping pass already measured this (unchanged) model
        model.objective = model.history[-1]
        return model
    terms.reset()
    terms.set_covariances(model.covariances)
    for frames in blocks:
        terms(X[:, :, frames], _spectra(H, U, frames), model.floor)
    model.objective = terms.objective()
    model.history.append(model.objective)
    model.steps.append(model.objective)
    return model
