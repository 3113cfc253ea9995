"""Files written whole or not at all: a command's output is written into a temporary file beside its
name and takes the name only when it is complete (a rename, atomic within one folder), so a write
that fails halfway, an interrupt or a kill -9 leaves whatever was there before, never a truncated
file under the real name (a CSV export killed halfway looked whole in Excel). Used by every
``--output`` of the CLI (budgetwatch.app.open_output) and by the report's files (reports/files.py).
A write that fails (a full disk) raises :class:`OutputError`, naming the file as the caller gave it.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import stat
from pathlib import Path
from typing import IO, Any

__all__ = ["OutputError", "WholeFile", "done_with", "running", "temporary_beside"]


class OutputError(OSError):
    """A :class:`WholeFile` that could not be written or put in place — a full disk (ENOSPC), a
    quota, an I/O error — with the system's ``errno`` and ``strerror`` and, as ``filename``, the
    path as the caller gave it (never the temporary file). Its own class so that a command can say
    it as its ``--output``'s one line (exit 2, as `report` does) and tell it from other OSErrors
    (a trial: `export -o` on a full disk ended "error: OSError: [Errno 28] …", exit 1)."""


_writing: set[Path] = set()  # this process's temporary files being written (threads)


def running(pid: int) -> bool:
    """Whether a process ``pid`` runs on this machine (another user's counts: it cannot be signalled)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OverflowError, ValueError):
        return False
    return True


def _clear_leftovers(path: Path) -> None:
    """Remove the temporary files of writes to ``path`` that killed processes left: those of a pid
    no longer running, and those of this process's own pid that it is not writing now (a killed
    run's whose pid came round again, as a container's command often has the same pid each run).
    Only on this machine: two machines writing one name in a shared folder at once are not told apart."""
    mine = os.getpid()
    shape = re.compile(rf"\.{re.escape(path.name)}\.(\d+)\.[0-9a-f]{{8}}\.partial")
    for leftover in path.parent.iterdir():
        found = shape.fullmatch(leftover.name)
        if found is None or leftover.is_symlink() or not leftover.is_file():
            continue
        pid = int(found.group(1))
        if (leftover in _writing) if pid == mine else running(pid):
            continue
        with contextlib.suppress(OSError):  # gone meanwhile, or not ours to remove: the others still go
            os.unlink(leftover)


def temporary_beside(path: Path) -> tuple[Path, int]:
    """A new temporary file beside ``path`` (hidden, named for this process: ``.NAME.PID.HEX.partial``),
    with ``path``'s mode when it exists: its name and open descriptor. The leftovers of killed
    writes to the same name go first (:func:`_clear_leftovers`); :func:`done_with` it when it is
    renamed or removed."""
    with contextlib.suppress(OSError):  # tidying only: a folder that cannot be listed fails below
        _clear_leftovers(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.partial")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    _writing.add(temporary)
    try:
        with contextlib.suppress(FileNotFoundError):
            os.fchmod(descriptor, stat.S_IMODE(os.stat(path).st_mode))
    except BaseException:
        os.close(descriptor)
        done_with(temporary, remove=True)
        raise
    return temporary, descriptor


def done_with(temporary: Path, *, remove: bool = False) -> None:
    """A temporary file of :func:`temporary_beside` renamed into place, or (`remove`) given up."""
    _writing.discard(temporary)
    if remove:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


class WholeFile:
    """A text file written as it streams, in place only when it is complete: the text goes to a
    temporary file beside ``path``, which :meth:`close` renames over ``path``; :meth:`discard` (or
    leaving a ``with`` block by an exception) removes it and leaves ``path`` as it was. A process
    killed meanwhile leaves ``path`` as it was, and a hidden ``.NAME.PID.HEX.partial`` beside it.
    Not flushed to disk before the rename (a whole run's JSON is 170 MB at 100k projects): a power
    cut may lose the new file, not leave a part of it under its name. Anything else a text file
    has (``buffer``, ``flush``, ``fileno`` …) is the temporary file's. A path that is not a regular
    file (``/dev/stdout``, a pipe) is written directly."""

    def __init__(self, path: Path, *, newline: str | None = None) -> None:
        self._path = path
        self._target: Path | None = None
        self._temporary: Path | None = None
        try:  # followed as the kernel follows it: /dev/stdout is a link to /proc/self/fd/1, whose
            # own target a pipe names "pipe:[N]", a path that realpath cannot resolve further
            regular = stat.S_ISREG(os.stat(path).st_mode)
        except FileNotFoundError:
            regular = True  # a new file
        if not regular:
            self._file: IO[str] = open(path, "w", encoding="utf-8", newline=newline)  # noqa: SIM115
            return
        target = Path(os.path.realpath(path))
        self._temporary, descriptor = temporary_beside(target)
        self._target = target
        try:
            self._file = os.fdopen(descriptor, "w", encoding="utf-8", newline=newline)
        except BaseException:
            os.close(descriptor)
            self._remove()
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file, name)

    def write(self, text: str) -> int:
        try:
            return self._file.write(text)
        except OSError as exc:
            raise self._failed(exc) from exc

    @property
    def buffer(self) -> _Guarded:
        """The binary buffer under the text (a JSON writer's bytes go there), its failures said as ours."""
        return _Guarded(self._file.buffer, self._failed)

    def flush(self) -> None:
        try:
            self._file.flush()
        except OSError as exc:
            raise self._failed(exc) from exc

    def close(self) -> None:
        """Done: the file takes its name (once; later calls do nothing)."""
        if self._file.closed:
            return
        try:
            self._file.close()  # what is still buffered is written now: a full disk may say so here
            if self._target is not None:
                os.replace(self._temporary, self._target)
                done_with(self._temporary)
        except OSError as exc:
            self._remove()
            raise self._failed(exc) from exc
        except BaseException:
            self._remove()
            raise

    def _failed(self, exc: OSError) -> OutputError:
        if isinstance(exc, OutputError):
            return exc
        return OutputError(exc.errno, exc.strerror or str(exc), str(self._path))

    def discard(self) -> None:
        """Not done: the temporary file removed, ``path`` as it was (once; after close, nothing)."""
        if self._file.closed:
            return
        with contextlib.suppress(OSError):
            self._file.close()
        self._remove()

    def _remove(self) -> None:
        if self._temporary is not None:
            done_with(self._temporary, remove=True)

    def __enter__(self) -> WholeFile:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if kind is None:
            self.close()
        else:
            self.discard()


class _Guarded:
    """A WholeFile's binary buffer: writing and flushing it fail as the WholeFile's own writes do
    (an :class:`OutputError` naming the file); everything else is the buffer's."""

    def __init__(self, raw: Any, failed: Any) -> None:
        self._raw = raw
        self._failed = failed

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)

    def write(self, data: Any) -> int:
        try:
            return self._raw.write(data)
        except OSError as exc:
            raise self._failed(exc) from exc

    def flush(self) -> None:
        try:
            self._raw.flush()
        except OSError as exc:
            raise self._failed(exc) from exc
