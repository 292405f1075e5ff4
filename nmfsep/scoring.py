"""Separation quality against references: mir_eval's bss_eval, file matching and permutations."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import audio as audio_io
from .audio import AUDIO_EXTENSIONS
from .errors import AudioError, ParameterError

#: Lengths that differ by at most this fraction (or one STFT hop, 512 samples) are trimmed to the shorter.
LENGTH_TOLERANCE = 0.005


@dataclass(frozen=True)
class Scores:
    """bss_eval figures per source (dB), in the order of ``names`` (the references).

    For mono files ``sdr``, ``sir``, ``sar`` are ``bss_eval_sources``'; for multichannel files they
    are ``bss_eval_images``' (the images, every channel), and ``downmix`` holds
    ``bss_eval_sources``' figures of the channel means under the same matching.
    """

    names: tuple[str, ...]
    estimates: tuple[str, ...]  #: the estimate matched to each reference
    sdr: np.ndarray
    sir: np.ndarray
    sar: np.ndarray
    downmix: Scores | None = None

    def as_dict(self) -> dict:
        rows = [
            {"reference": n, "estimate": e, "sdr": _finite(a), "sir": _finite(b), "sar": _finite(c)}
            for n, e, a, b, c in zip(self.names, self.estimates, self.sdr, self.sir, self.sar, strict=True)
        ]
        mean = {key: _finite(np.mean(getattr(self, key))) for key in ("sdr", "sir", "sar")}
        if self.downmix is None:
            return {"sources": rows, "mean": mean}
        downmix = self.downmix.as_dict()
        for row, mixed in zip(rows, downmix["sources"], strict=True):
            row["downmix"] = {key: mixed[key] for key in ("sdr", "sir", "sar")}
        mean["downmix"] = downmix["mean"]
        return {
            "sources": rows,
            "mean": mean,
            "scores": "images (bss_eval_images); downmix: bss_eval_sources",
        }

    def table(self) -> str:
        """The figures as a text table, one row per source and the mean ("inf" for a perfect score)."""
        report = self.as_dict()
        rows = [(row["reference"], row["estimate"], row) for row in report["sources"]]
        rows.append(("mean", "", report["mean"]))
        width = max(len(reference) for reference, _, _ in rows)

        def show(value):
            return f"{value:7.2f}" if value is not None else "    inf"

        header = f"{'source':{width}}  {'estimate':16}  {'SDR':>7}  {'SIR':>7}  {'SAR':>7}"
        if self.downmix is not None:  # images first, then the downmix
            header = f"{'':{width}}  {'':16}  {'images':^25}  {'downmix':^25}\n" + header
            header += f"  {'SDR':>7}  {'SIR':>7}  {'SAR':>7}"
        lines = [header]
        for reference, estimate, row in rows:
            figures = "  ".join(show(row[key]) for key in ("sdr", "sir", "sar"))
            if self.downmix is not None:
                figures += "  " + "  ".join(show(row["downmix"][key]) for key in ("sdr", "sir", "sar"))
            lines.append(f"{reference:{width}}  {estimate:16}  {figures}")
        return "\n".join(lines)


def _finite(value) -> float | None:
    """JSON has no infinity (a perfect SIR is +inf in bss_eval): None stands for it."""
    value = float(value)
    return value if np.isfinite(value) else None


def _audio_files(path: Path) -> list[Path]:
    if not path.exists():
        raise AudioError("no such file or folder", path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
        if not files:
            raise AudioError("no audio files in folder", path)
        return files
    return [path]


def match_files(
    references: list[Path], estimates: list[Path], permute: bool
) -> list[tuple[Path, Path]] | None:
    """Pairs (reference, estimate) by file name stem; None with ``permute`` (matched by scores)."""
    if len(references) != len(estimates):
        raise ParameterError(f"{len(references)} references but {len(estimates)} estimates")
    if permute:
        return None
    by_name = {p.stem: p for p in estimates}
    missing = [r.stem for r in references if r.stem not in by_name]
    if missing:
        if len(references) == 1:
            return [(references[0], estimates[0])]
        raise ParameterError(
            f"no estimate named {', '.join(missing)} (estimates: {', '.join(sorted(by_name))}); "
            "use [[permute=True]] to match by the best permutation"
        )
    return [(r, by_name[r.stem]) for r in references]


def _load_all(paths: list[Path]) -> tuple[list[np.ndarray], int]:
    signals, rate = [], None
    for path in paths:
        loaded = audio_io.load(path)
        if rate is not None and loaded.sample_rate != rate:
            raise AudioError(f"sample rate {loaded.sample_rate} Hz differs from {rate} Hz", path)
        rate = loaded.sample_rate
        signals.append(loaded.samples)
    return signals, rate


def evaluate(
    reference: str | os.PathLike | list, estimate: str | os.PathLike | list, *, permute: bool = False
) -> Scores:
    """SDR, SIR and SAR (mir_eval ``bss_eval_sources``; for multichannel audio ``bss_eval_images`` of
    the images and ``bss_eval_sources`` of their channel means, the downmix, under the same matching).

    Parameters
    ----------
    reference, estimate : path (file or folder) or list of paths
        Folders contribute their audio files. Files are matched by name (``voice.wav`` with
        ``voice.wav``), or, with ``permute``, by mir_eval's best permutation (the one with the best mean SIR).

    Raises
    ------
    ParameterError
        Counts that differ, or names that do not match (without ``permute``).
    AudioError
        Different sample rates or channel counts, or lengths that differ by more than 0.5%.
    """
    import mir_eval

    refs = [q for p in _as_list(reference) for q in _audio_files(Path(p))]
    ests = [q for p in _as_list(estimate) for q in _audio_files(Path(p))]
    pairs = match_files(refs, ests, permute)
    if pairs is not None:
        refs, ests = [r for r, _ in pairs], [e for _, e in pairs]
    ref_signals, ref_rate = _load_all(refs)
    est_signals, est_rate = _load_all(ests)
    if ref_rate != est_rate:
        raise AudioError(f"references are at {ref_rate} Hz, estimates at {est_rate} Hz")
    channels = {s.shape[0] for s in ref_signals + est_signals}
    if len(channels) > 1:
        raise AudioError(f"channel counts differ between files: {sorted(channels)}")
    lengths = [s.shape[1] for s in ref_signals + est_signals]
    shortest, longest = min(lengths), max(lengths)
    if longest - shortest > max(512, LENGTH_TOLERANCE * longest):
        raise AudioError(f"lengths differ too much to compare: {shortest} to {longest} samples")
    R = np.stack([s[:, :shortest] for s in ref_signals]).astype(np.float64)
    E = np.stack([s[:, :shortest] for s in est_signals]).astype(np.float64)
    for signal, path in zip(list(R) + list(E), refs + ests, strict=True):
        if not np.any(signal):
            raise AudioError("silent signal: bss_eval is undefined for all-zero audio", path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # mir_eval 0.8 deprecates the names, not the maths
        if R.shape[1] == 1:
            sdr, sir, sar, perm = mir_eval.separation.bss_eval_sources(
                R[:, 0], E[:, 0], compute_permutation=permute
            )
        else:
            sdr, _, sir, sar, perm = mir_eval.separation.bss_eval_images(
                R.transpose(0, 2, 1), E.transpose(0, 2, 1), compute_permutation=permute
            )
            downmixes = (R.mean(axis=1), E[np.asarray(perm)].mean(axis=1))
            for signals, paths in zip(downmixes, (refs, [ests[int(j)] for j in perm]), strict=True):
                for signal, path in zip(signals, paths, strict=True):
                    if not np.any(signal):  # channels in opposite phase
                        raise AudioError("silent downmix (the channels cancel): bss_eval is undefined", path)
            mixed = mir_eval.separation.bss_eval_sources(*downmixes, compute_permutation=False)
    names = tuple(r.stem for r in refs)
    matched = tuple(ests[int(j)].name for j in perm)
    downmix = None
    if R.shape[1] > 1:
        downmix = Scores(names, matched, *(np.asarray(values) for values in mixed[:3]))
    return Scores(names, matched, np.asarray(sdr), np.asarray(sir), np.asarray(sar), downmix)


def _as_list(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]
