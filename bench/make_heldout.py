"""Build a held-out check set from a dev set's ``train/`` clips (other passages of the same sources).

Usage::

    python bench/make_heldout.py DEV_DIR OUT_DIR
    python bench/dev_sdr.py OUT_DIR ...

Each item's training clips are cut to a common length, brought to equal RMS (except the piano item,
whose stems keep their played levels, as in the dev set), summed, and written as float WAV with the
same layout as the dev set. A default tuned on the dev mixes should hold up here too.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import soundfile as sf


def main(dev_dir: Path, out_dir: Path) -> None:
    index = json.loads((dev_dir / "index.json").read_text())
    items = []
    for item in index["items"]:
        stems = {
            name: sf.read(dev_dir / item["train_files"][name], dtype="float64")[0] for name in item["sources"]
        }
        length = min(len(stem) for stem in stems.values())
        stems = {name: stem[:length] for name, stem in stems.items()}
        if not item["id"].startswith("piano"):
            target = np.mean([np.sqrt(np.mean(stem**2)) for stem in stems.values()])
            stems = {name: stem * target / np.sqrt(np.mean(stem**2)) for name, stem in stems.items()}
        gain = min(1.0, 0.9 / max(np.abs(sum(stems.values())).max(), 1e-9))
        folder = out_dir / item["id"]
        (folder / "sources").mkdir(parents=True, exist_ok=True)
        files = {}
        for name, stem in stems.items():
            sf.write(
                folder / "sources" / f"{name}.wav", (stem * gain).astype(np.float32), 22050, subtype="FLOAT"
            )
            files[name] = f"{item['id']}/sources/{name}.wav"
        sf.write(folder / "mix.wav", (sum(stems.values()) * gain).astype(np.float32), 22050, subtype="FLOAT")
        items.append(
            {
                "id": item["id"] + "_train",
                "sources": item["sources"],
                "n_sources": item["n_sources"],
                "mix": f"{item['id']}/mix.wav",
                "source_files": files,
            }
        )
    (out_dir / "index.json").write_text(
        json.dumps({"set": "heldout-from-train-clips", "items": items}, indent=1)
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
