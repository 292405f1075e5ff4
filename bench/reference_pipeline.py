"""The NMF separation a user would write today with librosa and scikit-learn (bench/run.py's reference).

Usage::

    python bench/reference_pipeline.py song.wav [-m 4] [--beta kullback-leibler] [--max-iter 200] [-o out]

librosa.stft per channel, scikit-learn NMF (solver 'mu', init 'nndsvda', tol 0) on the magnitude
summed over channels, Wiener-style masks (h_j u_j) / sum_i (h_i u_i), librosa.istft per channel and
component, one WAV per component with soundfile. Written plainly, as the documentation of each
library shows, so it is a fair picture of the usual approach (and of its memory).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf
from sklearn.decomposition import NMF


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input", type=Path)
    parser.add_argument("-m", "--components", type=int, default=4)
    parser.add_argument("--beta", default="kullback-leibler")
    parser.add_argument("--max-iter", type=int, default=200)
    parser.add_argument("-o", "--out", type=Path, default=Path("reference"))
    args = parser.parse_args(argv)

    audio, rate = sf.read(args.input, dtype="float32", always_2d=True)
    audio = audio.T
    spectra = [librosa.stft(channel, n_fft=2048, hop_length=512) for channel in audio]
    magnitude = sum(np.abs(spectrum) for spectrum in spectra)
    model = NMF(
        n_components=args.components,
        solver="mu",
        beta_loss=args.beta,
        init="nndsvda",
        max_iter=args.max_iter,
        tol=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "maximum number of iterations reached"
        # frames as samples, as librosa.decompose.decompose does
        activations = model.fit_transform(magnitude.T).T
    bases = model.components_.T
    total = bases @ activations + np.finfo(np.float32).eps
    args.out.mkdir(parents=True, exist_ok=True)
    for j in range(args.components):
        mask = np.outer(bases[:, j], activations[j]) / total
        signal = np.stack(
            [librosa.istft(spectrum * mask, hop_length=512, length=audio.shape[1]) for spectrum in spectra]
        )
        sf.write(args.out / f"c{j + 1}.wav", signal.T, rate, subtype="PCM_16")
    print(f"{args.input}: {args.components} components, {model.n_iter_} iterations", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
