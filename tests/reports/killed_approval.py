"""An approval of 1405 Q2 in a process of its own, stopped at one instant: what a `kill -9` of
`budgetwatch review approve` leaves, made without timing a signal (tests/reports/test_archive_kill.py).

    python -m tests.reports.killed_approval URL DATA_DIR BY placed|writing|hold

``placed``: SIGKILL right after the folder is renamed into place, before the sign-off's commit (the
trial's 6 of 6); ``writing``: SIGKILL after the first file is written into the temporary folder;
``hold``: print ``placed`` there and commit when a line comes on standard input (a live approval).
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from reports import archive
from store.db import make_engine
from tests.reports.test_archive import NOW, settings


def main() -> None:
    url, data_dir, by, at = sys.argv[1:5]
    rename, chmod = os.rename, os.chmod

    def placed(source, destination):
        rename(source, destination)
        if ".partial-" not in Path(source).name:
            return
        if at == "placed":
            os.kill(os.getpid(), signal.SIGKILL)
        if at == "hold":
            print("placed", flush=True)
            sys.stdin.readline()

    def written(path, mode):
        chmod(path, mode)
        if at == "writing" and ".partial-" in Path(path).parent.name:
            os.kill(os.getpid(), signal.SIGKILL)

    os.rename, os.chmod = placed, written
    engine = make_engine(url)
    archive.approve(engine, 1405, 2, by=by, note=None, settings=settings(Path(data_dir)), now=NOW)
    engine.dispose()


if __name__ == "__main__":
    main()
