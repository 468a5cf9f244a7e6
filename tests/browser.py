"""Debian's chromium driven by Playwright, for every browser test (the console's and the edge's pages).

Playwright never downloads a browser here: it launches ``/usr/bin/chromium`` (``apt-get install chromium``;
.ci/run does it; ``SMARTBRANCH_CHROMIUM`` names another). Without it, or without the Playwright package, a
browser test is skipped with the reason.

One chromium per test module, never per session: Playwright's sync API keeps an event loop running on the test
thread while it is started, so a browser left open would break a later test that calls ``asyncio.run``, and
only one sync Playwright may run per thread (two folders' session browsers collided).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

CHROMIUM = Path(os.environ.get("SMARTBRANCH_CHROMIUM", "/usr/bin/chromium"))  # Debian's; never a download
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - dev extra missing
    sync_playwright = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from playwright.sync_api import Browser


def why_no_browser() -> str | None:
    if sync_playwright is None:
        return "the playwright package is not installed (pip install -e .[dev])"
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is absent (apt-get install chromium); browser tests need Debian's chromium"
    return None


@contextmanager
def chromium() -> Iterator[Browser]:
    """A launched headless chromium (skips the calling test when there is none), closed afterwards."""
    why = why_no_browser()
    if why:
        pytest.skip(why)
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()
