"""Build a held-out check set from a dev set's ``train/`` clips (other passages of the same sources).

Usage::

    python bench/make_heldout.py DEV_DIR OUT_DIR
    python bench/named_sources.py OUT_DIR ...
    python bench/supervised_baselines.py OUT_DIR ...

For every item with a training clip of each source: the clips are cut to a common length, brought to
equal RMS where the dev item's sources were (its ``levels`` say "equal RMS"; the piano item and the
real recordings keep their played levels), summed, and written as float WAV at the clips' own sample
rate, with the same layout as the dev set. The dev item's own ``sources/`` become the new item's
``train/`` clips (copied), so the supervised route runs the other way round: bases learned from the
passage the dev mix was made of, separating the passage they were learned from before. A default
tuned on the dev mixes should hold up here too. Items without training clips are left out.

The real sets' licences forbid copies in the repository: write their held-out sets under /tmp.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import soundfile as sf


def main(dev_dir: Path, out_dir: Path) -> None:
    index = json.loads((dev_dir / "index.json").read_text())
    items = []
    for item in index["items"]:
        if not set(item["sources"]) <= set(item.get("train_files") or {}):
            continue
        stems, rates = {}, set()
        for name in item["sources"]:
            stems[name], rate = sf.read(dev_dir / item["train_files"][name], dtype="float64")
            rates.add(rate)
        (rate,) = rates
        length = min(len(stem) for stem in stems.values())
        stems = {name: stem[:length] for name, stem in stems.items()}
        if "equal RMS" in item.get("levels", ""):
            target = np.mean([np.sqrt(np.mean(stem**2)) for stem in stems.values()])
            stems = {name: stem * target / np.sqrt(np.mean(stem**2)) for name, stem in stems.items()}
        gain = min(1.0, 0.9 / max(np.abs(sum(stems.values())).max(), 1e-9))
        folder = out_dir / item["id"]
        for part in ("sources", "train"):
            (folder / part).mkdir(parents=True, exist_ok=True)
        files, train = {}, {}
        for name, stem in stems.items():
            sf.write(
                folder / "sources" / f"{name}.wav", (stem * gain).astype(np.float32), rate, subtype="FLOAT"
            )
            files[name] = f"{item['id']}/sources/{name}.wav"
            original = Path(item["source_files"][name])
            train[name] = f"{item['id']}/train/{name}{original.suffix}"
            shutil.copyfile(dev_dir / original, out_dir / train[name])
        sf.write(folder / "mix.wav", (sum(stems.values()) * gain).astype(np.float32), rate, subtype="FLOAT")
        items.append(
            {
                "id": item["id"] + "_train",
                "sources": item["sources"],
                "n_sources": item["n_sources"],
                "sample_rate": rate,
                "mix": f"{item['id']}/mix.wav",
                "source_files": files,
                "train_files": train,
            }
        )
    (out_dir / "index.json").write_text(
        json.dumps({"set": "heldout-from-train-clips", "items": items}, indent=1)
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
