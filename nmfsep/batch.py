"""Batch separation: many inputs, parallel workers or a Dask cluster, resumable, with a manifest.

The CLI's ``separate`` command runs every input through :func:`run_batch`. Each file is separated by
:func:`process_file`, which never raises for a bad file: it returns an :class:`Outcome` with status
``done``, ``skipped`` or ``failed`` and the error message, so one bad file never stops the others.

Determinism: the pipeline runs the NMF with one BLAS thread (see :mod:`nmfsep.pipeline`), so output
bytes are the same for any ``jobs``, in-process, in workers or on a cluster.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .atomic import atomic_write
from .errors import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    NmfsepError,
    ParameterError,
    keyword_spelling,
    render,
)
from .interrupts import Interrupted, raise_interrupted
from .plan import Track

DONE, SKIPPED, FAILED = "done", "skipped", "failed"
EXIT_SIGNAL = {signal.SIGINT: EXIT_INTERRUPTED, signal.SIGTERM: 128 + int(signal.SIGTERM)}


@dataclass
class Outcome:
    """What happened to one input (one line of the manifest)."""

    input: str
    status: str
    error: str | None = None
    outputs: list[str] = field(default_factory=list)
    sample_rate: int | None = None
    duration: float | None = None
    components: int | None = None  #: outputs (components or sources)
    iterations: int | None = None
    divergence: float | None = None  #: the final objective (for the spatial model: -log-likelihood)
    model: str | None = None  #: "nmf" (masks of one spectral model) or "spatial" (stereo sources)
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
    error_type: str | None = None  #: the exception's class name, for failures
    traceback: str | None = None  #: the full traceback, for failures (printed by ``--debug``)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def process_file(
    track: Track | str | os.PathLike,
    settings: dict[str, Any],
    callback: Callable | None = None,
    spelling: Callable[[str, str | None], str] = keyword_spelling,
) -> Outcome:
    """Separate one file with :func:`nmfsep.separate_file`; report instead of raising.

    ``settings`` holds the keyword arguments of ``separate_file`` (``n_components``, ``out_dir``,
    ``filename``, ``format``, ``skip_existing``, ...). Errors name options with ``spelling`` (the
    CLI passes its flags). With ``skip_existing`` a file whose every output exists and was
    made with the same settings is skipped; any other is done again (its outputs replaced). A
    failure is recorded with its message, exception type and traceback (the worker's, in a worker).
    """
    from .files import separate_file

    started = time.perf_counter()
    if not isinstance(track, Track):
        track = Track(Path(track), Path(track).stem)
    outcome = Outcome(input=os.fspath(track.path), status=FAILED)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = separate_file(track.path, track=track.name, callback=callback, **settings)
        outcome.outputs = [os.fspath(p) for p in result.outputs]
        outcome.warnings = [
            render(str(w.message), spelling)
            for w in caught
            if not issubclass(w.category, (DeprecationWarning, PendingDeprecationWarning))
        ]
        if result.skipped:
            outcome.status = SKIPPED
            return outcome
        separation = result.separation
        outcome.status = DONE
        outcome.sample_rate = separation.sample_rate
        outcome.duration = separation.settings["n_samples"] / separation.sample_rate
        outcome.components = len(separation.names)
        outcome.iterations = separation.n_iter
        outcome.divergence = float(separation.objective[-1])
        outcome.model = "spatial" if separation.spatial else "nmf"
    except Interrupted:
        raise
    except Exception as exc:  # a bug or a library failure on one file must not stop the batch
        outcome.error = (
            exc.render(spelling)
            if isinstance(exc, NmfsepError)
            else (f"unexpected {type(exc).__name__}: {exc} ({track.path})")
        )
        outcome.error_type = type(exc).__name__
        outcome.traceback = traceback.format_exc()
    finally:
        outcome.seconds = round(time.perf_counter() - started, 3)
    return outcome


_WORKER_LIMITS = None  # keeps the worker's BLAS thread limit alive


def _worker_init(parent: int, blas_threads: int) -> None:
    """Worker processes: BLAS and numba threads limited to their share of the cores; SIGINT is the parent's
    business; SIGTERM aborts cleanly (temp files removed).

    On Linux a worker also gets SIGTERM when the parent dies, even by SIGKILL, so that no orphan
    keeps writing while the user reruns the batch.
    """
    global _WORKER_LIMITS
    from threadpoolctl import threadpool_limits

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, raise_interrupted)
    # N workers x the machine's cores of BLAS threads each would oversubscribe the CPU; the same for
    # the numba kernel's threads (read when numba is first imported; results do not depend on it)
    _WORKER_LIMITS = threadpool_limits(limits=blas_threads)
    os.environ["NUMBA_NUM_THREADS"] = str(blas_threads)
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM))
    if os.getppid() != parent:  # the parent died before prctl took effect
        raise SystemExit(1)


def _iter_in_process(inputs, settings, spelling, callback_for) -> Iterator[Outcome]:
    for track in inputs:
        yield process_file(track, settings, callback_for(track.path), spelling)


def _worker_task(path, settings, spelling) -> Outcome:
    """process_file in a worker; after SIGTERM (its temp files already removed) the worker exits."""
    try:
        return process_file(path, settings, None, spelling)
    except Interrupted:
        os._exit(128 + int(signal.SIGTERM))


def _iter_processes(inputs, settings, spelling, jobs) -> Iterator[Outcome]:
    """Results in completion order from ``jobs`` worker processes (spawned: no inherited BLAS threads)."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    executor = ProcessPoolExecutor(
        max_workers=jobs,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_worker_init,
        initargs=(os.getpid(), max(1, (os.cpu_count() or 1) // jobs)),
    )
    paths = {executor.submit(_worker_task, path, settings, spelling): path for path in inputs}
    pending = set(paths)
    try:
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                try:
                    yield future.result()
                except BrokenProcessPool as exc:  # a worker was killed (out of memory, signal)
                    yield Outcome(
                        input=os.fspath(paths[future]),
                        status=FAILED,
                        error=f"worker process died: {exc}",
                        error_type=type(exc).__name__,
                        traceback=traceback.format_exc(),
                    )
    except BaseException:
        # Stopped: every worker gets SIGTERM, so a running file is aborted (the worker removes its
        # temporary files, then exits) and no queued one starts; one that does not exit within 10 s
        # is killed. Queued futures are not cancelled: Python 3.11's pool then fails them itself, and
        # would raise InvalidStateError (a traceback on stderr) on a cancelled one.
        processes = list(getattr(executor, "_processes", {}).values())
        for process in processes:
            if process.is_alive():
                process.terminate()
        for process in processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
        executor.shutdown(wait=False)
        raise
    executor.shutdown(wait=True)


def _iter_dask(inputs, settings, spelling, address) -> Iterator[Outcome]:
    """Results from an existing Dask distributed cluster (``pip install 'nmfsep[dask]'``)."""
    try:
        from dask.distributed import Client, as_completed
    except ImportError:
        raise ParameterError("a Dask scheduler needs dask.distributed: pip install 'nmfsep[dask]'") from None
    try:
        client = Client(address, timeout="5s")
    except (OSError, TimeoutError, ValueError) as exc:
        raise NmfsepError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
    try:
        futures = [
            client.submit(process_file, track, settings, None, spelling, pure=False) for track in inputs
        ]
        try:
            for future in as_completed(futures):
                yield future.result()
        except BaseException:
            client.cancel(futures)
            raise
    finally:
        client.close()


def run_batch(
    inputs: list[Track],
    settings: dict[str, Any],
    *,
    jobs: int = 1,
    scheduler: str | None = None,
    on_outcome: Callable[[Outcome], None] | None = None,
    callback_for: Callable[[Path], Callable | None] = lambda path: None,
    spelling: Callable[[str, str | None], str] = keyword_spelling,
) -> tuple[list[Outcome], int | None]:
    """Process every input; returns the outcomes in input order and the signal that stopped it, if any.

    SIGINT and SIGTERM stop the batch: queued files are not started, running ones are aborted (their
    temporary files removed) and reported as failed with the error ``interrupted``.
    """
    outcomes: dict[str, Outcome] = {}
    previous = {sig: signal.getsignal(sig) for sig in EXIT_SIGNAL}
    for sig in EXIT_SIGNAL:
        signal.signal(sig, raise_interrupted)
    stopped = None
    try:
        if scheduler:
            stream = _iter_dask(inputs, settings, spelling, scheduler)
        elif jobs > 1 and len(inputs) > 1:
            stream = _iter_processes(inputs, settings, spelling, min(jobs, len(inputs)))
        else:
            stream = _iter_in_process(inputs, settings, spelling, callback_for)
        for outcome in stream:
            outcomes[outcome.input] = outcome
            if on_outcome is not None:
                on_outcome(outcome)
    except Interrupted as exc:
        stopped = exc.signum
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    ordered = []
    for track in inputs:
        key = os.fspath(track.path)
        ordered.append(outcomes.get(key) or Outcome(input=key, status=FAILED, error="interrupted"))
    return ordered, stopped


def report_lines(
    outcome: Outcome, *, quiet: bool = False, debug: bool = False, lossy: bool = False
) -> list[str]:
    """What to tell a user about one finished input (with ``debug``, a failure's traceback first);
    ``lossy`` outputs are said not to sum exactly to the input."""
    if outcome.status == "failed":
        trace = [outcome.traceback.rstrip("\n")] if debug and outcome.traceback else []
        return [*trace, f"Error: {outcome.error}"]
    if quiet:
        return []
    lines = [f"Warning: {message} ({outcome.input})" for message in outcome.warnings]
    if outcome.status == "skipped":
        return [*lines, f"{outcome.input}: skipped, all outputs exist with the same settings"]
    folders = sorted({os.path.dirname(p) for p in outcome.outputs})
    where = folders[0] + os.sep if len(folders) == 1 else f"{len(folders)} folders"
    caveat = " (lossy: the parts no longer sum exactly to the input)" if lossy else ""
    if outcome.model == "spatial":
        noun = "source" if outcome.components == 1 else "sources"
        what = f"{outcome.components} {noun} (spatial model), {outcome.iterations} iterations, objective"
    else:
        what = f"{outcome.components} components, {outcome.iterations} iterations, divergence"
    return [
        *lines,
        f"{outcome.input}: {what} {outcome.divergence:.4g}, {outcome.seconds:.1f} s -> {where}{caveat}",
    ]


def summary_counts(outcomes: list[Outcome]) -> dict[str, int]:
    return {status: sum(o.status == status for o in outcomes) for status in (DONE, SKIPPED, FAILED)}


def write_manifest(
    path: str | os.PathLike, outcomes: list[Outcome], *, argv: list[str], started: float, stopped: int | None
) -> Path:
    """The run's machine-readable record, written atomically (also when files failed or it was stopped)."""
    document = {
        "nmfsep_manifest": 1,
        "command": argv,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "seconds": round(time.time() - started, 3),
        "interrupted_by": signal.Signals(stopped).name if stopped else None,
        "summary": summary_counts(outcomes),
        "files": [outcome.as_dict() for outcome in outcomes],
    }

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(document, handle, indent=1)
            handle.write("\n")

    return atomic_write(path, write, overwrite=True)


def json_line(outcome: Outcome) -> str:
    return json.dumps(outcome.as_dict(), separators=(",", ":"))


def exit_code(outcomes: list[Outcome], stopped: int | None) -> int:
    if stopped is not None:
        return EXIT_SIGNAL.get(stopped, 128 + int(stopped))
    return EXIT_FAILED if any(o.status == FAILED for o in outcomes) else EXIT_OK


__all__ = [
    "Interrupted",
    "Outcome",
    "Track",
    "exit_code",
    "json_line",
    "process_file",
    "report_lines",
    "run_batch",
    "summary_counts",
    "write_manifest",
]

if sys.platform == "win32":  # pragma: no cover - SIGTERM handling differs; the batch still works
    EXIT_SIGNAL.pop(signal.SIGTERM, None)
