"""GET /v1/crops/<key id>.<signature>/<version>/<key>/<ratio>/<W>x<H>.<ext>: a photo's crop at
any size, from a signed URL that a CDN caches for good (`autocrop.urls` says how URLs are made,
spelled and signed).

Before anything is read from S3 a request must come through the CDN (the origin secret header,
where one is configured), be spelled the one way its crop is (where the spelling is still
visible: a local server; under API Gateway the CDN's edge function has refused the others),
and carry a signature of a current or previous key.

A URL names a version of the photo's crops (`autocrop.urls`): one naming another version
than crops.json records for the photo as it is now, or none where one is recorded, answers a
short-lived 302 to the current URL; one naming a version while none is current (the photo was
replaced and its new crops are not made yet) is sent to the URL naming none, which is answered
afresh and cached briefly. So a cached answer never holds crops newer or older than its URL says.

The crop's box comes from the analysis the upload function already stored (crops.json)
while that analysis is of the photo as it is now (same ETag, from a HEAD of the photo): no
saliency or face pass, only a decode and a resize, of the photo's master (`autocrop.master`,
a 2560 px JPEG stored beside crops.json) when it has the pixels for the size, else of the
original (`X-Autocrop-Source: master|original`). A photo with no stored analysis, or one
replaced since (another ETag), or a ratio it was not cropped to, is analysed here for that
ratio from the original, with the photo's overrides (`X-Autocrop-Analysis: fresh`).
`Server-Timing` says where the time
went.

The photo's HEAD, crops.json and the master go out at once (their keys are known from the
URL): on S3 each read waits a round trip, so the answer waits for one instead of three. The
master's read is wasted where it cannot serve (no current analysis, a size it lacks pixels
for); a 304 or 413 answers without waiting for it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing, contextmanager
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError
from fastapi import APIRouter, Request
from fastapi.responses import Response

from autocrop import Box, CropOptions, RenderRequest, render_crops
from autocrop.errors import AutocropError, InvalidOptionsError
from autocrop.job import OutputSpec, run_job
from autocrop.master import Master
from autocrop.overrides import FIELDS, Overrides
from autocrop.render import answer_bound
from autocrop.urls import (
    NO_VERSION,
    ROUTE,
    CropUrl,
    KeyRing,
    NonCanonicalUrlError,
    SigningKeyError,
    check,
    crop_url,
    parse,
)
from functions.api.models import ApiError, SettingsDep
from functions.s3.events import bare_etag
from functions.s3.outputs import (
    KEY_LIMIT,
    MASTER,
    OVERRIDES,
    SIDECAR,
    check_size,
    is_missing,
    output_base,
    overrides_in_force,
    read_json,
    read_overrides,
    s3_client,
)
from functions.settings import ANSWER_BYTES, Settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
else:
    S3Client = Any

logger = logging.getLogger(__name__)
router = APIRouter()
#: A crop URL names one photo version's crop at one size: it never changes, so caches keep it.
CACHE_CONTROL = "public, max-age=31536000, immutable"
#: An answer from a fresh analysis (none stored yet, or stored for an older version of the
#: photo) is cached briefly: the upload function's own analysis is about to replace it.
FRESH_CACHE_CONTROL = "public, max-age=300"
#: A URL of another version of the photo's crops (or naming none) redirects to the current
#: one, cached briefly: the current version changes when the photo or its overrides do.
REDIRECT_CACHE_CONTROL = "public, max-age=60"


#: The header CloudFront adds to every request it sends the API (serverless.yml, the origin's
#: OriginCustomHeaders), holding the origin secret.
ORIGIN_HEADER = "x-autocrop-origin"


def not_configured(why: str) -> ApiError:
    """The 503 of a service whose crop URLs are not (correctly) set up."""
    return ApiError(503, "crop_urls_not_configured", why)


def ssm_value(name: str, settings: Settings, decrypt: bool) -> str:
    """An SSM parameter's value, cached for `url_key_max_age` seconds (Powertools)."""
    from aws_lambda_powertools.utilities import parameters

    return str(parameters.get_parameter(name, decrypt=decrypt, max_age=settings.url_key_max_age))


def signing_keys(settings: Settings) -> KeyRing:
    """The URL signing keys: given directly, or from SSM Parameter Store (cached); 503 if none is usable."""
    stored = settings.url_signing_key.get_secret_value()
    if not stored.strip() and settings.url_signing_key_parameter:
        stored = ssm_value(settings.url_signing_key_parameter, settings, decrypt=True)
    elif not stored.strip():
        raise not_configured(
            "crop URLs need AUTOCROP_URL_SIGNING_KEY_PARAMETER (an SSM parameter) or AUTOCROP_URL_SIGNING_KEY"
        )
    try:
        return KeyRing.parse(stored)
    except SigningKeyError as e:  # a blank or short key would let anyone sign
        raise not_configured(f"the crop URL signing key is unusable: {e}") from e


def origin_secret(settings: Settings) -> bytes | None:
    """The secret the CDN must send in ORIGIN_HEADER, or None where none is configured (no CDN in front)."""
    direct = settings.url_origin_secret.get_secret_value()
    if direct.strip():
        return direct.strip().encode()
    if not settings.url_origin_secret_parameter:
        return None
    value = ssm_value(settings.url_origin_secret_parameter, settings, decrypt=False).strip()
    if not value:  # configured but blank: refuse everything rather than nothing
        raise not_configured(f"the origin secret parameter {settings.url_origin_secret_parameter} is blank")
    return value.encode()


def require_cdn(request: Request, settings: Settings) -> None:
    """403 unless the request carries the origin secret (where one is configured)."""
    expected = origin_secret(settings)
    if expected is None:
        return
    sent = request.headers.get(ORIGIN_HEADER, "").encode()
    if not hmac.compare_digest(sent, expected):
        raise ApiError(
            403, "not_through_the_cdn", "crop URLs are served through the CDN (CropUrlDomain), not from here"
        )


def checked_request(request: Request, path: str, keys: KeyRing, settings: Settings) -> CropUrl:
    """The crop the URL asks for, once it is spelled the one way (400 otherwise, where the spelling
    is visible), its signature holds (403 otherwise) and its size is within the maximum (400)."""
    raw = request.scope.get("raw_path")  # None under API Gateway, which decoded the path already
    try:
        if raw is not None:
            sent = raw.decode("latin-1")  # bytes as they came: anything but ASCII is non-canonical
            if not sent.startswith(ROUTE + "/"):
                raise NonCanonicalUrlError(f"a crop URL starts {ROUTE}/ as written")
            signed = parse(sent[len(ROUTE) + 1 :])
        else:
            signed = parse(path, decoded=True)
    except NonCanonicalUrlError as e:
        raise ApiError(400, "not_canonical", str(e)) from e
    except InvalidOptionsError as e:
        raise ApiError(403, "bad_signature", f"not a signed crop URL: {e}") from e
    if not signed.verifies(keys):
        raise ApiError(403, "bad_signature", "the signature does not match this URL")
    try:
        check(signed.request, settings.url_max_side)
    except InvalidOptionsError as e:
        raise ApiError(400, "bad_size", str(e)) from e
    wanted = signed.request
    worst = answer_bound(wanted.fmt, settings.jpeg_quality, wanted.size)
    if worst > ANSWER_BYTES:  # refused for every photo alike, before any S3 call or render
        raise ApiError(400, "too_large_for_a_url", f"a {wanted.size[0]}x{wanted.size[1]} {wanted.fmt} crop can take up to "
                       f"{worst / 1e6:.1f} MB, over the {ANSWER_BYTES / 1e6:.1f} MB one answer carries: ask for "
                       "a smaller size, or jpg or webp")  # fmt: skip
    return wanted


def current_version(sidecar: dict[str, Any] | None, etag: str) -> str | None:
    """The version of the photo's crops crops.json records, if it describes this version of
    the photo (None: never cropped, replaced since, or cropped before versions)."""
    if not sidecar or (sidecar.get("source") or {}).get("etag") != etag:
        return None
    version = sidecar.get("version")
    return version if isinstance(version, str) and version else None


def redirect_to_current(wanted: CropUrl, current: str | None, keys: KeyRing) -> Response | None:
    """The short-lived redirect a URL of another version of the photo's crops gets (None: the
    URL is current): to the URL of the current version, or, while the photo has changed and
    its new crops are not made yet, to the URL naming no version (answered briefly, afresh)."""
    if wanted.version == current:
        return None
    location = crop_url(wanted.key, wanted.ratio, wanted.size, keys, fmt=wanted.fmt, version=current)
    return Response(status_code=302, headers={"Location": location, "Cache-Control": REDIRECT_CACHE_CONTROL,
                                              "X-Autocrop-Version": current or NO_VERSION})  # fmt: skip


def overrides_now(s3: S3Client, settings: Settings, key: str, sidecar: dict[str, Any] | None, etag: str,
                  photo: dict[str, Any]) -> Overrides:  # fmt: skip
    """The overrides the photo is cropped with now: those its crops.json records for this
    version of the photo, else (replaced since) its stored ones, else its upload metadata's."""
    if sidecar and (sidecar.get("source") or {}).get("etag") == etag and isinstance(sidecar.get("overrides"), dict):
        recorded = {k: v for k, v in sidecar["overrides"].items() if k in FIELDS}
        try:
            return Overrides.from_json(recorded)
        except InvalidOptionsError:
            pass
    stored, problem = None, None
    if len(key.encode()) <= KEY_LIMIT:  # (a key too long for outputs has no stored overrides)
        stored, _, problem = read_overrides(s3, settings.output_bucket, key)
    return overrides_in_force(stored, problem, dict(photo.get("Metadata") or {}))[0]


def stored_box(sidecar: dict[str, Any] | None, etag: str, ratio: str) -> Box | None:
    """The box crops.json holds for `ratio`, if it is the analysis of this version of the photo."""
    if not sidecar or (sidecar.get("source") or {}).get("etag") != etag:
        return None
    for entry in sidecar.get("crops") or ():
        if entry.get("ratio") == ratio:
            return Box(*(int(v) for v in entry["box"]))
    return None


@lru_cache(maxsize=1)
def read_pool() -> ThreadPoolExecutor:
    """Threads for a crop URL's S3 reads, which wait on the network (boto3 clients are thread-safe)."""
    return ThreadPoolExecutor(max_workers=8, thread_name_prefix="crop-url-read")


@contextmanager
def missing_photo_is_404(key: str) -> Iterator[None]:
    """S3's answer for a missing photo (NoSuchKey; a HEAD's bare 404) as the API's 404."""
    try:
        yield
    except ClientError as e:
        if is_missing(e):
            raise ApiError(404, "no_such_photo", f"no photo {key!r} in the input bucket") from e
        raise


def photo_head(s3: S3Client, settings: Settings, key: str) -> dict[str, Any]:
    """The photo's HEAD (its ETag and size, no bytes)."""
    with missing_photo_is_404(key):
        return dict(s3.head_object(Bucket=settings.input_bucket, Key=key))


def photo_bytes(s3: S3Client, settings: Settings, key: str) -> tuple[bytes, str]:
    """The photo's bytes and the ETag of the version read."""
    with missing_photo_is_404(key):
        photo = s3.get_object(Bucket=settings.input_bucket, Key=key)
    with closing(photo["Body"]) as body:
        check_size(int(photo.get("ContentLength") or 0), settings)  # 413 / 415 at the edge
        return body.read(), str(bare_etag(photo.get("ETag")))


def master_bytes(s3: S3Client, bucket: str, key: str) -> tuple[dict[str, str], bytes] | None:
    """A master's metadata and bytes, or None when there is none."""
    try:
        got = s3.get_object(Bucket=bucket, Key=key)
    except ClientError as e:
        if is_missing(e):
            return None
        raise
    with closing(got["Body"]) as body:
        return dict(got.get("Metadata") or {}), body.read()


def crop_tag(etag: str, wanted: CropUrl) -> str:
    """The answer's ETag: the photo version's and the URL's."""
    return '"' + hashlib.sha256(f"{etag}\n{wanted.path()}".encode()).hexdigest()[:32] + '"'


def stored_master(sidecar: dict[str, Any] | None, key: str) -> Master | None:
    """The master crops.json records under `key` (where the upload function writes it)."""
    sidecar = sidecar or {}
    record = sidecar.get("master")
    if not isinstance(record, dict) or record.get("key") != key:
        return None
    return Master.from_dict(record, (sidecar.get("width"), sidecar.get("height")))


def master_source(read: Future[tuple[dict[str, str], bytes] | None] | None, sidecar: dict[str, Any] | None, key: str,
                  box: Box, etag: str, size: tuple[int, int]) -> tuple[bytes, Box] | None:  # fmt: skip
    """The master's bytes and `box` in its pixels, or None where the original must serve: no
    master recorded, too few pixels for the size, gone, or written for another photo version."""
    master = stored_master(sidecar, key)
    if read is None or master is None or not master.serves(box, size):
        return None
    got = read.result()
    if got is None:
        logger.warning("crop URL: the recorded master is gone, rendering from the original", extra={"key": key})
        return None
    metadata, data = got
    if metadata.get("source-etag") != etag:  # a newer upload's, its crops.json not yet written
        return None
    return data, master.box_in(box)


class Laps:
    """Milliseconds per stage for Server-Timing; a stage may be timed in several laps."""

    def __init__(self) -> None:
        self.last, self.ms = time.perf_counter(), {"fetch": 0.0, "analysis": 0.0, "render": 0.0}

    def lap(self, stage: str) -> None:
        """Count the time since the last lap towards `stage`."""
        now = time.perf_counter()
        self.ms[stage] += (now - self.last) * 1000
        self.last = now


@router.get(
    ROUTE + "/{path:path}",
    tags=["crop"],
    response_class=Response,
    responses={
        200: {"content": {"image/jpeg": {}, "image/webp": {}, "image/png": {}}},
        304: {"description": "Not modified (If-None-Match)"},
        400: {"description": "Not the URL's one spelling, a size over the maximum, or not of the ratio"},
        403: {"description": "Not through the CDN, unsigned, or the signature does not match"},
        404: {"description": "No such photo"},
        503: {"description": "No usable signing key configured"},
    },
)
def crop_from_url(path: str, request: Request, settings: SettingsDep) -> Response:
    """The crop of a stored photo at the URL's size (from its stored analysis when current,
    and then from its master when that has the pixels)."""
    laps = Laps()
    require_cdn(request, settings)
    keys = signing_keys(settings)
    wanted = checked_request(request, path, keys, settings)
    s3, pool = s3_client(), read_pool()
    base = output_base(wanted.key, settings.normalised_prefix)
    master_key = f"{base}/{MASTER}"
    # A key too long for outputs of its own has none (the upload function wrote its error
    # record under a hashed key): nothing stored to read, and S3 would refuse the request.
    stored_fits = len(f"{base}/{SIDECAR}".encode()) <= KEY_LIMIT
    stored = pool.submit(read_json, s3, settings.output_bucket, f"{base}/{SIDECAR}") if stored_fits else None
    master = (
        pool.submit(master_bytes, s3, settings.output_bucket, master_key)
        if settings.url_master and stored_fits
        else None
    )
    photo = photo_head(s3, settings, wanted.key)
    etag = str(bare_etag(photo.get("ETag")))
    sidecar = stored.result() if stored is not None else None
    moved = redirect_to_current(wanted, current_version(sidecar, etag), keys)
    if moved is not None:  # never the current crop under another version's URL
        return moved
    headers = {"Cache-Control": CACHE_CONTROL, "ETag": crop_tag(etag, wanted)}
    if headers["ETag"] in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    check_size(int(photo.get("ContentLength") or 0), settings)
    laps.lap("fetch")
    box, analysis, source, out = stored_box(sidecar, etag, wanted.ratio), "stored", "master", None
    found = master_source(master, sidecar, master_key, box, etag, wanted.size) if box is not None else None
    laps.lap("fetch")
    if found is not None:
        try:
            [out] = render_crops(found[0], [RenderRequest(found[1], wanted.size, wanted.fmt, settings.jpeg_quality)])
        except AutocropError as e:  # a damaged master costs a slower answer, not a failed one
            logger.warning("crop URL: the master is unreadable, rendering from the original", extra={"error": str(e)})
        laps.lap("render")
    if out is None:
        source = "original"
        data, read_etag = photo_bytes(s3, settings, wanted.key)
        if read_etag != etag:  # replaced since the HEAD: answer for the version read
            moved = redirect_to_current(wanted, current_version(sidecar, read_etag), keys)
            if moved is not None:  # the URL's version is the photo's before: never the new bytes under it
                return moved
            etag, box = read_etag, stored_box(sidecar, read_etag, wanted.ratio)
            headers["ETag"] = crop_tag(etag, wanted)
        laps.lap("fetch")
        if box is None:
            options = overrides_now(s3, settings, f"{base}/{OVERRIDES}", sidecar, etag, photo).apply(
                CropOptions.from_ratios([wanted.ratio])
            )
            done = run_job(data, options, OutputSpec(render=False))
            box, analysis = done.result.crops[0].box, "fresh"
            laps.lap("analysis")
        [out] = render_crops(data, [RenderRequest(box, wanted.size, wanted.fmt, settings.jpeg_quality)])
        laps.lap("render")
    if len(out.data) > ANSWER_BYTES:  # never, while encoded_bound holds; a backstop, not an assert
        raise ApiError(400, "too_large_for_a_url", f"this crop is {len(out.data)} bytes as {wanted.fmt}, over what "
                       "one answer carries: ask for a smaller size, or jpg or webp")  # fmt: skip
    assert box is not None
    ms = laps.ms
    headers |= {
        # (a URL naming no version is answered only while no version is known: briefly)
        "Cache-Control": CACHE_CONTROL if analysis == "stored" and wanted.version else FRESH_CACHE_CONTROL,
        "X-Autocrop-Analysis": analysis,
        "X-Autocrop-Source": source,
        "X-Autocrop-Box": ",".join(str(v) for v in box.to_list()),
        "X-Autocrop-Upscaled": "true" if out.upscaled else "false",
        "Server-Timing": f"fetch;dur={ms['fetch']:.1f};desc={source}, analysis;dur={ms['analysis']:.1f};desc={analysis}, "
        f"render;dur={ms['render']:.1f}",
    }
    return Response(out.data, media_type=out.media_type, headers=headers)
