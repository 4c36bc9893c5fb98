"""Writing a crop: decode at full resolution (or the smallest JPEG scale the output allows),
crop, resize, encode JPEG, PNG or WebP, keeping the ICC colour profile.

The box is in upright pixels; the crop is cut from the stored pixels first and only the crop
is turned upright, so a rotated 24 MP photo is never copied whole. With a target size, the
box is trimmed (centred, sub-pixel) to the size's exact ratio and resampled in one step.
EXIF is not copied: its orientation no longer applies, and its GPS position should not leak.
"""

from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image, ImageCms

from .decode import load_frame, open_image, to_rgb, to_uint8, upright, upright_size, upright_to_stored
from .errors import InvalidOptionsError
from .options import DEFAULT_MAX_PIXELS
from .types import Box

#: Output formats by the names callers use.
OUTPUT_FORMATS = {"jpeg": "JPEG", "jpg": "JPEG", "png": "PNG", "webp": "WEBP"}
#: Largest output side (WebP's limit is 16383; the others share it for one rule).
MAX_OUTPUT_SIDE = 16383
#: ICC colour-space signatures (bytes 16..20 of a profile) that each output mode can carry.
_ICC_SPACE = {"RGB": b"RGB ", "RGBA": b"RGB ", "L": b"GRAY", "LA": b"GRAY"}


def output_format(fmt: str) -> str:
    """Pillow's name for an output format given as 'jpeg', 'jpg', 'png' or 'webp'."""
    name = OUTPUT_FORMATS.get(str(fmt).lower().lstrip("."))
    if name is None:
        raise InvalidOptionsError(f"output format must be one of {sorted(OUTPUT_FORMATS)}, got {fmt!r}")
    return name


def _check_request(box: Box, size: tuple[int, int] | None, quality: int) -> None:
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
    """Encode `im` as `fmt` (Pillow name) with `quality` (JPEG/WebP) and the ICC profile."""
    out = io.BytesIO()
    params: dict[str, object] = {}
    if icc:
        params["icc_profile"] = icc
    if fmt in ("JPEG", "WEBP"):
        params["quality"] = quality
    im.save(out, fmt, **params)
    return out.getvalue()


def render_crop(
    data: bytes,
    box: Box,
    *,
    size: tuple[int, int] | None = None,
    fmt: str = "jpeg",
    quality: int = 85,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> bytes:
    """Cut `box` (upright full-resolution px) out of the photo, resize to `size`, encode `fmt`."""
    pil_fmt = output_format(fmt)
    _check_request(box, size, quality)
    im = open_image(data, max_pixels)
    header = im.size
    icc = im.info.get("icc_profile") or None
    region = trim_to_ratio(box, size) if size is not None else (box.x, box.y, box.right, box.bottom)
    if size is not None and im.format in ("JPEG", "MPO"):
        # Decode at the smallest DCT scale that still gives the crop at least `size` pixels.
        factor = min((region[2] - region[0]) / size[0], (region[3] - region[1]) / size[1])
        if factor >= 2:
            im.draft(None, (math.ceil(header[0] / factor), math.ceil(header[1] / factor)))
    orientation = load_frame(im)
    width, height = upright_size(*header, orientation)
    if box.x < 0 or box.y < 0 or box.right > width or box.bottom > height:
        raise InvalidOptionsError(f"box {box.to_list()} is not inside the {width}x{height} photo")
    x0, y0, x1, y1 = upright_to_stored(region, orientation, width, height)
    kx, ky = im.size[0] / header[0], im.size[1] / header[1]
    x0, x1, y0, y1 = x0 * kx, x1 * kx, y0 * ky, y1 * ky
    if size is None:
        crop = im.crop((round(x0), round(y0), round(x1), round(y1)))
        del im  # the full-size decode is not needed past this point
        crop, out_icc = for_output(crop, pil_fmt, icc)
    else:
        stored_size = size if orientation in (1, 2, 3, 4) else (size[1], size[0])
        cut = (math.floor(x0), math.floor(y0), math.ceil(x1), math.ceil(y1))
        # Box-average by an integer factor that leaves at least 2x the output for LANCZOS;
        # reducing straight from the decode also spares a full-size copy of the crop.
        factor = int(min((x1 - x0) / stored_size[0], (y1 - y0) / stored_size[1]) // 2)
        crop = _reduced_cut(im, cut, factor)
        del im
        k = cut[2] - cut[0], cut[3] - cut[1]
        sx, sy = crop.size[0] / k[0], crop.size[1] / k[1]
        sub = ((x0 - cut[0]) * sx, (y0 - cut[1]) * sy, (x1 - cut[0]) * sx, (y1 - cut[1]) * sy)
        crop, out_icc = for_output(crop, pil_fmt, icc)
        crop = crop.resize(stored_size, Image.Resampling.LANCZOS, box=sub, reducing_gap=3.0)
    return encode(upright(crop, orientation), pil_fmt, quality, out_icc)


def _reduced_cut(im: Image.Image, cut: tuple[int, int, int, int], factor: int) -> Image.Image:
    """`cut` of `im`, box-averaged by `factor` when it is 2 or more and the mode allows."""
    if factor >= 2:
        try:
            return im.reduce(factor, box=cut)
        except ValueError:  # modes without a reducer (P, 1, I;16...)
            pass
    return im.crop(cut)


__all__ = ["OUTPUT_FORMATS", "encode", "for_output", "output_format", "render_crop", "trim_to_ratio"]
