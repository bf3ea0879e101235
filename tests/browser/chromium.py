"""Debian's Chromium for the browser tests, driven by Playwright through ``executable_path``:
where it is, how it is started, where screenshots go, and what happens when it is missing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import IN_CI

CHROMIUM = Path("/usr/bin/chromium")
HEADLESS_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
# The portal tests serve both sites over HTTPS with a throwaway certificate at *.localhost names.
CROSS_SITE_ARGS = [
    *HEADLESS_ARGS,
    "--ignore-certificate-errors",
    "--host-resolver-rules=MAP *.localhost 127.0.0.1",
]
ARTIFACTS = Path(__file__).parent.parent / "artifacts"
WAIT_MS = 20_000


def need_browser() -> Any:
    """Playwright's async API; outside CI a missing browser skips, in CI it fails."""
    problem = None
    if not CHROMIUM.exists():
        problem = f"{CHROMIUM} is missing (scripts/install-browser.sh installs it)"
    try:
        from playwright import async_api
    except ImportError:
        problem = "Playwright for Python is not installed (pip install -e '.[dev]')"
    if problem:
        if IN_CI:
            pytest.fail(f"{problem}; CI must run the browser tests")
        pytest.skip(problem)
    return async_api
