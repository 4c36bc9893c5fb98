"""GET /v1/crops/<signature>/<key>/<ratio>/<W>x<H>.<ext>: a photo's crop at any size, from a
signed URL that a CDN caches for good (`autocrop.urls` says how URLs are made and signed).

The crop's box comes from the analysis the upload function already stored (crops.json)
while that analysis is of the photo as it is now (same ETag): no saliency or face pass, only
a decode and a resize. A photo with no stored analysis, or one replaced since (another ETag),
or a ratio it was not cropped to, is analysed here for that ratio (`X-Autocrop-Analysis:
fresh`). `Server-Timing` says where the time went.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from autocrop import Box, CropOptions, RenderRequest, render_crops
from autocrop.errors import InvalidOptionsError
from autocrop.job import OutputSpec, run_job
from autocrop.urls import ROUTE, CropUrl, check, parse, verify
from botocore.exceptions import ClientError
from fastapi import APIRouter, Request
from fastapi.responses import Response

from functions.api_models import ApiError, SettingsDep
from functions.s3_outputs import SIDECAR, output_base, read_json, s3_client
from functions.settings import Settings

router = APIRouter()
#: A crop URL names one photo version's crop at one size: it never changes, so caches keep it.
CACHE_CONTROL = "public, max-age=31536000, immutable"
#: An answer from a fresh analysis (none stored yet, or stored for an older version of the
#: photo) is cached briefly: the upload function's own analysis is about to replace it.
FRESH_CACHE_CONTROL = "public, max-age=300"
#: Lambda's synchronous response limit, which the base64-encoded image must fit (bytes).
RESPONSE_LIMIT = 6 * 1024 * 1024 - 16 * 1024


def signing_key(settings: Settings) -> bytes:
    """The URL signing key: given directly, or from SSM Parameter Store (cached)."""
    direct = settings.url_signing_key.get_secret_value().strip()  # as `autocrop url` reads it
    if direct:
        return direct.encode()
    if settings.url_signing_key_parameter:
        from aws_lambda_powertools.utilities import parameters

        value = parameters.get_parameter(settings.url_signing_key_parameter, decrypt=True,
                                         max_age=settings.url_key_max_age)  # fmt: skip
        return str(value).strip().encode()
    raise ApiError(503, "crop_urls_not_configured",
                   "crop URLs need AUTOCROP_URL_SIGNING_KEY_PARAMETER (an SSM parameter) or AUTOCROP_URL_SIGNING_KEY")  # fmt: skip


def checked_request(sig: str, path: str, secret: bytes, settings: Settings) -> CropUrl:
    """The crop the URL asks for, once its signature holds (403 otherwise) and its size is
    within the service's maximum (400 otherwise)."""
    try:
        wanted = parse(path, decoded=True)
    except InvalidOptionsError as e:
        raise ApiError(403, "bad_signature", f"not a signed crop URL: {e}") from e
    if not verify(sig, wanted.path(), secret):
        raise ApiError(403, "bad_signature", "the signature does not match this URL")
    try:
        check(wanted, settings.url_max_side)
    except InvalidOptionsError as e:
        raise ApiError(400, "bad_size", str(e)) from e
    return wanted


def stored_box(sidecar: dict[str, Any] | None, etag: str, ratio: str) -> Box | None:
    """The box crops.json holds for `ratio`, if it is the analysis of this version of the photo."""
    if not sidecar or (sidecar.get("source") or {}).get("etag") != etag:
        return None
    for entry in sidecar.get("crops") or ():
        if entry.get("ratio") == ratio:
            return Box(*(int(v) for v in entry["box"]))
    return None


@router.get(
    ROUTE + "/{sig}/{path:path}",
    tags=["crop"],
    response_class=Response,
    responses={
        200: {"content": {"image/jpeg": {}, "image/webp": {}, "image/png": {}}},
        304: {"description": "Not modified (If-None-Match)"},
        400: {"description": "A size over the maximum, or not of the ratio"},
        403: {"description": "Unsigned, or the signature does not match"},
        404: {"description": "No such photo"},
    },
)
def crop_from_url(sig: str, path: str, request: Request, settings: SettingsDep) -> Response:
    """The crop of a stored photo at the URL's size (from its stored analysis when current)."""
    started = time.perf_counter()
    wanted = checked_request(sig, path, signing_key(settings), settings)
    s3 = s3_client()
    try:
        photo = s3.get_object(Bucket=settings.input_bucket, Key=wanted.key)
    except ClientError as e:
        if e.response["Error"]["Code"] in ("NoSuchKey", "404"):
            raise ApiError(404, "no_such_photo", f"no photo {wanted.key!r} in the input bucket") from e
        raise
    etag = str(photo.get("ETag", "")).strip('"')
    tag = '"' + hashlib.sha256(f"{etag}\n{wanted.path()}".encode()).hexdigest()[:32] + '"'
    headers = {"Cache-Control": CACHE_CONTROL, "ETag": tag}
    if tag in request.headers.get("if-none-match", ""):
        photo["Body"].close()
        return Response(status_code=304, headers=headers)
    if int(photo.get("ContentLength") or 0) > settings.max_object_bytes:
        photo["Body"].close()
        raise ApiError(413, "image_too_large", f"the photo is over {settings.max_object_bytes} bytes")
    data = photo["Body"].read()
    fetched = time.perf_counter()

    sidecar = read_json(s3, settings.output_bucket, f"{output_base(wanted.key, settings.normalised_prefix)}/{SIDECAR}")
    box, analysis = stored_box(sidecar, etag, wanted.ratio), "stored"
    if box is None:
        done = run_job(data, CropOptions.from_ratios([wanted.ratio]), OutputSpec(render=False))
        box, analysis = done.result.crops[0].box, "fresh"
    analysed = time.perf_counter()
    [out] = render_crops(data, [RenderRequest(box, wanted.size, wanted.fmt, settings.jpeg_quality)])
    done_at = time.perf_counter()
    if (len(out.data) + 2) // 3 * 4 > RESPONSE_LIMIT:  # API Gateway carries it base64-encoded
        raise ApiError(400, "too_large_for_a_url", f"this crop is {len(out.data)} bytes as {wanted.fmt}, over what a "
                       "synchronous answer can carry: ask for jpg or webp, or a smaller size")  # fmt: skip
    ms = lambda a, b: f"{(b - a) * 1000:.1f}"  # noqa: E731
    headers |= {
        "Cache-Control": CACHE_CONTROL if analysis == "stored" else FRESH_CACHE_CONTROL,
        "X-Autocrop-Analysis": analysis,
        "X-Autocrop-Box": ",".join(str(v) for v in box.to_list()),
        "X-Autocrop-Upscaled": "true" if out.upscaled else "false",
        "Server-Timing": f"fetch;dur={ms(started, fetched)}, analysis;dur={ms(fetched, analysed)};desc={analysis}, "
        f"render;dur={ms(analysed, done_at)}",
    }
    return Response(out.data, media_type=out.media_type, headers=headers)
