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
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from PIL import Image, ImageCms

from .decode import (
    BAND_BYTES,
    convert_region,
    decoded_bytes_per_pixel,
    decoder_bytes,
    has_alpha,
    icc_profile,
    load_frame,
    open_image,
    rgb_mode,
    turned_in_header,
    upright,
    upright_size,
    upright_to_stored,
)
from .errors import InvalidOptionsError
from .memory import DEFAULT_MEMORY_BUDGET, OutputCost, check_budget, render_peak, threads_within
from .options import DEFAULT_MAX_PIXELS
from .threads import default_threads
from .types import Box

#: Output formats by the names callers use.
OUTPUT_FORMATS = {"jpeg": "JPEG", "jpg": "JPEG", "png": "PNG", "webp": "WEBP"}
#: Media type of each output format (Pillow name).
MEDIA_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
#: Largest output side (WebP's limit is 16383; the others share it for one rule).
MAX_OUTPUT_SIDE = 16383
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


#: ICC profiles larger than this (bytes) are not copied into outputs: the pixels are turned
#: into sRGB through the profile (and the small sRGB profile embedded) where Pillow's
#: LittleCMS can, else the profile is dropped; `RenderedCrop.icc_profile` says which. Real
#: colour spaces fit well inside it (sRGB 3 KB, the ICC's sRGB v4 61 KB, Display P3 and
#: Adobe RGB under 1 KB); an 8 MB profile would make every 64x64 crop 8 MB.
MAX_ICC_BYTES = 64 * 1024
#: What happened to the photo's colour profile in an output (`RenderedCrop.icc_profile`).
ICC_OUTCOMES = ("kept", "converted_to_srgb", "dropped", "none")
#: Worst-case encoded bytes per pixel by format and quality ceiling, measured with Pillow 12 at
#: its defaults (JPEG 4:2:0) on the least compressible inputs found (uniform noise, noise of the
#: colour cube's corners, per pixel and in a checker; the corners beat uniform noise by up to
#: 25%), plus 25%: `encoded_bound` takes the entry of the smallest listed quality at or above
#: the request's. PNG stores every byte of its mode (noise does not deflate).
#: tests/engine/test_limits.py encodes those inputs against it.
WORST_BYTES_PER_PIXEL = {
    "JPEG": ((50, 0.71), (60, 0.79), (70, 0.90), (75, 0.96), (80, 1.06), (85, 1.19), (90, 1.39),
             (95, 1.78), (98, 2.31), (100, 2.88)),
    "WEBP": ((50, 0.85), (60, 0.89), (70, 0.94), (75, 0.96), (80, 1.05), (85, 1.13), (90, 1.24),
             (95, 1.40), (98, 1.54), (100, 1.60)),
}  # fmt: skip
#: WebP keeps alpha losslessly: at most a byte more per pixel (noise: 1.0), + 5%.
WEBP_ALPHA_BYTES_PER_PIXEL = 1.05
#: Container, header and tables of one encoded image (bytes), profile aside.
ENCODED_OVERHEAD = 4096


def output_mode(source_mode: str, alpha: bool, fmt: str) -> str:
    """The 8-bit mode an output of a `source_mode` photo (`alpha`: with transparency) is
    written in: `decode.rgb_mode`, with transparency flattened on white for JPEG and grey
    widened to RGB(A) for WebP."""
    mode = rgb_mode(source_mode, alpha)
    if fmt == "JPEG":
        return {"RGBA": "RGB", "LA": "L"}.get(mode, mode)
    if fmt == "WEBP":
        return {"L": "RGB", "LA": "RGBA"}.get(mode, mode)
    return mode


def encoded_bound(fmt: str, quality: int, pixels: float, mode: str, icc_bytes: int = 0) -> int:
    """The most bytes an image of `pixels` in `mode` can encode to as `fmt` at `quality`."""
    if fmt == "PNG":
        per_pixel = float(len(mode)) * 1.01
    else:
        table = WORST_BYTES_PER_PIXEL[fmt]
        per_pixel = next((bpp for q, bpp in table if q >= quality), table[-1][1])
        if fmt == "WEBP" and mode in ("RGBA", "LA"):
            per_pixel += WEBP_ALPHA_BYTES_PER_PIXEL
    return int(pixels * per_pixel) + ENCODED_OVERHEAD + icc_bytes


def _icc_space(icc: bytes | None) -> bytes | None:
    return icc[16:20] if icc and len(icc) >= 20 else None


@dataclass(frozen=True)
class ColourPlan:
    """How one output mode of a photo treats its ICC profile: a transform to sRGB applied to
    the pixels (or None), the profile embedded (or None), and the outcome's name."""

    transform: ImageCms.ImageCmsTransform | None
    icc: bytes | None
    outcome: str


def colour_plan(source_mode: str, icc: bytes | None, out_mode: str) -> ColourPlan:
    """What happens to the profile `icc` of a `source_mode` photo in an `out_mode` output.

    CMYK goes to sRGB through its embedded profile (sRGB is then embedded); a profile larger
    than MAX_ICC_BYTES is applied to the pixels (RGB and CMYK photos) or dropped; any other
    profile is kept where its colour space is the output's.
    """
    if not icc:
        return ColourPlan(None, None, "none")
    space = _icc_space(icc)
    convertible = (source_mode == "CMYK" and space == b"CMYK") or (
        source_mode == "RGB" and space == b"RGB " and len(icc) > MAX_ICC_BYTES
    )
    if convertible and out_mode == "RGB":
        try:
            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
            transform = ImageCms.buildTransform(src, srgb, source_mode, "RGB")
            return ColourPlan(transform, srgb.tobytes(), "converted_to_srgb")
        except (ImageCms.PyCMSError, OSError, ValueError):
            return ColourPlan(None, None, "dropped")
    if len(icc) <= MAX_ICC_BYTES and space == _ICC_SPACE.get(out_mode) and source_mode != "CMYK":
        return ColourPlan(None, icc, "kept")
    return ColourPlan(None, None, "dropped")


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
    # Save a view of the pixels with no metadata: Pillow's encoders fall back to the image's
    # own `info` for what is not passed (an ICC profile this rule dropped, a JPEG comment, XMP),
    # and crops, reductions and resizes copy `info` from the photo.
    bare = im._new(im.im)
    bare.info = {}
    try:
        fd = os.memfd_create("autocrop-crop", os.MFD_CLOEXEC)
    except (AttributeError, OSError):  # not Linux, or no memfd in this sandbox
        out = io.BytesIO()
        bare.save(out, fmt, **params)
        return out.getvalue()
    with os.fdopen(fd, "w+b") as f:
        bare.save(f, fmt, **params)
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
    #: What became of the photo's colour profile (one of ICC_OUTCOMES).
    icc_profile: str = "none"

    def describe(self) -> dict[str, object]:
        """The JSON form (without the bytes): size, media type, upscaled, the profile's fate."""
        return {"size": [self.width, self.height], "media_type": self.media_type, "upscaled": self.upscaled,
                "icc_profile": self.icc_profile}  # fmt: skip


def render_crops(
    data: bytes,
    requests: Sequence[RenderRequest],
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    threads: int | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
) -> list[RenderedCrop]:
    """Every requested crop of one photo from one decode, in request order.

    The decode is at the smallest JPEG DCT scale that still gives every request at least its
    output pixels (full resolution when any request has no size); each crop is cut from it,
    converted band by band, resampled and encoded. Before decoding, what the renders will
    hold is counted against `memory_budget` (`autocrop.memory`): over it even one at a time,
    the photo is refused (ImageTooLargeError). With `threads` > 1 (default:
    `threads.default_threads()`, fewer where the budget says so) the crops are cut, resampled
    and encoded in parallel; Pillow releases the GIL for those steps.
    """
    todo = [_checked(r) for r in requests]
    if not todo:
        return []
    im, header, fmt = _opened(data, todo, max_pixels)
    icc = icc_profile(im)
    peak = _peak(data, im, header, fmt, todo)
    check_budget(peak(1), memory_budget, _what(im, header, fmt, todo))
    orientation = load_frame(im)
    # TIFF and HEIC are upright after loading and report that size in their header.
    width, height = upright_size(*header, orientation)
    for r in todo:
        box = r.request.box
        if box.x < 0 or box.y < 0 or box.right > width or box.bottom > height:
            raise InvalidOptionsError(f"box {box.to_list()} is not inside the {width}x{height} photo")
    photo = _Decoded(im, header, orientation, width, height, icc)
    most = min(len(todo), threads if threads is not None else default_threads())
    workers = threads_within(memory_budget, most, peak) if threads is None else most
    if workers <= 1:
        return [_render_one(photo, r) for r in todo]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="autocrop-render") as pool:
        return list(pool.map(lambda r: _render_one(photo, r), todo))


def render_plan(data: bytes, requests: Sequence[RenderRequest], *, max_pixels: int = DEFAULT_MAX_PIXELS,
                memory_budget: int = DEFAULT_MEMORY_BUDGET) -> int:  # fmt: skip
    """The peak RSS (bytes) `render_crops` would reach for `requests` one at a time, from the
    header alone; ImageTooLargeError when it is over `memory_budget` (a job asks before its
    analysis, so a photo it cannot render costs no analysis)."""
    todo = [_checked(r) for r in requests]
    if not todo:
        return 0
    im, header, fmt = _opened(data, todo, max_pixels)
    needed = _peak(data, im, header, fmt, todo)(1)
    check_budget(needed, memory_budget, _what(im, header, fmt, todo))
    return needed


def _opened(data: bytes, todo: Sequence[_Checked], max_pixels: int) -> tuple[Image.Image, tuple[int, int], str]:
    """The photo opened (header only) at the smallest JPEG DCT scale every request allows
    (`Image.size` is then the size it will decode at), its full stored size, its format."""
    im = open_image(data, max_pixels)
    header = im.size
    fmt = "JPEG" if im.format == "MPO" else str(im.format)
    if fmt == "JPEG":
        factor = min(_reduction(r) for r in todo)
        if factor >= 2:
            im.draft(None, (math.ceil(header[0] / factor), math.ceil(header[1] / factor)))
    return im, header, fmt


@dataclass(frozen=True)
class Frame:
    """What a photo's header says, all that a render plan needs: its stored size, the size it
    decodes at (a JPEG's DCT scale), mode, format, transparency, ICC profile size and whether
    an EXIF orientation turns it (an upright copy)."""

    size: tuple[int, int]
    decode_size: tuple[int, int]
    mode: str
    fmt: str
    alpha: bool = False
    icc_bytes: int = 0
    turned: bool = False
    #: What the decoder holds beside the image while it decodes (`decode.decoder_bytes`).
    decoder_bytes: int = 0

    @classmethod
    def of(cls, im: Image.Image, header: tuple[int, int], fmt: str, data: bytes) -> Frame:
        """The frame of `im`, opened (header only) and maybe DCT-scaled from `data`, `header`
        its full size. Nothing is decoded."""
        icc = icc_profile(im) or b""
        return cls(header, im.size, im.mode, fmt, has_alpha(im), len(icc), turned_in_header(im, data),
                   decoder_bytes(im, fmt, header))  # fmt: skip

    @property
    def decoded_bytes(self) -> int:
        """The decoded frame's bytes in its own mode."""
        return self.decode_size[0] * self.decode_size[1] * decoded_bytes_per_pixel(self.mode)


def frame_peak(frame: Frame, data_bytes: int, requests: Sequence[RenderRequest]) -> Callable[[int], int]:
    """Peak RSS of rendering `requests` of `frame` by how many run at once (`autocrop.memory`)."""
    costs = [_cost(frame, _checked(r)) for r in requests]
    return lambda threads: render_peak(data_bytes, frame.decoded_bytes, frame.decoder_bytes, costs, threads)


def _peak(
    data: bytes, im: Image.Image, header: tuple[int, int], fmt: str, todo: Sequence[_Checked]
) -> Callable[[int], int]:
    """Peak RSS of rendering `todo` from `im` (opened by `_opened`) by how many run at once."""
    return frame_peak(Frame.of(im, header, fmt, data), len(data), [r.request for r in todo])


def _what(im: Image.Image, header: tuple[int, int], fmt: str, todo: Sequence[_Checked]) -> str:
    w, h = header
    return f"rendering {len(todo)} output(s) of this {w}x{h} {im.mode} {fmt}"


def output_bounds(frame: Frame, requests: Sequence[RenderRequest]) -> list[tuple[tuple[int, int], int]]:
    """Each request's output size and its worst-case encoded bytes, from the header alone."""
    bounds = []
    for request in requests:
        r = _checked(request)
        kx, ky = frame.decode_size[0] / frame.size[0], frame.decode_size[1] / frame.size[1]
        x0, y0, x1, y1 = r.region
        size = r.out_size or (max(1, round((x1 - x0) * kx)), max(1, round((y1 - y0) * ky)))
        bounds.append((size, _cost(frame, r).encoded))
    return bounds


def answer_bound(fmt: str, quality: int, size: tuple[int, int]) -> int:
    """The most bytes one output of `size` can encode to as `fmt` for any photo (transparency
    and the largest profile kept included): what a door with a byte limit checks first."""
    name = output_format(fmt)
    mode = "RGB" if name == "JPEG" else "RGBA"
    return encoded_bound(name, quality, size[0] * size[1], mode, MAX_ICC_BYTES)


def _cost(frame: Frame, r: _Checked) -> OutputCost:
    """What rendering `r` holds (`autocrop.memory.OutputCost`), from sizes alone (areas do not
    depend on orientation)."""
    kx, ky = frame.decode_size[0] / frame.size[0], frame.decode_size[1] / frame.size[1]
    x0, y0, x1, y1 = r.region
    w, h = (x1 - x0) * kx, (y1 - y0) * ky  # region at decode resolution
    mode = output_mode(frame.mode, frame.alpha, r.pil_fmt)
    bpp = decoded_bytes_per_pixel(mode)
    copies = 2 if frame.turned else 1  # a resized output's upright copy
    if r.out_size is None:  # turned band by band (`decode.convert_region`): one copy
        out_pixels = w * h
        working = out_pixels * bpp
    else:
        out_pixels = float(r.out_size[0] * r.out_size[1])
        factor = max(1, int(min(w / r.out_size[0], h / r.out_size[1]) // 2))
        working = (w / factor) * (h / factor) * bpp + out_pixels * bpp * copies
    kept = frame.icc_bytes if frame.icc_bytes <= MAX_ICC_BYTES else 0
    encoded = encoded_bound(r.pil_fmt, r.request.quality, out_pixels, mode, kept + 4096)
    return OutputCost(int(working) + 2 * BAND_BYTES, encoded)


def render_crop(
    data: bytes,
    box: Box,
    *,
    size: tuple[int, int] | None = None,
    fmt: str = "jpeg",
    quality: int = 85,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    no_upscale: bool = False,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
) -> bytes:
    """Cut `box` (upright full-resolution px) out of the photo, resize to `size`, encode `fmt`.

    One crop's bytes; `render_crops` gives several crops from one decode, with their sizes.
    """
    request = RenderRequest(box, size, fmt, quality, no_upscale)
    return render_crops(data, [request], max_pixels=max_pixels, threads=1, memory_budget=memory_budget)[0].data


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
    mode = output_mode(im.mode, has_alpha(im), r.pil_fmt)
    plan = colour_plan(im.mode, photo.icc, mode)
    if r.out_size is None:  # turned upright band by band: no second full-resolution copy
        cut = (round(x0), round(y0), round(x1), round(y1))
        crop = convert_region(im, mode, cut, transform=plan.transform, orientation=orientation)
    else:
        size = r.out_size
        stored_size = size if orientation in (1, 2, 3, 4) else (size[1], size[0])
        cut = (math.floor(x0), math.floor(y0), math.ceil(x1), math.ceil(y1))
        # Box-average by an integer factor that leaves at least 2x the output for LANCZOS;
        # reducing straight from the decode also spares a full-size copy of the crop.
        factor = int(min((x1 - x0) / stored_size[0], (y1 - y0) / stored_size[1]) // 2)
        crop = convert_region(im, mode, cut, factor, transform=plan.transform)
        k = cut[2] - cut[0], cut[3] - cut[1]
        sx, sy = crop.size[0] / k[0], crop.size[1] / k[1]
        sub = ((x0 - cut[0]) * sx, (y0 - cut[1]) * sy, (x1 - cut[0]) * sx, (y1 - cut[1]) * sy)
        crop = upright(crop.resize(stored_size, RESAMPLING[r.request.resample], box=sub, reducing_gap=3.0), orientation)
    body = encode(crop, r.pil_fmt, r.request.quality, plan.icc)
    flattened = r.pil_fmt == "JPEG" and has_alpha(im)
    return RenderedCrop(body, crop.size[0], crop.size[1], MEDIA_TYPES[r.pil_fmt], r.upscaled, flattened, plan.outcome)


__all__ = [
    "MEDIA_TYPES",
    "OUTPUT_FORMATS",
    "RESAMPLING",
    "RenderRequest",
    "RenderedCrop",
    "ICC_OUTCOMES",
    "MAX_ICC_BYTES",
    "ColourPlan",
    "Frame",
    "answer_bound",
    "frame_peak",
    "output_bounds",
    "colour_plan",
    "encode",
    "encoded_bound",
    "output_mode",
    "render_plan",
    "fit_within",
    "output_format",
    "render_crop",
    "render_crops",
    "trim_to_ratio",
]
