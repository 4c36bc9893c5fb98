"""Fuzzing with hypothesis: decoding and event parsing never raise anything but their errors.

- Decoding: small valid images of every accepted format, mutated (bytes flipped, cut,
  inserted, deleted, duplicated; headers more often), and plain random bytes. `decode` and
  `render_crop` either succeed with a sane result or raise an `AutocropError`.
- Event parsing: generated S3 notifications, SQS batches and EventBridge events (any key
  text, URL-encoded as S3 sends it), and arbitrary JSON. Every created object is found with
  its exact key; anything malformed is an `InvalidEventError`; output keys never leave their
  prefix and distinct keys never share outputs.

The count is a setting: `AUTOCROP_FUZZ_EXAMPLES` (total examples, spread over the tests by
weight). CI (CI=true) runs 12,000; a developer's default run does 1,200. Examples are
derandomized (the same every run) and no example database is written.
"""

from __future__ import annotations

import io
import json
import os
import string
from collections import Counter
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote_plus

import numpy as np
import pytest
from autocrop import Box, decode, render_crop
from autocrop.errors import AutocropError
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from functions.s3 import trigger
from functions.s3.trigger import InvalidEventError, SourceObject, objects_in, output_base
from infra.local_stack import LocalContext
from tests.corpus import picture

#: Total examples over this module; CI runs the full count, a developer's run a tenth.
TOTAL = int(os.environ.get("AUTOCROP_FUZZ_EXAMPLES", "12000" if os.environ.get("CI") else "1200"))
#: Share of TOTAL each test gets.
WEIGHTS = {
    "decode_mutated": 0.34,
    "decode_mutated_heif": 0.06,
    "decode_random": 0.08,
    "s3_events": 0.15,
    "sqs_batches": 0.10,
    "eventbridge": 0.10,
    "arbitrary_json": 0.09,
    "output_keys": 0.08,
}
RUN: Counter[str] = Counter()


def fuzz(name: str) -> Any:
    """Settings for one fuzz test: its share of TOTAL, reproducible, no deadline."""
    return settings(
        max_examples=max(10, round(TOTAL * WEIGHTS[name])),
        deadline=None,
        derandomize=True,
        database=None,
        report_multiple_bugs=False,  # one failure, its own exception type
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                               HealthCheck.filter_too_much,
                               # `recorded` is a recorder each example clears itself
                               HealthCheck.function_scoped_fixture],  # fmt: skip
    )


@pytest.fixture(scope="module", autouse=True)
def report_count() -> Iterator[None]:
    yield
    if RUN:
        print(f"\nfuzz examples run: {sum(RUN.values())} ({dict(RUN)})")


# --- decoding -----------------------------------------------------------------------------------


def _encode(im: Image.Image, fmt: str, **params: Any) -> bytes:
    out = io.BytesIO()
    im.save(out, fmt, **params)
    return out.getvalue()


def seed_images() -> list[bytes]:
    """One small valid file per accepted format and awkward mode."""
    from autocrop.decode import register_plugins

    register_plugins()  # the HEIF writer comes with the engine's HEIF opener
    photo = Image.fromarray(picture(24, 18))
    exif = Image.Exif()
    exif[0x0112] = 6
    frames = [photo.convert("P"), photo.rotate(180).convert("P")]
    return [
        _encode(photo, "JPEG", quality=80),
        _encode(photo, "JPEG", quality=80, progressive=True, exif=exif.tobytes()),
        _encode(photo.convert("CMYK"), "JPEG"),
        _encode(photo, "PNG"),
        _encode(photo.convert("RGBA"), "PNG"),
        _encode(photo.convert("P"), "PNG", transparency=0),
        _encode(Image.fromarray((picture(24, 18)[..., 0].astype(np.uint16) * 257)), "PNG"),
        _encode(frames[0], "GIF", save_all=True, append_images=frames[1:]),
        _encode(photo, "WEBP", quality=80),
        _encode(photo, "TIFF"),
        _encode(photo, "BMP"),
        _encode(photo, "HEIF", quality=80),
        _encode(photo, "AVIF", quality=80),
    ]


SEEDS = seed_images()


#: The HEIF-family seeds (HEIC, AVIF: decoded by libheif/libavif), fuzzed apart from the rest.
HEIF_SEEDS = SEEDS[-2:]


@st.composite
def mutated_images(draw: st.DrawFn, seeds: list[bytes] = SEEDS[:-2]) -> bytes:
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 6))):
        if not data:
            break
        # headers (sizes, modes, chunk lengths) are where decoders get hurt: aim there often
        end = len(data) if draw(st.booleans()) else min(len(data), 64)
        pos = draw(st.integers(0, end - 1))
        op = draw(st.sampled_from(["flip", "set", "cut", "insert", "delete", "duplicate"]))
        if op == "flip":
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "set":
            data[pos] = draw(st.sampled_from([0x00, 0xFF, 0x7F, 0x80, 0x01]))
        elif op == "cut":
            del data[pos:]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 32))]
        else:
            length = draw(st.integers(1, 64))
            data[pos:pos] = data[pos : pos + length]
    return bytes(data)


def check_decoding(data: bytes) -> None:
    try:
        decoded = decode(data)
    except AutocropError:
        return
    assert decoded.rgb.dtype == np.uint8
    assert decoded.rgb.ndim == 3 and decoded.rgb.shape[2] == 3
    assert decoded.width >= 1 and decoded.height >= 1
    assert max(decoded.rgb.shape[:2]) <= 640
    box = Box(0, 0, max(1, decoded.width // 2), max(1, decoded.height // 2))
    try:  # the render path decodes again, at full size: it may find more damage, as an error
        out = render_crop(data, box, size=(8, 8), fmt="png")
    except AutocropError:
        return
    assert Image.open(io.BytesIO(out)).size == (8, 8)


def flipped(seed: bytes, pos: int) -> bytes:
    data = bytearray(seed)
    data[pos] ^= 0xFF
    return bytes(data)


@fuzz("decode_mutated")
@given(data=mutated_images())
def test_decoding_mutated_images(data: bytes):
    RUN["decode_mutated"] += 1
    check_decoding(data)


@fuzz("decode_mutated_heif")
@given(data=mutated_images(HEIF_SEEDS))
# found by this test: libavif/libheif raise RuntimeError, once a 500 from the API
@example(data=flipped(HEIF_SEEDS[1], 81))  # AVIF: "Missing or empty image item"
@example(data=flipped(HEIF_SEEDS[0], 320))  # HEIF: "Security limit exceeded: Image size"
def test_decoding_mutated_heic_and_avif(data: bytes):
    RUN["decode_mutated_heif"] += 1
    check_decoding(data)


@fuzz("decode_random")
@given(data=st.one_of(
    st.binary(max_size=2048),
    # random bytes behind a real signature reach each format's parser
    st.tuples(st.sampled_from([s[:16] for s in SEEDS]), st.binary(max_size=512)).map(
        lambda p: p[0] + p[1]),
))  # fmt: skip
def test_decoding_random_bytes(data: bytes):
    RUN["decode_random"] += 1
    check_decoding(data)


# --- event parsing ------------------------------------------------------------------------------

#: Any key S3 accepts: 1..1024 bytes of UTF-8 (no surrogates), slashes and dots included.
KEYS = st.text(
    alphabet=st.one_of(
        st.sampled_from("/./..%+ &=?#\\~"),
        st.characters(codec="utf-8", exclude_categories=("Cs",)),
    ),
    min_size=1,
    max_size=80,
)
BUCKETS = st.text(string.ascii_lowercase + string.digits + "-.", min_size=3, max_size=63)
ETAGS = st.text("0123456789abcdef", min_size=32, max_size=32).map(lambda e: f'"{e}"')
CREATED = st.sampled_from(["ObjectCreated:Put", "ObjectCreated:Post", "ObjectCreated:Copy",
                           "ObjectCreated:CompleteMultipartUpload"])  # fmt: skip
OTHER = st.sampled_from(["ObjectRemoved:Delete", "ObjectRestore:Completed", "LifecycleExpiration:Delete",
                         "ObjectTagging:Put", "Replication:OperationFailedReplication"])  # fmt: skip


@st.composite
def s3_records(draw: st.DrawFn) -> tuple[dict[str, Any], SourceObject | None]:
    key, bucket = draw(KEYS), draw(BUCKETS)
    created = draw(st.booleans())
    size = draw(st.integers(0, 5 * 1024**4))
    etag = draw(ETAGS)
    version = draw(st.one_of(st.none(), st.text(string.ascii_letters + string.digits, min_size=1,
                                                 max_size=32)))  # fmt: skip
    obj: dict[str, Any] = {"key": quote_plus(key, safe="/"), "size": size, "eTag": etag,
                           "sequencer": "0A1B2C3D4E5F678901"}  # fmt: skip
    if version is not None:
        obj["versionId"] = version
    record = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "us-east-1",
        "eventTime": "2024-05-01T12:00:00.000Z",
        "eventName": draw(CREATED if created else OTHER),
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "autocrop",
               "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"}, "object": obj},
    }  # fmt: skip
    expected = SourceObject(bucket, key, size, etag.strip('"'), version) if created else None
    return record, expected


@fuzz("s3_events")
@given(records=st.lists(s3_records(), max_size=5))
def test_s3_notifications_name_every_created_object_exactly(records: list[Any]):
    RUN["s3_events"] += 1
    event = {"Records": [r for r, _ in records]}
    assert objects_in(json.loads(json.dumps(event))) == [o for _, o in records if o is not None]


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[SourceObject]:
    """Replace the S3 work with a recorder: what is fuzzed here is the event handling."""
    seen: list[SourceObject] = []

    def process_object(obj: SourceObject, *_: Any) -> dict[str, Any]:
        seen.append(obj)
        return {"bucket": obj.bucket, "key": obj.key, "status": "recorded"}

    monkeypatch.setenv("AUTOCROP_OUTPUT_BUCKET", "fuzz-out")
    trigger.get_settings.cache_clear()
    monkeypatch.setattr(trigger, "process_object", process_object)
    monkeypatch.setattr(trigger, "s3_client", lambda: None)
    level = trigger.logger.log_level
    trigger.logger.setLevel("ERROR")  # thousands of events: keep the output readable
    yield seen
    trigger.logger.setLevel(level)
    trigger.get_settings.cache_clear()


JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
              st.text(max_size=20)),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.text(max_size=12), inner, max_size=4)),
    max_leaves=12,
)  # fmt: skip
#: Bodies an SQS queue could hand over: notifications, test events, and anything else.
BODIES = st.one_of(
    st.lists(s3_records(), min_size=1, max_size=3).map(
        lambda rs: (json.dumps({"Records": [r for r, _ in rs]}), [o for _, o in rs if o])),
    st.just((json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent",
                         "Bucket": "b", "RequestId": "r"}), [])),
    JSON.map(lambda j: (json.dumps(j), None)),
    st.text(max_size=40).map(lambda t: (t, None)),
)  # fmt: skip


@fuzz("sqs_batches")
@given(bodies=st.lists(BODIES, min_size=1, max_size=6))
def test_sqs_batches_fail_exactly_the_malformed_messages(recorded: list[SourceObject], bodies):
    RUN["sqs_batches"] += 1
    recorded.clear()
    event = {"Records": [
        {"messageId": f"m{i}", "receiptHandle": f"r{i}", "body": body, "attributes": {},
         "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
         "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:uploads", "awsRegion": "us-east-1"}
        for i, (body, _) in enumerate(bodies)
    ]}  # fmt: skip
    response = trigger.handler(event, LocalContext())
    failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
    expected_objects: list[SourceObject] = []
    for i, (body, objects) in enumerate(bodies):
        if objects is not None:  # a well-formed notification: processed, not failed
            assert f"m{i}" not in failed
            expected_objects += objects
        else:  # anything else is processed as parsed, or failed with InvalidEventError
            try:
                expected_objects += objects_in(json.loads(body))
                assert f"m{i}" not in failed
            except (InvalidEventError, ValueError):
                assert f"m{i}" in failed
    assert recorded == expected_objects


@st.composite
def eventbridge_events(draw: st.DrawFn) -> tuple[dict[str, Any], list[SourceObject]]:
    key, bucket, etag = draw(KEYS), draw(BUCKETS), draw(ETAGS).strip('"')
    size = draw(st.integers(0, 5 * 1024**4))
    detail_type = draw(st.sampled_from(["Object Created", "Object Deleted", "Object Restore Completed"]))
    version = draw(st.one_of(st.none(), st.text(string.ascii_letters, min_size=1, max_size=12)))
    obj: dict[str, Any] = {"key": quote_plus(key, safe="/"), "size": size, "etag": etag,
                           "sequencer": "00617F08299329D189"}  # fmt: skip
    if version is not None:
        obj["version-id"] = version
    event = {
        "version": "0", "id": "17793124-05d4-b198-2fde-7ededc63b103",
        "detail-type": detail_type, "source": "aws.s3", "account": "123456789012",
        "time": "2021-11-12T00:00:00Z", "region": "us-east-1",
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": {"version": "0", "bucket": {"name": bucket}, "object": obj,
                   "request-id": "N4N7GDK58NMKJ12R", "requester": "123456789012",
                   "reason": "PutObject"},
    }  # fmt: skip
    expected = [SourceObject(bucket, key, size, etag, version)] if detail_type == "Object Created" else []
    return event, expected


@fuzz("eventbridge")
@given(case=eventbridge_events())
def test_eventbridge_events_name_the_created_object_exactly(
    recorded: list[SourceObject], case: tuple[dict[str, Any], list[SourceObject]]
):
    RUN["eventbridge"] += 1
    recorded.clear()
    event, expected = case
    assert objects_in(event) == expected
    assert trigger.handler(event, LocalContext()) == {
        "results": [{"bucket": o.bucket, "key": o.key, "status": "recorded"} for o in expected]
    }


def _broken(event: Any) -> st.SearchStrategy[Any]:
    """Events with one part replaced by arbitrary JSON."""
    def replace(path: tuple[str | int, ...], value: Any) -> Any:
        copy = json.loads(json.dumps(event))
        node = copy
        for step in path[:-1]:
            node = node[step]
        node[path[-1]] = value
        return copy

    paths = [("Records",), ("Records", 0), ("Records", 0, "s3"), ("Records", 0, "s3", "object"),
             ("Records", 0, "s3", "object", "key"), ("Records", 0, "s3", "object", "size"),
             ("Records", 0, "s3", "bucket"), ("Records", 0, "s3", "bucket", "name"),
             ("Records", 0, "eventName")]  # fmt: skip
    return st.tuples(st.sampled_from(paths), JSON).map(lambda pv: replace(*pv))


_BASE_RECORD = {
    "eventName": "ObjectCreated:Put",
    "s3": {"bucket": {"name": "in"}, "object": {"key": "a.jpg", "size": 3, "eTag": "e"}},
}


@fuzz("arbitrary_json")
@given(event=st.one_of(JSON, _broken({"Records": [_BASE_RECORD]})))
def test_any_json_event_parses_or_is_an_invalid_event(recorded: list[SourceObject], event: Any):
    RUN["arbitrary_json"] += 1
    try:
        found = objects_in(event)
    except InvalidEventError as e:
        assert str(e)
        with pytest.raises(InvalidEventError):
            trigger.handler(event, LocalContext())
        return
    for obj in found:
        assert isinstance(obj.key, str) and obj.key and isinstance(obj.bucket, str) and obj.bucket
        assert obj.size is None or (isinstance(obj.size, int) and obj.size >= 0)


# --- output keys --------------------------------------------------------------------------------


@fuzz("output_keys")
@given(key=KEYS, other=KEYS, prefix=st.sampled_from(["crops", "a/b", "out-1"]))
@example(key="../x.png", other="%2E%2E/x.png", prefix="crops")
@example(key="%2E%2E/x.png", other="%252E%252E/x.png", prefix="crops")
@example(key=".../x.png", other="%2E%2E%2E/x.png", prefix="crops")
@example(key="%25/x.png", other="%/x.png", prefix="crops")
def test_output_keys_stay_under_their_prefix_and_never_collide(key: str, other: str, prefix: str):
    RUN["output_keys"] += 1
    base = output_base(key, prefix)
    assert base.startswith(prefix + "/")
    segments = base[len(prefix) + 1 :].split("/")
    assert all(s not in ("", ".", "..") and s.strip(".") != "" for s in segments), base

    def normalised(k: str) -> list[str]:  # the one documented merge: empty and "." segments
        return [s for s in k.split("/") if s not in ("", ".")]

    if normalised(key) != normalised(other):
        assert output_base(other, prefix) != base, (key, other)
