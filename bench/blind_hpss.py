"""Blind harmonic/percussive priors for the mono blind route (issue 15), per item, with a
leave-one-item-out choice of the detection threshold.

Usage::

    python bench/blind_hpss.py DATA_DIR [DATA_DIR ...] [--json OUT]

Reuses bench/blind_candidates.py (items, the KL NMF of |X| with 6 components per source, n_fft 2048,
hop 512, the current grouping, the scoring: mir_eval ``bss_eval_sources`` SDR by DownmixScorer, mean
over sources, best permutation by mean SIR). Nothing is written except ``--json`` if asked.

HPSS: median-filter harmonic/percussive separation of |X| (Ono et al. 2008 / FitzGerald 2010, as
``librosa.decompose.hpss(S, kernel_size=(kt, kf), power=2, mask=True)``: soft Wiener-like masks
Mh + Mp = 1), the kernels in physical units so they do not depend on the sample rate: kt = 0.2 s of
frames (time median -> harmonic), kf = 500 Hz of bins (frequency median -> percussive).

Every method gives J estimates; the "percussive" ones use one of them for a percussive source:

- ``group:current x6``: the baseline (blind_candidates.md), nmfsep.grouping on the 6J-component NMF.
- ``hpss+harm x6``: source J is Mp * X; the harmonic part Mh * |X| gets its own KL NMF with 6(J-1)
  components grouped into J-1 by the current grouping; masks Mh * G_j.
- ``hpss+harm x10``: the same with 10(J-1) components.
- ``hpss+harm x6 oracle-grouping`` (NOT blind, an upper bound of this route): the reference with the
  largest share of its energy in Mp is the percussive source, each harmonic component goes to the
  other reference that holds most of its model spectrogram; matched by construction.
- ``hpss+full x6``: source J is Mp * X; the 6J-component NMF of |X| grouped into J-1 by the current
  grouping; masks Mh * G_j.
- ``pcomp t<tau> x6``: percussiveness of component m, p_m = sum(Mp * V_m) / sum(V_m) with
  V_m = h_m u_m^T its model spectrogram; components with p_m > tau are the percussive source (at least
  the most percussive one), the others are grouped into J-1 by the current grouping.
- ``psoft x6``: the soft version: the percussive mask is sum_m p_m V_m / V and group j of the J-1
  others (current grouping of all components into J-1) gets sum_{m in g_j} (1 - p_m) V_m / V.
- ``hpss-pre x6`` (no percussive source, for every item): the harmonic part Mh * |X| is factorized
  (6J components) and grouped into J; the percussive part Mp * |X| is factorized (2J components) and
  each of them joins the harmonic group whose smoothed activations correlate best with its own.

The percussive methods are first scored "forced" (on every item, whether it has drums or not). The
blind rule decides per item whether the percussive source exists, from a statistic of the mix only:

- ``share``: percussive energy share sum(Mp |X|^2) / sum(|X|^2);
- ``hf``: the share of the percussive energy above 4 kHz;
- ``period``: the largest normalised autocorrelation of the percussive onset envelope (half-wave
  rectified frame difference of sum_k Mp |X|) at lags 0.25-1.5 s (a beat);

and a rule row ``<method> if <stat> > <thr>`` takes the forced result where it fires and the baseline
elsewhere (same computation, no separate run). Leave one item out: for every held-out item, the
(method, statistic, threshold) with the best mean SDR on the other 8 items is scored on it; the
thresholds are the geometric midpoints between consecutive values of the statistic on those 8 items
(plus "always"); "never" (the baseline) wins ties, then the threshold farthest (in log) from every
training value (max-margin).
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy.ndimage import uniform_filter1d

import nmfsep

sys.path.insert(0, str(Path(__file__).resolve().parent))
import blind_candidates as bc  # noqa: E402

T_SEC, F_HZ = 0.2, 500.0


@functools.lru_cache(maxsize=32)
def hpss(item_name: str):
    """(settings, X, S, Mh, Mp) for the item's 2048-point STFT."""
    import librosa

    item = bc._ITEMS[item_name]
    settings, X = bc._stft(item_name, 2048)
    S = np.abs(X).astype(np.float64)
    kt = max(3, int(round(T_SEC * item.rate / settings.hop_length)) | 1)
    kf = max(3, int(round(F_HZ / (item.rate / settings.n_fft))) | 1)
    mh, mp = librosa.decompose.hpss(S, kernel_size=(kt, kf), power=2.0, mask=True)
    return settings, X, S, mh, mp


def statistics(item) -> dict[str, float]:
    settings, X, S, mh, mp = hpss(item.name)
    E = S**2
    pe = (mp * E).sum(axis=1)
    freqs = np.arange(S.shape[0]) * item.rate / settings.n_fft
    env = (mp * S).sum(axis=0)
    env = np.maximum(np.diff(env, prepend=env[0]), 0)
    env = env - env.mean()
    ac = np.correlate(env, env, "full")[len(env) - 1 :]
    ac /= ac[0] + 1e-12
    fr = item.rate / settings.hop_length
    return {
        "share": float((mp * E).sum() / E.sum()),
        "hf": float(pe[freqs > 4000].sum() / pe.sum()),
        "period": float(ac[int(0.25 * fr) : int(1.5 * fr)].max()),
    }


def percussiveness(H, U, mp):
    return (H * (mp @ U.T)).sum(axis=0) / np.maximum(H.sum(axis=0) * U.sum(axis=1), 1e-30)


def _group(H, U, J, item, settings):
    return bc.g_current(H, U, J, item, settings)


def m_baseline(item):
    return bc.m_group(item, "current", 6)


def m_hpss_harm(item, per_source=6, oracle=False):
    settings, X, S, mh, mp = hpss(item.name)
    J = item.J
    result = nmfsep.factorize((mh * S).astype(np.float32), per_source * (J - 1), beta=1.0, seed=0)
    H, U = result.bases.astype(np.float64), result.activations.astype(np.float64)
    if not oracle:
        G = bc.group_masks(H, U, _group(H, U, J - 1, item, settings))
        return bc.synthesise(item, settings, X, np.concatenate([mh[None] * G, mp[None]]))
    # upper bound (not blind): the reference that is most percussive (largest share of its energy in
    # Mp) is the percussive source; each harmonic component goes to the other reference holding most
    # of its model spectrogram; estimates returned in reference order
    P = np.abs(nmfsep.stft(item.references, settings)) ** 2
    drum = int(np.argmax((P * mp[None]).sum(axis=(1, 2)) / P.sum(axis=(1, 2))))
    others = [j for j in range(J) if j != drum]
    shares = P[others] / np.maximum(P[others].sum(axis=0), 1e-20)
    owner = np.argmax(np.einsum("jkn,kmn->jm", shares, H[:, :, None] * U[None]), axis=0)
    groups = bc.to_groups(owner, J - 1)
    if any(len(g) == 0 for g in groups):
        return None
    G = mh[None] * bc.group_masks(H, U, groups)
    masks = np.empty((J,) + mh.shape)
    masks[others], masks[drum] = G, mp
    return bc.synthesise(item, settings, X, masks)


def m_hpss_full(item):
    settings, X, S, mh, mp = hpss(item.name)
    _, _, H, U = bc.fitted(item.name, 6)
    G = bc.group_masks(H, U, _group(H, U, item.J - 1, item, settings))
    return bc.synthesise(item, settings, X, np.concatenate([mh[None] * G, mp[None]]))


def m_pcomp(item, tau):
    settings, X, S, mh, mp = hpss(item.name)
    _, _, H, U = bc.fitted(item.name, 6)
    p = percussiveness(H, U, mp)
    perc = p > tau
    if not perc.any():
        perc[np.argmax(p)] = True
    rest = np.flatnonzero(~perc)
    if len(rest) < item.J - 1:
        return None
    sub = _group(H[:, rest], U[rest], item.J - 1, item, settings)
    groups = [list(rest[g]) for g in sub] + [list(np.flatnonzero(perc))]
    return bc.synthesise(item, settings, X, bc.group_masks(H, U, groups))


def m_psoft(item):
    settings, X, S, mh, mp = hpss(item.name)
    _, _, H, U = bc.fitted(item.name, 6)
    p = percussiveness(H, U, mp)
    groups = _group(H, U, item.J - 1, item, settings)
    V = np.maximum(H @ U, 1e-30)
    masks = [(H[:, g] @ ((1 - p[g])[:, None] * U[g])) / V for g in groups]
    masks.append((H @ (p[:, None] * U)) / V)
    masks = np.stack(masks)
    return bc.synthesise(item, settings, X, masks / np.maximum(masks.sum(axis=0), 1e-30))


def m_hpss_pre(item):
    settings, X, S, mh, mp = hpss(item.name)
    J = item.J
    rh = nmfsep.factorize((mh * S).astype(np.float32), 6 * J, beta=1.0, seed=0)
    Hh, Uh = rh.bases.astype(np.float64), rh.activations.astype(np.float64)
    groups = _group(Hh, Uh, J, item, settings)
    rp = nmfsep.factorize((mp * S).astype(np.float32), 2 * J, beta=1.0, seed=0)
    Hp, Up = rp.bases.astype(np.float64), rp.activations.astype(np.float64)
    sh, sp = uniform_filter1d(Uh, 5, axis=1), uniform_filter1d(Up, 5, axis=1)
    sh = (sh - sh.mean(1, keepdims=True)) / (sh.std(1, keepdims=True) + 1e-12)
    sp = (sp - sp.mean(1, keepdims=True)) / (sp.std(1, keepdims=True) + 1e-12)
    corr = sp @ sh.T / sh.shape[1]
    Gh = bc.group_masks(Hh, Uh, groups)
    Vp = np.maximum(Hp @ Up, 1e-30)
    owner = np.array([int(np.argmax([corr[m, g].mean() for g in groups])) for m in range(Hp.shape[1])])
    Gp = np.stack([(Hp[:, owner == j] @ Up[owner == j]) / Vp for j in range(J)])
    return bc.synthesise(item, settings, X, mh[None] * Gh + mp[None] * Gp)


METHODS = {
    "group:current x6": (m_baseline, False),
    "hpss+harm x6": (m_hpss_harm, True),
    "hpss+harm x10": (functools.partial(m_hpss_harm, per_source=10), True),
    "hpss+harm x6 oracle-grouping": (functools.partial(m_hpss_harm, oracle=True), True),
    "hpss+full x6": (m_hpss_full, True),
    "pcomp t0.4 x6": (functools.partial(m_pcomp, tau=0.4), True),
    "pcomp t0.5 x6": (functools.partial(m_pcomp, tau=0.5), True),
    "pcomp t0.6 x6": (functools.partial(m_pcomp, tau=0.6), True),
    "psoft x6": (m_psoft, True),
    "hpss-pre x6": (m_hpss_pre, False),
}


def score_sources(item, estimates, matched=False):
    """(mean SDR, per-reference SDR) under the best-SIR permutation, or (None, None)."""
    if estimates is None or not np.all(np.any(estimates, axis=1)):
        return None, None
    matrix = item.scorer.matrix(estimates)
    perm = tuple(range(item.J)) if matched else bc.best_permutation(matrix["sir"])
    per = matrix["sdr"][list(perm), list(range(item.J))]
    return float(np.mean(per)), [float(v) for v in per]


def rule_value(results, method, stats, stat, thr, item):
    fires = thr is not None and stats[item][stat] > thr
    return results[method if fires else "group:current x6"][item]


def thresholds(stats, stat, items):
    """Geometric midpoints between consecutive values of the given items, 'always' and 'never'."""
    values = sorted(stats[i][stat] + 1e-6 for i in items)
    mids = [float(np.sqrt(a * b)) for a, b in zip(values, values[1:], strict=False) if b > a]
    return [values[0] / 2] + mids + [None]


def margin(stats, stat, thr, items):
    return min(abs(np.log(thr) - np.log(stats[i][stat] + 1e-6)) for i in items)


def leave_one_out(results, stats, rules, items):
    """rules: (method, stat) pairs. For each held-out item: the rule and threshold (geometric midpoints
    of the training items' values) with the best training mean; ties go to 'never' (the baseline),
    then to the largest log-margin to the training values (max-margin)."""
    chosen, scores = {}, []
    for held in items:
        train = [i for i in items if i != held]
        baseline = float(np.mean([results["group:current x6"][i] for i in train]))
        best = (baseline, np.inf, None, None, None)  # (mean, margin, method, stat, thr)
        for method, stat in rules:
            for thr in thresholds(stats, stat, train)[:-1]:
                values = [rule_value(results, method, stats, stat, thr, i) for i in train]
                if any(v is None for v in values):
                    continue
                key = (round(float(np.mean(values)), 9), margin(stats, stat, thr, train))
                if key > (round(best[0], 9), best[1]):
                    best = (float(np.mean(values)), key[1], method, stat, thr)
        mean, _, method, stat, thr = best
        chosen[held] = (method, stat, thr, mean)
        scores.append(
            results["group:current x6"][held]
            if thr is None
            else rule_value(results, method, stats, stat, thr, held)
        )
    return chosen, scores


def markdown(rows, items, sets):
    header = "| method | " + " | ".join(items) + " | " + " | ".join(f"mean {s}" for s in sets) + " |"
    lines = [header, "|---|" + "---:|" * (len(items) + len(sets))]
    for name, row in rows.items():
        cells = ["failed" if row[i] is None else f"{row[i]:.2f}" for i in items]
        means = []
        for names in sets.values():
            vals = [row[i] for i in names]
            means.append("failed" if any(v is None for v in vals) else f"{np.mean(vals):.2f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " | " + " | ".join(means) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dirs", nargs="+", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    started_all = time.perf_counter()
    sets = {}
    for data_dir in args.data_dirs:
        loaded = bc.load_items(data_dir)
        sets[data_dir.name] = [item.name for item in loaded]
        bc._ITEMS.update({item.name: item for item in loaded})
    items = list(bc._ITEMS)
    stats = {name: statistics(bc._ITEMS[name]) for name in items}
    for name in items:
        print(
            f"stats {name:28s} " + " ".join(f"{k} {v:.3f}" for k, v in stats[name].items()), file=sys.stderr
        )
    results, per_source = {}, {}
    for method, (function, _) in METHODS.items():
        results[method], per_source[method] = {}, {}
        for name in items:
            started = time.perf_counter()
            value, per = score_sources(bc._ITEMS[name], function(bc._ITEMS[name]), "oracle" in method)
            results[method][name], per_source[method][name] = value, per
            print(
                f"{method:18s} {name:28s} {'failed' if value is None else f'{value:6.2f}'} "
                f"[{' '.join(f'{v:.1f}' for v in per or [])}] ({time.perf_counter() - started:.1f} s)",
                file=sys.stderr,
                flush=True,
            )
    rules = [
        (method, stat)
        for method, (_, percussive) in METHODS.items()
        if percussive and "oracle" not in method
        for stat in ("share", "hf", "period")
    ]
    rows = {f"{m}{' forced' if METHODS[m][1] else ''}": results[m] for m in METHODS}
    fixed = {"share": 0.3, "hf": 0.08, "period": 0.4}
    for method, (_, percussive) in METHODS.items():
        if percussive and "oracle" not in method:
            for stat, thr in fixed.items():
                rows[f"{method} if {stat} > {thr:g}"] = {
                    i: rule_value(results, method, stats, stat, thr, i) for i in items
                }
    all_sets = {**sets, "all": items}
    print("Statistics (blind, from the mix only):\n")
    print("| item | " + " | ".join(fixed) + " |\n|---|" + "---:|" * len(fixed))
    for name in items:
        print(f"| {name} | " + " | ".join(f"{stats[name][s]:.3f}" for s in fixed) + " |")
    print()
    print(markdown(rows, items, all_sets))
    chosen, loo = leave_one_out(results, stats, rules, items)
    print(
        "\nLeave one item out (rule and threshold chosen on the other 8 items, scored on the held-out one):\n"
    )
    print("| item | chosen rule | train mean | SDR |\n|---|---|---:|---:|")
    for name, value in zip(items, loo, strict=True):
        method, stat, thr, best = chosen[name]
        rule = f"{method} if {stat} > {thr:.3f}" if thr is not None else "never (= group:current x6)"
        print(f"| {name} | {rule} | {best:.2f} | {value:.2f} |")
    for set_name, names in all_sets.items():
        print(
            f"\nmean of the held-out scores on {set_name}: {np.mean([loo[items.index(n)] for n in names]):.2f}"
        )
    print(f"\nwall time {time.perf_counter() - started_all:.0f} s")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "results": results,
                    "per_source": per_source,
                    "stats": stats,
                    "sets": sets,
                    "loo": dict(zip(items, loo, strict=True)),
                },
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
