"""Exceptions and warnings raised by nmfsep.

Every error a user can cause derives from :class:`NmfsepError` and carries a one-line message that
names the bad value, and, where one is involved, the file (``"audio is empty (song.wav)"``). The
classes also derive from the matching built-in exception, so ``except ValueError`` or
``except OSError`` in a caller's code still catches them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable

#: Exit codes of the CLI: all done; some input failed (the others were processed); a usage error
#: (nothing started); interrupted by SIGINT (SIGTERM: 143, i.e. 128 + the signal number).
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

#: An option named in a message, ``[[name=value]]`` or ``[[name]]``: the library spells it as a
#: keyword argument (``n_fft=7``), the CLI as its flag (``--n-fft 7``); see :meth:`NmfsepError.render`.
_OPTION = re.compile(r"\[\[(\w+)(?:=(.*?))?\]\]")


def keyword_spelling(name: str, value: str | None) -> str:
    """How the Python API names an option in a message: ``name=value`` (or ``name``)."""
    return name if value is None else f"{name}={value}"


def render(text: str, spell: Callable[[str, str | None], str] = keyword_spelling) -> str:
    """A message (of an error or a warning) with every ``[[name=value]]`` spelled by ``spell``."""
    return _OPTION.sub(lambda match: spell(match.group(1), match.group(2)), text)


class NmfsepError(Exception):
    """Base class of every error nmfsep raises on purpose.

    Parameters
    ----------
    message : str
        What went wrong, one line. Options are written ``[[name=value]]`` (or ``[[name]]``) with
        the keyword names of the Python API: ``str(error)`` shows ``name=value``, and the CLI shows
        its flag instead (``--name value``), so each reader sees the spelling they typed.
    path : str or os.PathLike, optional
        The file concerned; shown after the message in parentheses.
    """

    def __init__(self, message: str, path: str | os.PathLike | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = None if path is None else os.fspath(path)

    @property
    def options(self) -> tuple[str, ...]:
        """The keyword names of the options the message mentions."""
        return tuple(match.group(1) for match in _OPTION.finditer(self.message))

    def render(self, spell: Callable[[str, str | None], str] = keyword_spelling) -> str:
        """The message with every option spelled by ``spell(name, value)``, and the file."""
        text = render(self.message, spell)
        return text if self.path is None else f"{text} ({self.path})"

    def __str__(self) -> str:
        return self.render()


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
