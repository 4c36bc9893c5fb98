"""Every API error in one shape, {"error": code, "detail": sentence}, saying what happened and
what to do: empty uploads, unknown parameters, a photo under another field name, routes that
are not there; through the ASGI app and through Mangum with API Gateway's own event shape."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import skimage
from fastapi.testclient import TestClient

from functions.api.app import app, handler
from functions.api.models import CropParams
from functions.settings import get_settings
from infra.local_stack import LocalContext

PHOTO = (Path(skimage.__file__).parent / "data" / "chelsea.png").read_bytes()
EVENTS = Path(__file__).resolve().parents[1] / "events"


@pytest.fixture(scope="module")
def client() -> TestClient:
    get_settings.cache_clear()
    return TestClient(app, raise_server_exceptions=False)


def error_of(body: Any) -> tuple[str, str]:
    """The (code, detail) of an error body that has the API's one shape."""
    assert isinstance(body, dict) and isinstance(body.get("error"), str), body
    assert isinstance(body.get("detail"), str) and len(body["detail"]) > 20, body
    return body["error"], body["detail"]


@pytest.mark.parametrize(
    ("request_kwargs", "status", "code", "says"),
    [
        # an empty photo is an unreadable image (as the S3 function and the CLI treat one)
        ({"files": {"image": ("empty.jpg", b"", "image/jpeg")}}, 415, "unsupported_image", "'empty.jpg') is empty (0 bytes)"),
        ({"content": b"", "headers": {"content-type": "image/jpeg"}}, 415, "unsupported_image", "body is empty (0 bytes)"),
        # no photo at all
        ({"content": b""}, 422, "missing_image", "-F image=@photo.jpg"),
        ({"files": {"file": ("cat.png", PHOTO, "image/png")}}, 422, "missing_image", "its file fields: 'file'"),
        ({"data": {"image": "cat.png"}, "files": {"other": ("a", b"1")}}, 422, "missing_image", "holds text, not a file"),
    ],
)  # fmt: skip
def test_photo_problems_say_what_was_sent_and_what_to_send(
    client: TestClient, request_kwargs: dict[str, Any], status: int, code: str, says: str
) -> None:
    response = client.post("/v1/crop", **request_kwargs)
    assert response.status_code == status, response.text
    assert error_of(response.json())[0] == code
    assert says in response.json()["detail"]


@pytest.mark.parametrize("where", ["query", "form"])
def test_an_unknown_parameter_is_named_in_the_one_error_shape(client: TestClient, where: str) -> None:
    if where == "query":
        response = client.post("/v1/crop?ratios=1:1&ratoi=16:9", content=PHOTO)
    else:
        response = client.post("/v1/crop", files={"image": ("cat.png", PHOTO, "image/png")},
                               data={"ratios": "1:1", "ratoi": "16:9"})  # fmt: skip
    assert response.status_code == 422
    code, detail = error_of(response.json())
    assert code == "invalid_options" and response.json()["parameters"] == ["ratoi"]
    assert "unknown parameter 'ratoi'" in detail and all(name in detail for name in CropParams.model_fields)


def test_out_of_range_parameters_are_named_with_what_was_given(client: TestClient) -> None:
    response = client.post("/v1/crop?quality=0&format=gif", content=PHOTO)
    assert response.status_code == 422
    code, detail = error_of(response.json())
    assert code == "invalid_options" and set(response.json()["parameters"]) == {"quality", "format"}
    assert "quality: " in detail and "(got 'gif')" in detail and "'webp'" in detail


def test_routes_that_are_not_there_answer_in_the_same_shape(client: TestClient) -> None:
    missing = client.get("/v1/cropp")
    assert missing.status_code == 404 and error_of(missing.json()) == (
        "not_found", "no GET /v1/cropp here: the routes are listed at /docs")  # fmt: skip
    wrong_method = client.get("/v1/crop")
    assert wrong_method.status_code == 405 and wrong_method.headers["allow"] == "POST"
    assert error_of(wrong_method.json())[0] == "method_not_allowed" and "answers POST" in wrong_method.json()["detail"]


def test_the_photo_field_is_documented_as_the_only_one(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    form = schema["paths"]["/v1/crop"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form["required"] == ["image"] and "file" not in form["properties"]


# --- the same through Mangum, with API Gateway HTTP API v2 events ------------------------------


def apigw_event(body: bytes, query: dict[str, str], content_type: str) -> dict[str, Any]:
    event = json.loads((EVENTS / "apigw_http_v2_crop_json.json").read_text())
    event["body"] = base64.b64encode(body).decode()
    event["headers"]["content-length"] = str(len(body))
    event["headers"]["content-type"] = content_type
    event["queryStringParameters"] = query
    event["rawQueryString"] = "&".join(f"{k}={v}" for k, v in query.items())
    return event


@pytest.mark.parametrize(
    ("body", "query", "content_type", "status", "code"),
    [
        (b"", {"ratios": "1:1"}, "image/png", 415, "unsupported_image"),
        (PHOTO, {"ratios": "1:1", "sizes": "10x10"}, "image/png", 422, "invalid_options"),
        (b"", {}, "application/octet-stream", 422, "missing_image"),
    ],
)  # fmt: skip
def test_api_gateway_events_get_the_same_errors(
    monkeypatch: pytest.MonkeyPatch, body: bytes, query: dict[str, str], content_type: str, status: int, code: str
) -> None:
    monkeypatch.setenv("AUTOCROP_INPUT_BUCKET", "photos-in")
    get_settings.cache_clear()
    try:
        response = handler(apigw_event(body, query, content_type), LocalContext())
    finally:
        get_settings.cache_clear()
    assert response["statusCode"] == status, response["body"]
    assert response["headers"]["content-type"] == "application/json"
    assert error_of(json.loads(response["body"]))[0] == code
