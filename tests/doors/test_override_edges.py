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
from autocrop.engine import analyse
from autocrop.options import CropOptions
from autocrop.overrides import MIN_BOX_SIDE, Overrides, box_fits
from autocrop.urls import crop_url
from functions.api import crops
from functions.settings import get_settings
from infra.local_stack import LocalContext, Poller, Stack
from tests.doors.test_crop_urls import SECRET
from tests.doors.test_overrides import RATIOS, api, boxes, cropped, route, sidecar
from tests.doors.test_s3_trigger import load_event, photo, s3, stack

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
    from functions.api.app import handler

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
    client = crops.s3_client()
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


# --- a box is a crop a person could have drawn: big enough, and of its ratio to the pixel ------

#: (box, ratio, photo width, photo height) -> None (it fits) or a phrase of the reason.
BOX_TABLE = [
    ([0, 0, 1e-6, 1e-6 * 9 / 16], "16:9", 512, 512, f"at least {MIN_BOX_SIDE} px"),  # 1x1 px once rounded
    ([0, 0, 15 * 16 / 9 / 512, 15 / 512], "16:9", 512, 512, f"at least {MIN_BOX_SIDE} px"),
    ([0, 0, 16 * 16 / 9 / 512, 16 / 512], "16:9", 512, 512, None),  # the smallest box there is
    ([0, 0, 10 / 512, 10 * 16 / 9 / 512], "9:16", 512, 512, f"at least {MIN_BOX_SIDE} px"),
    ([0, 0, 1, 1], "3:2", 12, 8, f"at least {MIN_BOX_SIDE} px"),  # a photo too small for any box
    ([0, 0, 1, 1], "16:9", 512, 512, "not 16:9"),
    ([0, 0, 1, 0.995], "16:9", 4000, 2250, "not 16:9"),  # 0.5% off: 11 px short on this photo
    ([0, 0, 1, 1 - 1.5 / 2250], "16:9", 4000, 2250, "not 16:9"),  # a pixel and a half
    ([0, 0, 1, 1 - 0.9 / 2250], "16:9", 4000, 2250, None),  # under a pixel: rounding, not a shape
    ([0.1, 0.0, 0.5, 0.5 * 451 / 300 * 9 / 16], "16:9", 451, 300, None),
]  # fmt: skip


@pytest.mark.parametrize("box,ratio,width,height,why", BOX_TABLE, ids=range(len(BOX_TABLE)))
def test_a_box_is_measured_in_pixels_of_the_photo(box: list[float], ratio: str, width: int, height: int, why: str | None):
    region = Overrides.from_json({"boxes": {ratio: box}}).boxes[0][1]
    found = box_fits(region, ratio, width, height)
    if why is None:
        assert found is None
    else:
        assert found is not None and why in found and f"{width}x{height}" in found


def test_a_tiny_box_is_set_aside_at_crop_time_with_a_warning():
    """A box stored for a photo of another size, now a few pixels: not a 1x1 crop stretched."""
    tiny = Overrides.from_json({"boxes": {"16:9": [0.5, 0.5, 1e-6, 1e-6 * 9 / 16]}})
    crop = analyse(photo("astronaut.png"), tiny.apply(CropOptions(ratios=RATIOS))).crop("16:9")
    assert crop.chosen_by != "override" and crop.box.h >= 144
    assert crop.warnings and f"at least {MIN_BOX_SIDE} px" in crop.warnings[0] and "set aside" in crop.warnings[0]


def test_a_tiny_or_slightly_misshapen_box_is_refused_at_put(stack: Stack, s3: Any, api: TestClient, tmp_path):
    key = "tiny/cat.png"  # chelsea: 451 x 300
    before = cropped(s3, stack, key, photo())
    for box, why in (([0.5, 0.5, 1e-6, 1e-6 * 9 / 16], f"at least {MIN_BOX_SIDE} px"),
                     ([0, 0, 1, 0.84375 * 0.995], "not 16:9")):  # 0.7% off: within 1%, not within a pixel
        answer = api.put(route(key), json={"boxes": {"16:9": box}})
        assert answer.status_code == 422, answer.text
        assert answer.json()["error"] == "invalid_options" and why in answer.json()["detail"]
    listed = s3.list_objects_v2(Bucket=stack.output_bucket).get("Contents", [])
    assert not [o for o in listed if o["Key"].endswith("overrides.json")]
    assert Poller(stack).drain() == 0 and sidecar(s3, stack, key) == before
    # the command line refuses it for a local photo too
    from autocrop import cli

    local = tmp_path / "cat.png"
    local.write_bytes(photo())
    assert cli.main(["crop", str(local), "--ratio", "16:9", "--box", "16:9=0,0,0.000001,0.0000005625",
                     "-o", str(tmp_path / "out")]) == 2  # fmt: skip
    assert not (tmp_path / "out").exists()


# --- clearing the overrides of a photo that is gone; an empty document ----------------------------


def test_delete_clears_the_overrides_of_a_deleted_photo(stack: Stack, s3: Any, api: TestClient,
                                                        monkeypatch: pytest.MonkeyPatch):  # fmt: skip
    key = "gone/cat portrait.png"
    cropped(s3, stack, key, photo())
    assert api.put(route(key), json={"focal_point": [0.2, 0.2]}).status_code == 202
    Poller(stack).drain()
    s3.delete_object(Bucket=stack.input_bucket, Key=key)
    monkeypatch.delenv("AUTOCROP_REGENERATE_QUEUE_URL")  # nothing is cropped again: no queue needed
    get_settings.cache_clear()
    answer = api.delete(route(key))
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "cleared" and answer.json()["overrides"] is None
    assert "no photo" in answer.json()["detail"] and "nothing to crop again" in answer.json()["detail"]
    listed = s3.list_objects_v2(Bucket=stack.output_bucket).get("Contents", [])
    assert not [o for o in listed if o["Key"].endswith("overrides.json")]
    assert Poller(stack).drain() == 0
    # neither photo nor overrides: 404
    for gone in (key, "never/there.png"):
        again = api.delete(route(gone))
        assert again.status_code == 404 and again.json()["error"] == "no_such_photo", again.text
        assert "no stored overrides" in again.json()["detail"]


def test_an_empty_put_means_automatic_crops_whatever_the_upload_metadata_says(stack: Stack, s3: Any, api: TestClient):
    """`PUT {}` stores "no overrides": it wins over the upload's metadata as any stored
    overrides do (DELETE, not PUT {}, goes back to the metadata)."""
    key = "empty/cat.png"
    first = cropped(s3, stack, key, photo(), **{"autocrop-focus": "0.1,0.1"})
    plain = cropped(s3, stack, "empty/plain.png", photo())
    assert api.put(route(key), json={}).status_code == 202
    Poller(stack).drain()
    emptied = sidecar(s3, stack, key)
    assert emptied["overrides"] == {"from": "stored"}
    assert boxes(emptied) == boxes(plain) != boxes(first)  # the automatic crops
    state = api.get(route(key)).json()
    assert state["overrides"] == {} and state["upload_metadata"] == {"focal_point": [0.1, 0.1]}
    assert not state["regenerating"]
    assert api.delete(route(key)).status_code == 202
    Poller(stack).drain()
    back = sidecar(s3, stack, key)
    assert back["overrides"] == {"from": "upload", "focal_point": [0.1, 0.1]} and back["version"] == first["version"]
