"""The supervised route (``nmfsep learn`` + ``nmfsep separate --source``) next to its yardsticks, per item.

Usage::

    python bench/supervised_baselines.py DATA_DIR [--methods nmfsep sklearn irm] [--json]
    python bench/supervised_baselines.py DATA_DIR --methods nmfsep --bases 32 --frame 4096 --mask-power 2 --sparsity 1
    python bench/supervised_baselines.py DATA_DIR --grid 32/4096/2/1 16/2048/1/0 ...

DATA_DIR holds ``index.json`` and one folder per item (the layout of ``dev``, ``real-dev`` and the
held-out sets of ``bench/make_heldout.py``); only items with a ``train/`` clip of every source are
used, and the data are only read. Every source is learned from its training clip alone and the mix
is separated into the item's sources by each method:

- ``nmfsep``: ``nmfsep.learn([clip], name=source)`` per source, then
  ``nmfsep.separate(mix, rate, sources=models)``: what ``nmfsep learn clip.wav --name NAME -o
  NAME.npz`` and ``nmfsep separate mix.wav --source a.npz --source b.npz ...`` run with no other flag
  (the settings come from the model files). ``--bases``, ``--frame``, ``--mask-power`` and
  ``--sparsity`` pass those settings instead: bases and frame to ``learn`` (``-m``, and ``--n-fft``
  of FRAME samples at 22.05 kHz, the nearest power of two at the item's rate: 4096 is 8192 at
  44.1 kHz), mask power and sparsity to ``separate`` (and the frame too, as before the models carried
  their settings);
- ``sklearn``: scikit-learn's supervised KL NMF. Per source, ``NMF(n_components=BASES,
  beta_loss="kullback-leibler", solver="mu", init="nndsvda", max_iter=200, random_state=0)`` fitted
  to the magnitude spectrogram of the clip (frames as rows; the STFT of ``nmfsep learn``'s defaults
  at the item's rate, or ``--frame``; BASES: ``nmfsep learn``'s default, or ``--bases``); the mix's
  activations with the sources' bases held fixed (``non_negative_factorization(..., H=bases,
  update_H=False)``, same loss, solver and iterations); ratio masks V_j / sum_i V_i (mask power 1)
  on the mix's STFT, inverted with ``nmfsep.istft``;
- ``irm``: the ideal ratio masks |S_j| / sum_i |S_i| of ``bench/blind_baselines.py`` (n_fft 2048,
  hop 512): the oracle of masking.

``--grid B/F/A/S ...`` scores nmfsep with each setting (bases, frame at 22.05 kHz, mask power,
sparsity), learning each item's models once per (bases, frame). Scores: mir_eval 0.8's
``bss_eval_sources`` SDR of each source against its own reference (no permutation), computed as in
``bench/stereo_baselines.py`` (``--verify`` there checks them against mir_eval); mean over the
item's sources, then over the items.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf

import nmfsep

sys.path.insert(0, str(Path(__file__).resolve().parent))
from blind_baselines import ORACLE_STFT, _true_masks  # noqa: E402
from stereo_baselines import DownmixScorer  # noqa: E402

METHODS = ("nmfsep", "sklearn", "irm")
#: The frames of the grid are given in samples at this rate.
REFERENCE_RATE = 22050


def frame_samples(frame: int, rate: int) -> int:
    """``frame`` samples at 22.05 kHz as the nearest power of two of samples at ``rate``."""
    return int(2 ** round(np.log2(frame * rate / REFERENCE_RATE)))


def supervised_items(data_dir: Path) -> list[dict]:
    """The items of DATA_DIR with a training clip of every source, each with its audio loaded."""
    index = json.loads((data_dir / "index.json").read_text())
    items = []
    for item in index["items"]:
        if not set(item["sources"]) <= set(item.get("train_files") or {}):
            continue
        mix, rate = sf.read(data_dir / item["mix"], dtype="float32")
        references = np.stack(
            [sf.read(data_dir / item["source_files"][name], dtype="float32")[0] for name in item["sources"]]
        )
        train = [data_dir / item["train_files"][name] for name in item["sources"]]
        items.append(
            {
                "id": item["id"],
                "sources": item["sources"],
                "mix": mix,
                "rate": rate,
                "references": references,
                "train": train,
                "scorer": DownmixScorer(references),
            }
        )
    return items


def _sdr(item: dict, estimates: np.ndarray) -> list[float]:
    matrix = item["scorer"].matrix(estimates)
    return [float(matrix["sdr"][j, j]) for j in range(len(item["sources"]))]


class NmfsepRoute:
    """nmfsep's supervised route with given settings (None: the defaults the model files carry)."""

    def __init__(self, bases=None, frame=None, mask_power=None, sparsity=None, cache=None):
        self.bases, self.frame, self.mask_power, self.sparsity = bases, frame, mask_power, sparsity
        self.cache = {} if cache is None else cache  #: learned models by (item, bases, frame)

    def label(self) -> str:
        given = (self.bases, self.frame, self.mask_power, self.sparsity)
        return "defaults" if given == (None,) * 4 else "/".join("-" if v is None else f"{v:g}" for v in given)

    def models(self, item: dict) -> list:
        key = (item["id"], self.bases, self.frame)
        if key not in self.cache:
            learn = {} if self.bases is None else {"n_components": self.bases}
            if self.frame is not None:
                learn["n_fft"] = frame_samples(self.frame, item["rate"])
            self.cache[key] = [
                nmfsep.learn([clip], name=name, **learn)
                for name, clip in zip(item["sources"], item["train"], strict=True)
            ]
        return self.cache[key]

    def separate(self, item: dict) -> np.ndarray:
        options = {}
        if self.frame is not None:
            options["n_fft"] = frame_samples(self.frame, item["rate"])
        if self.mask_power is not None:
            options["mask_power"] = self.mask_power
        if self.sparsity is not None:
            options["sparsity"] = self.sparsity
        result = nmfsep.separate(item["mix"], item["rate"], sources=self.models(item), **options)
        assert result.names == tuple(item["sources"])
        return result.components[:, 0]


def default_learn_settings(rate: int) -> tuple[int, nmfsep.STFTSettings]:
    """The bases count and STFT ``nmfsep learn`` uses by default at ``rate``."""
    from nmfsep.options import LEARN_COMPONENTS

    return LEARN_COMPONENTS, nmfsep.Options().learn_stft(rate)


def sklearn_route(item: dict, bases: int | None, frame: int | None) -> np.ndarray:
    """scikit-learn's supervised KL NMF with ratio masks (see the module's docstring)."""
    from sklearn.decomposition import NMF, non_negative_factorization

    default_bases, settings = default_learn_settings(item["rate"])
    bases = bases or default_bases
    if frame is not None:
        settings = nmfsep.STFTSettings(n_fft=frame_samples(frame, item["rate"]))
    fixed = []
    for clip in item["train"]:
        samples, _ = sf.read(clip, dtype="float32")
        magnitude = np.abs(nmfsep.stft(samples, settings)).T.astype(np.float64)  # (N, K): frames as rows
        model = NMF(
            n_components=bases,
            beta_loss="kullback-leibler",
            solver="mu",
            init="nndsvda",
            max_iter=200,
            random_state=0,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning at max_iter
            model.fit(magnitude)
        fixed.append(model.components_)  # (bases, K)
    H = np.concatenate(fixed, axis=0)
    X = nmfsep.stft(item["mix"], settings)  # (K, N) complex
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        W, _, _ = non_negative_factorization(
            np.abs(X).T.astype(np.float64),
            H=H,
            n_components=H.shape[0],
            update_H=False,
            beta_loss="kullback-leibler",
            solver="mu",
            max_iter=200,
            random_state=0,
        )
    parts = [W[:, j * bases : (j + 1) * bases] @ H[j * bases : (j + 1) * bases] for j in range(len(fixed))]
    total = np.sum(parts, axis=0)
    safe = np.where(total > 0, total, 1.0)
    masks = [np.where(total > 0, part / safe, 1.0 / len(parts)).T for part in parts]  # (K, N)
    n = item["mix"].shape[-1]
    return np.stack([nmfsep.istft(X * mask, settings, n) for mask in masks])


def irm_route(item: dict) -> np.ndarray:
    X = nmfsep.stft(item["mix"], ORACLE_STFT)
    masks = _true_masks(item["mix"], item["references"], 1.0)
    return np.stack([nmfsep.istft(X * mask, ORACLE_STFT, item["mix"].shape[-1]) for mask in masks])


def evaluate(items: list[dict], routes: dict) -> dict:
    """``{route: {item: {"sdr": mean, "sources": [...], "seconds": s}, "mean": mean}}``."""
    table = {}
    for label, route in routes.items():
        rows = {}
        for item in items:
            started = time.perf_counter()
            estimates = route(item)
            seconds = time.perf_counter() - started
            sources = _sdr(item, estimates)
            rows[item["id"]] = {"sdr": float(np.mean(sources)), "sources": sources, "seconds": seconds}
            print(
                f"{label} {item['id']}: SDR {rows[item['id']]['sdr']:.2f} ({seconds:.1f} s)", file=sys.stderr
            )
        rows["mean"] = float(np.mean([row["sdr"] for row in rows.values()]))
        table[label] = rows
    return table


def markdown(table: dict, items: list[dict]) -> str:
    ids = [item["id"] for item in items]
    lines = ["| route | " + " | ".join(ids) + " | mean |", "|---|" + "---:|" * (len(ids) + 1)]
    for label, rows in table.items():
        cells = [f"{rows[i]['sdr']:.2f}" for i in ids]
        lines.append(f"| {label} | " + " | ".join(cells) + f" | **{rows['mean']:.2f}** |")
    return "\n".join(lines)


def _grid_point(text: str) -> tuple[int, int, float, float]:
    bases, frame, mask_power, sparsity = text.split("/")
    return int(bases), int(frame), float(mask_power), float(sparsity)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--bases", type=int, help="bases per source (nmfsep and sklearn)")
    parser.add_argument("--frame", type=int, help="STFT frame in samples at 22.05 kHz (nmfsep and sklearn)")
    parser.add_argument("--mask-power", type=float, help="nmfsep's mask power")
    parser.add_argument("--sparsity", type=float, help="nmfsep's sparsity of the activations")
    parser.add_argument("--grid", nargs="+", type=_grid_point, metavar="B/F/A/S", help="nmfsep only")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    items = supervised_items(args.data_dir)
    if args.grid:
        routes = {}
        learned: dict = {}  # models shared by the points of the same bases and frame
        for point in args.grid:
            route = NmfsepRoute(*point, cache=learned)
            routes[route.label()] = route.separate
    else:
        routes = {}
        for method in args.methods:
            if method == "nmfsep":
                route = NmfsepRoute(args.bases, args.frame, args.mask_power, args.sparsity)
                routes[f"nmfsep {route.label()}"] = route.separate
            elif method == "sklearn":
                routes["sklearn"] = lambda item: sklearn_route(item, args.bases, args.frame)
            else:
                routes["irm"] = irm_route
    table = evaluate(items, routes)
    print(json.dumps(table, indent=1) if args.json else markdown(table, items))
    return 0


if __name__ == "__main__":
    sys.exit(main())
