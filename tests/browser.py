"""A real browser for the tests of what people look at: Playwright driving Debian's Chromium.

``.ci/run`` installs Debian's ``chromium`` when it is missing; Playwright's own browser download is
never used (the machines reach no such host). Where Chromium cannot be had, the tests that need it
are skipped, saying why. Screenshots go to ``artifacts/screenshots/`` (ignored by git; CI keeps the
folder in its work tree) for a person to look at.

    from tests.browser import browser_page, screenshot_path

    def test_report_draws(tmp_path):
        with browser_page() as (page, console_errors):
            page.goto(url)
            page.screenshot(path=screenshot_path("report-summary"), full_page=True)
            assert console_errors == []

A module of browser tests shares one browser through a module-scoped fixture around
:func:`chromium` (``browser_page(browser=…)``: a page in a context of its own), requested after any
fixture that runs an event loop (a sync), which a running Playwright's would refuse.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
# the flags this workplace's closed network needs: no background connections, no first-run pages
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]


def chromium_path() -> str | None:
    override = os.environ.get("BUDGETWATCH_CHROMIUM")
    if override:
        return override if Path(override).exists() else None
    for candidate in CHROMIUM_CANDIDATES:
        if Path(candidate).exists():
            return candidate
    return shutil.which("chromium")


def screenshot_path(name: str) -> str:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return str(SCREENSHOTS / f"{name}.png")


@contextmanager
def chromium() -> Iterator[Any]:
    """Playwright's driver and a headless Chromium, to open several pages in (:func:`browser_page`'s
    `browser`): starting them costs ~1 s of CPU, a new page in a running browser a tenth of that.
    While they run, their event loop is this thread's, and ``asyncio.run`` (a sync, the simulator's
    client) refuses to run in it: keep one only around tests that run no event loop of their own."""
    executable = chromium_path()
    if executable is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it: apt-get install -y chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - a dev install always has it
        pytest.skip("playwright is not installed (pip install -e '.[dev]')")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def browser_page(*, width: int = 1366, height: int = 900, locale: str = "fa-IR",
                 browser: Any = None) -> Iterator[tuple]:
    """A fresh page in headless Chromium (a context of its own in `browser`, if given: see
    :func:`chromium`; else in a browser started for it) and the list its console errors and page
    errors fill."""
    if browser is None:
        with chromium() as own, browser_page(width=width, height=height, locale=locale, browser=own) as opened:
            yield opened
        return
    errors: list[str] = []
    context = browser.new_context(viewport={"width": width, "height": height}, locale=locale,
                                  timezone_id="Asia/Tehran")
    try:
        page = context.new_page()
        page.on("console", lambda msg: errors.append(f"console {msg.type}: {msg.text}")
                if msg.type == "error" else None)
        page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
        yield page, errors
    finally:
        context.close()
