"""The S3 upload trigger against a live moto server over HTTP.

Uploads go through moto's real S3 -> SQS notification; the local stack's poller hands the
delivered messages to `functions.s3.trigger.handler` as Lambda's SQS trigger would. The
direct-S3 and EventBridge shapes are the real event JSON in tests/events, pointed at the
uploaded object.
"""

from __future__ import annotations

import copy
import io
import json
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
import skimage
from autocrop import cli, parse_ratio
from botocore.exceptions import ClientError
from PIL import Image

from functions.s3 import trigger
from functions.s3.trigger import handler, output_base
from functions.settings import get_settings
from infra import local_stack
from infra.local_stack import LocalContext, Poller, Stack, create_stack, sqs_lambda_event

EVENTS = Path(__file__).resolve().parents[1] / "events"
PHOTOS = Path(skimage.__file__).parent / "data"
RATIOS = ("1:1", "16:9", "4:5", "9:16")


def load_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


def photo(name: str = "chelsea.png") -> bytes:
    return (PHOTOS / name).read_bytes()


@pytest.fixture
def stack(aws_env: str, monkeypatch: pytest.MonkeyPatch) -> Stack:
    """Fresh buckets and queues for one test, with the handler's settings pointing at them."""
    run = uuid.uuid4().hex[:8]
    created = create_stack(
        aws_env,
        input_bucket=f"in-{run}",
        output_bucket=f"out-{run}",
        queue=f"uploads-{run}",
        visibility_timeout=0,  # a failed message is redelivered at once (no waiting in tests)
    )
    for name, value in created.settings_environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AUTOCROP_RATIOS", ",".join(RATIOS))
    _fresh_process_state()
    # S3 sends an s3:TestEvent when the notification is configured; let the handler see it
    # (and ignore it) so the queue holds only the uploads a test makes.
    Poller(created).drain()
    yield created
    _fresh_process_state()


def _fresh_process_state() -> None:
    get_settings.cache_clear()
    trigger.s3_client.cache_clear()


@pytest.fixture
def s3(stack: Stack) -> Any:
    return stack.client("s3")


@pytest.fixture
def poller(stack: Stack) -> Poller:
    return Poller(stack)


def output_keys(s3: Any, stack: Stack) -> list[str]:
    listed = s3.list_objects_v2(Bucket=stack.output_bucket)
    return sorted(o["Key"] for o in listed.get("Contents", []))


def queue_depth(stack: Stack, url: str) -> int:
    attributes = stack.client("sqs").get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(v) for v in attributes.values())


def upload(s3: Any, stack: Stack, key: str, body: bytes, content_type: str = "image/png") -> str:
    """Put an object in the input bucket; returns its ETag without quotes."""
    etag = s3.put_object(Bucket=stack.input_bucket, Key=key, Body=body, ContentType=content_type)
    return etag["ETag"].strip('"')


# --- upload -> event -> crops ------------------------------------------------------------------


def test_upload_writes_a_crop_per_ratio_and_a_sidecar(stack: Stack, s3: Any, poller: Poller):
    key = "photos/chelsea.png"
    etag = upload(s3, stack, key, photo())

    assert poller.drain() >= 1
    base = f"{stack.output_prefix}/{key}"
    expected = sorted(
        [f"{base}/crops.json", f"{base}/master.jpg"] + [f"{base}/{r.replace(':', 'x')}.jpg" for r in RATIOS]
    )
    assert output_keys(s3, stack) == expected

    sidecar = json.loads(
        s3.get_object(Bucket=stack.output_bucket, Key=f"{base}/crops.json")["Body"].read()
    )
    assert sidecar["status"] == "cropped"
    assert sidecar["source"] == {
        "bucket": stack.input_bucket, "key": key, "size": len(photo()), "etag": etag,
        "version_id": None,
    }  # fmt: skip
    assert (sidecar["width"], sidecar["height"]) == Image.open(io.BytesIO(photo())).size
    assert [c["ratio"] for c in sidecar["crops"]] == list(RATIOS)
    assert sidecar["outputs"] == {r: f"{base}/{r.replace(':', 'x')}.jpg" for r in RATIOS}
    assert all(isinstance(c["score"], float) for c in sidecar["crops"])
    assert sidecar["models"]
    # the master crop URLs render from: a photo this small (451 x 300) keeps its size
    assert sidecar["master"] == {"key": f"{base}/master.jpg", "width": 451, "height": 300, "scale": [1.0, 1.0]}
    master = s3.get_object(Bucket=stack.output_bucket, Key=f"{base}/master.jpg")
    assert master["ContentType"] == "image/jpeg" and master["Metadata"]["source-etag"] == etag
    assert Image.open(io.BytesIO(master["Body"].read())).size == (451, 300)

    for crop in sidecar["crops"]:
        got = s3.get_object(Bucket=stack.output_bucket, Key=sidecar["outputs"][crop["ratio"]])
        assert got["ContentType"] == "image/jpeg"
        meta = got["Metadata"]
        assert meta["source-bucket"] == stack.input_bucket
        assert meta["source-key"] == key
        assert meta["source-etag"] == etag
        assert meta["ratio"] == crop["ratio"]
        assert meta["box"] == ",".join(str(v) for v in crop["box"])
        assert json.loads(meta["models"]) == sidecar["models"]
        image = Image.open(io.BytesIO(got["Body"].read()))
        assert image.format == "JPEG"
        x, y, w, h = crop["box"]
        assert image.size == (w, h)
        assert w / h == pytest.approx(parse_ratio(crop["ratio"]), rel=0.02)

    # the message was consumed, nothing went to the dead-letter queue
    assert queue_depth(stack, stack.queue_url) == 0
    assert queue_depth(stack, stack.dead_letter_url) == 0


def test_configured_sizes_and_no_upscale(stack: Stack, s3: Any, poller: Poller, monkeypatch: pytest.MonkeyPatch):
    """AUTOCROP_SIZES resizes the named ratios (others stay full resolution); crops.json and
    each object's metadata say the size and whether it was enlarged; AUTOCROP_NO_UPSCALE
    keeps a small crop's own pixels."""
    key = "sized/chelsea.png"  # 451 x 300: its 1:1 crop is 300 x 300
    for no_upscale, square in (("false", (1024, 1024)), ("true", (300, 300))):
        monkeypatch.setenv("AUTOCROP_SIZES", "1:1=1024x1024, 16:9=320x180")
        monkeypatch.setenv("AUTOCROP_NO_UPSCALE", no_upscale)
        _fresh_process_state()
        upload(s3, stack, key, photo() + (b"" if no_upscale == "false" else b"\0"))  # a new ETag
        assert poller.drain() >= 1
        base = f"{stack.output_prefix}/{key}"
        sidecar = json.loads(s3.get_object(Bucket=stack.output_bucket, Key=f"{base}/crops.json")["Body"].read())
        crops = {c["ratio"]: c for c in sidecar["crops"]}
        assert crops["1:1"]["size"] == list(square) and crops["1:1"]["upscaled"] is (no_upscale == "false")
        assert crops["16:9"]["size"] == [320, 180] and crops["16:9"]["upscaled"] is False
        assert crops["4:5"]["size"] == crops["4:5"]["box"][2:] and crops["4:5"]["upscaled"] is False
        got = s3.get_object(Bucket=stack.output_bucket, Key=f"{base}/1x1.jpg")
        assert Image.open(io.BytesIO(got["Body"].read())).size == square
        assert got["Metadata"]["size"] == "{}x{}".format(*square)
        assert got["Metadata"]["upscaled"] == ("true" if no_upscale == "false" else "false")


@pytest.mark.parametrize("sizes", ["1:1", "1:1=big", "3:2=300x200"])
def test_a_bad_sizes_setting_is_a_deploy_error(sizes: str, monkeypatch: pytest.MonkeyPatch):
    from autocrop.errors import InvalidOptionsError

    from functions.settings import Settings

    monkeypatch.setenv("AUTOCROP_RATIOS", ",".join(RATIOS))
    monkeypatch.setenv("AUTOCROP_SIZES", sizes)
    with pytest.raises(InvalidOptionsError):
        trigger.crop_options(Settings())


@pytest.mark.parametrize(
    "key",
    [
        "my photos/summer holiday.png",
        "c++/a+b=c&d;e,f@g$.png",
        "fotos/Ünïcødé 写真 ☀.png",
        "deep/" + "/".join(f"level{i}" for i in range(12)) + "/photo.png",
        "100%/per%20cent.png",
    ],
)
def test_awkward_keys_keep_their_exact_name(stack: Stack, s3: Any, poller: Poller, key: str):
    upload(s3, stack, key, photo())
    poller.drain()

    base = f"{stack.output_prefix}/{key}"
    assert output_keys(s3, stack) == sorted(
        [f"{base}/crops.json", f"{base}/master.jpg"] + [f"{base}/{r.replace(':', 'x')}.jpg" for r in RATIOS]
    )
    sidecar = json.loads(
        s3.get_object(Bucket=stack.output_bucket, Key=f"{base}/crops.json")["Body"].read()
    )
    assert sidecar["source"]["key"] == key
    meta = s3.head_object(Bucket=stack.output_bucket, Key=f"{base}/1x1.jpg")["Metadata"]
    assert meta["source-key"] == quote(key, safe="/")  # S3 metadata is ASCII


def test_keys_cannot_escape_the_output_prefix(stack: Stack, s3: Any, poller: Poller):
    upload(s3, stack, "../../etc/./passwd//photo.png", photo())
    poller.drain()

    keys = output_keys(s3, stack)
    assert keys and all(k.startswith(f"{stack.output_prefix}/") for k in keys)
    assert not any("/../" in k or "/./" in k or "//" in k for k in keys)
    assert f"{stack.output_prefix}/%2E%2E/%2E%2E/etc/passwd/photo.png/crops.json" in keys


# --- redelivery and replacement ----------------------------------------------------------------


def test_redelivery_writes_nothing_twice(stack: Stack, s3: Any, poller: Poller):
    key = "again/chelsea.png"
    upload(s3, stack, key, photo())
    sqs = stack.client("sqs")
    # Take the notification off the queue ourselves, so it can be delivered twice.
    message = sqs.receive_message(QueueUrl=stack.queue_url, MaxNumberOfMessages=1)["Messages"][0]
    event = sqs_lambda_event([message], stack.queue_arn)

    assert handler(event, LocalContext()) == {"batchItemFailures": []}
    first = {k: s3.head_object(Bucket=stack.output_bucket, Key=k) for k in output_keys(s3, stack)}

    assert handler(copy.deepcopy(event), LocalContext()) == {"batchItemFailures": []}
    second = {k: s3.head_object(Bucket=stack.output_bucket, Key=k) for k in output_keys(s3, stack)}
    assert second.keys() == first.keys()
    for k in first:  # not rewritten: same bytes, same write time
        assert second[k]["ETag"] == first[k]["ETag"]
        assert second[k]["LastModified"] == first[k]["LastModified"]

    # The same notification through the direct-S3 door is skipped as well.
    s3_event = json.loads(message["Body"])
    assert handler(s3_event, LocalContext())["results"][0]["reason"] == "already processed"


def test_a_replaced_upload_is_cropped_again(stack: Stack, s3: Any, poller: Poller):
    key = "replaced.png"
    upload(s3, stack, key, photo("chelsea.png"))
    poller.drain()
    new_etag = upload(s3, stack, key, photo("coffee.png"))
    poller.drain()

    sidecar = json.loads(
        s3.get_object(Bucket=stack.output_bucket, Key=f"{stack.output_prefix}/{key}/crops.json")[
            "Body"
        ].read()
    )
    assert sidecar["source"]["etag"] == new_etag
    assert (sidecar["width"], sidecar["height"]) == Image.open(io.BytesIO(photo("coffee.png"))).size
    master = s3.get_object(Bucket=stack.output_bucket, Key=sidecar["master"]["key"])
    assert master["Metadata"]["source-etag"] == new_etag  # the master follows the photo
    assert Image.open(io.BytesIO(master["Body"].read())).size == (sidecar["width"], sidecar["height"])


def test_a_stale_event_for_an_overwritten_object_is_skipped(stack: Stack, s3: Any, poller: Poller):
    key = "stale.png"
    upload(s3, stack, key, photo("chelsea.png"))
    sqs = stack.client("sqs")
    old = sqs.receive_message(QueueUrl=stack.queue_url, MaxNumberOfMessages=1)["Messages"][0]
    upload(s3, stack, key, photo("coffee.png"))  # its own event is queued

    result = handler(json.loads(old["Body"]), LocalContext())["results"][0]
    assert result["status"] == "skipped" and result["reason"] == "object gone or replaced"
    assert output_keys(s3, stack) == []
    poller.drain()
    assert f"{stack.output_prefix}/{key}/crops.json" in output_keys(s3, stack)


# --- bad uploads: an error record, no retries -------------------------------------------------


def error_record(s3: Any, stack: Stack, key: str) -> dict[str, Any]:
    got = s3.get_object(Bucket=stack.output_bucket, Key=f"{stack.output_prefix}/{key}/error.json")
    return json.loads(got["Body"].read())


def test_an_unreadable_image_gets_an_error_record_and_no_retry(
    stack: Stack, s3: Any, poller: Poller
):
    key = "broken.jpg"
    etag = upload(s3, stack, key, b"\xff\xd8\xff\xe0 this is not really a JPEG", "image/jpeg")
    sqs = stack.client("sqs")
    message = sqs.receive_message(QueueUrl=stack.queue_url, MaxNumberOfMessages=1)["Messages"][0]
    event = sqs_lambda_event([message], stack.queue_arn)

    assert handler(event, LocalContext()) == {"batchItemFailures": []}  # consumed, not retried
    record = error_record(s3, stack, key)
    assert record["status"] == "failed"
    assert record["error"]["code"] == "unsupported_image"
    assert record["source"]["etag"] == etag
    assert output_keys(s3, stack) == [f"{stack.output_prefix}/{key}/error.json"]

    # Redelivered: the record already names this upload, nothing is rewritten.
    before = s3.head_object(
        Bucket=stack.output_bucket, Key=f"{stack.output_prefix}/{key}/error.json"
    )
    assert handler(copy.deepcopy(event), LocalContext()) == {"batchItemFailures": []}
    after = s3.head_object(
        Bucket=stack.output_bucket, Key=f"{stack.output_prefix}/{key}/error.json"
    )
    assert after["LastModified"] == before["LastModified"]

    # A fixed re-upload is cropped and its stale error record goes.
    upload(s3, stack, key, photo())
    poller.drain()
    keys = output_keys(s3, stack)
    assert f"{stack.output_prefix}/{key}/crops.json" in keys
    assert f"{stack.output_prefix}/{key}/error.json" not in keys
    assert queue_depth(stack, stack.dead_letter_url) == 0


def test_a_declared_non_image_is_refused(stack: Stack, s3: Any, poller: Poller):
    upload(s3, stack, "notes.txt", photo(), "text/plain")
    poller.drain()
    record = error_record(s3, stack, "notes.txt")
    assert record["error"]["code"] == "unsupported_image"
    assert "text/plain" in record["error"]["message"]


def test_an_oversized_upload_is_refused_without_reading_it(
    stack: Stack, s3: Any, poller: Poller, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("AUTOCROP_MAX_OBJECT_BYTES", "1000")
    get_settings.cache_clear()
    upload(s3, stack, "huge.png", photo())
    poller.drain()
    record = error_record(s3, stack, "huge.png")
    assert record["error"]["code"] == "image_too_large"
    assert "1000" in record["error"]["message"]


def test_empty_objects_and_folder_markers(stack: Stack, s3: Any, poller: Poller):
    upload(s3, stack, "empty.png", b"")
    upload(s3, stack, "a folder/", b"", "application/x-directory")
    poller.drain()
    assert error_record(s3, stack, "empty.png")["error"]["code"] == "unsupported_image"
    assert output_keys(s3, stack) == [f"{stack.output_prefix}/empty.png/error.json"]


# --- AWS failures are raised: Lambda retries, then the failure destination --------------------


def test_an_aws_error_fails_only_its_message(stack: Stack, s3: Any):
    upload(s3, stack, "good.png", photo())
    sqs = stack.client("sqs")
    good = sqs.receive_message(QueueUrl=stack.queue_url, MaxNumberOfMessages=1)["Messages"][0]
    bad_body = json.loads(good["Body"])
    bad_body["Records"][0]["s3"]["bucket"]["name"] = f"no-such-bucket-{uuid.uuid4().hex[:8]}"
    bad = {**good, "MessageId": str(uuid.uuid4()), "Body": json.dumps(bad_body)}

    response = handler(sqs_lambda_event([good, bad], stack.queue_arn), LocalContext())
    assert response == {"batchItemFailures": [{"itemIdentifier": bad["MessageId"]}]}
    assert f"{stack.output_prefix}/good.png/crops.json" in output_keys(s3, stack)

    # The direct-S3 door raises, so Lambda's async retries and failure destination apply.
    with pytest.raises(ClientError):
        handler(bad_body, LocalContext())


def test_a_failing_message_ends_in_the_dead_letter_queue(
    stack: Stack, s3: Any, poller: Poller, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("AUTOCROP_OUTPUT_BUCKET", f"missing-{uuid.uuid4().hex[:8]}")
    get_settings.cache_clear()
    upload(s3, stack, "doomed.png", photo())
    poller.drain()  # each receive fails; after MAX_RECEIVES the queue moves it aside
    assert queue_depth(stack, stack.queue_url) == 0
    assert queue_depth(stack, stack.dead_letter_url) == 1


# --- the recursion guard -----------------------------------------------------------------------


def test_own_outputs_are_never_reprocessed(aws_env: str, monkeypatch: pytest.MonkeyPatch):
    """One bucket for input and output: the crops' own notifications must be ignored."""
    bucket = f"shared-{uuid.uuid4().hex[:8]}"
    stack = create_stack(aws_env, input_bucket=bucket, output_bucket=bucket, queue=f"q-{bucket}")
    for name, value in stack.settings_environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AUTOCROP_RATIOS", "1:1,16:9")
    _fresh_process_state()
    s3 = stack.client("s3")
    poller = Poller(stack)
    try:
        assert poller.drain() == 1  # the s3:TestEvent
        s3.put_object(Bucket=bucket, Key="photo.png", Body=photo(), ContentType="image/png")
        handled = poller.drain()
    finally:
        _fresh_process_state()

    keys = output_keys(s3, stack)
    assert keys == sorted(
        [
            "photo.png",
            "crops/photo.png/1x1.jpg",
            "crops/photo.png/16x9.jpg",
            "crops/photo.png/crops.json",
            "crops/photo.png/master.jpg",
        ]
    )
    assert handled == 5  # the upload, then its four outputs, each seen once and skipped
    assert queue_depth(stack, stack.queue_url) == 0


def test_guard_covers_the_whole_output_bucket_without_a_prefix(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AUTOCROP_OUTPUT_BUCKET", "out")
    monkeypatch.setenv("AUTOCROP_OUTPUT_PREFIX", "")
    get_settings.cache_clear()
    try:
        settings = get_settings()
        own = trigger.SourceObject(bucket="out", key="anything.png")
        other = trigger.SourceObject(bucket="in", key="crops/anything.png")
        assert trigger.is_own_output(own, settings)
        assert not trigger.is_own_output(other, settings)
    finally:
        get_settings.cache_clear()


# --- the event shapes --------------------------------------------------------------------------


def _pointed_at(event: dict[str, Any], stack: Stack, key: str, etag: str) -> dict[str, Any]:
    """The sample S3 event, naming our bucket and object (key URL-encoded as S3 does)."""
    record = event["Records"][0]["s3"]
    record["bucket"].update(name=stack.input_bucket, arn=f"arn:aws:s3:::{stack.input_bucket}")
    record["object"].update(key=quote_plus(key, safe="/"), eTag=etag, size=len(photo()))
    return event


def test_direct_s3_event(stack: Stack, s3: Any):
    key = "holiday/summer photo+1.png"
    etag = upload(s3, stack, key, photo())
    event = _pointed_at(load_event("s3_put.json"), stack, key, etag)
    assert "summer+photo%2B1" in event["Records"][0]["s3"]["object"]["key"]

    results = handler(event, LocalContext())["results"]
    assert [r["status"] for r in results] == ["cropped"]
    assert results[0]["key"] == key
    assert f"{stack.output_prefix}/{key}/crops.json" in output_keys(s3, stack)


def test_sqs_wrapped_events_report_partial_failures(stack: Stack, s3: Any):
    """The sample batch: the first message's photo exists, the second's was never uploaded."""
    key = "holiday/summer photo+1.png"
    etag = upload(s3, stack, key, photo())
    event = load_event("sqs_s3_put.json")
    bodies = [json.loads(r["body"]) for r in event["Records"]]
    _pointed_at(bodies[0], stack, key, etag)
    bodies[1]["Records"][0]["s3"]["bucket"]["name"] = stack.input_bucket
    for record, body in zip(event["Records"], bodies, strict=True):
        record["body"] = json.dumps(body)

    # beach.png does not exist: that is "gone", not a failure; nothing to retry.
    assert handler(event, LocalContext()) == {"batchItemFailures": []}
    assert f"{stack.output_prefix}/{key}/crops.json" in output_keys(s3, stack)


def test_eventbridge_event(stack: Stack, s3: Any):
    key = "holiday/summer photo+1.png"
    etag = upload(s3, stack, key, photo())
    event = load_event("eventbridge_object_created.json")
    event["detail"]["bucket"]["name"] = stack.input_bucket
    event["detail"]["object"].update(key=quote_plus(key, safe="/"), etag=etag, size=len(photo()))

    results = handler(event, LocalContext())["results"]
    assert [(r["key"], r["status"]) for r in results] == [(key, "cropped")]


def test_s3_test_event_is_ignored(stack: Stack, s3: Any):
    assert handler(load_event("sqs_s3_test_event.json"), LocalContext()) == {
        "batchItemFailures": []
    }
    assert output_keys(s3, stack) == []


def test_output_base_normalises_keys():
    assert output_base("a/b.png", "crops") == "crops/a/b.png"
    assert output_base("/a//./b.png", "crops") == "crops/a/b.png"
    assert output_base("../x.png", "crops") == "crops/%2E%2E/x.png"
    assert output_base("x.png", "") == "x.png"
    assert output_base("/", "crops") == "crops/%2E"


# --- the local stack command (the README's main job) --------------------------------------------


def test_the_poller_reports_each_upload(stack: Stack, s3: Any):
    """Serving mode's log: a line per upload, with where its outputs are and how long it took."""
    lines: list[str] = []
    poller = Poller(stack, batch_size=1, report=lines.append)
    upload(s3, stack, "holiday/cat.png", photo())
    assert poller.drain() == 1
    upload(s3, stack, "broken.png", b"not an image at all")
    assert poller.drain() == 1

    base = f"s3://{stack.output_bucket}/{stack.output_prefix}"
    cropped = re.fullmatch(
        rf"\[upload\] holiday/cat\.png cropped in (\d+\.\d\d) s -> "
        rf"{re.escape(base)}/holiday/cat\.png/crops\.json \(4 crops: 1:1, 16:9, 4:5, 9:16\)",
        lines[0],
    )
    assert cropped, lines
    assert 0 < float(cropped[1]) < 120
    assert re.fullmatch(
        rf"\[upload\] broken\.png rejected \(\w+\) in \d+\.\d\d s -> "
        rf"{re.escape(base)}/broken\.png/error\.json",
        lines[1],
    ), lines
    assert len(lines) == 2

    assert Poller(stack).report is None  # quiet unless asked (the tests' pollers)


def test_the_local_stack_sends_the_cli_samples():
    """`autocrop crop --samples` and the local stack send the same photos."""
    photos = local_stack.sample_photos()
    assert [path for _, path in photos] == cli.sample_photos()
    assert len(photos) == len(cli.SAMPLE_PHOTOS)  # scikit-image and matplotlib are dev deps
    keys = [key for key, _ in photos]
    assert len(set(keys)) == len(keys) and all(k.startswith("samples/") for k in keys)


def test_local_stack_command_sends_the_samples_through(tmp_path: Path):
    done = subprocess.run(
        [sys.executable, "-m", "infra.local_stack", "--once", "--s3-port", "0", "--api-port", "0",
         "--download-to", str(tmp_path)],
        cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "API health:         ok" in done.stdout
    assert f"sent {len(cli.sample_photos())} sample photos" in done.stdout
    # a signed crop URL of a sample, served from its stored analysis, cacheable for good
    assert re.search(r"-> 200 image/webp, \d+ bytes, stored analysis from the (master|original), public, max-age=31536000, immutable",
                     done.stdout), done.stdout  # fmt: skip
    # ...under its version's URL, which the version-less URL redirects to (the printed one).
    assert "-> 302 to the current version's URL" in done.stdout
    assert re.search(r"^crop URL: +http://\S+/v1/crops/[^/]+/(?!_/)[^/]+/samples/", done.stdout, re.MULTILINE), done.stdout
    assert (
        "samples/astronaut.png -> s3://autocrop-output/crops/samples/astronaut.png/" in done.stdout
    )
    # The poller's line per upload, as serving mode prints it.
    for key, _ in local_stack.sample_photos():
        assert re.search(
            rf"^\[upload\] {re.escape(key)} cropped in \d+\.\d\d s -> "
            rf"s3://autocrop-output/crops/{re.escape(key)}/crops\.json \(4 crops: ",
            done.stdout,
            re.MULTILINE,
        ), done.stdout
    crops = tmp_path / "crops" / "samples"
    for name in ("astronaut.png", "grace_hopper.jpg"):
        sidecar = json.loads((crops / name / "crops.json").read_text())
        assert sidecar["status"] == "cropped"
        for ratio, key in sidecar["outputs"].items():
            image = Image.open(tmp_path / key)
            assert image.width / image.height == pytest.approx(parse_ratio(ratio), rel=0.02)
