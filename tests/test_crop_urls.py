"""Signed crop URLs: signing known answers, and GET /v1/crops/... against the live moto server
(the photo and its stored analysis in S3, the signing key in SSM Parameter Store)."""

from __future__ import annotations

import base64
import copy
import io
import json
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from autocrop import InvalidOptionsError
from autocrop.urls import CropUrl, crop_url, parse, signature, verify
from functions import api_crops, s3_trigger
from functions.settings import get_settings
from infra.local_stack import Stack
from tests.test_s3_trigger import load_event, photo, s3, stack, upload

__all__ = ["s3", "stack"]  # fixtures imported for pytest

SECRET = b"test signing key, not a real one"


def test_signature_is_hmac_sha256_base64url_known_answer():
    # RFC 4231-style known answer (HMAC-SHA256, key "key"), written out independently.
    digest = bytes.fromhex("f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8")
    expected = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert signature("The quick brown fox jumps over the lazy dog", b"key") == expected
    assert verify(expected, "The quick brown fox jumps over the lazy dog", b"key")
    assert not verify(expected, "The quick brown fox jumps over the lazy cat", b"key")


def test_urls_round_trip_and_encode_every_key_segment():
    url = crop_url("2019/summer trip/b#ach?.jpg", "16:9", (1200, 675), SECRET, fmt="webp", base_url="https://cdn.example/")
    prefix = "https://cdn.example/v1/crops/"
    assert url.startswith(prefix)
    sig, path = url[len(prefix):].split("/", 1)
    assert path == "2019/summer%20trip/b%23ach%3F.jpg/16x9/1200x675.webp"
    assert verify(sig, path, SECRET)
    assert parse(path) == CropUrl("2019/summer trip/b#ach?.jpg", "16:9", (1200, 675), "webp")
    assert parse("2019/summer trip/b#ach?.jpg/16x9/1200x675.webp", decoded=True).path() == path
    assert parse("a.png/1.91x1/382x200.jpg").ratio == "1.91:1"


@pytest.mark.parametrize("ratio,size", [("16:9", (1000, 1000)), ("1:0", (10, 10)), ("16:9", (0, 0))])
def test_a_size_not_of_its_ratio_or_a_bad_ratio_is_refused(ratio: str, size: tuple[int, int]):
    with pytest.raises(InvalidOptionsError):
        crop_url("a.jpg", ratio, size, SECRET)


@pytest.mark.parametrize("key", ["a/../b.jpg", "./b.jpg", "a//b.jpg", "a/"])
def test_keys_a_browser_would_rewrite_get_no_url(key: str):
    with pytest.raises(InvalidOptionsError, match="segment"):
        crop_url(key, "1:1", (10, 10), SECRET)


def test_one_url_per_crop_no_zero_padded_sizes():
    """Variants of a signed URL would be separate cache entries: the path has one spelling."""
    with pytest.raises(InvalidOptionsError):
        parse("a.jpg/1x1/0100x0100.jpg")


@pytest.fixture
def served(stack: Stack, s3: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A photo uploaded and cropped by the upload function; the API reading the same stack,
    its signing key a SecureString in (moto's) SSM Parameter Store."""
    name = f"/autocrop/test-{uuid.uuid4().hex[:8]}/url-signing-key"
    stack.client("ssm").put_parameter(Name=name, Value=SECRET.decode(), Type="SecureString")
    monkeypatch.setenv("AUTOCROP_URL_SIGNING_KEY_PARAMETER", name)
    monkeypatch.setenv("AUTOCROP_INPUT_BUCKET", stack.input_bucket)
    monkeypatch.setenv("AUTOCROP_URL_MAX_SIDE", "2000")
    get_settings.cache_clear()
    api_crops.s3_client.cache_clear()
    key = "shoots/cat portrait.png"
    upload(s3, stack, key, photo())
    event = load_event("s3_put.json")
    record = event["Records"][0]
    record["s3"]["bucket"]["name"] = stack.input_bucket
    record["s3"]["object"] = {"key": key.replace(" ", "+")}
    [outcome] = s3_trigger.process_event(event)
    assert outcome["status"] == "cropped"
    sidecar = json.loads(s3.get_object(Bucket=stack.output_bucket, Key=outcome["sidecar"])["Body"].read())
    from functions.api import app

    yield {"client": TestClient(app), "key": key, "sidecar": sidecar}
    get_settings.cache_clear()
    api_crops.s3_client.cache_clear()


def get(served: dict[str, Any], url: str, **headers: str) -> Any:
    return served["client"].get(url, headers=headers)


def test_a_signed_url_is_the_stored_crop_at_exactly_its_size_with_cache_headers(served: dict[str, Any]):
    url = crop_url(served["key"], "16:9", (640, 360), SECRET, fmt="webp")
    response = get(served, url)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/webp"
    assert Image.open(io.BytesIO(response.content)).size == (640, 360)
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert response.headers["x-autocrop-analysis"] == "stored"
    stored = next(c for c in served["sidecar"]["crops"] if c["ratio"] == "16:9")
    assert response.headers["x-autocrop-box"] == ",".join(map(str, stored["box"]))
    assert "analysis;dur=" in response.headers["server-timing"]

    again = get(served, url, **{"If-None-Match": response.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    other = get(served, crop_url(served["key"], "16:9", (320, 180), SECRET))
    assert other.headers["etag"] != response.headers["etag"]
    assert Image.open(io.BytesIO(other.content)).size == (320, 180)


def test_unsigned_or_tampered_urls_are_403(served: dict[str, Any]):
    url = crop_url(served["key"], "1:1", (300, 300), SECRET)
    sig_and_path = url[len("/v1/crops/"):]
    sig, path = sig_and_path.split("/", 1)
    for bad in (f"/v1/crops/unsafe/{path}", f"/v1/crops/{sig}/{path.replace('300x300', '301x301')}",
                f"/v1/crops/{sig}/{path.replace('cat', 'dog')}", crop_url(served["key"], "1:1", (300, 300), b"other key"),
                f"/v1/crops/{sig}/not-a-crop-path"):  # fmt: skip
        response = get(served, bad)
        assert response.status_code == 403, bad
        assert response.json()["error"] == "bad_signature"


def test_a_signed_size_over_the_maximum_is_400_and_a_missing_photo_404(served: dict[str, Any]):
    response = get(served, crop_url(served["key"], "1:1", (2400, 2400), SECRET))
    assert response.status_code == 400 and response.json()["error"] == "bad_size"
    assert get(served, crop_url("no/such photo.jpg", "1:1", (100, 100), SECRET)).status_code == 404


def test_a_replaced_photo_or_a_new_ratio_is_analysed_afresh(served: dict[str, Any], stack: Stack, s3: Any):
    fresh_ratio = get(served, crop_url(served["key"], "3:2", (300, 200), SECRET))
    assert fresh_ratio.status_code == 200 and fresh_ratio.headers["x-autocrop-analysis"] == "fresh"
    # cached briefly: the upload function's stored analysis is about to take over
    assert fresh_ratio.headers["cache-control"] == "public, max-age=300"
    url = crop_url(served["key"], "16:9", (320, 180), SECRET)
    before = get(served, url)
    upload(s3, stack, served["key"], photo("astronaut.png"))  # replaced: its stored analysis is stale
    after = get(served, url)
    assert after.headers["x-autocrop-analysis"] == "fresh"
    assert after.headers["etag"] != before.headers["etag"]


def test_without_a_signing_key_crop_urls_are_503(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("AUTOCROP_URL_SIGNING_KEY_PARAMETER", raising=False)
    monkeypatch.delenv("AUTOCROP_URL_SIGNING_KEY", raising=False)
    get_settings.cache_clear()
    from functions.api import app

    response = TestClient(app).get(crop_url("a.jpg", "1:1", (10, 10), SECRET))
    assert response.status_code == 503 and response.json()["error"] == "crop_urls_not_configured"
    get_settings.cache_clear()


def test_the_cli_prints_the_same_signed_url(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path):
    from autocrop.cli import main

    monkeypatch.setenv("AUTOCROP_URL_SIGNING_KEY", SECRET.decode())
    args = ["url", "a b/c.jpg", "--ratio", "16:9", "--size", "1200x675", "--format", "webp", "--base-url", "https://cdn.example"]
    assert main(args) == 0
    assert capsys.readouterr().out.strip() == crop_url("a b/c.jpg", "16:9", (1200, 675), SECRET, "webp", "https://cdn.example")
    key_file = tmp_path / "key"
    key_file.write_text("another key\n")
    assert main([*args, "--signing-key-file", str(key_file)]) == 0
    assert capsys.readouterr().out.strip() == crop_url("a b/c.jpg", "16:9", (1200, 675), b"another key", "webp", "https://cdn.example")
    monkeypatch.delenv("AUTOCROP_URL_SIGNING_KEY")
    assert main(args) == 2
    assert main(["url", "x.jpg", "--ratio", "16:9", "--size", "100x100", "--signing-key-file", str(key_file)]) == 2


def test_through_mangum_as_api_gateway_delivers_it(served: dict[str, Any]):
    """API Gateway's HTTP API hands the Lambda the path percent-decoded (rawPath and
    requestContext.http.path alike): the signature is checked over the one canonical
    encoding, so the URL a client signed still verifies, and the image comes back base64."""
    from functions.api import handler
    from infra.local_stack import LocalContext

    url = crop_url(served["key"], "16:9", (320, 180), SECRET, fmt="jpeg")
    from urllib.parse import unquote

    decoded = unquote(url)
    assert " " in decoded  # "cat portrait.png", as API Gateway passes it on
    event = copy.deepcopy(load_event("apigw_http_v2_healthz.json"))
    event["rawPath"] = event["requestContext"]["http"]["path"] = decoded
    event["routeKey"] = event["requestContext"]["routeKey"] = "GET /v1/crops/{proxy+}"
    answer = handler(event, LocalContext())
    assert answer["statusCode"] == 200, answer.get("body", "")[:300]
    assert answer["isBase64Encoded"] and answer["headers"]["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(base64.b64decode(answer["body"]))).size == (320, 180)
    event["rawPath"] = event["requestContext"]["http"]["path"] = decoded.replace("320x180", "640x360")
    assert handler(event, LocalContext())["statusCode"] == 403
