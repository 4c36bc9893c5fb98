"""The bad-input corpus: every awkward upload we can think of, generated (nothing checked in).

Each `Case` is the bytes of one upload, the file name a user would give it, and the outcome
every door must produce: a crop (`expect="crop"`) or a clear refusal with a stable code
(`expect="unsupported_image"` -> 415, `"image_too_large"` -> 413). Building the whole
corpus takes well under a second; the bombs are small files that *declare* huge images.

    from tests.corpus import corpus, write_corpus
    for case in corpus(): ...
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

#: What each refusal is called at every door (S3 error record code, API error code).
REFUSALS = ("unsupported_image", "image_too_large")
#: EXIF orientation tag.
ORIENTATION = 0x0112
#: How to store an upright picture so that EXIF orientation N turns it upright again.
STORE_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


@dataclass(frozen=True)
class Case:
    """One upload of the corpus and what must come of it."""

    name: str  # the file name / S3 key a user would give it (extension as sent, maybe a lie)
    data: bytes
    expect: str  # "crop", or the refusal code: "unsupported_image" | "image_too_large"
    content_type: str = "application/octet-stream"
    #: Upright size of a photo that must be cropped (None for refusals).
    size: tuple[int, int] | None = None

    @property
    def refused(self) -> bool:
        return self.expect != "crop"

    @property
    def http_status(self) -> int:
        """The API's answer: 200 for a crop, 415/413 for the refusals."""
        return {"crop": 200, "unsupported_image": 415, "image_too_large": 413}[self.expect]


# --- pictures ----------------------------------------------------------------------------------


def picture(width: int = 160, height: int = 120) -> np.ndarray:
    """A small photo-like picture with an obvious subject: a bright disc off-centre on a ramp."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.empty((height, width, 3), np.float32)
    img[..., 0] = 40 + 80 * xx / max(1, width - 1)
    img[..., 1] = 60 + 60 * yy / max(1, height - 1)
    img[..., 2] = 90
    cx, cy, r = width * 0.65, height * 0.4, max(2.0, min(width, height) * 0.18)
    disc = (xx - cx) ** 2 + (yy - cy) ** 2 < r * r
    img[disc] = (250, 220, 40)
    return img.astype(np.uint8)


def encode(im: Image.Image, fmt: str, **params: object) -> bytes:
    out = io.BytesIO()
    im.save(out, fmt, **params)
    return out.getvalue()


def jpeg(width: int = 160, height: int = 120, **params: object) -> bytes:
    return encode(Image.fromarray(picture(width, height)), "JPEG", quality=90, **params)


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_bomb(width: int = 30_000, height: int = 30_000) -> bytes:
    """A 1-bit PNG declaring width x height, every row zero: ~110 KB for 900 MP.

    Decoded naively it is 900 MB (one byte per pixel in Pillow's mode "1"), far more as RGB.
    """
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed bits
    packer = zlib.compressobj(9)
    body = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit greyscale
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", body)
        + png_chunk(b"IEND", b"")
    )


def jpeg_declaring(width: int, height: int) -> bytes:
    """A real JPEG whose frame header (SOF0) is rewritten to declare width x height.

    The scan data is that of a 16x16 picture, so a decoder that trusts the header allocates
    width x height x 3 bytes before it finds the data short.
    """
    data = bytearray(jpeg(16, 16))
    sof = data.find(b"\xff\xc0")
    assert sof > 0
    struct.pack_into(">HH", data, sof + 5, height, width)  # FFC0, length(2), precision(1), H, W
    return bytes(data)


def exif_jpeg(orientation: int, width: int = 160, height: int = 120) -> bytes:
    """An upright width x height picture stored so EXIF `orientation` turns it upright."""
    im = Image.fromarray(picture(width, height))
    if orientation != 1:
        im = im.transpose(STORE_TRANSPOSE[orientation])
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    return encode(im, "JPEG", quality=90, exif=exif.tobytes())


def with_app1(data: bytes, payload: bytes) -> bytes:
    """A JPEG with an APP1 segment (where EXIF lives) holding `payload`, right after SOI."""
    segment = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    return data[:2] + segment + data[2:]


def broken_exif_cases() -> list[Case]:
    base = jpeg()
    good = Image.Exif()
    good[ORIENTATION] = 6
    tiff = good.tobytes()  # b"Exif\x00\x00" + TIFF header + IFD
    return [
        # EXIF header then garbage instead of a TIFF structure
        Case("exif_garbage.jpg", with_app1(base, b"Exif\x00\x00" + bytes(range(256)) * 2), "crop",
             "image/jpeg", (160, 120)),  # fmt: skip
        # a TIFF header whose first IFD offset points far past the end
        Case("exif_bad_offset.jpg", with_app1(base, b"Exif\x00\x00MM\x00\x2a\x7f\xff\xff\xff"),
             "crop", "image/jpeg", (160, 120)),  # fmt: skip
        # a real EXIF block cut in the middle
        Case("exif_truncated.jpg", with_app1(base, tiff[: len(tiff) // 2]), "crop", "image/jpeg",
             (160, 120)),  # fmt: skip
        # orientation values outside 1..8 are ignored (photo taken as stored)
        Case("exif_orientation_0.jpg", _orientation_value(0), "crop", "image/jpeg", (160, 120)),
        Case("exif_orientation_99.jpg", _orientation_value(99), "crop", "image/jpeg", (160, 120)),
    ]


def _orientation_value(value: int) -> bytes:
    exif = Image.Exif()
    exif[ORIENTATION] = value
    return encode(Image.fromarray(picture()), "JPEG", quality=90, exif=exif.tobytes())


def damaged(fmt: str, flip_at: int) -> bytes:
    """A small HEIC/AVIF with one byte of its container inverted (libheif/libavif refuse it)."""
    from autocrop.decode import register_plugins

    register_plugins()  # the HEIF writer comes with the engine's HEIF opener
    data = bytearray(encode(Image.fromarray(picture(24, 18)), fmt, quality=80))
    data[flip_at] ^= 0xFF
    return bytes(data)


def animated(fmt: str, frames: int = 4, width: int = 96, height: int = 64) -> bytes:
    base = picture(width, height)
    ims = [Image.fromarray(np.roll(base, 12 * i, axis=1)) for i in range(frames)]
    if fmt == "GIF":
        ims = [im.convert("P", palette=Image.Palette.ADAPTIVE) for im in ims]
    return encode(ims[0], fmt, save_all=True, append_images=ims[1:], duration=80, loop=0)


# --- the corpus --------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def corpus() -> tuple[Case, ...]:
    """Every case, in a fixed order (names are unique and safe as file names and S3 keys)."""
    rgb = picture()
    photo = Image.fromarray(rgb)
    good_jpeg = jpeg()
    rng = np.random.default_rng(20240601)
    grey16 = (picture()[..., 0].astype(np.uint16) * 257).astype(np.uint16)
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    rgba[:, :40, 3] = 0  # a transparent band
    palette = photo.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    palette.info["transparency"] = 0

    cases = [
        # --- not images at all: 415 / unsupported_image
        Case("empty.jpg", b"", "unsupported_image", "image/jpeg"),
        Case("truncated.jpg", good_jpeg[: len(good_jpeg) // 2], "unsupported_image", "image/jpeg"),
        Case("header_only.jpg", good_jpeg[:200], "unsupported_image", "image/jpeg"),
        Case("random.jpg", rng.integers(0, 256, 4096, dtype=np.uint8).tobytes(),
             "unsupported_image", "image/jpeg"),  # fmt: skip
        Case("page.jpg", b"<!doctype html><html><body><img src=x onerror=alert(1)></body></html>",
             "unsupported_image", "image/jpeg"),  # fmt: skip
        Case("drawing.jpg", b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" '
             b'width="4000" height="3000"><rect width="100%" height="100%" fill="red"/></svg>',
             "unsupported_image", "image/jpeg"),  # fmt: skip
        Case("png_signature_only.png", b"\x89PNG\r\n\x1a\n", "unsupported_image", "image/png"),
        Case("damaged.avif", damaged("AVIF", 81), "unsupported_image", "image/avif"),
        Case("damaged.heic", damaged("HEIF", 320), "unsupported_image", "image/heic"),
        # --- bombs: declared sizes far beyond the pixel guard: 413 / image_too_large
        Case("bomb_30000x30000.png", png_bomb(), "image_too_large", "image/png"),
        Case("huge_header_65000x65000.jpg", jpeg_declaring(65_000, 65_000), "image_too_large",
             "image/jpeg"),  # fmt: skip
        Case("huge_header_60000x2000.jpg", jpeg_declaring(60_000, 2_000), "image_too_large",
             "image/jpeg"),  # fmt: skip
        # --- odd but real pictures: cropped
        Case("cmyk.jpg", encode(photo.convert("CMYK"), "JPEG", quality=90), "crop", "image/jpeg",
             (160, 120)),  # fmt: skip
        Case("grey16.png", encode(Image.fromarray(grey16), "PNG"), "crop", "image/png", (160, 120)),
        Case("grey.png", encode(photo.convert("L"), "PNG"), "crop", "image/png", (160, 120)),
        Case("grey.jpg", encode(photo.convert("L"), "JPEG"), "crop", "image/jpeg", (160, 120)),
        Case("rgba.png", encode(Image.fromarray(rgba, "RGBA"), "PNG"), "crop", "image/png",
             (160, 120)),  # fmt: skip
        Case("palette.png", encode(palette, "PNG"), "crop", "image/png", (160, 120)),
        Case("one_bit.png", encode(photo.convert("1"), "PNG"), "crop", "image/png", (160, 120)),
        Case("animated.gif", animated("GIF"), "crop", "image/gif", (96, 64)),
        Case("animated.webp", animated("WEBP"), "crop", "image/webp", (96, 64)),
        Case("one_pixel.png", encode(Image.new("RGB", (1, 1), (200, 10, 10)), "PNG"), "crop",
             "image/png", (1, 1)),  # fmt: skip
        Case("one_pixel.jpg", encode(Image.new("RGB", (1, 1), (200, 10, 10)), "JPEG"), "crop",
             "image/jpeg", (1, 1)),  # fmt: skip
        Case("strip_20000x10.png", encode(Image.fromarray(picture(20_000, 10)), "PNG"), "crop",
             "image/png", (20_000, 10)),  # fmt: skip
        Case("strip_10x20000.png", encode(Image.fromarray(picture(10, 20_000)), "PNG"), "crop",
             "image/png", (10, 20_000)),  # fmt: skip
        Case("wrong_extension.gif", good_jpeg, "crop", "image/gif", (160, 120)),
        *[
            Case(f"exif_orientation_{o}.jpg", exif_jpeg(o), "crop", "image/jpeg", (160, 120))
            for o in range(1, 9)
        ],
        *broken_exif_cases(),
    ]
    names = [c.name for c in cases]
    assert len(names) == len(set(names)), "corpus names must be unique"
    return tuple(cases)


def by_name(name: str) -> Case:
    return next(c for c in corpus() if c.name == name)


def write_corpus(folder: Path) -> list[Path]:
    """Write every case into `folder` under its name; returns the paths in corpus order."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for case in corpus():
        path = folder / case.name
        path.write_bytes(case.data)
        paths.append(path)
    return paths


__all__ = ["REFUSALS", "Case", "by_name", "corpus", "picture", "png_bomb", "write_corpus"]
