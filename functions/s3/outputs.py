"""Where an upload's outputs go in the output bucket, and how a job writes them so that they
are never older than the photo and nothing is lost.

For an upload `<key>`, under the configured prefix:

    <prefix>/<key>/<ratio with ':' -> 'x'>.jpg   one crop per ratio, with source metadata
    <prefix>/<key>/master.jpg                    the master crop URLs render from (`autocrop.master`)
    <prefix>/<key>/crops.json                    the job's manifest (written last: done), with
                                                 the overrides used and the crops' version
    <prefix>/<key>/overrides.json                the photo's overrides, set through the API or
                                                 CLI (never written or removed by a job)
    <prefix>/<key>/error.json                    instead, when the upload is not a usable image
    <prefix>/_errors/<sha256 of key>.json        instead, when the key's outputs would pass S3's
                                                 key limit (the record holds the full key)

Keys are deterministic, and an upload whose ETag/version the sidecar (or error record) already
names is skipped, so a redelivered event does nothing twice. S3's limits are met before any
work: a key whose outputs would be longer than 1,024 bytes gets the hashed error record, and a
key whose percent-encoded `source-key` metadata would crowd S3's 2 KB of user metadata is named
by `source-key-sha256` instead (crops.json holds the full key).

A photo replaced while its job runs: the newest photo's outputs win, by two rules.

1. Every write is conditional on what the job saw at that key: If-Match the ETag it last saw
   (crops.json records the ETags of the crops and master it commits, so the next job knows them
   without a HEAD), If-None-Match: * where it saw nothing. A write that finds something else
   there (412, 409, or 404 under If-Match) HEADs that key, then HEADs the photo: while the photo
   is still the job's, what it found came from an older photo's job or from a duplicate of this
   one, and is overwritten; once the photo is another, the job is superseded and stops. The key
   is read before the photo, so a newer photo's output is never taken for an older one (it was
   written after the newer upload, so the photo check that follows sees that upload). Hence once
   the newest photo's job has written a key, no older job's write lands there; as that job
   writes every output and crops.json last, the set it leaves is complete and its own.
2. A job checks the photo (HEAD) before its first write, so a photo replaced during the crop
   writes nothing, and after its last. A job superseded after it wrote processes the photo now
   there itself: its writes may have landed after a newer job that skipped the work because
   crops.json already named its ETag (the photo put back to bytes crops.json described), and
   then nothing else would repair them.

Error records follow the same rules: written If-Match / If-None-Match, after the photo check;
a cropped upload removes an error record only If-Match the ETag it saw (an older upload's), so
a newer upload's record stays. Jobs for the same ETag write the same bytes, so concurrent
duplicates may interleave freely: the losing write overwrites with identical content.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import boto3
from aws_lambda_powertools import Logger
from botocore.config import Config
from botocore.exceptions import ClientError

from autocrop.errors import AutocropError, ImageTooLargeError, InvalidOptionsError, UnsupportedImageError
from autocrop.job import JobResult, crop_file_name
from autocrop.overrides import Overrides
from functions.s3.events import SourceObject, bare_etag
from functions.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
else:
    S3Client = Any

logger = Logger(service="autocrop", child=True)

SIDECAR = "crops.json"
ERROR_RECORD = "error.json"
MASTER = "master.jpg"
#: A photo's stored overrides (`autocrop.overrides`): they win over its upload metadata and
#: outlive a replaced photo.
OVERRIDES = "overrides.json"
#: Error records of keys too long for their own outputs: `<prefix>/_errors/<sha256 of key>.json`.
ERRORS = "_errors"
#: S3's limits (bytes, UTF-8): an object key, and the user metadata of one object.
KEY_LIMIT = 1024
METADATA_LIMIT = 2048
#: The share of METADATA_LIMIT the source's identity may take; the rest is the crop's own
#: (ratio, box, size, upscaled, models: about 200 bytes).
SOURCE_METADATA_BUDGET = METADATA_LIMIT - 512
#: Conditional writes one output gets while other jobs keep changing it under the same photo.
RACE_ATTEMPTS = 5
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
    safe = "/".join(parts) or "%2E"  # no segment left: a name no escaped key can have
    return f"{prefix}/{safe}" if prefix else safe


def is_own_output(obj: SourceObject, settings: Settings) -> bool:
    """True for objects this function wrote (the recursion guard)."""
    if obj.bucket != settings.output_bucket:
        return False
    prefix = settings.normalised_prefix
    return not prefix or obj.key == prefix or obj.key.startswith(prefix + "/")


class KeyTooLongError(AutocropError):
    """The upload's key is valid, but its outputs' keys would pass S3's key limit."""

    code = "key_too_long"


class Superseded(Exception):
    """The photo was replaced (or deleted: `gone`) while its job ran: the newer photo's job owns
    the outputs. `wrote`: this job had already written some of them."""

    def __init__(self, source: SourceObject, wrote: bool, gone: bool = False):
        super().__init__(f"{source.key!r} is no longer the upload with ETag {source.etag}")
        self.wrote, self.gone = wrote, gone


class Outputs:
    """One upload's place in the output bucket: its records, crops and error record, each
    written only over what this job saw there (the module docstring says why)."""

    def __init__(self, s3: S3Client, settings: Settings, obj: SourceObject, ratios: Iterable[str]):
        self.s3, self.bucket = s3, settings.output_bucket
        self.base = output_base(obj.key, settings.normalised_prefix)
        self.sidecar_key, self.error_key = f"{self.base}/{SIDECAR}", f"{self.base}/{ERROR_RECORD}"
        self.master_key = f"{self.base}/{MASTER}"
        self.overrides_key = f"{self.base}/{OVERRIDES}"
        names = [SIDECAR, ERROR_RECORD, MASTER, *(crop_file_name(r, "jpeg") for r in ratios)]
        #: The crops and master this key's outputs may hold (what an error record replaces).
        self.output_keys = [f"{self.base}/{name}" for name in names[2:]]
        longest = max(len(f"{self.base}/{name}".encode()) for name in [*names, OVERRIDES])
        #: Why this upload's outputs cannot be written (None: they can).
        self.too_long = (f"the key's outputs would have keys of up to {longest} bytes; S3 allows "
                         f"{KEY_LIMIT}") if longest > KEY_LIMIT else None  # fmt: skip
        #: The ETag this job last saw at each output key (None: nothing there).
        self.seen: dict[str, str | None] = {}
        #: Whether this job has written or deleted anything yet.
        self.wrote = False
        self.previous: dict[str, Any] | None = None
        #: The stored overrides as read (None: none; or why they cannot be used), and their ETag.
        self.stored: Overrides | None = None
        self.stored_problem: str | None = None
        self.stored_etag: str | None = None
        if self.too_long:
            self.error_key = hashed_error_key(obj.key, settings.normalised_prefix)
        else:
            self.previous = self._read(self.sidecar_key)
            self._read_overrides()
            recorded = (self.previous or {}).get("etags")
            for key, etag in (recorded if isinstance(recorded, dict) else {}).items():
                self.seen.setdefault(str(key), str(etag))
        self.previous_error = self._read(self.error_key)

    def done_before(self, source: SourceObject, applied: dict[str, Any] | None, any_overrides: bool = False) -> bool:
        """Whether the error record, or the sidecar made with the overrides `applied` (None: not
        known yet, as before the upload's metadata is read; `any_overrides`: whatever they
        were), already describes this exact upload."""
        if not source.etag:
            return False
        for record in (self.previous, self.previous_error):
            recorded = (record or {}).get("source") or {}
            same_object = (recorded.get("bucket"), recorded.get("etag")) == (source.bucket, source.etag)
            same_overrides = (
                any_overrides
                or record is self.previous_error
                or (applied is not None and (record or {}).get("overrides") == applied)
            )
            if (
                same_object
                and same_overrides
                and (not source.version_id or recorded.get("version_id") == source.version_id)
            ):
                return True
        return False

    def applied(self, metadata: dict[str, str] | None) -> dict[str, Any] | None:
        """The record of the overrides a job uses (crops.json's "overrides"): the stored ones,
        else the upload's metadata (`metadata`; None: not read yet, then None unless stored
        ones decide), else none; with warnings about any it had to set aside."""
        overrides, origin, warnings = self.overrides_for(metadata)
        if origin is None:
            return None
        return {"from": origin, **overrides.to_json(), **({"warnings": warnings} if warnings else {})}

    def overrides_for(self, metadata: dict[str, str] | None) -> tuple[Overrides, str | None, list[str]]:
        """`overrides_in_force` for this photo's stored overrides and `metadata`."""
        return overrides_in_force(self.stored, self.stored_problem, metadata)

    def check_writable(self) -> None:
        """Raise `KeyTooLongError` when the outputs cannot be written under this key."""
        if self.too_long:
            raise KeyTooLongError(self.too_long)

    def check_current(self, source: SourceObject) -> None:
        """Raise `Superseded` unless the photo in the input bucket is still `source`."""
        if not source.etag:  # refused before the GET learned which upload it is
            return
        current_photo(self.s3, source, self.wrote)
        if not self.too_long and self._etag_at(self.overrides_key) != self.stored_etag:
            raise Superseded(source, self.wrote)  # new overrides: their own job crops with them

    def write_crops(
        self, source: SourceObject, done: JobResult, applied: dict[str, Any], version: str
    ) -> dict[str, str]:
        """Each crop as a JPEG with source metadata, the master (if the job rendered one),
        then the sidecar that marks completion, naming the overrides `applied` and the crops'
        `version` (and a fixed re-upload's old error record goes)."""
        manifest = done.manifest()
        models = json.dumps(manifest["models"], separators=(",", ":"), sort_keys=True)  # ASCII
        self.check_current(source)
        written = {}
        for crop, out in done.rendered():
            key = f"{self.base}/{crop_file_name(crop.ratio, 'jpeg')}"
            box = crop.box
            self._put(key, out.data, out.media_type, source, {
                "ratio": crop.ratio,
                "box": f"{box.x},{box.y},{box.w},{box.h}",
                "size": f"{out.width}x{out.height}",
                "upscaled": "true" if out.upscaled else "false",
                "models": models,
            })  # fmt: skip
            written[crop.ratio] = key
        master = self._write_master(source, done)
        etags = {key: self.seen[key] for key in [*written.values(), *([master["key"]] if master else [])]}
        sidecar = {"status": "cropped", "source": source.to_dict(), "version": version, "overrides": applied,
                   "outputs": written, **manifest, "master": master, "etags": etags}  # fmt: skip
        self._put_json(self.sidecar_key, sidecar, source)
        if self.previous_error is not None:
            self._delete(self.error_key, source)
        self.check_current(source)
        return written

    def _write_master(self, source: SourceObject, done: JobResult) -> dict[str, Any] | None:
        """The master as a JPEG with source metadata; its crops.json record (None: no master,
        crop URLs render from the original, and an older upload's master goes)."""
        master, out = done.master_record(), done.master
        if master is None or out is None:
            if (self.previous or {}).get("master"):
                self._delete(self.master_key, source)
            return None
        self._put(self.master_key, out.data, out.media_type, source, {"size": f"{out.width}x{out.height}"})
        return {"key": self.master_key, **master.to_dict()}

    def write_error(self, source: SourceObject, error: AutocropError) -> None:
        """The error record of an upload that is not a usable image (or whose key is too long);
        an older photo's crops.json, crops and master go (they describe a photo no longer there)."""
        detail = {"code": error.code, "type": type(error).__name__, "message": str(error)}
        self.check_current(source)
        self._put_json(self.error_key, {"status": "failed", "source": source.to_dict(), "error": detail}, source)
        if not self.too_long:
            for key in (self.sidecar_key, *self.output_keys):
                self._delete(key, source)
        self.check_current(source)

    def finish(self, source: SourceObject) -> None:
        """For a redelivery of an upload the records already describe: finish what a job that
        failed after its writes left undone. Its last step checks the photo is still `source`
        (Superseded with `wrote`, so the photo there now is cropped: the records may be an older
        photo's, put there by a job that never reached that check), and a cropped upload's
        older error record goes."""
        cropped = ((self.previous or {}).get("source") or {}).get("etag") == source.etag
        if cropped and self.previous_error is not None:
            self._delete(self.error_key, source)
        if source.etag:
            current_photo(self.s3, source, True)

    def _read_overrides(self) -> None:
        """Read overrides.json, noting its ETag (what `check_current` compares)."""
        self.stored, self.stored_etag, self.stored_problem = read_overrides(self.s3, self.bucket, self.overrides_key)

    def _put_json(self, key: str, document: dict[str, Any], source: SourceObject) -> None:
        body = json.dumps(document, indent=2, ensure_ascii=False).encode()
        self._put(key, body, "application/json", source, None)

    def _put(self, key: str, body: bytes, content_type: str, source: SourceObject,
             metadata: dict[str, str] | None) -> None:  # fmt: skip
        """Write `key` over exactly what this job last saw there (`_settle` on a conflict)."""
        extra = {"Metadata": {**source_metadata(source), **metadata}} if metadata is not None else {}
        for _ in range(RACE_ATTEMPTS):
            seen = self.seen.get(key)
            condition = {"IfMatch": f'"{seen}"'} if seen else {"IfNoneMatch": "*"}
            try:
                put = self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type,
                                         **extra, **condition)  # fmt: skip
            except ClientError as e:
                if not lost_race(e, bool(seen)):
                    raise
                self._settle(key, source)
                continue
            self.seen[key], self.wrote = bare_etag(put.get("ETag")), True
            return
        raise RaceError(f"{key}: still changing after {RACE_ATTEMPTS} conditional writes")

    def _delete(self, key: str, source: SourceObject) -> None:
        """Delete `key` if it is still what this job saw there (an older upload's output)."""
        for _ in range(RACE_ATTEMPTS):
            seen = self.seen[key] if key in self.seen else self._etag_at(key)
            if seen is None:
                return
            try:
                self.s3.delete_object(Bucket=self.bucket, Key=key, IfMatch=f'"{seen}"')
            except ClientError as e:
                if is_missing(e):
                    self.seen[key] = None
                    return
                if not lost_race(e, True):
                    raise
                self._settle(key, source)
                continue
            self.seen[key], self.wrote = None, True
            return
        raise RaceError(f"{key}: still changing after {RACE_ATTEMPTS} conditional deletes")

    def _settle(self, key: str, source: SourceObject) -> None:
        """After a conditional request failed: learn what is at `key` now, then go on only while
        the photo is still this job's (in this order: see the module docstring)."""
        self.seen[key] = self._etag_at(key)
        self.check_current(source)

    def _etag_at(self, key: str) -> str | None:
        try:
            return str(bare_etag(self.s3.head_object(Bucket=self.bucket, Key=key).get("ETag")))
        except ClientError as e:
            if is_missing(e):
                return None
            raise

    def _read(self, key: str) -> dict[str, Any] | None:
        """A record (None: missing or damaged), noting the ETag of what was read."""
        try:
            got = self.s3.get_object(Bucket=self.bucket, Key=key)
        except ClientError as e:
            if is_missing(e):
                self.seen[key] = None
                return None
            raise
        self.seen[key] = str(bare_etag(got.get("ETag")))
        return parse_record(got["Body"].read())


def read_overrides(s3: S3Client, bucket: str, key: str) -> tuple[Overrides | None, str | None, str | None]:
    """A photo's stored overrides at `key`: (the overrides, None where there are none or they
    cannot be used; their ETag; why they cannot be used: damaged, or written by hand wrongly)."""
    try:
        got = s3.get_object(Bucket=bucket, Key=key)
    except ClientError as e:
        if is_missing(e):
            return None, None, None
        raise
    etag = str(bare_etag(got.get("ETag")))
    try:
        return Overrides.from_text(got["Body"].read()), etag, None
    except InvalidOptionsError as e:
        return None, etag, f"{OVERRIDES} is set aside: {e}"


def overrides_in_force(stored: Overrides | None, problem: str | None,
                       metadata: dict[str, str] | None) -> tuple[Overrides, str | None, list[str]]:  # fmt: skip
    """The overrides a photo is cropped with: its stored ones, else its upload metadata's
    (`metadata`; None: not read yet), else none. Returns (overrides, where they come from:
    "stored", "upload" or "none", or None where that needs the metadata; warnings about
    overrides set aside as unusable)."""
    warnings = [problem] if problem else []
    if stored is not None:
        return stored, "stored", warnings
    if metadata is None:
        return Overrides(), None, warnings
    try:
        upload = Overrides.from_metadata(metadata)
    except InvalidOptionsError as e:
        return Overrides(), "none", [*warnings, f"the upload's metadata overrides are set aside: {e}"]
    return upload, "none" if upload.is_empty else "upload", warnings


class RaceError(RuntimeError):
    """Conditional writes kept failing while the photo stayed the same: raised, so the event is retried."""


def lost_race(error: ClientError, if_match: bool) -> bool:
    """Whether a conditional request failed because the key holds something else than expected."""
    code = error.response["Error"]["Code"]
    return code in ("PreconditionFailed", "ConditionalRequestConflict") or (if_match and is_missing(error))


def hashed_error_key(key: str, prefix: str) -> str:
    """Where the error record of a key too long for its own outputs goes: short, and per key."""
    name = f"{ERRORS}/{hashlib.sha256(key.encode()).hexdigest()}.json"
    return f"{prefix}/{name}" if prefix else name


def source_metadata(source: SourceObject) -> dict[str, str]:
    """The S3 metadata naming the upload an output was made from (the crops, the master)."""
    # S3 metadata travels as HTTP headers: ASCII only, so the key is percent-encoded; where
    # that would take more than its share of S3's 2 KB, the key's SHA-256 names it instead.
    identity = {
        "source-bucket": source.bucket,
        "source-key": quote(source.key, safe="/"),
        "source-etag": source.etag,
        "source-version": source.version_id or "null",
    }
    if metadata_bytes(identity) > SOURCE_METADATA_BUDGET:
        del identity["source-key"]
        identity["source-key-sha256"] = hashlib.sha256(source.key.encode()).hexdigest()
    return identity


def metadata_bytes(metadata: dict[str, str]) -> int:
    """User metadata's size as S3 counts it against its limit: names and values, UTF-8."""
    return sum(len(name.encode()) + len(value.encode()) for name, value in metadata.items())


def check_size(size: int, settings: Settings) -> None:
    """An empty or too large object is refused before it is read."""
    if size == 0:
        raise UnsupportedImageError("the object is empty")
    if size > settings.max_object_bytes:
        raise ImageTooLargeError(f"the object is {size} bytes; the limit is {settings.max_object_bytes} bytes")


def current_photo(s3: S3Client, source: SourceObject, wrote: bool) -> None:
    """Raise `Superseded` unless the photo in the input bucket is still `source` (its ETag, and
    its version where it names one)."""
    try:
        head = s3.head_object(Bucket=source.bucket, Key=source.key)
    except ClientError as e:
        if is_missing(e):
            raise Superseded(source, wrote, gone=True) from e
        raise
    version = head.get("VersionId")
    other_version = bool(source.version_id and version and version != source.version_id)
    if (source.etag and bare_etag(head.get("ETag")) != source.etag) or other_version:
        raise Superseded(source, wrote)


def get_upload(s3: S3Client, obj: SourceObject) -> tuple[SourceObject, Any, str, dict[str, str]]:
    """The upload's exact identity, its body (a stream, not yet read), its declared content
    type and its user metadata; `Superseded` when it was deleted or replaced (a version no
    longer current is known from a HEAD before any byte is read)."""
    if obj.version_id:
        current_photo(s3, obj, False)
    kwargs: dict[str, Any] = {"Bucket": obj.bucket, "Key": obj.key}
    if obj.version_id:
        kwargs["VersionId"] = obj.version_id
    elif obj.etag:  # an overwrite since the event: its own event will come; skip this one
        kwargs["IfMatch"] = f'"{obj.etag}"'
    try:
        response = s3.get_object(**kwargs)
    except ClientError as e:
        code = e.response["Error"]["Code"]
        if code in ("NoSuchKey", "NoSuchVersion", "PreconditionFailed"):
            logger.info("upload gone before it was read", extra={"key": obj.key, "error": str(e)})
            raise Superseded(obj, False, gone=code != "PreconditionFailed") from e
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
    return source, body, content_type, dict(response.get("Metadata") or {})


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
    return parse_record(body)


def parse_record(body: bytes) -> dict[str, Any] | None:
    """A record's JSON object, or None when it is damaged."""
    try:
        loaded = json.loads(body)
    except ValueError:
        return None
    return loaded if isinstance(loaded, dict) else None
