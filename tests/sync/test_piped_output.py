"""A sync whose output goes into a pipe (`2>&1 | tail`, cron mailing it) shows no traceback from its
page-reader process (issue 12, item 10). The real command in a subprocess, against the simulator;
its output read through a pipe as a shell pipeline would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.sync.conftest import YEARS


@pytest.mark.slow  # ~15 s, mostly waiting: SABA at the contract's 8 requests a second
def test_a_piped_sync_shows_no_worker_traceback(simulator_factory, tmp_path):
    # SABA at its real rate keeps the sync going long after Nezarat-4 is read, which is when the
    # page-reader's end printed a BrokenPipeError traceback into the pipe (2 of 2 before the fix)
    sim = simulator_factory(projects=10, agreements=10)
    lines = ["sources:"]
    env = dict(os.environ)
    for name, url in (("nezarat4", sim.nezarat_url), ("saba", sim.saba_url)):
        user, password = sim.credentials[name]
        env[f"TEST_{name.upper()}_PASSWORD"] = password
        lines += [f"  {name}:", f'    base_url: "{url}"', f'    username: "{user}"',
                  f"    password_env: TEST_{name.upper()}_PASSWORD", f"    fiscal_years: {list(YEARS)}",
                  "    page_pause_seconds: 0" if name == "nezarat4" else "    rate_limit_per_second: 8"]
    lines += [f'database:\n  url: "sqlite:///{tmp_path / "store.db"}"']
    config = tmp_path / "config.yaml"
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    budgetwatch = str(Path(sys.executable).with_name("budgetwatch"))
    done = subprocess.run([budgetwatch, "--config", str(config), "sync"], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, env=env, timeout=240)
    assert done.returncode == 0, done.stdout[-2000:]
    assert "Traceback" not in done.stdout and "BrokenPipeError" not in done.stdout, done.stdout[-2000:]
