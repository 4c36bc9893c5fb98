"""Where an upload's outputs go in the output bucket, and the records that make redelivery safe.

For an upload `<key>`, under the configured prefix:

    <prefix>/<key>/<ratio with ':' -> 'x'>.jpg   one crop per ratio, with source metadata
    <prefix>/<key>/master.jpg                    the master crop URLs render from (`autocrop.master`)
    <prefix>/<key>/crops.json                    the job's manifest (written last: done)
    <prefix>/<key>/error.json                    instead, when the upload is not a usable image

Keys are deterministic, and an upload whose ETag/version the sidecar (or error record)
already names is skipped, so a redelivered event does nothing twice. The master is the one
of the source ETag crops.json records (and its own `source-etag` metadata says so).
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from autocrop.errors import AutocropError, ImageTooLargeError, UnsupportedImageError
from autocrop.job import JobResult, crop_file_name
import boto3
from aws_lambda_powertools import Logger
from botocore.config import Config
from botocore.exceptions import ClientError

from functions.s3_events import SourceObject, bare_etag
from functions.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
else:
    S3Client = Any

logger = Logger(service="autocrop", child=True)

SIDECAR = "crops.json"
ERROR_RECORD = "error.json"
MASTER = "master.jpg"
#: Declared types that are certainly not photos; anything else is left to the decoder.
GENERIC_TYPES = ("", "application/octet-stream", "binary/octet-stream")


@lru_cache(maxsize=1)
def s3_client() -> S3Client:
    """The process-wide S3 client of either function (AWS_ENDPOINT_URL points it at a local stack)."""
    return boto3.client("s3", config=Config(retries={"mode": "standard", "max_attempts": 3}))


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


def is_own_output(obj: SourceObject, settings: Settings) -> bool:
    """True for objects this function wrote (the recursion guard)."""
    if obj.bucket != settings.output_bucket:
        return False
    prefix = settings.normalised_prefix
    return not prefix or obj.key == prefix or obj.key.startswith(prefix + "/")


class Outputs:
    """One upload's place in the output bucket: its records, crops and error record."""

    def __init__(self, s3: S3Client, settings: Settings, obj: SourceObject):
        self.s3, self.bucket = s3, settings.output_bucket
        self.base = output_base(obj.key, settings.normalised_prefix)
        self.sidecar_key, self.error_key = f"{self.base}/{SIDECAR}", f"{self.base}/{ERROR_RECORD}"
        self.master_key = f"{self.base}/{MASTER}"
        self.previous = read_json(s3, self.bucket, self.sidecar_key)
        self.previous_error = read_json(s3, self.bucket, self.error_key)

    def done_before(self, source: SourceObject) -> bool:
        """Whether the sidecar or error record already describes this exact upload."""
        if not source.etag:
            return False
        for record in (self.previous, self.previous_error):
            recorded = (record or {}).get("source") or {}
            same_object = (recorded.get("bucket"), recorded.get("etag")) == (source.bucket, source.etag)
            if same_object and (not source.version_id or recorded.get("version_id") == source.version_id):
                return True
        return False

    def write_crops(self, source: SourceObject, done: JobResult) -> dict[str, str]:
        """Each crop as a JPEG with source metadata, the master (if the job rendered one),
        then the sidecar that marks completion (and a fixed re-upload's old error record goes)."""
        manifest = done.manifest()
        models = json.dumps(manifest["models"], separators=(",", ":"), sort_keys=True)  # ASCII
        written = {}
        for crop, out in done.rendered():
            key = f"{self.base}/{crop_file_name(crop.ratio, 'jpeg')}"
            box = crop.box
            self.s3.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=out.data,
                ContentType=out.media_type,
                Metadata={
                    **source_metadata(source),
                    "ratio": crop.ratio,
                    "box": f"{box.x},{box.y},{box.w},{box.h}",
                    "size": f"{out.width}x{out.height}",
                    "upscaled": "true" if out.upscaled else "false",
                    "models": models,
                },
            )
            written[crop.ratio] = key
        sidecar = {"status": "cropped", "source": source.to_dict(), "outputs": written, **manifest,
                   "master": self._write_master(source, done)}  # fmt: skip
        put_json(self.s3, self.bucket, self.sidecar_key, sidecar)
        if self.previous_error is not None:
            self.s3.delete_object(Bucket=self.bucket, Key=self.error_key)
        return written

    def _write_master(self, source: SourceObject, done: JobResult) -> dict[str, Any] | None:
        """The master as a JPEG with source metadata; its crops.json record (None: no master,
        crop URLs render from the original, and an older upload's master goes)."""
        master, out = done.master_record(), done.master
        if master is None or out is None:
            if (self.previous or {}).get("master"):
                self.s3.delete_object(Bucket=self.bucket, Key=self.master_key)
            return None
        self.s3.put_object(
            Bucket=self.bucket,
            Key=self.master_key,
            Body=out.data,
            ContentType=out.media_type,
            Metadata={**source_metadata(source), "size": f"{out.width}x{out.height}"},
        )
        return {"key": self.master_key, **master.to_dict()}

    def write_error(self, source: SourceObject, error: AutocropError) -> None:
        """The error record of an upload that is not a usable image."""
        detail = {"code": error.code, "type": type(error).__name__, "message": str(error)}
        put_json(self.s3, self.bucket, self.error_key, {"status": "failed", "source": source.to_dict(), "error": detail})


def source_metadata(source: SourceObject) -> dict[str, str]:
    """The S3 metadata naming the upload an output was made from (the crops, the master)."""
    # S3 metadata travels as HTTP headers: ASCII only, so the key is percent-encoded.
    return {
        "source-bucket": source.bucket,
        "source-key": quote(source.key, safe="/"),
        "source-etag": source.etag,
        "source-version": source.version_id or "null",
    }


def check_size(size: int, settings: Settings) -> None:
    """An empty or too large object is refused before it is read."""
    if size == 0:
        raise UnsupportedImageError("the object is empty")
    if size > settings.max_object_bytes:
        raise ImageTooLargeError(f"the object is {size} bytes; the limit is {settings.max_object_bytes} bytes")


def get_upload(s3: S3Client, obj: SourceObject) -> tuple[SourceObject, Any, str] | None:
    """The upload's exact identity, its body (a stream, not yet read) and its declared
    content type, or None when it was deleted or replaced."""
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
        etag=bare_etag(response.get("ETag")),
        version_id=response.get("VersionId") or obj.version_id,
    )
    content_type = (response.get("ContentType") or "").split(";")[0].strip().lower()
    return source, body, content_type


def check_upload(source: SourceObject, content_type: str, settings: Settings) -> None:
    """An upload too large, empty or declared as something other than a photo is refused."""
    check_size(source.size or 0, settings)
    if not (content_type.startswith("image/") or content_type in GENERIC_TYPES):
        raise UnsupportedImageError(f"Content-Type {content_type!r} is not an image")


def is_missing(error: ClientError) -> bool:
    """Whether S3 answered that the object is not there (NoSuchKey; a HEAD's bare 404)."""
    return error.response["Error"]["Code"] in ("NoSuchKey", "404")


def read_json(s3: S3Client, bucket: str, key: str) -> dict[str, Any] | None:
    """A JSON record, or None when it is missing or damaged (then it is rewritten)."""
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as e:
        if is_missing(e):
            return None
        raise
    try:
        loaded = json.loads(body)
    except ValueError:
        return None
    return loaded if isinstance(loaded, dict) else None


def put_json(s3: S3Client, bucket: str, key: str, document: dict[str, Any]) -> None:
    s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=json.dumps(document, indent=2, ensure_ascii=False).encode(),
        ContentType="application/json",
    )
