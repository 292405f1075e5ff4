"""nmfsep plot: every view and format reads back at the requested size, not blank, from a model too."""

from __future__ import annotations

import subprocess
import sys

import matplotlib.image
import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

import nmfsep
from nmfsep.cli import main
from nmfsep.plot import Style, draw, figure_format

FAST = ["--max-iter", "15"]


@pytest.fixture
def song(tmp_path, piano_short):
    signal, rate = piano_short
    path = tmp_path / "song.wav"
    sf.write(path, signal, rate)
    return path


@pytest.fixture
def speech(tmp_path, stereo_short):
    signal, rate = stereo_short
    path = tmp_path / "speech.wav"
    sf.write(path, signal[1], rate)
    return path


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _png(path):
    return matplotlib.image.imread(path)


@pytest.mark.parametrize("what", ["overview", "components", "spectrogram", "bases", "activations"])
def test_every_view_writes_a_png_of_the_requested_size(song, tmp_path, what):
    target = tmp_path / f"{what}.png"
    result = run("plot", song, "-m", "3", "--what", what, "-o", target, "--size", "6x4", "--dpi", "50", *FAST)
    assert result.exit_code == 0, result.stderr
    image = _png(target)
    assert image.shape[:2] == (200, 300)  # 4 x 50 rows, 6 x 50 columns
    assert image[..., :3].std() > 0.05, "blank figure"
    assert f"{what} -> {target}" in result.stderr and "drawing" in result.stderr


@pytest.mark.parametrize(("suffix", "header"), [(".pdf", b"%PDF-"), (".svg", b"<?xml"), (".png", b"\x89PNG")])
def test_formats_from_the_suffix(song, tmp_path, suffix, header):
    target = tmp_path / f"figure{suffix}"
    result = run("plot", song, "-m", "2", "-o", target, *FAST)
    assert result.exit_code == 0, result.stderr
    content = target.read_bytes()
    assert content.startswith(header)
    if suffix == ".svg":
        assert b"<svg" in content[:2000] and b'width="864pt"' in content[:2000]  # 12 in x 72 pt
    if suffix == ".pdf":
        assert b"/MediaBox [ 0 0 864 648 ]" in content  # 12 x 9 in


def test_the_spectrogram_panel_shows_the_input(song, speech, tmp_path):
    images = []
    for path in (song, speech):
        target = tmp_path / f"{path.stem}.png"
        assert run("plot", path, "--spectrogram-only", "-o", target).exit_code == 0
        images.append(_png(target))
    assert images[0].shape == images[1].shape
    assert np.abs(images[0] - images[1]).mean() > 0.01


def test_a_saved_model_draws_the_same_figure_as_a_fresh_fit(song, tmp_path):
    assert (
        run(
            "separate",
            song,
            "-m",
            "3",
            "-o",
            tmp_path / "sep",
            "--save-model",
            tmp_path / "m.npz",
            "--seed",
            "4",
            *FAST,
        ).exit_code
        == 0
    )
    fresh, saved = tmp_path / "fresh.png", tmp_path / "saved.png"
    assert run("plot", song, "-m", "3", "--seed", "4", "-o", fresh, *FAST).exit_code == 0
    result = run("plot", song, "--model", tmp_path / "m.npz", "-o", saved)
    assert result.exit_code == 0, result.stderr
    np.testing.assert_array_equal(_png(fresh), _png(saved))
    # the model alone (no audio): drawn from H and U
    alone = tmp_path / "alone.png"
    result = run("plot", tmp_path / "m.npz", "-o", alone)
    assert result.exit_code == 0, result.stderr
    assert _png(alone).shape == _png(fresh).shape


def test_separate_plot_writes_the_overview_beside_the_components(song, tmp_path):
    result = run("separate", song, "-m", "2", "-o", tmp_path, "--plot", *FAST)
    assert result.exit_code == 0, result.stderr
    assert _png(tmp_path / "song" / "overview.png").shape[:2] == (900, 1200)


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["-o", "{tmp}/x.jpg"], 2, "cannot tell the figure format"),
        (["-o", "{tmp}/x"], 2, "cannot tell the figure format"),
        (["--size", "12by8"], 2, "is not WIDTHxHEIGHT"),
        (["--cmap", "nope"], 2, "is not a matplotlib colour map"),
        (["--what", "waveform"], 2, "'waveform' is not one of"),
        (["--db-range", "0"], 2, "0.0 is not in the range"),
    ],
)
def test_usage_errors(song, tmp_path, args, code, message):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    result = run("plot", song, *args)
    assert result.exit_code == code and message in result.stderr


def test_processing_errors(song, tmp_path, rng):
    missing = run("plot", tmp_path / "missing.wav", "-o", tmp_path / "a.png")
    assert missing.exit_code == 1 and "Error: no such file" in missing.stderr
    bad_model = tmp_path / "bad.npz"
    bad_model.write_bytes(b"not a zip file")
    result = run("plot", bad_model, "-o", tmp_path / "b.png")
    assert result.exit_code == 1 and "not a readable model file" in result.stderr
    # a model of another input does not fit this one
    other = tmp_path / "other.wav"
    sf.write(other, 0.1 * rng.standard_normal(30000), 22050)
    assert (
        run(
            "separate", other, "-m", "2", "-o", tmp_path / "sep", "--save-model", tmp_path / "o.npz", *FAST
        ).exit_code
        == 0
    )
    result = run("plot", song, "--model", tmp_path / "o.npz", "-o", tmp_path / "c.png")
    assert result.exit_code == 1 and "model does not fit the input" in result.stderr
    assert not (tmp_path / "c.png").exists()
    # unwritable output, and an existing figure without --force
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    result = run("plot", song, "--spectrogram-only", "-o", blocker / "d.png")
    assert result.exit_code == 1 and "cannot write to folder" in result.stderr
    target = tmp_path / "e.png"
    assert run("plot", song, "--spectrogram-only", "-o", target).exit_code == 0
    again = run("plot", song, "--spectrogram-only", "-o", target)
    assert again.exit_code == 1 and "output exists" in again.stderr


def test_library_api(piano_short, tmp_path):
    signal, rate = piano_short
    data = nmfsep.plot_data(signal, rate, 3, max_iter=10)
    assert data.bases.shape[1] == 3 and data.spectrogram.shape == (1025, data.activations.shape[1])
    figure = draw(data, "components", Style(freq_scale="mel", size=(5, 4), dpi=40))
    assert len([ax for ax in figure.axes if ax.get_visible()]) == 4  # three panels and a colour bar
    path = nmfsep.save_figure(figure, tmp_path / "c.svg")
    assert path.read_bytes().startswith(b"<?xml")
    assert figure_format("X.PNG") == "png"


def test_matplotlib_is_a_core_dependency():
    """`pip install nmfsep` alone must give a working `nmfsep plot` (read from the installed metadata)."""
    from importlib.metadata import requires

    core = [r for r in requires("nmfsep") if "extra ==" not in r]
    assert any(r.replace(" ", "").startswith("matplotlib") for r in core), core


def test_drawing_leaves_the_users_backend_and_pyplot_alone(tmp_path):
    """No pyplot, no matplotlib.use: a notebook keeps its backend; pyplot's own figures still close."""
    script = """
import sys
import matplotlib
import numpy as np
matplotlib.use("svg")
from nmfsep.plot import VIEWS, PlotData, Style, draw, save_figure
rng = np.random.default_rng(0)
data = PlotData(22050, 64, 16, rng.random((33, 40)), rng.random((33, 3)), rng.random((3, 40)),
                ("c1", "c2", "c3"), np.array([3.0, 2.0, 1.5]))
for view in VIEWS:
    for suffix in ("png", "pdf", "svg"):
        save_figure(draw(data, view, Style(dpi=30, size=(4, 3))), f"{sys.argv[1]}/{view}.{suffix}")
assert matplotlib.get_backend() == "svg", matplotlib.get_backend()
assert "matplotlib.pyplot" not in sys.modules
import matplotlib.pyplot as plt
figure = plt.figure()
save_figure(figure, sys.argv[1] + "/pyplot.png")
assert plt.get_fignums() == [], plt.get_fignums()
print("ok")
"""
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
    assert len(list(tmp_path.iterdir())) == 16
    assert _png(tmp_path / "overview.png").shape[:2] == (300, 400)  # save_figure: 100 dpi
