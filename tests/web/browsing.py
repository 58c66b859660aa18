"""Driving `photodb web` in Debian's headless Chromium (chromium + chromium-driver, through
selenium): the server as a user starts it, a browser, screenshots kept as test artifacts.

Screenshots go to the folder named by PHOTODB_SCREENSHOTS (CI sets tests/artifacts, git-ignored)
and else to the test's tmp dir; their paths are printed either way."""

from __future__ import annotations

import os
import re
import shutil
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from photodb.database.connection import Database

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

needs_chromium = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="Debian's chromium and chromium-driver are not installed (apt-get install chromium chromium-driver;"
    " .ci/run installs them)",
)

#: The widths a page must fit: a laptop and a phone (CSS pixels).
DESKTOP = (1280, 800)
PHONE = (390, 844)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def screenshot_dir(tmp_path: Path) -> Path:
    folder = os.environ.get("PHOTODB_SCREENSHOTS")
    target = Path(folder) if folder else tmp_path
    target.mkdir(parents=True, exist_ok=True)
    return target


def shoot(browser: Any, tmp_path: Path, name: str) -> Path:
    """A screenshot of the whole page (not only the window), named after the test step."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", name)
    path = screenshot_dir(tmp_path) / f"{safe}.png"
    width = browser.execute_script("return document.documentElement.clientWidth")
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": min(height, 4000), "deviceScaleFactor": 1, "mobile": width < 600},
    )
    browser.save_screenshot(str(path))
    print(f"screenshot: {path}")
    return path


def set_viewport(browser: Any, size: tuple[int, int]) -> None:
    """Emulate a screen of this size (a phone as a mobile one, so the page's viewport meta applies)."""
    width, height = size
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600},
    )


def images_loaded(browser: Any) -> None:
    """Wait until the page's lazily loaded sections are in and every image finished loading (or
    failed), lazy ones brought in first."""
    from selenium.webdriver.support.wait import WebDriverWait

    WebDriverWait(browser, 30).until(lambda b: b.execute_script("return !document.querySelector('[data-src]')"))
    browser.execute_script("document.querySelectorAll('img[loading=lazy]').forEach(i => i.loading = 'eager')")
    WebDriverWait(browser, 30).until(lambda b: b.execute_script("return [...document.images].every(i => i.complete)"))


def overflow(browser: Any) -> int:
    """How many CSS pixels the page is wider than the screen (0: no horizontal scrolling)."""
    return browser.execute_script(
        "return Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)"
        " - document.documentElement.clientWidth"
    )


def and_wait_for_the_next_page(browser: Any, act: Callable[[], object]) -> None:
    """Do `act` (a click, a key) and wait until the page it leads to replaced this one, so that
    what is read next is never an element of the page before."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.wait import WebDriverWait

    before = browser.find_element(By.TAG_NAME, "html")
    act()
    WebDriverWait(browser, 30).until(expected_conditions.staleness_of(before))


def scalar(db: Database, query: str, *params: object) -> object:
    with db.connection() as conn:
        row = conn.execute(query, params).fetchone()
    return row[0] if row else None
