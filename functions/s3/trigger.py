"""S3 upload trigger: each new photo in the input bucket -> its crops in the output bucket.

Accepts S3 ObjectCreated notifications as Lambda receives them directly, wrapped in SQS
messages (partial batch failures reported per message) or as EventBridge "Object Created"
events (`functions.s3.events`). Each upload runs the engine's one job (`autocrop.job`) and
its crops, manifest (crops.json) or error record go where `functions.s3.outputs` says.

A bad upload gets an error record and returns normally (no retry storm); an AWS failure is
raised so Lambda retries and, in the end, the failure destination receives the event.
Redelivery is harmless: an upload the records already describe is skipped. A photo replaced
while its job runs never gets the older photo's outputs: every write is conditional, and a job
that finds the photo replaced after it wrote crops the photo there now (`functions.s3.outputs`).
"""

from __future__ import annotations

import time
from contextlib import closing
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes import SQSRecord

from autocrop import CropOptions
from autocrop.errors import AutocropError, InvalidOptionsError
from autocrop.job import JobResult, OutputSpec, run_job
from autocrop.master import MASTER_SIDE
from autocrop.overrides import crop_version
from functions.s3.batch import answer as batch_answer
from functions.s3.batch import is_batch_operations
from functions.s3.events import InvalidEventError, SourceObject, is_sqs_batch, objects_in, sqs_event
from functions.s3.outputs import (
    ERROR_RECORD,
    SIDECAR,
    Outputs,
    RaceError,
    Superseded,
    check_size,
    check_upload,
    get_upload,
    is_own_output,
    output_base,
    s3_client,
)
from functions.settings import Settings, get_settings

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext
    from mypy_boto3_s3 import S3Client
else:
    LambdaContext = S3Client = Any

logger = Logger(service="autocrop")
#: Jobs one event may run when its photo keeps being replaced after the job wrote.
REDO_ROUNDS = 3


def output_spec(settings: Settings) -> OutputSpec:
    """How the crops are written: JPEG at the configured quality and per-ratio sizes, with the
    master crop URLs render from (unless AUTOCROP_URL_MASTER=false)."""
    return OutputSpec(sizes=settings.parsed_sizes, fmt="jpeg", quality=settings.jpeg_quality,
                      no_upscale=settings.no_upscale,
                      master_side=MASTER_SIDE if settings.url_master else None)  # fmt: skip


def crop_options(settings: Settings) -> CropOptions:
    """Engine options from the settings; a bad AUTOCROP_RATIOS or AUTOCROP_SIZES is a deploy
    error, so it raises (before any object is touched)."""
    options = CropOptions.from_ratios(settings.ratios)
    try:
        output_spec(settings).check(options)
    except InvalidOptionsError as e:
        raise InvalidOptionsError(f"AUTOCROP_SIZES does not fit AUTOCROP_RATIOS: {e}") from e
    return options


def crops_version(source: SourceObject, applied: dict[str, Any], done: JobResult, settings: Settings) -> str:
    """The version of the crops a job writes (`autocrop.overrides.crop_version`): of this upload
    (ETag, version id), the overrides applied, the models and the output settings."""
    return crop_version({
        "source": {"bucket": source.bucket, "key": source.key, "etag": source.etag, "version_id": source.version_id},
        "overrides": applied,
        "models": dict(done.result.models),
        "output": {"ratios": settings.ratios, "sizes": settings.sizes, "quality": settings.jpeg_quality,
                   "no_upscale": settings.no_upscale, "master": settings.url_master},
    })  # fmt: skip


def process_object(obj: SourceObject, settings: Settings, options: CropOptions, s3: S3Client) -> dict[str, Any]:
    """Crop one upload into the output bucket; returns what was done (for logs and tests)."""
    outcome = {"bucket": obj.bucket, "key": obj.key}
    if is_own_output(obj, settings):
        return {**outcome, "status": "skipped", "reason": "own output"}
    if obj.key.endswith("/") and obj.size == 0:  # a console folder; a photo under such a key is cropped
        return {**outcome, "status": "skipped", "reason": "folder marker"}
    redo = False
    for _ in range(REDO_ROUNDS):
        try:
            return {**outcome, **_process(obj, settings, options, s3, redo)}
        except Superseded as e:
            if not e.wrote:  # the newer photo's own event crops it
                logger.info("upload replaced during its job", extra=outcome)
                return {**outcome, "status": "skipped", "reason": "object gone or replaced", "gone": e.gone}
            # Its writes may sit under outputs a newer job skipped: crop the photo there now.
            logger.info("upload replaced after its job wrote: cropping the photo there now", extra=outcome)
            obj, redo = SourceObject(bucket=obj.bucket, key=obj.key), True
    raise RaceError(f"{obj.key!r} kept changing during {REDO_ROUNDS} jobs")


def _process(obj: SourceObject, settings: Settings, options: CropOptions, s3: S3Client, redo: bool) -> dict[str, Any]:
    """One job on the upload (`redo`: even where the records say it is done)."""
    outputs = Outputs(s3, settings, obj, options.ratios)
    if not redo and outputs.done_before(obj, None, any_overrides=True):
        outputs.finish(obj)  # (Superseded, so the photo there now is cropped, where the records are another's)
        if outputs.done_before(obj, outputs.applied(None)):  # else its metadata decides, after the GET
            return {"status": "skipped", "reason": "already processed"}
    source = obj
    try:
        if obj.size is not None:
            check_size(obj.size, settings)
        source, body, content_type, metadata = get_upload(s3, obj)
        applied = outputs.applied(metadata)
        assert applied is not None  # (with the metadata known, the overrides are)
        with closing(body):
            # An event without an ETag (a Batch Operations task, a regeneration) learns it from
            # the GET: an upload already cropped with these overrides, or already refused, is
            # skipped before its bytes are read.
            if not redo and outputs.done_before(source, applied):
                outputs.finish(source)
                return {"status": "skipped", "reason": "already processed"}
            if source.key.endswith("/") and source.size == 0:
                return {"status": "skipped", "reason": "folder marker"}
            outputs.check_writable()
            check_upload(source, content_type, settings)
            data = body.read()
        started = time.perf_counter()
        overrides, _, _ = outputs.overrides_for(metadata)
        done = run_job(data, overrides.apply(options), output_spec(settings))
        written = outputs.write_crops(source, done, applied, crops_version(source, applied, done, settings))
    except AutocropError as e:
        logger.warning("upload rejected", extra={"key": obj.key, "code": e.code, "detail": str(e)})
        outputs.write_error(source, e)
        return {"status": "failed", "code": e.code, "detail": str(e), "error_record": outputs.error_key}

    took = round(time.perf_counter() - started, 3)
    logger.info("cropped upload", extra={"key": obj.key, "outputs": written, "seconds": took})
    return {"status": "cropped", "outputs": written, "sidecar": outputs.sidecar_key}


def process_event(
    event: dict[str, Any], settings: Settings | None = None, s3: S3Client | None = None
) -> list[dict[str, Any]]:
    """Process every object an S3 or EventBridge event names."""
    settings, options, s3 = _ready(settings, s3)
    return [process_object(obj, settings, options, s3) for obj in objects_in(event)]


def _ready(settings: Settings | None, s3: S3Client | None) -> tuple[Settings, CropOptions, S3Client]:
    """Settings, options and client for one invocation; a deploy error raises before any work."""
    settings = settings or get_settings()
    if not settings.output_bucket:
        raise RuntimeError("AUTOCROP_OUTPUT_BUCKET is not set")
    return settings, crop_options(settings), s3 or s3_client()


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Lambda entry point: direct S3 notifications, SQS batches, EventBridge events and S3 Batch
    Operations tasks (the backfill of photos uploaded before the function existed)."""
    if is_batch_operations(event):
        settings, options, s3 = _ready(None, None)
        return batch_answer(event, lambda obj: process_object(obj, settings, options, s3))
    if is_sqs_batch(event):
        processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
        return dict(
            process_partial_response(event=event, record_handler=_sqs_record, processor=processor, context=context)
        )
    return {"results": process_event(event)}


def _sqs_record(record: SQSRecord) -> list[dict[str, Any]]:
    # Raising here marks only this message as failed, so SQS redelivers just it.
    return process_event(sqs_event(record))


__all__ = [
    "ERROR_RECORD",
    "SIDECAR",
    "InvalidEventError",
    "SourceObject",
    "crop_options",
    "handler",
    "is_own_output",
    "objects_in",
    "output_base",
    "process_event",
    "process_object",
]
