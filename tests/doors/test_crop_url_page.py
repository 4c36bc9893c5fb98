"""A web page shows a crop from a signed crop URL, in headless Chromium (the API under uvicorn,
the photo and its stored analysis in the live moto server)."""

from __future__ import annotations

import io
import time
from typing import Any

from PIL import Image

from autocrop.urls import crop_url
from infra.local_stack import start_api
from tests.doors.test_crop_urls import SECRET, served
from tests.doors.test_demo_page import browser
from tests.doors.test_s3_trigger import s3, stack

__all__ = ["browser", "s3", "served", "stack"]  # fixtures imported for pytest


def test_a_page_shows_the_crop_of_a_signed_url(served: dict[str, Any], browser: Any, tmp_path):
    server, base = start_api("127.0.0.1", 0)
    try:
        url = crop_url(served["key"], "4:5", (400, 500), SECRET, fmt="webp", base_url=base)
        # A page of the API's own origin (a data: page may not load from 127.0.0.1: Chromium's
        # private network rules), with the crop as a plain <img>.
        browser.get(f"{base}/healthz")
        browser.execute_script(
            "document.body.style.margin = '0';"
            "document.body.innerHTML = '<img id=\"crop\" alt=\"crop\">';"
            "document.getElementById('crop').src = arguments[0];",
            url,
        )
        deadline = time.monotonic() + 120
        state: dict[str, Any] = {}
        while time.monotonic() < deadline:
            state = browser.execute_script(
                "const i = document.getElementById('crop');"
                "return {complete: i.complete, width: i.naturalWidth, height: i.naturalHeight};"
            )
            if state["complete"] and state["width"]:
                break
            time.sleep(0.2)
        assert state == {"complete": True, "width": 400, "height": 500}
        shot = tmp_path / "crop-url-page.png"
        browser.save_screenshot(str(shot))
        pixels = Image.open(io.BytesIO(shot.read_bytes())).convert("RGB").crop((0, 0, 400, 500))
        lo, hi = pixels.convert("L").getextrema()
        assert hi - lo > 100  # the photo is drawn, not a blank or broken-image box
    finally:
        server.should_exit = True
