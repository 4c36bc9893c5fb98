"""The demo page's focal point, in headless Chromium: click a point on the photo, and every crop
is made again around it; "Back to automatic" brings the automatic crops back."""

from __future__ import annotations

import pytest

from tests.doors.test_demo_page import PHOTO, WAIT, api_url, browser, wait_for_crops

from selenium import webdriver  # noqa: E402  (after test_demo_page, which skips without Chromium)
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

__all__ = ["api_url", "browser"]  # fixtures imported for pytest

SIDE = 512  # astronaut.png is 512 x 512


def boxes(driver: webdriver.Chrome) -> dict[str, list[int]]:
    return {el.get_attribute("data-ratio"): [int(v) for v in el.get_attribute("data-box").split(",")]
            for el in driver.find_elements(By.CSS_SELECTOR, "#crops img")}  # fmt: skip


def settled(driver: webdriver.Chrome, centred: bool) -> None:
    """Wait for the answer to the last request: the status says it is done, with or without a focal point."""
    def done(d: webdriver.Chrome) -> bool:
        text = d.find_element(By.ID, "status").text
        return "4 crops" in text and ("centred on" in text) == centred

    WebDriverWait(driver, WAIT, poll_frequency=0.5).until(done)
    wait_for_crops(driver, 4)


def test_click_a_focal_point_and_the_crops_centre_on_it(browser: webdriver.Chrome, api_url: str):
    browser.get(api_url + "/")
    browser.find_element(By.ID, "photo").send_keys(str(PHOTO))
    settled(browser, centred=False)
    automatic = boxes(browser)
    view = browser.find_element(By.ID, "photo-view")
    assert browser.execute_script("return arguments[0].naturalWidth", view) == SIDE
    assert not browser.find_element(By.ID, "focus-marker").is_displayed()

    # bottom right, far from the face the automatic crops hold (offsets are from the centre)
    shown = view.size
    wanted = (0.9, 0.85)
    ActionChains(browser).move_to_element_with_offset(
        view, round((wanted[0] - 0.5) * shown["width"]), round((wanted[1] - 0.5) * shown["height"])
    ).click().perform()
    settled(browser, centred=True)
    picked = browser.execute_script("return focalPoint")
    assert picked == pytest.approx(wanted, abs=0.01)
    assert browser.find_element(By.ID, "focus-marker").is_displayed()
    assert f"centred on ({picked[0]}, {picked[1]})" in browser.find_element(By.ID, "status").text

    moved = boxes(browser)
    assert moved != automatic
    px, py = picked[0] * SIDE, picked[1] * SIDE
    for ratio, (x, y, w, h) in moved.items():
        assert x <= px <= x + w and y <= py <= y + h, (ratio, moved[ratio], (px, py))
        if ratio != "1:1":  # (1:1 is the whole square photo either way)
            assert moved[ratio] != automatic[ratio], ratio

    browser.find_element(By.ID, "clear-focus").click()
    settled(browser, centred=False)
    assert boxes(browser) == automatic
    assert not browser.find_element(By.ID, "focus-marker").is_displayed()
