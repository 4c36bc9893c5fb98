"""S3 Batch Operations (invocation schema 2.0 and 1.0): crop the photos already in a bucket.

Batch Operations runs the upload function over every object of a manifest (an S3 Inventory
report, a CSV, or one it generates from a prefix), one task per invocation, and writes each
task's answer into its completion report. A task is processed exactly as an upload would be
(same outputs, same idempotency: a photo already cropped is skipped) and answered with:

    Succeeded          cropped, or skipped (already cropped, our own output, a folder marker)
    PermanentFailure   "<code>: <message>": not a usable image (its error record is written),
                       the object is gone (NoSuchKey), access refused; retrying cannot help
    TemporaryFailure   "<code>: <message>": throttling, a 5xx, a timeout: Batch Operations retries
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes import S3BatchOperationEvent, S3BatchOperationResponse
from aws_lambda_powertools.utilities.data_classes.s3_batch_operation_event import (
    S3BatchOperationResponseRecord,
    S3BatchOperationTask,
)
from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, HTTPClientError

from functions.s3.events import InvalidEventError, SourceObject

logger = Logger(service="autocrop", child=True)

#: AWS error codes worth retrying (besides any HTTP 5xx).
RETRYABLE_CODES = frozenset({
    "SlowDown", "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottled",
    "RequestLimitExceeded", "TooManyRequestsException", "RequestTimeout", "RequestTimeoutException",
    "InternalError", "ServiceUnavailable", "PriorRequestNotComplete",
})  # fmt: skip
#: Skips that mean the task is done (nothing to crop); any other skip is a failure.
DONE_SKIPS = ("already processed", "own output", "folder marker")
#: Completion reports keep result strings short.
RESULT_CHARS = 900


def is_batch_operations(event: Any) -> bool:
    """Whether the event is an S3 Batch Operations invocation."""
    return isinstance(event, dict) and "invocationSchemaVersion" in event and "tasks" in event


def answer(event: dict[str, Any], process: Callable[[SourceObject], dict[str, Any]]) -> dict[str, Any]:
    """The Batch Operations response for one invocation: `process` each task's object."""
    try:
        batch = S3BatchOperationEvent(event)
        response = S3BatchOperationResponse(batch.invocation_schema_version, batch.invocation_id, "PermanentFailure")
        tasks = list(batch.tasks)
        for task in tasks:
            task.task_id  # noqa: B018 (a task without an id cannot be answered)
    except (KeyError, TypeError, AttributeError) as e:
        raise InvalidEventError(f"malformed S3 Batch Operations event ({type(e).__name__}: {e})") from e
    if len(tasks) != 1:  # the documented contract: one task per invocation
        raise InvalidEventError(f"an S3 Batch Operations invocation holds one task, got {len(tasks)}")
    response.add_result(task_result(tasks[0], process))
    return response.asdict()


def task_result(
    task: S3BatchOperationTask, process: Callable[[SourceObject], dict[str, Any]]
) -> S3BatchOperationResponseRecord:
    """One task's result code and report string."""
    try:
        obj = SourceObject(bucket=task.s3_bucket, key=task.s3_key, version_id=task.s3_version_id or None)
    except (KeyError, TypeError, ValueError) as e:
        return _result(task, "PermanentFailure", f"invalid_task: {e}")
    try:
        outcome = process(obj)
    except ClientError as e:
        code = str(e.response.get("Error", {}).get("Code", "ClientError"))
        status = int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        temporary = code in RETRYABLE_CODES or status >= 500
        logger.warning("batch task: AWS error", extra={"key": obj.key, "code": code, "temporary": temporary})
        return _result(task, "TemporaryFailure" if temporary else "PermanentFailure", f"{code}: {e}")
    except (ConnectionError, HTTPClientError) as e:  # the network, not the photo
        return _result(task, "TemporaryFailure", f"{type(e).__name__}: {e}")
    except BotoCoreError as e:  # a body read cut off, credentials not yet there: retry
        return _result(task, "TemporaryFailure", f"{type(e).__name__}: {e}")
    status = outcome["status"]
    if status == "cropped":
        return _result(task, "Succeeded", f"cropped: {outcome['sidecar']}")
    if status == "skipped" and outcome["reason"] in DONE_SKIPS:
        return _result(task, "Succeeded", f"skipped: {outcome['reason']}")
    if status == "skipped" and outcome.get("gone") is False:  # its newer upload is cropped by its own event
        return _result(task, "Succeeded", "skipped: replaced by a newer upload")
    if status == "skipped":  # gone since the manifest was made
        return _result(task, "PermanentFailure", f"NoSuchKey: {outcome['reason']}")
    return _result(
        task, "PermanentFailure", f"{outcome['code']}: {outcome.get('detail', '')} ({outcome['error_record']})"
    )


def _result(task: S3BatchOperationTask, code: Any, text: str) -> S3BatchOperationResponseRecord:
    return task.build_task_batch_response(code, text[:RESULT_CHARS])
