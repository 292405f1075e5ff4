"""The command line, through click's CliRunner and through real subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner
from conftest import run_cli

import nmfsep
from nmfsep.cli import main

FAST = ["--max-iter", "20"]


@pytest.fixture
def song(tmp_path, piano_short):
    signal, rate = piano_short
    path = tmp_path / "song.wav"
    sf.write(path, signal, rate, subtype="PCM_16")
    return path


def run(*args, cwd=None):
    """Invoke the CLI in-process with separate stdout/stderr."""
    runner = CliRunner()
    if cwd is None:
        return runner.invoke(main, [str(a) for a in args])
    old = os.getcwd()
    os.chdir(cwd)
    try:
        return runner.invoke(main, [str(a) for a in args])
    finally:
        os.chdir(old)


def test_help_and_version():
    result = run("--help")
    assert result.exit_code == 0 and "separate" in result.output
    result = run("separate", "--help")
    for option in (
        "--components",
        "--divergence",
        "--beta",
        "--n-fft",
        "--hop",
        "--power",
        "--mask-power",
        "--max-iter",
        "--tol",
        "--n-init",
        "--init",
        "--seed",
        "--sparsity",
        "--sr",
        "--out",
        "--filename",
        "--format",
        "--subtype",
        "--save-model",
        "--force",
        "--quiet",
        "--debug",
    ):
        assert option in result.output, option
    result = run("--version")
    assert result.exit_code == 0 and nmfsep.__version__ in result.output


def test_default_outputs_are_named_and_sum_to_input(song, tmp_path):
    result = run("separate", song, "-m", "3", *FAST, cwd=tmp_path)
    assert result.exit_code == 0, result.stderr
    folder = tmp_path / "separated" / "song"
    # the components, and the hidden record of what made them (for --skip-existing)
    assert sorted(p.name for p in folder.iterdir()) == [".nmfsep.json", "c1.wav", "c2.wav", "c3.wav"]
    signal, _ = sf.read(song)
    total = sum(sf.read(folder / f"c{j}.wav")[0] for j in (1, 2, 3))
    assert np.abs(total - signal).max() <= 3 / 32768 + 1e-9  # PCM_16 quantisation of 3 outputs
    assert "3 components" in result.stderr and "iterations" in result.stderr
    assert result.stdout == ""  # messages go to stderr


def test_existing_outputs_need_force(song, tmp_path):
    assert run("separate", song, "-m", "2", "-o", tmp_path / "o", *FAST).exit_code == 0
    target = tmp_path / "o" / "song" / "c1.wav"
    before = target.stat().st_mtime_ns
    result = run("separate", song, "-m", "2", "-o", tmp_path / "o", *FAST)
    assert result.exit_code == 1
    assert result.stderr.strip() == f"Error: output exists; use --force to overwrite ({target})"
    assert target.stat().st_mtime_ns == before
    result = run("separate", song, "-m", "2", "-o", tmp_path / "o", "--force", *FAST)
    assert result.exit_code == 0 and target.stat().st_mtime_ns != before


def test_templates_formats_and_subtypes(song, tmp_path):
    result = run(
        "separate",
        song,
        "-m",
        "2",
        "-o",
        tmp_path,
        "--filename",
        "{track}-{index}-{component}.{ext}",
        "--format",
        "flac",
        "--subtype",
        "PCM_24",
        *FAST,
    )
    assert result.exit_code == 0, result.stderr
    for index in (1, 2):
        info = sf.info(tmp_path / f"song-{index}-c{index}.flac")
        assert (info.format, info.subtype, info.samplerate) == ("FLAC", "PCM_24", 22050)
    result = run("separate", song, "-m", "2", "-o", tmp_path, "--format", "wav", "--subtype", "FLOAT", *FAST)
    assert result.exit_code == 0
    assert sf.info(tmp_path / "song" / "c1.wav").subtype == "FLOAT"
    result = run("separate", song, "-m", "2", "-o", tmp_path / "ogg", "--format", "ogg", *FAST)
    assert result.exit_code == 0
    assert sf.info(tmp_path / "ogg" / "song" / "c2.ogg").subtype == "VORBIS"


def test_save_model(song, tmp_path):
    result = run("separate", song, "-m", "2", "-o", tmp_path, "--save-model", tmp_path / "{track}.npz", *FAST)
    assert result.exit_code == 0
    model = nmfsep.load_model(tmp_path / "song.npz")
    assert model.bases.shape == (1025, 2) and model.activations.shape[0] == 2


def test_same_seed_same_bytes(song, tmp_path):
    for name in ("a", "b"):
        assert (
            run(
                "separate", song, "-m", "2", "-o", tmp_path / name, "--init", "random", "--seed", "3", *FAST
            ).exit_code
            == 0
        )
    for component in ("c1.wav", "c2.wav"):
        assert (tmp_path / "a" / "song" / component).read_bytes() == (
            tmp_path / "b" / "song" / component
        ).read_bytes()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-m", "0"], "0 is not in the range x>=1"),
        (["-m", "-1"], "-1 is not in the range x>=1"),
        (["--hop", "4096"], "--hop 4096 must not exceed --n-fft 2048"),
        (["--n-fft", "512", "--hop", "1024"], "--hop 1024 must not exceed --n-fft 512"),
        (["-d", "frobenius"], "'frobenius' is not one of"),
        (["--filename", "{track}/{stem}.{ext}"], "unknown placeholder {stem}"),
        (["--filename", "{track}.wav"], "needs {component} or {index}"),
        (["--filename", "{track"], "bad template --filename {track"),
        (["--format", "flac", "--subtype", "FLOAT"], "not available for flac"),
        (["--power", "0"], "0.0 is not in the range x>0"),
        (["--seed", "-1"], "-1 is not in the range x>=0"),
    ],
)
def test_usage_errors_exit_2_before_any_work(song, tmp_path, args, message):
    result = run("separate", song, *args, "-o", tmp_path / "out")
    assert result.exit_code == 2
    assert message in result.stderr
    assert not (tmp_path / "out").exists()


def test_processing_errors_exit_1_with_one_line(tmp_path, piano_short):
    signal, rate = piano_short
    cases = {
        "missing.wav": ("no such file", None),
        "text.wav": ("not a readable audio file", lambda p: p.write_text("hello\n" * 100)),
        "empty.wav": ("file is empty", lambda p: p.write_bytes(b"")),
        "zero.wav": ("audio is empty (0 samples)", lambda p: sf.write(p, np.zeros(0), rate)),
        "tiny.wav": ("audio is shorter than one STFT frame", lambda p: sf.write(p, signal[:1000], rate)),
        "nan.wav": (
            "audio contains NaN or infinite samples",
            lambda p: sf.write(p, np.r_[signal[:5000], np.nan], rate, subtype="FLOAT"),
        ),
    }
    for name, (message, make) in cases.items():
        path = tmp_path / name
        if make:
            make(path)
        result = run("separate", path, "-o", tmp_path / "out", *FAST)
        assert result.exit_code == 1, name
        assert result.stderr.startswith(f"Error: {message}"), result.stderr
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
        assert f"({path})" in result.stderr


def test_unwritable_output_folder(song, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder should be")
    result = run("separate", song, "-o", blocker / "out", "-m", "2", *FAST)
    assert result.exit_code == 1 and "cannot write to folder" in result.stderr


def test_silent_input_is_not_an_error(tmp_path):
    path = tmp_path / "silence.wav"
    sf.write(path, np.zeros(22050), 22050)
    result = run("separate", path, "-o", tmp_path, "-m", "2", *FAST)
    assert result.exit_code == 0
    assert "Warning: audio is silent" in result.stderr
    assert np.all(sf.read(tmp_path / "silence" / "c1.wav")[0] == 0)


def test_clipping_is_reported(tmp_path, piano_short):
    signal, rate = piano_short
    path = tmp_path / "loud.wav"
    sf.write(path, 4 * signal, rate, subtype="FLOAT")  # peaks near 3.6: the components clip in PCM_16
    result = run("separate", path, "-o", tmp_path, "-m", "2", "--subtype", "PCM_16", *FAST)
    assert result.exit_code == 0
    assert "exceeds full scale, clipped in PCM_16" in result.stderr


def test_one_bad_file_does_not_stop_the_others(song, tmp_path):
    result = run("separate", tmp_path / "missing.wav", song, "-o", tmp_path / "out", "-m", "2", *FAST)
    assert result.exit_code == 1
    assert (tmp_path / "out" / "song" / "c2.wav").exists()
    assert "1 done, 0 skipped, 1 failed" in result.stderr


def test_quiet_prints_only_errors(song, tmp_path):
    result = run("separate", song, "-o", tmp_path, "-m", "2", "-q", *FAST)
    assert result.exit_code == 0 and result.stderr == "" and result.stdout == ""


_subprocess = run_cli


def test_real_subprocess_exit_codes_and_outputs(song, tmp_path):
    ok = _subprocess("separate", song, "-m", "2", *FAST, cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "separated" / "song" / "c2.wav").exists()
    usage = _subprocess("separate", song, "-m", "0", cwd=tmp_path)
    assert usage.returncode == 2 and "Usage:" in usage.stderr
    missing = _subprocess("separate", tmp_path / "nope.wav", cwd=tmp_path)
    assert missing.returncode == 1
    assert missing.stderr == f"Error: no such file ({tmp_path / 'nope.wav'})\n"
    debug = _subprocess("separate", tmp_path / "nope.wav", "--debug", cwd=tmp_path)
    assert debug.returncode == 1 and "Traceback" in debug.stderr
    version = _subprocess("--version", cwd=tmp_path)
    assert version.returncode == 0 and nmfsep.__version__ in version.stdout


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "nmfsep"
    assert script.exists()
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "separate" in result.stdout


def test_stereo_file_components_sum_back_per_channel(tmp_path, stereo_short):
    signal, rate = stereo_short
    path = tmp_path / "stereo.wav"
    sf.write(path, signal.T, rate, subtype="PCM_24")
    result = run("separate", path, "-m", "3", "-o", tmp_path, *FAST)
    assert result.exit_code == 0, result.stderr
    parts = [sf.read(tmp_path / "stereo" / f"c{j}.wav", always_2d=True) for j in (1, 2, 3)]
    assert all(rate_ == rate and data.shape == (signal.shape[1], 2) for data, rate_ in parts)
    assert {sf.info(tmp_path / "stereo" / f"c{j}.wav").subtype for j in (1, 2, 3)} == {"PCM_24"}
    original = sf.read(path, always_2d=True)[0]
    residual = np.abs(sum(data for data, _ in parts) - original).max(axis=0)
    assert np.all(residual <= 3 * 2**-23 + 1e-6)  # 3 outputs x PCM_24 quantisation, per channel


def test_multichannel_file_keeps_its_channels(tmp_path, rng):
    path = tmp_path / "four.wav"
    sf.write(path, 0.2 * rng.standard_normal((8000, 4)), 8000, subtype="FLOAT")
    result = run("separate", path, "-m", "2", "-o", tmp_path, "--n-fft", "512", *FAST)
    assert result.exit_code == 0, result.stderr
    assert sf.info(tmp_path / "four" / "c1.wav").channels == 4


@pytest.mark.parametrize(
    "template", ["{track}/{component:d}.{ext}", "{track}/{index!x}.{ext}", "{track}/{}.{ext}"]
)
def test_bad_format_specs_in_templates_are_usage_errors(song, tmp_path, template):
    result = run("separate", song, "--filename", template, "-o", tmp_path / "out")
    assert result.exit_code == 2 and "--filename" in result.stderr


def test_two_inputs_writing_the_same_file_is_a_usage_error(tmp_path, piano_short):
    signal, rate = piano_short
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        sf.write(tmp_path / folder / "s.wav", signal, rate)
    result = run("separate", tmp_path / "a" / "s.wav", tmp_path / "b" / "s.wav", "-o", tmp_path / "out", "-f")
    assert result.exit_code == 2 and "would both write" in result.stderr
    assert not (tmp_path / "out").exists()
    # the same path twice is one input, not a collision
    result = run(
        "separate", tmp_path / "a" / "s.wav", tmp_path / "a" / "s.wav", "-o", tmp_path / "out", *FAST
    )
    assert result.exit_code == 0, result.stderr


def test_outputs_the_format_cannot_hold_fail_before_the_work(tmp_path, rng):
    path = tmp_path / "nine.wav"
    sf.write(path, 0.1 * rng.standard_normal((8000, 9)), 8000)
    result = run("separate", path, "-m", "2", "--format", "flac", "-o", tmp_path / "out")
    assert result.exit_code == 1
    assert "cannot write flac PCM_16 with 9 channel(s) at 8000 Hz" in result.stderr
    assert not (tmp_path / "out").exists()


def test_a_directory_in_the_way_of_an_output(song, tmp_path):
    (tmp_path / "models" / "song").mkdir(parents=True)
    result = run(
        "separate", song, "-m", "2", "-o", tmp_path, "--save-model", tmp_path / "models" / "{track}", "-f"
    )
    assert result.exit_code == 1 and "output path is a directory" in result.stderr
    assert not (tmp_path / "song").exists()  # refused before any work


@pytest.mark.parametrize("args", [["--beta", "-10"], ["--power", "50"], ["--beta", "15"]])
def test_extreme_settings_never_write_nan(song, tmp_path, args):
    result = run("separate", song, "-m", "2", "-o", tmp_path, *args, *FAST)
    if result.exit_code == 0:
        for j in (1, 2):
            assert np.all(np.isfinite(sf.read(tmp_path / "song" / f"c{j}.wav")[0]))
    else:
        assert result.exit_code == 1 and "overflowed" in result.stderr and "Traceback" not in result.stderr
