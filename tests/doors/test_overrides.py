"""Per-photo overrides: parsed strictly, applied by the engine (a box exactly, checked against
the face rule), stored with the photo on the live moto server (upload metadata, the API's
PUT/GET/DELETE), regenerated through the upload function's job, and crop URLs that carry the
crops' version (an outdated or versionless URL redirects to the current one)."""

from __future__ import annotations

import base64
import copy
import io
import json
import math
import threading
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from autocrop import CropOptions, InvalidOptionsError, parse_ratio
from autocrop.engine import analyse
from autocrop.overrides import Overrides, crop_version
from autocrop.urls import crop_url, parse
from functions.api import crops, photos
from functions.s3.trigger import output_base
from functions.settings import get_settings
from infra.local_stack import LocalContext, Poller, Stack
from tests.doors.test_crop_urls import SECRET
from tests.doors.test_s3_trigger import load_event, photo, s3, stack, upload

__all__ = ["s3", "stack"]  # fixtures imported for pytest

RATIOS = ("1:1", "16:9", "4:5", "9:16")


# --- parsing: every way in, strictly -------------------------------------------------------------


@pytest.mark.parametrize("document,why", [
    ({"focal_point": [1.2, 0.5]}, "0..1"),
    ({"focal_point": [-0.1, 0.5]}, "0..1"),
    ({"focal_point": [0.5]}, "[x, y]"),
    ({"focal_point": ["0.5", 0.5]}, "number"),
    ({"focal_point": [True, 0.5]}, "number"),
    ({"focal_point": [float("nan"), 0.5]}, "0..1"),
    ({"keep": [[0.5, 0.5, 0.6, 0.1]]}, "edge"),
    ({"keep": [[0.1, 0.1, 0, 0.1]]}, "positive"),
    ({"keep": [0.1, 0.1, 0.2, 0.2]}, "[x, y, w, h]"),
    ({"keep": "0.1,0.1,0.2,0.2"}, "list"),
    ({"boxes": {"16:0": [0, 0, 1, 0.5]}}, "ratio"),
    ({"boxes": {"banana": [0, 0, 1, 0.5]}}, "ratio"),
    ({"boxes": [[0, 0, 1, 1]]}, "object"),
    ({"boxes": {"16:9": [0, 0, 1, 0.5], "32:18": [0, 0, 1, 0.5]}}, "same ratio"),
    ({"focus": [0.5, 0.5]}, "unknown"),
    ({"keep": [[0.0, 0.0, 0.1, 0.1]] * 17}, "at most"),
    ([0.5, 0.5], "JSON object"),
])  # fmt: skip
def test_bad_documents_are_refused_with_the_reason(document: Any, why: str):
    with pytest.raises(InvalidOptionsError, match=why):
        Overrides.from_json(document)


def test_documents_metadata_and_flags_round_trip():
    doc = {"focal_point": [0.25, 0.75], "keep": [[0.1, 0.2, 0.3, 0.4]], "boxes": {"16:9": [0.0, 0.1, 1.0, 0.5]}}
    parsed = Overrides.from_json(doc)
    assert parsed.to_json() == doc and Overrides.from_text(json.dumps(doc)) == parsed
    assert Overrides.from_metadata({"autocrop-focus": " 0.25, 0.75 ", "autocrop-keep": "0.1,0.2,0.3,0.4;"}) == \
        Overrides(focal_point=(0.25, 0.75), keep=parsed.keep)  # fmt: skip
    assert Overrides.from_flags("0.25,0.75", ["0.1,0.2,0.3,0.4"], ["16:9=0,0.1,1,0.5"]) == parsed
    assert Overrides.from_json({}).is_empty and Overrides.from_metadata({}).is_empty
    for bad in ({"autocrop-focus": "0.5"}, {"autocrop-focus": "x,y"}, {"autocrop-keep": "0,0,2,1"}):
        with pytest.raises(InvalidOptionsError):
            Overrides.from_metadata(bad)
    with pytest.raises(InvalidOptionsError, match="JSON"):
        Overrides.from_text(b"{not json")
    # a sidecar's box for a ratio, then a flag's for the same ratio spelled otherwise: the flag wins
    merged = parsed.merged(Overrides.from_flags(None, (), ["32:18=0,0,1,0.5"]))
    assert dict(merged.boxes) == {"32:18": Overrides.from_flags(None, (), ["32:18=0,0,1,0.5"]).boxes[0][1]}
    assert merged.focal_point == (0.25, 0.75)


def test_versions_are_digests_of_what_made_the_crops():
    one = crop_version({"source": {"etag": "a"}, "overrides": {"from": "none"}})
    assert one == crop_version({"overrides": {"from": "none"}, "source": {"etag": "a"}})  # order-free
    assert one != crop_version({"source": {"etag": "a"}, "overrides": {"from": "stored", "focal_point": [0.5, 0.5]}})
    assert len(one) == 16 and parse(crop_url("a.jpg", "1:1", (10, 10), SECRET, version=one).split("/v1/crops/")[1]).request.version == one


# --- the engine ---------------------------------------------------------------------------------


def expected_centre(point: float, side: int, full: int) -> float:
    """Where a window `side` long is centred on `point`, as far as 0..full allows."""
    return min(max(point, side / 2), full - side / 2)


@pytest.mark.parametrize("name,focus", [("chelsea.png", (0.3, 0.6)), ("coffee.png", (0.9, 0.1)), ("astronaut.png", (0.05, 0.95))])
def test_a_focal_point_centres_every_crop_as_far_as_the_bounds_allow(name: str, focus: tuple[float, float]):
    result = analyse(photo(name), CropOptions(focal_point=focus))
    for crop in result.crops:
        b = crop.box
        assert abs(b.x + b.w / 2 - expected_centre(focus[0] * result.width, b.w, result.width)) <= 1, crop.ratio
        assert abs(b.y + b.h / 2 - expected_centre(focus[1] * result.height, b.h, result.height)) <= 1, crop.ratio


def test_a_box_is_kept_exactly_and_warned_about_when_it_slices_a_face():
    data = photo("astronaut.png")  # 512 x 512, one face at about x 180..271, y 69..176
    whole = Overrides.from_json({"boxes": {"16:9": [0.25, 0.1, 0.5, 0.28125]}})
    crop = analyse(data, whole.apply(CropOptions(ratios=RATIOS))).crop("16:9")
    assert crop.box.to_list() == [128, 51, 256, 144] and crop.chosen_by == "override" and crop.warnings == ()
    slicing = Overrides.from_json({"boxes": {"16:9": [0.42, 0.1, 0.5, 0.28125]}})
    cut = analyse(data, slicing.apply(CropOptions(ratios=RATIOS))).crop("16:9")
    assert cut.box.to_list() == [215, 51, 256, 144] and cut.face_report.cut == 1
    assert cut.warnings and "slices 1 detected face" in cut.warnings[0]
    assert cut.to_dict()["warnings"] == list(cut.warnings)
    # a box not of its ratio's shape on this photo is set aside, with a warning, not obeyed
    square = analyse(data, Overrides.from_json({"boxes": {"16:9": [0, 0, 1, 1]}}).apply(CropOptions(ratios=RATIOS))).crop("16:9")
    assert square.chosen_by != "override" and abs(square.box.w / square.box.h - 16 / 9) < 0.01
    assert "not 16:9" in square.warnings[0]
    with pytest.raises(InvalidOptionsError, match="not 16:9"):
        Overrides.from_json({"boxes": {"16:9": [0, 0, 1, 1]}}).check_fits(512, 512)


# --- the stack: upload metadata, the API, regeneration, crop URLs ---------------------------------


@pytest.fixture
def api(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The API on the same stack: regenerations go to the upload queue the poller drains."""
    monkeypatch.setenv("AUTOCROP_URL_SIGNING_KEY", SECRET.decode())
    monkeypatch.setenv("AUTOCROP_INPUT_BUCKET", stack.input_bucket)
    monkeypatch.setenv("AUTOCROP_REGENERATE_QUEUE_URL", stack.queue_url)
    monkeypatch.setenv("AUTOCROP_RATIOS", ",".join(RATIOS))
    get_settings.cache_clear()
    crops.s3_client.cache_clear()
    photos.sqs_client.cache_clear()
    from functions.api.app import app

    yield TestClient(app, follow_redirects=False)
    get_settings.cache_clear()
    crops.s3_client.cache_clear()
    photos.sqs_client.cache_clear()


def sidecar(s3: Any, stack: Stack, key: str) -> dict[str, Any]:
    got = s3.get_object(Bucket=stack.output_bucket, Key=f"{output_base(key, stack.output_prefix)}/crops.json")
    return json.loads(got["Body"].read())


def boxes(record: dict[str, Any]) -> dict[str, list[int]]:
    return {c["ratio"]: c["box"] for c in record["crops"]}


def route(key: str) -> str:
    return "/v1/photos/" + "/".join(quote(part, safe="") for part in key.split("/")) + "/overrides"


def cropped(s3: Any, stack: Stack, key: str, body: bytes, **metadata: str) -> dict[str, Any]:
    s3.put_object(Bucket=stack.input_bucket, Key=key, Body=body, ContentType="image/png", Metadata=metadata)
    Poller(stack).drain()
    return sidecar(s3, stack, key)


def test_upload_metadata_sets_the_focal_point(stack: Stack, s3: Any):
    record = cropped(s3, stack, "cms/cat.png", photo(), **{"autocrop-focus": "0.3,0.6"})
    assert record["overrides"] == {"from": "upload", "focal_point": [0.3, 0.6]}
    W, H = record["width"], record["height"]
    for c in record["crops"]:
        x, y, w, h = c["box"]
        assert abs(x + w / 2 - expected_centre(0.3 * W, w, W)) <= 1 and abs(y + h / 2 - expected_centre(0.6 * H, h, H)) <= 1
    plain = cropped(s3, stack, "cms/plain.png", photo())
    assert plain["overrides"] == {"from": "none"} and plain["version"] != record["version"]
    bad = cropped(s3, stack, "cms/bad.png", photo(), **{"autocrop-focus": "2,2"})
    assert bad["status"] == "cropped" and bad["overrides"]["from"] == "none"  # cropped, and told why
    assert "autocrop-focus" in bad["overrides"]["warnings"][0]


@pytest.mark.parametrize("key", ["shoots/cat portrait.png", "sale%41+more.png", "été/写真 ünï.png", "a//b/overrides/c.png"])
def test_put_regenerates_with_a_new_version_and_delete_goes_back(key: str, stack: Stack, s3: Any, api: TestClient):
    first = cropped(s3, stack, key, photo())
    got = api.get(route(key))
    assert got.status_code == 200 and got.json()["version"] == first["version"] and got.json()["overrides"] is None
    assert not got.json()["regenerating"]
    box = [0.1, 0.0, 0.5, 0.5 * 451 / 300 * 9 / 16]  # chelsea is 451 x 300: a 16:9 box
    put = api.put(route(key), json={"focal_point": [0.8, 0.4], "boxes": {"16:9": box}})
    assert put.status_code == 202, put.text
    assert api.get(route(key)).json()["regenerating"]  # until the upload function has cropped it again
    Poller(stack).drain()
    second = sidecar(s3, stack, key)
    assert second["version"] != first["version"] and second["source"]["etag"] == first["source"]["etag"]
    assert second["overrides"] == {"from": "stored", "focal_point": [0.8, 0.4], "boxes": {"16:9": box}}
    assert boxes(second)["16:9"] == [round(0.1 * 451), 0, round(0.5 * 451), round(box[3] * 300)]  # exactly
    assert next(c for c in second["crops"] if c["ratio"] == "16:9")["chosen_by"] == "override"
    assert boxes(second)["1:1"] != boxes(first)["1:1"]
    state = api.get(route(key)).json()
    assert state["version"] == second["version"] and not state["regenerating"]
    assert set(state["urls"]) == set(RATIOS) and all(f"/{second['version']}/" in u for u in state["urls"].values())
    assert api.get(state["urls"]["16:9"]).status_code == 200  # the URL the API hands out serves
    # the same PUT again: a new message, the same records: nothing written twice
    assert api.put(route(key), json={"focal_point": [0.8, 0.4], "boxes": {"16:9": box}}).status_code == 202
    Poller(stack).drain()
    assert sidecar(s3, stack, key)["etags"] == second["etags"]

    assert api.delete(route(key)).status_code == 202
    Poller(stack).drain()
    third = sidecar(s3, stack, key)
    assert boxes(third) == boxes(first) and third["version"] == first["version"]  # the automatic crops again
    assert api.delete(route(key)).status_code == 404


def test_bad_overrides_change_nothing(stack: Stack, s3: Any, api: TestClient):
    key = "bad/cat.png"
    before = cropped(s3, stack, key, photo())
    bodies = [b"{not json", b'{"focal_point": [NaN, 0.5]}', b'{"focal_point": [0.5, 1.5]}', b'{"keep": [[0.9, 0, 0.5, 0.5]]}',
              b'{"boxes": {"16:9": [0, 0, 1, 1]}}', b'{"boxes": {"3:2": [0, 0, 1, 1]}}', b'{"focus": [0.5, 0.5]}',
              b"[]", b'"0.5,0.5"', b'{"boxes": {"1:1": [0, 0, 0.5, 0.5]}}']  # fmt: skip
    for body in bodies:
        answer = api.put(route(key), content=body)
        assert answer.status_code == 422, (body, answer.text)
        assert answer.json()["error"] == "invalid_options" and answer.json()["detail"]
    too_large = api.put(route(key), content=b'{"keep": [' + b"[0, 0, 0.1, 0.1]," * 5000 + b"[0, 0, 0.1, 0.1]]}")
    assert too_large.status_code == 413
    assert api.put(route("no/such photo.png"), json={"focal_point": [0.5, 0.5]}).status_code == 404
    listed = s3.list_objects_v2(Bucket=stack.output_bucket).get("Contents", [])
    assert not [o for o in listed if o["Key"].endswith("overrides.json")]
    assert Poller(stack).drain() == 0  # no regeneration was asked for
    assert sidecar(s3, stack, key) == before


def test_without_a_regeneration_queue_nothing_is_stored(stack: Stack, s3: Any, api: TestClient, monkeypatch: pytest.MonkeyPatch):
    cropped(s3, stack, "q/cat.png", photo())
    monkeypatch.delenv("AUTOCROP_REGENERATE_QUEUE_URL")
    get_settings.cache_clear()
    answer = api.put(route("q/cat.png"), json={"focal_point": [0.5, 0.5]})
    assert (answer.status_code, answer.json()["error"]) == (503, "regeneration_not_configured")
    assert api.get(route("q/cat.png")).json()["overrides"] is None


def test_stored_overrides_win_over_metadata_and_survive_a_replaced_photo(stack: Stack, s3: Any, api: TestClient):
    key = "replace/cat.png"
    first = cropped(s3, stack, key, photo(), **{"autocrop-focus": "0.1,0.1"})
    assert api.put(route(key), json={"focal_point": [0.9, 0.9]}).status_code == 202
    Poller(stack).drain()
    stored = sidecar(s3, stack, key)
    assert stored["overrides"] == {"from": "stored", "focal_point": [0.9, 0.9]}
    old_url = crop_url(key, "16:9", (320, 180), SECRET, version=stored["version"])
    assert api.get(old_url).status_code == 200
    replaced = cropped(s3, stack, key, photo("coffee.png"), **{"autocrop-focus": "0.1,0.1"})
    assert replaced["overrides"] == stored["overrides"]  # the replaced photo is cropped with them
    assert replaced["version"] not in (stored["version"], first["version"])
    W, H = replaced["width"], replaced["height"]
    x, y, w, h = boxes(replaced)["16:9"]
    assert abs(x + w / 2 - expected_centre(0.9 * W, w, W)) <= 1 and abs(y + h / 2 - expected_centre(0.9 * H, h, H)) <= 1
    # the old URL now redirects, briefly cached, to the current one; it never serves the new bytes
    moved = api.get(old_url)
    assert moved.status_code == 302 and moved.headers["cache-control"] == "public, max-age=60"
    current = crop_url(key, "16:9", (320, 180), SECRET, version=replaced["version"])
    assert moved.headers["location"] == current
    served = api.get(current)
    assert served.status_code == 200 and served.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert served.headers["x-autocrop-box"] == ",".join(map(str, boxes(replaced)["16:9"]))


def test_old_shape_and_unknown_version_urls_redirect_to_the_current_one(stack: Stack, s3: Any, api: TestClient):
    key = "urls/cat portrait.png"
    record = cropped(s3, stack, key, photo())
    current = crop_url(key, "4:5", (400, 500), SECRET, fmt="webp", version=record["version"])
    for outdated in (crop_url(key, "4:5", (400, 500), SECRET, fmt="webp"),
                     crop_url(key, "4:5", (400, 500), SECRET, fmt="webp", version="0123456789abcdef")):  # fmt: skip
        answer = api.get(outdated)
        assert answer.status_code == 302 and answer.headers["location"] == current
        assert answer.headers["cache-control"] == "public, max-age=60" and not answer.content
    assert api.get(current).status_code == 200
    # a photo replaced but not yet cropped again: no version is current, the versioned URL goes to "_"
    upload(s3, stack, key, photo("coffee.png"))  # (the poller is not run)
    answer = api.get(current)
    assert answer.status_code == 302 and "/_/" in answer.headers["location"]
    fresh = api.get(answer.headers["location"])
    assert fresh.status_code == 200 and fresh.headers["x-autocrop-analysis"] == "fresh"
    assert fresh.headers["cache-control"] == "public, max-age=300"


def test_under_api_gateway_the_overrides_routes_take_the_decoded_path(stack: Stack, s3: Any, api: TestClient):
    """API Gateway's HTTP API hands the function the path decoded once: a key with '%' and spaces."""
    from functions.api.app import handler

    key = "gw/sale%41 x.png"
    cropped(s3, stack, key, photo())
    event = copy.deepcopy(load_event("apigw_http_v2_healthz.json"))
    decoded = route(key).replace("%2541", "%41").replace("%20", " ")
    event["rawPath"] = event["requestContext"]["http"]["path"] = decoded
    event["requestContext"]["http"]["method"] = "PUT"
    event["routeKey"] = event["requestContext"]["routeKey"] = "$default"
    event["body"] = base64.b64encode(b'{"focal_point": [0.2, 0.3]}').decode()
    event["isBase64Encoded"] = True
    event["headers"] = {**event.get("headers", {}), "content-type": "application/json"}
    answer = handler(event, LocalContext())
    assert answer["statusCode"] == 202, answer["body"]
    assert json.loads(answer["body"])["key"] == key
    Poller(stack).drain()
    assert sidecar(s3, stack, key)["overrides"]["focal_point"] == [0.2, 0.3]


def test_concurrent_puts_end_with_the_last_overrides(stack: Stack, s3: Any, api: TestClient):
    """Two PUTs whose regenerations run at once: the crops left are those of the stored overrides."""
    key = "race/cat.png"
    cropped(s3, stack, key, photo())
    for focus in ([0.1, 0.5], [0.9, 0.5]):
        assert api.put(route(key), json={"focal_point": focus}).status_code == 202
    sqs = stack.client("sqs")
    messages = sqs.receive_message(QueueUrl=stack.queue_url, MaxNumberOfMessages=10, AttributeNames=["All"])["Messages"]
    assert len(messages) == 2
    from functions.s3.trigger import handler
    from infra.local_stack import sqs_lambda_event

    results: list[Any] = []
    threads = [threading.Thread(target=lambda m=m: results.append(handler(sqs_lambda_event([m], stack.queue_arn), LocalContext())))
               for m in messages]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    final = sidecar(s3, stack, key)
    assert final["overrides"] == {"from": "stored", "focal_point": [0.9, 0.5]}
    W = final["width"]
    x, _, w, _ = boxes(final)["9:16"]
    assert abs(x + w / 2 - expected_centre(0.9 * W, w, W)) <= 1
    assert math.isclose(parse_ratio("9:16"), w / boxes(final)["9:16"][3], rel_tol=0.01)


def test_the_cli_sidecar_and_flags(tmp_path, capsys: pytest.CaptureFixture[str]):
    from autocrop import cli

    target = tmp_path / "cat.png"
    target.write_bytes(photo())
    (tmp_path / "cat.png.autocrop.json").write_text(json.dumps({"boxes": {"16:9": [0, 0, 1, 0.84375]}}))
    assert cli.main(["crop", str(target), "--ratio", "16:9", "--ratio", "1:1", "--json"]) == 0
    line = json.loads(capsys.readouterr().out.splitlines()[0])
    assert line["crops"][0]["box"] == [0, 0, 451, 253] and line["crops"][0]["chosen_by"] == "override"
    assert line["overrides"] == {"boxes": {"16:9": [0.0, 0.0, 1.0, 0.84375]}}
    # a flag wins over the sidecar; a bad flag or a box of the wrong shape is exit 2, nothing written
    assert cli.main(["crop", str(target), "--ratio", "16:9", "--box", "16:9=0,0,0.5,0.421875", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[0])["crops"][0]["box"] == [0, 0, 226, 127]
    out = tmp_path / "out"
    for flags in (["--box", "16:9=0,0,1,1"], ["--keep", "0,0,2,2"], ["--focal-point", "0.5"], ["--box", "16:9"]):
        assert cli.main(["crop", str(target), "--ratio", "16:9", "-o", str(out), *flags]) == 2, flags
        assert "autocrop:" in capsys.readouterr().err
    (tmp_path / "cat.png.autocrop.json").write_text('{"focal_point": [0.5, 7]}')
    assert cli.main(["crop", str(target), "-o", str(out)]) == 2
    assert "cat.png.autocrop.json" in capsys.readouterr().err and not out.exists()
