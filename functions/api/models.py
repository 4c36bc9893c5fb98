"""The API's request parameters, the two ways a photo arrives, and its JSON answers."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from autocrop.options import CropOptions
from autocrop.overrides import Overrides
from autocrop.scoring import TERM_MEANINGS
from functions.settings import Settings, get_settings

#: The multipart form field that carries the photo. One name only: it is the one the
#: OpenAPI schema and the demo page use, and a second spelling accepted without a word
#: would be one more contract to keep; a photo under another name is answered 422 with the
#: field names it came under and the one to use.
IMAGE_FIELD = "image"


class ApiError(Exception):
    """A request problem the API itself finds (no photo, body too large)."""

    def __init__(self, status: int, code: str, detail: str, **extra: Any):
        super().__init__(detail)
        self.status, self.code, self.detail, self.extra = status, code, detail, extra

    def response(self) -> JSONResponse:
        return JSONResponse({"error": self.code, "detail": self.detail, **self.extra}, status_code=self.status)


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
        None, description="Resize crops to 'WxH' pixels (default: full resolution, shrunk where "
        "needed to what one answer can carry). Sizes whose worst-case encoding could not fit one "
        "answer (6 MB, base64) are refused with 400 output_too_large before any work.",
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
    focal_point: str | None = Field(
        None, description="'x,y' in fractions (0..1) of the upright photo: every crop centres on it "
        "as far as the photo's bounds allow.", examples=["0.3,0.6"],
    )  # fmt: skip
    keep: str | None = Field(
        None, description="Regions every crop must contain where it can: 'x,y,w,h' in fractions of "
        "the upright photo, several separated by ';'.", examples=["0.1,0.2,0.3,0.4"],
    )  # fmt: skip

    @property
    def extras(self) -> set[str]:
        return {p.strip() for p in self.include.split(",") if p.strip()}

    def apply_hints(self, options: CropOptions) -> CropOptions:
        """`options` with this request's focal point and keep regions (InvalidOptionsError: 422)."""
        return Overrides.from_params(self.focal_point, self.keep).apply(options)


class PhotoRequest:
    """The photo's bytes and the merged query/form parameters of one request."""

    def __init__(self, data: bytes, params: CropParams):
        self.data, self.params = data, params


async def photo_request(request: Request, query: Annotated[CropParams, Query()]) -> PhotoRequest:
    """Read the photo from a multipart field or the raw body; form fields override the query."""
    content_type = request.headers.get("content-type", "")
    fields: dict[str, Any] = {}
    if content_type.startswith("multipart/form-data"):
        form = await request.form()
        image: UploadFile | None = None
        files = []
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                files.append(name)
                if name == IMAGE_FIELD and image is None:
                    image = value
            elif name == IMAGE_FIELD:
                raise ApiError(422, "missing_image", f"the form field '{IMAGE_FIELD}' holds text, not a file: "
                               f"attach the photo as a file (curl -F {IMAGE_FIELD}=@photo.jpg)")  # fmt: skip
            elif value != "":
                fields[name] = value
        if image is None:
            named = f" (its file fields: {', '.join(repr(n) for n in files)})" if files else ""
            raise ApiError(422, "missing_image", f"no photo in the form{named}: send it as the file field "
                           f"'{IMAGE_FIELD}' (curl -F {IMAGE_FIELD}=@photo.jpg)")  # fmt: skip
        data = await image.read()
        if not data:
            raise ApiError(415, "unsupported_image", f"the file in field '{IMAGE_FIELD}' ({image.filename!r}) is "
                           "empty (0 bytes): send a photo's contents")  # fmt: skip
    else:
        data = await request.body()
        if not data and content_type.startswith("image/"):
            raise ApiError(415, "unsupported_image", f"the request body is empty (0 bytes) although its "
                           f"Content-Type is {content_type}: send the photo's bytes (curl --data-binary @photo.jpg)")  # fmt: skip
        if not data:
            raise ApiError(422, "missing_image", f"no photo in the request: send it as the multipart file "
                           f"field '{IMAGE_FIELD}' (curl -F {IMAGE_FIELD}=@photo.jpg) or as the raw body "
                           "(curl --data-binary @photo.jpg -H 'content-type: image/jpeg')")  # fmt: skip
    try:
        params = CropParams.model_validate({**query.model_dump(exclude_unset=True), **fields})
    except ValidationError as e:
        raise RequestValidationError(e.errors()) from e
    return PhotoRequest(data, params)


def invalid_request(exc: RequestValidationError) -> JSONResponse:
    """A request FastAPI could not validate (a parameter out of range, an unknown one) in
    the API's one error shape: 422 `invalid_options`, a sentence per parameter at fault."""
    problems, names = [], []
    for err in exc.errors():
        loc = [str(part) for part in err.get("loc", ()) if part not in ("query", "body", "path")]
        name = ".".join(loc) or "request"
        names.append(name)
        if err.get("type") == "extra_forbidden" and len(loc) == 1:
            problems.append(f"unknown parameter '{name}': the known ones are {', '.join(CropParams.model_fields)}")
        else:
            given = f" (got {err['input']!r})" if isinstance(err.get("input"), (str, int, float)) else ""
            problems.append(f"{name}: {err.get('msg', 'invalid')}{given}")
    return JSONResponse({"error": "invalid_options", "detail": "; ".join(problems), "parameters": names},
                        status_code=422)  # fmt: skip


def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """Starlette's own errors (no such route, method or static file) in the same shape."""
    codes = {404: "not_found", 405: "method_not_allowed"}
    detail, headers = str(exc.detail), dict(exc.headers or {})
    if exc.status_code == 405:  # Starlette names the methods of the first route of the path only
        methods = {method for method in ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT")
                   if any(route.matches({**request.scope, "method": method})[0] == Match.FULL
                          for route in request.app.router.routes)}  # fmt: skip
        if methods:
            headers = {k: v for k, v in headers.items() if k.lower() != "allow"} | {"Allow": ", ".join(sorted(methods))}
    if detail in ("Not Found", "Method Not Allowed"):  # Starlette's bare phrases
        allow = {k.lower(): v for k, v in headers.items()}.get("allow")
        detail = (f"no {request.method} {request.url.path} here" + (f"; this path answers {allow}" if allow else "")
                  + ": the routes are listed at /docs")  # fmt: skip
    return JSONResponse({"error": codes.get(exc.status_code, "http_error"), "detail": detail},
                        status_code=exc.status_code, headers=headers or None)  # fmt: skip


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
                        **{name: {"type": "string"} for name in CropParams.model_fields},
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
    protected_cut: int = Field(
        description="protected faces the crop slices: 0 unless no crop of the ratio could keep or drop them all whole"
    )
    heads_cut: int = Field(
        description="protected faces kept or dropped whole whose guard (the face with "
        "the usual head around it, face_guard_*) the crop slices: where no crop of the ratio "
        "could keep every guard whole. The breakdown's head_margins_sliced charges the wider "
        "head margins, so it can be below 0 while this is 0"
    )
    all_protected_whole: bool


class CropOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    ratio: str
    box: list[int] = Field(description="[x, y, w, h] in upright full-resolution pixels")
    score: float
    breakdown: dict[str, float] = Field(
        description="Each term's weighted contribution; they add up to score. "
        + "; ".join(f"{name}: {meaning}" for name, meaning in TERM_MEANINGS.items())
    )
    saliency_kept: float
    faces_kept: int
    face_report: FaceReportOut
    chosen_by: str
    focal_point: list[float] = Field(
        description="[x, y]: the box's centre as fractions of the photo's width and height "
        "(imgproxy g:fp:x:y, Cloudinary g_xy_center, thumbor focal points)"
    )
    image: str | None = Field(None, description="Preview data URL (include=images)")
    size: list[int] | None = Field(None, description="[W, H] of the preview image (include=images)")
    media_type: str | None = Field(None, description="Media type of the preview (include=images)")
    upscaled: bool | None = Field(None, description="Whether the preview is larger than the part of the photo it shows")


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
