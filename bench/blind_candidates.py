"""Every candidate tried for the blind route of mono input (``separate --sources J``), per item, with a
leave-one-item-out choice (issue 15).

Usage::

    python bench/blind_candidates.py DATA_DIR [DATA_DIR ...] [--only PREFIX ...] [--json OUT]

Each candidate turns a mono mix and its number of sources J into J estimates. Scores are mir_eval's
``bss_eval_sources`` SDR (computed by bench/stereo_baselines.py's DownmixScorer, checked there against
mir_eval), mean over sources, estimates matched to references by best mean SIR as mir_eval does.
A candidate that leaves a source without any component fails on that item (shown as "failed").

Families (the name says which and with what):

- ``shipped``: ``nmfsep.separate(mix, rate, n_sources=J)``, what the CLI runs.
- ``group:<grouping> x<P> [b<beta>] [<frame>]``: KL NMF of |X| with P components per source, then a
  grouping of the components: ``current`` (nmfsep.grouping: pitch + MFCC k-means of the harmonic
  components, the rest by activation correlation), ``oracle`` (each component to the true source
  holding most of its model spectrogram: an upper bound of grouping, not a blind method), ``mfcc``
  (k-means of MFCCs), ``act`` (spectral clustering of activation correlations), ``act-nmf`` (a
  second-level rank-J NMF of the smoothed activations), ``shift`` (spectral clustering of the
  log-frequency bases' best correlation over pitch shifts: same timbre at another pitch, after
  Jaiswal et al. 2011), ``shift+act`` (that times the activation affinity), and ``feat`` variants
  (k-means weights of log-pitch p, log-centroid c, MFCC t, harmonicity h, activation sparsity y;
  ``nogate``: every component clustered, not only the harmonic ones).
- ``soft x<P> T<t>``: the current clustering with soft memberships exp(-d/t) (distance to the
  k-means centres), the group masks weighted by them.
- ``ensemble x<P..Q>``: the current grouping at every P..Q components per source, group masks
  matched across runs (Hungarian on masked magnitudes) and averaged (a consensus of factorizations).
- ``stable x4..10``: the P among 4..10 whose grouping agrees best with the others' (stability choice).
- ``refine <B>``: one round of self-training: B bases learned from each current estimate, then a
  supervised fit of the mix with them fixed.
- ``source-filter <init>``: one filter (30 mel bands) per source on a shared dictionary of harmonic
  combs (40-1600 Hz, half-semitone steps) and broadband atoms, activations per source and pitch, KL
  MM updates, filters initialised from the current (or oracle) grouping (Virtanen & Klapuri 2006).
- ``nmfd T<T> x<P>``: convolutive NMF (Smaragdis 2004; T-frame spectro-temporal bases, KL MM
  updates), then the current grouping of the summed bases.

The leave-one-item-out figure: for every item, the candidate with the best mean SDR on the *other*
items (oracle ones excluded) is scored on that item.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.ndimage import uniform_filter1d
from scipy.optimize import linear_sum_assignment

import nmfsep
from nmfsep import grouping
from nmfsep.masks import iter_group_masks

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stereo_baselines import DownmixScorer, best_permutation  # noqa: E402

warnings.simplefilter("ignore")  # k-means and spectral clustering warn on coinciding points


@dataclass
class Item:
    name: str
    mix: np.ndarray
    rate: int
    references: np.ndarray
    scorer: DownmixScorer

    @property
    def J(self) -> int:
        return self.references.shape[0]


def load_items(data_dir: Path) -> list[Item]:
    index = json.loads((data_dir / "index.json").read_text())
    items = []
    for entry in index["items"]:
        mix, rate = sf.read(data_dir / entry["mix"], dtype="float32", always_2d=True)
        references = np.stack(
            [
                sf.read(data_dir / entry["source_files"][n], dtype="float32", always_2d=True)[0].mean(axis=1)
                for n in entry["sources"]
            ]
        )
        items.append(Item(entry["id"], mix.mean(axis=1), rate, references, DownmixScorer(references)))
    return items


# ------------------------------------------------------------------------------------ factorizations


@functools.lru_cache(maxsize=64)
def _stft(item_name: str, n_fft: int):
    item = _ITEMS[item_name]
    settings = nmfsep.STFTSettings(n_fft=n_fft)
    return settings, nmfsep.stft(item.mix, settings)


@functools.lru_cache(maxsize=256)
def fitted(item_name: str, per_source: int, beta: float = 1.0, n_fft: int = 2048):
    """(settings, X, H, U) of a KL (or beta) NMF of |X| with per_source * J components."""
    settings, X = _stft(item_name, n_fft)
    J = _ITEMS[item_name].J
    result = nmfsep.factorize(np.abs(X).astype(np.float32), per_source * J, beta=beta, seed=0)
    return settings, X, result.bases.astype(np.float64), result.activations.astype(np.float64)


_ITEMS: dict[str, Item] = {}


def synthesise(item: Item, settings, X, masks) -> np.ndarray:
    return np.stack([nmfsep.istft(X * mask, settings, item.mix.shape[0]) for mask in masks])


def group_masks(H, U, groups) -> np.ndarray | None:
    if any(len(g) == 0 for g in groups):
        return None
    return np.stack([mask.copy() for mask in iter_group_masks(H, U, [list(g) for g in groups], 1.0)])


# ------------------------------------------------------------------------------------ groupings


def to_groups(labels, J):
    return [list(np.flatnonzero(labels == j)) for j in range(J)]


def g_current(H, U, J, item, settings):
    return grouping.group_components(H, U, J, sample_rate=item.rate, n_fft=settings.n_fft)


def g_oracle(H, U, J, item, settings):
    S = np.abs(nmfsep.stft(item.references, settings)) ** 2
    shares = S / np.maximum(S.sum(axis=0), 1e-20)
    owner = np.argmax(np.einsum("jkn,kmn->jm", shares, H[:, :, None] * U[None]), axis=0)
    return to_groups(owner, J)


def _z(x):
    x = np.asarray(x, float)
    x = x[:, None] if x.ndim == 1 else x
    return (x - x.mean(0)) / (x.std(0) + 1e-9)


@functools.lru_cache(maxsize=256)
def _features(item_name, per_source, beta, n_fft):
    settings, X, H, U = fitted(item_name, per_source, beta, n_fft)
    item = _ITEMS[item_name]
    pitch = np.array([grouping._pitch_and_harmonicity(H[:, m], item.rate, n_fft) for m in range(H.shape[1])])
    freqs = np.arange(H.shape[0]) * item.rate / n_fft
    n = U.shape[1]
    return {
        "f0": pitch[:, 0],
        "harm": pitch[:, 1],
        "energy": np.linalg.norm(H, axis=0) * np.linalg.norm(U, axis=1),
        "centroid": (freqs[:, None] * H).sum(0) / np.maximum(H.sum(0), 1e-30),
        "timbre": grouping._timbre(H, item.rate, n_fft),
        "corr": np.nan_to_num(np.corrcoef(uniform_filter1d(U, 5, axis=1))),
        "hoyer": (np.sqrt(n) - U.sum(1) / np.sqrt((U**2).sum(1) + 1e-30)) / (np.sqrt(n) - 1),
    }


def _kmeans_labels(f, J, gate, weights, return_model=False):
    from sklearn.cluster import KMeans

    M = len(f["f0"])
    e_db = 20 * np.log10(f["energy"] / f["energy"].max() + 1e-300)
    reliable = (f["harm"] >= 2.0) & (e_db >= -15) if gate else np.ones(M, bool)
    if reliable.sum() < J:
        reliable = np.isin(np.arange(M), np.argsort(-f["energy"])[:J])
    wp, wc, wt, wh, wy = weights
    columns = np.hstack(
        [
            wp * _z(np.log2(f["f0"])),
            wc * _z(np.log2(f["centroid"] + 1)),
            wt * _z(f["timbre"]) / np.sqrt(f["timbre"].shape[1]),
            wh * _z(np.log(f["harm"])),
            wy * _z(f["hoyer"]),
        ]
    )
    model = KMeans(J, n_init=20, random_state=0).fit(columns[reliable], sample_weight=f["energy"][reliable])
    labels = -np.ones(M, int)
    labels[reliable] = model.labels_
    for m in np.flatnonzero(~reliable):
        scores = [f["corr"][m, labels == g].mean() if np.any(labels == g) else -np.inf for g in range(J)]
        labels[m] = int(np.argmax(scores))
    return (labels, model, columns, reliable) if return_model else labels


def g_feat(H, U, J, item, settings, key, gate=True, weights=(1, 0, 1, 0, 0)):
    return to_groups(_kmeans_labels(_features(*key), J, gate, weights), J)


def _logfreq(H, rate, n_fft, per_octave=24, fmin=40.0):
    freqs = np.arange(H.shape[0]) * rate / n_fft
    centres = np.log2(fmin) + np.arange(int(np.log2(rate / 2 * 0.95 / fmin) * per_octave)) / per_octave
    bands = np.maximum(0, 1 - np.abs(np.log2(np.maximum(freqs, 1e-3))[None] - centres[:, None]) * per_octave)
    return (bands / np.maximum(bands.sum(1, keepdims=True), 1e-9)) @ H


def _shift_similarity(L, max_shift=24):
    X = np.log1p(L / (L.max(axis=0, keepdims=True) + 1e-12) * 100)
    X = X - X.mean(axis=0)
    X /= np.linalg.norm(X, axis=0) + 1e-12
    B, M = X.shape
    S = np.full((M, M), -1.0)
    for s in range(-max_shift, max_shift + 1):
        a, b = (X[s:], X[: B - s]) if s >= 0 else (X[: B + s], X[-s:])
        S = np.maximum(S, a.T @ b)
    return S


def _spectral(affinity, J):
    from sklearn.cluster import SpectralClustering

    A = np.clip((affinity + affinity.T) / 2, 0, None)
    np.fill_diagonal(A, 1)
    return SpectralClustering(
        J, affinity="precomputed", random_state=0, assign_labels="discretize"
    ).fit_predict(A)


def g_shift(H, U, J, item, settings, key, with_activations=False):
    affinity = np.exp(4 * (_shift_similarity(_logfreq(H, item.rate, settings.n_fft)) - 1))
    if with_activations:
        affinity = affinity * np.exp(2 * (_features(*key)["corr"] - 1))
    return to_groups(_spectral(affinity, J), J)


def g_act(H, U, J, item, settings, key):
    return to_groups(_spectral(np.exp(4 * (_features(*key)["corr"] - 1)), J), J)


def g_act_nmf(H, U, J, item, settings, key):
    smooth = np.maximum(uniform_filter1d(U, 5, axis=1), 0)
    smooth /= smooth.sum(axis=1, keepdims=True) + 1e-12
    W = nmfsep.factorize(smooth.T.astype(np.float32).copy(), J, beta=1, max_iter=500, seed=0).activations
    return to_groups(np.argmax(W / (W.sum(axis=1, keepdims=True) + 1e-12), axis=0), J)


def g_mfcc(H, U, J, item, settings, key):
    from sklearn.cluster import KMeans

    f = _features(*key)
    return to_groups(
        KMeans(J, n_init=20, random_state=0).fit_predict(f["timbre"], sample_weight=f["energy"]), J
    )


GROUPINGS = {
    "current": lambda H, U, J, item, settings, key: g_current(H, U, J, item, settings),
    "oracle": lambda H, U, J, item, settings, key: g_oracle(H, U, J, item, settings),
    "mfcc": g_mfcc,
    "act": g_act,
    "act-nmf": g_act_nmf,
    "shift": g_shift,
    "shift+act": functools.partial(g_shift, with_activations=True),
}
for _wc, _wt, _wh, _wy in [
    (0, 0, 0, 0),
    (0, 0.5, 0, 0),
    (0, 2, 0, 0),
    (1, 0, 0, 0),
    (1, 1, 0, 0),
    (2, 1, 0, 0),
    (0, 1, 1, 0),
    (0, 1, 0, 1),
    (1, 2, 0, 1),
]:
    GROUPINGS[f"feat p1 c{_wc} t{_wt} h{_wh} y{_wy}"] = functools.partial(
        g_feat, weights=(1, _wc, _wt, _wh, _wy)
    )
for _wc, _wt in [(0, 0), (0, 1), (1, 0), (1, 1), (1, 2)]:
    GROUPINGS[f"feat nogate c{_wc} t{_wt}"] = functools.partial(
        g_feat, gate=False, weights=(1, _wc, _wt, 0, 0)
    )


def m_group(item, grouping_name, per_source, beta=1.0, n_fft=2048):
    settings, X, H, U = fitted(item.name, per_source, beta, n_fft)
    groups = GROUPINGS[grouping_name](H, U, item.J, item, settings, (item.name, per_source, beta, n_fft))
    masks = group_masks(H, U, groups)
    return None if masks is None else synthesise(item, settings, X, masks)


# ------------------------------------------------------------------------------------ other methods


def m_shipped(item):
    return nmfsep.separate(item.mix, item.rate, n_sources=item.J).components[:, 0]


def m_soft(item, per_source, temperature):
    key = (item.name, per_source, 1.0, 2048)
    settings, X, H, U = fitted(*key)
    labels, model, columns, reliable = _kmeans_labels(_features(*key), item.J, True, (1, 0, 1, 0, 0), True)
    d = ((columns[:, None, :] - model.cluster_centers_[None]) ** 2).sum(-1)
    weights = np.exp(-(d - d.min(1, keepdims=True)) / temperature)
    weights /= weights.sum(1, keepdims=True)
    weights[~reliable] = np.eye(item.J)[labels[~reliable]]  # the others keep their hard group
    single = np.stack([mask.copy() for mask in iter_group_masks(H, U, [[m] for m in range(H.shape[1])], 1.0)])
    return synthesise(item, settings, X, np.einsum("mj,mkn->jkn", weights, single))


def _current_masks(item, per_source):
    settings, X, H, U = fitted(item.name, per_source)
    return settings, X, group_masks(H, U, g_current(H, U, item.J, item, settings))


def _align(reference, masks, magnitude):
    a = (reference * magnitude).reshape(len(reference), -1)
    b = (masks * magnitude).reshape(len(masks), -1)
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    rows, cols = linear_sum_assignment(-(a @ b.T))
    return masks[cols], float((a @ b.T)[rows, cols].mean())


def m_ensemble(item, per_sources):
    settings, X, total = _current_masks(item, 6)
    magnitude = np.abs(X)
    total = total.copy()
    for per_source in per_sources:
        if per_source == 6:
            continue
        masks = _current_masks(item, per_source)[2]
        if masks is not None:
            total += _align(total / total.sum(0), masks, magnitude)[0]
    return synthesise(item, settings, X, total / total.sum(0))


def m_stable(item, per_sources=range(4, 11)):
    runs = {p: _current_masks(item, p) for p in per_sources}
    runs = {p: r for p, r in runs.items() if r[2] is not None}
    magnitude = np.abs(runs[next(iter(runs))][1])
    agreement = {
        p: np.mean([_align(runs[p][2], runs[q][2], magnitude)[1] for q in runs if q != p]) for p in runs
    }
    settings, X, masks = runs[max(agreement, key=agreement.get)]
    return synthesise(item, settings, X, masks)


def m_refine(item, n_bases):
    settings, X, masks = _current_masks(item, 6)
    estimates = synthesise(item, settings, X, masks)
    bases = [
        nmfsep.factorize(
            np.abs(nmfsep.stft(e.astype(np.float32), settings)).astype(np.float32), n_bases, seed=0
        ).bases
        for e in estimates
    ]
    fixed = np.concatenate(bases, axis=1)
    result = nmfsep.factorize(np.abs(X).astype(np.float32), 0, fixed_bases=fixed, seed=0)
    groups = [list(range(j * n_bases, (j + 1) * n_bases)) for j in range(item.J)]
    H, U = result.bases.astype(np.float64), result.activations.astype(np.float64)
    return synthesise(item, settings, X, group_masks(H, U, groups))


def _comb_dictionary(K, rate, n_fft, fmin=40.0, fmax=1600.0, steps_per_semitone=2, n_broadband=8):
    bin_hz, k = rate / n_fft, np.arange(K)
    f0s = fmin * 2 ** (
        np.arange(int(12 * steps_per_semitone * np.log2(fmax / fmin)) + 1) / (12 * steps_per_semitone)
    )
    atoms = []
    for f0 in f0s:
        atom = sum(np.exp(-0.5 * (k - h * f0 / bin_hz) ** 2) for h in range(1, int(rate / 2 / f0) + 1))
        atoms.append(atom / atom.sum())
    log_k = np.log2(np.maximum(k * bin_hz, 20.0))
    centres = np.linspace(np.log2(50.0), np.log2(rate / 2), n_broadband)
    for c in centres:
        atom = np.maximum(0, 1 - np.abs(log_k - c) / (2 * (centres[1] - centres[0]))) + 1e-3
        atoms.append(atom / atom.sum())
    return np.array(atoms).T


def _mel_bands(K, rate, n_fft, n_bands=30):
    mel = 2595 * np.log10(1 + np.arange(K) * rate / n_fft / 700.0)
    edges = np.linspace(0, mel[-1], n_bands)
    return np.maximum(0, 1 - np.abs(mel[:, None] - edges[None]) / (edges[1] - edges[0]))


def m_source_filter(item, init="current", n_iter=100, eps=1e-12):
    settings, X, H, U = fitted(item.name, 6)
    groups = GROUPINGS[init](H, U, item.J, item, settings, (item.name, 6, 1.0, 2048))
    Y = np.abs(X).astype(np.float64)
    K, N = Y.shape
    E, B = _comb_dictionary(K, item.rate, settings.n_fft), _mel_bands(K, item.rate, settings.n_fft)
    G = []
    for group in groups:
        spectrum = (H[:, group] * U[group].sum(axis=1)).sum(axis=1)
        g = (B.T @ spectrum) / B.sum(axis=0)
        G.append(g / max(g.max(), eps) + 1e-3)
    G = np.array(G)
    A = np.random.default_rng(0).uniform(0.5, 1.5, (item.J, E.shape[1], N)) * (Y.mean() / E.shape[1])
    for _ in range(n_iter):
        F = G @ B.T
        EA = np.stack([E @ a for a in A])
        R = Y / (sum(F[j][:, None] * EA[j] for j in range(item.J)) + eps)
        for j in range(item.J):
            A[j] *= (E.T @ (F[j][:, None] * R)) / np.maximum((E.T @ F[j])[:, None], eps)
        EA = np.stack([E @ a for a in A])
        R = Y / (sum(F[j][:, None] * EA[j] for j in range(item.J)) + eps)
        for j in range(item.J):
            G[j] *= (B.T @ (EA[j] * R).sum(axis=1)) / np.maximum(B.T @ EA[j].sum(axis=1), eps)
        scale = G.max(axis=1, keepdims=True) + eps
        G /= scale
        A *= scale[:, :, None]
    models = (G @ B.T)[:, :, None] * np.stack([E @ a for a in A])
    return synthesise(item, settings, X, models / np.maximum(models.sum(axis=0), 1e-30))


def _shift(U, t):
    out = np.zeros_like(U)
    out[:, t:] = U[:, : U.shape[1] - t]
    return out


def m_nmfd(item, T, per_source, n_iter=150, eps=1e-12):
    settings, X = _stft(item.name, 2048)
    Y = np.abs(X).astype(np.float64)
    N = Y.shape[1]
    start = nmfsep.factorize(Y.astype(np.float32), per_source * item.J, seed=0, max_iter=50)
    rng = np.random.default_rng(0)
    H0, U = start.bases.astype(np.float64), start.activations.astype(np.float64) + 1e-9
    W = np.stack([H0 * 0.5**t * rng.uniform(0.8, 1.2, H0.shape) for t in range(T)])
    for _ in range(n_iter):
        R = Y / (sum(W[t] @ _shift(U, t) for t in range(T)) + eps)
        numerator = sum(W[t].T @ np.pad(R[:, t:], ((0, 0), (0, t))) for t in range(T))
        denominator = np.zeros_like(U)
        for t in range(T):
            denominator[:, : N - t] += W[t].sum(0)[:, None]
        U *= numerator / np.maximum(denominator, eps)
        R = Y / (sum(W[t] @ _shift(U, t) for t in range(T)) + eps)
        for t in range(T):
            shifted = _shift(U, t)
            W[t] *= (R @ shifted.T) / np.maximum(shifted.sum(1)[None], eps)
        norm = np.sqrt((W**2).sum(axis=(0, 1))) + eps
        W /= norm[None, None]
        U *= norm[:, None]
    groups = g_current(W.sum(0), U, item.J, item, settings)
    if any(len(g) == 0 for g in groups):
        return None
    models = np.stack(
        [sum(np.outer(W[t][:, m], _shift(U[m : m + 1], t)[0]) for t in range(T)) for m in range(U.shape[0])]
    )
    total = np.maximum(models.sum(0), 1e-30)
    return synthesise(item, settings, X, [models[g].sum(0) / total for g in groups])


# ------------------------------------------------------------------------------------ the table


def candidates() -> dict:
    table = {"shipped": (m_shipped, False)}
    for per_source in (6, 10):
        for name in GROUPINGS:
            table[f"group:{name} x{per_source}"] = (
                functools.partial(m_group, grouping_name=name, per_source=per_source),
                name == "oracle",
            )
    for per_source in (3, 4, 5, 7, 8, 9, 12):
        table[f"group:current x{per_source}"] = (
            functools.partial(m_group, grouping_name="current", per_source=per_source),
            False,
        )
    for beta in (0.0, 0.5):
        for name in ("current", "oracle"):
            table[f"group:{name} x6 b{beta:g}"] = (
                functools.partial(m_group, grouping_name=name, per_source=6, beta=beta),
                name == "oracle",
            )
    for name in ("current", "oracle"):
        table[f"group:{name} x6 4096"] = (
            functools.partial(m_group, grouping_name=name, per_source=6, n_fft=4096),
            name == "oracle",
        )
    for per_source in (6, 10):
        for temperature in (0.3, 1.0):
            table[f"soft x{per_source} T{temperature:g}"] = (
                functools.partial(m_soft, per_source=per_source, temperature=temperature),
                False,
            )
    for low, high in ((4, 8), (6, 10), (3, 12)):
        table[f"ensemble x{low}..{high}"] = (
            functools.partial(m_ensemble, per_sources=tuple(range(low, high + 1))),
            False,
        )
    table["stable x4..10"] = (m_stable, False)
    table["refine 16"] = (functools.partial(m_refine, n_bases=16), False)
    table["source-filter current"] = (m_source_filter, False)
    table["source-filter oracle"] = (functools.partial(m_source_filter, init="oracle"), True)
    for T, per_source in ((4, 6), (8, 6), (4, 4)):
        table[f"nmfd T{T} x{per_source}"] = (functools.partial(m_nmfd, T=T, per_source=per_source), False)
    return table


def score(item: Item, estimates, matched: bool):
    if estimates is None or not np.all(np.any(estimates, axis=1)):
        return None
    matrix = item.scorer.matrix(estimates)
    permutation = tuple(range(item.J)) if matched else best_permutation(matrix["sir"])
    return float(np.mean(matrix["sdr"][list(permutation), list(range(item.J))]))


def leave_one_out(results: dict, names: list[str], items: list[str]):
    chosen, scores = {}, []
    for held in items:

        def mean_on(name, held=held):
            values = [results[name][i] for i in items if i != held]
            return -np.inf if any(v is None for v in values) else float(np.mean(values))

        best = max(names, key=mean_on)
        chosen[held] = best
        scores.append(results[best][held] if results[best][held] is not None else -np.inf)
    return chosen, scores


def markdown(results: dict, items: list[str], groups: dict[str, list[str]]) -> str:
    def mean(name, names):
        values = [results[name][i] for i in names]
        return "failed" if any(v is None for v in values) else f"{np.mean(values):.2f}"

    header = "| candidate | " + " | ".join(items) + " | " + " | ".join(f"mean {g}" for g in groups) + " |"
    lines = [header, "|---|" + "---:|" * (len(items) + len(groups))]
    for name in results:
        cells = ["failed" if results[name][i] is None else f"{results[name][i]:.2f}" for i in items]
        lines.append(
            f"| {name} | "
            + " | ".join(cells)
            + " | "
            + " | ".join(mean(name, g) for g in groups.values())
            + " |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dirs", nargs="+", type=Path)
    parser.add_argument("--only", nargs="+", help="candidates whose name starts with one of these")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    sets = {}
    for data_dir in args.data_dirs:
        loaded = load_items(data_dir)
        sets[data_dir.name] = [item.name for item in loaded]
        _ITEMS.update({item.name: item for item in loaded})
    table = candidates()
    if args.only:
        table = {name: spec for name, spec in table.items() if name.startswith(tuple(args.only))}
    results: dict[str, dict] = {}
    for name, (method, _) in table.items():
        results[name] = {}
        for item in _ITEMS.values():
            started = time.perf_counter()
            value = score(item, method(item), table[name][1])
            results[name][item.name] = value
            print(
                f"{name:28s} {item.name:28s} {'failed' if value is None else f'{value:6.2f}'} "
                f"({time.perf_counter() - started:.1f} s)",
                file=sys.stderr,
                flush=True,
            )
    items = list(_ITEMS)
    blind = [name for name, (_, oracle) in table.items() if not oracle]
    chosen, loo = leave_one_out(results, blind, items)
    print(markdown(results, items, {**sets, "all": items}))
    print()
    print("Leave one item out (chosen on the other items, scored on the one left out):")
    print()
    print("| item | chosen | SDR |\n|---|---|---:|")
    for item, value in zip(items, loo, strict=True):
        print(f"| {item} | {chosen[item]} | {value:.2f} |")
    for set_name, names in sets.items():
        print(
            f"\nmean of the held-out scores on {set_name}: {np.mean([loo[items.index(n)] for n in names]):.2f}"
        )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "results": results,
                    "sets": sets,
                    "loo": dict(zip(items, loo, strict=True)),
                    "chosen": chosen,
                },
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
