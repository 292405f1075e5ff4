"""Virtanen (2007) temporal continuity and sparseness on the activations of the blind route's KL NMF:
do they make the components more source-pure (issue 15)?

Usage::

    python bench/blind_continuity.py DATA_DIR [DATA_DIR ...] [--alphas 0 1 10 100] [--betas 0 1]
        [--per-source 6] [--iterations 200] [--cache DIR] [--json OUT]

Model and cost (T. Virtanen, "Monaural sound source separation by nonnegative matrix factorization
with temporal continuity and sparseness criteria", IEEE TASLP 15(3), 2007): Y = |X| (float64, the
STFT of bench/blind_candidates.py's ``fitted``: n_fft 2048, default hop) ~ H U with M = P * J
components, minimising

    D_KL(Y | H U) + alpha * C_t(U) + beta_s * C_s(U),
    C_t = sum_m (1 / sigma_m^2) sum_t (u_{m,t} - u_{m,t-1})^2,   C_s = sum_m sum_t |u_{m,t} / sigma_m|,
    sigma_m^2 = (1/N) sum_t u_{m,t}^2.

Both penalties are invariant to the scale of a row of U, so normalising the columns of H (l2, the
scale moved into U, as nmfsep.factorize does) does not change the cost. Updates: U by the paper's
multiplicative rule U <- U * (grad^-) / (grad^+), where the gradient of each term is split into
its positive and negative parts (KL: H^T 1 and H^T (Y / HU); C_t and C_s: the paper's eqs.), then H
by the plain KL multiplicative update, then the l2 normalisation. Same data preparation and start as
nmfsep.factorize (Y / max(Y), floored at 1e-6; NNDSVDa with seed 0; U first), but a fixed number of
iterations (no tolerance stop) and float64.

Weights. The penalties are scale-free in U but D_KL grows with the data, so alpha and beta_s are
given as multiples of per-item units measured on the unregularised (alpha = beta_s = 0) solution
(H0, U0): alpha_unit = D_KL(Y | H0 U0) / C_t(U0) and beta_unit = D_KL(Y | H0 U0) / C_s(U0), i.e. a
multiplier of 1 makes the penalty of the unregularised solution weigh as much as its misfit.
(Y is divided by its max first, so the units do not depend on the recording level.)

Every factorization is scored with two groupings of bench/blind_candidates.py: ``oracle`` (each
component to the true source holding most of its model spectrogram; an upper bound of grouping,
scored with sources matched by construction) and ``current`` (nmfsep.grouping, what ``separate``
runs; best permutation by SIR), with mask power 1. Factorizations are cached (npz) under --cache;
nothing is written into the repository.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from nmfsep.nmf.init import nndsvda_init

sys.path.insert(0, str(Path(__file__).resolve().parent))
import blind_candidates as bc  # noqa: E402

EPS = 1e-12


# ------------------------------------------------------------------------------------ the cost


def kl(Y, V):
    return float(np.sum(Y * np.log(Y / V) - Y + V))


def continuity(U):
    """C_t per component (a vector: sum it for the cost)."""
    N = U.shape[1]
    return N * np.sum(np.diff(U, axis=1) ** 2, axis=1) / np.maximum(np.sum(U**2, axis=1), EPS)


def sparseness(U):
    """C_s per component."""
    N = U.shape[1]
    return np.sqrt(N) * U.sum(axis=1) / np.sqrt(np.maximum(np.sum(U**2, axis=1), EPS))


def continuity_gradient(U):
    """(positive, negative) parts of dC_t/dU (Virtanen 2007, eqs. 11-12; exact at the end frames)."""
    N = U.shape[1]
    power = np.maximum(np.sum(U**2, axis=1, keepdims=True), EPS)
    differences = np.sum(np.diff(U, axis=1) ** 2, axis=1, keepdims=True)
    neighbours = np.zeros_like(U)
    neighbours[:, 1:] += U[:, :-1]
    neighbours[:, :-1] += U[:, 1:]
    count = np.full(N, 2.0)
    count[0] = count[-1] = 1.0
    positive = 2 * N * count * U / power
    negative = 2 * N * neighbours / power + 2 * N * U * differences / power**2
    return positive, negative


def sparseness_gradient(U):
    """(positive, negative) parts of dC_s/dU (Virtanen 2007, eqs. 13-14)."""
    N = U.shape[1]
    power = np.maximum(np.sum(U**2, axis=1, keepdims=True), EPS)
    positive = np.broadcast_to(np.sqrt(N / power), U.shape)
    negative = np.sqrt(N) * U * U.sum(axis=1, keepdims=True) / power**1.5
    return positive, negative


def factorize(Y, M, alpha=0.0, beta_s=0.0, iterations=200, seed=0, floor=1e-6):
    """(H, U, history) of the regularised KL NMF of Y; alpha and beta_s are absolute weights on the
    data scaled by 1 / max(Y) (the returned U is scaled back)."""
    peak = float(Y.max())
    Z = np.maximum(Y / peak, floor)
    H, U = nndsvda_init(Z, M, np.random.default_rng(seed))
    H, U = H.astype(np.float64), U.astype(np.float64)
    history = []

    def normalise():
        norm = np.maximum(np.linalg.norm(H, axis=0), EPS)
        H[:] /= norm
        U[:] *= norm[:, None]

    def cost():
        return (
            kl(Z, H @ U + EPS),
            float(continuity(U).sum()),
            float(sparseness(U).sum()),
        )

    normalise()
    history.append(cost())
    for _ in range(iterations):
        R = Z / (H @ U + EPS)
        numerator = H.T @ R
        denominator = np.broadcast_to(H.sum(axis=0)[:, None], U.shape).copy()
        if alpha > 0:
            positive, negative = continuity_gradient(U)
            numerator += alpha * negative
            denominator += alpha * positive
        if beta_s > 0:
            positive, negative = sparseness_gradient(U)
            numerator += beta_s * negative
            denominator += beta_s * positive
        U *= numerator / np.maximum(denominator, EPS)
        U = np.maximum(U, EPS)
        R = Z / (H @ U + EPS)
        H *= (R @ U.T) / np.maximum(U.sum(axis=1)[None], EPS)
        H = np.maximum(H, EPS)
        normalise()
    history.append(cost())
    return H, U * peak, history


# ------------------------------------------------------------------------------------ runs


def fit_cached(item, per_source, alpha_mult, beta_mult, iterations, cache: Path):
    """(settings, X, H, U, info) for multipliers of the item's units (units from the 0/0 fit)."""
    settings, X = bc._stft(item.name, 2048)
    M = per_source * item.J
    path = cache / f"{item.name}_x{per_source}_a{alpha_mult:g}_b{beta_mult:g}_i{iterations}.npz"
    if path.exists():
        data = np.load(path)
        return settings, X, data["H"], data["U"], json.loads(str(data["info"]))
    Y = np.abs(X).astype(np.float64)
    if alpha_mult == 0 and beta_mult == 0:
        alpha = beta_s = 0.0
    else:
        base = fit_cached(item, per_source, 0, 0, iterations, cache)[4]
        alpha, beta_s = alpha_mult * base["alpha_unit"], beta_mult * base["beta_unit"]
    started = time.perf_counter()
    H, U, history = factorize(Y, M, alpha, beta_s, iterations)
    info = {
        "alpha": alpha,
        "beta_s": beta_s,
        "initial": history[0],
        "final": history[-1],
        "seconds": time.perf_counter() - started,
    }
    if alpha_mult == 0 and beta_mult == 0:
        misfit, c_t, c_s = history[-1]
        units = {"alpha_unit": misfit / c_t, "beta_unit": misfit / c_s}
        info.update(units)
    np.savez(path, H=H, U=U, info=json.dumps(info))
    return settings, X, H, U, info


def estimates(item, settings, X, H, U, grouping_name):
    grouping = bc.g_oracle if grouping_name == "oracle" else bc.g_current
    masks = bc.group_masks(H, U, grouping(H, U, item.J, item, settings))
    return None if masks is None else bc.synthesise(item, settings, X, masks)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dirs", nargs="+", type=Path)
    parser.add_argument("--alphas", nargs="+", type=float, default=[0, 1, 10, 100])
    parser.add_argument("--betas", nargs="+", type=float, default=[0, 1])
    parser.add_argument("--per-source", type=int, default=6)
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--groupings", nargs="+", default=["current", "oracle"])
    parser.add_argument("--cache", type=Path, default=Path("/tmp/blind_continuity_cache"))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    args.cache.mkdir(parents=True, exist_ok=True)
    sets = {}
    for data_dir in args.data_dirs:
        loaded = bc.load_items(data_dir)
        sets[data_dir.name] = [item.name for item in loaded]
        bc._ITEMS.update({item.name: item for item in loaded})
    items = list(bc._ITEMS)
    results: dict[str, dict] = {}
    diagnostics: dict[str, dict] = {}
    for beta_mult in args.betas:
        for alpha_mult in args.alphas:
            for grouping_name in args.groupings:
                results[f"group:{grouping_name} x{args.per_source} a{alpha_mult:g} s{beta_mult:g}"] = {}
            for item in bc._ITEMS.values():
                started = time.perf_counter()
                settings, X, H, U, info = fit_cached(
                    item, args.per_source, alpha_mult, beta_mult, args.iterations, args.cache
                )
                diagnostics[f"{item.name} a{alpha_mult:g} s{beta_mult:g}"] = {
                    **info,
                    "mean_Ct_per_component": float(continuity(U).mean()),
                    "mean_Cs_per_component": float(sparseness(U).mean()),
                }
                for grouping_name in args.groupings:
                    value = bc.score(
                        item, estimates(item, settings, X, H, U, grouping_name), grouping_name == "oracle"
                    )
                    name = f"group:{grouping_name} x{args.per_source} a{alpha_mult:g} s{beta_mult:g}"
                    results[name][item.name] = value
                    print(
                        f"{name:34s} {item.name:28s} {'failed' if value is None else f'{value:6.2f}'} "
                        f"misfit {info['final'][0]:.4g} Ct/M {continuity(U).mean():.1f} "
                        f"Cs/M {sparseness(U).mean():.1f} ({time.perf_counter() - started:.1f} s)",
                        file=sys.stderr,
                        flush=True,
                    )
    print(bc.markdown(results, items, {**sets, "all": items}))
    if args.json:
        args.json.write_text(
            json.dumps({"results": results, "sets": sets, "diagnostics": diagnostics}, indent=1)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
