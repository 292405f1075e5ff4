"""SIGINT/SIGTERM as an exception, held off during the few steps that must not be cut in two.

The batch runner installs :func:`raise_interrupted` as the handler of SIGINT and SIGTERM, so that a
signal unwinds the running file like an exception (temporary files removed by ``atomic_write``).
Python runs signal handlers in the main thread between two bytecodes, which can be inside
creating a temporary file after it exists but before its name is recorded; :func:`held` defers the
exception to the end of such a step. Blocking the signal with ``pthread_sigmask`` is not enough: any
other thread (BLAS, FFT) may take it and Python still runs the handler in the main thread.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_depth = 0
_pending: int | None = None


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived; raised in the main thread (and in batch workers on SIGTERM)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def raise_interrupted(signum, frame) -> None:
    """Signal handler: raise :class:`Interrupted`, or remember it while a step is :func:`held`."""
    global _pending
    if _depth:
        _pending = signum
        return
    raise Interrupted(signum)


@contextmanager
def held() -> Iterator[None]:
    """Defer an :class:`Interrupted` raised by :func:`raise_interrupted` to the end of the block."""
    global _depth, _pending
    if threading.current_thread() is not threading.main_thread():
        yield  # handlers only ever run in the main thread
        return
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0 and _pending is not None:
            signum, _pending = _pending, None
            raise Interrupted(signum)
