"""POST /v1/crop with a focal point and keep regions (what the demo page's click sends): parsed by
the overrides' own rules, applied by the engine, refused with the reason in the API's one shape."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from functions.api.app import app, handler
from functions.settings import get_settings
from infra.local_stack import LocalContext
from tests.doors.test_api import PHOTO, PHOTO_SIZE, apigw_event
from tests.doors.test_overrides import expected_centre

RATIOS = "1:1,16:9,4:5,9:16"


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("AUTOCROP_INPUT_BUCKET", "photos-in")
    get_settings.cache_clear()
    yield TestClient(app)
    get_settings.cache_clear()


def crops(answer: Any) -> dict[str, list[int]]:
    assert answer.status_code == 200, answer.text
    return {c["ratio"]: c["box"] for c in answer.json()["crops"]}


def test_a_focal_point_centres_every_crop_as_the_page_sends_it(client: TestClient):
    W, H = PHOTO_SIZE
    plain = crops(client.post("/v1/crop", files={"image": ("cat.png", PHOTO, "image/png")}, data={"ratios": RATIOS}))
    for fx, fy in ((0.9, 0.2), (0.05, 0.95)):
        form = {"ratios": RATIOS, "focal_point": f"{fx},{fy}"}
        moved = crops(client.post("/v1/crop", files={"image": ("cat.png", PHOTO, "image/png")}, data=form))
        assert moved != plain
        for ratio, (x, y, w, h) in moved.items():
            assert abs(x + w / 2 - expected_centre(fx * W, w, W)) <= 1, ratio
            assert abs(y + h / 2 - expected_centre(fy * H, h, H)) <= 1, ratio
            assert x <= fx * W <= x + w and y <= fy * H <= y + h, ratio


def test_keep_regions_are_in_every_crop(client: TestClient):
    W, H = PHOTO_SIZE
    regions = [(0.0, 0.0, 0.12, 0.12), (0.2, 0.1, 0.1, 0.1)]
    keep = ";".join(",".join(map(str, r)) for r in regions)
    answer = client.post(f"/v1/crop?ratios={RATIOS}&keep={keep}", content=PHOTO, headers={"content-type": "image/png"})
    for ratio, (x, y, w, h) in crops(answer).items():
        for rx, ry, rw, rh in regions:
            assert x <= rx * W + 1 and y <= ry * H + 1 and x + w >= (rx + rw) * W - 1 and y + h >= (ry + rh) * H - 1, ratio


@pytest.mark.parametrize("params,why", [
    ({"focal_point": "1.5,0.5"}, "focal_point x must be a fraction in 0..1"),
    ({"focal_point": "0.5"}, "focal_point is 2 comma-separated fractions"),
    ({"focal_point": "left,top"}, "focal_point is 2 comma-separated fractions"),
    ({"focal_point": "nan,0.5"}, "0..1"),
    ({"keep": "0.5,0.5,0.6,0.1"}, "keep reaches past the photo's edge"),
    ({"keep": "0.1,0.1,0.2"}, "keep is 4 comma-separated fractions"),
    ({"keep": "0.1,0.1,0,0.2"}, "positive width and height"),
])  # fmt: skip
def test_bad_hints_are_422_with_the_reason(client: TestClient, params: dict[str, str], why: str):
    for answer in (client.post("/v1/crop", params=params, content=PHOTO, headers={"content-type": "image/png"}),
                   client.post("/v1/crop", files={"image": ("cat.png", PHOTO, "image/png")}, data=params),
                   client.post("/v1/debug", params=params, content=PHOTO, headers={"content-type": "image/png"})):  # fmt: skip
        assert answer.status_code == 422, answer.text
        assert answer.json()["error"] == "invalid_options" and why in answer.json()["detail"]


def test_through_api_gateway_the_focal_point_rides_the_query_string(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AUTOCROP_INPUT_BUCKET", "photos-in")
    get_settings.cache_clear()
    event = copy.deepcopy(apigw_event("apigw_http_v2_crop_json.json", PHOTO))
    event["rawQueryString"] = "ratios=9:16&focal_point=0.95,0.5"
    event["queryStringParameters"] = {"ratios": "9:16", "focal_point": "0.95,0.5"}
    response = handler(event, LocalContext())
    assert response["statusCode"] == 200, response["body"]
    [crop] = json.loads(response["body"])["crops"]
    W = PHOTO_SIZE[0]
    x, _, w, _ = crop["box"]
    assert x + w == W  # pushed to the right edge, as far as the photo allows
    event["rawQueryString"] = "ratios=9:16&focal_point=0.95"
    event["queryStringParameters"] = {"ratios": "9:16", "focal_point": "0.95"}
    refused = handler(event, LocalContext())
    assert refused["statusCode"] == 422 and json.loads(refused["body"])["error"] == "invalid_options"
    get_settings.cache_clear()
