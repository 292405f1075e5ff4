"""Reference tests: results checked against values computed independently of the code under test.

1. Separation outputs. ``blockwise.resynthesise`` writes the last output as the input minus the
   others, so "the outputs sum to the input" holds by construction and proves nothing about the last
   output. Here every output, the last one included, is recomputed in float64 from the returned
   bases and activations: the soft mask of its group, written out with numpy (not ``nmfsep.masks``),
   applied to ``nmfsep.stft`` of the input and inverted with ``nmfsep.istft``; for the spatial
   model's sources, the multichannel Wiener filter of its covariances, solved by numpy.
2. The NMF engine. ``nmfsep.factorize`` from a given initialisation must follow the iterates of
   scikit-learn's multiplicative-update solver (the same Fevotte-Idier MM updates) for every beta and
   both kernels: same model product H U and same divergence after 1, 10 and 50 iterations.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import nmfsep
from nmfsep import STFTSettings, istft, stft

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "hotcrossbuns_piano.wav"
SAMPLE_SOURCES = ROOT / "tests" / "data" / "hotcrossbuns"

# ---------------------------------------------------------------------------------------------------
# 1. Every output (the last one in particular) against masks recomputed from the model
# ---------------------------------------------------------------------------------------------------

#: Max abs difference between a returned output and its float64 reference, relative to the input's
#: peak. The pipeline runs in float32 (STFT, masks, overlap-add); measured on the cases below:
#: 1.8e-7 to 2.5e-7 (one or two float32 ulps at the peak), for the masked outputs and the
#: subtracted last one alike. 1e-5 (-100 dB) leaves a 40x margin and still fails for any wrong mask,
#: sample offset or forgotten output (checked by breaking blockwise.resynthesise in a scratch copy).
OUTPUT_TOL = 1e-5


def _reference_outputs(separation: nmfsep.Separation, audio: np.ndarray) -> np.ndarray:
    """Each group's output [shape=(S, C, T)], in float64, straight from the definition::

        mask_G = sum_{j in G} (h_j u_j)^a / sum_i (h_i u_i)^a

    and, like ``nmfsep.masks``, len(G) / M in bins that no component explains (here: a total of
    exactly 0; the library tests "at most the smallest normal float32" on factors scaled to max 1.
    The cases below have none: their smallest total on that scale is ~1e-9).
    """
    settings = STFTSettings(**separation.settings["stft"])
    power = separation.settings["mask_power"]
    H = separation.bases.astype(np.float64)
    U = separation.activations.astype(np.float64)
    n_components = H.shape[1]
    parts = (H.T[:, :, None] * U[:, None, :]) ** power  # (M, K, N): (h_j u_j)^a
    total = parts.sum(axis=0)
    explained = total > 0
    channels = np.atleast_2d(audio).astype(np.float64)
    X = stft(channels, settings)  # (C, K, N) complex128
    outputs = []
    for group in separation.component_groups:
        share = parts[list(group)].sum(axis=0) / np.where(explained, total, 1.0)
        mask = np.where(explained, share, len(group) / n_components)
        outputs.append(istft(X * mask, settings, channels.shape[1]))
    return np.stack(outputs)


def _reference_images(separation: nmfsep.Separation, audio: np.ndarray) -> np.ndarray:
    """The spatial model's outputs [shape=(J, C, T)], in float64, from the definition::

        X^ = sum_j P_j R_j + floor I,   P_j = sum_{m in source j} h_m u_m,   s_j = (P_j R_j + floor I / J) X^-1 x

    with numpy's solver, not ``nmfsep.nmf.spatial`` (nor its numba kernel).
    """
    settings = STFTSettings(**separation.settings["stft"])
    floor = separation.settings["spatial"]["floor"]
    H = separation.bases.astype(np.float64)
    U = separation.activations.astype(np.float64)
    P = np.stack([H[:, list(group)] @ U[list(group)] for group in separation.component_groups])  # (J, K, N)
    R = separation.covariances  # (J, K, C, C)
    channels = np.atleast_2d(audio).astype(np.float64)
    X = stft(channels, settings)  # (C, K, N)
    C, J = X.shape[0], P.shape[0]
    model = np.einsum("jkn,jkcd->kncd", P, R) + floor * np.eye(C)
    y = np.linalg.solve(model, np.moveaxis(X, 0, -1)[..., None])[..., 0]  # (K, N, C)
    images = np.einsum("jkn,jkcd,knd->jckn", P, R, y) + floor / J * np.moveaxis(y, -1, 0)[None]
    return np.stack([istft(image, settings, channels.shape[1]) for image in images])


def _check_outputs(separation: nmfsep.Separation, audio: np.ndarray) -> None:
    channels = np.atleast_2d(audio)
    reference = (_reference_images if separation.spatial else _reference_outputs)(separation, audio)
    got = separation.components
    assert got.shape == reference.shape == (len(separation.names), *channels.shape)
    peak = float(np.abs(channels).max())
    errors = np.abs(got - reference).max(axis=(1, 2)) / peak
    # the last output must be a real part of the signal, not (nearly) silence
    assert np.sqrt(np.mean(reference[-1] ** 2)) > 1e-3 * peak
    assert errors[-1] < OUTPUT_TOL, f"last output ({separation.names[-1]}): max error {errors[-1]:.2e} x peak"
    assert np.all(errors < OUTPUT_TOL), f"max error per output (x peak): {errors}"


@pytest.fixture(scope="module")
def piano_3s() -> tuple[np.ndarray, int]:
    samples, rate = sf.read(SAMPLE, dtype="float32")
    return samples[: 3 * rate].copy(), rate


@pytest.fixture(scope="module")
def stereo_3s(piano_3s) -> tuple[np.ndarray, int]:
    """Piano left, the speech/vibraphone sample right: the channels differ, the masks are shared."""
    samples, rate = piano_3s
    speech, _ = sf.read(ROOT / "samples" / "speech_vibraphone.wav", dtype="float32")
    return np.stack([samples, 0.5 * speech[: samples.shape[0]]]), rate


@pytest.mark.parametrize(
    ("channels", "options", "block_frames"),
    [
        ("mono", {"n_components": 3}, None),
        ("stereo", {"n_components": 3, "mask_power": 2.0}, 48),
        ("mono", {"n_sources": 2, "max_iter": 50}, 48),  # 12 components grouped into 2 sources
        ("stereo", {"n_sources": 2, "max_iter": 50, "mono": True}, None),
        ("stereo", {"n_sources": 2, "max_iter": 30}, 48),  # the spatial model's Wiener images
    ],
    ids=[
        "mono-m3",
        "stereo-m3-a2-blocks",
        "mono-sources2-blocks",
        "stereo-sources2-mono",
        "stereo-spatial-blocks",
    ],
)
def test_outputs_match_masks_recomputed_from_the_model(
    channels, options, block_frames, piano_3s, stereo_3s, monkeypatch
):
    audio, rate = piano_3s if channels == "mono" else stereo_3s
    if block_frames is not None:
        # 130 frames in blocks of 48: block boundaries and a partial last block in both passes
        monkeypatch.setattr(nmfsep.blockwise, "BLOCK_FRAMES", block_frames)
    separation = nmfsep.separate(audio, rate, **options)
    assert separation.spatial == (channels == "stereo" and "n_sources" in options and not options.get("mono"))
    if "n_sources" in options:
        assert len(separation.component_groups) == 2
        assert max(len(group) for group in separation.component_groups) > 1
    _check_outputs(separation, audio)


@pytest.fixture(scope="module")
def source_models():
    """Bases of two of the piano's pitches, learned from their clean recordings."""
    return [
        nmfsep.learn([SAMPLE_SOURCES / f"{pitch}.wav"], 4, name=pitch, max_iter=30) for pitch in ("F4", "G4")
    ]


def test_supervised_outputs_match_masks_recomputed_from_the_model(source_models, piano_3s, monkeypatch):
    """Fixed learned bases plus free ones: outputs F4, G4 and rest (the last: 2 free components)."""
    audio, rate = piano_3s
    monkeypatch.setattr(nmfsep.blockwise, "BLOCK_FRAMES", 48)
    separation = nmfsep.separate(audio, rate, sources=source_models, free=2)
    assert separation.names == ("F4", "G4", "rest")
    assert [len(group) for group in separation.component_groups] == [4, 4, 2]
    _check_outputs(separation, audio)


# ---------------------------------------------------------------------------------------------------
# 2. nmfsep.factorize against scikit-learn's multiplicative updates
# ---------------------------------------------------------------------------------------------------
#
# Conventions. scikit-learn factorizes X (samples x features) ~ W H and, in every iteration of
# _fit_multiplicative_update, updates W first and then H (with the new W). nmfsep factorizes
# Y (K x N) ~ H U and updates the activations U first, then the bases H. So X = Y^T, W = U^T
# (the factor updated first) and H_sklearn = H^T; with the roles the other way round the iterates
# differ (test_the_comparison_detects_the_update_order). Both use the same MM exponent gamma(beta)
# (1/(2-beta) below 1, 1/(beta-1) above 2) on both factors.
#
# What differs, and why it does not matter here:
# * nmfsep rescales every basis to unit norm after each H update (the scale moves into U). The
#   multiplicative updates are equivariant to that rescaling, so H U and the divergence are
#   unchanged (in exact arithmetic): the products are compared, not the factors.
# * nmfsep works on Y / max(Y) and scales U back at the end (the divergence is homogeneous);
#   scikit-learn works on the data as given. The data keep their own scale (max ~143).
# * nmfsep floors Y at floor * max(Y): floor=0 is passed (allowed: the data have no zeros).
# * scikit-learn clips W H at float32 eps (beta < 2), zeroes entries of W below float64 eps
#   (beta < 1) and of H (beta <= 1), and skips X <= float32 eps in its divergence; nmfsep does none
#   of that. The data are floored at -80 dB (1e-4 x max, ~0.014) and the fixture asserts that none
#   of these branches acted. (On the first 3 s instead of 6, one KL basis entry falls below float64
#   eps within 50 iterations and scikit-learn zeroes it; the products still agreed to 1e-14, but the
#   comparison would then rest on an entry that differs.)
# * alpha_W = alpha_H = 0: no regularisation; tol = 0: exactly max_iter iterations.

#: Iteration counts at which the iterates are compared.
CHECKPOINTS = (1, 10, 50)
BETAS = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0]
BETA_IDS = ["is", "b0.5", "kl", "b1.5", "euc", "b3"]

#: float64, elementwise relative difference of H U, and relative difference of the divergence.
#: Measured on every case below (1, 10 and 50 iterations): products <= 1.4e-13, divergences
#: <= 2.2e-13 (EUC: its fused objective ||Y||^2 - 2 <U, H^T Y> + <H^T H, U U^T> cancels); most are
#: ~1e-15. With scikit-learn's roles swapped they differ by 3% to 190% after one iteration.
FLOAT64_RTOL = 1e-10

#: float32 engine (the pipeline's precision) against scikit-learn's float64 iterates: max |dV| over
#: max V. Measured <= 2.8e-6 (scikit-learn's own float32 solver, on similar data: <= 9.4e-6).
FLOAT32_PRODUCT_TOL = 2e-5

SKLEARN_EPS32 = float(np.finfo(np.float32).eps)


@pytest.fixture(scope="module")
def one_numba_thread():
    """Run the numba kernels on one thread in this module. Their results do not depend on the thread
    count (fixed chunks summed in a fixed order), and on 2 busy cores the parallel regions of these
    small problems spent ~10x longer waiting for each other than computing (measured 0.6 s against
    0.05 s for 50 IS iterations)."""
    import numba

    previous = numba.get_num_threads()
    numba.set_num_threads(1)
    yield
    numba.set_num_threads(previous)


@pytest.fixture(scope="module")
def spectrogram(one_numba_thread) -> np.ndarray:
    """|STFT| of the piano's first 6 s (513 bins x 517 frames), float64, floored at -80 dB."""
    samples, rate = sf.read(SAMPLE, dtype="float64")
    magnitude = np.abs(stft(samples[: 6 * rate], STFTSettings(n_fft=1024, hop_length=256)))
    return np.maximum(magnitude, 1e-4 * magnitude.max())


def _initial_factors(Y: np.ndarray, rank: int) -> tuple[np.ndarray, np.ndarray]:
    """Positive (H0, U0), seeded; H0 with unit-l2 columns, H0 U0 with the mean of Y."""
    rng = np.random.default_rng(rank)
    H0 = rng.uniform(0.5, 1.5, (Y.shape[0], rank))
    H0 /= np.linalg.norm(H0, axis=0)
    U0 = rng.uniform(0.5, 1.5, (rank, Y.shape[1]))
    U0 *= Y.mean() / (H0 @ U0).mean()
    return H0, U0


def _sklearn_fit(X, W, H, beta, n_iter):
    from sklearn.decomposition import NMF

    model = NMF(
        n_components=W.shape[1],
        solver="mu",
        beta_loss=beta,
        init="custom",
        tol=0,
        max_iter=n_iter,
        alpha_W=0.0,
        alpha_H=0.0,
    )
    with warnings.catch_warnings():
        # a ConvergenceWarning (a UserWarning) or an overflow would mean the run was not the plain MU
        warnings.simplefilter("error", UserWarning)
        warnings.simplefilter("error", RuntimeWarning)
        W = model.fit_transform(X, W=W, H=H)
    # reconstruction_err_ is sqrt(2 D)
    return W, model.components_, model.reconstruction_err_**2 / 2


@pytest.fixture(scope="module")
def sklearn_iterates(spectrogram):
    """``get(beta, rank)`` -> {n: (model product [K x N], divergence)} for n in CHECKPOINTS.

    One run of 50 iterations per (beta, rank), cut at the checkpoints: scikit-learn's MU state is
    (W, H) alone (its cached H_sum, HHt, XHt are reset after every H update), so continuing from
    (W, H) with more iterations is the same computation. Cached for the module.
    """
    cache: dict = {}
    X = spectrogram.T

    def get(beta: float, rank: int) -> dict:
        if (beta, rank) not in cache:
            H0, U0 = _initial_factors(spectrogram, rank)
            W, H = U0.T.copy(), H0.T.copy()
            done, iterates = 0, {}
            for n in CHECKPOINTS:
                W, H, divergence = _sklearn_fit(X, W, H, beta, n - done)
                done = n
                product = (W @ H).T
                # scikit-learn's thresholds did not act (see the notes above). Entries it zeroes
                # stay zero (0 times any ratio), so a positive minimum at a checkpoint means none
                # was ever zeroed.
                if beta < 2:
                    assert product.min() > 100 * SKLEARN_EPS32
                if beta < 1:
                    assert W.min() > 0
                if beta <= 1:
                    assert H.min() > 0
                iterates[n] = (product, divergence)
                W, H = W.copy(), H.copy()
            cache[beta, rank] = iterates
        return cache[beta, rank]

    return get


#: Every beta at rank 4; IS, KL and EUC also at rank 12, where other code paths run (numba: the general
#: kernels instead of the rank-4 register-blocked ones for IS and KL; numpy: the EUC objective from
#: the model instead of the fused projections).
FACTORIZE_CASES = [
    pytest.param(beta, 4, id=f"{name}-4") for beta, name in zip(BETAS, BETA_IDS, strict=True)
] + [pytest.param(beta, 12, id=f"{name}-12") for beta, name in [(0.0, "is"), (1.0, "kl"), (2.0, "euc")]]


@pytest.mark.parametrize("kernel", ["numba", "numpy"])
@pytest.mark.parametrize(("beta", "rank"), FACTORIZE_CASES)
def test_factorize_follows_sklearn_mu_iterates(beta, rank, kernel, spectrogram, sklearn_iterates):
    H0, U0 = _initial_factors(spectrogram, rank)
    reference = sklearn_iterates(beta, rank)
    assert spectrogram.min() > SKLEARN_EPS32
    for n in CHECKPOINTS:
        fit = nmfsep.factorize(
            spectrogram,
            rank,
            beta=beta,
            init=(H0, U0),
            max_iter=n,
            tol=0,
            floor=0.0,
            dtype=np.float64,
            kernel=kernel,
        )
        assert fit.n_iter == n and fit.settings["kernel"] == kernel
        product, divergence = reference[n]
        model = fit.bases @ fit.activations
        worst = float(np.max(np.abs(model - product) / product))
        assert worst < FLOAT64_RTOL, f"{n} iterations: H U differs by {worst:.2e} (relative)"
        assert fit.objective[-1] == pytest.approx(divergence, rel=FLOAT64_RTOL), f"{n} iterations"
        assert nmfsep.beta_divergence(spectrogram, model, beta) == pytest.approx(divergence, rel=FLOAT64_RTOL)


@pytest.mark.parametrize("norm", ["l1", "l2"])
@pytest.mark.parametrize("beta", [0.0, 1.0], ids=["is", "kl"])
def test_the_basis_norm_does_not_change_the_iterates(beta, norm, spectrogram, sklearn_iterates):
    """How the scale is split between H and U (unit-l1 or unit-l2 bases) leaves H U as scikit-learn's."""
    H0, U0 = _initial_factors(spectrogram, 4)
    product, divergence = sklearn_iterates(beta, 4)[10]
    fit = nmfsep.factorize(
        spectrogram, 4, beta=beta, init=(H0, U0), max_iter=10, tol=0, floor=0.0, dtype=np.float64, norm=norm
    )
    norms = fit.bases.sum(axis=0) if norm == "l1" else np.linalg.norm(fit.bases, axis=0)
    np.testing.assert_allclose(norms, 1.0, rtol=1e-12)
    assert np.max(np.abs(fit.bases @ fit.activations - product) / product) < FLOAT64_RTOL
    assert fit.objective[-1] == pytest.approx(divergence, rel=FLOAT64_RTOL)


def test_the_comparison_detects_the_update_order(spectrogram, sklearn_iterates):
    """With scikit-learn's roles swapped (the bases updated first) the iterates differ by far more
    than the tolerance: the mapping W = U^T above is the one that matches, and a change of nmfsep's
    update order would fail test_factorize_follows_sklearn_mu_iterates."""
    H0, U0 = _initial_factors(spectrogram, 4)
    for beta in (0.0, 1.0, 2.0):
        W, H, _ = _sklearn_fit(spectrogram, H0.copy(), U0.copy(), beta, 1)
        swapped = W @ H
        matching, _ = sklearn_iterates(beta, 4)[1]
        assert np.max(np.abs(swapped - matching) / matching) > 1e6 * FLOAT64_RTOL


#: float32: reported objective against the divergence of the returned factors recomputed in float64
#: (on the float32 data). Measured <= 5.4e-7 for every beta and kernel once the numpy kernel's sums and
#: the EUC data norm accumulate in float64 (float32 partial sums had left EUC 1.8e-4 and beta 3 1.8e-5 off).
FLOAT32_OBJECTIVE_RTOL = 1e-6


@pytest.mark.parametrize("kernel", ["numba", "numpy"])
@pytest.mark.parametrize("beta", BETAS, ids=BETA_IDS)
def test_float32_engine_stays_close_to_sklearn_float64(beta, kernel, spectrogram, sklearn_iterates):
    """The pipeline's precision: float32 iterates against the float64 ones (float32 rounding only),
    and the reported objective against the divergence of the returned factors."""
    H0, U0 = _initial_factors(spectrogram, 4)
    reference = sklearn_iterates(beta, 4)
    data = spectrogram.astype(np.float32)
    objective_errors = []
    for n in CHECKPOINTS:
        fit = nmfsep.factorize(data, 4, beta=beta, init=(H0, U0), max_iter=n, tol=0, floor=0.0, kernel=kernel)
        assert fit.bases.dtype == np.float32
        product, _ = reference[n]
        model = fit.bases.astype(np.float64) @ fit.activations.astype(np.float64)
        worst = float(np.abs(model - product).max() / product.max())
        assert worst < FLOAT32_PRODUCT_TOL, f"{n} iterations: H U differs by {worst:.2e} x max"
        expected = nmfsep.beta_divergence(data, model, beta)
        objective_errors.append(abs(fit.objective[-1] - expected) / expected)
    assert max(objective_errors) < FLOAT32_OBJECTIVE_RTOL, objective_errors
