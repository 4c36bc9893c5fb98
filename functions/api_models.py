"""The API's request parameters, the two ways a photo arrives, and its JSON answers."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.datastructures import UploadFile

from functions.settings import Settings, get_settings

#: Form field names that may carry the photo in a multipart request.
IMAGE_FIELDS = ("image", "file")


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
    focal_point: list[float] = Field(
        description="[x, y]: the box's centre as fractions of the photo's width and height "
        "(imgproxy g:fp:x:y, Cloudinary g_xy_center, thumbor focal points)"
    )
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
