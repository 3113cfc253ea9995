"""`python -m simulator` and `simulator.cli.serve`: start, print URLs, credentials and a config, stop on Ctrl-C."""

from __future__ import annotations

import re
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from budgetwatch.config import load_config
from connectors.settings import portal_settings


def test_help_lists_the_flags():
    result = subprocess.run([sys.executable, "-m", "simulator", "--help"], capture_output=True, text=True,
                            timeout=30, check=True)
    for flag in ("--seed", "--projects", "--agreements", "--nezarat-port", "--saba-port", "--clock",
                 "--latency-ms", "--session-idle-seconds", "--error500-rate", "--malformed",
                 "--shift-while-paging", "--layout-change"):
        assert flag in result.stdout


@contextmanager
def simulator_banner() -> Iterator[tuple[subprocess.Popen, str]]:
    """A small simulator in a process of its own, and what it printed up to "Press Ctrl-C"."""
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
        yield process, "".join(lines)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_serve_prints_urls_and_credentials_and_stops_on_ctrl_c():
    with simulator_banner() as (process, output):
        nezarat = re.search(r"Nezarat-4\s+(http://127\.0\.0\.1:\d+)\s+user budget\.user\s+password demo-password",
                            output)
        saba = re.search(r"SABA\s+(http://127\.0\.0\.1:\d+)", output)
        assert nezarat and saba, output
        assert httpx.get(nezarat.group(1) + "/Login.aspx", timeout=5).status_code == 200
        token = httpx.post(saba.group(1) + "/api/v1/auth/token",
                           json={"username": "budget.user", "password": "demo-password"}, timeout=5)
        assert token.status_code == 200
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0  # generous: CI machines are shared and loaded


def test_the_banner_gives_a_config_budgetwatch_loads_whose_passwords_log_in(tmp_path, monkeypatch):
    with simulator_banner() as (_process, output):
        lines = output.splitlines()
        start = lines.index("sources:")
        block = [lines[start]] + [line for line in lines[start + 1:] if line.startswith("  ")]
        assert len(block) == 11, output  # nothing else interleaved: the block pastes as printed
        config = tmp_path / "sim.yaml"
        config.write_text("\n".join(block) + "\n", encoding="utf-8")
        exports = [line for line in lines if line.startswith("export ")]
        assert len(exports) == 2, output
        for line in exports:
            name, _, value = shlex.split(line)[1].partition("=")
            monkeypatch.setenv(name, value)
        assert re.search(r"\S*budgetwatch --config sim\.yaml sync", output)

        sources = load_config(config).config.sources  # the product's own loader and validation
        urls = dict(re.findall(r"^(Nezarat-4|SABA)\s+(\S+)", output, re.MULTILINE))
        nezarat, saba = portal_settings(sources, "nezarat4"), portal_settings(sources, "saba")
        assert (nezarat.base_url, saba.base_url) == (urls["Nezarat-4"], urls["SABA"])
        assert sources.nezarat4.fiscal_years == sources.saba.fiscal_years == [1404, 1405]  # the world's years
        login = httpx.post(nezarat.base_url + "/Login.aspx", timeout=5, data={
            "txtUserName": nezarat.username, "txtPassword": nezarat.password.get_secret_value(), "btnLogin": "ورود"})
        assert (login.status_code, login.headers["location"]) == (302, "/Default.aspx")
        token = httpx.post(saba.base_url + "/api/v1/auth/token", timeout=5, json={
            "username": saba.username, "password": saba.password.get_secret_value()})
        assert token.status_code == 200 and token.json()["token_type"] == "Bearer"
