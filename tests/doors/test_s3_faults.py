"""S3 faults against the live moto server: nothing is lost, nothing is written twice.

What tests/doors/test_s3_trigger.py already proves (redelivery, an unreadable upload, a missing
bucket, the recursion guard, awkward keys) is not repeated. Here: an object deleted before it
is read, access denied, a write that fails once (retried) or for good (dead-letter queue),
duplicates inside one batch, the s3:TestEvent in every wrapping, declared content types; and
the count: a mixed batch of every corpus upload and every fault through the real local path
(moto's S3 -> SQS notifications, the poller, the real handler), where every input ends as
crops, an error record, a dead-lettered message or an object that no longer exists.

Faults S3 itself cannot be made to produce here (403, 503) are injected as real HTTP
responses at botocore's `before-send` hook of the handler's own client, so botocore parses,
retries and raises exactly as it would against AWS.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError

from functions.s3 import trigger
from functions.s3.trigger import handler, objects_in
from infra.local_stack import LocalContext, Poller, Stack, sqs_lambda_event
from tests.corpus import corpus
from tests.doors.test_s3_trigger import (  # the live-moto fixtures and helpers, shared
    RATIOS,
    load_event,
    output_keys,
    photo,
    poller,
    queue_depth,
    s3,
    stack,
    upload,
)

__all__ = ["poller", "s3", "stack"]  # fixtures imported for pytest


# --- fault injection on the handler's own S3 client ---------------------------------------------


class _Body:
    def __init__(self, body: bytes):
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


def s3_error(status: int, code: str, message: str) -> AWSResponse:
    """An S3 error response as S3 sends it (XML body), for botocore to parse."""
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
        f"<Message>{message}</Message><RequestId>fault</RequestId></Error>"
    ).encode()
    return AWSResponse(
        "https://fault", status, {"content-type": "application/xml"}, _Body(body)
    )


@dataclass
class Fault:
    """Answer `operation` requests whose key matches with an error, `times` times (-1: always)."""

    operation: str
    status: int
    code: str
    key_contains: str = ""
    times: int = -1
    hits: list[str] = field(default_factory=list)

    def __call__(self, request: Any, **_: Any) -> AWSResponse | None:
        if self.key_contains and self.key_contains not in request.url:
            return None
        if self.times >= 0 and len(self.hits) >= self.times:
            return None
        self.hits.append(request.url)
        return s3_error(self.status, self.code, f"injected {self.code}")


@pytest.fixture
def inject(stack: Stack) -> Iterator[Callable[[Fault], Fault]]:
    """Register faults on the handler's S3 client (the process-wide one) for this test."""
    client = trigger.s3_client()
    registered: list[tuple[str, Fault]] = []

    def add(fault: Fault) -> Fault:
        event = f"before-send.s3.{fault.operation}"
        client.meta.events.register(event, fault)
        registered.append((event, fault))
        return fault

    yield add
    for event, fault in registered:
        client.meta.events.unregister(event, fault)


def base(stack: Stack, key: str) -> str:
    return f"{stack.output_prefix}/{key}"


def receive_one(stack: Stack) -> dict[str, Any]:
    return stack.client("sqs").receive_message(QueueUrl=stack.queue_url, MaxNumberOfMessages=1)[
        "Messages"
    ][0]


# --- one fault at a time ------------------------------------------------------------------------


def test_an_object_deleted_before_it_is_read_is_skipped_not_retried(stack: Stack, s3: Any):
    key = "gone/chelsea.png"
    upload(s3, stack, key, photo())
    message = receive_one(stack)
    s3.delete_object(Bucket=stack.input_bucket, Key=key)  # before the function reads it

    response = handler(sqs_lambda_event([message], stack.queue_arn), LocalContext())
    assert response == {"batchItemFailures": []}  # nothing to retry: the upload is gone
    assert output_keys(s3, stack) == []
    result = handler(json.loads(message["Body"]), LocalContext())["results"][0]
    assert (result["status"], result["reason"]) == ("skipped", "object gone or replaced")


def test_access_denied_is_retried_then_dead_lettered_without_an_error_record(
    stack: Stack, s3: Any, poller: Poller, inject: Callable[[Fault], Fault]
):
    """A 403 is our configuration's fault, not the upload's: keep the event for a replay."""
    fault = inject(Fault("GetObject", 403, "AccessDenied", key_contains="secret"))
    upload(s3, stack, "secret/photo.png", photo())
    poller.drain()

    assert len(fault.hits) == 3  # one per delivery: 403 is not retried inside botocore
    assert output_keys(s3, stack) == []  # no error.json: the photo may be fine
    assert queue_depth(stack, stack.queue_url) == 0
    assert queue_depth(stack, stack.dead_letter_url) == 1

    # Direct S3 invocation: raised, so Lambda's two retries and the failure destination apply.
    message = stack.client("sqs").receive_message(QueueUrl=stack.dead_letter_url)["Messages"][0]
    with pytest.raises(ClientError, match="AccessDenied"):
        handler(json.loads(message["Body"]), LocalContext())


def test_a_write_that_fails_once_is_retried_and_completes(
    stack: Stack, s3: Any, poller: Poller, inject: Callable[[Fault], Fault]
):
    fault = inject(Fault("PutObject", 503, "SlowDown", key_contains="16x9", times=1))
    key = "flaky/chelsea.png"
    upload(s3, stack, key, photo())
    poller.drain()

    assert len(fault.hits) == 1  # the 503 happened, and botocore retried it
    expected = [f"{base(stack, key)}/{r.replace(':', 'x')}.jpg" for r in RATIOS]
    assert output_keys(s3, stack) == sorted([f"{base(stack, key)}/crops.json", f"{base(stack, key)}/master.jpg", *expected])
    assert queue_depth(stack, stack.dead_letter_url) == 0


def test_a_write_that_keeps_failing_ends_in_the_dead_letter_queue_then_replays(
    stack: Stack, s3: Any, poller: Poller, inject: Callable[[Fault], Fault]
):
    fault = inject(Fault("PutObject", 403, "AccessDenied", key_contains="crops.json"))
    key = "stuck/chelsea.png"
    upload(s3, stack, key, photo())
    poller.drain()

    assert len(fault.hits) == 3
    assert queue_depth(stack, stack.dead_letter_url) == 1
    # Crops may be there, but no sidecar: the upload does not count as done.
    assert f"{base(stack, key)}/crops.json" not in output_keys(s3, stack)

    # Once the fault is fixed, replaying the dead-lettered event completes the upload.
    fault.times = 0
    sqs = stack.client("sqs")
    message = sqs.receive_message(QueueUrl=stack.dead_letter_url)["Messages"][0]
    assert handler(sqs_lambda_event([message], stack.queue_arn), LocalContext()) == {
        "batchItemFailures": []
    }
    assert f"{base(stack, key)}/crops.json" in output_keys(s3, stack)


def test_duplicates_inside_one_batch_give_one_set_of_outputs(stack: Stack, s3: Any):
    key = "twice/chelsea.png"
    upload(s3, stack, key, photo())
    message = receive_one(stack)
    twin = {**copy.deepcopy(message), "MessageId": message["MessageId"] + "-dup"}
    puts: list[str] = []

    def count(params: dict[str, Any], **_: Any) -> None:
        puts.append(params["Key"])

    client = trigger.s3_client()  # the handler's own: every write it sends passes here
    client.meta.events.register("before-parameter-build.s3.PutObject", count)
    try:
        response = handler(sqs_lambda_event([message, twin], stack.queue_arn), LocalContext())
    finally:
        client.meta.events.unregister("before-parameter-build.s3.PutObject", count)
    assert response == {"batchItemFailures": []}
    keys = output_keys(s3, stack)
    assert keys == sorted(
        [f"{base(stack, key)}/crops.json", f"{base(stack, key)}/master.jpg"]
        + [f"{base(stack, key)}/{r.replace(':', 'x')}.jpg" for r in RATIOS]
    )
    assert sorted(puts) == keys  # each written once: the twin was skipped


def test_s3_test_event_in_every_wrapping_is_ignored(stack: Stack, s3: Any):
    test_event = json.loads(load_event("sqs_s3_test_event.json")["Records"][0]["body"])
    assert test_event["Event"] == "s3:TestEvent"
    assert list(objects_in(test_event)) == []
    assert handler(test_event, LocalContext()) == {"results": []}
    assert output_keys(s3, stack) == []


@pytest.mark.parametrize(
    ("content_type", "body", "expect"),
    [
        ("text/html", b"<html>hello</html>", "unsupported_image"),
        ("application/pdf", photo(), "unsupported_image"),  # declared non-image: not read
        ("image/jpeg", b"<html>a page named .jpg</html>", "unsupported_image"),
        ("Image/PNG; charset=binary", photo(), "crop"),
        ("binary/octet-stream", photo(), "crop"),
        ("", photo(), "crop"),
    ],
)  # fmt: skip
def test_declared_content_types(
    stack: Stack, s3: Any, poller: Poller, content_type: str, body: bytes, expect: str
):
    key = "typed/upload.bin"
    s3.put_object(Bucket=stack.input_bucket, Key=key, Body=body, ContentType=content_type)
    poller.drain()
    names = output_keys(s3, stack)
    if expect == "crop":
        assert f"{base(stack, key)}/crops.json" in names
    else:
        assert names == [f"{base(stack, key)}/error.json"]
        record = json.loads(
            s3.get_object(Bucket=stack.output_bucket, Key=names[0])["Body"].read()
        )
        assert record["error"]["code"] == expect


# --- the count: every input ends somewhere ------------------------------------------------------


def test_every_input_ends_as_crops_an_error_record_or_a_dead_letter(
    stack: Stack, s3: Any, poller: Poller, inject: Callable[[Fault], Fault]
):
    """The whole corpus plus one upload per fault, through notifications and the poller."""
    cases = {f"mixed/{case.name}": case for case in corpus()}
    for key, case in cases.items():
        upload(s3, stack, key, case.data, case.content_type)
    upload(s3, stack, "mixed/good.png", photo())
    upload(s3, stack, "mixed/denied.png", photo())  # every read answers 403
    upload(s3, stack, "mixed/deleted.png", photo())
    s3.delete_object(Bucket=stack.input_bucket, Key="mixed/deleted.png")  # before it is read
    upload(s3, stack, "mixed/slow.png", photo())  # its first write answers 503
    inject(Fault("GetObject", 403, "AccessDenied", key_contains="denied.png"))
    inject(Fault("PutObject", 503, "SlowDown", key_contains="slow.png", times=1))

    handled = poller.drain()
    assert handled >= len(cases) + 4

    inputs = {o["Key"] for o in s3.list_objects_v2(Bucket=stack.input_bucket)["Contents"]}
    names = set(output_keys(s3, stack))
    dead = _dead_lettered_keys(stack)
    cropped = {k for k in inputs if f"{base(stack, k)}/crops.json" in names}
    failed = {k for k in inputs if f"{base(stack, k)}/error.json" in names}

    assert not cropped & failed
    assert dead == {"mixed/denied.png"}
    assert cropped | failed | dead == inputs  # every input that still exists ended somewhere
    assert "mixed/deleted.png" not in inputs | names  # the deleted one left nothing behind
    expected_crops = {k for k, c in cases.items() if not c.refused} | {"mixed/good.png",
                                                                       "mixed/slow.png"}
    assert cropped == expected_crops
    assert failed == {k for k, c in cases.items() if c.refused}
    print(f"\n{len(inputs)} inputs: {len(cropped)} cropped, {len(failed)} error records, "
          f"{len(dead)} dead-lettered; 1 deleted before it was read")  # fmt: skip

    for key in cropped:  # complete: a crop per ratio, as the sidecar lists
        sidecar = json.loads(
            s3.get_object(Bucket=stack.output_bucket, Key=f"{base(stack, key)}/crops.json")[
                "Body"
            ].read()
        )
        assert set(sidecar["outputs"]) == set(RATIOS)
        assert set(sidecar["outputs"].values()) <= names
    for key in failed:  # the record names the reason the corpus expects
        record = json.loads(
            s3.get_object(Bucket=stack.output_bucket, Key=f"{base(stack, key)}/error.json")[
                "Body"
            ].read()
        )
        assert record["error"]["code"] == cases[key].expect
        assert record["error"]["message"]
    # Nothing written outside the per-input folders, nothing left in the queue.
    assert all(any(n.startswith(base(stack, k) + "/") for k in inputs) for n in names)
    assert queue_depth(stack, stack.queue_url) == 0


def _dead_lettered_keys(stack: Stack) -> set[str]:
    sqs = stack.client("sqs")
    keys: set[str] = set()
    while True:
        messages = sqs.receive_message(
            QueueUrl=stack.dead_letter_url, MaxNumberOfMessages=10, VisibilityTimeout=60
        ).get("Messages", [])
        if not messages:
            return keys
        for message in messages:
            keys |= {obj.key for obj in objects_in(json.loads(message["Body"]))}
