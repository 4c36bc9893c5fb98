"""HTTPS API: crop a photo synchronously, plus the demo page; `handler = Mangum(app)` for Lambda.

    POST /v1/crop    photo in (multipart field `image`, or the raw body) -> JSON or one crop
    POST /v1/debug   photo in -> PNG: saliency heatmap, faces, chosen boxes
    GET  /v1/crops/<key id>.<signature>/<version>/<key>/<ratio>/<W>x<H>.<ext>   a stored photo's crop (signed, cached)
    GET/PUT/DELETE /v1/photos/<key>/overrides   a stored photo's overrides (PUT, DELETE: 202, cropped again)
    GET  /healthz    liveness
    GET  /           the demo page;  /docs  OpenAPI docs

Bodies over the synchronous Lambda payload limit get 413 with the way forward: upload the
photo to the input bucket and collect its crops from the output bucket.
"""

from __future__ import annotations

import asyncio
import base64
import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from mangum import Mangum
from starlette.exceptions import HTTPException as StarletteHTTPException

from autocrop import CropOptions
from autocrop.errors import (
    AutocropError,
    ImageTooLargeError,
    InvalidOptionsError,
    OutputTooLargeError,
    UnsupportedImageError,
)
from autocrop.job import OutputSpec, run_job
from autocrop.options import parse_size
from functions.api.crops import router as crop_urls
from functions.api.gateway import HttpApiGateway
from functions.api.limits import BodyLimitMiddleware
from functions.api.models import PHOTO_BODY, ApiError, CropResponse, Photo, SettingsDep, http_error, invalid_request
from functions.api.photos import router as photo_overrides
from functions.settings import ANSWER_BYTES

STATIC_DIR = Path(__file__).parent / "static"
#: Long side of the crop previews that `include=images` embeds in the JSON (pixels).
PREVIEW_SIDE = 512
#: Each domain error's HTTP status, by its code (the code is on the exception class).
HTTP_STATUS: dict[str, int] = {
    UnsupportedImageError.code: 415,
    ImageTooLargeError.code: 413,
    InvalidOptionsError.code: 422,
    OutputTooLargeError.code: 400,
}
#: Output pixels one call may render (all its crops together): one 4096 x 4096 image's worth,
#: so a call's rendering stays a few seconds whatever it asks for.
MAX_OUTPUT_PIXELS = 4096 * 4096
#: The debug view's largest PNG (the analysis image, at most 640 px long, RGB, unfiltered).
DEBUG_VIEW_BYTES = 640 * 640 * 3 + 64 * 1024


app = FastAPI(
    title="autoCropper",
    version="0.1.0",
    summary="Automatic image cropping: saliency + faces, every aspect ratio in one pass.",
)
app.add_middleware(BodyLimitMiddleware)
app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
app.include_router(crop_urls)
app.include_router(photo_overrides)


@app.exception_handler(ApiError)
async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
    return exc.response()


@app.exception_handler(AutocropError)
async def _domain_error(request: Request, exc: AutocropError) -> JSONResponse:
    return JSONResponse({"error": exc.code, "detail": str(exc)}, status_code=HTTP_STATUS.get(exc.code, 400))


@app.exception_handler(RequestValidationError)
async def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    return invalid_request(exc)


@app.exception_handler(StarletteHTTPException)
async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    return http_error(request, exc)


@app.exception_handler(Exception)
async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    """Anything else (an AWS failure no route maps) in the same shape; Starlette still logs it."""
    return JSONResponse({"error": "internal_error", "detail": f"the request failed inside the service "
                         f"({type(exc).__name__}); try again, and if it persists, look at the function's log"},
                        status_code=500)  # fmt: skip


@app.get("/", include_in_schema=False)
def demo_page() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html")


@app.get("/favicon.ico", include_in_schema=False)
def favicon() -> FileResponse:
    """The page's icon where a client asks the conventional path without reading the page."""
    return FileResponse(STATIC_DIR / "favicon.svg", media_type="image/svg+xml")


@app.get("/healthz", tags=["ops"])
def healthz() -> dict[str, str]:
    """Liveness: the function is up."""
    return {"status": "ok", "version": app.version}


@app.post(
    "/v1/crop",
    tags=["crop"],
    openapi_extra=PHOTO_BODY,
    response_model=CropResponse,
    responses={
        200: {"content": {"image/jpeg": {}, "image/png": {}, "image/webp": {}}},
        413: {"description": "Body over the payload limit, or too many pixels"},
        415: {"description": "Not an image the engine can read"},
        422: {"description": "Invalid options or no photo"},
    },
)
def crop(photo: Photo, request: Request, settings: SettingsDep) -> Any:
    """Crop a photo for each ratio: JSON (boxes, scores, faces, timings) or one crop's bytes."""
    started = time.perf_counter()
    params = photo.params
    accept = request.headers.get("accept", "")
    want_image = params.output == "image" or (
        params.output is None and _format_from_accept(accept, any_image=True) is not None
    )
    ratios = params.ratio if want_image and params.ratio else params.ratios or settings.ratios
    options = params.apply_hints(CropOptions.from_ratios(ratios))  # focal point, keep: 422 when invalid
    if want_image:
        _only_ratio(options)  # image output is one crop
    debug = not want_image and "debug" in params.extras
    spec = OutputSpec(
        size=parse_size(params.size) if params.size else None,
        max_side=None if want_image else PREVIEW_SIDE,  # JSON previews are small unless sized
        fmt=params.format or _format_from_accept(accept) or "jpeg",
        quality=params.quality,
        no_upscale=params.no_upscale,
        render=want_image or "images" in params.extras,
        debug=debug,
        # One place for every answer's limits: checked from the header before any analysis.
        limit_side=settings.url_max_side,
        limit_pixels=MAX_OUTPUT_PIXELS,
        limit_bytes=ANSWER_BYTES - (DEBUG_VIEW_BYTES if debug else 0),
    )
    done = run_job(photo.data, options, spec)
    carried = sum(len(out.data) for _, out in done.rendered()) + len(done.debug_png or b"")
    if carried > ANSWER_BYTES:  # never, while the worst case (checked before any work) holds
        raise OutputTooLargeError(f"the answer would carry {carried} bytes of images, over {ANSWER_BYTES}")
    if want_image:
        [(chosen, out)] = done.rendered()
        return Response(
            out.data,
            media_type=out.media_type,
            headers={
                "X-Autocrop-Ratio": chosen.ratio,
                "X-Autocrop-Box": ",".join(str(v) for v in chosen.box.to_list()),
                "X-Autocrop-Score": f"{chosen.score:.4f}",
                "X-Autocrop-Size": f"{out.width}x{out.height}",
                "X-Autocrop-Upscaled": "true" if out.upscaled else "false",
                "X-Autocrop-Icc-Profile": out.icc_profile,
            },
        )
    answer = done.manifest()
    for entry, (_, out) in zip(answer["crops"], done.rendered()):  # every crop, in order
        entry["image"] = _data_url(out.data, out.media_type)
    if done.debug_png is not None:
        answer["debug_view"] = _data_url(done.debug_png, "image/png")
    answer["timings"]["request_ms"] = round((time.perf_counter() - started) * 1000, 2)
    return answer


@app.post(
    "/v1/debug",
    tags=["crop"],
    openapi_extra=PHOTO_BODY,
    response_class=Response,
    responses={200: {"content": {"image/png": {}}, "description": "The debug view"}},
)
def debug(photo: Photo, settings: SettingsDep) -> Response:
    """The debug view as PNG: saliency heatmap, faces and the chosen box of each ratio."""
    options = photo.params.apply_hints(CropOptions.from_ratios(photo.params.ratios or settings.ratios))
    done = run_job(photo.data, options, OutputSpec(render=False, debug=True))
    return Response(done.debug_png, media_type="image/png")


def _format_from_accept(accept: str, any_image: bool = False) -> str | None:
    """The first image format the Accept header names ('image/*' counts when `any_image`)."""
    for part in accept.split(","):
        kind = part.split(";")[0].strip().lower()
        if kind in ("image/jpeg", "image/png", "image/webp"):
            return kind.split("/")[1]
        if any_image and kind == "image/*":
            return "jpeg"
    return None


def _only_ratio(options: CropOptions) -> str:
    if len(options.ratios) != 1:
        raise InvalidOptionsError(
            f"image output returns one crop: pick one of {', '.join(options.ratios)} with ratio=W:H"
        )
    return options.ratios[0]


def _data_url(data: bytes, media_type: str) -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


# HttpApiGateway: the path as API Gateway decoded it, never decoded a second time.
_mangum = Mangum(app, lifespan="off", custom_handlers=[HttpApiGateway])


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The Lambda entry point: Mangum, run on the thread's event loop, made first where the
    thread has none. Mangum reads `asyncio.get_event_loop()`, which raises once anything in
    the process has run `asyncio.run()` (it leaves the thread without a loop): a warm
    container's other code, or a test run before this one."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        policy = asyncio.get_event_loop_policy()
        try:
            loop = policy.get_event_loop()
        except RuntimeError:
            loop = None
        if loop is None or loop.is_closed():
            asyncio.set_event_loop(asyncio.new_event_loop())
    return _mangum(event, context)
