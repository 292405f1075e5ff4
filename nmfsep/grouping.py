"""Blind grouping of NMF components into sources (no reference signals).

Method (chosen by measurement on the dev set, see README "Named sources"): each basis gets a pitch by
harmonic summation and a timbre by MFCCs; the clearly harmonic, non-negligible components are
clustered into J groups by log-pitch plus timbre (k-means weighted by component energy); every other
component (attacks, noise, weak ones) joins the group whose activations correlate best with its own.
Pitch separates voices in different registers, timbre separates instruments, and the activation
fallback keeps the onsets and noise of a source with it. Clustering by spectral shape alone or by
activation correlation alone never beat plain rank-J NMF there.
"""

from __future__ import annotations

import warnings

import numpy as np

from .errors import ParameterError


def _pitch_and_harmonicity(basis, sample_rate, n_fft, fmin=50.0, fmax=2000.0, n_harmonics=10, decay=0.84):
    """Harmonic-sum pitch of one basis: (f0 in Hz, peak salience / median salience)."""
    K = len(basis)
    x = np.sqrt(basis / (basis.max() + 1e-12))
    bin_hz = sample_rate / n_fft
    candidates = fmin * 2 ** (np.arange(0, np.log2(fmax / fmin) * 48) / 48)  # quarter-semitone grid
    weights = decay ** np.arange(n_harmonics)
    salience = np.empty(len(candidates))
    for i, f0 in enumerate(candidates):
        bins = np.arange(1, n_harmonics + 1) * f0 / bin_hz
        bins = bins[bins < K - 1]
        low = np.floor(bins).astype(int)
        salience[i] = (np.maximum(x[low], x[low + 1]) * weights[: len(low)]).sum()
    best = int(np.argmax(salience))
    return candidates[best], salience[best] / max(np.median(salience), 1e-12)


def _mel_filters(sample_rate, n_fft, n_mels=64):
    def hz_to_mel(f):
        return 2595 * np.log10(1 + f / 700.0)

    def mel_to_hz(m):
        return 700 * (10 ** (m / 2595) - 1)

    edges = mel_to_hz(np.linspace(0, hz_to_mel(sample_rate / 2), n_mels + 2))
    freqs = np.arange(n_fft // 2 + 1) * sample_rate / n_fft
    low, centre, high = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    return np.maximum(0, np.minimum((freqs - low) / (centre - low), (high - freqs) / (high - centre)))


def _timbre(bases, sample_rate, n_fft, n_coefficients=20):
    """MFCC 1..19 of each basis (coefficient 0, the level, dropped) [shape=(M, 19)]."""
    from scipy.fft import dct

    spectra = (bases / (bases.max(axis=0, keepdims=True) + 1e-12)) ** 2
    log_mel = np.log(_mel_filters(sample_rate, n_fft) @ spectra + 1e-6)
    return dct(log_mel, axis=0, norm="ortho")[1:n_coefficients].T


def group_components(
    bases: np.ndarray,
    activations: np.ndarray,
    n_sources: int,
    *,
    sample_rate: int = 22050,
    n_fft: int = 2048,
    harmonicity: float = 2.0,
    energy_db: float = -15.0,
    timbre_weight: float = 1.0,
    smooth: int = 5,
) -> list[list[int]]:
    """Partition the M components into ``n_sources`` groups, blind (see the module docstring).

    Parameters
    ----------
    bases : np.ndarray [shape=(K, M)]
        The bases H, one column per component.
    activations : np.ndarray [shape=(M, N)]
        The activations U, one row per component.
    n_sources : int, 1 <= n_sources <= M
    sample_rate, n_fft : int
        Of the STFT the bases come from (for the pitch and mel scales).
    harmonicity : float
        A component is "clearly harmonic" when its best pitch's salience is this many times the median.
    energy_db : float
        ... and its energy is within this many dB of the strongest component.
    timbre_weight : float
        Weight of the timbre features against the log-pitch in the clustering.
    smooth : int
        Frames of moving average applied to the activations before correlating them.

    Returns
    -------
    groups : list of ``n_sources`` non-empty lists of component indices, each component exactly once.
        Deterministic (k-means seeded).
    """
    from scipy.ndimage import uniform_filter1d
    from sklearn.cluster import KMeans

    H = np.asarray(bases, dtype=np.float64)
    U = np.asarray(activations, dtype=np.float64)
    M, J = H.shape[1], int(n_sources)
    if not 1 <= J <= M:
        raise ParameterError(f"[[n_sources={n_sources}]] must be between 1 and the {M} components")
    if J == M:
        return [[j] for j in range(M)]
    if J == 1:
        return [list(range(M))]
    pitch = np.array([_pitch_and_harmonicity(H[:, m], sample_rate, n_fft) for m in range(M)])
    f0, harmonic = pitch[:, 0], pitch[:, 1]
    energy = np.linalg.norm(H, axis=0) * np.linalg.norm(U, axis=1)
    energy_rel_db = 20 * np.log10(energy / max(energy.max(), 1e-300) + 1e-300)
    reliable = (harmonic >= harmonicity) & (energy_rel_db >= energy_db)
    if reliable.sum() < J:
        reliable = np.isin(np.arange(M), np.argsort(-energy)[:J])
    log_pitch = np.log2(f0[reliable])[:, None]
    log_pitch = (log_pitch - log_pitch.mean()) / (log_pitch.std() + 1e-9)
    timbre = _timbre(H[:, reliable], sample_rate, n_fft)
    timbre = (timbre - timbre.mean(axis=0)) / (timbre.std(axis=0) + 1e-9) / np.sqrt(timbre.shape[1])
    features = np.hstack([log_pitch, timbre_weight * timbre])
    labels = -np.ones(M, dtype=int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # k-means warns when components coincide; the labels stay valid
        labels[reliable] = KMeans(J, n_init=20, random_state=0).fit_predict(
            features, sample_weight=energy[reliable]
        )
    smoothed = uniform_filter1d(U, smooth, axis=1) if smooth > 1 else U
    with np.errstate(invalid="ignore", divide="ignore"):
        correlation = np.nan_to_num(np.corrcoef(smoothed))
    for m in np.flatnonzero(~reliable):
        scores = [correlation[m, labels == g].mean() if np.any(labels == g) else -np.inf for g in range(J)]
        labels[m] = int(np.argmax(scores))
    groups = [[int(j) for j in np.flatnonzero(labels == g)] for g in range(J)]
    return [group for group in groups if group] if all(groups) else _fill_empty(groups)


def _fill_empty(groups: list[list[int]]) -> list[list[int]]:
    """Give an empty group the last component of the largest one (k-means never leaves one empty,
    this only guards the contract)."""
    for group in groups:
        if not group:
            donor = max(groups, key=len)
            group.append(donor.pop())
    return groups
