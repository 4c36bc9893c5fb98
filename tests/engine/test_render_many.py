"""Every crop of a photo from one decode (`render_crops`), against the per-crop path and against
an independent reference; `upscaled` and `no_upscale`."""

from __future__ import annotations

import io

import numpy as np
import pytest
from autocrop.errors import ImageTooLargeError
import skimage.data
from PIL import Image, ImageOps

from autocrop import Box, RenderRequest, render_crop, render_crops
from autocrop.threads import THREADS_ENV, default_threads

from tests.engine.test_decode import encode_image

#: Mean absolute difference (8-bit levels) allowed between two renderings of the same crop:
#: both are JPEG q95 of resampled pixels, so they differ by encoder and resampling noise only.
JPEG_NOISE = 3.0


def photo(width: int = 1600, height: int = 1200) -> np.ndarray:
    """A natural picture (the astronaut) at `width` x `height`: detail at every scale."""
    return np.asarray(Image.fromarray(skimage.data.astronaut()).resize((width, height), Image.Resampling.LANCZOS))


def pixels(data: bytes, mode: str = "RGB") -> np.ndarray:
    im = Image.open(io.BytesIO(data))
    im.load()
    return np.asarray(im.convert(mode)).astype(np.int16)


def assert_same_crop(a: bytes, b: bytes, mode: str = "RGB", tol: float = JPEG_NOISE) -> None:
    pa, pb = pixels(a, mode), pixels(b, mode)
    assert pa.shape == pb.shape, (pa.shape, pb.shape)
    diff = float(np.abs(pa - pb).mean())
    assert diff < tol, f"mean abs difference {diff:.2f}"


def reference(data: bytes, box: Box, size: tuple[int, int] | None) -> np.ndarray:
    """The crop as a user would make it by hand: Pillow's exif_transpose, crop, LANCZOS."""
    upright = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
    crop = upright.crop((box.x, box.y, box.right, box.bottom))
    if size is not None:
        crop = crop.resize(size, Image.Resampling.LANCZOS)
    return np.asarray(crop).astype(np.int16)


#: A full-resolution crop, two sized ones that alone would decode at 1/2 and 1/8 DCT scale,
#: and a PNG: the one decode must serve them all.
REQUESTS = (
    RenderRequest(Box(200, 100, 900, 900), quality=95),
    RenderRequest(Box(0, 300, 1600, 900), size=(640, 360), quality=95),
    RenderRequest(Box(400, 0, 720, 1200), size=(90, 150), quality=95),
    RenderRequest(Box(100, 100, 600, 400), size=(300, 200), fmt="png"),
)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_one_decode_equals_a_decode_per_crop_for_every_orientation(orientation: int) -> None:
    data = encode_image(photo(), "JPEG", orientation)
    requests = REQUESTS  # boxes in upright pixels: the upright photo is 1600 x 1200 for every tag
    together = render_crops(data, requests)
    assert len(together) == len(requests)
    for request, out in zip(requests, together, strict=True):
        alone = render_crop(data, request.box, size=request.size, fmt=request.fmt, quality=request.quality)
        assert_same_crop(out.data, alone)
        expected = reference(data, request.box, request.size)
        got = pixels(out.data)
        assert got.shape == expected.shape
        assert float(np.abs(got - expected).mean()) < JPEG_NOISE + 1.5  # the photo's own JPEG noise too
        assert (out.width, out.height) == expected.shape[1::-1] and not out.upscaled


def test_sized_crops_alone_decode_at_the_largest_output_scale() -> None:
    """No full-resolution request: the decode is reduced for the largest output, and the small
    crop (which alone would be decoded smaller still) matches its per-crop rendering."""
    data = encode_image(photo(3200, 2400), "JPEG")
    requests = [
        RenderRequest(Box(0, 0, 3200, 1800), size=(800, 450), quality=95),
        RenderRequest(Box(800, 0, 1600, 2400), size=(100, 150), quality=95),
    ]
    for request, out in zip(requests, render_crops(data, requests), strict=True):
        assert (out.width, out.height) == request.size
        assert_same_crop(out.data, render_crop(data, request.box, size=request.size, quality=95))


def cmyk_jpeg() -> bytes:
    return encode_image(Image.fromarray(photo(800, 600)).convert("CMYK"), "JPEG")


def grey16_png() -> bytes:
    grey = np.asarray(Image.fromarray(photo(800, 600)).convert("L")).astype(np.uint16) * 257
    return encode_image(Image.fromarray(grey), "PNG")


def grey16_tiff() -> bytes:
    grey = np.asarray(Image.fromarray(photo(800, 600)).convert("L")).astype(np.uint16) * 257
    return encode_image(Image.fromarray(grey), "TIFF", 6)


def rgba_png() -> bytes:
    rgba = np.dstack([photo(800, 600), np.tile(np.linspace(0, 255, 800, dtype=np.uint8), (600, 1))])
    return encode_image(Image.fromarray(rgba, "RGBA"), "PNG")


def rgba_webp() -> bytes:
    rgba = np.dstack([photo(800, 600), np.full((600, 800), 128, np.uint8)])
    return encode_image(Image.fromarray(rgba, "RGBA"), "WEBP", lossless=True)


@pytest.mark.parametrize(
    ("make", "mode"),
    [(cmyk_jpeg, "RGB"), (grey16_png, "L"), (grey16_tiff, "L"), (rgba_png, "RGBA"), (rgba_webp, "RGBA")],
)
def test_one_decode_equals_a_decode_per_crop_for_odd_inputs(make, mode: str) -> None:
    data = make()
    width, height = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).size  # upright
    side = min(width, height)
    requests = [
        RenderRequest(Box(0, 0, side, side), quality=95),
        RenderRequest(Box(0, 0, width, height * 9 // 16 if width > height else width * 9 // 16), size=(320, 180),
                      quality=95),  # fmt: skip
        RenderRequest(Box(width - side // 2, 0, side // 2, side // 2), size=(64, 64), fmt="png"),
        RenderRequest(Box(10, 10, 200, 100), fmt="webp", quality=95),
    ]
    together = render_crops(data, requests)
    for request, out in zip(requests, together, strict=True):
        alone = render_crop(data, request.box, size=request.size, fmt=request.fmt, quality=request.quality)
        compare = "RGB" if request.fmt == "jpeg" else mode
        assert_same_crop(out.data, alone, "L" if mode == "L" else compare)
        assert (out.width, out.height) == (request.size or (request.box.w, request.box.h))
        if mode == "RGBA" and request.fmt != "jpeg":
            assert Image.open(io.BytesIO(out.data)).mode == "RGBA"  # alpha kept where it can be


def test_threads_give_the_same_bytes() -> None:
    data = encode_image(photo(), "JPEG", 6)
    requests = REQUESTS
    one = [r.data for r in render_crops(data, requests, threads=1)]
    four = [r.data for r in render_crops(data, requests, threads=4)]
    assert one == four
    assert default_threads() >= 1


def test_upscaled_is_said_and_no_upscale_keeps_the_resolution() -> None:
    data = encode_image(photo(), "JPEG")
    box = Box(100, 100, 640, 360)
    enlarged, kept, trimmed, smaller = render_crops(data, [
        RenderRequest(box, size=(1920, 1080)),
        RenderRequest(box, size=(1920, 1080), no_upscale=True),
        RenderRequest(box, size=(1000, 1000), no_upscale=True),  # another ratio: trimmed, then kept
        RenderRequest(box, size=(320, 180), no_upscale=True),  # smaller: resized as asked
    ])  # fmt: skip
    assert (enlarged.width, enlarged.height, enlarged.upscaled) == (1920, 1080, True)
    assert (kept.width, kept.height, kept.upscaled) == (640, 360, False)
    assert (trimmed.width, trimmed.height, trimmed.upscaled) == (360, 360, False)
    assert (smaller.width, smaller.height, smaller.upscaled) == (320, 180, False)
    assert Image.open(io.BytesIO(kept.data)).size == (640, 360)
    assert enlarged.describe() == {"size": [1920, 1080], "media_type": "image/jpeg", "upscaled": True, "icc_profile": "none"}
    assert render_crops(data, [RenderRequest(box)])[0].upscaled is False  # full resolution


def test_nothing_requested_decodes_nothing() -> None:
    assert render_crops(b"not even an image", []) == []


def test_parallel_crops_stay_within_the_memory_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two cores, but two crops in flight would pass the memory budget: one at a time."""
    from concurrent.futures import ThreadPoolExecutor

    from autocrop import render
    from autocrop.options import DEFAULT_MAX_PIXELS

    monkeypatch.setattr(render, "default_threads", lambda: 2)
    workers: list[int] = []

    class Recording(ThreadPoolExecutor):
        def __init__(self, max_workers: int, **kwargs: object) -> None:
            workers.append(max_workers)
            super().__init__(max_workers=max_workers, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(render, "ThreadPoolExecutor", Recording)
    data = encode_image(photo(), "JPEG")  # 1600 x 1200 RGB
    requests = [RenderRequest(Box(0, 0, 1200, 1200)) for _ in range(3)]
    todo = [render._checked(r) for r in requests]
    im, header, fmt = render._opened(data, todo, DEFAULT_MAX_PIXELS)
    peak = render._peak(data, im, header, fmt, todo)
    assert peak(2) > peak(1)
    assert len(render_crops(data, requests, memory_budget=peak(2))) == 3
    assert workers == [2]
    assert len(render_crops(data, requests, memory_budget=peak(2) - 1)) == 3
    assert workers == [2]  # no pool: one at a time
    with pytest.raises(ImageTooLargeError, match="over the"):
        render_crops(data, requests, memory_budget=peak(1) - 1)


def test_thread_count_follows_the_cores_or_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    monkeypatch.delenv(THREADS_ENV, raising=False)
    assert default_threads() == len(os.sched_getaffinity(0))
    monkeypatch.setenv(THREADS_ENV, "3")
    assert default_threads() == 3
    monkeypatch.setenv(THREADS_ENV, "0")
    assert default_threads() == 1
    monkeypatch.setenv(THREADS_ENV, "many")
    assert default_threads() == len(os.sched_getaffinity(0))
