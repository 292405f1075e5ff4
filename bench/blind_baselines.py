"""Blind sources of mono mixtures (issue 15's yardstick): nmfsep's route next to its baselines, per item.

Usage::

    python bench/blind_baselines.py DATA_DIR [--methods nmfsep rank-J oracle-4J irm] [--items ID ...] [--json]

DATA_DIR holds ``index.json`` and one folder per item with the mix and ``sources/`` (the layout of
``dev`` and ``real-dev``; the data are only read). Every item (mono, or the channel mean otherwise) is
separated into J outputs (J = its number of sources) by each method:

- ``nmfsep``: ``nmfsep.separate(mix, rate, n_sources=J)``, what ``nmfsep separate mix.wav --sources J``
  runs on mono input (6J components grouped into J);
- ``rank-J``: plain rank-J KL NMF, ``nmfsep.separate(mix, rate, J)`` (soft masks, no grouping);
- ``oracle-4J``: rank-4J KL NMF (``nmfsep.separate(mix, rate, 4 * J)``) with the components grouped by
  the true sources: component m goes to the source j with the largest share of its model spectrogram
  h_m u_m under the ideal ratio masks |S_j|^2 / sum_i |S_i|^2 (n_fft 2048, hop 512), and each source
  is the sum of its components' outputs (a source given no component is silence and scores -inf);
- ``irm``: ideal ratio masks |S_j| / sum_i |S_i| applied to the mix (an upper bound of masking).

Scores: mir_eval 0.8's ``bss_eval_sources`` figures (computed as in bench/stereo_baselines.py, whose
``--verify`` checks them against mir_eval), with mir_eval's permutation (best mean SIR) for ``nmfsep``
and ``rank-J``; the oracle methods are matched to their sources by construction.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

import nmfsep

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stereo_baselines import DownmixScorer, best_permutation  # noqa: E402

METHODS = ("nmfsep", "rank-J", "oracle-4J", "irm")
ORACLE_STFT = nmfsep.STFTSettings(n_fft=2048, hop_length=512)


def _true_masks(mix: np.ndarray, references: np.ndarray, power: float) -> np.ndarray:
    """|S_j|^power / sum_i |S_i|^power on the ORACLE_STFT grid [shape=(J, K, N)] (equal where all are 0)."""
    magnitudes = np.abs(nmfsep.stft(references.astype(np.float32), ORACLE_STFT)) ** power
    total = magnitudes.sum(axis=0)
    silent = total == 0
    return np.where(silent, 1.0 / len(references), magnitudes / np.where(silent, 1.0, total))


def separate(method: str, mix: np.ndarray, rate: int, references: np.ndarray) -> tuple[np.ndarray, bool]:
    """J estimates [shape=(J, T)] and whether they are already matched to the references."""
    J = references.shape[0]
    if method == "nmfsep":
        return nmfsep.separate(mix, rate, n_sources=J).components[:, 0], False
    if method == "rank-J":
        return nmfsep.separate(mix, rate, J).components[:, 0], False
    if method == "oracle-4J":
        result = nmfsep.separate(mix, rate, 4 * J)  # default STFT: n_fft 2048, hop 512 (ORACLE_STFT)
        shares = _true_masks(mix, references, 2.0)  # (J, K, N)
        model = result.bases[:, :, None] * result.activations[None]  # (K, M, N)
        owner = np.argmax(np.einsum("jkn,kmn->jm", shares, model), axis=0)
        components = result.components[:, 0]
        return np.stack([components[owner == j].sum(axis=0) for j in range(J)]), True
    if method == "irm":
        X = nmfsep.stft(mix, ORACLE_STFT)
        masks = _true_masks(mix, references, 1.0)
        return np.stack([nmfsep.istft(X * mask, ORACLE_STFT, mix.shape[0]) for mask in masks]), True
    raise ValueError(f"unknown method {method!r}")


def evaluate(data_dir: Path, methods, items=None) -> dict:
    index = json.loads((data_dir / "index.json").read_text())
    rows = []
    for item in index["items"]:
        if items and item["id"] not in items:
            continue
        mix, rate = sf.read(data_dir / item["mix"], dtype="float32", always_2d=True)
        mix = mix.mean(axis=1)
        references = np.stack(
            [
                sf.read(data_dir / item["source_files"][name], dtype="float32", always_2d=True)[0].mean(
                    axis=1
                )
                for name in item["sources"]
            ]
        )
        scorer = DownmixScorer(references)
        J = len(item["sources"])
        for method in methods:
            started = time.perf_counter()
            estimates, matched = separate(method, mix, rate, references)
            seconds = time.perf_counter() - started
            row = {"item": item["id"], "method": method, "seconds": seconds}
            if not np.all(np.any(estimates, axis=1)):
                row["error"] = "a silent estimate (a source got no component)"
            else:
                matrix = scorer.matrix(estimates)
                permutation = tuple(range(J)) if matched else best_permutation(matrix["sir"])
                index_pairs = (list(permutation), list(range(J)))
                for key in ("sdr", "sir", "sar"):
                    row[key] = float(np.mean(matrix[key][index_pairs]))
                row["sources"] = {
                    name: float(matrix["sdr"][permutation[j], j]) for j, name in enumerate(item["sources"])
                }
            rows.append(row)
            summary = row.get("error") or f"SDR {row['sdr']:.2f} ({seconds:.1f} s)"
            print(f"{item['id']} {method}: {summary}", file=sys.stderr, flush=True)
    means = {}
    for method in methods:
        done = [r for r in rows if r["method"] == method and "error" not in r]
        means[method] = {
            "items": len(done),
            "sdr": float(np.mean([r["sdr"] for r in done])) if done else None,
        }
    return {"data": str(data_dir), "methods": list(methods), "items": rows, "mean": means}


def markdown(report: dict) -> str:
    methods = report["methods"]
    items = list(dict.fromkeys(row["item"] for row in report["items"]))
    lines = ["| item | " + " | ".join(methods) + " |", "|---|" + "---:|" * len(methods)]
    for item in items:
        cells = []
        for method in methods:
            row = next(r for r in report["items"] if r["item"] == item and r["method"] == method)
            cells.append("failed" if "error" in row else f"{row['sdr']:.2f}")
        lines.append(f"| {item} | " + " | ".join(cells) + " |")
    means = [report["mean"][m] for m in methods]
    lines.append(
        "| **mean** | "
        + " | ".join("-" if m["sdr"] is None else f"**{m['sdr']:.2f}** ({m['items']})" for m in means)
        + " |"
    )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--items", nargs="+")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    report = evaluate(args.data_dir, args.methods, args.items)
    print(json.dumps(report, indent=1) if args.json else markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
