"""Writing crops: formats, exact sizes, EXIF orientation, colour profiles, odd modes; debug view."""

from __future__ import annotations

import io

import numpy as np
import pytest
import skimage.data
from PIL import Image, ImageCms

from autocrop import Box, CropOptions, analyse, debug_view, render_crop
from autocrop.errors import InvalidOptionsError
from autocrop.render import trim_to_ratio
from tests.engine.test_decode import encode_image, quadrants

SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def open_bytes(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


@pytest.mark.parametrize(("fmt", "pil"), [("jpeg", "JPEG"), ("jpg", "JPEG"), ("png", "PNG"), ("webp", "WEBP")])
def test_formats_and_box_size(fmt: str, pil: str) -> None:
    data = encode_image(quadrants(120, 80), "PNG")
    out = open_bytes(render_crop(data, Box(10, 5, 60, 40), fmt=fmt))
    assert out.format == pil and out.size == (60, 40)


def test_crop_is_the_boxed_pixels() -> None:
    picture = quadrants(120, 80)
    out = np.asarray(open_bytes(render_crop(encode_image(picture, "PNG"), Box(60, 0, 60, 40), fmt="png")))
    np.testing.assert_array_equal(out, picture[0:40, 60:120])  # the green top-right quadrant


@pytest.mark.parametrize("orientation", range(1, 9))
def test_box_is_in_upright_pixels_for_every_orientation(orientation: int) -> None:
    picture = quadrants(120, 80)
    data = encode_image(picture, "PNG", orientation)
    box = Box(70, 10, 40, 60)  # around the right-hand quadrants of the upright picture
    out = np.asarray(open_bytes(render_crop(data, box, fmt="png")).convert("RGB"))
    np.testing.assert_array_equal(out, picture[10:70, 70:110])


@pytest.mark.parametrize("orientation", [1, 6, 8])
def test_exact_size_with_a_reduced_jpeg_decode(orientation: int) -> None:
    picture = np.kron(quadrants(40, 30), np.ones((100, 100, 1), np.uint8))  # 4000 x 3000
    data = encode_image(picture, "JPEG", orientation)
    box = Box(2000, 0, 2000, 1500)  # the top-right (green) quadrant
    out = open_bytes(render_crop(data, box, size=(320, 240)))
    assert out.size == (320, 240)
    assert np.abs(np.asarray(out).astype(int).mean(axis=(0, 1)) - (30, 200, 30)).max() < 12


def test_size_of_another_ratio_trims_the_box_centred() -> None:
    assert trim_to_ratio(Box(0, 0, 200, 100), (100, 100)) == (50.0, 0.0, 150.0, 100.0)
    assert trim_to_ratio(Box(10, 10, 100, 100), (200, 100)) == (10.0, 35.0, 110.0, 85.0)
    data = encode_image(quadrants(120, 80), "PNG")
    out = open_bytes(render_crop(data, Box(0, 0, 120, 80), size=(50, 50), fmt="png"))
    assert out.size == (50, 50)


def test_icc_profile_is_kept() -> None:
    data = encode_image(quadrants(), "JPEG", icc_profile=SRGB)
    for fmt in ("jpeg", "png", "webp"):
        out = open_bytes(render_crop(data, Box(0, 0, 60, 40), fmt=fmt))
        assert out.info.get("icc_profile") == SRGB, fmt


def test_cmyk_goes_to_srgb_through_its_profile() -> None:
    cmyk = Image.fromarray(quadrants()).convert("CMYK")
    data = encode_image(cmyk, "JPEG")
    out = open_bytes(render_crop(data, Box(60, 0, 60, 40), fmt="png"))
    assert out.mode == "RGB"
    assert np.asarray(out)[..., 1].mean() > np.asarray(out)[..., 0].mean()  # still green


def test_alpha_survives_in_png_and_webp_and_is_flattened_in_jpeg() -> None:
    rgba = np.zeros((40, 60, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:, 30:, 3] = 255  # left half transparent, right half opaque red
    data = encode_image(rgba, "PNG")
    png = open_bytes(render_crop(data, Box(0, 0, 60, 40), fmt="png"))
    assert png.mode == "RGBA" and np.asarray(png)[:, :30, 3].max() == 0
    webp = open_bytes(render_crop(data, Box(0, 0, 60, 40), fmt="webp", quality=100))
    assert webp.mode == "RGBA"
    jpeg = np.asarray(open_bytes(render_crop(data, Box(0, 0, 60, 40), fmt="jpeg")))
    assert jpeg[:, :25].min() > 240  # transparent -> white


@pytest.mark.parametrize("mode", ["I;16", "P", "L", "1", "LA"])
def test_odd_modes_render(mode: str) -> None:
    rgb = Image.fromarray(quadrants())
    im = {
        "I;16": Image.fromarray(np.asarray(rgb.convert("L")).astype(np.uint16) * 257),
        "P": rgb.convert("P"),
        "L": rgb.convert("L"),
        "1": rgb.convert("1"),
        "LA": rgb.convert("LA"),
    }[mode]
    data = encode_image(im, "PNG")
    for fmt in ("jpeg", "png", "webp"):
        out = open_bytes(render_crop(data, Box(60, 40, 60, 40), fmt=fmt))
        assert out.size == (60, 40)
        assert np.asarray(out.convert("L")).mean() > 150, (mode, fmt)  # the white quadrant


def test_quality_changes_the_jpeg() -> None:
    data = encode_image(skimage.data.astronaut(), "PNG")
    small = render_crop(data, Box(0, 0, 512, 512), quality=20)
    large = render_crop(data, Box(0, 0, 512, 512), quality=95)
    assert len(small) < len(large)


def test_exif_is_not_copied() -> None:
    data = encode_image(quadrants(), "JPEG", 6)
    out = open_bytes(render_crop(data, Box(0, 0, 40, 40)))
    assert out.getexif().get(0x0112) is None


@pytest.mark.parametrize(
    ("kwargs", "box"),
    [
        ({"fmt": "gif"}, Box(0, 0, 10, 10)),
        ({"quality": 0}, Box(0, 0, 10, 10)),
        ({"quality": 101}, Box(0, 0, 10, 10)),
        ({"size": (0, 10)}, Box(0, 0, 10, 10)),
        ({"size": (20000, 10)}, Box(0, 0, 10, 10)),
        ({}, Box(0, 0, 0, 10)),
        ({}, Box(100, 0, 40, 10)),  # runs past the 120 px wide photo
        ({}, Box(-1, 0, 10, 10)),
    ],
)
def test_bad_requests_are_invalid_options(kwargs: dict, box: Box) -> None:
    with pytest.raises(InvalidOptionsError):
        render_crop(encode_image(quadrants(), "PNG"), box, **kwargs)


def test_debug_view_is_a_png_of_the_analysis() -> None:
    data = encode_image(skimage.data.astronaut(), "JPEG")
    result = analyse(data, CropOptions(ratios=("1:1", "16:9", "9:16")))
    png = open_bytes(debug_view(data, result))
    assert png.format == "PNG"
    assert png.size[0] == 2 * 512 + 8  # heatmap | boxes
    assert png.size[1] > 512  # plus the row of crops
