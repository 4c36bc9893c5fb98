"""S3 Batch Operations through the upload function, against the live moto server: the same
outputs and idempotency as an upload, and the result code Batch Operations acts on."""

from __future__ import annotations

import copy
import json
from typing import Any
from urllib.parse import quote_plus

import pytest

from functions.s3 import trigger
from infra.local_stack import LocalContext, Stack
from tests.doors.test_s3_faults import Fault, inject
from tests.doors.test_s3_trigger import RATIOS, load_event, output_keys, photo, s3, stack, upload

__all__ = ["inject", "s3", "stack"]  # fixtures imported for pytest


def batch_event(stack: Stack, key: str, schema: str = "2.0", version: str | None = None) -> dict[str, Any]:
    """The recorded Batch Operations event (AWS's documented shape), aimed at this stack."""
    event = copy.deepcopy(load_event(f"s3_batch_operations_v{schema[0]}.json"))
    task = event["tasks"][0]
    task["s3Key"] = key
    task["s3VersionId"] = version
    if schema == "1.0":
        task["s3BucketArn"] = f"arn:aws:s3:::{stack.input_bucket}"
    else:
        task["s3Bucket"] = stack.input_bucket
    return event


def run(event: dict[str, Any]) -> dict[str, Any]:
    response = trigger.handler(event, LocalContext())
    json.dumps(response)  # what Lambda returns must be JSON
    assert response["invocationSchemaVersion"] == event["invocationSchemaVersion"]
    assert response["invocationId"] == event["invocationId"]
    assert response["treatMissingKeysAs"] == "PermanentFailure"
    [result] = response["results"]
    assert result["taskId"] == event["tasks"][0]["taskId"]
    return result


@pytest.mark.parametrize("schema", ["2.0", "1.0"])
def test_a_task_crops_like_an_upload_then_is_skipped(stack: Stack, s3: Any, schema: str):
    key = "old photos/chelsea cat.png"  # Batch Operations URL-encodes keys in the manifest
    upload(s3, stack, key, photo())

    first = run(batch_event(stack, quote_plus(key, safe="/"), schema))
    base = f"{stack.output_prefix}/{key}"
    assert first["resultCode"] == "Succeeded" and first["resultString"] == f"cropped: {base}/crops.json"
    assert output_keys(s3, stack) == sorted([f"{base}/crops.json", f"{base}/master.jpg"]
                                            + [f"{base}/{r.replace(':', 'x')}.jpg" for r in RATIOS])
    sidecar = json.loads(s3.get_object(Bucket=stack.output_bucket, Key=f"{base}/crops.json")["Body"].read())
    assert sidecar["source"]["etag"] and sidecar["source"]["key"] == key

    written = {o["Key"]: o["LastModified"] for o in s3.list_objects_v2(Bucket=stack.output_bucket)["Contents"]}
    again = run(batch_event(stack, quote_plus(key, safe="/"), schema))
    assert again == {**first, "resultString": "skipped: already processed"}
    assert {o["Key"]: o["LastModified"] for o in s3.list_objects_v2(Bucket=stack.output_bucket)["Contents"]} == written


def test_a_broken_photo_is_a_permanent_failure_with_its_code_and_an_error_record(stack: Stack, s3: Any):
    upload(s3, stack, "old/broken.jpg", b"not a photo at all", "image/jpeg")
    result = run(batch_event(stack, "old/broken.jpg"))
    assert result["resultCode"] == "PermanentFailure"
    assert result["resultString"].startswith("unsupported_image: ")
    record = json.loads(s3.get_object(Bucket=stack.output_bucket,
                                      Key=f"{stack.output_prefix}/old/broken.jpg/error.json")["Body"].read())  # fmt: skip
    assert record["error"]["code"] == "unsupported_image"


def test_a_missing_object_is_a_permanent_failure(stack: Stack, s3: Any):
    result = run(batch_event(stack, "never/uploaded.jpg"))
    assert result["resultCode"] == "PermanentFailure" and result["resultString"].startswith("NoSuchKey")
    assert output_keys(s3, stack) == []


def test_a_throttled_read_is_a_temporary_failure_and_the_retry_succeeds(stack: Stack, s3: Any, inject):
    upload(s3, stack, "old/slow.png", photo())
    fault = inject(Fault("GetObject", 503, "SlowDown", key_contains=f"{stack.input_bucket}/old/slow.png"))
    result = run(batch_event(stack, "old/slow.png"))
    assert result["resultCode"] == "TemporaryFailure" and result["resultString"].startswith("SlowDown")
    assert len(fault.hits) > 1  # botocore retried it, then the task is handed back
    assert output_keys(s3, stack) == []
    fault.times = len(fault.hits)  # the throttling ends: Batch Operations' retry goes through
    assert run(batch_event(stack, "old/slow.png"))["resultCode"] == "Succeeded"


def test_access_denied_is_permanent(stack: Stack, s3: Any, inject):
    upload(s3, stack, "old/secret.png", photo())
    inject(Fault("GetObject", 403, "AccessDenied", key_contains=f"{stack.input_bucket}/old/secret.png"))
    result = run(batch_event(stack, "old/secret.png"))
    assert result["resultCode"] == "PermanentFailure" and result["resultString"].startswith("AccessDenied")


def test_own_outputs_in_a_manifest_succeed_without_work(stack: Stack, s3: Any):
    event = batch_event(stack, f"{stack.output_prefix}/x/1x1.jpg")
    event["tasks"][0]["s3Bucket"] = stack.output_bucket
    result = run(event)
    assert result == {**result, "resultCode": "Succeeded", "resultString": "skipped: own output"}


@pytest.mark.parametrize("broken", [
    lambda e: e.pop("tasks"),
    lambda e: e["tasks"].append(dict(e["tasks"][0])),
    lambda e: e["tasks"][0].pop("taskId"),
])  # fmt: skip
def test_a_malformed_invocation_raises_an_invalid_event(stack: Stack, broken):
    event = batch_event(stack, "x.png")
    broken(event)
    if "tasks" not in event:
        event["tasks"] = None
    with pytest.raises(trigger.InvalidEventError):
        trigger.handler(event, LocalContext())


def test_a_refused_upload_is_recorded_once_and_a_rerun_skips_it(stack: Stack, s3: Any):
    """Refused on its declared type before any decode: the error record names the upload's
    ETag (learnt from the GET), so the next backfill skips it instead of refusing it again."""
    etag = upload(s3, stack, "old/notes.txt", b"just some text", "text/plain")
    first = run(batch_event(stack, "old/notes.txt"))
    assert first["resultCode"] == "PermanentFailure" and first["resultString"].startswith("unsupported_image")
    key = f"{stack.output_prefix}/old/notes.txt/error.json"
    record = json.loads(s3.get_object(Bucket=stack.output_bucket, Key=key)["Body"].read())
    assert record["source"]["etag"] == etag
    written = s3.head_object(Bucket=stack.output_bucket, Key=key)["LastModified"]
    again = run(batch_event(stack, "old/notes.txt"))
    assert (again["resultCode"], again["resultString"]) == ("Succeeded", "skipped: already processed")
    assert s3.head_object(Bucket=stack.output_bucket, Key=key)["LastModified"] == written
