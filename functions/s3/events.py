"""Events -> the uploaded objects they name: S3 notifications, SQS-wrapped ones, EventBridge.

Powertools' event classes read the events (the EventBridge key arrives URL-decoded; an S3
notification's key is URL-encoded, "my photo.jpg" as "my+photo.jpg", and is decoded here);
`SourceObject` is a pydantic dataclass, so a field of the wrong type or shape is refused by
validation rather than by hand-written checks.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Annotated, Any
from urllib.parse import unquote_plus

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes import S3Event, SQSRecord
from aws_lambda_powertools.utilities.data_classes.s3_event import S3EventBridgeNotificationEvent
from pydantic import ConfigDict, Field
from pydantic.dataclasses import dataclass

logger = Logger(service="autocrop", child=True)
#: The `autocrop` field of a regeneration message (`regenerate_message`).
REGENERATE = "regenerate"


class InvalidEventError(ValueError):
    """The event is not an S3, SQS-wrapped or EventBridge event this function understands."""


@dataclass(frozen=True, config=ConfigDict(strict=True))
class SourceObject:
    """One uploaded object named by an event (key already URL-decoded), with the types S3 sends."""

    bucket: Annotated[str, Field(min_length=1)]
    key: Annotated[str, Field(min_length=1)]
    size: Annotated[int, Field(ge=0)] | None = None
    etag: str = ""
    version_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "bucket": self.bucket,
            "key": self.key,
            "size": self.size,
            "etag": self.etag,
            "version_id": self.version_id,
        }


def objects_in(event: Any) -> list[SourceObject]:
    """The created objects an S3 notification or EventBridge event names, or the photo a
    regeneration message names (others: none).

    A malformed event raises `InvalidEventError` (never KeyError/TypeError): raised, it is
    retried and then lands in the failure destination, where it can be looked at.
    """
    try:
        return list(_objects_in(event))
    except InvalidEventError:
        raise
    except (KeyError, TypeError, AttributeError, ValueError) as e:  # pydantic's ValidationError too
        raise InvalidEventError(
            f"malformed event ({type(e).__name__}: {e}); expected an S3 notification, "
            "an SQS message holding one, or an EventBridge 'Object Created' event"
        ) from e


def _objects_in(event: Any) -> Iterator[SourceObject]:
    if not isinstance(event, dict):
        raise InvalidEventError(f"an event is a JSON object, got {type(event).__name__}")
    if event.get("Event") == "s3:TestEvent":  # sent once when a notification is configured
        return
    if event.get("source") == "aws.s3":
        eb = S3EventBridgeNotificationEvent(event)
        if eb.detail_type == "Object Created":
            created = eb.detail.object
            yield SourceObject(
                bucket=eb.detail.bucket.name,
                key=created.key,  # URL-decoded by Powertools
                size=created.get("size"),
                etag=bare_etag(created.get("etag")),
                version_id=created.get("version-id"),  # only on versioned buckets
            )
        return
    if event.get("autocrop") == REGENERATE:  # `regenerate_message`: the photo as it is now
        yield SourceObject(bucket=event["bucket"], key=event["key"])
        return
    if "Records" not in event:
        logger.warning("ignoring an event of unknown shape", extra={"keys": sorted(map(str, event))})
        return
    for record in S3Event(event).records:
        if not str(record.event_name).startswith("ObjectCreated:"):
            continue
        s3 = record.s3
        obj = s3.get_object
        key = obj["key"]
        yield SourceObject(
            bucket=s3.bucket.name,
            key=unquote_plus(key) if isinstance(key, str) else key,
            size=obj.get("size"),
            etag=bare_etag(obj.get("eTag")),
            version_id=obj.get("versionId"),
        )


def regenerate_message(bucket: str, key: str) -> str:
    """The SQS message body that has the upload function crop the photo `key` again as it is
    now (its overrides changed): the same job and records as an upload of it."""
    return json.dumps({"autocrop": REGENERATE, "bucket": bucket, "key": key}, ensure_ascii=False)


def bare_etag(etag: Any) -> Any:
    """An ETag without its quotes (S3 quotes them in responses, not in events)."""
    return etag.strip('"') if isinstance(etag, str) else (etag or "")


def is_sqs_batch(event: Any) -> bool:
    """Whether the event is a batch of SQS messages (each holding an S3 or EventBridge event)."""
    records = event.get("Records") if isinstance(event, dict) else None
    return (
        isinstance(records, list)
        and bool(records)
        and isinstance(records[0], dict)
        and records[0].get("eventSource") == "aws:sqs"
    )


def sqs_event(record: SQSRecord) -> Any:
    """The S3 notification (or EventBridge event) an SQS message carries, parsed."""
    try:
        return json.loads(record.body)
    except (TypeError, ValueError) as e:
        raise InvalidEventError(f"the SQS message body is not JSON ({e})") from e
