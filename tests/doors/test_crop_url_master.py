"""The master (`autocrop.master`): written at upload beside the crops, recorded in crops.json,
and what crop URLs render from while it has the pixels; the original serves otherwise.
Geometry as known-answer tables; the rest against the live moto server over HTTP."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import pytest
import skimage.data
from fastapi.testclient import TestClient
from PIL import Image, ImageCms

from autocrop import Box, CropOptions, render_crop
from autocrop.job import OutputSpec, run_job
from autocrop.master import MASTER_SIDE, Master
from autocrop.urls import crop_url
from functions.api import crops
from functions.s3 import trigger
from functions.settings import get_settings
from infra.local_stack import Stack
from tests.doors.test_s3_trigger import load_event, output_keys, photo, s3, stack, upload

__all__ = ["s3", "stack"]  # fixtures imported for pytest

SECRET = b"test signing key, not a real one"
#: The upright photo of the fixture (its JPEG is stored sideways, EXIF orientation 6).
UPRIGHT = (2400, 3200)
SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


# --- geometry ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "photo_size,master_size",
    [((4000, 3000), (2560, 1920)), ((3000, 4000), (1920, 2560)), ((2560, 100), (2560, 100)),
     ((1000, 800), (1000, 800)), ((8000, 1000), (2560, 320))],
)  # fmt: skip
def test_the_master_is_the_photo_at_most_master_side_long_never_enlarged(photo_size, master_size):
    master = Master.of_photo(*photo_size)
    assert master.size == master_size and MASTER_SIDE == 2560
    assert master.to_dict() == {"width": master_size[0], "height": master_size[1],
                                "scale": [master_size[0] / photo_size[0], master_size[1] / photo_size[1]]}  # fmt: skip
    assert Master.from_dict(master.to_dict(), photo_size) == master
    assert master.request().box == Box(0, 0, *photo_size) and master.request().size == master_size


@pytest.mark.parametrize(
    "box,size,in_master,serves",
    [
        (Box(0, 375, 4000, 2250), (1280, 720), Box(0, 240, 2560, 1440), True),
        (Box(0, 375, 4000, 2250), (2560, 1440), Box(0, 240, 2560, 1440), True),  # exactly its pixels
        (Box(0, 375, 4000, 2250), (2576, 1449), Box(0, 240, 2560, 1440), False),  # the original has them
        (Box(1000, 0, 1688, 3000), (1080, 1920), Box(640, 0, 1080, 1920), True),  # a tall crop's hero size
        (Box(1000, 0, 1688, 3000), (1260, 2240), Box(640, 0, 1080, 1920), False),
        (Box(2000, 1000, 1500, 1500), (1080, 1080), Box(1280, 640, 960, 960), False),  # 1500 px: the original
        (Box(10, 10, 300, 300), (400, 400), Box(6, 6, 192, 192), False),  # the original enlarges too
    ],
)  # fmt: skip
def test_boxes_map_into_master_pixels_and_serve_only_without_enlarging(box, size, in_master, serves):
    master = Master.of_photo(4000, 3000)
    assert master.box_in(box) == in_master
    assert master.serves(box, size) is serves


@pytest.mark.parametrize("record", [None, {}, {"width": "x", "height": 2}, {"width": 5000, "height": 10},
                                    {"width": 0, "height": 10}, [1, 2]])  # fmt: skip
def test_a_record_this_cannot_read_is_no_master(record):
    assert Master.from_dict(record, (4000, 3000)) is None


def test_the_job_renders_the_master_from_its_one_decode_and_none_for_transparency():
    rgb = Image.fromarray(skimage.data.astronaut()).resize((900, 600))
    options, spec = CropOptions.from_ratios("1:1,16:9"), OutputSpec(size=(100, 100), master_side=300)
    buf = io.BytesIO()
    rgb.save(buf, "PNG")
    done = run_job(buf.getvalue(), options, spec)
    assert done.master is not None and (done.master.width, done.master.height) == (300, 200)
    assert done.master.media_type == "image/jpeg" and len(done.outputs) == 2
    assert done.master_record() == Master((900, 600), (300, 200))
    assert "master" not in done.manifest()  # the S3 door records it, with its key
    rgba = rgb.convert("RGBA")
    rgba.putalpha(128)
    buf = io.BytesIO()
    rgba.save(buf, "PNG")
    done = run_job(buf.getvalue(), options, spec)
    assert done.master is None and len(done.outputs) == 2  # a JPEG master would lose the alpha
    assert run_job(buf.getvalue(), options, OutputSpec()).master is None  # not asked for


# --- the upload writes it, crop URLs render from it -------------------------------------------------


def rotated_photo() -> tuple[bytes, Image.Image]:
    """A JPEG stored sideways (3200 x 2400, EXIF orientation 6) with an sRGB profile; returns
    its bytes and the upright picture (2400 x 3200, a red square at the top left)."""
    upright = Image.fromarray(skimage.data.astronaut()).resize(UPRIGHT, Image.Resampling.BICUBIC)
    upright.paste((255, 0, 0), (0, 0, 300, 300))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to view
    buf = io.BytesIO()
    upright.transpose(Image.Transpose.ROTATE_90).save(buf, "JPEG", quality=92, exif=exif, icc_profile=SRGB)
    return buf.getvalue(), upright


def crop_upload(stack: Stack, key: str) -> dict[str, Any]:
    """The upload function's answer to the S3 event of `key`."""
    event = load_event("s3_put.json")
    record = event["Records"][0]
    record["s3"]["bucket"]["name"] = stack.input_bucket
    record["s3"]["object"] = {"key": key.replace(" ", "+")}
    [outcome] = trigger.process_event(event)
    return outcome


@pytest.fixture
def served(stack: Stack, s3: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The sideways photo uploaded and cropped by the upload function; the API on the same stack."""
    monkeypatch.setenv("AUTOCROP_URL_SIGNING_KEY", SECRET.decode())
    monkeypatch.setenv("AUTOCROP_INPUT_BUCKET", stack.input_bucket)
    monkeypatch.setenv("AUTOCROP_URL_MAX_SIDE", "2000")
    get_settings.cache_clear()
    crops.s3_client.cache_clear()
    key = "shoots/sideways portrait.jpg"
    data, upright = rotated_photo()
    etag = upload(s3, stack, key, data, "image/jpeg")
    outcome = crop_upload(stack, key)
    assert outcome["status"] == "cropped", outcome
    sidecar = json.loads(s3.get_object(Bucket=stack.output_bucket, Key=outcome["sidecar"])["Body"].read())
    from functions.api.app import app

    yield {"client": TestClient(app), "key": key, "data": data, "upright": upright, "etag": etag, "sidecar": sidecar,
           "base": f"{stack.output_prefix}/{key}"}  # fmt: skip
    get_settings.cache_clear()
    crops.s3_client.cache_clear()


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), np.float32)


def box_of(served: dict[str, Any], ratio: str) -> Box:
    return Box(*next(c["box"] for c in served["sidecar"]["crops"] if c["ratio"] == ratio))


def test_the_upload_writes_an_upright_master_that_crops_json_records(served: dict[str, Any], stack: Stack, s3: Any):
    base, key = served["base"], f"{served['base']}/master.jpg"
    assert key in output_keys(s3, stack)
    assert (served["sidecar"]["width"], served["sidecar"]["height"]) == UPRIGHT
    assert served["sidecar"]["master"] == {"key": key, "width": 1920, "height": 2560, "scale": [0.8, 0.8]}
    assert served["sidecar"]["outputs"] == {r: f"{base}/{r.replace(':', 'x')}.jpg" for r in ("1:1", "16:9", "4:5", "9:16")}
    got = s3.get_object(Bucket=stack.output_bucket, Key=key)
    assert got["ContentType"] == "image/jpeg"
    assert got["Metadata"]["source-etag"] == served["etag"] and got["Metadata"]["size"] == "1920x2560"
    image = Image.open(io.BytesIO(got["Body"].read()))
    assert image.format == "JPEG" and image.size == (1920, 2560)  # upright: portrait
    assert image.getexif().get(0x0112, 1) == 1  # orientation applied, not carried
    assert image.info.get("icc_profile") == SRGB  # the colour profile kept
    master = np.asarray(image.convert("RGB"), np.float32)
    expected = np.asarray(served["upright"].resize((1920, 2560), Image.Resampling.LANCZOS), np.float32)
    assert np.abs(master - expected).mean() < 3  # the same picture, within JPEG noise
    assert np.abs(master[:200, :200] - [255, 0, 0]).mean() < 10  # the red square still top left


def test_a_crop_url_renders_from_the_master_with_the_originals_pixels(served: dict[str, Any]):
    box = box_of(served, "16:9")
    for size, fmt in (((640, 360), "jpeg"), ((960, 540), "webp")):
        response = served["client"].get(crop_url(served["key"], "16:9", size, SECRET, fmt))
        assert response.status_code == 200, response.text
        assert response.headers["x-autocrop-source"] == "master"
        assert response.headers["x-autocrop-analysis"] == "stored"
        assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert response.headers["x-autocrop-box"] == ",".join(map(str, box.to_list()))  # photo pixels
        assert response.headers["x-autocrop-upscaled"] == "false"
        assert "fetch;dur=" in response.headers["server-timing"] and "desc=master" in response.headers["server-timing"]
        assert Image.open(io.BytesIO(response.content)).size == size
        original = render_crop(served["data"], box, size=size, fmt="png")
        assert np.abs(pixels(response.content) - pixels(original)).mean() < 3  # JPEG/WebP noise (a 4 px shift: 4.6)
    first = served["client"].get(crop_url(served["key"], "16:9", (640, 360), SECRET))
    cached = served["client"].get(crop_url(served["key"], "16:9", (640, 360), SECRET),
                                  headers={"If-None-Match": first.headers["etag"]})  # fmt: skip
    assert cached.status_code == 304 and cached.content == b""


def test_a_size_the_master_cannot_give_comes_from_the_original(served: dict[str, Any]):
    box = box_of(served, "16:9")
    assert box.w * 0.8 < 2000  # the master holds at most 1920 px across
    response = served["client"].get(crop_url(served["key"], "16:9", (2000, 1125), SECRET))
    assert response.status_code == 200, response.text
    assert response.headers["x-autocrop-source"] == "original"
    assert response.headers["x-autocrop-analysis"] == "stored"
    assert response.headers["x-autocrop-upscaled"] == ("true" if box.w < 2000 else "false")
    assert Image.open(io.BytesIO(response.content)).size == (2000, 1125)


def test_a_missing_foreign_or_damaged_master_falls_back_to_the_original(served: dict[str, Any], stack: Stack, s3: Any):
    url = crop_url(served["key"], "16:9", (640, 360), SECRET)
    from_master = served["client"].get(url)
    key = served["sidecar"]["master"]["key"]
    s3.put_object(Bucket=stack.output_bucket, Key=key, Body=s3.get_object(Bucket=stack.output_bucket, Key=key)["Body"].read(),
                  ContentType="image/jpeg", Metadata={"source-etag": "0" * 32})  # fmt: skip
    foreign = served["client"].get(url)
    assert foreign.status_code == 200 and foreign.headers["x-autocrop-source"] == "original"
    s3.put_object(Bucket=stack.output_bucket, Key=key, Body=b"\xff\xd8\xff not a JPEG", ContentType="image/jpeg",
                  Metadata={"source-etag": served["etag"]})  # fmt: skip
    damaged = served["client"].get(url)
    assert damaged.status_code == 200 and damaged.headers["x-autocrop-source"] == "original"
    s3.delete_object(Bucket=stack.output_bucket, Key=key)
    missing = served["client"].get(url)
    assert missing.status_code == 200, missing.text
    assert missing.headers["x-autocrop-source"] == "original" and missing.headers["x-autocrop-analysis"] == "stored"
    # the same answer as far as caches go, and the same picture within JPEG noise
    assert missing.headers["etag"] == from_master.headers["etag"]
    assert missing.headers["cache-control"] == from_master.headers["cache-control"]
    assert np.abs(pixels(missing.content) - pixels(from_master.content)).mean() < 4


def test_a_replaced_photo_is_analysed_afresh_from_the_original(served: dict[str, Any], stack: Stack, s3: Any):
    url = crop_url(served["key"], "16:9", (640, 360), SECRET)
    before = served["client"].get(url)
    upload(s3, stack, served["key"], photo("coffee.png"))  # its stored analysis and master are stale
    after = served["client"].get(url)
    assert after.status_code == 200, after.text
    assert after.headers["x-autocrop-analysis"] == "fresh" and after.headers["x-autocrop-source"] == "original"
    assert after.headers["cache-control"] == "public, max-age=300"
    assert after.headers["etag"] != before.headers["etag"]


def test_masters_can_be_turned_off(stack: Stack, s3: Any, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AUTOCROP_URL_MASTER", "false")
    monkeypatch.setenv("AUTOCROP_URL_SIGNING_KEY", SECRET.decode())
    monkeypatch.setenv("AUTOCROP_INPUT_BUCKET", stack.input_bucket)
    get_settings.cache_clear()
    crops.s3_client.cache_clear()
    key = "plain/chelsea.png"
    upload(s3, stack, key, photo())
    outcome = crop_upload(stack, key)
    assert outcome["status"] == "cropped"
    assert f"{stack.output_prefix}/{key}/master.jpg" not in output_keys(s3, stack)
    sidecar = json.loads(s3.get_object(Bucket=stack.output_bucket, Key=outcome["sidecar"])["Body"].read())
    assert sidecar["master"] is None  # the original serves
    from functions.api.app import app

    response = TestClient(app).get(crop_url(key, "16:9", (320, 180), SECRET))
    assert response.status_code == 200 and response.headers["x-autocrop-source"] == "original"
    assert response.headers["x-autocrop-analysis"] == "stored"
    get_settings.cache_clear()
    crops.s3_client.cache_clear()
