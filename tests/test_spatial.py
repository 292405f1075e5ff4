"""The spatial model (multichannel NMF) and the stereo route of ``--sources``.

Mixtures are made here from the shipped sources: the three piano pitches of ``hotcrossbuns``
(one instrument, so only where they sit tells them apart) panned left, centre and right with the
constant-power law, and the speech/vibraphone pair panned apart.
"""

from __future__ import annotations

import json
import warnings

import mir_eval
import numpy as np
import pytest
import soundfile as sf
from conftest import SAMPLE_SOURCES, run_cli

import nmfsep
from nmfsep.errors import NmfsepWarning
from nmfsep.nmf import spatial
from nmfsep.nmf.backend import numba_status

PANS = (-0.6, 0.0, 0.6)
PITCHES = ("F4", "G4", "A4")
FAST_STFT = nmfsep.STFTSettings(n_fft=1024, hop_length=256)


def pan(signal: np.ndarray, position: float) -> np.ndarray:
    """Constant-power pan: -1 hard left .. +1 hard right, (2, T)."""
    angle = (position + 1) * np.pi / 4
    return np.stack([np.cos(angle) * signal, np.sin(angle) * signal]).astype(np.float32)


@pytest.fixture(scope="module")
def panned_trio() -> tuple[np.ndarray, np.ndarray, int]:
    """The first 4 s of the three pitches panned apart: (images [3, 2, T], mix [2, T], rate)."""
    sources = []
    for name in PITCHES:
        samples, rate = sf.read(SAMPLE_SOURCES / f"{name}.wav", dtype="float32")
        sources.append(samples[: 4 * rate])
    images = np.stack([pan(source, position) for source, position in zip(sources, PANS, strict=True)])
    return images, images.sum(axis=0), rate


@pytest.fixture(scope="module")
def trio_stft(panned_trio) -> np.ndarray:
    return nmfsep.stft(panned_trio[1], FAST_STFT)


def kernels() -> list[str]:
    return ["numpy"] + (["numba"] if numba_status() is None else [])


def downmix_sdr(references: np.ndarray, estimates: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        sdr, _, _, permutation = mir_eval.separation.bss_eval_sources(
            references.mean(axis=1).astype(np.float64), estimates.mean(axis=1).astype(np.float64)
        )
    return sdr, permutation


# ----------------------------------------------------------------------------------------- engine


@pytest.mark.parametrize("kernel", kernels())
def test_every_update_lowers_the_objective(trio_stft, kernel):
    """Sawada et al.'s MM updates: D never increases, after the bases, activations or covariances."""
    model = spatial.fit_spatial(
        trio_stft.astype(np.complex128),  # float64 throughout (the kernels compiled by make install)
        3,
        4,
        max_iter=12,
        tol=0,
        dtype=np.float64,
        kernel=kernel,
        record_steps=True,
    )
    steps = np.array(model.steps)
    assert len(steps) == 3 * 12 + 1
    rises = np.diff(steps)
    assert np.all(rises <= 1e-10 * np.abs(steps[1:])), rises.max()
    assert steps[-1] < steps[0] - 0.1 * abs(steps[0])  # and it does fit


def test_monotone_in_float32_and_from_a_random_start(trio_stft):
    """The default precision and a start far from the answer (random clusters) also descend."""
    labels = np.random.default_rng(3).integers(0, 3, size=trio_stft.shape[1:]).astype(np.int8)
    model = spatial.fit_spatial(trio_stft, 3, 4, max_iter=15, tol=0, init=labels, record_steps=True)
    steps = np.array(model.steps)
    assert np.all(np.diff(steps) <= 1e-5 * np.abs(steps[1:]))


def test_three_channels_use_the_general_path():
    rng = np.random.default_rng(0)
    sources = rng.standard_normal((3, 8000)).astype(np.float32) * np.array([[1.0], [0.5], [0.2]])
    mixing = np.array([[1.0, 0.2, 0.1], [0.3, 1.0, 0.2], [0.1, 0.4, 1.0]], dtype=np.float32)
    X = nmfsep.stft(mixing @ sources, FAST_STFT)
    model = spatial.fit_spatial(X, 3, 2, max_iter=8, tol=0, dtype=np.float64, record_steps=True)
    assert np.all(np.diff(model.steps) <= 1e-10 * np.abs(model.steps[1:]))
    images = model.images(X)
    assert images.shape == (3,) + X.shape
    assert np.abs(images.sum(axis=0) - X).max() < 1e-4 * np.abs(X).max()


@pytest.mark.skipif(numba_status() is not None, reason="numba is not usable here")
def test_numba_kernel_matches_numpy(rng):
    J, K, B = 3, 17, 40
    X = (rng.standard_normal((2, K, B)) + 1j * rng.standard_normal((2, K, B))).astype(np.complex64)
    P = rng.gamma(0.5, size=(J, K, B)).astype(np.float32)
    vectors = rng.standard_normal((J, K, 2, 2)) + 1j * rng.standard_normal((J, K, 2, 2))
    R = vectors @ np.conj(np.swapaxes(vectors, -1, -2))
    R /= np.trace(R, axis1=2, axis2=3).real[..., None, None]
    results = []
    for use_numba in (False, True):
        terms = spatial._Terms(J, K, 2, np.float32, use_numba)
        terms.set_covariances(R)
        terms.reset(want_sums=True)
        A, Bt = terms(X, P, 1e-3)
        results.append((A, Bt, terms.objective(), *terms.spatial_sums()))
        images = spatial._images(X, P, R, 1e-3, use_numba)
        assert np.abs(images.sum(axis=0) - X).max() < 1e-4 * np.abs(X).max()
    for ours, reference in zip(results[1], results[0], strict=True):
        np.testing.assert_allclose(ours, reference, rtol=2e-4, atol=1e-6 * np.abs(reference).max())


@pytest.mark.parametrize("C", [2, 3])
def test_geometric_mean_solves_the_riccati_equation(rng, C):
    def positive(n):
        vectors = rng.standard_normal((n, C, C)) + 1j * rng.standard_normal((n, C, C))
        return vectors @ np.conj(np.swapaxes(vectors, -1, -2)) + 0.1 * np.eye(C)

    G, B = positive(5), positive(5)
    R = spatial.geometric_mean_solution(G, B)
    np.testing.assert_allclose(R @ G @ R, B, rtol=1e-8, atol=1e-9)
    assert np.all(np.linalg.eigvalsh(R) > 0)


def test_images_add_up_to_the_mixture_and_keep_their_place(panned_trio, trio_stft):
    images, mix, rate = panned_trio
    model = spatial.fit_spatial(trio_stft, 3, 4, max_iter=20, tol=0)
    estimated = model.images(trio_stft)
    assert np.abs(estimated.sum(axis=0) - trio_stft).max() < 1e-5 * np.abs(trio_stft).max()
    # clusters start left to right and the fit keeps them there: each covariance's pan is its source's
    expected = [np.cos(np.pi * (p + 1) / 2) * -1 for p in PANS]  # (gR^2 - gL^2)
    np.testing.assert_allclose(np.sort(model.mean_pan()), expected, atol=0.05)


# ----------------------------------------------------------------------------------------- route


def test_stereo_sources_separate_one_instrument_by_position(panned_trio):
    """Three notes of one piano: the mono route cannot tell them apart as well as their positions."""
    images, mix, rate = panned_trio
    result = nmfsep.separate(mix, rate, n_sources=3)
    assert result.names == ("s1", "s2", "s3")
    assert result.components.shape == images.shape
    assert result.spatial and result.covariances.shape == (3, 1025, 2, 2)
    assert np.abs(result.components.sum(axis=0) - mix).max() < 1e-4 * np.abs(mix).max()
    sdr, permutation = downmix_sdr(images, result.components)
    assert list(permutation) == [0, 1, 2]  # s1 is the leftmost
    assert sdr.min() > 25, sdr
    mono = nmfsep.separate(mix, rate, n_sources=3, mono=True)
    assert not mono.spatial and "spatial" not in mono.settings
    mono_sdr, _ = downmix_sdr(images, mono.components)
    assert sdr.mean() > mono_sdr.mean() + 5, (sdr, mono_sdr)
    # each output keeps its source's place: its left/right balance is the source's
    for estimate, reference in zip(result.components, images, strict=True):
        balance = np.sum(estimate**2, axis=1)
        np.testing.assert_allclose(
            balance / balance.sum(), np.sum(reference**2, axis=1) / np.sum(reference**2), atol=0.02
        )


def test_speech_and_vibraphone_in_stereo():
    speech, rate = sf.read(
        SAMPLE_SOURCES.parent / "speech_vibraphone" / "sources" / "speech.wav", dtype="float32"
    )
    vibraphone, _ = sf.read(
        SAMPLE_SOURCES.parent / "speech_vibraphone" / "sources" / "vibraphone.wav", dtype="float32"
    )
    n = 5 * rate
    images = np.stack([pan(speech[:n], -0.3), pan(vibraphone[:n], 0.5)])
    mix = images.sum(axis=0)
    result = nmfsep.separate(mix, rate, n_sources=2)
    sdr, permutation = downmix_sdr(images, result.components)
    assert list(permutation) == [0, 1] and sdr.min() > 15, sdr


def test_mono_input_keeps_the_grouping_route(piano):
    samples, rate = piano
    result = nmfsep.separate(samples[: 3 * rate], rate, n_sources=2, max_iter=20)
    assert not result.spatial and result.components.shape[:2] == (2, 1)


def test_silent_stereo_input_gives_silent_sources_and_a_warning():
    with pytest.warns(NmfsepWarning, match="silent"):
        result = nmfsep.separate(np.zeros((2, 22050), np.float32), 22050, n_sources=2)
    assert result.components.shape == (2, 2, 22050) and not np.any(result.components)


def test_streamed_and_memory_mapped_file_equal_the_in_memory_separation(tmp_path, panned_trio):
    images, mix, rate = panned_trio
    path = tmp_path / "trio.wav"
    sf.write(path, mix.T, rate, subtype="FLOAT")
    in_memory = nmfsep.separate(mix, rate, n_sources=3, max_iter=15)
    result = nmfsep.separate_file(
        path,
        n_sources=3,
        max_iter=15,
        out_dir=tmp_path / "out",
        max_memory="1K",
        save_model_to=tmp_path / "m.npz",
    )
    for j, output in enumerate(result.outputs):
        written, _ = sf.read(output, dtype="float32", always_2d=True)
        np.testing.assert_array_equal(written.T, in_memory.components[j])
    model = nmfsep.load_model(tmp_path / "m.npz")
    np.testing.assert_array_equal(model.covariances, in_memory.covariances)
    assert model.settings["spatial"]["components_per_source"] == 6


def test_cli_stereo_sources_and_mono(tmp_path, panned_trio):
    images, mix, rate = panned_trio
    path = tmp_path / "trio.wav"
    sf.write(path, mix.T, rate)
    run = run_cli("separate", path, "--sources", "3", "-o", tmp_path / "out", "--json", "-q")
    assert run.returncode == 0, run.stderr
    for name in ("s1", "s2", "s3"):
        info = sf.info(tmp_path / "out" / "trio" / f"{name}.wav")
        assert info.channels == 2
    run = run_cli("separate", path, "--sources", "3", "--mono", "-o", tmp_path / "mono", "-q")
    assert run.returncode == 0, run.stderr
    record = json.loads((tmp_path / "mono" / "trio" / ".nmfsep.json").read_text())
    assert record["settings"]["mono"] is True


def test_eval_scores_stereo_images_and_their_downmix(tmp_path, rng):
    """bss_eval_images of the images and bss_eval_sources of the channel means, one matching."""
    references = rng.standard_normal((2, 2, 6000)) / 10
    estimates = references[::-1] + 0.03 * rng.standard_normal((2, 2, 6000))  # swapped order
    for folder, signals, names in (("ref", references, ("a", "b")), ("est", estimates, ("x", "y"))):
        (tmp_path / folder).mkdir()
        for name, signal in zip(names, signals, strict=True):
            sf.write(tmp_path / folder / f"{name}.wav", signal.T, 8000, subtype="FLOAT")
    scores = nmfsep.evaluate(tmp_path / "ref", tmp_path / "est", permute=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        images = mir_eval.separation.bss_eval_images(
            references.transpose(0, 2, 1), estimates.transpose(0, 2, 1)
        )
        downmix = mir_eval.separation.bss_eval_sources(references.mean(axis=1), estimates.mean(axis=1))
    assert scores.estimates == ("y.wav", "x.wav")
    np.testing.assert_allclose(scores.sdr, images[0], rtol=1e-5)
    np.testing.assert_allclose(scores.downmix.sdr, downmix[0], rtol=1e-5)
    np.testing.assert_allclose(scores.downmix.sar, downmix[2], rtol=1e-5)
    run = run_cli(
        "eval", "--reference", tmp_path / "ref", "--estimate", tmp_path / "est", "--permute", "--json"
    )
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["mean"]["downmix"]["sdr"] == pytest.approx(float(np.mean(downmix[0])), rel=1e-5)
    table = run_cli(
        "eval", "--reference", tmp_path / "ref", "--estimate", tmp_path / "est", "--permute"
    ).stdout
    assert "images" in table.splitlines()[0] and "downmix" in table.splitlines()[0]


def test_plot_shows_where_each_source_sits(tmp_path, panned_trio):
    images, mix, rate = panned_trio
    separation = nmfsep.separate(mix, rate, n_sources=3, max_iter=15)
    nmfsep.save_model(tmp_path / "trio.npz", separation.model())
    data = nmfsep.plot_data(tmp_path / "trio.npz")
    assert data.pans.shape == (3, 1025) and data.pan_weights.shape == (3, 1025)
    # the pan view's mean places are the sources' (left, centre, right)
    means = np.sum(data.pans * data.pan_weights, axis=1) / data.pan_weights.sum(axis=1)
    np.testing.assert_allclose(means, [-0.81, 0.0, 0.81], atol=0.05)
    figure = nmfsep.plot.draw(data, "overview")
    titles = [ax.get_title(loc="left") for ax in figure.axes]
    assert "Where each source sits" in titles
    sf.write(tmp_path / "trio.wav", mix.T, rate)
    run = run_cli(
        "plot", tmp_path / "trio.wav", "--model", tmp_path / "trio.npz", "-o", tmp_path / "trio.png"
    )
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "trio.png").stat().st_size > 10_000


def test_audio_shorter_than_the_default_frame_uses_a_shorter_one(rng):
    noise = (0.1 * rng.standard_normal((2, 3000))).astype(np.float32)
    result = nmfsep.separate(noise, 44100, n_sources=2, max_iter=5)
    assert result.settings["stft"]["n_fft"] == 2048 and result.components.shape == (2, 2, 3000)
    long = nmfsep.separate(np.tile(noise, 3), 44100, n_sources=2, max_iter=5)
    assert long.settings["stft"]["n_fft"] == 4096  # ~93 ms at 44.1 kHz


def test_identical_channels_fall_back_to_the_mono_route(panned_trio):
    """A mono recording saved as stereo has no spatial cue: the grouping route, with a warning."""
    images, mix, rate = panned_trio
    mono = mix.sum(axis=0)
    with pytest.warns(NmfsepWarning, match="identical"):
        result = nmfsep.separate(np.stack([mono, 0.5 * mono]), rate, n_sources=3, max_iter=20)
    assert not result.spatial and result.components.shape == (3, 2, mono.shape[0])
    assert all(np.any(component) for component in result.components)


def test_kernel_on_blocks_of_frames_and_near_singular_models(rng):
    """The fit passes views of X (blocks of frames); sources panned to one point make X^ near singular."""
    J, K, B = 2, 9, 30
    full = (rng.standard_normal((2, K, 3 * B)) + 1j * rng.standard_normal((2, K, 3 * B))).astype(np.complex64)
    X = full[:, :, B : 2 * B]
    direction = np.array([0.8, 0.6])
    R = np.empty((J, K, 2, 2), complex)
    R[0] = np.outer(direction, direction)
    R[1] = np.outer(direction, direction) + 1e-7 * np.eye(2)  # both at one place: X^ ~ rank one
    R /= np.trace(R, axis1=2, axis2=3).real[..., None, None]
    P = rng.gamma(0.5, size=(J, K, B)).astype(np.float32) * 1e4
    kernels_used = [False] + ([True] if numba_status() is None else [])
    results = []
    for use_numba in kernels_used:
        terms = spatial._Terms(J, K, 2, np.float32, use_numba)
        terms.set_covariances(R)
        terms.reset(want_sums=True)
        results.append((*terms(X, P, 1e-3), terms.objective()))
        images = spatial._images(np.ascontiguousarray(X), P, R, 1e-3, use_numba)
        assert np.all(np.isfinite(images))
        assert np.abs(images.sum(axis=0) - X).max() < 1e-4 * np.abs(X).max()
    assert all(np.all(np.isfinite(value)) for value in results[0])
    for ours, reference in zip(results[-1], results[0], strict=True):
        # condition ~1e7: the small terms (across the common direction) agree to ~1e-3 relative
        np.testing.assert_allclose(ours, reference, rtol=1e-2, atol=1e-5 * np.abs(reference).max())


def test_geometric_mean_of_a_rank_one_and_a_singular_case():
    G = np.array([[[2.0, 0.5], [0.5, 1.0]]], dtype=complex)
    v = np.array([0.6, 0.8j])
    B = np.outer(v, np.conj(v))[None]  # rank one: a source at one place
    R = spatial.geometric_mean_solution(G, B)
    np.testing.assert_allclose(R @ G @ R, B, atol=1e-12)
    # G singular where a source has no spectrum: no solution, R = 0 (the caller keeps the old one)
    assert not np.any(spatial.geometric_mean_solution(np.zeros((1, 2, 2), complex), B))


def test_plot_data_of_stereo_audio_with_sources(panned_trio):
    images, mix, rate = panned_trio
    data = nmfsep.plot_data(mix, rate, n_sources=3, max_iter=10)
    assert data.spectrogram.shape == (data.bases.shape[0], data.activations.shape[1])
    assert data.pans.shape == (3, data.bases.shape[0])


def test_records_tell_the_spatial_stft_apart(tmp_path, panned_trio):
    """--skip-existing: another --hop is another separation on the spatial route."""
    images, mix, rate = panned_trio
    path = tmp_path / "trio.wav"
    sf.write(path, mix.T, rate)
    out = tmp_path / "out"
    first = nmfsep.separate_file(path, n_sources=3, max_iter=5, out_dir=out)
    again = nmfsep.separate_file(path, n_sources=3, max_iter=5, out_dir=out, skip_existing=True)
    assert again.skipped
    with pytest.warns(NmfsepWarning, match="other settings"):
        other = nmfsep.separate_file(
            path, n_sources=3, max_iter=5, out_dir=out, skip_existing=True, hop_length=256
        )
    assert not other.skipped and first.outputs == other.outputs
