"""S3 upload trigger: each new photo in the input bucket -> its crops in the output bucket.

Accepts S3 ObjectCreated notifications as Lambda receives them directly, wrapped in SQS
messages (partial batch failures reported per message) or as EventBridge "Object Created"
events. For an upload `<key>` it writes, under the configured prefix:

    <prefix>/<key>/<ratio with ':' -> 'x'>.jpg   one crop per ratio, with source metadata
    <prefix>/<key>/crops.json                    every box and score (written last)
    <prefix>/<key>/error.json                    instead, when the upload is not a usable image

Redelivery is harmless: keys are deterministic and an upload whose ETag/version the sidecar
(or error record) already names is skipped. A bad upload gets an error record and returns
normally (no retry storm); an AWS failure is raised so Lambda retries and, in the end, the
failure destination receives the event.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote_plus

import boto3
from autocrop import CropOptions, CropResult, RenderRequest, analyse, render_crops
from autocrop.errors import (
    AutocropError,
    ImageTooLargeError,
    InvalidOptionsError,
    UnsupportedImageError,
)
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes import S3Event, SQSRecord
from aws_lambda_powertools.utilities.data_classes.s3_event import S3EventBridgeNotificationEvent
from botocore.config import Config
from botocore.exceptions import ClientError

from functions.settings import Settings, get_settings

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext
    from mypy_boto3_s3 import S3Client
else:
    LambdaContext = S3Client = Any

logger = Logger(service="autocrop")

SIDECAR = "crops.json"
ERROR_RECORD = "error.json"
#: Declared types that are certainly not photos; anything else is left to the decoder.
GENERIC_TYPES = ("", "application/octet-stream", "binary/octet-stream")
#: Error records name the failure with a stable code, one per domain error.
ERROR_CODES: dict[type[AutocropError], str] = {
    UnsupportedImageError: "unsupported_image",
    ImageTooLargeError: "image_too_large",
    InvalidOptionsError: "invalid_options",
}


@dataclass(frozen=True)
class SourceObject:
    """One uploaded object named by an event (key already URL-decoded)."""

    bucket: str
    key: str
    size: int | None = None
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


@lru_cache(maxsize=1)
def s3_client() -> S3Client:
    """The process-wide S3 client (AWS_ENDPOINT_URL points it at a local stack)."""
    return boto3.client("s3", config=Config(retries={"mode": "standard", "max_attempts": 3}))


# ---------------------------------------------------------------------------------------------
# Events -> objects


class InvalidEventError(ValueError):
    """The event is not an S3, SQS-wrapped or EventBridge event this function understands."""


def objects_in(event: Any) -> list[SourceObject]:
    """The created objects an S3 notification or EventBridge event names (others: none).

    A malformed event raises `InvalidEventError` (never KeyError/TypeError): raised, it is
    retried and then lands in the failure destination, where it can be looked at.
    """
    try:
        return list(_objects_in(event))
    except InvalidEventError:
        raise
    except (KeyError, TypeError, AttributeError, ValueError) as e:
        raise InvalidEventError(
            f"malformed event ({type(e).__name__}: {e}); expected an S3 notification, "
            "an SQS message holding one, or an EventBridge 'Object Created' event"
        ) from e


def _objects_in(event: dict[str, Any]) -> Iterator[SourceObject]:
    if not isinstance(event, dict):
        raise InvalidEventError(f"an event is a JSON object, got {type(event).__name__}")
    if event.get("Event") == "s3:TestEvent":  # sent once when a notification is configured
        return
    if event.get("source") == "aws.s3":
        eb = S3EventBridgeNotificationEvent(event)
        if eb.detail_type == "Object Created":
            created = eb.detail.object
            yield _checked(
                SourceObject(
                    bucket=eb.detail.bucket.name,
                    key=created.key,  # URL-decoded by Powertools
                    size=created.get("size"),
                    etag=_bare_etag(created.get("etag")),
                    version_id=created.get("version-id"),  # only on versioned buckets
                )
            )
        return
    if "Records" not in event:
        shape = sorted(map(str, event))
        logger.warning("ignoring an event of unknown shape", extra={"keys": shape})
        return
    for record in S3Event(event).records:
        if not str(record.event_name).startswith("ObjectCreated:"):
            continue
        s3 = record.s3
        obj = s3.get_object
        yield _checked(
            SourceObject(
                bucket=s3.bucket.name,
                # S3 notifications URL-encode keys ("my photo.jpg" arrives as "my+photo.jpg").
                key=unquote_plus(obj["key"]),
                size=obj.get("size"),
                etag=_bare_etag(obj.get("eTag")),
                version_id=obj.get("versionId"),
            )
        )


def _checked(obj: SourceObject) -> SourceObject:
    """The fields a handler relies on have the types S3 sends."""
    if not isinstance(obj.bucket, str) or not obj.bucket:
        raise InvalidEventError(f"the bucket name must be a non-empty string, got {obj.bucket!r}")
    if not isinstance(obj.key, str) or not obj.key:
        raise InvalidEventError(f"the object key must be a non-empty string, got {obj.key!r}")
    if obj.size is not None and (not isinstance(obj.size, int) or isinstance(obj.size, bool)
                                 or obj.size < 0):  # fmt: skip
        raise InvalidEventError(f"the object size must be a whole number, got {obj.size!r}")
    if not isinstance(obj.etag, str):
        raise InvalidEventError(f"the ETag must be a string, got {obj.etag!r}")
    if obj.version_id is not None and not isinstance(obj.version_id, str):
        raise InvalidEventError(f"the version id must be a string, got {obj.version_id!r}")
    return obj


def _bare_etag(etag: Any) -> Any:
    return etag.strip('"') if isinstance(etag, str) else (etag or "")


# ---------------------------------------------------------------------------------------------
# Output layout


def output_base(key: str, prefix: str) -> str:
    """`<prefix>/<key>` with the key normalised so it cannot leave the prefix.

    Empty and "." segments are dropped (as a path would read them); every other segment that
    a reader could take for a path step ("..", "...") or for one of these escapes (anything
    starting with "%2E" or "%25") has its "%" and "." percent-encoded. So distinct keys
    never share outputs, apart from those that differ only by empty or "." segments.
    """
    parts = []
    for part in key.split("/"):
        if part in ("", "."):
            continue
        if part.strip(".") == "" or part.startswith(("%2E", "%25")):
            part = part.replace("%", "%25").replace(".", "%2E")
        parts.append(part)
    safe = "/".join(parts) or "_"
    return f"{prefix}/{safe}" if prefix else safe


def ratio_slug(ratio: str) -> str:
    """File-name form of a ratio: "16:9" -> "16x9"."""
    return ratio.replace(":", "x")


def is_own_output(obj: SourceObject, settings: Settings) -> bool:
    """True for objects this function wrote (the recursion guard)."""
    if obj.bucket != settings.output_bucket:
        return False
    prefix = settings.normalised_prefix
    return not prefix or obj.key == prefix or obj.key.startswith(prefix + "/")


# ---------------------------------------------------------------------------------------------
# One object


def process_object(
    obj: SourceObject, settings: Settings, options: CropOptions, s3: S3Client
) -> dict[str, Any]:
    """Crop one upload into the output bucket; returns what was done (for logs and tests)."""
    outcome = {"bucket": obj.bucket, "key": obj.key}
    if is_own_output(obj, settings):
        return {**outcome, "status": "skipped", "reason": "own output"}
    if obj.key.endswith("/"):
        return {**outcome, "status": "skipped", "reason": "folder marker"}

    base = output_base(obj.key, settings.normalised_prefix)
    previous = _read_json(s3, settings.output_bucket, f"{base}/{SIDECAR}")
    previous_error = _read_json(s3, settings.output_bucket, f"{base}/{ERROR_RECORD}")
    if _done_before(obj, previous, previous_error):
        return {**outcome, "status": "skipped", "reason": "already processed"}

    source = obj
    try:
        if obj.size is not None:
            _check_size(obj.size, settings)
        got = _get_object(s3, obj, settings)
        if got is None:
            return {**outcome, "status": "skipped", "reason": "object gone or replaced"}
        source, data = got
        if _done_before(source, previous, previous_error):
            return {**outcome, "status": "skipped", "reason": "already processed"}
        started = time.perf_counter()
        result = analyse(data, options)
        written = _write_crops(s3, settings, base, source, data, result)
    except AutocropError as e:
        code = ERROR_CODES.get(type(e), "autocrop_error")
        logger.warning("upload rejected", extra={**outcome, "code": code, "detail": str(e)})
        record = {
            "status": "failed",
            "source": source.to_dict(),
            "error": {"code": code, "type": type(e).__name__, "message": str(e)},
        }
        _put_json(s3, settings.output_bucket, f"{base}/{ERROR_RECORD}", record)
        return {
            **outcome,
            "status": "failed",
            "code": code,
            "error_record": f"{base}/{ERROR_RECORD}",
        }

    if previous_error is not None:  # a fixed re-upload supersedes the old error
        s3.delete_object(Bucket=settings.output_bucket, Key=f"{base}/{ERROR_RECORD}")
    took = round(time.perf_counter() - started, 3)
    logger.info("cropped upload", extra={**outcome, "outputs": written, "seconds": took})
    return {**outcome, "status": "cropped", "outputs": written, "sidecar": f"{base}/{SIDECAR}"}


def _check_size(size: int, settings: Settings) -> None:
    if size == 0:
        raise UnsupportedImageError("the object is empty")
    if size > settings.max_object_bytes:
        raise ImageTooLargeError(
            f"the object is {size} bytes; the limit is {settings.max_object_bytes} bytes"
        )


def _get_object(
    s3: S3Client, obj: SourceObject, settings: Settings
) -> tuple[SourceObject, bytes] | None:
    """The upload's bytes and exact identity, or None when it was deleted or replaced."""
    kwargs: dict[str, Any] = {"Bucket": obj.bucket, "Key": obj.key}
    if obj.version_id:
        kwargs["VersionId"] = obj.version_id
    elif obj.etag:  # an overwrite since the event: its own event will come; skip this one
        kwargs["IfMatch"] = f'"{obj.etag}"'
    try:
        response = s3.get_object(**kwargs)
    except ClientError as e:
        if e.response["Error"]["Code"] in ("NoSuchKey", "NoSuchVersion", "PreconditionFailed"):
            logger.info("upload gone before it was read", extra={"key": obj.key, "error": str(e)})
            return None
        raise
    body = response["Body"]
    source = SourceObject(
        bucket=obj.bucket,
        key=obj.key,
        size=int(response["ContentLength"]),
        etag=_bare_etag(response.get("ETag")),
        version_id=response.get("VersionId") or obj.version_id,
    )
    content_type = (response.get("ContentType") or "").split(";")[0].strip().lower()
    try:
        _check_size(source.size or 0, settings)
        if not (content_type.startswith("image/") or content_type in GENERIC_TYPES):
            raise UnsupportedImageError(f"Content-Type {content_type!r} is not an image")
    except AutocropError:
        body.close()
        raise
    return source, body.read()


def _done_before(
    source: SourceObject, sidecar: dict[str, Any] | None, error: dict[str, Any] | None
) -> bool:
    """Whether the sidecar or error record already describes this exact upload."""
    if not source.etag:
        return False
    for record in (sidecar, error):
        recorded = (record or {}).get("source") or {}
        same_object = (recorded.get("bucket"), recorded.get("etag")) == (source.bucket, source.etag)
        if same_object and (
            not source.version_id or recorded.get("version_id") == source.version_id
        ):
            return True
    return False


def _write_crops(
    s3: S3Client,
    settings: Settings,
    base: str,
    source: SourceObject,
    data: bytes,
    result: CropResult,
) -> dict[str, str]:
    """Each crop as a JPEG with source metadata, then the sidecar that marks completion.

    Every crop comes from one decode of the photo (`render_crops`)."""
    summary = result.to_dict()
    models = json.dumps(summary["models"], separators=(",", ":"), sort_keys=True)  # ASCII
    sizes = settings.parsed_sizes  # parsed once per photo (crop_options checked it at start)
    requests = [
        RenderRequest(c.box, sizes.get(c.ratio), "jpeg", settings.jpeg_quality, settings.no_upscale)
        for c in result.crops
    ]
    rendered = render_crops(data, requests)
    written = {}
    for crop, entry, out in zip(result.crops, summary["crops"], rendered, strict=True):
        key = f"{base}/{ratio_slug(crop.ratio)}.jpg"
        box = crop.box
        entry.update(out.describe())
        s3.put_object(
            Bucket=settings.output_bucket,
            Key=key,
            Body=out.data,
            ContentType="image/jpeg",
            # S3 metadata travels as HTTP headers: ASCII only, so the key is percent-encoded.
            Metadata={
                "source-bucket": source.bucket,
                "source-key": quote(source.key, safe="/"),
                "source-etag": source.etag,
                "source-version": source.version_id or "null",
                "ratio": crop.ratio,
                "box": f"{box.x},{box.y},{box.w},{box.h}",
                "size": f"{out.width}x{out.height}",
                "upscaled": "true" if out.upscaled else "false",
                "models": models,
            },
        )
        written[crop.ratio] = key
    sidecar = {"status": "cropped", "source": source.to_dict(), "outputs": written, **summary}
    _put_json(s3, settings.output_bucket, f"{base}/{SIDECAR}", sidecar)
    return written


def _read_json(s3: S3Client, bucket: str, key: str) -> dict[str, Any] | None:
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as e:
        if e.response["Error"]["Code"] in ("NoSuchKey", "404"):
            return None
        raise
    try:
        loaded = json.loads(body)
    except ValueError:
        return None  # a damaged record is rewritten
    return loaded if isinstance(loaded, dict) else None


def _put_json(s3: S3Client, bucket: str, key: str, document: dict[str, Any]) -> None:
    s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=json.dumps(document, indent=2, ensure_ascii=False).encode(),
        ContentType="application/json",
    )


# ---------------------------------------------------------------------------------------------
# Lambda entry point


def crop_options(settings: Settings) -> CropOptions:
    """Engine options from the settings; a bad AUTOCROP_RATIOS or AUTOCROP_SIZES is a deploy
    error, so it raises (before any object is touched)."""
    options = CropOptions.from_ratios(settings.ratios)
    unknown = sorted(set(settings.parsed_sizes) - set(options.ratios))
    if unknown:
        raise InvalidOptionsError(f"AUTOCROP_SIZES names ratios not in AUTOCROP_RATIOS: {unknown}")
    return options


def process_event(
    event: dict[str, Any], settings: Settings | None = None, s3: S3Client | None = None
) -> list[dict[str, Any]]:
    """Process every object an S3 or EventBridge event names."""
    settings = settings or get_settings()
    if not settings.output_bucket:
        raise RuntimeError("AUTOCROP_OUTPUT_BUCKET is not set")
    options = crop_options(settings)
    s3 = s3 or s3_client()
    return [process_object(obj, settings, options, s3) for obj in objects_in(event)]


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Lambda entry point for direct S3 notifications, SQS batches and EventBridge events."""
    if _is_sqs_batch(event):
        processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
        return dict(
            process_partial_response(
                event=event, record_handler=_sqs_record, processor=processor, context=context
            )
        )
    return {"results": process_event(event)}


def _is_sqs_batch(event: Any) -> bool:
    records = event.get("Records") if isinstance(event, dict) else None
    return (
        isinstance(records, list)
        and bool(records)
        and isinstance(records[0], dict)
        and records[0].get("eventSource") == "aws:sqs"
    )


def _sqs_record(record: SQSRecord) -> list[dict[str, Any]]:
    # The message body is the S3 notification (or an EventBridge event) as JSON; raising
    # here marks only this message as failed, so SQS redelivers just it.
    try:
        event = json.loads(record.body)
    except (TypeError, ValueError) as e:
        raise InvalidEventError(f"the SQS message body is not JSON ({e})") from e
    return process_event(event)
