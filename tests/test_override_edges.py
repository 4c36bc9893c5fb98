"""Overrides and crop URLs under inputs they were not designed around: JSON that parses but is
not an overrides document (wrong types, duplicate names, numbers no float holds, nesting deeper
than the parser goes), an empty key, a regeneration queue that cannot be reached, a photo
replaced between the crop URL's HEAD and its read, and the errors of the new routes in the
API's one shape, through the ASGI app and through Mangum with API Gateway's event."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from autocrop import InvalidOptionsError
from autocrop.overrides import Overrides
from autocrop.urls import crop_url
from functions import api_crops
from functions.settings import get_settings
from infra.local_stack import LocalContext, Poller, Stack
from tests.test_crop_urls import SECRET
from tests.test_overrides import api, cropped, route, sidecar
from tests.test_s3_trigger import load_event, photo, s3, stack

__all__ = ["api", "s3", "stack"]  # fixtures imported for pytest

#: Documents that parse as JSON but are not overrides: each must be refused, never stored.
ODD_DOCUMENTS = [
    b'{"focal_point": [1' + b"0" * 400 + b", 0.5]}",  # an integer no float holds
    b'{"keep": ' + b"[" * 5000 + b"]" * 5000 + b"}",  # deeper than the parser's recursion
    b'{"keep": false}', b'{"keep": 0}', b'{"keep": {}}', b'{"keep": ""}',  # wrong types, falsy
    b'{"boxes": []}', b'{"boxes": ""}', b'{"boxes": 0}',
    b'{"focal_point": [0.1, 0.1], "focal_point": [0.9, 0.9]}',  # which one was meant?
    b'{"boxes": {"16:9": [0, 0, 1, 0.5], "16:9": [0, 0, 0.5, 0.25]}}',
]  # fmt: skip


@pytest.mark.parametrize("document", ODD_DOCUMENTS, ids=range(len(ODD_DOCUMENTS)))
def test_odd_documents_are_refused_with_a_reason(document: bytes):
    with pytest.raises(InvalidOptionsError):
        Overrides.from_text(document)


def test_odd_put_bodies_answer_422_and_store_nothing(stack: Stack, s3: Any, api: TestClient):
    key = "odd/cat.png"
    before = cropped(s3, stack, key, photo())
    client = TestClient(api.app, raise_server_exceptions=False)
    for body in ODD_DOCUMENTS:
        answer = client.put(route(key), content=body)
        assert answer.status_code == 422, (body[:60], answer.text)
        assert answer.json()["error"] == "invalid_options" and answer.json()["detail"]
    listed = s3.list_objects_v2(Bucket=stack.output_bucket).get("Contents", [])
    assert not [o for o in listed if o["Key"].endswith("overrides.json")]
    assert Poller(stack).drain() == 0
    assert sidecar(s3, stack, key) == before


@pytest.mark.parametrize("method", ["get", "put", "delete"])
def test_an_empty_key_is_a_400_in_the_one_shape(method: str, stack: Stack, api: TestClient):
    client = TestClient(api.app, raise_server_exceptions=False)
    kwargs = {"json": {"focal_point": [0.5, 0.5]}} if method == "put" else {}
    answer = getattr(client, method)("/v1/photos//overrides", **kwargs)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "bad_key" and "empty" in answer.json()["detail"]


def test_the_overrides_path_says_every_method_it_answers(api: TestClient):
    answer = api.post(route("any/cat.png"), json={})
    assert answer.status_code == 405 and answer.json()["error"] == "method_not_allowed"
    allowed = {m.strip() for m in answer.headers["allow"].split(",")}
    assert {"GET", "PUT", "DELETE"} <= allowed
    assert all(m in answer.json()["detail"] for m in ("GET", "PUT", "DELETE"))


def test_a_regeneration_that_cannot_be_asked_for_changes_nothing(
    stack: Stack, s3: Any, api: TestClient, monkeypatch: pytest.MonkeyPatch
):
    """A PUT or DELETE answered with an error leaves the stored overrides as they were: the
    overrides stored, and none applied, would tell GET "regenerating" for good."""
    key = "noqueue/cat.png"
    cropped(s3, stack, key, photo())
    assert api.put(route(key), json={"focal_point": [0.2, 0.2]}).status_code == 202
    Poller(stack).drain()
    stored_key = sidecar(s3, stack, key)["outputs"]["1:1"].rsplit("/", 1)[0] + "/overrides.json"
    stored = s3.get_object(Bucket=stack.output_bucket, Key=stored_key)["Body"].read()
    monkeypatch.setenv("AUTOCROP_REGENERATE_QUEUE_URL", stack.queue_url.rsplit("/", 1)[0] + "/no-such-queue")
    get_settings.cache_clear()
    client = TestClient(api.app, raise_server_exceptions=False)
    for attempt in (lambda: client.put(route(key), json={"focal_point": [0.9, 0.9]}), lambda: client.delete(route(key))):
        answer = attempt()
        assert answer.status_code == 503, answer.text
        assert answer.json()["error"] == "regeneration_unavailable" and answer.json()["detail"]
        assert s3.get_object(Bucket=stack.output_bucket, Key=stored_key)["Body"].read() == stored
    # a photo without stored overrides keeps none
    other = "noqueue/other.png"
    cropped(s3, stack, other, photo())
    assert client.put(route(other), json={"focal_point": [0.9, 0.9]}).status_code == 503
    assert client.get(route(other)).json()["overrides"] is None
    assert not client.get(route(key)).json()["regenerating"]


def test_an_unexpected_failure_under_api_gateway_answers_in_the_one_shape(
    stack: Stack, s3: Any, api: TestClient, monkeypatch: pytest.MonkeyPatch
):
    """An AWS failure nobody mapped (here: an output bucket that is not there) is a 500 in
    {"error", "detail"}, not Starlette's plain text, through Mangum as API Gateway invokes it."""
    from functions.api import handler

    key = "gw/cat.png"
    cropped(s3, stack, key, photo())
    monkeypatch.setenv("AUTOCROP_OUTPUT_BUCKET", "no-such-bucket-anywhere")
    get_settings.cache_clear()
    event = copy.deepcopy(load_event("apigw_http_v2_healthz.json"))
    event["rawPath"] = event["requestContext"]["http"]["path"] = route(key)
    answer = handler(event, LocalContext())
    assert answer["statusCode"] == 500
    assert answer["headers"]["content-type"] == "application/json"
    body = json.loads(base64.b64decode(answer["body"]) if answer.get("isBase64Encoded") else answer["body"])
    assert body["error"] == "internal_error" and body["detail"]


def test_a_photo_replaced_between_head_and_read_never_serves_new_bytes_under_the_old_version(
    stack: Stack, s3: Any, api: TestClient
):
    """The crop URL checks the version against the photo's HEAD, then reads the photo: a new
    photo arriving in between is answered with the redirect, not its bytes under the old URL."""
    key = "race/cat.png"
    record = cropped(s3, stack, key, photo())
    old = crop_url(key, "4:5", (400, 500), SECRET, version=record["version"])
    assert api.get(old).status_code == 200
    client = api_crops.s3_client()
    replaced = []

    def replace_before_the_read(params: dict[str, Any], **_: Any) -> None:
        if params.get("Key") == key and params.get("Bucket") == stack.input_bucket and not replaced:
            replaced.append(s3.put_object(Bucket=stack.input_bucket, Key=key, Body=photo("coffee.png"),
                                          ContentType="image/png"))  # fmt: skip

    client.meta.events.register("provide-client-params.s3.GetObject", replace_before_the_read)
    try:
        # a size the master lacks pixels for, so the photo itself is read
        answer = api.get(crop_url(key, "4:5", (1600, 2000), SECRET, version=record["version"]))
    finally:
        client.meta.events.unregister("provide-client-params.s3.GetObject", replace_before_the_read)
    assert replaced, "the photo was not read"
    assert answer.status_code == 302, answer.headers
    assert "/_/" in answer.headers["location"] and answer.headers["cache-control"] == "public, max-age=60"


@pytest.mark.parametrize("method", ["get", "put", "delete"])
def test_a_key_too_long_for_outputs_is_400_on_every_route(method: str, stack: Stack, api: TestClient):
    """Refused from the key alone, before S3 is asked about a key it would refuse (S3 answers a
    HEAD of a key over its limit 400, not 404)."""
    client = TestClient(api.app, raise_server_exceptions=False)
    kwargs = {"json": {"focal_point": [0.5, 0.5]}} if method == "put" else {}
    answer = getattr(client, method)(route("é" * 600), **kwargs)
    assert answer.status_code == 400 and answer.json()["error"] == "key_too_long", answer.text
