"""Named sources: learn -> supervised / semi-supervised / blind separation, model files, eval."""

from __future__ import annotations

import json

import mir_eval
import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner
from conftest import ROOT, SPEECH_SAMPLE

import nmfsep
from nmfsep.cli import main
from nmfsep.scoring import evaluate

DATA = ROOT / "tests" / "data" / "speech_vibraphone"
FAST = ["--max-iter", "30"]


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    for name in ("speech", "vibraphone"):
        result = run("learn", DATA / "train" / f"{name}.wav", "--name", name, "-o", folder / f"{name}.npz")
        assert result.exit_code == 0, result.stderr
    return folder


def _sdr(references, estimates):
    return mir_eval.separation.bss_eval_sources(references, estimates, compute_permutation=False)[0]


def test_learned_model_file(models):
    """learn's defaults (64 bases, ~372 ms frames: 8192 samples at 22.05 kHz) and the separation
    settings it records for separate."""
    model = nmfsep.load_model(models / "speech.npz")
    assert model.bases.shape == (4097, 64) and model.activations is None
    assert model.names == ("speech",) * 64 and model.sample_rate == 22050
    assert model.settings["kind"] == "source" and model.settings["training"] == ["speech.wav"]
    assert model.settings["stft"] == {"n_fft": 8192, "hop_length": 2048, "window": "hann", "center": True}
    assert model.settings["power"] == 1.0 and model.settings["nmf"]["beta"] == 1.0
    assert model.settings["separation"] == {"mask_power": 2.0, "sparsity": 0.0}
    np.testing.assert_allclose(np.linalg.norm(model.bases, axis=0), 1.0, rtol=1e-5)


def test_learn_gives_the_frame_in_seconds(tmp_path):
    """The same ~372 ms at another rate: 16384 samples at 44.1 kHz, 8192 at 16 kHz."""
    samples, rate = sf.read(DATA / "train" / "speech.wav")
    for new_rate, n_fft in ((44100, 16384), (16000, 8192)):
        path = tmp_path / f"speech{new_rate}.wav"
        sf.write(
            path,
            nmfsep.audio.resample(samples[None, : 2 * rate].astype(np.float32), rate, new_rate)[0],
            new_rate,
        )
        model = nmfsep.learn([path], 4, max_iter=5)
        assert model.settings["stft"]["n_fft"] == n_fft, new_rate


def test_separate_uses_the_models_settings(models, tmp_path):
    """No flag after learn gives the bytes (and the settings record) of the settings given explicitly."""
    sources = ["--source", models / "speech.npz", "--source", models / "vibraphone.npz"]
    explicit = "--n-fft 8192 --hop 2048 --window hann --power 1 -d kl --mask-power 2 --sparsity 0".split()
    plain = run("separate", SPEECH_SAMPLE, *sources, "-o", tmp_path / "plain")
    given = run("separate", SPEECH_SAMPLE, *sources, *explicit, "-o", tmp_path / "given")
    assert plain.exit_code == 0 and given.exit_code == 0, (plain.stderr, given.stderr)
    for name in ("speech", "vibraphone"):
        assert (tmp_path / "plain" / "speech_vibraphone" / f"{name}.wav").read_bytes() == (
            tmp_path / "given" / "speech_vibraphone" / f"{name}.wav"
        ).read_bytes()
    records = [
        json.loads((tmp_path / d / "speech_vibraphone" / ".nmfsep.json").read_text())
        for d in ("plain", "given")
    ]
    assert records[0]["settings"] == records[1]["settings"]
    assert records[0]["settings"]["n_fft"] == 8192 and records[0]["settings"]["mask_power"] == 2.0
    again = run("separate", SPEECH_SAMPLE, *sources, *explicit, "--skip-existing", "-o", tmp_path / "plain")
    assert again.exit_code == 0 and "skipped" in again.stderr, again.stderr
    # the Python API alike; mask power and sparsity given explicitly override the models'
    signal, rate = sf.read(SPEECH_SAMPLE, dtype="float32")
    short = signal[: 3 * rate]
    paths = [models / "speech.npz", models / "vibraphone.npz"]
    result = nmfsep.separate(short, rate, sources=paths, max_iter=20)
    assert result.settings["stft"]["n_fft"] == 8192 and result.settings["mask_power"] == 2.0
    assert result.settings["nmf"]["sparsity"] == 0.0
    result = nmfsep.separate(short, rate, sources=paths, max_iter=20, mask_power=1, sparsity=0.5)
    assert result.settings["mask_power"] == 1.0 and result.settings["nmf"]["sparsity"] == 0.5


def test_a_model_file_from_before_the_separation_settings_still_loads(models, tmp_path):
    """Without "separation" in its settings a model stands for the defaults of that time: mask
    power 1, sparsity 0 (its STFT, power and divergence were always recorded)."""
    old = {}
    for name in ("speech", "vibraphone"):
        arrays = dict(np.load(models / f"{name}.npz", allow_pickle=False))
        settings = json.loads(str(arrays["settings"]))
        del settings["separation"]
        arrays["settings"] = np.array(json.dumps(settings, sort_keys=True))
        old[name] = tmp_path / f"{name}.npz"
        np.savez(old[name], **arrays)
    signal, rate = sf.read(SPEECH_SAMPLE, dtype="float32")
    result = nmfsep.separate(signal[: 3 * rate], rate, sources=list(old.values()), max_iter=20)
    assert result.settings["mask_power"] == 1.0 and result.settings["nmf"]["sparsity"] == 0.0
    assert result.settings["stft"]["n_fft"] == 8192  # the STFT it was learned with
    result = run(
        "separate", SPEECH_SAMPLE, "--source", old["speech"], "--free", 2, *FAST, "-o", tmp_path / "o"
    )
    assert result.exit_code == 0, result.stderr


def test_supervised_separation_recovers_each_source(models, tmp_path):
    """Documented floor (README): speech >= 3 dB, vibraphone >= 7.5 dB SDR with the defaults (measured 4.4, 9.5)."""
    result = run(
        "separate",
        SPEECH_SAMPLE,
        "--source",
        models / "speech.npz",
        "--source",
        models / "vibraphone.npz",
        "-o",
        tmp_path,
    )
    assert result.exit_code == 0, result.stderr
    folder = tmp_path / "speech_vibraphone"
    assert sorted(p.name for p in folder.glob("*.wav")) == ["speech.wav", "vibraphone.wav"]
    references = np.stack([sf.read(DATA / "sources" / f"{n}.wav")[0] for n in ("speech", "vibraphone")])
    estimates = np.stack([sf.read(folder / f"{n}.wav")[0] for n in ("speech", "vibraphone")])
    sdr = _sdr(references, estimates)
    assert sdr[0] >= 3.0 and sdr[1] >= 7.5, sdr
    mix = sf.read(SPEECH_SAMPLE)[0]
    assert np.abs(estimates.sum(axis=0) - mix).max() <= 2 / 32768 + 1e-9  # two PCM_16 outputs


@pytest.mark.parametrize("route", ["supervised", "semi", "blind"])
def test_named_outputs_sum_to_the_input(models, route, stereo_short):
    signal, rate = stereo_short
    kwargs = {
        "supervised": {"sources": [models / "speech.npz", models / "vibraphone.npz"]},
        "semi": {"sources": [models / "speech.npz"], "free": 3, "rest_name": "music"},
        "blind": {"n_components": 8, "n_sources": 2},
    }[route]
    result = nmfsep.separate(signal, rate, max_iter=30, **kwargs)
    expected = {"supervised": ("speech", "vibraphone"), "semi": ("speech", "music"), "blind": ("s1", "s2")}
    assert result.names == expected[route]
    assert result.components.shape == (2,) + signal.shape
    residual = np.abs(result.components.sum(axis=0) - signal).max(axis=1)
    assert np.all(residual < 1e-4 * np.abs(signal).max(axis=1))
    assert sorted(j for group in result.component_groups for j in group) == list(range(result.bases.shape[1]))


def test_saved_model_round_trip(tmp_path, piano_short):
    signal, rate = piano_short
    result = nmfsep.separate(signal, rate, 3, max_iter=10)
    nmfsep.save_model(tmp_path / "m.npz", result.model())
    loaded = nmfsep.load_model(tmp_path / "m.npz")
    np.testing.assert_array_equal(loaded.bases, result.bases)
    np.testing.assert_array_equal(loaded.activations, result.activations)
    assert loaded.names == result.names and loaded.settings == json.loads(json.dumps(result.settings))


def _bad_models(folder, good):
    data = good.read_bytes()
    (folder / "truncated.npz").write_bytes(data[: len(data) // 2])
    (folder / "text.npz").write_text("hello")
    arrays = dict(np.load(good, allow_pickle=False))
    np.savez(folder / "version.npz", **{**arrays, "version": np.array(99)})
    np.savez(folder / "shape.npz", **{**arrays, "bases": np.ones((1025, 3))})  # 3 bases, 16 names
    np.savez(folder / "pickled.npz", **{**arrays, "settings": np.array([{"a": 1}], dtype=object)})
    return {
        "truncated.npz": "not a readable model file",
        "text.npz": "not a readable model file",
        "version.npz": "version 99 is not supported",
        "shape.npz": "3 bases",
        "pickled.npz": "not a readable model file",
    }


def test_bad_model_files_exit_1_with_a_message(models, tmp_path):
    for name, message in _bad_models(tmp_path, models / "speech.npz").items():
        result = run("separate", SPEECH_SAMPLE, "--source", tmp_path / name, "-o", tmp_path / "out")
        assert result.exit_code == 1, name
        assert message in result.stderr and result.stderr.count("\n") == 1, (name, result.stderr)
    assert not (tmp_path / "out").exists()


def test_mismatched_settings_are_caught(models, tmp_path):
    """A flag that contradicts the models' STFT, power or divergence names both values (exit 1)."""
    both = ["--source", models / "speech.npz", "--source", models / "vibraphone.npz"]
    result = run("separate", SPEECH_SAMPLE, *both, "--n-fft", "1024", "-o", tmp_path)
    assert result.exit_code == 1 and result.stderr.count("\n") == 1, result.stderr
    assert "the source models were learned with --n-fft 8192, this run asks for --n-fft 1024" in result.stderr
    result = run(
        "separate", SPEECH_SAMPLE, "--source", models / "speech.npz", "--free", 2, "-d", "is", "-o", tmp_path
    )
    assert result.exit_code == 1 and "speech.npz" in result.stderr
    assert "model was learned with --divergence kl, this run asks for --divergence is" in result.stderr
    for flag, value in (("--hop", "512"), ("--window", "hamming"), ("--power", "2")):
        result = run("separate", SPEECH_SAMPLE, *both, flag, value, "-o", tmp_path)
        assert result.exit_code == 1 and f"this run asks for {flag} {value}" in result.stderr, result.stderr
    assert not list(tmp_path.glob("*/*.wav"))


def test_models_that_disagree_are_an_error(models, tmp_path):
    clip = DATA / "train" / "vibraphone.wav"
    for name, flags in (("small", ["--n-fft", "2048"]), ("soft", ["--mask-power", "1"])):
        result = run(
            "learn", clip, "--name", "vibraphone", "-m", 4, *FAST, *flags, "-o", tmp_path / f"{name}.npz"
        )
        assert result.exit_code == 0, result.stderr
    speech = ["--source", models / "speech.npz"]
    result = run("separate", SPEECH_SAMPLE, *speech, "--source", tmp_path / "small.npz", "-o", tmp_path / "a")
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert "the source models disagree: speech.npz has --n-fft 8192, small.npz --n-fft 2048" in result.stderr
    result = run("separate", SPEECH_SAMPLE, *speech, "--source", tmp_path / "soft.npz", "-o", tmp_path / "b")
    assert result.exit_code == 1
    assert "has --mask-power 2, soft.npz --mask-power 1: give --mask-power to choose" in result.stderr
    # a mask power given settles it
    soft = ["--source", tmp_path / "soft.npz", "--mask-power", 1, *FAST]
    assert run("separate", SPEECH_SAMPLE, *speech, *soft, "-o", tmp_path / "c").exit_code == 0
    result = run(
        "separate",
        SPEECH_SAMPLE,
        "--source",
        models / "speech.npz",
        "--source",
        models / "speech.npz",
        "-o",
        tmp_path,
    )
    assert result.exit_code == 1 and "two sources are named 'speech'" in result.stderr


def test_usage_errors(models, tmp_path):
    assert run("separate", SPEECH_SAMPLE, "--free", "2", "-o", tmp_path).exit_code == 2
    result = run(
        "separate", SPEECH_SAMPLE, "--source", models / "speech.npz", "--sources", "2", "-o", tmp_path
    )
    assert result.exit_code == 2 and "do not go together" in result.stderr
    assert run("separate", SPEECH_SAMPLE, "-m", "2", "--sources", "3", "-o", tmp_path).exit_code == 2
    assert run("learn", SPEECH_SAMPLE, "-o", tmp_path / "model.txt").exit_code == 2


def test_eval_is_mir_eval(tmp_path, rng):
    references = rng.standard_normal((2, 8000))
    estimates = references[::-1] + 0.3 * rng.standard_normal((2, 8000))  # swapped order
    for folder, signals, names in (("ref", references, ("a", "b")), ("est", estimates, ("x", "y"))):
        (tmp_path / folder).mkdir()
        for name, signal in zip(names, signals, strict=True):
            sf.write(tmp_path / folder / f"{name}.wav", signal / 10, 8000, subtype="FLOAT")
    scores = evaluate(tmp_path / "ref", tmp_path / "est", permute=True)
    sdr, sir, sar, perm = mir_eval.separation.bss_eval_sources(references / 10, estimates / 10)
    np.testing.assert_allclose(scores.sdr, sdr, rtol=1e-5)
    np.testing.assert_allclose(scores.sar, sar, rtol=1e-5)
    assert scores.estimates == ("y.wav", "x.wav") and list(perm) == [1, 0]
    result = run(
        "eval", "--reference", tmp_path / "ref", "--estimate", tmp_path / "est", "--permute", "--json"
    )
    assert result.exit_code == 0
    assert json.loads(result.stdout)["mean"]["sdr"] == pytest.approx(float(np.mean(sdr)), rel=1e-5)
    # by name: x/y do not match a/b
    result = run("eval", "--reference", tmp_path / "ref", "--estimate", tmp_path / "est")
    assert result.exit_code == 2 and "no estimate named a, b" in result.stderr
    # a sample-rate mismatch is an error
    sf.write(tmp_path / "est" / "x.wav", estimates[0] / 10, 16000, subtype="FLOAT")
    result = run("eval", "--reference", tmp_path / "ref", "--estimate", tmp_path / "est", "--permute")
    assert result.exit_code == 1 and "differs from" in result.stderr


def test_eval_matches_files_by_name(tmp_path, rng):
    references = rng.standard_normal((2, 4000))
    for folder in ("ref", "est"):
        (tmp_path / folder).mkdir()
    for name, signal in zip(("voice", "piano"), references, strict=True):
        sf.write(tmp_path / "ref" / f"{name}.wav", signal / 10, 8000, subtype="FLOAT")
        sf.write(
            tmp_path / "est" / f"{name}.wav",
            (signal + 0.1 * rng.standard_normal(4000)) / 10,
            8000,
            subtype="FLOAT",
        )
    result = run("eval", "--reference", tmp_path / "ref", "--estimate", tmp_path / "est")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[1].startswith("piano") and "piano.wav" in lines[1] and lines[-1].startswith("mean")


def test_review_regressions(models, tmp_path):
    # models at another sample rate: refused unless --sr asks for a resampled copy
    low = tmp_path / "speech16k.wav"
    samples, rate = sf.read(DATA / "train" / "speech.wav")
    sf.write(low, samples[::2], rate // 2)
    assert run("learn", low, "--name", "speech", "-o", tmp_path / "low.npz").exit_code == 0
    result = run(
        "separate", SPEECH_SAMPLE, "--source", tmp_path / "low.npz", "--free", "2", "-o", tmp_path / "a"
    )
    assert result.exit_code == 1 and "pass --sr 11025" in result.stderr
    result = run(
        "separate",
        SPEECH_SAMPLE,
        "--source",
        tmp_path / "low.npz",
        "--free",
        "2",
        "--sr",
        "22050",
        "-o",
        tmp_path / "b",
    )
    assert result.exit_code == 2 and "differs from the models' sample rate" in result.stderr
    # eval: silent estimates, missing folders, infinite SIR in JSON
    silent = tmp_path / "silent"
    silent.mkdir()
    for name in ("speech", "vibraphone"):
        sf.write(silent / f"{name}.wav", np.zeros(264600), 22050)
    result = run("eval", "--reference", DATA / "sources", "--estimate", silent)
    assert result.exit_code == 1 and "silent signal" in result.stderr and "Traceback" not in result.stderr
    result = run("eval", "--reference", DATA / "sources", "--estimate", tmp_path / "nope")
    assert result.exit_code == 1 and "no such file or folder" in result.stderr
    result = run(
        "eval",
        "--reference",
        DATA / "sources" / "speech.wav",
        "--estimate",
        DATA / "sources" / "speech.wav",
        "--json",
    )
    assert result.exit_code == 0 and json.loads(result.stdout)["sources"][0]["sir"] is None
    result = run(
        "separate",
        SPEECH_SAMPLE,
        "--source",
        models / "speech.npz",
        "--free",
        "2",
        "--rest-name",
        "speech",
        "-o",
        tmp_path / "c",
    )
    assert result.exit_code == 1 and "--rest-name speech is also a source's name" in result.stderr
