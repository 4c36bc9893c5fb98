"""HTTPS API: crop a photo synchronously, plus the demo page; `handler = Mangum(app)` for Lambda.

    POST /v1/crop    photo in (multipart field `image`, or the raw body) -> JSON or one crop
    POST /v1/debug   photo in -> PNG: saliency heatmap, faces, chosen boxes
    GET  /healthz    liveness
    GET  /           the demo page;  /docs  OpenAPI docs

Bodies over the synchronous Lambda payload limit get 413 with the way forward: upload the
photo to the input bucket and collect its crops from the output bucket.
"""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Annotated, Any, Literal

from autocrop import CropOptions, RenderRequest, analyse, debug_view, render_crops
from autocrop.errors import (
    AutocropError,
    ImageTooLargeError,
    InvalidOptionsError,
    UnsupportedImageError,
)
from autocrop.options import parse_size
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from mangum import Mangum
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.datastructures import UploadFile
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from functions.settings import Settings, get_settings

STATIC_DIR = Path(__file__).parent / "static"
#: Long side of the crop previews that `include=images` embeds in the JSON (pixels).
PREVIEW_SIDE = 512
#: Form field names that may carry the photo in a multipart request.
IMAGE_FIELDS = ("image", "file")
#: Each domain error's HTTP status, by its code (the code is on the exception class).
HTTP_STATUS: dict[str, int] = {
    UnsupportedImageError.code: 415,
    ImageTooLargeError.code: 413,
    InvalidOptionsError.code: 422,
}


class ApiError(Exception):
    """A request problem the API itself finds (no photo, body too large)."""

    def __init__(self, status: int, code: str, detail: str, **extra: Any):
        super().__init__(detail)
        self.status, self.code, self.detail, self.extra = status, code, detail, extra

    def response(self) -> JSONResponse:
        return JSONResponse(
            {"error": self.code, "detail": self.detail, **self.extra}, status_code=self.status
        )


# ---------------------------------------------------------------------------------------------
# Request parameters (query string or multipart form fields)


class CropParams(BaseModel):
    """What to crop and how to return it."""

    model_config = ConfigDict(extra="forbid")

    ratios: str | None = Field(
        None, description="Aspect ratios 'W:H', comma-separated; default: the server's list.",
        examples=["1:1,16:9"],
    )  # fmt: skip
    ratio: str | None = Field(
        None, description="One ratio; with output=image it picks the crop returned.",
        examples=["16:9"],
    )  # fmt: skip
    size: str | None = Field(
        None, description="Resize crops to 'WxH' pixels (default: full resolution).",
        examples=["1080x1350"],
    )  # fmt: skip
    format: Literal["jpeg", "png", "webp"] | None = Field(
        None, description="Image encoding of returned crops (default: jpeg, or per Accept)."
    )
    quality: int = Field(85, ge=1, le=100, description="JPEG/WebP quality.")
    no_upscale: bool = Field(
        False, description="Never enlarge: a crop smaller than 'size' keeps its own resolution "
        "(the size's ratio). Without it such a crop is enlarged to the exact size, and the answer "
        "says so (X-Autocrop-Upscaled: true, or upscaled in JSON).",
    )  # fmt: skip
    output: Literal["json", "image"] | None = Field(
        None,
        description="json: boxes, scores, faces, timings; image: the crop's bytes. "
        "Default: image when the Accept header asks for image/*, else json.",
    )
    include: str = Field(
        "",
        description="Extras for JSON, comma-separated: 'debug' (the debug view PNG) and "
        "'images' (each crop as a preview), both as data URLs.",
        examples=["debug,images"],
    )

    @property
    def extras(self) -> set[str]:
        return {p.strip() for p in self.include.split(",") if p.strip()}


class PhotoRequest:
    """The photo's bytes and the merged query/form parameters of one request."""

    def __init__(self, data: bytes, params: CropParams):
        self.data, self.params = data, params


async def photo_request(request: Request, query: Annotated[CropParams, Query()]) -> PhotoRequest:
    """Read the photo from a multipart field or the raw body; form fields override the query."""
    content_type = request.headers.get("content-type", "")
    fields: dict[str, Any] = {}
    data = b""
    if content_type.startswith("multipart/form-data"):
        form = await request.form()
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                if name in IMAGE_FIELDS and not data:
                    data = await value.read()
            elif value != "":
                fields[name] = value
    else:
        data = await request.body()
    if not data:
        raise ApiError(
            422,
            "missing_image",
            "send the photo as multipart field 'image' or as the raw request body",
        )
    try:
        params = CropParams.model_validate({**query.model_dump(exclude_unset=True), **fields})
    except ValidationError as e:
        raise RequestValidationError(e.errors()) from e
    return PhotoRequest(data, params)


Photo = Annotated[PhotoRequest, Depends(photo_request)]
SettingsDep = Annotated[Settings, Depends(get_settings)]

#: OpenAPI description of the two ways to send a photo (read by hand in `photo_request`).
PHOTO_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["image"],
                    "properties": {
                        "image": {"type": "string", "format": "binary"},
                        **{
                            name: {"type": "string"}
                            for name in (
                                "ratios",
                                "ratio",
                                "size",
                                "format",
                                "quality",
                                "output",
                                "include",
                            )
                        },
                    },
                }
            },
            "image/*": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


# ---------------------------------------------------------------------------------------------
# Responses


class FaceReportOut(BaseModel):
    kept: int = Field(description="detected faces wholly inside the crop")
    dropped: int = Field(description="detected faces wholly outside")
    cut: int = Field(description="detected faces partly inside (faces too small to protect may be)")
    protected_cut: int = Field(description="protected faces the crop slices: 0 unless no crop of the "
                               "ratio could keep or drop them all whole")
    heads_cut: int = Field(description="protected faces kept or dropped whole whose head (hair, chin) "
                           "the crop slices: where no crop of the ratio could keep every head whole")
    all_protected_whole: bool


class CropOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    ratio: str
    box: list[int] = Field(description="[x, y, w, h] in upright full-resolution pixels")
    score: float
    breakdown: dict[str, float]
    saliency_kept: float
    faces_kept: int
    face_report: FaceReportOut
    chosen_by: str
    image: str | None = Field(None, description="Preview data URL (include=images)")
    size: list[int] | None = Field(None, description="[W, H] of the preview image (include=images)")
    media_type: str | None = Field(None, description="Media type of the preview (include=images)")
    upscaled: bool | None = Field(
        None, description="Whether the preview is larger than the part of the photo it shows"
    )


class FaceOut(BaseModel):
    box: list[int]
    confidence: float


class CropResponse(BaseModel):
    model_config = ConfigDict(extra="allow")

    width: int
    height: int
    crops: list[CropOut]
    faces: list[FaceOut]
    timings: dict[str, float] = Field(description="milliseconds per stage")
    models: dict[str, str]
    debug_view: str | None = Field(None, description="Debug view PNG data URL (include=debug)")


# ---------------------------------------------------------------------------------------------
# App


class BodyLimitMiddleware:
    """Answer 413 to bodies over `api_max_body_bytes` (declared or streamed) before any work."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        limit = get_settings().api_max_body_bytes
        declared = dict(scope["headers"]).get(b"content-length", b"").decode()
        if declared.isdigit() and int(declared) > limit:
            await _too_large(int(declared), limit).response()(scope, receive, send)
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await _too_large(size, limit).response()(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app(scope, replay, send)


def _too_large(size: int, limit: int) -> ApiError:
    settings = get_settings()
    upload_to = f"s3://{settings.input_bucket or '<input bucket>'}/<key>"
    crops_at = (
        f"s3://{settings.output_bucket or '<output bucket>'}/{settings.normalised_prefix}/<key>/"
    )
    return ApiError(
        413,
        "payload_too_large",
        f"The request body is {'at least ' if size <= limit else ''}{size} bytes; this API takes "
        f"at most {limit} bytes (the synchronous Lambda payload limit). Upload the photo to "
        f"{upload_to} instead: its crops and crops.json appear in {crops_at}.",
        limit_bytes=limit,
        upload_to=upload_to,
        crops_at=crops_at,
    )


app = FastAPI(
    title="autoCropper",
    version="0.1.0",
    summary="Automatic image cropping: saliency + faces, every aspect ratio in one pass.",
)
app.add_middleware(BodyLimitMiddleware)
app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")


@app.exception_handler(ApiError)
async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
    return exc.response()


@app.exception_handler(AutocropError)
async def _domain_error(request: Request, exc: AutocropError) -> JSONResponse:
    return JSONResponse({"error": exc.code, "detail": str(exc)}, status_code=HTTP_STATUS.get(exc.code, 400))


@app.get("/", include_in_schema=False)
def demo_page() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html")


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
    fmt = params.format or _format_from_accept(accept) or "jpeg"
    want_image = params.output == "image" or (
        params.output is None and _format_from_accept(accept, any_image=True) is not None
    )
    if want_image and params.ratio:
        options = CropOptions.from_ratios(params.ratio)
    else:
        options = CropOptions.from_ratios(params.ratios or settings.ratios)
    size = parse_size(params.size) if params.size else None
    result = analyse(photo.data, options)

    if want_image:
        ratio = params.ratio or _only_ratio(options)
        chosen = result.crop(ratio)
        [out] = render_crops(photo.data, [RenderRequest(chosen.box, size, fmt, params.quality, params.no_upscale)])
        return Response(
            out.data,
            media_type=out.media_type,
            headers={
                "X-Autocrop-Ratio": chosen.ratio,
                "X-Autocrop-Box": ",".join(str(v) for v in chosen.box.to_list()),
                "X-Autocrop-Score": f"{chosen.score:.4f}",
                "X-Autocrop-Size": f"{out.width}x{out.height}",
                "X-Autocrop-Upscaled": "true" if out.upscaled else "false",
            },
        )

    answer = result.to_dict()
    render_started = time.perf_counter()
    if "images" in params.extras:  # every preview from one decode of the photo
        requests = [
            RenderRequest(c.box, size or _preview_size(c.box), fmt, params.quality, params.no_upscale)
            for c in result.crops
        ]
        for item, out in zip(answer["crops"], render_crops(photo.data, requests), strict=True):
            item["image"] = _data_url(out.data, out.media_type)
            item.update(out.describe())
    if "debug" in params.extras:
        answer["debug_view"] = _data_url(debug_view(photo.data, result), "image/png")
    answer["timings"]["render_ms"] = _ms_since(render_started)
    answer["timings"]["request_ms"] = _ms_since(started)
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
    params = photo.params
    result = analyse(photo.data, CropOptions.from_ratios(params.ratios or settings.ratios))
    return Response(debug_view(photo.data, result), media_type="image/png")


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


def _preview_size(box: Any) -> tuple[int, int]:
    scale = min(1.0, PREVIEW_SIDE / max(box.w, box.h))
    return max(1, round(box.w * scale)), max(1, round(box.h * scale))


def _data_url(data: bytes, media_type: str) -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


def _ms_since(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 2)


handler = Mangum(app, lifespan="off")
