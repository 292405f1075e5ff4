"""Named-source quality on a dev set: supervised (bases learned from train/ clips) and blind grouping.

Usage::

    python bench/named_sources.py DATA_DIR [--bases B] [--n-fft N] [--mask-power A] [--sparsity S] [--per-source 6] [--json]

For every item of DATA_DIR/index.json: (1) supervised: one model per source learned with
``nmfsep.learn`` from the item's ``train/`` clip only, then ``nmfsep.separate(mix, sources=...)``
(``nmfsep learn`` and ``nmfsep separate --source ...``: the settings the models carry, unless
``--bases`` / ``--n-fft`` (to both) / ``--mask-power`` / ``--sparsity`` (to separate) are given);
(2) blind: ``nmfsep.separate(mix, n_components=per_source * J, n_sources=J)``. Items without a
train clip for every source (``train_files`` empty, as in some real sets) are measured blind only. SDR/SIR/SAR by mir_eval
(``bss_eval_sources``; best permutation for blind), mean over sources, then over items.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import mir_eval
import numpy as np
import soundfile as sf

import nmfsep


def _scores(references, estimates, permute):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        sdr, sir, sar, _ = mir_eval.separation.bss_eval_sources(
            references, estimates, compute_permutation=permute
        )
    return {"sdr": float(np.mean(sdr)), "sir": float(np.mean(sir)), "sar": float(np.mean(sar))}


def evaluate(
    data_dir: Path,
    bases: int | None,
    n_fft: int | None,
    mask_power: float | None,
    sparsity: float | None,
    per_source: int,
) -> dict:
    index = json.loads((data_dir / "index.json").read_text())
    table = {"supervised": [], "blind": []}
    for item in index["items"]:
        mix, rate = sf.read(data_dir / item["mix"], dtype="float32")
        references = np.stack(
            [sf.read(data_dir / item["source_files"][n], dtype="float32")[0] for n in item["sources"]]
        )
        started = time.perf_counter()
        if set(item["sources"]) <= set(
            item.get("train_files") or {}
        ):  # items without train clips: blind only
            learned = {"n_components": bases} if bases is not None else {}
            models = [
                nmfsep.learn([data_dir / item["train_files"][n]], name=n, n_fft=n_fft, **learned)
                for n in item["sources"]
            ]
            result = nmfsep.separate(
                mix, rate, sources=models, n_fft=n_fft, mask_power=mask_power, sparsity=sparsity
            )
            assert result.names == tuple(item["sources"])
            row = _scores(references, result.components[:, 0], permute=False)
            table["supervised"].append({"item": item["id"], **row, "seconds": time.perf_counter() - started})
        started = time.perf_counter()
        J = item["n_sources"]
        result = nmfsep.separate(mix, rate, per_source * J, n_sources=J)
        row = _scores(references, result.components[:, 0], permute=True)
        table["blind"].append({"item": item["id"], **row, "seconds": time.perf_counter() - started})
    for rows in table.values():
        rows.append(
            {
                "item": "mean",
                **{k: float(np.mean([r[k] for r in rows])) for k in ("sdr", "sir", "sar", "seconds")},
            }
        )
    return table


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path)
    # supervised: nmfsep learn's defaults, recorded in the models, unless given
    parser.add_argument("--bases", type=int, help="bases learned per source")
    parser.add_argument("--n-fft", type=int, help="STFT frame of the supervised route")
    parser.add_argument("--mask-power", type=float)
    parser.add_argument("--sparsity", type=float, help="sparsity of the supervised fit")
    parser.add_argument("--per-source", type=int, default=6, help="blind: components per source")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    table = evaluate(args.data_dir, args.bases, args.n_fft, args.mask_power, args.sparsity, args.per_source)
    if args.json:
        print(json.dumps(table))
        return 0
    for route, rows in table.items():
        print(f"{route}: | item | SDR | SIR | SAR | s |")
        for row in rows:
            print(
                f"| {row['item']} | {row['sdr']:.2f} | {row['sir']:.2f} | {row['sar']:.2f} | {row['seconds']:.1f} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
