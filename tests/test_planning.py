"""What is refused before any work, real music libraries, and --skip-existing that knows the settings.

Every test drives the real CLI in a subprocess, as a shell script would.
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import soundfile as sf
from conftest import run_cli

from nmfsep.errors import NmfsepWarning

FAST = ["--max-iter", "10"]


nmfsep = run_cli


@pytest.fixture
def song(tmp_path, piano_short):
    signal, rate = piano_short
    path = tmp_path / "song.wav"
    sf.write(path, signal[: 2 * rate], rate, subtype="PCM_16")
    return path


def _one_line_error(result, code: int, message: str) -> None:
    assert result.returncode == code, result.stderr
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_unwritable_targets_are_refused_before_any_work(song, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder should be")
    out = tmp_path / "out"
    cases = [
        ["-o", blocker / "out"],
        ["-o", out, "--manifest", blocker / "run.json"],
        ["-o", out, "--save-model", blocker / "{track}.npz"],
    ]
    for args in cases:
        result = nmfsep("separate", song, "-m", "2", *FAST, *args)
        _one_line_error(result, 1, f"cannot write to folder: {blocker} is not a folder")
        assert result.stderr.count("\n") == 1  # no summary line: nothing was analysed
        assert not out.exists()


def test_plot_and_learn_refuse_an_existing_file_before_the_analysis(song, tmp_path):
    figure = tmp_path / "figure.png"
    figure.write_bytes(b"not replaced")
    result = nmfsep("plot", song, "-o", figure, *FAST)
    _one_line_error(result, 1, f"output exists; use --force to overwrite ({figure})")
    assert "analysis" not in result.stderr and figure.read_bytes() == b"not replaced"
    model = tmp_path / "model.npz"
    model.write_bytes(b"kept")
    result = nmfsep("learn", song, "-o", model, *FAST)
    _one_line_error(result, 1, "output exists")
    assert model.read_bytes() == b"kept"


@pytest.mark.parametrize(
    "args, message",
    [
        (["-m", "100000"], "--components 100000 is more than the 1025 frequency bins of --n-fft 2048"),
        (["-m", "2000"], "use at most 1025 components"),
        (["--n-fft", "7"], "too few to separate anything: use --n-fft between 64 and 65536"),
        (["--n-fft", "131072"], "use --n-fft between 64 and 65536"),
        (["--sources", "200"], "--components 1200 is more than the 1025 frequency bins"),
    ],
)
def test_impossible_sizes_are_usage_errors(song, tmp_path, args, message):
    result = nmfsep("separate", song, *args, "-o", tmp_path / "out")
    _one_line_error(result, 2, message)
    assert not (tmp_path / "out").exists()


def test_more_components_than_frames_fails_that_file_only(song, tmp_path, piano_short):
    signal, rate = piano_short
    tiny = tmp_path / "tiny.wav"
    sf.write(tiny, signal[:4096], rate)  # 9 frames at the default hop of 512
    result = nmfsep("separate", tiny, song, "-m", "12", *FAST, "-o", tmp_path / "out")
    assert result.returncode == 1, result.stderr
    assert "--components 12 is more than the 9 STFT frames of this audio: use at most 9" in result.stderr
    assert (tmp_path / "out" / "song" / "c12.wav").exists()
    assert not (tmp_path / "out" / "tiny").exists()


def test_wrong_source_files_say_what_they_are(song, tmp_path):
    model = tmp_path / "song.npz"
    learned = nmfsep("learn", song, "-m", "4", "-o", model, *FAST)
    assert learned.returncode == 0, learned.stderr
    result = nmfsep("separate", song, "--source", model, "-o", tmp_path / "out")
    _one_line_error(result, 2, "one source model and no free components would give one output identical")
    saved = tmp_path / "separation.npz"
    done = nmfsep("separate", song, "-m", "2", *FAST, "--save-model", saved, "-o", tmp_path / "o1")
    assert done.returncode == 0, done.stderr
    result = nmfsep("separate", song, "--source", saved, "--source", model, "-o", tmp_path / "out")
    _one_line_error(result, 1, "this is a separation saved with --save-model, not a source model")
    result = nmfsep("separate", song, "--source", song, "--source", model, "-o", tmp_path / "out")
    _one_line_error(result, 1, "this is an audio file, not a source model: learn one from it with")
    assert not (tmp_path / "out").exists()


def test_a_folder_without_audio_is_a_usage_error(tmp_path, song):
    library = tmp_path / "music"
    (library / "album").mkdir(parents=True)
    (library / "album" / "01.wav").write_bytes(song.read_bytes())
    result = nmfsep("separate", library, "-o", tmp_path / "out")
    _one_line_error(result, 2, f"no audio files in {library} (use --recursive to search sub-folders)")


def test_a_music_library_mirrors_its_tree(tmp_path, song):
    library = tmp_path / "music"
    for album in ("album1", "album2"):
        (library / album).mkdir(parents=True)
        (library / album / "01.wav").write_bytes(song.read_bytes())
    result = nmfsep(
        "separate",
        library,
        "-r",
        "-m",
        "2",
        *FAST,
        "-o",
        tmp_path / "out",
        "--save-model",
        tmp_path / "models" / "{track}.npz",
    )
    assert result.returncode == 0, result.stderr
    for album in ("album1", "album2"):
        assert (tmp_path / "out" / album / "01" / "c2.wav").is_file()
        assert (tmp_path / "models" / album / "01.npz").is_file()
    flat = nmfsep(
        "separate", library, "-r", "-m", "2", "-o", tmp_path / "flat", "--filename", "{index}.{ext}"
    )
    _one_line_error(flat, 2, "would both write")


def test_skip_existing_redoes_outputs_made_with_other_settings(tmp_path, song):
    out = tmp_path / "out" / "song"
    first = nmfsep("separate", song, "-m", "4", *FAST, "-o", tmp_path / "out")
    assert first.returncode == 0, first.stderr
    again = nmfsep("separate", song, "-m", "4", *FAST, "-o", tmp_path / "out", "--skip-existing")
    assert again.returncode == 0 and "skipped, all outputs exist with the same settings" in again.stderr
    before = sf.read(out / "c1.wav")[0]
    other = nmfsep("separate", song, "-m", "2", "-d", "is", *FAST, "-o", tmp_path / "out", "--skip-existing")
    assert other.returncode == 0, other.stderr
    assert "skipped" not in other.stderr and "separated again" in other.stderr
    assert "2 components" in other.stderr
    assert sorted(p.name for p in out.glob("*.wav")) == ["c1.wav", "c2.wav"]  # c3, c4 of -m 4 are gone
    assert not np.array_equal(sf.read(out / "c1.wav")[0], before)
    record = json.loads((out / ".nmfsep.json").read_text())
    assert record["settings"]["n_components"] == 2 and record["settings"]["beta"] == 0.0
    assert record["outputs"] == ["c1.wav", "c2.wav"]  # relative: a copied folder still matches
    # a replaced input is redone too, with the same settings
    os.utime(song, ns=(0, 0))
    touched = nmfsep(
        "separate", song, "-m", "2", "-d", "is", *FAST, "-o", tmp_path / "out", "--skip-existing"
    )
    assert touched.returncode == 0 and "separated again" in touched.stderr


def test_failures_in_workers_carry_their_traceback(tmp_path, song):
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio\n" * 50)
    manifest = tmp_path / "run.json"
    result = nmfsep(
        "separate",
        song,
        bad,
        "-m",
        "2",
        *FAST,
        "-o",
        tmp_path / "out",
        "--jobs",
        "2",
        "--manifest",
        manifest,
        "--debug",
    )
    assert result.returncode == 1
    failed = [f for f in json.loads(manifest.read_text())["files"] if f["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["error_type"] == "AudioError"
    assert failed[0]["traceback"].startswith("Traceback") and "open_stream" in failed[0]["traceback"]
    assert "Traceback (most recent call last)" in result.stderr  # --debug prints the worker's
    assert f"Error: not a readable audio file ({bad})" in result.stderr


def test_skip_existing_matches_copies_and_equivalent_settings_and_deletes_nothing_else(tmp_path, song):
    args = ["-m", "2", "-d", "is", *FAST, "--skip-existing"]
    models = tmp_path / "models" / "{track}.npz"
    first = nmfsep("separate", song, *args, "-o", tmp_path / "a", "--save-model", models)
    assert first.returncode == 0, first.stderr
    # a copy of the output folder is current too, and skipping it touches nothing in the original
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    copied = nmfsep("separate", song, *args, "-o", tmp_path / "b")
    assert "skipped" in copied.stderr, copied.stderr
    assert sorted(p.name for p in (tmp_path / "a" / "song").iterdir()) == [".nmfsep.json", "c1.wav", "c2.wav"]
    # the same settings spelled otherwise, and without the model this time: still current, model kept
    same = nmfsep("separate", song, "-m", "2", "--beta", "0", *FAST, "--skip-existing", "-o", tmp_path / "a")
    assert "skipped" in same.stderr, same.stderr
    assert (tmp_path / "models" / "song.npz").is_file()


def test_a_redo_that_dies_before_its_record_is_redone_again(tmp_path, song, monkeypatch):
    """The old record goes before the new outputs land: a crash in between never leaves new outputs
    under the old settings' record (which --skip-existing would trust)."""
    from nmfsep import files, plan

    out = tmp_path / "out"
    nmfsep_api = dict(out_dir=out, max_iter=10)
    files.separate_file(song, 2, **nmfsep_api)

    def crash(*args, **kwargs):
        raise OSError("killed")

    monkeypatch.setattr(plan, "write_record", crash)
    with pytest.raises(OSError):
        files.separate_file(song, 2, divergence="is", force=True, **nmfsep_api)
    monkeypatch.undo()
    with pytest.warns(NmfsepWarning, match="no record of how they were made"):
        again = files.separate_file(song, 2, skip_existing=True, **nmfsep_api)
    assert not again.skipped


def test_record_and_search_stay_out_of_the_way(tmp_path, song):
    result = nmfsep(
        "separate", song, "-m", "2", *FAST, "-o", tmp_path / "o", "--filename", "{component}/{track}.{ext}"
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == [".song.nmfsep.json", "c1", "c2"]
    # a folder search does not take the last run's outputs (inside the folder) as inputs
    (tmp_path / "in").mkdir()
    shutil.copy(song, tmp_path / "in" / "song.wav")
    for _ in range(2):
        run = nmfsep(
            "separate",
            tmp_path / "in",
            "-r",
            "-m",
            "2",
            *FAST,
            "-o",
            tmp_path / "in" / "separated",
            "--force",
        )
        assert run.returncode == 0, run.stderr
    assert sorted(p.relative_to(tmp_path / "in").as_posix() for p in (tmp_path / "in").rglob("*.wav")) == [
        "separated/song/c1.wav",
        "separated/song/c2.wav",
        "song.wav",
    ]
