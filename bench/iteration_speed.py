"""Milliseconds per MM iteration: nmfsep's engine next to scikit-learn's MU solver, and the machine's bound.

Usage::

    python bench/iteration_speed.py [--frames 7752] [--ranks 4 16 64] [--betas 0 1 2] [--iters 10]

A real magnitude spectrogram (the shipped samples, 22.05 kHz, repeated to --frames frames, K=1025) is
factorized from the same random initialisation by both engines for a fixed number of iterations (tol 0),
interleaved, min of 3 repeats. Reported per (beta, rank): ms per iteration (both updates), the ratio, and
the final divergence of each (so speed is not bought with accuracy). The bound: float32 memory bandwidth
(a large add) and peak sgemm GFLOP/s measured now; an iteration needs at least one read of Y per update
plus the flops of its four K x N x M products.

This is the first part of issue 7's `make bench` (per-iteration speed); end-to-end and scaling figures are
in bench/end_to_end.py.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf

from nmfsep.nmf import beta_divergence, factorize
from nmfsep.nmf.factorize import _normalize
from nmfsep.spectrogram import STFTSettings, stft

ROOT = Path(__file__).resolve().parent.parent
#: Least passes over a K x N float32 array per iteration: each of the two updates must read Y once.
MIN_PASSES = 2


def spectrogram(frames: int) -> np.ndarray:
    signal = np.concatenate(
        [
            sf.read(ROOT / "samples" / name, dtype="float32")[0]
            for name in ("hotcrossbuns_piano.wav", "speech_vibraphone.wav")
        ]
    )
    Y = np.abs(stft(signal, STFTSettings()))
    Y = np.tile(Y, (1, -(-frames // Y.shape[1])))[:, :frames]
    return np.ascontiguousarray(np.maximum(Y, 1e-6 * Y.max()), dtype=np.float32)


def nmfsep_run(Y, H0, U0, beta, iters):
    started = time.perf_counter()
    result = factorize(Y, H0.shape[1], beta=beta, init=(H0, U0), max_iter=iters, tol=0, floor=0)
    return time.perf_counter() - started, result.bases, result.activations


def sklearn_run(Y, H0, U0, beta, iters):
    from sklearn.decomposition import NMF

    model = NMF(n_components=H0.shape[1], solver="mu", beta_loss=beta, init="custom", max_iter=iters, tol=0)
    X = Y.T  # scikit-learn: X (samples x features) ~ W H; here Y^T ~ U^T H^T
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        started = time.perf_counter()
        W = model.fit_transform(X, W=np.ascontiguousarray(U0.T), H=np.ascontiguousarray(H0.T))
        elapsed = time.perf_counter() - started
    return elapsed, model.components_.T, W.T


def bound(Y):
    """(GB/s of a large float32 add, peak sgemm GFLOP/s on square 2048 matrices)."""
    a, b = np.ones_like(Y), np.ones_like(Y)
    best = np.inf
    for _ in range(3):
        started = time.perf_counter()
        np.add(a, b, out=a)
        best = min(best, time.perf_counter() - started)
    bandwidth = 3 * Y.nbytes / best / 1e9
    square = np.ones((2048, 2048), dtype=np.float32)
    best = np.inf
    for _ in range(3):
        started = time.perf_counter()
        _ = square @ square
        best = min(best, time.perf_counter() - started)
    gflops = 2 * 2048**3 / best / 1e9
    return bandwidth, gflops


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=7752)
    parser.add_argument("--ranks", type=int, nargs="+", default=[4, 16, 64])
    parser.add_argument("--betas", type=float, nargs="+", default=[0.0, 1.0, 2.0])
    parser.add_argument("--iters", type=int, default=10)
    args = parser.parse_args(argv)
    Y = spectrogram(args.frames)
    print(f"Y: {Y.shape[0]} x {Y.shape[1]} float32 ({Y.nbytes / 1e6:.0f} MB)")
    print(
        "| beta | rank | nmfsep ms/it | sklearn ms/it | speed-up | bound ms/it | nmfsep / bound | "
        "divergence nmfsep | divergence sklearn |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    bandwidth, gflops = bound(Y)
    for rank in args.ranks:
        rng = np.random.default_rng(0)
        scale = np.sqrt(Y.mean() / rank)
        H0 = (np.abs(rng.standard_normal((Y.shape[0], rank))) * scale).astype(np.float32)
        U0 = (np.abs(rng.standard_normal((rank, Y.shape[1]))) * scale).astype(np.float32)
        _normalize(H0, U0, "l2", slice(None))
        for beta in args.betas:
            ours, theirs = np.inf, np.inf
            for _ in range(3):  # interleaved, min of 3
                t, H, U = nmfsep_run(Y, H0, U0, beta, args.iters)
                ours = min(ours, t)
                t, Hs, Us = sklearn_run(Y, H0, U0, beta, args.iters)
                theirs = min(theirs, t)
            # four K x N x M products per iteration (model and projection, for each update)
            least = MIN_PASSES * Y.nbytes / (bandwidth * 1e9) + 8 * Y.size * rank / (gflops * 1e9)
            d_ours = beta_divergence(Y, H.astype(np.float64) @ U, beta)
            d_theirs = beta_divergence(Y, Hs.astype(np.float64) @ Us, beta)
            print(
                f"| {beta:g} | {rank} | {ours / args.iters * 1e3:.1f} | {theirs / args.iters * 1e3:.1f} | "
                f"{theirs / ours:.2f}x | {least * 1e3:.1f} | {ours / args.iters / least:.1f}x | "
                f"{d_ours:.6g} | {d_theirs:.6g} |"
            )
            sys.stdout.flush()
    print(
        f"(bound: {MIN_PASSES} reads of Y at {bandwidth:.1f} GB/s + 4 K x N x M products at {gflops:.0f} GFLOP/s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
