"""Atomic file writes: a temporary file in the target folder, renamed into place when complete.

A reader never sees a partial file, an interrupted run leaves none behind (SIGINT/SIGTERM are raised
as :class:`nmfsep.interrupts.Interrupted` and unwind through here), and an existing file is never
replaced without ``overwrite``.
"""

from __future__ import annotations

import glob
import os
import secrets
from collections.abc import Callable
from pathlib import Path

from .errors import OutputError
from .interrupts import held

#: Exclusive creation of a new file, never through a symbolic link, not inherited by child processes.
_CREATE_FLAGS = (
    os.O_RDWR
    | os.O_CREAT
    | os.O_EXCL
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)
_NAME_ATTEMPTS = 100  #: random names tried before giving up (a clash is already ~1 in 4 billion)


def prepare_target(path: Path, overwrite: bool) -> None:
    """Refuse a directory or (without ``overwrite``) an existing file; make the folder; clean up."""
    if path.is_dir():
        raise OutputError("output path is a directory", path)
    if path.exists() and not overwrite:
        raise OutputError("output exists; use [[force=True]] to overwrite", path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # temporary files of this output left by a killed run (SIGKILL cannot clean up)
        for stale in path.parent.glob(f".{glob.escape(path.name)}.*.part"):
            stale.unlink(missing_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot write to folder: {exc.strerror or exc}", path.parent) from exc


def temporary(path: Path, created: list[str]) -> str:
    """A new empty temporary file next to ``path`` (``.name.XXXXXXXX.part``), also appended to
    ``created`` before a deferred SIGINT/SIGTERM is raised, so that the caller can always remove it.

    Created with mode 0o666, so the system applies the umask (and any default ACL of the folder):
    the output gets the permissions of any new file. ``tempfile.mkstemp`` creates 0600 files, and
    the mode to give them instead would need the umask, which can only be read by setting it
    (``os.umask``), a change of the whole process that other threads would see.
    """
    with held():  # a SIGINT/SIGTERM between creating the file and knowing its name is raised after
        for _ in range(_NAME_ATTEMPTS):
            # secrets, not random: the caller's random state is left alone
            tmp = os.path.abspath(path.parent / f".{path.name}.{secrets.token_hex(4)}.part")
            try:
                fd = os.open(tmp, _CREATE_FLAGS, 0o666)
            except FileExistsError:
                continue
            except OSError as exc:
                raise OutputError(f"cannot write to folder: {exc.strerror or exc}", path.parent) from exc
            os.close(fd)
            created.append(tmp)  # inside held(): an interrupt at its end must not lose the name
            return tmp
        raise OutputError("cannot write to folder: no free temporary name", path.parent)


def commit(tmp: str, path: Path, overwrite: bool) -> None:
    """Move a finished temporary file into place (never replacing a file without ``overwrite``)."""
    if overwrite:
        os.replace(tmp, path)
    else:
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise OutputError("output exists; use [[force=True]] to overwrite", path) from None
        finally:
            os.unlink(tmp)


def atomic_write(path: str | os.PathLike, write: Callable[[str], None], *, overwrite: bool = False) -> Path:
    """Create ``path`` through a temporary file in the same folder, then rename it into place.

    A reader never sees a partial file and an interrupted run leaves none behind. Without
    ``overwrite`` an existing file is never replaced (the final step is a hard link, which fails if
    the name has appeared meanwhile).

    Parameters
    ----------
    path : str or os.PathLike
        Final name. Missing parent folders are created.
    write : callable
        ``write(temporary_path)`` writes the whole content.
    overwrite : bool

    Raises
    ------
    OutputError
        The file exists (and not ``overwrite``) or the folder cannot be written.
    """
    path = Path(path)
    prepare_target(path, overwrite)
    created: list[str] = []
    try:
        tmp = temporary(path, created)
        write(tmp)
        commit(tmp, path, overwrite)
    except BaseException:
        for tmp in created:
            if os.path.exists(tmp):
                os.unlink(tmp)
        raise
    return path
