"""Separation quality on a dev set: SDR/SIR/SAR (mir_eval bss_eval) with the best permutation.

Usage::

    python bench/dev_sdr.py DATA_DIR [--divergence kl] [--power 1] [--mask-power 2] ...

DATA_DIR holds ``index.json`` and one folder per item with ``mix.wav`` and ``sources/*.wav``
(the layout of the project's dev set). Each item is separated with M = its number of sources;
estimates are matched to references by mir_eval's best permutation (best mean SIR). Prints one line per
item and the mean over items (each item's figure is the mean over its sources), or JSON with --json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import mir_eval
import numpy as np
import soundfile as sf

import nmfsep
from nmfsep.options import OPTIONS


def evaluate(data_dir: Path, **options) -> dict:
    index = json.loads((data_dir / "index.json").read_text())
    rows = []
    for item in index["items"]:
        mix, rate = sf.read(data_dir / item["mix"], dtype="float32")
        refs = np.stack(
            [sf.read(data_dir / item["source_files"][name], dtype="float32")[0] for name in item["sources"]]
        )
        started = time.perf_counter()
        result = nmfsep.separate(mix, rate, item["n_sources"], **options)
        seconds = time.perf_counter() - started
        estimates = result.components[:, 0]
        sdr, sir, sar, _ = mir_eval.separation.bss_eval_sources(refs, estimates, compute_permutation=True)
        rows.append(
            {
                "item": item["id"],
                "sdr": float(np.mean(sdr)),
                "sir": float(np.mean(sir)),
                "sar": float(np.mean(sar)),
                "n_iter": result.n_iter,
                "seconds": seconds,
            }
        )
    mean = {
        key: float(np.mean([row[key] for row in rows])) for key in ("sdr", "sir", "sar", "n_iter", "seconds")
    }
    return {"options": options, "items": rows, "mean": mean}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path)
    # the factorization and mask options, as nmfsep defines them (nmfsep.options.OPTIONS)
    types = {"int": int, "float": float, "str": str, "choice": str}
    for option in OPTIONS:
        if "plot" in option.commands and option.name != "n_components" and option.kind in types:
            parser.add_argument(
                option.flag, dest=option.name, type=types[option.kind], default=None, help=option.help
            )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    options = {
        key: value
        for key, value in vars(args).items()
        if key not in ("data_dir", "json") and value is not None
    }
    report = evaluate(args.data_dir, **options)
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"options: {options or 'defaults'}")
    for row in report["items"]:
        print(
            f"  {row['item']:32s} SDR {row['sdr']:6.2f}  SIR {row['sir']:6.2f}  SAR {row['sar']:6.2f}  iter {row['n_iter']:4d}  {row['seconds']:.2f} s"
        )
    mean = report["mean"]
    print(f"  {'mean':32s} SDR {mean['sdr']:6.2f}  SIR {mean['sir']:6.2f}  SAR {mean['sar']:6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
