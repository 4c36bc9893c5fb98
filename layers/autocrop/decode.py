"""Decoding: bytes -> an upright, reduced RGB analysis image, refusing decompression bombs.

Pillow reads every format (HEIC through pillow-heif, AVIF natively). The pixel guard and the
memory budget (`autocrop.memory`) run on the header, before any pixel is decoded. JPEGs are
decoded at a reduced DCT scale (Pillow's `draft`, the same libjpeg-turbo scaling as
`cv2.IMREAD_REDUCED_COLOR_*`); other formats are reduced and converted a band of rows at a time
(`convert_region`, which the renders share), so no stage holds an expanded copy of the photo.

EXIF orientation: TIFF (Pillow) and HEIC (libheif) hand back upright pixels already; for the
other formats the tag still set after loading is applied here.
"""

from __future__ import annotations

import io
import math
from functools import lru_cache
from typing import TYPE_CHECKING

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import ImageTooLargeError, UnsupportedImageError
from .memory import DEFAULT_MEMORY_BUDGET, analysis_peak, check_budget
from .options import DEFAULT_MAX_PIXELS
from .types import DecodedImage

if TYPE_CHECKING:  # imported where a colour profile is applied: most photos have none
    from PIL import ImageCms

#: Pillow format names the engine opens (JPEG includes camera MPO files, opened as "MPO").
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "TIFF", "BMP", "HEIF", "AVIF")
#: EXIF tag of the orientation.
ORIENTATION_TAG = 0x0112
#: Pillow transpose that makes a stored image upright, per EXIF orientation (as ImageOps).
UPRIGHT_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
#: Background that transparent pixels are composited on for analysis and JPEG output.
BACKGROUND_RGB = (255, 255, 255)
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
#: What Pillow and its plugins raise on damaged input; the AVIF plugin and pillow-heif raise
#: RuntimeError from libavif/libheif.
_DECODE_ERRORS = (
    UnidentifiedImageError,
    OSError,
    ValueError,
    SyntaxError,
    EOFError,
    TypeError,
    RuntimeError,
)


#: The Pillow plugin module of each accepted format (HEIF: pillow-heif, see register_plugins).
_PLUGIN_OF = {
    "JPEG": "JpegImagePlugin",
    "PNG": "PngImagePlugin",
    "WEBP": "WebPImagePlugin",
    "GIF": "GifImagePlugin",
    "TIFF": "TiffImagePlugin",
    "BMP": "BmpImagePlugin",
    "AVIF": "AvifImagePlugin",
}


def sniff_formats(data: bytes) -> tuple[str, ...]:
    """The accepted formats `data`'s first bytes can be (all of them when unrecognised).

    Only their plugins are loaded: `Image.init()` imports all of Pillow's ~40 plugins (80 ms
    of a cold start measured here), and `Image.open(formats=...)` calls it whenever a listed
    format is not yet registered; pillow-heif's import (30 ms) is paid only by HEIF/AVIF.
    """
    head = data[:16]
    if head.startswith(b"\xff\xd8\xff"):
        return ("JPEG",)
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return ("PNG",)
    if head.startswith((b"GIF87a", b"GIF89a")):
        return ("GIF",)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return ("WEBP",)
    if head.startswith((b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")):
        return ("TIFF",)
    if head.startswith(b"BM"):
        return ("BMP",)
    if head[4:8] == b"ftyp":  # ISO base media: HEIC/HEIF or AVIF
        return ("HEIF", "AVIF")
    return ACCEPTED_FORMATS


def _load_plugins(formats: tuple[str, ...]) -> None:
    import importlib

    if "HEIF" in formats:
        register_plugins()
    for name in formats:
        if name in _PLUGIN_OF and name not in Image.OPEN:
            importlib.import_module(f"PIL.{_PLUGIN_OF[name]}")
    # `Image.open` first imports Pillow's five common plugins (BMP, GIF, JPEG, PPM, PNG; 6-9 ms
    # on a process's first photo) whatever `formats` says, unless its `preinit` step is marked
    # done. Every format `formats` names was imported just above, so it is marked done: a
    # JPEG imports the JPEG plugin alone. Pillow stays whole: an open or save of a format not
    # registered yet still loads every plugin (`Image.init`). A private flag of the pinned
    # Pillow; tests/engine/test_decode.py checks both sides, so a Pillow that renames it fails.
    if getattr(Image, "_initialized", None) == 0:
        Image._initialized = 1


@lru_cache(maxsize=1)
def register_plugins() -> None:
    """Register every accepted format, the HEIF opener (pillow-heif) included, once per process."""
    import importlib

    import pillow_heif

    for module in _PLUGIN_OF.values():
        importlib.import_module(f"PIL.{module}")
    pillow_heif.register_heif_opener()


def open_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open (header only) an accepted image, enforcing the pixel guard before decoding."""
    if not data:
        raise UnsupportedImageError("empty input: no bytes to decode")
    formats = sniff_formats(data)
    _load_plugins(formats)
    try:
        im = Image.open(io.BytesIO(data), formats=formats)
    except Image.DecompressionBombError as e:
        raise ImageTooLargeError(f"image refused by the decompression-bomb guard: {e}") from e
    except UnidentifiedImageError as e:
        raise UnsupportedImageError(
            f"unknown or unsupported image format (accepted: {', '.join(ACCEPTED_FORMATS)})"
        ) from e
    except _DECODE_ERRORS as e:
        raise UnsupportedImageError(f"not a readable image ({type(e).__name__}: {e})") from e
    width, height = im.size
    if width <= 0 or height <= 0:
        raise UnsupportedImageError(f"image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"image is {width}x{height} = {width * height / 1e6:.1f} MP, over the {max_pixels / 1e6:.1f} MP limit"
        )
    return im


def decoded_bytes_per_pixel(mode: str) -> int:
    """Bytes Pillow stores a pixel of `mode` in: one for 1-bit, grey and palette, two for
    16-bit grey, four for every other mode (RGB and LA are padded to four bytes)."""
    if mode in ("1", "L", "P"):
        return 1
    if mode.startswith("I;16"):
        return 2
    return 4


#: Bytes per pixel a format's decoder holds beside Pillow's image while it decodes: libwebp's
#: animation decoder (Pillow's only WebP path) keeps two 4-byte canvases and hands back a
#: bytes copy of one; libheif decodes into a buffer of its own (up to 16-bit samples).
DECODER_BYTES_PER_PIXEL = {"WEBP": 12, "HEIF": 6, "AVIF": 6}
#: TIFF tags of the strip and tile layout (libtiff reads a whole strip or tile at once).
_TIFF_ROWS_PER_STRIP, _TIFF_BITS, _TIFF_SAMPLES, _TIFF_TILE_W, _TIFF_TILE_H = 278, 258, 277, 322, 323


def decoder_bytes(im: Image.Image, fmt: str, full_size: tuple[int, int] | None = None) -> int:
    """What decoding `im` (opened, header only) holds beside the decoded image, in bytes: a
    format's own buffers, a progressive JPEG's coefficients (at `full_size`, the size before
    any DCT scale), and a TIFF's largest strip or tile, which libtiff reads whole (a
    single-strip 16-bit TIFF holds its whole uncompressed photo twice over)."""
    pixels = im.size[0] * im.size[1]
    extra = pixels * DECODER_BYTES_PER_PIXEL.get(fmt, 0)
    if fmt == "JPEG" and (im.info.get("progressive") or im.info.get("progression")):
        # libjpeg holds a progressive JPEG's every DCT coefficient (2 bytes a sample, each
        # component at full resolution, MCU-padded) until its last scan, at any DCT scale.
        full = full_size or im.size
        padded = (math.ceil(full[0] / 16) * 16) * (math.ceil(full[1] / 16) * 16)
        extra += padded * 2 * len(im.getbands())
    if fmt == "TIFF":
        tags = getattr(im, "tag_v2", {})
        try:
            bits = tags.get(_TIFF_BITS, 8)
            bits = max(bits) if isinstance(bits, tuple) else int(bits)
            samples = int(tags.get(_TIFF_SAMPLES, 1))
            if _TIFF_TILE_W in tags and _TIFF_TILE_H in tags:
                block = int(tags[_TIFF_TILE_W]) * int(tags[_TIFF_TILE_H])
            else:
                block = im.size[0] * min(im.size[1], int(tags.get(_TIFF_ROWS_PER_STRIP, im.size[1])))
        except (TypeError, ValueError):  # a damaged tag: assume one strip of 16-bit RGBA
            bits, samples, block = 16, 4, pixels
        extra += block * samples * max(1, bits // 8)
    return extra


def icc_profile(im: Image.Image) -> bytes | None:
    """The photo's ICC profile, or None (absent, empty, or not bytes: a damaged TIFF tag)."""
    icc = im.info.get("icc_profile")
    return bytes(icc) if isinstance(icc, (bytes, bytearray)) and icc else None


def exif_orientation(im: Image.Image) -> int:
    """The EXIF orientation (1..8) still to apply to `im`'s pixels; 1 when absent or invalid."""
    try:
        value = int(im.getexif().get(ORIENTATION_TAG, 1))
    except _DECODE_ERRORS:
        return 1
    return value if value in range(1, 9) else 1


def turned_in_header(im: Image.Image, data: bytes) -> bool:
    """Whether an EXIF orientation may turn the photo, known without decoding its pixels.

    A JPEG's and WebP's EXIF is read with the header; a PNG's eXIf chunk may come after its
    pixels, where Pillow's `getexif` decodes the whole image to reach it, so any eXIf chunk
    counts as a turn (an upper bound for a memory plan)."""
    if im.format == "PNG":
        return b"eXIf" in data
    if im.format in ("JPEG", "MPO", "WEBP"):
        return exif_orientation(im) != 1
    return False  # TIFF and HEIF/AVIF load upright


def upright_in_header(im: Image.Image, data: bytes) -> tuple[int, int] | None:
    """The photo's upright size from its header alone, or None where only decoding tells (a
    PNG's eXIf chunk may follow its pixels). TIFF and HEIF/AVIF headers give the upright size
    already (their loaders turn the pixels); JPEG and WebP read their EXIF with the header."""
    if im.format == "PNG":  # no eXIf chunk: no orientation (and `getexif` would decode it)
        return None if b"eXIf" in data else im.size
    if im.format in ("JPEG", "MPO", "WEBP"):
        return upright_size(*im.size, exif_orientation(im))
    return im.size


def load_frame(im: Image.Image) -> int:
    """Decode the first frame's pixels; return the orientation left to apply to them."""
    try:
        im.seek(0)
        im.load()
    except Image.DecompressionBombError as e:
        raise ImageTooLargeError(f"image refused by the decompression-bomb guard: {e}") from e
    except _DECODE_ERRORS as e:
        raise UnsupportedImageError(f"corrupt or truncated image ({type(e).__name__}: {e})") from e
    return exif_orientation(im)


def upright(im: Image.Image, orientation: int) -> Image.Image:
    """Apply an EXIF orientation to loaded pixels."""
    method = UPRIGHT_TRANSPOSE.get(orientation)
    return im.transpose(method) if method is not None else im


def upright_size(width: int, height: int, orientation: int) -> tuple[int, int]:
    """Size after applying `orientation` to a `width` x `height` image."""
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def upright_to_stored(
    rect: tuple[float, float, float, float], orientation: int, width: int, height: int
) -> tuple[float, float, float, float]:
    """Map (x0, y0, x1, y1) in the upright `width` x `height` image to the stored pixels."""
    x0, y0, x1, y1 = rect
    corners = [(x0, y0), (x1, y1)]
    w, h = width, height
    mapping = {
        1: lambda x, y: (x, y),
        2: lambda x, y: (w - x, y),
        3: lambda x, y: (w - x, h - y),
        4: lambda x, y: (x, h - y),
        5: lambda x, y: (y, x),
        6: lambda x, y: (y, w - x),
        7: lambda x, y: (h - y, w - x),
        8: lambda x, y: (h - y, x),
    }[orientation]
    (ax, ay), (bx, by) = (mapping(x, y) for x, y in corners)
    return min(ax, bx), min(ay, by), max(ax, bx), max(ay, by)


def has_alpha(im: Image.Image) -> bool:
    """Whether `im` carries transparency (an alpha band, or a palette's transparent entry)."""
    return im.mode in _ALPHA_MODES or (im.mode == "P" and "transparency" in im.info)


def is_high_depth(mode: str) -> bool:
    """Whether `mode` holds 16-bit, 32-bit or float samples (shown as 8-bit L)."""
    return mode.startswith("I") or mode == "F"


def rgb_mode(mode: str, alpha: bool) -> str:
    """The 8-bit mode pixels of `mode` (with transparency: `alpha`) are shown in: RGBA or LA
    when transparent, L for 1-bit, grey and high-depth modes, else RGB (palette, CMYK...)."""
    if is_high_depth(mode) or mode in ("1", "L"):
        return "L"
    if mode in ("LA", "La"):
        return "LA"
    if alpha:
        return "RGBA"
    return "RGB"


def uint8_scale(im: Image.Image) -> tuple[str, float]:
    """How a high-depth image maps to 8-bit, decided once for the whole frame (so bands of it
    agree): ("shift", 0) for 16-bit (the high byte), else ("scale", factor) then clip."""
    if im.mode.startswith("I;16"):
        return "shift", 0.0
    lo_hi = im.getextrema()
    peak = float(lo_hi[1]) if isinstance(lo_hi, tuple) and not isinstance(lo_hi[0], tuple) else 0.0
    if im.mode == "F" and peak <= 1.0:
        return "scale", 255.0
    if im.mode != "F" and peak > 255:
        return "scale", 255.0 / 65535.0
    return "scale", 1.0


def to_uint8(values: np.ndarray, how: tuple[str, float] | None = None) -> np.ndarray:
    """A 16-bit, 32-bit or float single-channel array scaled to uint8 (`how`: `uint8_scale`'s
    answer for the frame it is a band of; None: decided from `values` alone)."""
    if how is None:
        if values.dtype.kind == "u" and values.dtype.itemsize == 2:
            how = ("shift", 0.0)
        else:
            peak = float(values.max(initial=0))
            if values.dtype.kind == "f" and peak <= 1.0:
                how = ("scale", 255.0)
            elif values.dtype.kind in "iu" and peak > 255:
                how = ("scale", 255.0 / 65535.0)
            else:
                how = ("scale", 1.0)
    if how[0] == "shift":
        # The high byte: exact for 8-bit values stored as v * 257, within 1 level otherwise,
        # and no float copy of a 16-bit image.
        return (values.astype(np.uint16, copy=False) >> 8).astype(np.uint8)
    arr = values.astype(np.float32)  # one float copy, then everything in place
    if how[1] != 1.0:
        arr *= how[1]
    np.clip(arr, 0, 255, out=arr)
    np.rint(arr, out=arr)
    return arr.astype(np.uint8)


#: Source bytes converted at once by `convert_region`: its peak is the result plus one band.
BAND_BYTES = 4_000_000


def convert_region(
    im: Image.Image,
    mode: str,
    box: tuple[int, int, int, int] | None = None,
    factor: int = 1,
    background: tuple[int, int, int] = BACKGROUND_RGB,
    transform: ImageCms.ImageCmsTransform | None = None,
    orientation: int = 1,
) -> Image.Image:
    """`box` of `im` (stored px; None: all of it) in 8-bit `mode` (RGB, RGBA, L or LA),
    box-reduced by `factor`, turned upright by the EXIF `orientation`, one band of rows at a
    time.

    A conversion that expands (1-bit or palette to RGBA, 16-bit or float to 8-bit, alpha
    flattened on `background`) or turns the region never holds a second copy of it: only the
    result and one band. Bands are whole multiples of `factor` rows, so the result equals
    reducing the whole region at once, and each band is turned and placed where the whole
    region's turn puts it. `transform`: an ICC transform to sRGB applied to each band.
    """
    box = box or (0, 0, *im.size)
    x0, y0, x1, y1 = box
    whole_reduce = factor < 2 or im.mode not in _PREMULTIPLIED
    if im.mode == mode and transform is None and whole_reduce and orientation == 1:  # one cut, reduced if asked
        if factor >= 2 and _reducible(im.mode):
            return im.reduce(factor, box=box)
        out = im if box == (0, 0, *im.size) else im.crop(box)
        return out.reduce(factor) if factor >= 2 and _reducible(out.mode) else out
    factor = max(1, factor)
    stored = (math.ceil((x1 - x0) / factor), math.ceil((y1 - y0) / factor))
    turn = UPRIGHT_TRANSPOSE.get(orientation)
    out = Image.new(mode, upright_size(*stored, orientation))
    how = uint8_scale(im) if is_high_depth(im.mode) else None
    row_bytes = max(1, (x1 - x0) * max(decoded_bytes_per_pixel(im.mode), decoded_bytes_per_pixel(mode)))
    rows = max(factor, BAND_BYTES // row_bytes // factor * factor)
    reduce_first = factor >= 2 and _reducible(im.mode)
    for top in range(y0, y1, rows):
        band_box = (x0, top, x1, min(y1, top + rows))
        if reduce_first and im.mode in _PREMULTIPLIED:  # see _PREMULTIPLIED: the band alone
            band = _to_mode(im.crop(band_box).reduce(factor), mode, background, how, transform)
        elif reduce_first:  # averaging first keeps what the whole-region reduce gave before
            band = _to_mode(im.reduce(factor, box=band_box), mode, background, how, transform)
        else:
            band = _to_mode(im.crop(band_box), mode, background, how, transform)
            if factor >= 2:
                band = band.reduce(factor)
        t = (top - y0) // factor  # the band's first row in the stored (reduced) region
        if turn is not None:
            band = band.transpose(turn)
        out.paste(band, _upright_offset(orientation, t, band.size, stored))
    return out


def _upright_offset(orientation: int, t: int, band: tuple[int, int], stored: tuple[int, int]) -> tuple[int, int]:
    """Where a band of rows starting at row `t` of a `stored` region lands once the region is
    turned by `orientation` (`band`: the band's size after its own turn)."""
    if orientation in (1, 2):  # rows stay rows, top to bottom
        return 0, t
    if orientation in (3, 4):  # rows stay rows, bottom to top
        return 0, stored[1] - t - band[1]
    if orientation in (5, 8):  # rows become columns, left to right
        return t, 0
    return stored[1] - t - band[0], 0  # 6, 7: rows become columns, right to left


#: Modes Pillow's `reduce` first converts whole to premultiplied alpha (La, RGBa), whatever
#: box it is given: a band is cut before it is reduced, or each band would copy the photo.
_PREMULTIPLIED = ("LA", "RGBA")


def _reducible(mode: str) -> bool:
    """Whether Pillow's `reduce` takes this mode (not 1-bit, palette or 16-bit)."""
    return mode not in ("1", "P") and not mode.startswith("I;16")


def _to_mode(
    band: Image.Image,
    mode: str,
    background: tuple[int, int, int],
    how: tuple[str, float] | None,
    transform: ImageCms.ImageCmsTransform | None,
) -> Image.Image:
    """One band in `mode`: high depth scaled to 8-bit, alpha flattened where `mode` has none,
    an ICC transform applied."""
    if is_high_depth(band.mode):
        band = Image.fromarray(to_uint8(np.asarray(band), how), "L")
    if transform is not None:
        from PIL import ImageCms

        band = ImageCms.applyTransform(band, transform) or band
    if band.mode == mode:
        return band
    if mode in ("RGB", "L") and has_alpha(band):
        rgba = band if band.mode in ("RGBA", "LA") else band.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, background)
        canvas.paste(rgba.convert("RGB") if rgba.mode == "LA" else rgba, mask=rgba.getchannel("A"))
        return canvas if mode == "RGB" else canvas.convert("L")
    if band.mode in ("PA", "RGBa", "La") and mode in ("RGB", "L"):
        band = band.convert("RGBA")
    return band.convert(mode)


def to_rgb(im: Image.Image, background: tuple[int, int, int] = BACKGROUND_RGB) -> Image.Image:
    """Any Pillow mode -> 8-bit RGB: high depth scaled down, alpha composited on `background`."""
    return convert_region(im, "RGB", background=background)


def _analysis_factor(im: Image.Image, long_side: int) -> int:
    """The integer box-reduction towards `long_side` applied before any mode conversion."""
    return max(1, max(im.size) // long_side)


def decode(
    data: bytes,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    analysis_long_side: int = 640,
    analysis_min_long_side: int | None = 480,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
) -> DecodedImage:
    """Decode `data` for analysis: upright RGB with its long side at most `analysis_long_side`.

    A JPEG is decoded at the smallest DCT scale (1/2, 1/4, 1/8) that keeps its long side at
    least `analysis_min_long_side` (None: `analysis_long_side`), then resized down: a
    12 MP photo decodes at 1/8 (504 px) when the minimum allows it, which is faster than
    decoding at 1/4 and shrinking.
    """
    min_side = analysis_long_side if analysis_min_long_side is None else min(analysis_min_long_side, analysis_long_side)
    im = open_image(data, max_pixels)
    fmt = "JPEG" if im.format == "MPO" else str(im.format)
    mode = im.mode
    icc = icc_profile(im)
    header_size = im.size
    if fmt == "JPEG" and max(header_size) > min_side:
        s = min_side / max(header_size)
        im.draft(None, (math.ceil(header_size[0] * s), math.ceil(header_size[1] * s)))
    decoded = im.size[0] * im.size[1] * decoded_bytes_per_pixel(im.mode)  # after the DCT scale
    check_budget(analysis_peak(len(data), decoded, decoder_bytes(im, fmt, header_size), BAND_BYTES), memory_budget,
                 f"decoding this {header_size[0]}x{header_size[1]} {mode} {fmt}")  # fmt: skip
    source_orientation = exif_orientation(im)  # after the budget: a PNG's EXIF may follow its pixels
    orientation = load_frame(im)
    # TIFF and HEIC are upright after loading and report that size in their header.
    width, height = upright_size(*header_size, orientation)
    factor = _analysis_factor(im, analysis_long_side)
    rgb = np.asarray(upright(convert_region(im, "RGB", factor=factor), orientation))
    h, w = rgb.shape[:2]
    scale = analysis_long_side / max(h, w)
    if scale < 1:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    return DecodedImage(
        rgb=np.ascontiguousarray(rgb),
        width=width,
        height=height,
        format=fmt,
        orientation=source_orientation,
        icc_profile=icc,
        mode=mode,
    )


__all__ = [
    "ACCEPTED_FORMATS",
    "decode",
    "decoder_bytes",
    "exif_orientation",
    "icc_profile",
    "turned_in_header",
    "upright_in_header",
    "has_alpha",
    "load_frame",
    "open_image",
    "to_rgb",
    "to_uint8",
    "upright",
    "upright_size",
    "upright_to_stored",
]
