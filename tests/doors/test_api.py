"""The HTTP API through FastAPI's TestClient, and through Mangum with real API Gateway
HTTP API (payload 2.0) event JSON: binary in, binary out."""

from __future__ import annotations

import base64
import copy
import io
import json
import time
from pathlib import Path
from typing import Any

import pytest
import skimage
from autocrop import parse_ratio
from fastapi.testclient import TestClient
from PIL import Image

from functions.api.app import app, handler
from functions.settings import get_settings
from infra.local_stack import LocalContext

EVENTS = Path(__file__).resolve().parents[1] / "events"
PHOTO = (Path(skimage.__file__).parent / "data" / "chelsea.png").read_bytes()
PHOTO_SIZE = Image.open(io.BytesIO(PHOTO)).size


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> TestClient:
    monkeypatch.setenv("AUTOCROP_INPUT_BUCKET", "photos-in")
    monkeypatch.setenv("AUTOCROP_OUTPUT_BUCKET", "photos-out")
    get_settings.cache_clear()
    yield TestClient(app)
    get_settings.cache_clear()


def decode(body: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(body))
    image.load()
    return image


# --- JSON ---------------------------------------------------------------------------------------


def test_multipart_upload_returns_boxes_scores_faces_timings(client: TestClient):
    started = time.perf_counter()
    response = client.post(
        "/v1/crop", files={"image": ("cat.png", PHOTO, "image/png")}, data={"ratios": "1:1,16:9"}
    )
    wall_ms = (time.perf_counter() - started) * 1000
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["width"], body["height"]) == PHOTO_SIZE
    assert [c["ratio"] for c in body["crops"]] == ["1:1", "16:9"]
    for crop in body["crops"]:
        x, y, w, h = crop["box"]
        assert x >= 0 and x + w <= body["width"] and y >= 0 and y + h <= body["height"]
        assert w / h == pytest.approx(parse_ratio(crop["ratio"]), rel=0.02)
        assert set(crop) >= {"score", "breakdown", "saliency_kept", "faces_kept", "chosen_by"}
        assert "image" not in crop or crop["image"] is None
    assert isinstance(body["faces"], list)
    # The timings add up: the stages fit in the engine's total, which with the rendering fits in
    # the request, which fits in the wall time the test saw (each is rounded to 0.01 ms).
    timings = body["timings"]
    stages = sum(timings[k] for k in ("decode", "saliency", "faces", "candidates"))
    assert 0 < stages <= timings["total"] + 0.05
    assert timings["total"] + timings["render_ms"] <= timings["request_ms"] + 0.05
    assert timings["request_ms"] <= wall_ms
    assert body["models"]
    assert "debug_view" not in body or body["debug_view"] is None


def test_raw_body_with_query_parameters(client: TestClient):
    response = client.post(
        "/v1/crop?ratios=4:5", content=PHOTO, headers={"content-type": "image/png"}
    )
    assert response.status_code == 200, response.text
    assert [c["ratio"] for c in response.json()["crops"]] == ["4:5"]


def test_default_ratios_come_from_the_settings(client: TestClient, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AUTOCROP_RATIOS", "3:2,2:3")
    get_settings.cache_clear()
    response = client.post("/v1/crop", content=PHOTO, headers={"content-type": "image/png"})
    assert [c["ratio"] for c in response.json()["crops"]] == ["3:2", "2:3"]


def test_include_adds_the_debug_view_and_crop_previews(client: TestClient):
    response = client.post(
        "/v1/crop?include=debug,images",
        files={"image": ("cat.png", PHOTO, "image/png")},
        data={"ratios": "1:1,9:16", "format": "webp"},
    )
    body = response.json()
    assert body["debug_view"].startswith("data:image/png;base64,")
    assert decode(base64.b64decode(body["debug_view"].split(",", 1)[1])).format == "PNG"
    for crop in body["crops"]:
        assert crop["image"].startswith("data:image/webp;base64,")
        preview = decode(base64.b64decode(crop["image"].split(",", 1)[1]))
        assert preview.format == "WEBP"
        assert max(preview.size) <= 512
        assert preview.width / preview.height == pytest.approx(parse_ratio(crop["ratio"]), rel=0.03)


# --- image out ----------------------------------------------------------------------------------


def test_output_image_returns_the_crop_bytes(client: TestClient):
    response = client.post(
        "/v1/crop?ratio=16:9&output=image&size=320x180&format=png",
        content=PHOTO,
        headers={"content-type": "image/png"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    assert response.headers["x-autocrop-ratio"] == "16:9"
    assert len(response.headers["x-autocrop-box"].split(",")) == 4
    assert decode(response.content).size == (320, 180)


def test_image_output_says_when_it_was_enlarged(client: TestClient):
    """chelsea.png is 451 x 300: a 1200x800 crop enlarges it, no_upscale keeps its pixels."""
    asked = "/v1/crop?ratio=3:2&output=image&size=1200x800"
    enlarged = client.post(asked, content=PHOTO, headers={"content-type": "image/png"})
    assert enlarged.status_code == 200, enlarged.text
    assert enlarged.headers["x-autocrop-upscaled"] == "true"
    assert decode(enlarged.content).size == (1200, 800) and enlarged.headers["x-autocrop-size"] == "1200x800"
    kept = client.post(asked + "&no_upscale=true", content=PHOTO, headers={"content-type": "image/png"})
    assert kept.status_code == 200, kept.text
    assert kept.headers["x-autocrop-upscaled"] == "false"
    w, h = decode(kept.content).size
    assert w <= 451 and h <= 300 and w / h == pytest.approx(1.5, rel=0.01)
    assert kept.headers["x-autocrop-size"] == f"{w}x{h}"
    listed = client.post("/v1/crop?ratios=1:1&include=images&size=600x600", content=PHOTO,
                         headers={"content-type": "image/png"}).json()  # fmt: skip
    assert listed["crops"][0]["upscaled"] is True and listed["crops"][0]["size"] == [600, 600]


def test_accept_image_returns_the_crop_bytes(client: TestClient):
    response = client.post(
        "/v1/crop",
        files={"image": ("cat.png", PHOTO, "image/png")},
        data={"ratios": "1:1"},
        headers={"accept": "image/*"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/jpeg"
    image = decode(response.content)
    assert image.format == "JPEG"
    assert image.width == image.height


def test_image_output_needs_one_ratio(client: TestClient):
    response = client.post(
        "/v1/crop?output=image&ratios=1:1,16:9",
        content=PHOTO,
        headers={"content-type": "image/png"},
    )
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_options"
    assert "ratio=" in response.json()["detail"]


def test_debug_endpoint_returns_a_png(client: TestClient):
    response = client.post("/v1/debug", files={"image": ("cat.png", PHOTO, "image/png")})
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert decode(response.content).format == "PNG"


# --- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_kwargs", "status", "error"),
    [
        (
            {"content": b"plain text, not a photo", "headers": {"content-type": "image/jpeg"}},
            415,
            "unsupported_image",
        ),
        ({"content": PHOTO, "params": {"ratios": "1:0"}}, 422, "invalid_options"),
        ({"content": PHOTO, "params": {"ratios": "wide"}}, 422, "invalid_options"),
        ({"content": PHOTO, "params": {"size": "big"}}, 422, "invalid_options"),
        ({"content": b""}, 422, "missing_image"),
        ({"files": {"other": ("a.txt", b"x", "text/plain")}}, 422, "missing_image"),
    ],
)  # fmt: skip
def test_domain_errors_map_to_clear_4xx_json(
    client: TestClient, request_kwargs: dict[str, Any], status: int, error: str
):
    response = client.post("/v1/crop", **request_kwargs)
    assert response.status_code == status, response.text
    assert response.json()["error"] == error
    assert response.json()["detail"]


def test_bad_parameters_are_422(client: TestClient):
    response = client.post("/v1/crop?quality=0&format=gif", content=PHOTO)
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_options" and set(response.json()["parameters"]) == {"quality", "format"}


def test_too_many_pixels_is_413(client: TestClient):
    # 110 MP of one colour: a small PNG, but over the 100 MP pixel guard.
    buffer = io.BytesIO()
    Image.new("L", (11_000, 10_000)).save(buffer, format="PNG")
    response = client.post("/v1/crop", content=buffer.getvalue())
    assert response.status_code == 413
    assert response.json()["error"] == "image_too_large"


def test_bodies_over_the_lambda_limit_get_413_with_the_way_forward(client: TestClient):
    limit = get_settings().api_max_body_bytes
    response = client.post("/v1/crop", content=b"\0" * (limit + 1))
    assert response.status_code == 413
    body = response.json()
    assert body["error"] == "payload_too_large"
    assert body["upload_to"] == "s3://photos-in/<key>"
    assert body["crops_at"] == "s3://photos-out/crops/<key>/"
    assert str(limit) in body["detail"]


def test_streamed_bodies_over_the_limit_get_413(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("AUTOCROP_API_MAX_BODY_BYTES", "1000")
    get_settings.cache_clear()

    def chunks():  # no content-length: chunked transfer
        for _ in range(5):
            yield b"\0" * 400

    response = client.post("/v1/crop", content=chunks())
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"


# --- the rest of the surface --------------------------------------------------------------------


def test_healthz_docs_and_demo_page(client: TestClient):
    assert client.get("/healthz").json()["status"] == "ok"
    schema = client.get("/openapi.json").json()
    crop = schema["paths"]["/v1/crop"]["post"]
    assert set(crop["requestBody"]["content"]) == {"multipart/form-data", "image/*"}
    assert {p["name"] for p in crop["parameters"]} >= {
        "ratios",
        "ratio",
        "size",
        "format",
        "output",
    }
    assert client.get("/docs").status_code == 200
    page = client.get("/")
    assert page.headers["content-type"].startswith("text/html")
    assert 'id="photo"' in page.text
    assert client.get("/static/app.js").status_code == 200


# --- through Mangum, with API Gateway HTTP API v2 events ---------------------------------------


def apigw_event(name: str, body: bytes | None = None) -> dict[str, Any]:
    event = json.loads((EVENTS / name).read_text())
    if body is not None:
        event["body"] = base64.b64encode(body).decode()
        event["headers"]["content-length"] = str(len(body))
    return event


@pytest.fixture
def lambda_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOCROP_INPUT_BUCKET", "photos-in")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_mangum_binary_in_binary_out(lambda_env: None):
    response = handler(apigw_event("apigw_http_v2_crop_image.json", PHOTO), LocalContext())
    assert response["statusCode"] == 200
    assert response["headers"]["content-type"] == "image/jpeg"
    assert response["isBase64Encoded"] is True
    image = decode(base64.b64decode(response["body"]))
    assert image.format == "JPEG"
    assert image.width / image.height == pytest.approx(16 / 9, rel=0.02)
    assert response["headers"]["x-autocrop-ratio"] == "16:9"


def test_mangum_binary_in_json_out(lambda_env: None):
    response = handler(apigw_event("apigw_http_v2_crop_json.json", PHOTO), LocalContext())
    assert response["statusCode"] == 200
    assert response["isBase64Encoded"] is False
    body = json.loads(response["body"])
    assert [c["ratio"] for c in body["crops"]] == ["1:1", "16:9"]


def test_mangum_errors_and_healthz(lambda_env: None):
    response = handler(apigw_event("apigw_http_v2_crop_json.json", b"not an image"), LocalContext())
    assert response["statusCode"] == 415
    assert json.loads(response["body"])["error"] == "unsupported_image"

    health = handler(apigw_event("apigw_http_v2_healthz.json"), LocalContext())
    assert health["statusCode"] == 200
    assert json.loads(health["body"]) == {"status": "ok", "version": app.version}


def test_mangum_oversized_body_gets_413(lambda_env: None):
    event = apigw_event(
        "apigw_http_v2_crop_json.json", b"\0" * (get_settings().api_max_body_bytes + 1)
    )
    del event["headers"]["content-length"]  # counted from the body itself
    response = handler(copy.deepcopy(event), LocalContext())
    assert response["statusCode"] == 413
    assert json.loads(response["body"])["upload_to"] == "s3://photos-in/<key>"
