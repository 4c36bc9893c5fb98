"""Decoding: every listed format, every EXIF orientation, odd modes, the pixel guard."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageCms, JpegImagePlugin

from autocrop import decode
from autocrop.decode import UPRIGHT_TRANSPOSE, upright_to_stored
from autocrop.errors import ImageTooLargeError, UnsupportedImageError

#: Pillow's inverse of each upright transpose: how to store an upright picture under a tag.
STORE_TRANSPOSE = {
    **UPRIGHT_TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    8: Image.Transpose.ROTATE_270,
}
#: Every format the engine lists, with Pillow's name and a lossless flag.
FORMATS = {
    "jpeg": ("JPEG", False),
    "png": ("PNG", True),
    "webp": ("WEBP", False),
    "gif": ("GIF", True),
    "tiff": ("TIFF", True),
    "bmp": ("BMP", True),
    "heic": ("HEIF", False),
    "avif": ("AVIF", False),
}


def quadrants(width: int = 120, height: int = 80) -> np.ndarray:
    """An upright test picture no flip or rotation maps onto itself: four coloured quadrants."""
    img = np.zeros((height, width, 3), np.uint8)
    img[: height // 2, : width // 2] = (230, 30, 30)  # top-left red
    img[: height // 2, width // 2 :] = (30, 200, 30)  # top-right green
    img[height // 2 :, : width // 2] = (30, 30, 220)  # bottom-left blue
    img[height // 2 :, width // 2 :] = (240, 240, 240)  # bottom-right white
    return img


def encode_image(
    image: Image.Image | np.ndarray, fmt: str = "JPEG", orientation: int = 1, **params: object
) -> bytes:
    """Encode `image` (upright) as `fmt`, stored so that EXIF `orientation` turns it upright."""
    im = Image.fromarray(image) if isinstance(image, np.ndarray) else image
    if orientation != 1:
        im = im.transpose(STORE_TRANSPOSE[orientation])
        exif = Image.Exif()
        exif[0x0112] = orientation
        params["exif"] = exif.tobytes()
    if fmt in ("JPEG", "WEBP", "HEIF", "AVIF"):
        params.setdefault("quality", 95)
    out = io.BytesIO()
    im.save(out, fmt, **params)
    return out.getvalue()


def assert_close(a: np.ndarray, b: np.ndarray, tol: float = 12.0) -> None:
    assert a.shape == b.shape, (a.shape, b.shape)
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16)).mean()
    assert diff < tol, f"mean abs difference {diff:.1f}"


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_every_listed_format_decodes(name: str) -> None:
    pil_name, lossless = FORMATS[name]
    picture = quadrants()
    decoded = decode(encode_image(picture, pil_name))
    assert decoded.format == pil_name
    assert (decoded.width, decoded.height) == (120, 80)
    assert decoded.rgb.dtype == np.uint8 and decoded.rgb.shape == (80, 120, 3)
    assert_close(decoded.rgb, picture, tol=1.0 if lossless else 12.0)


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF", "HEIF", "AVIF"])
def test_every_exif_orientation_gives_upright_pixels(fmt: str, orientation: int) -> None:
    picture = quadrants()
    decoded = decode(encode_image(picture, fmt, orientation))
    assert (decoded.width, decoded.height) == (120, 80)
    assert_close(decoded.rgb, picture)


def test_orientation_is_reported() -> None:
    assert decode(encode_image(quadrants(), "JPEG", 6)).orientation == 6
    assert decode(encode_image(quadrants(), "JPEG")).orientation == 1


@pytest.mark.parametrize("orientation", range(1, 9))
def test_upright_box_maps_to_the_same_stored_pixels(orientation: int) -> None:
    rng = np.random.default_rng(orientation)
    upright = Image.fromarray(rng.integers(0, 255, (50, 70, 3), dtype=np.uint8))
    stored = upright.transpose(STORE_TRANSPOSE[orientation]) if orientation != 1 else upright
    box = (7, 11, 40, 29)  # x0, y0, x1, y1 in upright pixels
    x0, y0, x1, y1 = (round(v) for v in upright_to_stored(box, orientation, 70, 50))
    cut = stored.crop((x0, y0, x1, y1))
    back = cut.transpose(UPRIGHT_TRANSPOSE[orientation]) if orientation != 1 else cut
    np.testing.assert_array_equal(np.asarray(back), np.asarray(upright.crop(box)))


def test_large_jpeg_is_decoded_reduced(monkeypatch: pytest.MonkeyPatch) -> None:
    scales = []
    original = JpegImagePlugin.JpegImageFile.draft

    def spy(self: JpegImagePlugin.JpegImageFile, mode: str | None, size: tuple[int, int] | None):  # type: ignore[no-untyped-def]
        result = original(self, mode, size)
        scales.append(self.size)
        return result

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    big = np.kron(quadrants(40, 30), np.ones((100, 100, 1), np.uint8))  # 4000 x 3000
    data = encode_image(big, "JPEG")
    decoded = decode(data, analysis_long_side=640, analysis_min_long_side=640)
    assert (decoded.width, decoded.height) == (4000, 3000)
    assert decoded.rgb.shape == (480, 640, 3)
    assert scales and scales[0] == (1000, 750), "decoded at 1/4, then resized to 640"
    assert decoded.scale == pytest.approx((6.25, 6.25))
    fastest = decode(data)  # by default the analysis may go down to 480 px: 1/8 scale
    assert scales[-1] == (500, 375) and fastest.rgb.shape == (375, 500, 3)
    assert fastest.rgb[:180, :240].mean(axis=(0, 1)) == pytest.approx((230, 30, 30), abs=12)


def test_small_images_are_not_upscaled() -> None:
    decoded = decode(encode_image(quadrants(60, 40), "PNG"), analysis_long_side=640)
    assert decoded.rgb.shape == (40, 60, 3)


def _mode_image(mode: str) -> Image.Image:
    rgb = Image.fromarray(quadrants())
    if mode == "I;16":
        return Image.fromarray((np.asarray(rgb.convert("L")).astype(np.uint16) * 257))
    if mode == "PA":
        return rgb.convert("P").convert("PA")
    return rgb.convert(mode)


@pytest.mark.parametrize(
    ("mode", "fmt"),
    [("L", "PNG"), ("LA", "PNG"), ("RGBA", "PNG"), ("P", "PNG"), ("1", "PNG"), ("I;16", "PNG"),
     ("I;16", "TIFF"), ("CMYK", "JPEG"), ("CMYK", "TIFF"), ("RGBA", "WEBP"), ("P", "GIF")],
)  # fmt: skip
def test_modes_become_rgb8(mode: str, fmt: str) -> None:
    decoded = decode(encode_image(_mode_image(mode), fmt))
    assert decoded.rgb.dtype == np.uint8 and decoded.rgb.shape == (80, 120, 3)
    # The white quadrant stays bright and the blue one dark, whatever the mode did to colour.
    assert decoded.rgb[60:, 60:].mean() > 180
    assert decoded.rgb[60:, :60].mean() < 140


def test_sixteen_bit_is_scaled_not_clipped() -> None:
    grey = Image.fromarray(np.full((20, 30), 32896, np.uint16))  # 128 * 257
    decoded = decode(encode_image(grey, "PNG"))
    assert abs(int(decoded.rgb.mean()) - 128) <= 1


def test_transparency_is_composited_on_white() -> None:
    rgba = np.zeros((20, 30, 4), np.uint8)  # fully transparent black
    decoded = decode(encode_image(rgba, "PNG"))
    assert decoded.rgb.min() == 255


def test_gif_first_frame() -> None:
    frames = [Image.new("RGB", (30, 20), c) for c in ((255, 0, 0), (0, 0, 255))]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], duration=100)
    decoded = decode(out.getvalue())
    assert decoded.rgb[..., 0].mean() > 200 and decoded.rgb[..., 2].mean() < 50


def test_icc_profile_is_kept() -> None:
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    decoded = decode(encode_image(quadrants(), "JPEG", icc_profile=icc))
    assert decoded.icc_profile == icc


def test_pixel_guard_refuses_before_decoding() -> None:
    data = encode_image(quadrants(), "PNG")
    with pytest.raises(ImageTooLargeError):
        decode(data, max_pixels=120 * 80 - 1)
    assert decode(data, max_pixels=120 * 80).width == 120


def test_decompression_bomb_header_is_refused() -> None:
    # A PNG whose header claims 100000 x 100000 pixels but carries no pixel data.
    png = encode_image(Image.new("L", (1, 1)), "PNG")
    ihdr = png.index(b"IHDR")
    import struct
    import zlib

    body = struct.pack(">II", 100_000, 100_000) + png[ihdr + 12 : ihdr + 17]
    chunk = struct.pack(">I", 13) + b"IHDR" + body + struct.pack(">I", zlib.crc32(b"IHDR" + body))
    bomb = png[: ihdr - 4] + chunk + png[ihdr + 21 :]
    with pytest.raises(ImageTooLargeError):
        decode(bomb)


@pytest.mark.parametrize(
    "data",
    [b"", b"not an image at all", b"%PDF-1.4\n%...", encode_image(quadrants(), "JPEG")[:300]],
    ids=["empty", "text", "pdf", "truncated-jpeg"],
)
def test_unreadable_input_is_an_unsupported_image(data: bytes) -> None:
    with pytest.raises(UnsupportedImageError):
        decode(data)


def test_unlisted_format_is_refused() -> None:
    out = io.BytesIO()
    Image.fromarray(quadrants()).save(out, "PPM")
    with pytest.raises(UnsupportedImageError):
        decode(out.getvalue())


def _png_header_only(width: int, height: int, bit_depth: int, colour_type: int) -> bytes:
    """A PNG that declares a size and pixel layout (no pixel data is needed to be refused)."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    ("width", "height", "bit_depth", "colour_type", "refused"),
    [
        # At the default 1,000 MB budget, the upload's job (four full-resolution crops + the
        # master); the plan's figure in MB after each (benchmarks/bench_memory.py measures).
        (8000, 6000, 8, 6, False),    # 48 MP RGBA: 876
        (7000, 5000, 16, 2, False),   # Pillow decodes 16-bit RGB to 8-bit: 686
        (11000, 8000, 16, 0, False),  # 88 MP 16-bit grey (I;16): 994, crops are 8-bit grey
        (8000, 6000, 1, 0, False),    # 48 MP 1-bit: one byte a pixel decoded, grey crops: 597
        (10000, 10000, 1, 0, True),   # 100 MP 1-bit: 1,003
        (10000, 10000, 8, 3, True),   # 100 MP palette: one byte a pixel decoded, RGB crops of four: 1,303
        (10000, 10000, 8, 2, True),   # 100 MP RGB: 1,603
        (6000, 4000, 8, 6, False),    # 24 MP RGBA: 530
    ],
)
def test_memory_plan_refuses_from_the_header_by_what_is_expanded(width, height, bit_depth, colour_type, refused):
    """The plan counts pixels as the pipeline holds them (a 1-bit or palette pixel becomes 1 or
    3 bytes), before anything is decoded: a header-only PNG is enough to be refused."""
    from autocrop.errors import ImageTooLargeError
    from autocrop.job import OutputSpec, plan_job
    from autocrop.options import CropOptions

    data = _png_header_only(width, height, bit_depth, colour_type)
    options, spec = CropOptions(), OutputSpec(master_side=2560)
    if refused:
        with pytest.raises(ImageTooLargeError, match="over the 1000 MB budget"):
            plan_job(data, options, spec)
    else:
        plan_job(data, options, spec)


def test_a_first_jpeg_imports_only_its_own_plugin_and_pillow_stays_whole(tmp_path) -> None:
    """A fresh process's first JPEG imports Pillow's JPEG plugin alone (not BMP, GIF, PPM or
    PNG, which Image.open's pre-step would); afterwards every other format still decodes, and
    Pillow's own open and save of formats not registered yet still work (it loads them then)."""
    import subprocess
    import sys
    from pathlib import Path

    pixels = quadrants(60, 40)
    for fmt in ("JPEG", "PNG", "GIF", "BMP", "WEBP", "TIFF", "PPM"):
        (tmp_path / fmt).write_bytes(encode_image(pixels, fmt))
    layers = Path(__file__).resolve().parents[2] / "layers"
    child = r"""
import io, sys
from pathlib import Path
from PIL import Image
import autocrop
files = Path(sys.argv[1])
autocrop.decode((files / "JPEG").read_bytes())
common = ("BmpImagePlugin", "GifImagePlugin", "PpmImagePlugin", "PngImagePlugin")
loaded = [name for name in common if "PIL." + name in sys.modules]
assert loaded == [], loaded
assert Image.open(files / "PPM").size == (60, 40)  # an open with no formats given
out = io.BytesIO(); Image.open(files / "PPM").save(out, "PCX")  # a save of a format not registered
for fmt in ("PNG", "GIF", "BMP", "WEBP", "TIFF"):
    assert autocrop.decode((files / fmt).read_bytes()).rgb.shape[:2] == (40, 60), fmt
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", child, str(tmp_path)], capture_output=True, text=True,
                          env={"PYTHONPATH": str(layers), "PATH": "/usr/bin:/bin"})  # fmt: skip
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-2000:]
