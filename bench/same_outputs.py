"""Behaviour unchanged? sha256 of every output of the real CLI over a dev set, at a fixed seed.

Usage::

    python bench/same_outputs.py DEV_DIR --write ref.json      # record the reference
    python bench/same_outputs.py DEV_DIR --compare ref.json    # exit 0 if byte-identical, 1 otherwise
        [--python EXE] [--pythonpath DIR] [--seed 0] [--max-iter N] [--jobs 1] [--routes R1,R2]
        [--work DIR] [--verbose]

It runs ``EXE -m nmfsep`` in subprocesses (so it works whatever nmfsep's internal module layout),
with ``PYTHONPATH=DIR`` when ``--pythonpath`` is given (to run another checkout; the script checks
that ``nmfsep.__file__`` lies under DIR and refuses to run otherwise). The subprocesses run in the
work folder, never in a checkout, so ``-m`` cannot pick up a ``nmfsep/`` from the current directory.

For every item of ``DEV_DIR/index.json`` (its ``mix``, ``sources`` and ``train_files``) and the seed,
the routes are (J = the item's number of sources; defaults otherwise: KL, n_fft 2048, ...; the
supervised routes use the settings the models carry: ``learn``'s frames of ~372 ms, mask power 2.
References written before the models carried them differ there):

    learn          nmfsep learn train/NAME.wav --name NAME -m 16      (one model per source, in learn/)
    m4             separate mix.wav -m 4 --save-model         -> wav, the input's subtype (PCM_16)
    m4-pcm16       separate mix.wav -m 4 --format wav --subtype PCM_16
    m4-float       separate mix.wav -m 4 --subtype FLOAT
    m4-flac        separate mix.wav -m 4 --format flac
    m4-random      separate mix.wav -m 4 --init random --n-init 2 --save-model    (the seed's random draws)
    m3-is-mp2      separate mix.wav -m 3 -d is --mask-power 2 --subtype FLOAT --save-model
    blind          separate mix.wav --sources J --save-model                      -> s1..sJ
    supervised     separate mix.wav --source NAME1.npz ... --source NAMEJ.npz --save-model -> NAME.wav
    semi           separate mix.wav --source NAME1.npz --free 4 --subtype FLOAT --save-model -> NAME1, rest

Multichannel items go through the same routes, so their outputs are multichannel files (the dev set
has none: all its mixes are mono, and no stereo input is made up).

Hashes: audio files by their bytes; ``.npz`` models by their member arrays (dtype, shape and C-order
bytes of each, then one hash over the members), not by the zip bytes, whose timestamps may differ.
Keys are ``route/item/path`` relative to the route's output folder; hidden files (the ``.nmfsep.json``
records) are ignored. ``--compare`` lists every differing (with the differing model members),
missing and extra file and exits 1, or prints ``N files identical`` and exits 0. A CLI run that fails
is reported (its stderr) and makes the run fail; ``--write`` then writes nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

FORMAT = "nmfsep-same-outputs/1"

# Routes of `nmfsep separate` on an item's mix: name -> arguments (besides the input, -o and --seed).
# "{J}" is the item's number of sources, "{model}" the route's --save-model path, "{sources:all}" one
# --source per learned model of the item, "{sources:first}" the first one only.
ROUTES: dict[str, list[str]] = {
    "m4": "-m 4 --save-model {model}".split(),
    "m4-pcm16": "-m 4 --format wav --subtype PCM_16".split(),
    "m4-float": "-m 4 --subtype FLOAT".split(),
    "m4-flac": "-m 4 --format flac".split(),
    "m3-is-mp2": "-m 3 -d is --mask-power 2 --subtype FLOAT --save-model {model}".split(),
    "m4-random": "-m 4 --init random --n-init 2 --save-model {model}".split(),
    "blind": "--sources {J} --save-model {model}".split(),
    "supervised": "{sources:all} --save-model {model}".split(),
    "semi": "{sources:first} --free 4 --subtype FLOAT --save-model {model}".split(),
}
LEARN_ARGS = "-m 16".split()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def hash_array(array: np.ndarray) -> str:
    digest = hashlib.sha256()
    digest.update(f"{array.dtype.str}|{array.shape}|".encode())
    digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def hash_npz(path: Path) -> tuple[str, dict[str, str]]:
    """One hash over the member arrays (sorted by name), and each member's hash."""
    with np.load(path, allow_pickle=False) as archive:
        members = {name: hash_array(archive[name]) for name in sorted(archive.files)}
    whole = sha256_bytes("".join(f"{name}:{digest}\n" for name, digest in members.items()).encode())
    return whole, members


def hash_tree(root: Path, prefix: str) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """sha256 of every non-hidden file under ``root``, keyed by ``prefix/relative path``."""
    files, members = {}, {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if any(part.startswith(".") for part in relative.parts) or not path.is_file():
            continue
        key = f"{prefix}/{relative.as_posix()}"
        if path.suffix == ".npz":
            files[key], members[key] = hash_npz(path)
        else:
            files[key] = sha256_bytes(path.read_bytes())
    return files, members


def channels_of(path: Path, item: dict, index: dict) -> int:
    try:
        import soundfile

        return int(soundfile.info(str(path)).channels)
    except Exception:  # noqa: BLE001 - fall back on the index's record
        return int(item.get("channels", index.get("channels", 1)))


class Runner:
    def __init__(
        self, python: str, pythonpath: Path | None, work: Path, seed: int, max_iter: int | None, verbose: bool
    ):
        self.python, self.work, self.verbose = python, work, verbose
        self.common = ["--seed", str(seed)] + ([] if max_iter is None else ["--max-iter", str(max_iter)])
        self.env = dict(os.environ)
        self.env.pop("PYTHONPATH", None)
        if pythonpath is not None:
            self.env["PYTHONPATH"] = str(pythonpath)

    def run(self, args: list[str]) -> tuple[bool, str]:
        command = [self.python, "-m", "nmfsep", *args, *self.common]
        if self.verbose:
            print("  $", " ".join(command), file=sys.stderr, flush=True)
        done = subprocess.run(command, cwd=self.work, env=self.env, capture_output=True, text=True)
        if done.returncode != 0:
            return False, f"exit {done.returncode}: {' '.join(command)}\n{done.stderr.strip()}"
        return True, ""

    def where(self) -> tuple[str, str]:
        probe = "import nmfsep; print(nmfsep.__file__); print(getattr(nmfsep, '__version__', '?'))"
        done = subprocess.run(
            [self.python, "-c", probe],
            cwd=self.work,
            env=self.env,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise SystemExit(f"error: {self.python} cannot import nmfsep:\n{done.stderr.strip()}")
        file, version = done.stdout.split("\n")[:2]
        return file, version


def run_item(runner: Runner, dev: Path, item: dict, routes: list[str]) -> dict:
    """Every route on one item; returns its hashes, errors and seconds per route."""
    out = {"files": {}, "members": {}, "errors": [], "seconds": {}}
    item_id, names = item["id"], list(item["sources"])
    models: dict[str, Path] = {}
    if any(r in ("supervised", "semi") for r in routes):
        started = time.perf_counter()
        folder = runner.work / "learn" / item_id
        folder.mkdir(parents=True, exist_ok=True)
        for name in names:
            target = folder / f"{name}.npz"
            ok, error = runner.run(
                [
                    "learn",
                    str(dev / item["train_files"][name]),
                    "--name",
                    name,
                    "-o",
                    str(target),
                    *LEARN_ARGS,
                ]
            )
            if ok:
                models[name] = target
            else:
                out["errors"].append(f"learn/{item_id}/{name}: {error}")
        files, members = hash_tree(folder, f"learn/{item_id}")
        out["files"].update(files)
        out["members"].update(members)
        out["seconds"]["learn"] = time.perf_counter() - started
    for route in routes:
        started = time.perf_counter()
        folder = runner.work / route / item_id
        args = []
        for arg in ROUTES[route]:
            if arg.startswith("{sources:"):
                wanted = names if arg == "{sources:all}" else names[:1]
                if any(n not in models for n in wanted):
                    args = None
                    break
                for n in wanted:
                    args += ["--source", str(models[n])]
            else:
                args.append(arg.format(J=item["n_sources"], model=str(folder / "{track}.npz")))
        if args is None:
            out["errors"].append(f"{route}/{item_id}: not run (a model it needs was not learned)")
            continue
        ok, error = runner.run(["separate", str(dev / item["mix"]), "-o", str(folder), *args])
        if not ok:
            out["errors"].append(f"{route}/{item_id}: {error}")
        if folder.is_dir():
            files, members = hash_tree(folder, f"{route}/{item_id}")
            out["files"].update(files)
            out["members"].update(members)
        out["seconds"][route] = time.perf_counter() - started
    return out


def compare(reference: dict, current: dict) -> list[str]:
    ref_files, cur_files = reference["files"], current["files"]
    problems = []
    for key in sorted(set(ref_files) | set(cur_files)):
        if key not in cur_files:
            problems.append(f"missing: {key}")
        elif key not in ref_files:
            problems.append(f"extra:   {key}")
        elif ref_files[key] != cur_files[key]:
            detail = ""
            ref_m, cur_m = reference.get("npz_members", {}).get(key), current["npz_members"].get(key)
            if ref_m is not None and cur_m is not None:
                changed = sorted(m for m in set(ref_m) | set(cur_m) if ref_m.get(m) != cur_m.get(m))
                detail = f" (members: {', '.join(changed)})"
            problems.append(f"differs: {key}{detail}")
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dev_dir", type=Path, help="dev set folder with index.json")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", type=Path, metavar="REF.json", help="write the hashes to this file")
    mode.add_argument("--compare", type=Path, metavar="REF.json", help="compare with this reference")
    parser.add_argument("--python", default=sys.executable, help="interpreter that runs nmfsep [this one]")
    parser.add_argument("--pythonpath", type=Path, help="checkout to import nmfsep from (PYTHONPATH)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--max-iter", type=int, help="passed to every learn and separate run [the CLI's default, 200]"
    )
    parser.add_argument("--jobs", type=int, default=1, help="items run in parallel [1]")
    parser.add_argument("--routes", help="comma-separated subset of: " + ",".join(ROUTES))
    parser.add_argument("--work", type=Path, help="keep the outputs in this (new or empty) folder")
    parser.add_argument("--verbose", action="store_true", help="print every command")
    args = parser.parse_args(argv)

    dev = args.dev_dir.resolve()
    index = json.loads((dev / "index.json").read_text())
    reference = None
    if args.compare is not None:
        reference = json.loads(args.compare.read_text())
        if reference.get("format") != FORMAT:
            parser.error(f"{args.compare} is not a {FORMAT} file")
        if reference["seed"] != args.seed:
            parser.error(f"{args.compare} was made with --seed {reference['seed']}, not {args.seed}")
        if args.max_iter is None:
            args.max_iter = reference.get("max_iter")
        elif reference.get("max_iter") != args.max_iter:
            parser.error(f"{args.compare} was made with --max-iter {reference.get('max_iter')}")
    routes = list(ROUTES) if args.routes is None else args.routes.split(",")
    if reference is not None and args.routes is None:
        routes = reference.get("routes_run", routes)
    unknown = [r for r in routes if r not in ROUTES]
    if unknown:
        parser.error(f"unknown routes: {', '.join(unknown)}")
    if reference is not None:
        defined = {"learn": LEARN_ARGS, **ROUTES}
        changed = [r for r in ["learn", *routes] if reference["routes"].get(r, defined[r]) != defined[r]]
        if changed:
            parser.error(f"{args.compare} was made with other arguments for: {', '.join(changed)}")
    pythonpath = args.pythonpath.resolve() if args.pythonpath else None

    if args.work is not None:
        args.work.mkdir(parents=True, exist_ok=True)
        if any(args.work.iterdir()):
            parser.error(f"--work {args.work} is not empty")
        work, cleanup = args.work.resolve(), False
    else:
        work, cleanup = Path(tempfile.mkdtemp(prefix="same_outputs_")), True
    try:
        runner = Runner(args.python, pythonpath, work, args.seed, args.max_iter, args.verbose)
        module_file, version = runner.where()
        print(f"nmfsep {version} from {module_file} ({args.python})", file=sys.stderr)
        if pythonpath is not None and not Path(module_file).resolve().is_relative_to(pythonpath):
            print(f"error: nmfsep is imported from {module_file}, not from {pythonpath}", file=sys.stderr)
            return 2
        items = {}
        for item in index["items"]:
            items[item["id"]] = {
                "n_sources": item["n_sources"],
                "channels": channels_of(dev / item["mix"], item, index),
            }
        stereo = [i for i, info in items.items() if info["channels"] > 1]
        print(
            f"{len(items)} items, routes: {', '.join(routes)}; multichannel items: "
            f"{', '.join(stereo) if stereo else 'none'}",
            file=sys.stderr,
        )
        started = time.perf_counter()
        with ThreadPoolExecutor(max(1, args.jobs)) as pool:
            results = list(pool.map(lambda item: run_item(runner, dev, item, routes), index["items"]))
        seconds = time.perf_counter() - started
    finally:
        if cleanup:
            shutil.rmtree(work, ignore_errors=True)

    current = {"files": {}, "npz_members": {}}
    per_route: dict[str, float] = {}
    errors = []
    for result in results:
        current["files"].update(result["files"])
        current["npz_members"].update(result["members"])
        errors += result["errors"]
        for route, s in result["seconds"].items():
            per_route[route] = per_route.get(route, 0.0) + s
    n_models = len(current["npz_members"])
    print(
        f"{len(current['files'])} files hashed ({len(current['files']) - n_models} audio, {n_models} models) "
        f"in {seconds:.1f} s; per route: " + ", ".join(f"{r} {s:.1f} s" for r, s in per_route.items()),
        file=sys.stderr,
    )
    for error in errors:
        print(f"FAILED {error}", file=sys.stderr)

    if args.write is not None:
        if errors:
            print(f"error: {len(errors)} runs failed; {args.write} not written", file=sys.stderr)
            return 1
        record = {
            "format": FORMAT,
            "seed": args.seed,
            "max_iter": args.max_iter,
            "dev_dir": str(dev),
            "nmfsep": {"file": module_file, "version": version, "python": args.python},
            "items": items,
            "routes_run": routes,
            "routes": {"learn": LEARN_ARGS, **{r: ROUTES[r] for r in routes}},
            "files": dict(sorted(current["files"].items())),
            "npz_members": dict(sorted(current["npz_members"].items())),
        }
        args.write.write_text(json.dumps(record, indent=1) + "\n")
        print(f"wrote {len(current['files'])} hashes to {args.write}")
        return 0

    if args.routes is not None:  # compare only the routes run
        ran = set(routes) | ({"learn"} if {"supervised", "semi"} & set(routes) else set())
        reference["files"] = {k: v for k, v in reference["files"].items() if k.split("/")[0] in ran}
    problems = compare(reference, current)
    for problem in problems:
        print(problem)
    if problems or errors:
        print(
            f"{len(problems)} of {len(set(reference['files']) | set(current['files']))} files differ, "
            f"are missing or extra; {len(errors)} runs failed"
        )
        return 1
    print(f"{len(current['files'])} files identical")
    return 0


if __name__ == "__main__":
    sys.exit(main())
