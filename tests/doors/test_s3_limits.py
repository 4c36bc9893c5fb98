"""S3's limits on keys (1,024 bytes) and user metadata (2 KB) against the live moto server:
an upload whose outputs would pass them is answered before any work, and nothing is lost.

moto accepts both an over-long key and over-large metadata, so the handler's own client is
given S3's answers (400 KeyTooLongError, 400 MetadataTooLarge) at botocore's `before-send`
hook: botocore parses and raises them as it would against AWS.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import pytest
from botocore.awsrequest import AWSPreparedRequest, AWSResponse

from functions.s3 import trigger
from functions.s3.outputs import output_base
from infra.local_stack import LocalContext, Stack, sqs_lambda_event
from tests.doors.test_s3_faults import s3_error
from tests.doors.test_s3_trigger import RATIOS, output_keys, photo, s3, stack, upload

__all__ = ["s3", "stack"]  # fixtures imported for pytest

#: S3's limits (bytes, UTF-8), as AWS documents them: an object key; one object's user metadata.
KEY_LIMIT = 1024
METADATA_LIMIT = 2048
#: The longest name written under a key's folder: "overrides.json" (stored corrections), longer
#: than "crops.json", "error.json" and "master.jpg".
LONGEST_NAME = len("/overrides.json")


def s3_limits(request: AWSPreparedRequest, **_: Any) -> AWSResponse | None:
    """S3's answer to a PutObject over its key or metadata limit (None: let it through)."""
    if request.method != "PUT":
        return None
    key = unquote(urlsplit(request.url).path).split("/", 2)[2]
    if len(key.encode()) > KEY_LIMIT:
        return s3_error(400, "KeyTooLongError", "Your key is too long")
    metadata = sum(len(name[len("x-amz-meta-"):].encode()) + len(str(value).encode())
                   for name, value in request.headers.items() if name.lower().startswith("x-amz-meta-"))  # fmt: skip
    if metadata > METADATA_LIMIT:
        return s3_error(400, "MetadataTooLarge", "Your metadata headers exceed the maximum allowed metadata size")
    return None


@pytest.fixture
def limited(stack: Stack) -> Iterator[None]:
    """The handler's S3 client meets S3's limits, as on AWS."""
    client = trigger.s3_client()
    client.meta.events.register("before-send.s3.PutObject", s3_limits)
    yield
    client.meta.events.unregister("before-send.s3.PutObject", s3_limits)


def deliver(stack: Stack) -> dict[str, Any]:
    """The queued notifications through the SQS door (left queued: the next call redelivers them)."""
    sqs = stack.client("sqs")
    messages = sqs.receive_message(QueueUrl=stack.queue_url, MaxNumberOfMessages=10)["Messages"]
    return trigger.handler(sqs_lambda_event(messages, stack.queue_arn), LocalContext())


def key_of(length: int, head: str = "a+b c/100%//") -> str:
    """A key of exactly `length` bytes (UTF-8) starting with `head`."""
    return head + "x" * (length - len(head.encode()) - len(".png")) + ".png"


def written_keys_fit(s3: Any, stack: Stack) -> None:
    assert all(len(k.encode()) <= KEY_LIMIT for k in output_keys(s3, stack))


@pytest.mark.parametrize(
    "key",
    [key_of(1021), key_of(KEY_LIMIT), key_of(1017, "写真/" * 20), "長" * 341],
    ids=["1021-bytes", "1024-bytes", "cjk-path-1017-bytes", "341-cjk-characters"],
)  # fmt: skip
def test_a_key_too_long_for_its_outputs_gets_a_short_error_record(stack: Stack, s3: Any, limited: None, key: str):
    etag = upload(s3, stack, key, photo())
    assert deliver(stack) == {"batchItemFailures": []}  # answered: no retries, no dead letter

    record_key = f"{stack.output_prefix}/_errors/{hashlib.sha256(key.encode()).hexdigest()}.json"
    assert output_keys(s3, stack) == [record_key]
    record = json.loads(s3.get_object(Bucket=stack.output_bucket, Key=record_key)["Body"].read())
    assert record["source"]["key"] == key and record["source"]["etag"] == etag
    assert record["error"]["code"] == "key_too_long"
    assert str(KEY_LIMIT) in record["error"]["message"]

    # Redelivered (the message stays queued): the record names this upload; nothing is rewritten.
    before = s3.head_object(Bucket=stack.output_bucket, Key=record_key)["LastModified"]
    assert deliver(stack) == {"batchItemFailures": []}
    assert s3.head_object(Bucket=stack.output_bucket, Key=record_key)["LastModified"] == before


@pytest.mark.parametrize(
    "head", ["a+b c/100%//", "%2E%2E/..//", "写真 ☀+%/"], ids=["plus-space-percent", "dots", "cjk"]
)
def test_the_longest_key_that_fits_is_cropped_and_one_byte_more_is_not(stack: Stack, s3: Any, limited: None, head: str):
    """The limit is on the outputs' keys as written (`output_base` may drop or escape parts)."""
    def longest_output(key: str) -> int:
        return len(output_base(key, stack.output_prefix).encode()) + LONGEST_NAME

    fits = next(key_of(n, head) for n in range(KEY_LIMIT, 0, -1) if longest_output(key_of(n, head)) <= KEY_LIMIT)
    too_long = fits[:-4] + "x.png"
    upload(s3, stack, fits, photo())
    upload(s3, stack, too_long, photo())
    assert deliver(stack) == {"batchItemFailures": []}

    base = output_base(fits, stack.output_prefix)
    sidecar = json.loads(s3.get_object(Bucket=stack.output_bucket, Key=f"{base}/crops.json")["Body"].read())
    assert sidecar["source"]["key"] == fits
    assert sorted(sidecar["outputs"]) == sorted(RATIOS)
    assert longest_output(too_long) == KEY_LIMIT + 1
    record = f"{stack.output_prefix}/_errors/{hashlib.sha256(too_long.encode()).hexdigest()}.json"
    assert record in output_keys(s3, stack)
    written_keys_fit(s3, stack)


@pytest.mark.parametrize(
    "key",
    ["猫/" + "写真" * 100 + ".png", "a/" + "%+ " * 200 + ".png", key_of(1000)],
    ids=["200-cjk-characters", "percent-encoding-triples-it", "1000-bytes-fits-as-it-is"],
)  # fmt: skip
def test_metadata_fits_s3s_limit_whatever_the_key(stack: Stack, s3: Any, limited: None, key: str):
    """The source key travels percent-encoded in each output's metadata; where that would crowd
    S3's 2 KB, its SHA-256 names it instead (crops.json keeps the full key)."""
    etag = upload(s3, stack, key, photo())
    assert deliver(stack) == {"batchItemFailures": []}

    base = output_base(key, stack.output_prefix)
    sidecar = json.loads(s3.get_object(Bucket=stack.output_bucket, Key=f"{base}/crops.json")["Body"].read())
    assert sidecar["source"]["key"] == key and sidecar["source"]["etag"] == etag
    for name in [*sidecar["outputs"].values(), sidecar["master"]["key"]]:
        metadata = s3.head_object(Bucket=stack.output_bucket, Key=name)["Metadata"]
        assert sum(len(k.encode()) + len(v.encode()) for k, v in metadata.items()) <= METADATA_LIMIT
        assert metadata["source-etag"] == etag
        if "source-key" in metadata:
            assert metadata["source-key"] == quote(key, safe="/")
        else:
            assert metadata["source-key-sha256"] == hashlib.sha256(key.encode()).hexdigest()
