"""Writing crops: one decode per photo for all its crops (full resolution, or the smallest JPEG
DCT scale that the largest output allows), then per crop: cut, resize, encode JPEG, PNG or
WebP, keeping the ICC colour profile. The CLI, the S3 function and the API all call
`render_crops`; `render_crop` is its one-crop form.

The box is in upright pixels; the crop is cut from the stored pixels first and only the crop
is turned upright, so a rotated 24 MP photo is never copied whole. With a target size, the
box is trimmed (centred, sub-pixel) to the size's exact ratio and resampled in one step.
EXIF is not copied: its orientation no longer applies, and its GPS position should not leak.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageCms

from .decode import decoded_bytes_per_pixel, has_alpha, load_frame, open_image, to_rgb, to_uint8, upright, upright_size, upright_to_stored
from .errors import InvalidOptionsError
from .options import DEFAULT_MAX_PIXELS
from .threads import default_threads
from .types import Box

#: Output formats by the names callers use.
OUTPUT_FORMATS = {"jpeg": "JPEG", "jpg": "JPEG", "png": "PNG", "webp": "WEBP"}
#: Media type of each output format (Pillow name).
MEDIA_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
#: Largest output side (WebP's limit is 16383; the others share it for one rule).
MAX_OUTPUT_SIDE = 16383
#: Pixel bytes (the decode plus the crops cut at once) above which `render_crops` encodes in
#: fewer threads than it has cores: measured peak RSS at 24 MP, four full-resolution crops,
#: 300 MB in one thread and 363 MB in two (issue 12's bound: 350 MB), so a 24 MP photo's
#: full-resolution crops (72 MB decode + 2 x 48 MB) go one at a time and a 12 MP photo's
#: (36 + 2 x 27 MB) two at a time.
RENDER_BUFFER_BUDGET = 150_000_000
#: Resampling filters a request may name. LANCZOS for what people see; BILINEAR (antialiased,
#: as Pillow's filters all are) for an intermediate that is always resampled again, such as
#: the master (`autocrop.master`), where it is 2.4x faster for the same final pixels.
RESAMPLING = {"lanczos": Image.Resampling.LANCZOS, "bilinear": Image.Resampling.BILINEAR}
#: ICC colour-space signatures (bytes 16..20 of a profile) that each output mode can carry.
_ICC_SPACE = {"RGB": b"RGB ", "RGBA": b"RGB ", "L": b"GRAY", "LA": b"GRAY"}


def output_format(fmt: str) -> str:
    """Pillow's name for an output format given as 'jpeg', 'jpg', 'png' or 'webp'."""
    name = OUTPUT_FORMATS.get(str(fmt).lower().lstrip("."))
    if name is None:
        raise InvalidOptionsError(f"output format must be one of {sorted(OUTPUT_FORMATS)}, got {fmt!r}")
    return name


def _check_request(box: Box, size: tuple[int, int] | None, quality: int, resample: str) -> None:
    if resample not in RESAMPLING:
        raise InvalidOptionsError(f"resample must be one of {sorted(RESAMPLING)}, got {resample!r}")
    if box.w <= 0 or box.h <= 0:
        raise InvalidOptionsError(f"box must have a positive size, got {box}")
    if not isinstance(quality, int) or not 1 <= quality <= 100:
        raise InvalidOptionsError(f"quality must be an integer in 1..100, got {quality!r}")
    if size is not None:
        w, h = size
        if not (isinstance(w, int) and isinstance(h, int)) or w <= 0 or h <= 0:
            raise InvalidOptionsError(f"size must be two positive integers, got {size!r}")
        if max(w, h) > MAX_OUTPUT_SIDE:
            raise InvalidOptionsError(f"size sides must be at most {MAX_OUTPUT_SIDE}, got {size!r}")
    elif max(box.w, box.h) > MAX_OUTPUT_SIDE:
        raise InvalidOptionsError(f"crop sides must be at most {MAX_OUTPUT_SIDE}; pass a size")


def trim_to_ratio(box: Box, size: tuple[int, int]) -> tuple[float, float, float, float]:
    """The centred sub-box (x0, y0, x1, y1, float px) of `box` with exactly `size`'s ratio."""
    target = size[0] / size[1]
    w, h = float(box.w), float(box.h)
    if w / h > target:
        w = h * target
    else:
        h = w / target
    x0 = box.x + (box.w - w) / 2
    y0 = box.y + (box.h - h) / 2
    return x0, y0, x0 + w, y0 + h


def fit_within(box: Box, side: int) -> tuple[int, int]:
    """The box's size scaled down (never up) so its long side is at most `side`."""
    scale = min(1.0, side / max(box.w, box.h))
    return max(1, round(box.w * scale)), max(1, round(box.h * scale))


def _icc_space(icc: bytes | None) -> bytes | None:
    return icc[16:20] if icc and len(icc) >= 20 else None


def for_output(im: Image.Image, fmt: str, icc: bytes | None) -> tuple[Image.Image, bytes | None]:
    """Convert to a mode `fmt` can store; return the image and the ICC profile that still fits it.

    CMYK goes to sRGB through its embedded profile (sRGB is then embedded); 16-bit goes to
    8-bit; transparency survives in PNG and WebP and is flattened on white for JPEG.
    """
    mode = im.mode
    if mode == "CMYK":
        if _icc_space(icc) == b"CMYK":
            try:
                src = ImageCms.ImageCmsProfile(io.BytesIO(icc or b""))
                srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
                converted = ImageCms.profileToProfile(im, src, srgb, outputMode="RGB")
                if converted is not None:
                    return converted, srgb.tobytes()
            except (ImageCms.PyCMSError, OSError):
                pass
        return im.convert("RGB"), None
    if mode.startswith("I") or mode == "F":
        im = Image.fromarray(to_uint8(np.asarray(im)), "L")
        mode = "L"
    elif mode in ("1",):
        im, mode = im.convert("L"), "L"
    elif mode == "P":
        mode = "RGBA" if "transparency" in im.info else "RGB"
        im = im.convert(mode)
    elif mode in ("PA", "RGBa"):
        im, mode = im.convert("RGBA"), "RGBA"
    elif mode == "La":
        im, mode = im.convert("LA"), "LA"
    elif mode not in ("L", "LA", "RGB", "RGBA"):
        im, mode = im.convert("RGB"), "RGB"
    if fmt == "JPEG" and mode in ("RGBA", "LA"):
        im = to_rgb(im)
        if mode == "LA":
            im = im.convert("L")
        mode = im.mode
    elif fmt == "WEBP" and mode in ("L", "LA"):
        im = im.convert("RGBA" if mode == "LA" else "RGB")
        mode = im.mode
    keep_icc = icc if _icc_space(icc) == _ICC_SPACE.get(mode) else None
    return im, keep_icc


def encode(im: Image.Image, fmt: str, quality: int, icc: bytes | None) -> bytes:
    """Encode `im` as `fmt` (Pillow name) with `quality` (JPEG/WebP) and the ICC profile.

    Pillow holds the GIL while it encodes into a BytesIO but releases it while it encodes into
    a real file (its encode-to-file path), so the bytes go through an anonymous in-memory file
    (memfd) where the OS has one: crops then encode in parallel threads (measured: 4 crops of
    a 12 MP photo, 1.7x faster on two cores). BytesIO is the fallback elsewhere.
    """
    params: dict[str, object] = {}
    if icc:
        params["icc_profile"] = icc
    if fmt in ("JPEG", "WEBP"):
        params["quality"] = quality
    try:
        fd = os.memfd_create("autocrop-crop", os.MFD_CLOEXEC)
    except (AttributeError, OSError):  # not Linux, or no memfd in this sandbox
        out = io.BytesIO()
        im.save(out, fmt, **params)
        return out.getvalue()
    with os.fdopen(fd, "w+b") as f:
        im.save(f, fmt, **params)
        f.seek(0)
        return f.read()


@dataclass(frozen=True)
class RenderRequest:
    """One output wanted from a photo: its box (upright full-resolution px), the exact size to
    resample to (None: the box at full resolution), format, quality, whether a size larger
    than the box may enlarge it (`no_upscale=False`, sharp's default) or not (sharp's
    withoutEnlargement: the output then keeps the size's ratio at the box's own resolution),
    and the resampling filter (a RESAMPLING name)."""

    box: Box
    size: tuple[int, int] | None = None
    fmt: str = "jpeg"
    quality: int = 85
    no_upscale: bool = False
    resample: str = "lanczos"


@dataclass(frozen=True)
class RenderedCrop:
    """An encoded crop: its bytes, pixel size, media type, whether it was enlarged (some side
    of the output is larger than the part of the photo it shows) and whether the photo's
    transparency was flattened on white to fit the format (JPEG)."""

    data: bytes
    width: int
    height: int
    media_type: str
    upscaled: bool
    flattened: bool = False

    def describe(self) -> dict[str, object]:
        """The JSON form (without the bytes): size, media type, upscaled."""
        return {"size": [self.width, self.height], "media_type": self.media_type, "upscaled": self.upscaled}


def render_crops(
    data: bytes,
    requests: Sequence[RenderRequest],
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    threads: int | None = None,
) -> list[RenderedCrop]:
    """Every requested crop of one photo from one decode, in request order.

    The decode is at the smallest JPEG DCT scale that still gives every request at least its
    output pixels (full resolution when any request has no size); each crop is cut from it,
    resampled and encoded. With `threads` > 1 (default: `threads.default_threads()`, fewer
    where the memory budget says so; see RENDER_BUFFER_BUDGET) the
    crops are cut, resampled and encoded in parallel; Pillow releases the GIL for those steps.
    """
    todo = [_checked(r) for r in requests]
    if not todo:
        return []
    im = open_image(data, max_pixels)
    header = im.size
    icc = im.info.get("icc_profile") or None
    if im.format in ("JPEG", "MPO"):
        factor = min(_reduction(r) for r in todo)
        if factor >= 2:
            im.draft(None, (math.ceil(header[0] / factor), math.ceil(header[1] / factor)))
    orientation = load_frame(im)
    width, height = upright_size(*header, orientation)
    for r in todo:
        box = r.request.box
        if box.x < 0 or box.y < 0 or box.right > width or box.bottom > height:
            raise InvalidOptionsError(f"box {box.to_list()} is not inside the {width}x{height} photo")
    photo = _Decoded(im, header, orientation, width, height, icc)
    workers = min(len(todo), threads if threads is not None else _auto_threads(photo, todo))
    if workers <= 1:
        return [_render_one(photo, r) for r in todo]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="autocrop-render") as pool:
        return list(pool.map(lambda r: _render_one(photo, r), todo))


def _auto_threads(photo: _Decoded, todo: Sequence[_Checked]) -> int:
    """The cores, fewer where parallel crops would hold more than RENDER_BUFFER_BUDGET bytes
    of pixels beside the decode (each thread holds one cut crop while it encodes)."""
    threads = default_threads()
    bpp = decoded_bytes_per_pixel(photo.im.mode)
    kx, ky = photo.im.size[0] / photo.header[0], photo.im.size[1] / photo.header[1]
    cuts = sorted(((r.region[2] - r.region[0]) * kx * (r.region[3] - r.region[1]) * ky * bpp for r in todo), reverse=True)
    decoded = photo.im.size[0] * photo.im.size[1] * bpp
    while threads > 1 and decoded + sum(cuts[:threads]) > RENDER_BUFFER_BUDGET:
        threads -= 1
    return threads


def render_crop(
    data: bytes,
    box: Box,
    *,
    size: tuple[int, int] | None = None,
    fmt: str = "jpeg",
    quality: int = 85,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    no_upscale: bool = False,
) -> bytes:
    """Cut `box` (upright full-resolution px) out of the photo, resize to `size`, encode `fmt`.

    One crop's bytes; `render_crops` gives several crops from one decode, with their sizes.
    """
    request = RenderRequest(box, size, fmt, quality, no_upscale)
    return render_crops(data, [request], max_pixels=max_pixels, threads=1)[0].data


@dataclass(frozen=True)
class _Checked:
    request: RenderRequest
    pil_fmt: str
    region: tuple[float, float, float, float]  # upright full-resolution px, trimmed to size's ratio
    out_size: tuple[int, int] | None  # upright output px; None: the region at decode resolution
    upscaled: bool


@dataclass(frozen=True)
class _Decoded:
    im: Image.Image  # stored orientation, maybe DCT-reduced
    header: tuple[int, int]  # stored full-resolution size
    orientation: int
    width: int  # upright full-resolution size
    height: int
    icc: bytes | None


def _checked(request: RenderRequest) -> _Checked:
    """Validate a request and work out its region and output size."""
    pil_fmt = output_format(request.fmt)
    box, size = request.box, request.size
    _check_request(box, size, request.quality, request.resample)
    if size is None:
        return _Checked(request, pil_fmt, (box.x, box.y, box.right, box.bottom), None, False)
    region = trim_to_ratio(box, size)
    k = min((region[2] - region[0]) / size[0], (region[3] - region[1]) / size[1])
    if k < 1 and request.no_upscale:  # the size's ratio, at the box's own resolution
        size = (max(1, math.floor(size[0] * k + 1e-6)), max(1, math.floor(size[1] * k + 1e-6)))
        return _Checked(request, pil_fmt, region, size, False)
    return _Checked(request, pil_fmt, region, size, k < 1 - 1e-9)


def _reduction(r: _Checked) -> float:
    """How much smaller than full resolution the decode may be for this request."""
    if r.out_size is None:
        return 1.0
    x0, y0, x1, y1 = r.region
    return min((x1 - x0) / r.out_size[0], (y1 - y0) / r.out_size[1])


def _render_one(photo: _Decoded, r: _Checked) -> RenderedCrop:
    """Cut, resample and encode one request from the shared decode (read-only: thread-safe)."""
    im, header, orientation = photo.im, photo.header, photo.orientation
    x0, y0, x1, y1 = upright_to_stored(r.region, orientation, photo.width, photo.height)
    kx, ky = im.size[0] / header[0], im.size[1] / header[1]
    x0, x1, y0, y1 = x0 * kx, x1 * kx, y0 * ky, y1 * ky
    if r.out_size is None:
        crop = im.crop((round(x0), round(y0), round(x1), round(y1)))
        crop, out_icc = for_output(crop, r.pil_fmt, photo.icc)
    else:
        size = r.out_size
        stored_size = size if orientation in (1, 2, 3, 4) else (size[1], size[0])
        cut = (math.floor(x0), math.floor(y0), math.ceil(x1), math.ceil(y1))
        # Box-average by an integer factor that leaves at least 2x the output for LANCZOS;
        # reducing straight from the decode also spares a full-size copy of the crop.
        factor = int(min((x1 - x0) / stored_size[0], (y1 - y0) / stored_size[1]) // 2)
        crop = _reduced_cut(im, cut, factor)
        k = cut[2] - cut[0], cut[3] - cut[1]
        sx, sy = crop.size[0] / k[0], crop.size[1] / k[1]
        sub = ((x0 - cut[0]) * sx, (y0 - cut[1]) * sy, (x1 - cut[0]) * sx, (y1 - cut[1]) * sy)
        crop, out_icc = for_output(crop, r.pil_fmt, photo.icc)
        crop = crop.resize(stored_size, RESAMPLING[r.request.resample], box=sub, reducing_gap=3.0)
    crop = upright(crop, orientation)
    body = encode(crop, r.pil_fmt, r.request.quality, out_icc)
    flattened = r.pil_fmt == "JPEG" and has_alpha(im)
    return RenderedCrop(body, crop.size[0], crop.size[1], MEDIA_TYPES[r.pil_fmt], r.upscaled, flattened)


def _reduced_cut(im: Image.Image, cut: tuple[int, int, int, int], factor: int) -> Image.Image:
    """`cut` of `im`, box-averaged by `factor` when it is 2 or more and the mode allows."""
    if factor >= 2:
        try:
            return im.reduce(factor, box=cut)
        except ValueError:  # modes without a reducer (P, 1, I;16...)
            pass
    if cut == (0, 0, *im.size):  # the whole frame (the master): resampled from the decode, no copy
        return im
    return im.crop(cut)


__all__ = [
    "MEDIA_TYPES",
    "OUTPUT_FORMATS",
    "RESAMPLING",
    "RenderRequest",
    "RenderedCrop",
    "encode",
    "fit_within",
    "for_output",
    "output_format",
    "render_crop",
    "render_crops",
    "trim_to_ratio",
]
