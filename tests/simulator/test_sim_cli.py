"""`python -m simulator` and `simulator.cli.serve`: start, print URLs and credentials, stop on Ctrl-C."""

from __future__ import annotations

import re
import signal
import subprocess
import sys

import httpx


def test_help_lists_the_flags():
    result = subprocess.run([sys.executable, "-m", "simulator", "--help"], capture_output=True, text=True,
                            timeout=30, check=True)
    for flag in ("--seed", "--projects", "--agreements", "--nezarat-port", "--saba-port", "--clock",
                 "--latency-ms", "--session-idle-seconds", "--error500-rate", "--malformed",
                 "--shift-while-paging", "--layout-change"):
        assert flag in result.stdout


def test_serve_prints_urls_and_credentials_and_stops_on_ctrl_c():
    process = subprocess.Popen(
        [sys.executable, "-m", "simulator", "--projects", "40", "--agreements", "20", "--seed", "3",
         "--clock", "2026-11-25T10:00", "--error500-rate", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        lines = []
        for line in process.stdout:
            lines.append(line)
            if line.startswith("Press Ctrl-C"):
                break
        output = "".join(lines)
        nezarat = re.search(r"Nezarat-4\s+(http://127\.0\.0\.1:\d+)\s+user budget\.user\s+password demo-password", output)
        saba = re.search(r"SABA\s+(http://127\.0\.0\.1:\d+)", output)
        assert nezarat and saba, output
        assert httpx.get(nezarat.group(1) + "/Login.aspx", timeout=5).status_code == 200
        token = httpx.post(saba.group(1) + "/api/v1/auth/token",
                           json={"username": "budget.user", "password": "demo-password"}, timeout=5)
        assert token.status_code == 200
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0  # generous: CI machines are shared and loaded
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
