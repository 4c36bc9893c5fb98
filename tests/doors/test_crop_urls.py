"""Signed crop URLs: signing known answers, key rings, and GET /v1/crops/... against the live moto
server (the photo and its stored analysis in S3, the signing key in SSM Parameter Store), through
FastAPI's TestClient (the spelling as sent is visible) and through Mangum with the events API
Gateway's HTTP API sends (the path already decoded)."""

from __future__ import annotations

import base64
import copy
import io
import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote_plus, unquote

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from autocrop import InvalidOptionsError
from autocrop.urls import crop_url, parse, signature, verify
from functions.api import crops
from functions.s3 import trigger
from functions.settings import get_settings
from infra.local_stack import LocalContext, Stack
from tests.doors.test_s3_trigger import load_event, photo, s3, stack, upload

__all__ = ["s3", "stack"]  # fixtures imported for pytest

#: The header CloudFront adds (serverless.yml; functions.api.crops.ORIGIN_HEADER).
ORIGIN_HEADER = "x-autocrop-origin"
#: A bare key (no id: it is k0), exactly the shortest length allowed.
SECRET = b"test signing key, not a real one"
OTHER = b"another signing key, also a test one"
ROUTE_PREFIX = "/v1/crops/"


def split(url: str) -> tuple[str, str]:
    """A crop URL's token (what carries the signature) and the signed path after it."""
    token, path = url[url.index(ROUTE_PREFIX) + len(ROUTE_PREFIX):].split("/", 1)
    return token, path


def resign(url: str, secret: bytes) -> str:
    """`url` with its signature replaced by one made with `secret` (the key id, if any, kept)."""
    token, path = split(url)
    kid = token.rsplit(".", 1)[0] + "." if "." in token else ""
    return f"{ROUTE_PREFIX}{kid}{signature(path, secret)}/{path}"


def test_signature_is_hmac_sha256_base64url_known_answer():
    # RFC 4231-style known answer (HMAC-SHA256, key "key"), written out independently.
    digest = bytes.fromhex("f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8")
    expected = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert signature("The quick brown fox jumps over the lazy dog", b"key") == expected
    assert verify(expected, "The quick brown fox jumps over the lazy dog", b"key")
    assert not verify(expected, "The quick brown fox jumps over the lazy cat", b"key")


def test_urls_round_trip_and_encode_every_key_segment():
    from autocrop.urls import CropUrl, KeyRing

    url = crop_url("2019/summer trip/b#ach?.jpg", "16:9", (1200, 675), SECRET, fmt="webp", base_url="https://cdn.example/")
    prefix = "https://cdn.example/v1/crops/k0."
    assert url.startswith(prefix)
    sig, path = url[len(prefix):].split("/", 1)
    assert path == "_/2019/summer%20trip/b%23ach%3F.jpg/16x9/1200x675.webp"
    assert verify(sig, path, SECRET)
    signed = parse(url[len("https://cdn.example/v1/crops/"):])
    assert signed.request == CropUrl("2019/summer trip/b#ach?.jpg", "16:9", (1200, 675), "webp")
    assert (signed.key_id, signed.signature) == ("k0", sig) and signed.verifies(KeyRing.parse(SECRET))
    decoded = parse(f"k0.{sig}/_/2019/summer trip/b#ach?.jpg/16x9/1200x675.webp", decoded=True)
    assert decoded == signed
    token, path = split(crop_url("a.png", "1.91:1", (382, 200), SECRET))
    assert path == "_/a.png/1.91x1/382x200.jpg" and parse(f"{token}/{path}").request.ratio == "1.91:1"


def test_the_version_slot_is_signed():
    url = crop_url("a.jpg", "1:1", (10, 10), SECRET, version="v3")
    token, path = split(url)
    assert path == "v3/a.jpg/1x1/10x10.jpg"
    assert parse(f"{token}/{path}").request.version == "v3"
    assert verify(token.split(".")[1], path, SECRET)
    assert not verify(token.split(".")[1], path.replace("v3", "v4"), SECRET)  # another version, another URL
    for bad in ("_x", "", "a/b", "x" * 65):
        with pytest.raises(InvalidOptionsError):
            crop_url("a.jpg", "1:1", (10, 10), SECRET, version=bad)


@pytest.mark.parametrize("ratio,size", [("16:9", (1000, 1000)), ("1:0", (10, 10)), ("16:9", (0, 0))])
def test_a_size_not_of_its_ratio_or_a_bad_ratio_is_refused(ratio: str, size: tuple[int, int]):
    with pytest.raises(InvalidOptionsError):
        crop_url("a.jpg", ratio, size, SECRET)


@pytest.mark.parametrize("key", ["a/../b.jpg", "./b.jpg", "a/./b.jpg", ".."])
def test_keys_a_browser_would_rewrite_get_no_url(key: str):
    with pytest.raises(InvalidOptionsError, match="segment"):
        crop_url(key, "1:1", (10, 10), SECRET)


def test_one_url_per_crop_no_zero_padded_sizes():
    """Variants of a signed URL would be separate cache entries: the path has one spelling."""
    token, _ = split(crop_url("a.jpg", "1:1", (100, 100), SECRET))
    with pytest.raises(InvalidOptionsError):
        parse(f"{token}/_/a.jpg/1x1/0100x0100.jpg")


# --- signing keys ----------------------------------------------------------------------------------


@pytest.mark.parametrize("stored", ["", "   \n", "\t", "31 bytes, one short of the rule", b"\x00" * 8])
def test_a_blank_or_short_key_is_no_key(stored: str | bytes):
    from autocrop.urls import KeyRing, SigningKey, SigningKeyError

    with pytest.raises(SigningKeyError):
        KeyRing.parse(stored)
    with pytest.raises(SigningKeyError):
        SigningKey.of(stored)
    with pytest.raises(SigningKeyError):
        crop_url("a.jpg", "1:1", (10, 10), stored)


def test_the_key_ring_format_and_its_rotation():
    from autocrop.urls import KeyRing, SigningKey, SigningKeyError

    bare = KeyRing.parse(SECRET.decode() + "\n")  # the format before key ids
    assert bare == KeyRing(SigningKey("k0", SECRET))
    once = bare.rotated(OTHER)
    assert (once.current.id, once.previous) == ("k1", SigningKey("k0", SECRET))
    twice = once.rotated(b"a third signing key for the test ring")
    assert (twice.current.id, twice.previous and twice.previous.id) == ("k2", "k1")
    assert twice.find("k0") is None  # two rotations ago: dropped
    assert KeyRing.parse(twice.to_json()) == twice
    assert json.loads(twice.to_json()) == {"current": {"id": "k2", "key": "a third signing key for the test ring"},
                                           "previous": {"id": "k1", "key": OTHER.decode()}}  # fmt: skip
    for broken in ('{"current": null}', '{"current": {"key": "no id, but long enough to be a key"}}', "{not json",
                   '{"current": {"id": "k1", "key": "short"}}',
                   json.dumps({"current": {"id": "k1", "key": OTHER.decode()}, "previous": {"id": "k1", "key": OTHER.decode()}})):  # fmt: skip
        with pytest.raises(SigningKeyError):
            KeyRing.parse(broken)


# --- the API, on the live moto stack --------------------------------------------------------------


def put_key(stack: Stack, name: str, value: str) -> None:
    stack.client("ssm").put_parameter(Name=name, Value=value, Type="SecureString", Overwrite=True)


def crop_upload(stack: Stack, key: str) -> dict[str, Any]:
    """The upload function's answer to the S3 event of `key` (which S3 sends URL-encoded)."""
    event = load_event("s3_put.json")
    record = event["Records"][0]
    record["s3"]["bucket"]["name"] = stack.input_bucket
    record["s3"]["object"] = {"key": quote_plus(key, safe="/")}
    [outcome] = trigger.process_event(event)
    return outcome


@pytest.fixture
def served(stack: Stack, s3: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """A photo uploaded and cropped by the upload function; the API reading the same stack,
    its signing key a SecureString in (moto's) SSM Parameter Store, read afresh on each request."""
    name = f"/autocrop/test-{uuid.uuid4().hex[:8]}/url-signing-key"
    put_key(stack, name, SECRET.decode())
    monkeypatch.setenv("AUTOCROP_URL_SIGNING_KEY_PARAMETER", name)
    monkeypatch.setenv("AUTOCROP_URL_KEY_MAX_AGE", "0")  # a rotation shows at once
    monkeypatch.setenv("AUTOCROP_INPUT_BUCKET", stack.input_bucket)
    monkeypatch.setenv("AUTOCROP_URL_MAX_SIDE", "2000")
    get_settings.cache_clear()
    crops.s3_client.cache_clear()
    key = "shoots/cat portrait.png"
    upload(s3, stack, key, photo())
    outcome = crop_upload(stack, key)
    assert outcome["status"] == "cropped"
    sidecar = json.loads(s3.get_object(Bucket=stack.output_bucket, Key=outcome["sidecar"])["Body"].read())
    from functions.api.app import app

    yield {"client": TestClient(app), "key": key, "sidecar": sidecar, "parameter": name}
    get_settings.cache_clear()
    crops.s3_client.cache_clear()


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
    # a URL of another version than the stored crops' redirects to theirs (tests/doors/test_overrides.py)
    versioned = served["client"].get(crop_url(served["key"], "16:9", (320, 180), SECRET, version="v2"), follow_redirects=False)
    assert versioned.status_code == 302
    current = crop_url(served["key"], "16:9", (320, 180), SECRET, version=served["sidecar"]["version"])
    assert versioned.headers["location"] == current


def test_unsigned_or_tampered_urls_are_403(served: dict[str, Any]):
    url = crop_url(served["key"], "1:1", (300, 300), SECRET)
    token, path = split(url)
    for bad in (f"/v1/crops/unsafe/{path}", f"/v1/crops/{token}/{path.replace('300x300', '301x301')}",
                f"/v1/crops/{token}/{path.replace('cat', 'dog')}", crop_url(served["key"], "1:1", (300, 300), OTHER),
                f"/v1/crops/{token.replace('k0.', 'k1.')}/{path}", f"/v1/crops/{token}/{path.replace('_/', 'v1/', 1)}",
                f"/v1/crops/{token}/not-a-crop-path"):  # fmt: skip
        response = get(served, bad)
        assert response.status_code == 403, bad
        assert response.json()["error"] == "bad_signature"


def test_other_spellings_of_a_signed_url_are_refused(served: dict[str, Any]):
    """Each decodes to the signed path; each would be its own cache entry and a fresh render."""
    url = crop_url(served["key"], "16:9", (320, 180), SECRET)
    assert get(served, url).status_code == 200
    token, path = split(url)
    spellings = [path.replace("portrait", "portr%61it"), path.replace("shoots/cat", "shoots%2Fcat"),
                 path.replace("shoots/cat", "shoots%2fcat"), path.replace(".png/", "%2Epng/"),
                 path.replace("cat%20", "%63at%20"), path.replace("/16x9/", "/%31%36x9/")]  # fmt: skip
    for spelling in spellings:
        response = get(served, f"/v1/crops/{token}/{spelling}")
        assert response.status_code == 400, spelling
        assert response.json()["error"] == "not_canonical"


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
    from functions.api.app import app

    response = TestClient(app).get(crop_url("a.jpg", "1:1", (10, 10), SECRET))
    assert response.status_code == 503 and response.json()["error"] == "crop_urls_not_configured"
    get_settings.cache_clear()


@pytest.mark.parametrize("stored", ["   \n", "short key"])
def test_a_blank_or_short_stored_key_signs_nothing(served: dict[str, Any], stack: Stack, stored: str):
    """A blank key would strip to the empty key, which anyone can sign with; a short one can be
    guessed: either is a configuration error (503), never a key."""
    put_key(stack, served["parameter"], stored)
    url = crop_url(served["key"], "16:9", (320, 180), SECRET)
    for forged in (resign(url, b""), resign(url, stored.strip().encode())):
        response = get(served, forged)
        assert response.status_code == 503, forged
        assert response.json()["error"] == "crop_urls_not_configured"


def test_the_previous_key_still_verifies_and_the_id_picks_the_key(served: dict[str, Any], stack: Stack, tmp_path,
                                                                   capsys: pytest.CaptureFixture[str]):  # fmt: skip
    """After a rotation the URLs signed before it (with the key now previous) keep working."""
    from infra.cli import main

    k1 = {"id": "k1", "key": SECRET.decode()}
    k2 = {"id": "k2", "key": OTHER.decode()}
    before, after = tmp_path / "before.json", tmp_path / "after.json"
    before.write_text(json.dumps({"current": k1}))  # what the parameter held when the URL was made
    after.write_text(json.dumps({"current": k2, "previous": k1}))
    args = ["url", served["key"], "--ratio", "16:9", "--size", "320x180"]
    assert main([*args, "--signing-key-file", str(before)]) == 0
    old_url = capsys.readouterr().out.strip()
    put_key(stack, served["parameter"], after.read_text())  # rotated
    assert main([*args, "--signing-key-file", str(after)]) == 0
    new_url = capsys.readouterr().out.strip()
    assert get(served, old_url).status_code == 200
    assert get(served, new_url).status_code == 200
    assert old_url != new_url
    swapped = new_url.replace(split(new_url)[0], split(old_url)[0].replace("k1.", "k2."))  # k1's signature as k2's
    assert get(served, swapped).status_code == 403


def test_rotating_the_key_in_ssm_keeps_the_last_keys_urls(served: dict[str, Any], stack: Stack):
    from autocrop.urls import KeyRing

    from infra.rotate_url_key import main as rotate

    bare_url = crop_url(served["key"], "16:9", (320, 180), SECRET)
    assert rotate(["--parameter", served["parameter"]]) == 0
    ring = KeyRing.parse(stack.client("ssm").get_parameter(Name=served["parameter"], WithDecryption=True)["Parameter"]["Value"])
    assert ring.current.id == "k1" and ring.previous is not None and ring.previous.secret == SECRET
    assert len(ring.current.secret) >= 32 and ring.current.secret != SECRET
    first_url = crop_url(served["key"], "16:9", (320, 180), ring)
    assert get(served, bare_url).status_code == 200 and get(served, first_url).status_code == 200
    assert rotate(["--parameter", served["parameter"]]) == 0
    assert get(served, bare_url).status_code == 403  # two rotations ago
    assert get(served, first_url).status_code == 200
    described = stack.client("ssm").describe_parameters(ParameterFilters=[{"Key": "Name", "Values": [served["parameter"]]}])
    assert described["Parameters"][0]["Type"] == "SecureString"


def test_a_rotation_creates_a_missing_parameter(stack: Stack):
    from autocrop.urls import KeyRing

    from infra.cli import main

    name = f"/autocrop/test-{uuid.uuid4().hex[:8]}/url-signing-key"
    assert main(["rotate-url-key", "--parameter", name]) == 0
    ring = KeyRing.parse(stack.client("ssm").get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"])
    assert ring.current.id == "k1" and ring.previous is None


def test_the_cli_prints_the_same_signed_url(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path):
    from infra.cli import main

    monkeypatch.setenv("AUTOCROP_URL_SIGNING_KEY", SECRET.decode())
    args = ["url", "a b/c.jpg", "--ratio", "16:9", "--size", "1200x675", "--format", "webp", "--base-url", "https://cdn.example"]
    assert main(args) == 0
    assert capsys.readouterr().out.strip() == crop_url("a b/c.jpg", "16:9", (1200, 675), SECRET, "webp", "https://cdn.example")
    key_file = tmp_path / "key"
    key_file.write_text(OTHER.decode() + "\n")
    assert main([*args, "--signing-key-file", str(key_file)]) == 0
    assert capsys.readouterr().out.strip() == crop_url("a b/c.jpg", "16:9", (1200, 675), OTHER, "webp", "https://cdn.example")
    assert main([*args, "--crop-version", "v7"]) == 0
    assert "/v7/a%20b/c.jpg/" in capsys.readouterr().out
    monkeypatch.delenv("AUTOCROP_URL_SIGNING_KEY")
    assert main(args) == 2
    assert main(["url", "x.jpg", "--ratio", "16:9", "--size", "100x100", "--signing-key-file", str(key_file)]) == 2


@pytest.mark.parametrize("stored", ["   ", "short key"])
def test_the_cli_refuses_a_blank_or_short_key(stored: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    from infra.cli import main

    monkeypatch.setenv("AUTOCROP_URL_SIGNING_KEY", stored)
    assert main(["url", "a.jpg", "--ratio", "1:1", "--size", "10x10"]) == 2
    assert "/v1/crops/" not in capsys.readouterr().out


# --- the origin secret: the CDN is the only way in -------------------------------------------------


def test_with_an_origin_secret_crop_urls_answer_only_the_cdn(served: dict[str, Any], stack: Stack,
                                                             monkeypatch: pytest.MonkeyPatch):  # fmt: skip
    """The execute-api domain answers the route too: without CloudFront's header, 403."""
    url = crop_url(served["key"], "16:9", (320, 180), SECRET)
    secret = "origin secret the distribution sends"
    name = f"/autocrop/test-{uuid.uuid4().hex[:8]}/url-origin-secret"
    stack.client("ssm").put_parameter(Name=name, Value=secret, Type="String")
    for variable, value in (("AUTOCROP_URL_ORIGIN_SECRET", secret), ("AUTOCROP_URL_ORIGIN_SECRET_PARAMETER", name)):
        monkeypatch.delenv("AUTOCROP_URL_ORIGIN_SECRET", raising=False)
        monkeypatch.setenv(variable, value)
        get_settings.cache_clear()
        direct = get(served, url)
        assert direct.status_code == 403 and direct.json()["error"] == "not_through_the_cdn", variable
        assert get(served, url, **{ORIGIN_HEADER: "a guess"}).status_code == 403
        assert get(served, url, **{ORIGIN_HEADER: secret}).status_code == 200
    stack.client("ssm").put_parameter(Name=name, Value=" ", Type="String", Overwrite=True)
    assert get(served, url, **{ORIGIN_HEADER: " "}).status_code == 503  # configured but blank: closed


# --- forgeries cost no S3 call ---------------------------------------------------------------------


class _S3Trap(BaseHTTPRequestHandler):
    """Stands where S3 would: counts every request and fails it."""

    hits: list[str] = []

    def _fail(self) -> None:
        _S3Trap.hits.append(f"{self.command} {self.path}")
        self.send_response(500)
        self.send_header("content-length", "0")
        self.end_headers()

    do_GET = do_HEAD = do_PUT = do_POST = _fail  # noqa: N815 (the stdlib's names)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def s3_trap(aws_env: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every S3 call of the API goes to a server that counts it (SSM stays on moto)."""
    _S3Trap.hits = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _S3Trap)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setenv("AUTOCROP_INPUT_BUCKET", "photos")
    monkeypatch.setenv("AUTOCROP_OUTPUT_BUCKET", "crops")
    monkeypatch.setenv("AUTOCROP_URL_SIGNING_KEY", SECRET.decode())
    get_settings.cache_clear()
    crops.s3_client.cache_clear()
    yield _S3Trap.hits
    server.shutdown()
    get_settings.cache_clear()
    crops.s3_client.cache_clear()


def test_forgeries_are_refused_before_any_s3_call(s3_trap: list[str], monkeypatch: pytest.MonkeyPatch):
    from functions.api.app import app

    client = TestClient(app, raise_server_exceptions=False)
    url = crop_url("shoots/beach.jpg", "16:9", (320, 180), SECRET)
    token, path = split(url)
    forgeries = [resign(url, b""), resign(url, b"short"), resign(url, OTHER), f"/v1/crops/{token}/{path.replace('320x180', '640x360')}",
                 f"/v1/crops/{token}/{path.replace('beach', 'be%61ch')}", f"/v1/crops/{token}/{path.replace('shoots/', 'shoots%2F')}",
                 f"/v1/crops/{token}/nothing", "/v1/crops/x"]  # fmt: skip
    for forged in forgeries:
        assert client.get(forged).status_code in (400, 403), forged
    # Signed, but no photo's crop at that size can fit one answer: refused from the URL alone.
    too_big = client.get(crop_url("shoots/beach.jpg", "16:9", (4096, 2304), SECRET, fmt="png"))
    assert (too_big.status_code, too_big.json()["error"]) == (400, "too_large_for_a_url")
    monkeypatch.setenv("AUTOCROP_URL_ORIGIN_SECRET", "origin secret the distribution sends")
    get_settings.cache_clear()
    assert client.get(url).status_code == 403  # signed, but not through the CDN
    assert s3_trap == []
    monkeypatch.delenv("AUTOCROP_URL_ORIGIN_SECRET")
    get_settings.cache_clear()
    assert client.get(url).status_code >= 500 and s3_trap  # the trap does stand where S3 would


# --- under Lambda: API Gateway's HTTP API decodes the path, the function must not again -------------


def api_gateway_event(sent: str) -> dict[str, Any]:
    """The payload 2.0 event API Gateway's HTTP API makes of a GET of `sent` (a path as the client
    sent it) on the crop URL route: a captured event's shape, with the path percent-decoded in
    rawPath and requestContext.http.path alike, as API Gateway delivers it."""
    event = copy.deepcopy(load_event("apigw_http_v2_healthz.json"))
    decoded = unquote(sent, errors="strict")  # API Gateway's one decoding
    event["rawPath"] = event["requestContext"]["http"]["path"] = decoded
    event["routeKey"] = event["requestContext"]["routeKey"] = "GET /v1/crops/{proxy+}"
    event["pathParameters"] = {"proxy": decoded[len(ROUTE_PREFIX):]}
    return event


def invoke(sent: str) -> dict[str, Any]:
    from functions.api.app import handler

    return handler(api_gateway_event(sent), LocalContext())


def test_api_gateway_hands_the_function_a_decoded_path():
    """A captured HTTP API event of a request for /capture/space%20value (hotsock/voker, MIT,
    vokerhttp/testdata/apigwv2-request.json): both path fields hold it decoded. Mangum's own
    handler would decode that once more; the function's handler takes it as it is."""
    from mangum.handlers import HTTPGateway

    from functions.api.gateway import HttpApiGateway

    captured = load_event("apigw_http_v2_decoded_path.json")
    assert captured["rawPath"] == captured["requestContext"]["http"]["path"] == "/capture/space value"
    config = {"api_gateway_base_path": "/", "text_mime_types": [], "exclude_headers": []}
    event = copy.deepcopy(captured)
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/capture/sale%41.jpg"  # sent: sale%2541.jpg
    assert HttpApiGateway.infer(event, LocalContext(), config)
    assert HttpApiGateway(event, LocalContext(), config).scope["path"] == "/capture/sale%41.jpg"
    assert HttpApiGateway(event, LocalContext(), config).scope["raw_path"] is None
    assert HTTPGateway(event, LocalContext(), config).scope["path"] == "/capture/saleA.jpg"  # decoded twice


def test_through_mangum_as_api_gateway_delivers_it(served: dict[str, Any]):
    """The URL a client signed verifies from the decoded path, and the image comes back base64."""
    url = crop_url(served["key"], "16:9", (320, 180), SECRET, fmt="jpeg", version=served["sidecar"]["version"])
    assert " " in unquote(url)  # "cat portrait.png", as API Gateway passes it on
    answer = invoke(url)
    assert answer["statusCode"] == 200, answer.get("body", "")[:300]
    assert answer["isBase64Encoded"] and answer["headers"]["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(base64.b64decode(answer["body"]))).size == (320, 180)
    assert invoke(url.replace("320x180", "640x360"))["statusCode"] == 403


#: Keys the upload function crops and whose URLs must name them: '%' (which a second decoding
#: would eat), '+', spaces, '//', unicode.
AWKWARD_KEYS = ["shoots/a%20b.jpg", "sale%41+more%2B.jpg", "2019//summer trip/beach.png", "été/写真 ünï.png"]


@pytest.mark.parametrize("key", AWKWARD_KEYS)
def test_keys_round_trip_from_upload_to_url_under_api_gateway(key: str, stack: Stack, s3: Any, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AUTOCROP_URL_SIGNING_KEY", SECRET.decode())
    monkeypatch.setenv("AUTOCROP_INPUT_BUCKET", stack.input_bucket)
    get_settings.cache_clear()
    crops.s3_client.cache_clear()
    upload(s3, stack, key, photo())
    outcome = crop_upload(stack, key)
    assert outcome["status"] == "cropped"
    version = json.loads(s3.get_object(Bucket=stack.output_bucket, Key=outcome["sidecar"])["Body"].read())["version"]
    assert invoke(crop_url(key, "16:9", (320, 180), SECRET))["headers"]["location"] == crop_url(
        key, "16:9", (320, 180), SECRET, version=version)  # (the URL naming no version redirects to it)
    url = crop_url(key, "16:9", (320, 180), SECRET, version=version)
    answer = invoke(url)
    assert answer["statusCode"] == 200, answer.get("body", "")[:300]
    assert answer["headers"]["x-autocrop-analysis"] == "stored"  # the upload's own analysis, found by key
    assert Image.open(io.BytesIO(base64.b64decode(answer["body"]))).size == (320, 180)
    get_settings.cache_clear()
    crops.s3_client.cache_clear()


def test_a_double_encoded_spelling_names_nothing_under_api_gateway(stack: Stack, s3: Any, monkeypatch: pytest.MonkeyPatch):
    """`sale%41.jpg` is sale%2541.jpg in its URL; sale%252541.jpg, decoded twice, used to reach it too."""
    monkeypatch.setenv("AUTOCROP_URL_SIGNING_KEY", SECRET.decode())
    monkeypatch.setenv("AUTOCROP_INPUT_BUCKET", stack.input_bucket)
    get_settings.cache_clear()
    crops.s3_client.cache_clear()
    key = "sale%41.jpg"
    upload(s3, stack, key, photo())
    url = crop_url(key, "1:1", (100, 100), SECRET)
    assert "sale%2541.jpg" in url
    assert invoke(url.replace("sale%2541.jpg", "sale%252541.jpg"))["statusCode"] == 403
    assert invoke(url)["statusCode"] == 200
    get_settings.cache_clear()
    crops.s3_client.cache_clear()


def test_a_key_no_url_can_serve_gets_no_url():
    """A line break (or any control character) never reaches the route: no URL is signed for it."""
    for key in ("line\nbreak.jpg", "tab\there.jpg", "nul\x00.jpg"):
        with pytest.raises(InvalidOptionsError, match="control character"):
            crop_url(key, "16:9", (320, 180), SECRET)
