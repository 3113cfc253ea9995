"""Writing a report file for people: whole or not at all, and never into the signed archive.

A report is rendered in memory and then written in one go (``budgetwatch report --output``). It is
written to a temporary file in the same folder and renamed over its name, which replaces it at once,
so a write that fails halfway (a full disk, an interrupt) leaves whatever was there before rather
than a truncated file. A process killed while writing (``kill -9``) cannot remove its temporary
file (``.report.xlsx.<pid>.<hex>.partial``, hidden, never taken for the report): the next write to
the same name removes those of processes no longer running (foundation/files.py). The sign-off's
archive (reports/archive.py) is written only by the sign-off: its files are read-only, but as root
that stops nothing, so an output inside it is refused by path.
"""

from __future__ import annotations

import os
from pathlib import Path

from foundation.files import done_with, temporary_beside


def inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` is ``folder`` or lies under it, once both are resolved (``..``, symlinks)."""
    where, root = Path(path).resolve(), Path(folder).resolve()
    return where == root or where.is_relative_to(root)


def write_whole(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file beside it, flushed to disk and renamed over
    ``path`` (atomic within one folder); on failure the temporary file is removed and ``path`` is as it
    was. A file replaced keeps its mode (a report someone made 0600 stays 0600), a new one gets what a
    plain write would give it (0666 less the umask); a symbolic link is followed, and its target
    replaced, as a plain write would."""
    path = Path(os.path.realpath(path))
    temporary, descriptor = temporary_beside(path)  # the leftovers of killed writes to it go first
    try:
        with os.fdopen(descriptor, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        done_with(temporary, remove=True)
        raise
    done_with(temporary)
