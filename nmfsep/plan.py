"""Planning a run before any audio is touched: inputs and their track names, writable folders,
and the settings record that lets ``skip_existing`` tell current outputs from stale ones.

Everything here is cheap (file names, headers, one temporary file per folder), so the CLI can
refuse a run that cannot succeed in well under a second, before the first file is analysed.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import OutputError, ParameterError

#: File extensions taken from folders (case-insensitive); files named explicitly are always tried.
AUDIO_EXTENSIONS = frozenset(
    ".wav .wave .flac .ogg .oga .opus .mp3 .aif .aiff .aifc .au .snd .caf .w64 .rf64 .m4a .wma".split()
)

#: Version of the settings record's layout.
RECORD_VERSION = 1


@dataclass(frozen=True)
class Track:
    """One input file and its track name (the ``{track}`` of output templates).

    Attributes
    ----------
    path : Path
        The audio file, as found.
    name : str
        The file name without its extension for files given by name or in a list; for files found
        in a folder, their path relative to that folder without the extension, with ``/`` between
        parts (``album1/01`` for ``music/album1/01.wav`` under ``music/``), so outputs mirror the
        input tree and two albums' ``01.wav`` do not collide.
    """

    path: Path
    name: str

    def __fspath__(self) -> str:
        return os.fspath(self.path)


def collect_inputs(
    paths: Iterable[str | os.PathLike], *, recursive: bool = False, from_list: Iterable[str] = ()
) -> list[Track]:
    """Expand the command line into the list of input tracks: deduplicated, in a stable order.

    Files are kept as given (a missing file is kept too, and fails on its own). Folders contribute
    their audio files (by extension, sorted; sub-folders only with ``recursive``), named by their
    path relative to the folder (see :class:`Track`). ``from_list`` lines are paths; blank lines and
    lines starting with ``#`` are ignored.

    Raises
    ------
    ParameterError
        A folder without audio files (where it would search), or nothing at all to process.
    """
    listed = [line.strip() for line in from_list]
    candidates = [Path(p) for p in paths] + [
        Path(line) for line in listed if line and not line.startswith("#")
    ]
    found: list[Track] = []
    for candidate in candidates:
        if not candidate.is_dir():
            found.append(Track(candidate, candidate.stem))
            continue
        pattern = "**/*" if recursive else "*"
        audio = sorted(
            p for p in candidate.glob(pattern) if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS
        )
        if not audio:
            where = "or its sub-folders" if recursive else "(use -r to search sub-folders)"
            raise ParameterError(f"no audio files in {candidate} {where}")
        found.extend(Track(p, p.relative_to(candidate).with_suffix("").as_posix()) for p in audio)
    unique: dict[str, Track] = {}
    for track in found:
        unique.setdefault(os.path.normpath(os.path.abspath(track.path)), track)
    if not unique:
        raise ParameterError(
            "no input files (folders are searched for audio by extension; use -r to recurse)"
        )
    return list(unique.values())


def check_folders_writable(folders: Iterable[str | os.PathLike]) -> None:
    """Fail now if files cannot be created in one of ``folders`` (created later where missing).

    For each folder, its nearest existing ancestor must be a folder in which a file can be created:
    a real temporary file is made and removed (once per ancestor), which also catches read-only
    file systems and, unlike ``os.access``, does not trust permission bits that root ignores.

    Raises
    ------
    OutputError
        Naming the first folder that cannot be written and the reason.
    """
    checked: set[Path] = set()
    for folder in map(Path, folders):
        existing = folder
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if existing in checked:
            continue
        if not existing.is_dir():
            raise OutputError(f"cannot write to folder: {existing} is not a folder", folder)
        try:
            with tempfile.TemporaryFile(dir=existing, prefix=".nmfsep-check."):
                pass
        except OSError as exc:
            raise OutputError(f"cannot write to folder: {exc.strerror or exc}", folder) from None
        checked.add(existing)


def record_path(out_dir: str | os.PathLike, filename: str, track: str) -> Path:
    """Where the settings record of ``track`` lives: beside its outputs, hidden.

    ``.nmfsep.json`` in the track's own folder when the template gives each track one
    (``{track}/{component}.{ext}``), else ``.TRACK.nmfsep.json`` in the outputs' folder.
    """
    folder = Path(filename).parent
    if "{track}" in str(folder):
        return Path(out_dir) / str(folder).replace("{track}", track) / ".nmfsep.json"
    track_path = Path(out_dir) / folder / track
    return track_path.parent / f".{track_path.name}.nmfsep.json"


def file_identity(path: str | os.PathLike) -> dict[str, Any]:
    """Size and modification time of a file: enough to notice that an input was replaced."""
    stat = os.stat(path)
    return {"path": os.path.abspath(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def settings_record(input_path: str | os.PathLike, settings: dict[str, Any], outputs: list[Path]) -> dict:
    """What a track's outputs were made from: the input file, every setting, the output files."""
    from . import __version__

    return json.loads(
        json.dumps(
            {
                "nmfsep_record": RECORD_VERSION,
                "nmfsep_version": __version__,
                "input": file_identity(input_path),
                "settings": settings,
                "outputs": [os.path.abspath(p) for p in outputs],
            },
            sort_keys=True,
            default=str,
        )
    )


def read_record(path: str | os.PathLike) -> dict | None:
    """The settings record at ``path``, or None when there is none or it cannot be read."""
    try:
        with open(path, encoding="utf-8") as handle:
            record = json.load(handle)
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def write_record(path: str | os.PathLike, record: dict) -> None:
    """Write a settings record atomically (it always replaces an older one)."""
    from .audio import atomic_write

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(record, handle, indent=1, sort_keys=True)
            handle.write("\n")

    atomic_write(path, write, overwrite=True)


def remove_stale_outputs(previous: dict, targets: list[Path]) -> list[Path]:
    """Delete the files a previous record lists that are not among ``targets``; return them.

    Only files that the record names as outputs of this track are touched, never anything else.
    """
    keep = {os.path.abspath(target) for target in targets}
    removed = []
    for name in previous.get("outputs", []):
        if isinstance(name, str) and os.path.abspath(name) not in keep and os.path.isfile(name):
            os.unlink(name)
            removed.append(Path(name))
    return removed
