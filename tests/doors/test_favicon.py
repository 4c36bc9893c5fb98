"""The demo page loads in headless Chromium with nothing in its console: no error, no 404 (the
favicon included, which a browser asks for on its own)."""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path

from tests.doors.test_demo_page import api_url, browser  # skips (or fails) without Chromium

from selenium import webdriver  # noqa: E402  (after test_demo_page's check for Chromium)

__all__ = ["api_url", "browser"]  # fixtures, imported for pytest

STATIC = Path(__file__).resolve().parents[2] / "functions" / "api" / "static"


def console_after_load(driver: webdriver.Chrome, url: str) -> list[dict]:
    """The console entries of one page load, the browser's own favicon request included."""
    driver.get_log("browser")  # drop what came before
    driver.get(url)
    deadline = time.monotonic() + 30
    while driver.execute_script("return document.readyState") != "complete" and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(2)  # the favicon is fetched after the load event
    return list(driver.get_log("browser"))


def test_the_demo_page_has_a_favicon_and_a_clean_console(api_url: str, browser: webdriver.Chrome) -> None:
    entries = console_after_load(browser, f"{api_url}/")
    assert [e for e in entries if e["level"] in ("SEVERE", "WARNING")] == [], entries
    icon = browser.execute_script("return document.querySelector('link[rel=icon]').href")
    with urllib.request.urlopen(icon, timeout=30) as answer:
        assert answer.status == 200 and answer.headers["Content-Type"].startswith("image/svg+xml")
        assert answer.read() == (STATIC / "favicon.svg").read_bytes()


def test_a_missing_file_does_show_in_the_console(api_url: str, browser: webdriver.Chrome) -> None:
    """The check above can fail: a page that asks for a file that is not there logs it."""
    entries = console_after_load(browser, f"{api_url}/static/no-such-page.html")
    assert any(e["level"] == "SEVERE" and "404" in e["message"] for e in entries), entries


def test_browsers_asking_for_favicon_ico_get_the_icon(api_url: str) -> None:
    """Clients that ask /favicon.ico without reading the page (bookmarks, feed readers)."""
    with urllib.request.urlopen(f"{api_url}/favicon.ico", timeout=30) as answer:
        assert answer.status == 200 and answer.headers["Content-Type"].startswith("image/svg+xml")
