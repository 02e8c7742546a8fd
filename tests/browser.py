"""Headless Chromium for what a person sees: rendered DOM and screenshots of local pages."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

#: Chromium flags for Playwright (which adds headless mode and the window size itself).
PLAYWRIGHT_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
#: The same for Chromium run directly (DOM dumps and screenshots).
FLAGS = ["--headless", *PLAYWRIGHT_FLAGS, "--hide-scrollbars", "--window-size=1400,900"]


def chromium() -> str:
    """The Chromium binary; tests skip where the README prerequisite is not installed."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if exe is None:
        pytest.skip("Chromium is not installed (apt-get install chromium; .ci/run does it)")
    return exe


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="aa-chromium-") as profile:
        return subprocess.run(
            [chromium(), *FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
        )


def dump_dom(url: str, *, budget_ms: int = 20000, timeout: float = 120) -> str:
    """The page's DOM after ``budget_ms`` of virtual time (scripts run, requests answered)."""
    r = _run([f"--virtual-time-budget={budget_ms}", "--dump-dom", url], timeout)
    return r.stdout


def screenshot(url: str, path: Path, *, budget_ms: int = 20000, timeout: float = 120) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    _run([f"--virtual-time-budget={budget_ms}", f"--screenshot={path}", url], timeout)
    assert path.exists() and path.stat().st_size > 10_000, f"no screenshot of {url}"
    return path


@contextlib.contextmanager
def playwright_browser():
    """The system Chromium driven by Playwright (skips where either is missing)."""
    sync_api = pytest.importorskip("playwright.sync_api")
    exe = chromium()
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=exe, args=PLAYWRIGHT_FLAGS)
        try:
            yield b
        finally:
            b.close()
