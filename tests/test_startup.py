"""What a command and its worker processes import before doing anything.

A page-reader worker (connectors/offload.py) starts by running the parent's ``__main__`` — the
installed ``budgetwatch`` script — as ``__mp_main__``; the script must then import nothing of the
product (budgetwatch/entry.py). Opening a store must not import alembic (store/db.py).
"""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

SCRIPT = Path(sys.executable).with_name("budgetwatch")


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys; print('\\n'.join(sys.modules))"],
                         capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_the_script_points_at_the_entry_that_imports_nothing() -> None:
    (script,) = entry_points(group="console_scripts", name="budgetwatch")
    assert script.value == "budgetwatch.entry:main"


@pytest.mark.skipif(not SCRIPT.exists(), reason=f"no installed script at {SCRIPT} (pip install -e . makes it)")
def test_a_worker_running_the_script_as_its_main_imports_no_command() -> None:
    """What multiprocessing does in each worker: runpy.run_path(script, run_name='__mp_main__')."""
    loaded = _modules_after(f"import runpy; runpy.run_path({str(SCRIPT)!r}, run_name='__mp_main__')")
    assert "budgetwatch.entry" in loaded  # the script was run
    assert not {"budgetwatch.cli", "budgetwatch.app", "sqlalchemy", "store.models", "typer"} & loaded


def test_opening_a_store_imports_no_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    subprocess.run([sys.executable, "-c", f"from store.db import open_store; open_store({url!r})"], check=True)
    loaded = _modules_after(f"from store.db import open_store; open_store({url!r})")  # an existing store
    assert "store.db" in loaded
    assert not any(name == "alembic" or name.startswith("alembic.") for name in loaded)
