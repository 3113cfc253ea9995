"""Files written whole or not at all (foundation/files.py): every --output of the CLI.

Found by a kill trial: `export projects -o FILE` killed with -9 halfway left 468 of ~1,000 lines
under the real name, a file that looked whole in Excel.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from foundation.files import WholeFile


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_the_file_takes_its_name_when_it_is_complete(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    target.write_text("last week's\n", encoding="utf-8")
    target.chmod(0o600)
    with WholeFile(target, newline="") as out:
        out.write("پروژه,کد\r\n")
        assert target.read_text(encoding="utf-8") == "last week's\n"  # not yet
        assert len(_hidden(tmp_path)) == 1 and _hidden(tmp_path)[0].endswith(".partial")
    assert target.read_bytes() == "پروژه,کد\r\n".encode()
    assert stat.S_IMODE(target.stat().st_mode) == 0o600  # a file replaced keeps its mode
    assert _hidden(tmp_path) == []


def test_a_failure_or_a_discard_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    target.write_text("[]\n", encoding="utf-8")
    with pytest.raises(RuntimeError), WholeFile(target) as out:
        out.write('[{"id": 1}')
        raise RuntimeError("the database went away")
    out = WholeFile(target)
    out.write("half")
    out.discard()
    out.close()  # after a discard: nothing
    assert target.read_text(encoding="utf-8") == "[]\n" and _hidden(tmp_path) == []
    fresh = tmp_path / "new.json"
    with pytest.raises(RuntimeError), WholeFile(fresh) as out:
        raise RuntimeError("interrupted")
    assert not fresh.exists() and _hidden(tmp_path) == []


def test_a_process_killed_halfway_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    """A real kill -9 of a process writing through WholeFile (what the trial did to `export`)."""
    target = tmp_path / "export.csv"
    target.write_text("yesterday's export\n", encoding="utf-8")
    code = ("import sys\nfrom foundation.files import WholeFile\n"
            f"out = WholeFile(__import__('pathlib').Path({str(target)!r}))\n"
            "out.write('code,title\\n' * 50_000); out.flush()\n"
            "print('written', flush=True); sys.stdin.read()\n")
    with subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                          cwd=Path(__file__).resolve().parents[1]) as writer:
        assert writer.stdout.readline().strip() == "written"
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
    assert target.read_text(encoding="utf-8") == "yesterday's export\n"
    [left] = _hidden(tmp_path)  # the part it wrote, hidden and never taken for the export
    assert left.startswith(".export.csv.") and left.endswith(".partial")
    with WholeFile(target) as out:  # the next write to that name removes a dead process's part
        out.write("today's export\n")
    assert target.read_text(encoding="utf-8") == "today's export\n" and _hidden(tmp_path) == []


def test_a_path_that_is_not_a_file_is_written_directly(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE)
    with WholeFile(fifo) as out:  # /dev/stdout, a named pipe: there is no folder to rename in
        out.write("streamed\n")
    assert reader.communicate(timeout=10)[0] == b"streamed\n"
    assert fifo.exists() and _hidden(tmp_path) == []


def test_dev_stdout_of_a_process_whose_output_is_a_pipe_is_written_directly(tmp_path: Path) -> None:
    """`budgetwatch reconcile --output /dev/stdout | gzip`: /dev/stdout leads to /proc/self/fd/1 and
    then to "pipe:[N]", which is no path; a review found the temporary file sought in /proc."""
    code = ("from pathlib import Path\nfrom foundation.files import WholeFile\n"
            "with WholeFile(Path('/dev/stdout')) as out:\n    out.write('streamed\\n')\n")
    written = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             cwd=Path(__file__).resolve().parents[1])
    assert written.stdout == "streamed\n" and written.stderr == ""
