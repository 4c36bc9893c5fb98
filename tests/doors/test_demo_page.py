"""The demo page in headless Chromium (Debian's chromium + chromedriver, driven by Selenium):
upload a real photo, see the debug view and one crop per ratio."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import skimage
from autocrop import parse_ratio

from functions.settings import get_settings
from infra.local_stack import start_api
from tests.tools import require

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
PHOTO = Path(skimage.__file__).parent / "data" / "astronaut.png"
WAIT = 180  # seconds: the first request loads the models on a busy 2-core machine

require(os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER),
        "needs Debian's chromium and chromium-driver (infra/ci_setup.sh)", module=True)  # fmt: skip

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@pytest.fixture(scope="module")
def api_url() -> Iterator[str]:
    get_settings.cache_clear()
    server, url = start_api("127.0.0.1", 0)
    yield url
    server.should_exit = True


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1280,1000",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # the console, for tests that read it
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def loaded(driver: webdriver.Chrome, selector: str) -> list[dict]:
    """Sizes of the images matching `selector` once all of them have decoded."""
    return driver.execute_script(
        """
        return [...document.querySelectorAll(arguments[0])].map((img) => ({
          ratio: img.dataset.ratio || null, complete: img.complete,
          width: img.naturalWidth, height: img.naturalHeight,
        }));
        """,
        selector,
    )


def wait_for_crops(driver: webdriver.Chrome, count: int) -> list[dict]:
    def ready(d: webdriver.Chrome) -> list[dict] | bool:
        crops = loaded(d, "#crops img")
        debug = loaded(d, "#debug-view")
        done = (
            len(crops) == count
            and all(c["complete"] and c["width"] > 0 for c in crops)
            and debug[0]["width"] > 0
        )
        return crops if done else False

    return WebDriverWait(driver, WAIT, poll_frequency=0.5).until(ready)


def test_upload_a_photo_and_see_its_crops(browser: webdriver.Chrome, api_url: str, tmp_path: Path):
    browser.get(api_url + "/")
    assert browser.title == "autoCropper demo"
    default_ratios = [
        el.get_attribute("value") for el in browser.find_elements(By.CSS_SELECTOR, ".ratio:checked")
    ]
    assert default_ratios == ["1:1", "16:9", "4:5", "9:16"]

    browser.find_element(By.ID, "photo").send_keys(str(PHOTO))  # choosing a file starts a crop
    crops = wait_for_crops(browser, len(default_ratios))

    assert [c["ratio"] for c in crops] == default_ratios
    for crop in crops:
        assert crop["width"] / crop["height"] == pytest.approx(parse_ratio(crop["ratio"]), rel=0.03)
    status = browser.find_element(By.ID, "status").text
    assert "512×512" in status and "4 crops" in status, status
    assert "face" in browser.find_element(By.ID, "summary").text
    assert browser.find_elements(By.CSS_SELECTOR, "#timings tr")
    captions = [el.text for el in browser.find_elements(By.CSS_SELECTOR, ".crop-card figcaption")]
    assert all("score" in c and "box" in c for c in captions)
    browser.save_screenshot(str(tmp_path / "demo-page.png"))

    # Pick another ratio and crop again.
    browser.find_element(By.CSS_SELECTOR, '.ratio[value="3:2"]').click()
    browser.find_element(By.ID, "custom-ratios").send_keys("21:9")
    browser.find_element(By.ID, "crop-button").click()
    crops = wait_for_crops(browser, 6)
    assert [c["ratio"] for c in crops] == [*default_ratios, "3:2", "21:9"]


def test_a_file_that_is_not_a_photo_shows_the_error(
    browser: webdriver.Chrome, api_url: str, tmp_path: Path
):
    not_a_photo = tmp_path / "notes.png"
    not_a_photo.write_text("this is not an image")
    browser.get(api_url + "/")
    browser.find_element(By.ID, "photo").send_keys(str(not_a_photo))
    WebDriverWait(browser, WAIT).until(lambda d: "415" in d.find_element(By.ID, "status").text)
    status = browser.find_element(By.ID, "status")
    assert "unsupported_image" in status.text
    assert "error" in status.get_attribute("class")
