"""A stored photo's overrides (`autocrop.overrides`), read and set through the API:

    GET    /v1/photos/<key>/overrides   what the photo is cropped with, its crops' version, current crop URLs
    PUT    /v1/photos/<key>/overrides   JSON {"focal_point": [x, y], "keep": [[x, y, w, h]], "boxes": {"W:H": [x, y, w, h]}}
    DELETE /v1/photos/<key>/overrides   back to the upload's metadata, or the automatic crops

The key is the photo's key in the input bucket, each segment percent-encoded as in crop URLs.
These routes are authorised like the crop API (API Gateway's authorizer on every route but
/healthz and crop URLs). A PUT is checked whole before anything is written (422 with the
reason; a box must fit the photo as it is now, `autocrop.overrides.box_fits`, and name a ratio
the service crops), then stored beside the photo's outputs (`<prefix>/<key>/overrides.json`),
where it wins over the upload's metadata and outlives a replaced photo. `PUT {}` stores "no
overrides": automatic crops, the upload's metadata ignored (metadata cannot be changed without
uploading the photo again; DELETE is the way back to it). PUT and DELETE answer
202: the upload function crops the photo again, through the same job and records as an upload
(an SQS message, `functions.s3.events.regenerate_message`), since that can take longer than
the API's 29 s; GET says when the new crops and their version are there. Where that message
cannot be sent, the stored overrides are put back as they were and the answer is 503.

Stored overrides outlive their photo too, on purpose: the upload function is told only of new
objects (s3:ObjectCreated in serverless.yml) and does not clear overrides.json on a delete. A
photo is often replaced by deleting it and uploading it again (a CMS's "replace file", sync
tools), and S3's events are not ordered, so a delete's event handled after the new upload's
would take a person's correction from the new photo. DELETE clears a deleted photo's
overrides (200: nothing to crop again); 404 only where there is neither photo nor overrides.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_to_bytes

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from autocrop.errors import InvalidOptionsError, UnsupportedImageError
from autocrop.options import parse_ratio
from autocrop.overrides import Overrides, photo_size
from autocrop.urls import SigningKeyError, crop_url
from functions.api.crops import current_version, photo_bytes, photo_head, signing_keys
from functions.api.models import ApiError, SettingsDep
from functions.s3.events import bare_etag, regenerate_message
from functions.s3.outputs import (
    KEY_LIMIT,
    OVERRIDES,
    SIDECAR,
    is_missing,
    lost_race,
    output_base,
    read_json,
    read_overrides,
    s3_client,  # fmt: skip
)
from functions.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
else:
    SQSClient = Any

router = APIRouter()
PREFIX, SUFFIX = "/v1/photos/", "/overrides"
ROUTE = PREFIX + "{key:path}" + SUFFIX


@lru_cache(maxsize=1)
def sqs_client() -> SQSClient:
    """The process-wide SQS client (AWS_ENDPOINT_URL points it at a local stack)."""
    return boto3.client("sqs", config=Config(retries={"mode": "standard", "max_attempts": 3}))


def photo_key(request: Request, key: str) -> str:
    """The photo's key, its path decoded exactly once: from the path as sent where the server
    keeps it (a local server; its path parameter may have been decoded twice), else as API
    Gateway decoded it (`functions.api.gateway`)."""
    raw = request.scope.get("raw_path")
    if raw is not None:
        sent = raw.decode("latin-1")
        inner = sent[len(PREFIX) : -len(SUFFIX)] if sent.startswith(PREFIX) and sent.endswith(SUFFIX) else ""
        try:
            key = unquote_to_bytes(inner).decode("utf-8") or key
        except UnicodeDecodeError as e:
            raise ApiError(400, "bad_key", "the key in the path is not UTF-8") from e
    if not key:  # (S3 has no object under an empty key: no request should reach it)
        raise ApiError(400, "bad_key", f"the key in the path is empty: {PREFIX}<key>{SUFFIX}")
    return key


def overrides_key(key: str, settings: Settings) -> str:
    """Where the photo's overrides are stored; 400 for a key too long for outputs of its own."""
    stored = f"{output_base(key, settings.normalised_prefix)}/{OVERRIDES}"
    if len(stored.encode()) > KEY_LIMIT:
        raise ApiError(400, "key_too_long", f"the key's outputs would pass S3's key limit of {KEY_LIMIT} bytes: "
                       "it has no crops to override")  # fmt: skip
    return stored


def checked_overrides(body: bytes, settings: Settings) -> Overrides:
    """The overrides a PUT body (or the CLI's file) holds, as far as the document alone tells (422 otherwise)."""
    if len(body) > settings.overrides_max_bytes:
        raise ApiError(
            413, "overrides_too_large", f"an overrides document is at most {settings.overrides_max_bytes} bytes"
        )
    return Overrides.from_text(body)  # InvalidOptionsError: 422 at the edge


def check_ratios(overrides: Overrides, settings: Settings) -> None:
    """422 for a box of a ratio this service does not crop (nothing would use it)."""
    cropped = [parse_ratio(r) for r in settings.ratios.split(",") if r.strip()]
    for ratio, _ in overrides.boxes:
        if not any(abs(parse_ratio(ratio) - value) < 1e-9 for value in cropped):
            raise InvalidOptionsError(
                f"a box for {ratio}, which this service does not crop (it crops {settings.ratios})"
            )


def upright_size(key: str, sidecar: dict[str, Any] | None, etag: str, settings: Settings) -> tuple[int, int]:
    """The photo's upright size as it is now: from its crops.json when that describes this
    version of the photo, else from the photo's header."""
    if sidecar and (sidecar.get("source") or {}).get("etag") == etag and sidecar.get("width") and sidecar.get("height"):
        return int(sidecar["width"]), int(sidecar["height"])
    data, _ = photo_bytes(s3_client(), settings, key)
    try:
        return photo_size(data)
    except UnsupportedImageError as e:
        raise ApiError(409, "not_a_photo", f"{key!r} is not a photo the service can crop: {e}") from e


def crop_urls(key: str, sidecar: dict[str, Any] | None, version: str | None, settings: Settings) -> dict[str, str]:
    """Each stored crop's current URL at its stored size ({} without a signing key)."""
    try:
        keys = signing_keys(settings)
    except ApiError:
        return {}
    urls = {}
    for entry in (sidecar or {}).get("crops") or ():
        size = entry.get("size")
        if not (isinstance(size, list) and len(size) == 2):
            continue
        try:
            urls[entry["ratio"]] = crop_url(key, entry["ratio"], (int(size[0]), int(size[1])), keys,
                                            base_url=settings.url_base, version=version)  # fmt: skip
        except (InvalidOptionsError, SigningKeyError):  # a key no URL can name
            return {}
    return urls


def regenerate(key: str, settings: Settings) -> None:
    """Have the upload function crop the photo again (asynchronously)."""
    sqs_client().send_message(
        QueueUrl=settings.regenerate_queue_url, MessageBody=regenerate_message(settings.input_bucket, key)
    )


def require_regeneration(settings: Settings) -> None:
    """503 before anything is written where no regeneration queue is configured."""
    if not settings.regenerate_queue_url:
        raise ApiError(
            503, "regeneration_not_configured", "overrides need AUTOCROP_REGENERATE_QUEUE_URL: nothing would apply them"
        )


def state(key: str, settings: Settings) -> dict[str, Any]:
    """What GET answers: the stored overrides, what the crops were made with, their version and URLs."""
    s3 = s3_client()
    stored_key = overrides_key(key, settings)  # (400 before S3 is asked about a key it would refuse)
    head = photo_head(s3, settings, key)
    etag = str(bare_etag(head.get("ETag")))
    stored, _, problem = read_overrides(s3, settings.output_bucket, stored_key)
    sidecar = read_json(s3, settings.output_bucket, f"{output_base(key, settings.normalised_prefix)}/{SIDECAR}")
    version = current_version(sidecar, etag)
    try:
        upload = Overrides.from_metadata(dict(head.get("Metadata") or {})).to_json()
    except InvalidOptionsError as e:
        upload = {"unusable": str(e)}
    applied = (sidecar or {}).get("overrides") if version is not None else None
    in_force = stored.to_json() if stored is not None else upload if "unusable" not in upload else {}
    made_with = {k: v for k, v in (applied or {}).items() if k not in ("from", "warnings")}
    return {
        "key": key,
        "overrides": stored.to_json() if stored is not None else None,
        **({"overrides_unusable": problem} if problem else {}),
        "upload_metadata": upload,
        "applied": applied,
        "version": version,
        # the crops do not yet reflect the photo as it is and its overrides
        "regenerating": version is None or made_with != in_force,
        "crops": [
            {k: c.get(k) for k in ("ratio", "box", "chosen_by", "warnings") if k in c}
            for c in (sidecar or {}).get("crops") or ()
        ]
        if version is not None
        else [],  # fmt: skip
        "urls": crop_urls(key, sidecar, version, settings) if version is not None else {},
    }


@router.get(ROUTE, tags=["overrides"])
def get_overrides(key: str, request: Request, settings: SettingsDep) -> dict[str, Any]:
    """The photo's stored overrides, what its crops were made with, their version and current URLs."""
    return state(photo_key(request, key), settings)


@router.put(ROUTE, tags=["overrides"], status_code=202)
async def put_overrides(key: str, request: Request, settings: SettingsDep) -> JSONResponse:
    """Store the photo's overrides (checked whole first: 422 and nothing written) and crop it again."""
    key = photo_key(request, key)
    overrides = checked_overrides(await request.body(), settings)
    store_overrides(key, overrides, settings)
    return JSONResponse({"key": key, "overrides": overrides.to_json(), "status": "regenerating"}, status_code=202)


def store_overrides(key: str, overrides: Overrides, settings: Settings) -> None:
    """Check `overrides` against the service and the photo as it is now (ApiError or
    InvalidOptionsError, nothing written), store them and have the photo cropped again:
    the PUT route and `python -m infra.cli override` (infra/photos.py)."""
    check_ratios(overrides, settings)
    require_regeneration(settings)
    stored_key = overrides_key(key, settings)
    s3 = s3_client()
    head = photo_head(s3, settings, key)  # 404 for no such photo
    if overrides.boxes:
        etag = str(bare_etag(head.get("ETag")))
        sidecar = read_json(s3, settings.output_bucket, f"{output_base(key, settings.normalised_prefix)}/{SIDECAR}")
        overrides.check_fits(*upright_size(key, sidecar, etag, settings))
    previous = stored_document(s3, settings.output_bucket, stored_key)
    document = json.dumps(overrides.to_json(), indent=2).encode()
    put = s3.put_object(Bucket=settings.output_bucket, Key=stored_key, Body=document, ContentType="application/json")
    regenerate_or_restore(key, settings, stored_key, previous, bare_etag(put.get("ETag")))


@router.delete(ROUTE, tags=["overrides"], status_code=202)
def delete_overrides(key: str, request: Request, settings: SettingsDep) -> JSONResponse:
    """Clear the photo's stored overrides (404 if it has none) and crop it again (202), or, for
    a photo that is gone, only clear them (200)."""
    key = photo_key(request, key)
    if clear_overrides(key, settings):
        return JSONResponse({"key": key, "overrides": None, "status": "regenerating"}, status_code=202)
    return JSONResponse({"key": key, "overrides": None, "status": "cleared", "detail": f"no photo {key!r} in the input "
                         "bucket: its stored overrides are deleted, and there is nothing to crop again"})  # fmt: skip


def clear_overrides(key: str, settings: Settings) -> bool:
    """Delete the photo's stored overrides and have it cropped again: the DELETE route and
    `python -m infra.cli override --clear`. Returns False where the photo is gone (its
    overrides deleted, nothing to crop); ApiError 404 where there are no stored overrides."""
    stored_key = overrides_key(key, settings)
    s3 = s3_client()
    exists = photo_exists(s3, settings, key)
    if exists:
        require_regeneration(settings)
    previous = stored_document(s3, settings.output_bucket, stored_key)
    if previous is None:
        if not exists:
            raise ApiError(404, "no_such_photo", f"no photo {key!r} in the input bucket, and no stored overrides")
        raise ApiError(404, "no_overrides", f"{key!r} has no stored overrides")
    s3.delete_object(Bucket=settings.output_bucket, Key=stored_key)
    # (a photo uploaded since the first look may have been cropped with what was just deleted)
    if not exists and not photo_exists(s3, settings, key):
        return False
    regenerate_or_restore(key, settings, stored_key, previous, None)
    return True


def photo_exists(s3: Any, settings: Settings, key: str) -> bool:
    """Whether the input bucket holds a photo under `key` (other S3 errors are raised)."""
    try:
        photo_head(s3, settings, key)
    except ApiError as e:
        if e.status == 404:
            return False
        raise
    return True


def stored_document(s3: Any, bucket: str, stored_key: str) -> bytes | None:
    """The stored overrides document as it is (None: there is none)."""
    try:
        return bytes(s3.get_object(Bucket=bucket, Key=stored_key)["Body"].read())
    except ClientError as e:
        if is_missing(e):
            return None
        raise


def regenerate_or_restore(
    key: str, settings: Settings, stored_key: str, previous: bytes | None, written: str | None
) -> None:
    """Have the photo cropped again; where that cannot be asked for, put its stored overrides
    back as they were (503): overrides stored and never applied would be "regenerating" for
    good. The restore is conditional on what this request left there (`written`: the ETag it
    wrote; None: it deleted), so a newer request's overrides are never undone."""
    try:
        regenerate(key, settings)
    except (BotoCoreError, ClientError) as e:
        s3, bucket = s3_client(), settings.output_bucket
        try:
            if previous is not None:
                condition = {"IfMatch": f'"{written}"'} if written else {"IfNoneMatch": "*"}
                s3.put_object(Bucket=bucket, Key=stored_key, Body=previous, ContentType="application/json", **condition)
            else:
                s3.delete_object(Bucket=bucket, Key=stored_key, IfMatch=f'"{written}"')
        except ClientError as lost:
            if not lost_race(lost, True):
                raise
        raise ApiError(503, "regeneration_unavailable", f"the photo could not be queued to be cropped again ({e}); "
                       "its stored overrides are as they were: try again") from e  # fmt: skip
