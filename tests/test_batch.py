"""Batch runs as scripts use them: exit codes, manifests, parallel = serial, resume after a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import soundfile as sf
from conftest import run_cli

from nmfsep.audio import AUDIO_EXTENSIONS
from nmfsep.errors import ParameterError
from nmfsep.plan import collect_inputs

HERE = Path(__file__).resolve().parent
FAST = ["-m", "2", "--max-iter", "10"]


nmfsep = run_cli


@pytest.fixture
def short_wav(tmp_path, piano_short):
    signal_, rate = piano_short
    path = tmp_path / "short.wav"
    sf.write(path, signal_[: rate * 2], rate, subtype="PCM_16")
    return path


@pytest.fixture
def folder(tmp_path, short_wav):
    """Six good files (two in a sub-folder)."""
    root = tmp_path / "music"
    (root / "sub").mkdir(parents=True)
    data = short_wav.read_bytes()
    for name in ("a", "b", "c", "d"):
        (root / f"{name}.wav").write_bytes(data)
    for name in ("e", "f"):
        (root / "sub" / f"{name}.wav").write_bytes(data)
    return root


def test_the_shell_script(tmp_path, short_wav):
    env = {**os.environ, "NMFSEP": f"{sys.executable} -m nmfsep"}
    result = subprocess.run(
        ["bash", str(HERE / "batch_script.sh"), str(tmp_path / "work"), str(short_wav)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "batch script OK" in result.stdout


def test_collect_inputs_order_dedupe_recursion_and_lists(folder):
    flat = collect_inputs([folder])
    assert [t.path.name for t in flat] == ["a.wav", "b.wav", "c.wav", "d.wav"]
    deep = collect_inputs([folder, folder / "a.wav"], recursive=True)
    assert [t.name for t in deep] == ["a", "b", "c", "d", "sub/e", "sub/f"]  # mirrors the tree
    listed = collect_inputs([], from_list=["# a comment", "", str(folder / "c.wav"), str(folder / "c.wav ")])
    assert [(t.path.name, t.name) for t in listed] == [("c.wav", "c")]
    empty = folder / "empty"
    empty.mkdir()
    with pytest.raises(
        ParameterError, match=r"no audio files in .*empty \(use recursive=True to search sub-folders\)"
    ):
        collect_inputs([empty])
    with pytest.raises(ParameterError, match="no audio files in .*empty or its sub-folders"):
        collect_inputs([empty], recursive=True)
    with pytest.raises(ParameterError, match="no input files"):
        collect_inputs([], from_list=["# nothing"])
    assert ".flac" in AUDIO_EXTENSIONS and ".txt" not in AUDIO_EXTENSIONS


def test_stdin_list_json_lines_and_manifest(tmp_path, folder):
    listing = (
        "\n".join(str(p) for p in sorted(folder.rglob("*.wav"))) + f"\n# done\n{tmp_path / 'nope.wav'}\n"
    )
    result = nmfsep(
        "separate",
        "--from-list",
        "-",
        *FAST,
        "-o",
        tmp_path / "out",
        "--json",
        "--manifest",
        tmp_path / "run.json",
        stdin=listing,
    )
    assert result.returncode == 1
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 7 and {line["status"] for line in lines} == {"done", "failed"}
    manifest = json.loads((tmp_path / "run.json").read_text())
    assert manifest["summary"] == {"done": 6, "skipped": 0, "failed": 1}
    done = [f for f in manifest["files"] if f["status"] == "done"]
    assert all(
        f["sample_rate"] == 22050
        and f["components"] == 2
        and f["iterations"] >= 1
        and f["duration"] == pytest.approx(2.0)
        and len(f["outputs"]) == 2
        and f["seconds"] > 0
        for f in done
    )
    assert "6 done, 0 skipped, 1 failed" in result.stderr


def test_jobs_2_writes_the_same_bytes_as_jobs_1(tmp_path, folder):
    for jobs in (1, 2):
        result = nmfsep("separate", folder, "-r", *FAST, "-o", tmp_path / f"j{jobs}", "--jobs", jobs)
        assert result.returncode == 0, result.stderr
    one = sorted((tmp_path / "j1").rglob("*.wav"))
    two = sorted((tmp_path / "j2").rglob("*.wav"))
    assert len(one) == 12 and [p.relative_to(tmp_path / "j1") for p in one] == [
        p.relative_to(tmp_path / "j2") for p in two
    ]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(one, two, strict=True))


def test_template_collisions_are_usage_errors(tmp_path, folder):
    (folder / "a.flac").write_bytes(b"")  # same track name as a.wav
    result = nmfsep("separate", folder / "a.wav", folder / "a.flac", *FAST, "-o", tmp_path / "out")
    assert result.returncode == 2 and "would both write" in result.stderr
    assert not (tmp_path / "out").exists()
    result = nmfsep(
        "separate", folder, "-r", *FAST, "-o", tmp_path / "out", "--filename", "{component}.{ext}"
    )
    assert result.returncode == 2 and "would both write" in result.stderr


def test_force_and_skip_existing_contradict(tmp_path, folder):
    result = nmfsep("separate", folder, *FAST, "--force", "--skip-existing")
    assert result.returncode == 2 and "contradict" in result.stderr


def _wait_for(condition, timeout=120.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def test_sigkill_then_skip_existing_completes_everything(tmp_path, folder):
    reference = nmfsep("separate", folder, "-r", *FAST, "-o", tmp_path / "ref")
    assert reference.returncode == 0
    out = tmp_path / "out"
    process = subprocess.Popen(
        [sys.executable, "-m", "nmfsep", "separate", str(folder), "-r", *FAST, "-o", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # kill part-way: once the second file has started writing
    assert _wait_for(lambda: (out / "b").exists() or process.poll() is not None)
    process.send_signal(signal.SIGKILL)
    process.wait()
    complete_before = {p: p.stat().st_mtime_ns for p in out.rglob("c2.wav")}
    result = nmfsep(
        "separate", folder, "-r", *FAST, "-o", out, "--skip-existing", "--manifest", tmp_path / "m.json"
    )
    assert result.returncode == 0, result.stderr
    for path in sorted((tmp_path / "ref").rglob("*.wav")):
        assert (out / path.relative_to(tmp_path / "ref")).read_bytes() == path.read_bytes()
    assert not list(out.rglob("*.part"))
    manifest = json.loads((tmp_path / "m.json").read_text())
    skipped = {f["input"] for f in manifest["files"] if f["status"] == "skipped"}
    for path, mtime in complete_before.items():
        c1 = path.with_name("c1.wav")
        if c1.exists():  # a file whose outputs were all complete was not redone
            assert path.stat().st_mtime_ns == mtime
    assert len(skipped) == len([p for p in complete_before if p.with_name("c1.wav").exists()])


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
@pytest.mark.parametrize("jobs", [1, 2])
def test_signals_stop_cleanly_with_a_manifest(tmp_path, folder, signum, code, jobs):
    out = tmp_path / "out"
    manifest = tmp_path / "run.json"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "nmfsep",
            "separate",
            str(folder),
            "-r",
            "-m",
            "2",
            "--max-iter",
            "2000",  # long enough that the signal always lands mid-run
            "--tol",
            "0",
            "-o",
            str(out),
            "--jobs",
            str(jobs),
            "--manifest",
            str(manifest),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert _wait_for(lambda: (out / "a").exists() or process.poll() is not None)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == code, stderr
    assert "Traceback" not in stderr  # (Python 3.11's pool used to print one for cancelled futures)
    document = json.loads(manifest.read_text())
    assert document["interrupted_by"] == signal.Signals(signum).name
    assert len(document["files"]) == 6
    assert not list(out.rglob("*.part"))
    for entry in document["files"]:
        if entry["status"] == "done":
            assert all(Path(p).exists() for p in entry["outputs"])


def test_dask_scheduler(tmp_path, folder):
    distributed = pytest.importorskip("dask.distributed", reason="the dask extra is not installed")
    # the worker runs as threads of this process; TCP on loopback so that the command can reach it
    cluster = distributed.LocalCluster(
        n_workers=1,
        threads_per_worker=1,
        processes=False,
        protocol="tcp",
        host="127.0.0.1",
        dashboard_address=None,
    )
    with cluster:
        result = nmfsep(
            "separate",
            folder,
            "-r",
            *FAST,
            "-o",
            tmp_path / "dask",
            "--scheduler",
            cluster.scheduler_address,
            "--manifest",
            tmp_path / "run.json",
        )
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "run.json").read_text())["summary"]["done"] == 6
    serial = nmfsep("separate", folder, "-r", *FAST, "-o", tmp_path / "serial")
    assert serial.returncode == 0
    for path in sorted((tmp_path / "serial").rglob("*.wav")):
        assert (tmp_path / "dask" / path.relative_to(tmp_path / "serial")).read_bytes() == path.read_bytes()


def test_unreachable_scheduler(tmp_path, folder):
    result = nmfsep("separate", folder, *FAST, "-o", tmp_path / "out", "--scheduler", "tcp://127.0.0.1:9")
    assert result.returncode == 1 and "cannot reach the Dask scheduler" in result.stderr
