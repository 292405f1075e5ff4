"""Exceptions and warnings raised by nmfsep.

Every error a user can cause derives from :class:`NmfsepError` and carries a one-line message that
names the bad value, and, where one is involved, the file (``"audio is empty (song.wav)"``). The
classes also derive from the matching built-in exception, so ``except ValueError`` or
``except OSError`` in a caller's code still catches them.
"""

from __future__ import annotations

import os


class NmfsepError(Exception):
    """Base class of every error nmfsep raises on purpose.

    Parameters
    ----------
    message : str
        What went wrong, one line.
    path : str or os.PathLike, optional
        The file concerned; shown after the message in parentheses.
    """

    def __init__(self, message: str, path: str | os.PathLike | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = None if path is None else os.fspath(path)

    def __str__(self) -> str:
        return self.message if self.path is None else f"{self.message} ({self.path})"


class ParameterError(NmfsepError, ValueError):
    """An option or argument has an invalid value (a usage error: exit code 2 in the CLI)."""


class AudioError(NmfsepError, ValueError):
    """Input audio cannot be used: missing, unreadable, empty, too short, or not finite (exit 1)."""


class OutputError(NmfsepError, OSError):
    """An output cannot be written: it exists already, or its folder is not writable (exit 1)."""


class ModelFileError(NmfsepError, ValueError):
    """A saved model file is missing, damaged or does not fit (exit code 1)."""


class NmfsepWarning(UserWarning):
    """Something the user should know about that did not stop the work (clipping, silence)."""
