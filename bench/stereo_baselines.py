"""Stereo separation baselines on a stereo dev set (issue 14): downmix SDR/SIR/SAR and image SDR.

Usage::

    python bench/stereo_baselines.py DATA_DIR [--json] [--methods nmfsep pan oracle rank-J]
                                              [--items ID ...] [--seed 0] [--verify]
    python bench/stereo_baselines.py DATA_DIR --methods fastmnmf fastmnmf2 pan  # needs '.[bench]'

DATA_DIR holds ``index.json`` and one folder per item with the mix and ``sources/`` (the layout of
``real-stereo-dev``: 2-channel files, paths and sample rates per item in ``index.json``). The data are
only read; nothing is written anywhere (results go to stdout). ``--pan`` makes stereo items of a
mono set (``dev``, ``real-dev``) in memory: source j of J is panned to p_j = -0.6 + 1.2 j / (J - 1)
with the constant-power law gL = cos((p + 1) pi / 4), gR = sin((p + 1) pi / 4) (how the TRIOS items
of ``real-stereo-dev`` were made), and the mix is their sum; ``--width W`` also gives every source
image a different short reverberation per channel (exponentially decaying noise, 30 ms, seeded, the
direct path kept with gain 1 and the reverberation at W times its energy), a stand-in for the wide,
decorrelated images of studio stems. Every item is separated into J outputs
(J = its number of sources) by each method:

- ``nmfsep``: ``nmfsep.separate(mix, rate, n_sources=J)``, what ``nmfsep separate mix.wav --sources J``
  runs: on stereo the spatial model (multichannel NMF, multichannel Wiener images), defaults only;
- ``nmfsep-mono``: the same with ``mono=True`` (``--mono``): 6J components of the channel sum grouped
  into J, one mask for both channels (the route before the spatial model);
- ``pan``: weighted k-means (J clusters, scikit-learn, seeded) on the pan angle atan2(|X_R|, |X_L|)
  of every STFT bin (n_fft 2048, hop 512, ``nmfsep.stft``), each bin weighted by |X_L| + |X_R|;
  binary masks (a bin goes to its cluster) applied to both channels, inverted with ``nmfsep.istft``;
- ``oracle``: ideal ratio masks per channel, |S_jc| / sum_i |S_ic| from the true sources (upper bound);
- ``rank-J``: plain rank-J KL NMF, ``nmfsep.separate(mix, rate, J)`` (the channel sum of the
  magnitudes, soft masks, no grouping);
- ``fastmnmf`` / ``fastmnmf2`` (only when asked for: they need pyroomacoustics, the ``bench`` extra, and
  take about a minute per item each on 2 cores): pyroomacoustics' FastMNMF (Sekiguchi et al. 2019) and
  FastMNMF2 (2020), ``pra.bss.fastmnmf(X, n_src=J, n_iter=100, n_components=16, mic_index="all")``
  after ``np.random.seed(seed)`` (they draw their NMF initialisation from numpy's global RNG; every
  other argument is pyroomacoustics' default, so the diagonalizer starts from identity matrices).
  ``mic_index="all"`` returns every source's image at every channel, the multichannel Wiener filter
  of its fitted model (Q^-1 diag(Y_j / sum_i Y_i) Q x per bin): these are the stereo images, and they
  add up to the mix up to rounding. The STFT is pyroomacoustics' own, as its ``examples/bss_example.py``
  uses it: ``pra.transform.stft.analysis`` with a hann analysis window and hop = block / 2, inverted by
  ``pra.transform.stft.synthesis`` with ``compute_synthesis_window`` (perfect reconstruction), the
  output shifted back by its block - hop samples of delay. The block is 4096 samples (93 ms at
  44.1 kHz; the example's 2048 are at 16 kHz, 128 ms), not the harness's 2048 / 512: the model is
  fitted on every time-frequency bin, and half as many bins (a quarter of the frames, twice the
  frequencies) keep it near a minute per item.

Scores (mir_eval 0.8 definitions, filter length 512):

- downmix SDR/SIR/SAR: ``bss_eval_sources`` on the channel means of references and estimates, with
  mir_eval's permutation (the one with the best mean SIR, as ``compute_permutation=True`` picks it);
  the mean under the permutation with the best mean SDR is reported too where it differs;
- image SDR: ``bss_eval_images`` SDR of the stereo images under the downmix permutation.

Both are computed here without mir_eval's repeated work, so the whole set scores in seconds rather
than minutes: the reference spectra and Gram matrices are computed and factorized once per item and
each estimate is projected once onto all references (mir_eval redoes all of it for every
estimate-reference pair), and image SDR is its closed form 10 log10(|s|^2 / |s_hat - s|^2) (the
distortion, interference and artifact terms add up to s_hat - s). ``--verify`` also runs mir_eval's
own ``bss_eval_sources(compute_permutation=True)`` and ``bss_eval_images`` and prints the largest
difference (slow: about a minute per item and method on 2 cores).

Each method's time covers the separation only (STFT, model, masks, inverse STFT; not reading or
scoring). Every method's J images must add up to the mix: the largest absolute error is printed.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import scipy.fft
import scipy.linalg
import scipy.signal
import soundfile as sf

import nmfsep

METHODS = ("nmfsep", "nmfsep-mono", "pan", "oracle", "rank-J", "fastmnmf", "fastmnmf2")
DEFAULT_METHODS = (
    "nmfsep",
    "nmfsep-mono",
    "pan",
    "oracle",
    "rank-J",
)  # the FastMNMFs need the bench extra and time
FILTER_LENGTH = 512  # mir_eval's bss_eval distortion filter length
PAN_STFT = nmfsep.STFTSettings(n_fft=2048, hop_length=512)
FASTMNMF_BLOCK = 4096  # pyroomacoustics' STFT: hann window, hop = block / 2
FASTMNMF_ITERATIONS = 100
FASTMNMF_COMPONENTS = 16  # NMF bases per source


# ----------------------------------------------------------------------------------------- methods


def separate_nmfsep(mix, rate, n_sources, references, seed):
    return nmfsep.separate(mix.astype(np.float32), rate, n_sources=n_sources).components


def separate_nmfsep_mono(mix, rate, n_sources, references, seed):
    return nmfsep.separate(mix.astype(np.float32), rate, n_sources=n_sources, mono=True).components


def separate_rank(mix, rate, n_sources, references, seed):
    return nmfsep.separate(mix.astype(np.float32), rate, n_sources).components


def separate_pan(mix, rate, n_sources, references, seed):
    from sklearn.cluster import KMeans

    if mix.shape[0] != 2:
        raise ValueError(f"pan clustering needs 2 channels, not {mix.shape[0]}")
    X = nmfsep.stft(mix.astype(np.float32), PAN_STFT)  # (2, K, N)
    magnitude = np.abs(X)
    angle = np.arctan2(magnitude[1], magnitude[0])  # 0 hard left, pi/2 hard right
    weight = magnitude[0] + magnitude[1]
    keep = weight > 0
    kmeans = KMeans(n_clusters=n_sources, n_init=4, random_state=seed)
    kmeans.fit(angle[keep][:, None].astype(np.float64), sample_weight=weight[keep].astype(np.float64))
    rank = np.argsort(np.argsort(kmeans.cluster_centers_[:, 0]))  # outputs ordered left to right
    labels = np.zeros(angle.shape, dtype=np.intp)
    labels[keep] = rank[kmeans.labels_]
    masks = labels[None] == np.arange(n_sources)[:, None, None]  # (J, K, N), one True per bin
    return np.stack([nmfsep.istft(X * m, PAN_STFT, mix.shape[1]) for m in masks])


def separate_oracle(mix, rate, n_sources, references, seed):
    X = nmfsep.stft(mix.astype(np.float32), PAN_STFT)  # (C, K, N)
    J, C, T = references.shape
    spectra = nmfsep.stft(references.reshape(J * C, T).astype(np.float32), PAN_STFT)
    magnitudes = np.abs(spectra).reshape(J, C, *spectra.shape[1:])  # (J, C, K, N)
    total = magnitudes.sum(axis=0)
    silent = total == 0  # then X is 0 as well; any masks that sum to 1 will do
    masks = np.where(silent, 1.0 / n_sources, magnitudes / np.where(silent, 1.0, total))
    return np.stack([nmfsep.istft(X * m, PAN_STFT, mix.shape[1]) for m in masks])


def _separate_pra(algorithm: str, mix, n_sources, seed):
    """J stereo images (J, C, T) from pyroomacoustics' ``bss.<algorithm>`` (fastmnmf or fastmnmf2)."""
    import pyroomacoustics as pra

    block = FASTMNMF_BLOCK
    hop = block // 2
    C, T = mix.shape
    window = pra.hann(block)
    synthesis_window = pra.transform.stft.compute_synthesis_window(window, hop)
    # pyroomacoustics' one-shot STFT streams: its first frame holds block - hop zeros and then the first
    # hop samples, and the inverse lags by block - hop. Zeros at the end, up to a whole number of hops
    # covering T + block - hop samples, let the last frames reach every sample of the mix.
    padded = np.zeros((-(-(T + block - hop) // hop) * hop, C))
    padded[:T] = mix.T
    X = pra.transform.stft.analysis(padded, block, hop, win=window)  # (frames, bins, C), complex128
    np.random.seed(seed)  # W and H start from np.random.rand
    Y = getattr(pra.bss, algorithm)(
        X,
        n_src=n_sources,
        n_iter=FASTMNMF_ITERATIONS,
        n_components=FASTMNMF_COMPONENTS,
        mic_index="all",
    )  # (C, frames, bins, J): every source's Wiener-filtered image at every channel
    images = np.empty((n_sources, C, T))
    for j in range(n_sources):
        image = np.ascontiguousarray(np.moveaxis(Y[..., j], 0, -1))  # (frames, bins, C)
        y = pra.transform.stft.synthesis(image, block, hop, win=synthesis_window)
        images[j] = y[block - hop : block - hop + T].T
    return images


def separate_fastmnmf(mix, rate, n_sources, references, seed):
    return _separate_pra("fastmnmf", mix, n_sources, seed)


def separate_fastmnmf2(mix, rate, n_sources, references, seed):
    return _separate_pra("fastmnmf2", mix, n_sources, seed)


SEPARATORS = {
    "nmfsep": separate_nmfsep,
    "nmfsep-mono": separate_nmfsep_mono,
    "pan": separate_pan,
    "oracle": separate_oracle,
    "rank-J": separate_rank,
    "fastmnmf": separate_fastmnmf,
    "fastmnmf2": separate_fastmnmf2,
}


# ----------------------------------------------------------------------------------------- scoring


def _db(numerator: float, denominator: float) -> float:
    return float("inf") if denominator == 0 else float(10 * np.log10(numerator / denominator))


class DownmixScorer:
    """mir_eval's ``bss_eval_sources`` for many estimates of the same references.

    The same least-squares projections as ``mir_eval.separation._project`` (delays 0..511, Gram
    matrix G from the references' cross-correlations, ``G c = d`` solved by LU as np.linalg.solve
    does), with the references' spectra and the LU factors of G, and of each reference's own block
    of it, computed once.
    """

    def __init__(self, references: np.ndarray, flen: int = FILTER_LENGTH):
        self.references = np.asarray(references, dtype=np.float64)  # (J, T)
        J, T = self.references.shape
        self.flen = flen
        self.n_out = T + flen - 1  # mir_eval's padded length
        # long enough for the lags -(flen-1)..flen-1 of the correlations and for the filtering
        self.n_fft = scipy.fft.next_fast_len(T + 2 * flen - 2, real=True)
        self.spectra = scipy.fft.rfft(self.references, n=self.n_fft, axis=1)
        G = np.zeros((J * flen, J * flen))
        for i in range(J):
            for j in range(i + 1):
                c = scipy.fft.irfft(self.spectra[i] * np.conj(self.spectra[j]), n=self.n_fft)
                block = scipy.linalg.toeplitz(np.hstack((c[0], c[-1:-flen:-1])), r=c[:flen])
                G[i * flen : (i + 1) * flen, j * flen : (j + 1) * flen] = block
                G[j * flen : (j + 1) * flen, i * flen : (i + 1) * flen] = block.T
        self.all = scipy.linalg.lu_factor(G, check_finite=False)
        self.own = [
            scipy.linalg.lu_factor(
                G[j * flen : (j + 1) * flen, j * flen : (j + 1) * flen], check_finite=False
            )
            for j in range(J)
        ]

    def _filtered(self, filters: np.ndarray, sources: list[int]) -> np.ndarray:
        """sum_i filters[:, i] * reference[sources[i]], the first n_out samples."""
        spectrum = sum(
            scipy.fft.rfft(filters[:, k], n=self.n_fft) * self.spectra[i] for k, i in enumerate(sources)
        )
        return scipy.fft.irfft(spectrum, n=self.n_fft)[: self.n_out]

    def matrix(self, estimates: np.ndarray) -> dict[str, np.ndarray]:
        """SDR, SIR, SAR of every estimate (rows) against every reference (columns)."""
        J, flen = self.references.shape[0], self.flen
        shape = (estimates.shape[0], J)
        sdr, sir, sar = np.empty(shape), np.empty(shape), np.empty(shape)
        for e, estimate in enumerate(np.asarray(estimates, dtype=np.float64)):
            padded = np.zeros(self.n_out)
            padded[: estimate.size] = estimate
            spectrum = np.conj(scipy.fft.rfft(estimate, n=self.n_fft))
            # d[i * flen + a] = <reference i delayed by a, estimate>
            correlations = scipy.fft.irfft(self.spectra * spectrum, n=self.n_fft, axis=1)
            d = np.hstack((correlations[:, :1], correlations[:, -1:-flen:-1])).ravel()
            filters = scipy.linalg.lu_solve(self.all, d, check_finite=False).reshape(flen, J, order="F")
            projection_all = self._filtered(filters, list(range(J)))
            for j in range(J):
                own = scipy.linalg.lu_solve(self.own[j], d[j * flen : (j + 1) * flen], check_finite=False)
                s_filt = self._filtered(own[:, None], [j])
                e_interf = projection_all - s_filt
                e_artif = padded - projection_all
                sdr[e, j] = _db(np.sum(s_filt**2), np.sum((e_interf + e_artif) ** 2))
                sir[e, j] = _db(np.sum(s_filt**2), np.sum(e_interf**2))
                sar[e, j] = _db(np.sum(projection_all**2), np.sum(e_artif**2))
        return {"sdr": sdr, "sir": sir, "sar": sar}


def best_permutation(criterion: np.ndarray) -> tuple[int, ...]:
    """The estimate for every reference that maximises the mean criterion (first maximum, as mir_eval)."""
    n = criterion.shape[0]
    perms = list(itertools.permutations(range(n)))
    means = [np.mean(criterion[list(p), np.arange(n)]) for p in perms]
    return perms[int(np.argmax(means))]


def image_sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """``bss_eval_images`` SDR: |s|^2 / |s_hat - s|^2 over all channels (filters cancel out)."""
    reference = np.asarray(reference, dtype=np.float64)
    return _db(np.sum(reference**2), np.sum((np.asarray(estimate, dtype=np.float64) - reference) ** 2))


def verify_with_mir_eval(references, images, permutation, scores) -> float:
    """Largest |difference| (dB) between these scores and mir_eval's own functions."""
    import mir_eval

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        sdr, sir, sar, perm = mir_eval.separation.bss_eval_sources(
            references.mean(axis=1), images.mean(axis=1).astype(np.float64), compute_permutation=True
        )
        image = mir_eval.separation.bss_eval_images(
            references.transpose(0, 2, 1),
            images[list(permutation)].astype(np.float64).transpose(0, 2, 1),
            compute_permutation=False,
        )[0]
    if tuple(int(p) for p in perm) != tuple(permutation):
        return float("inf")
    ours = np.concatenate([scores["sdr"], scores["sir"], scores["sar"], scores["image_sdr"]])
    theirs = np.concatenate([sdr, sir, sar, image])
    return float(np.max(np.abs(ours - theirs)))


# ----------------------------------------------------------------------------------------- driver


def widen(image: np.ndarray, rate: int, width: float, rng: np.random.Generator) -> np.ndarray:
    """The image with a different 30 ms noise reverberation per channel, at ``width`` times its energy."""
    length = int(0.03 * rate)
    decay = np.exp(-np.arange(length) / (0.008 * rate))
    out = image.copy()
    for c in range(image.shape[0]):
        tail = rng.standard_normal(length) * decay
        tail[0] = 0.0
        tail *= np.sqrt(width / np.sum(tail**2))
        out[c] += scipy.signal.fftconvolve(image[c], tail)[: image.shape[1]]
    return out


def panned_item(data_dir: Path, item: dict, width: float, seed: int) -> tuple[np.ndarray, np.ndarray, int]:
    """A stereo version of a mono item: its sources panned apart (see the module docstring)."""
    names = item["sources"]
    J = len(names)
    rng = np.random.default_rng([seed, J, len(item["id"])])
    references = []
    for j, name in enumerate(names):
        source, rate = sf.read(data_dir / item["source_files"][name], dtype="float64")
        if source.ndim > 1:
            source = source.mean(axis=1)
        position = -0.6 + 1.2 * j / (J - 1) if J > 1 else 0.0
        angle = (position + 1) * np.pi / 4
        image = np.stack([np.cos(angle) * source, np.sin(angle) * source])
        references.append(widen(image, rate, width, rng) if width > 0 else image)
    references = np.stack(references)
    return references.sum(axis=0), references, rate


def read_item(data_dir: Path, item: dict) -> tuple[np.ndarray, np.ndarray, int]:
    mix, rate = sf.read(data_dir / item["mix"], dtype="float64", always_2d=True)
    references = []
    for name in item["sources"]:
        source, source_rate = sf.read(data_dir / item["source_files"][name], dtype="float64", always_2d=True)
        if source_rate != rate or source.shape != mix.shape:
            raise ValueError(
                f"{item['id']}/{name}: {source.shape} at {source_rate} Hz, mix {mix.shape} at {rate}"
            )
        references.append(source.T)
    references = np.stack(references)  # (J, C, T)
    silent = [n for n, r in zip(item["sources"], references, strict=True) if not np.any(r.mean(axis=0))]
    if silent:
        raise ValueError(f"{item['id']}: silent downmix of reference(s) {silent}")
    return mix.T, references, rate


def score_item(scorer: DownmixScorer, references, images, names) -> dict:
    downmix = images.mean(axis=1)
    if not np.all(np.any(downmix, axis=1)):
        raise ValueError("a silent estimate (bss_eval is undefined for it)")
    matrix = scorer.matrix(downmix)
    J = len(names)
    permutation = best_permutation(matrix["sir"])  # mir_eval's rule
    index = (list(permutation), list(range(J)))
    scores = {key: matrix[key][index] for key in ("sdr", "sir", "sar")}
    scores["image_sdr"] = np.array([image_sdr(references[j], images[permutation[j]]) for j in range(J)])
    by_sdr = best_permutation(matrix["sdr"])
    return {
        "permutation": list(permutation),
        "sources": {
            name: {key: float(scores[key][j]) for key in ("sdr", "sir", "sar", "image_sdr")}
            for j, name in enumerate(names)
        },
        **{key: float(np.mean(scores[key])) for key in ("sdr", "sir", "sar", "image_sdr")},
        "sdr_best_sdr_permutation": float(np.mean(matrix["sdr"][list(by_sdr), list(range(J))])),
        "_scores": scores,
    }


def evaluate(
    data_dir: Path,
    methods,
    items=None,
    seed: int = 0,
    verify: bool = False,
    pan: bool = False,
    width: float = 0.0,
) -> dict:
    index = json.loads((data_dir / "index.json").read_text())
    chosen = [item for item in index["items"] if not items or item["id"] in items]
    missing = set(items or ()) - {item["id"] for item in chosen}
    if missing:
        raise SystemExit(f"no such item(s): {sorted(missing)}")
    rows = []
    for item in chosen:
        mix, references, rate = panned_item(data_dir, item, width, seed) if pan else read_item(data_dir, item)
        J = int(item["n_sources"])
        started = time.perf_counter()
        scorer = DownmixScorer(references.mean(axis=1))
        setup = time.perf_counter() - started
        print(
            f"{item['id']}: J={J}, {mix.shape[1] / rate:.1f} s, scorer set up in {setup:.1f} s",
            file=sys.stderr,
        )
        for method in methods:
            row = {"item": item["id"], "method": method, "n_sources": J}
            try:
                started = time.perf_counter()
                images = np.asarray(SEPARATORS[method](mix, rate, J, references, seed))
                row["seconds"] = time.perf_counter() - started
                if images.shape != references.shape:
                    raise ValueError(f"{images.shape} outputs for references of shape {references.shape}")
                row["sum_error"] = float(np.max(np.abs(images.astype(np.float64).sum(axis=0) - mix)))
                started = time.perf_counter()
                result = score_item(scorer, references, images, item["sources"])
                row["score_seconds"] = time.perf_counter() - started
                scores = result.pop("_scores")
                row.update(result)
                if verify:
                    row["mir_eval_max_abs_diff_db"] = verify_with_mir_eval(
                        references, images, result["permutation"], scores
                    )
            except Exception as error:  # one failing method must not lose the others
                row["error"] = f"{type(error).__name__}: {error}"
            rows.append(row)
            summary = row.get("error") or (
                f"SDR {row['sdr']:.2f}, image SDR {row['image_sdr']:.2f}, sep {row['seconds']:.1f} s, "
                f"score {row['score_seconds']:.1f} s, sum error {row['sum_error']:.1e}"
                + (f", mir_eval diff {row['mir_eval_max_abs_diff_db']:.1e} dB" if verify else "")
            )
            print(f"  {method}: {summary}", file=sys.stderr)
    means = []
    for method in methods:
        done = [r for r in rows if r["method"] == method and "error" not in r]
        mean = {"method": method, "items": len(done)}
        for key in ("sdr", "sir", "sar", "image_sdr", "sdr_best_sdr_permutation", "seconds", "sum_error"):
            values = [r[key] for r in done]
            mean[key] = (max(values) if key == "sum_error" else float(np.mean(values))) if values else None
        means.append(mean)
    return {
        "data": str(data_dir),
        "pan": pan,
        "width": width,
        "methods": list(methods),
        "seed": seed,
        "items": rows,
        "mean": means,
    }


def _f(value, spec=".2f") -> str:
    return "-" if value is None else format(value, spec)


def markdown(report: dict) -> str:
    lines = [
        "| item | method | downmix SDR | SIR | SAR | image SDR | per-source downmix SDR | s | sum err |",
        "|---|---|---:|---:|---:|---:|---|---:|---:|",
    ]
    for row in report["items"]:
        if "error" in row:
            lines.append(f"| {row['item']} | {row['method']} | failed: {row['error']} | | | | | | |")
            continue
        per_source = ", ".join(f"{name} {_f(s['sdr'], '.1f')}" for name, s in row["sources"].items())
        lines.append(
            f"| {row['item']} | {row['method']} | {_f(row['sdr'])} | {_f(row['sir'])} | {_f(row['sar'])} "
            f"| {_f(row['image_sdr'])} | {per_source} | {_f(row['seconds'], '.1f')} | {row['sum_error']:.1e} |"
        )
    for mean in report["mean"]:
        sum_error = "-" if mean["sum_error"] is None else f"{mean['sum_error']:.1e}"
        lines.append(
            f"| **mean** ({mean['items']} items) | {mean['method']} | **{_f(mean['sdr'])}** | {_f(mean['sir'])} "
            f"| {_f(mean['sar'])} | {_f(mean['image_sdr'])} | | {_f(mean['seconds'], '.1f')} | {sum_error} |"
        )
    notes = [
        f"- {row['item']} / {row['method']}: {row['sdr_best_sdr_permutation']:.2f} dB under the best-SDR "
        f"permutation (mir_eval's best-SIR one: {row['sdr']:.2f})"
        for row in report["items"]
        if "error" not in row and row["sdr_best_sdr_permutation"] > row["sdr"] + 1e-9
    ]
    if notes:
        lines += [
            "",
            "Downmix SDR where the best-SDR permutation differs from mir_eval's best-SIR one:",
            *notes,
        ]
    verified = [r["mir_eval_max_abs_diff_db"] for r in report["items"] if "mir_eval_max_abs_diff_db" in r]
    if verified:
        lines += ["", f"Largest difference from mir_eval's own bss_eval functions: {max(verified):.2e} dB"]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path, help="a stereo dev set (index.json, items with sources/)")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(DEFAULT_METHODS))
    parser.add_argument("--items", nargs="+", help="only these item ids")
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the pan k-means and of numpy's RNG before each FastMNMF"
    )
    parser.add_argument("--verify", action="store_true", help="also compare with mir_eval's own (slow)")
    parser.add_argument(
        "--pan", action="store_true", help="pan the sources of a mono set apart (stereo items)"
    )
    parser.add_argument(
        "--width", type=float, default=0.0, help="with --pan: reverberation energy per channel"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    report = evaluate(args.data_dir, args.methods, args.items, args.seed, args.verify, args.pan, args.width)
    report["total_seconds"] = time.perf_counter() - started
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print(markdown(report))
        print(f"\ntotal {report['total_seconds']:.0f} s (reading, separating, scoring)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
