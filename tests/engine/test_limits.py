"""The promises about memory and output sizes, tried with inputs the pipeline was not built around:
every Pillow mode, the probe's odd files (1-bit, palette with transparency, LA, float TIFF),
a 48 MP phone photo at full resolution, sizes at the edge of a door's limits, an 8 MB colour
profile. Peak memory is measured in a fresh process (`resource.getrusage`), never taken from
the code's own plan.
"""

from __future__ import annotations

import importlib
import io
import json
import struct
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageCms

from autocrop import Box, CropOptions, RenderRequest, render_crops, run_job
from autocrop.errors import ImageTooLargeError, OutputTooLargeError
from autocrop.job import OutputSpec, plan_job
from autocrop.memory import DEFAULT_MEMORY_BUDGET
from autocrop.render import MAX_ICC_BYTES, answer_bound, encoded_bound

ROOT = Path(__file__).resolve().parents[2]

# --- memory: measured peaks of the upload's job -------------------------------------------------

#: Runs the upload function's job (its own settings: full-resolution crops + the master) on
#: one file in a fresh interpreter and prints its peak RSS (bytes) and what it did.
_MEASURE = textwrap.dedent(
    """
    import json, resource, sys
    from functions.s3.trigger import crop_options, output_spec
    from functions.settings import Settings
    from autocrop.errors import AutocropError
    from autocrop.job import run_job
    settings = Settings(output_bucket="measure")
    data = open(sys.argv[1], "rb").read()
    try:
        done = run_job(data, crop_options(settings), output_spec(settings))
        outcome = {"status": "cropped", "crops": len(done.outputs), "master": done.master is not None}
    except AutocropError as e:
        outcome = {"status": "refused", "code": e.code}
    # VmHWM: this process's own peak. ru_maxrss would also count the parent's RSS at the
    # fork that started it (Linux keeps the larger of the two across exec).
    hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")]
    outcome["peak"] = int(hwm[0].split()[1]) * 1024 if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps(outcome))
    """
)


def _measure(path: Path) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(path)], cwd=ROOT, capture_output=True, text=True, timeout=600,
        env={"PYTHONPATH": f"{ROOT}:{ROOT / 'layers'}", "PATH": "/usr/bin:/bin", "AUTOCROP_THREADS": "2"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _odd_file(kind: str, path: Path) -> None:
    """The probe's odd files: each small on disk, each expanding far beyond its bytes."""
    if kind == "1-bit 10000x10000 PNG":
        im = Image.new("1", (10000, 10000), 0)
        im.paste(1, (2000, 2000, 7000, 6000))
        im.save(path, "PNG")
    elif kind == "palette+transparency 10000x10000 PNG":
        im = Image.new("P", (10000, 10000), 0)
        im.putpalette([0, 0, 0, 200, 30, 30, 30, 200, 30] + [0] * 759)
        im.paste(1, (1000, 1000, 6000, 9000))
        im.paste(2, (6500, 2000, 9000, 5000))
        im.save(path, "PNG", transparency=0)
    elif kind == "palette+transparency 10000x10000 GIF":
        im = Image.new("P", (10000, 10000), 0)
        im.putpalette([0, 0, 0, 200, 30, 30] + [0] * 762)
        im.paste(1, (3000, 3000, 7000, 7000))
        im.save(path, "GIF", transparency=0)
    elif kind == "LA 8900x8900 PNG":
        im = Image.new("LA", (8900, 8900), (128, 255))
        im.paste((30, 200), (1000, 1000, 5000, 8000))
        im.save(path, "PNG")
    elif kind == "float TIFF 8000x6000":
        arr = np.tile(np.linspace(0, 1, 8000, dtype=np.float32), (6000, 1))
        Image.fromarray(arr, "F").save(path, "TIFF", compression="tiff_deflate")
    elif kind == "progressive CMYK JPEG 8000x6000":
        small = Image.fromarray(np.random.default_rng(2).integers(0, 255, (300, 400, 3), dtype=np.uint8))
        big = small.resize((8000, 6000), Image.Resampling.BILINEAR).convert("CMYK")
        big.save(path, "JPEG", quality=85, progressive=True, subsampling=0)
    elif kind == "48 MP WebP":
        small = Image.fromarray(np.random.default_rng(1).integers(0, 255, (300, 400, 3), dtype=np.uint8))
        small.resize((8000, 6000), Image.Resampling.BILINEAR).save(path, "WEBP", quality=50, method=0)
    elif kind in ("48 MP JPEG", "48 MP portrait JPEG (EXIF orientation 6)"):
        rng = np.random.default_rng(0)
        small = Image.fromarray(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8))
        exif = Image.Exif()
        exif[0x0112] = 6 if "portrait" in kind else 1  # a phone held upright stores it turned
        small.resize((8000, 6000), Image.Resampling.BILINEAR).save(path, "JPEG", quality=92, exif=exif.tobytes())
    else:  # pragma: no cover
        raise ValueError(kind)


@pytest.mark.slow
@pytest.mark.parametrize(
    "kind",
    [
        "1-bit 10000x10000 PNG",
        "palette+transparency 10000x10000 PNG",
        "palette+transparency 10000x10000 GIF",
        "LA 8900x8900 PNG",
        "float TIFF 8000x6000",
        "progressive CMYK JPEG 8000x6000",
        "48 MP WebP",
        "48 MP JPEG",
        "48 MP portrait JPEG (EXIF orientation 6)",
    ],
)
def test_the_upload_job_peaks_under_the_budget_or_refuses(kind: str, tmp_path: Path) -> None:
    """Each file is cropped with its peak RSS (baseline included) under the budget, or refused
    with a domain error: never an out-of-memory kill. The phone photo must be cropped."""
    path = tmp_path / "photo"
    _odd_file(kind, path)
    got = _measure(path)
    assert got["peak"] < DEFAULT_MEMORY_BUDGET, got
    if "JPEG" in kind:  # phone photos are always cropped
        assert got == {**got, "status": "cropped", "crops": 4, "master": True}
    else:
        assert got["status"] == "cropped" or got.get("code") == "image_too_large", got


def test_the_budget_is_counted_from_the_header_before_any_analysis(monkeypatch: pytest.MonkeyPatch) -> None:
    """A photo that cannot fit is refused before the engine analyses it (no decode, no model)."""
    import autocrop.engine

    def analysed(*args: object, **kwargs: object) -> None:
        raise AssertionError("analysed a photo the budget refuses")

    monkeypatch.setattr(autocrop.engine, "analyse", analysed)
    im = Image.new("P", (9000, 9000), 0)
    im.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    data = io.BytesIO()
    im.save(data, "PNG", transparency=0)
    spec = OutputSpec(master_side=2560)
    with pytest.raises(ImageTooLargeError, match="budget"):
        run_job(data.getvalue(), CropOptions(memory_budget=500_000_000), spec)


@pytest.mark.parametrize("mode", ["1", "L", "LA", "P", "PA", "RGB", "RGBA", "I;16", "I", "F", "CMYK"])
def test_every_mode_converts_band_by_band_to_what_a_whole_conversion_gives(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Cropping in bands (a few rows at a time) gives the pixels a whole-image conversion gives."""
    decode = importlib.import_module("autocrop.decode")  # the package's `decode` is the function

    rng = np.random.default_rng(1)
    rgba = Image.fromarray(rng.integers(0, 255, (97, 131, 4), dtype=np.uint8), "RGBA")
    if mode in ("I;16", "I", "F"):
        grey = np.asarray(rgba.convert("L"), dtype=np.float64)
        arr = {"I;16": (grey * 257).astype(np.uint16), "I": (grey * 257).astype(np.int32), "F": (grey / 255).astype(np.float32)}[mode]
        im = Image.fromarray(arr, mode)
    elif mode == "P":
        im = rgba.convert("RGB").quantize(16)
    elif mode == "PA":
        im = rgba.convert("PA")
    else:
        im = rgba.convert(mode)
    target = decode.rgb_mode(im.mode, decode.has_alpha(im))
    whole = decode.convert_region(im, target)
    monkeypatch.setattr(decode, "BAND_BYTES", 131 * 4 * 3)  # three rows a band
    banded = decode.convert_region(im, target)
    assert banded.mode == whole.mode == target
    assert np.array_equal(np.asarray(banded), np.asarray(whole))
    reduced = decode.convert_region(im, target, (5, 7, 125, 90), factor=3)
    assert reduced.size == (40, 28)


# --- output limits: one place, checked before rendering -----------------------------------------


@pytest.mark.parametrize(("fmt", "mode"), [("JPEG", "RGB"), ("JPEG", "L"), ("WEBP", "RGB"), ("WEBP", "RGBA"), ("PNG", "RGB"), ("PNG", "RGBA")])
@pytest.mark.parametrize("quality", [50, 85, 100])
@pytest.mark.parametrize("pattern", ["uniform", "corners", "corner checker"])
def test_noise_never_encodes_larger_than_the_bound(fmt: str, mode: str, quality: int, pattern: str) -> None:
    """The worst case the limits are checked against holds for the least compressible inputs."""
    rng = np.random.default_rng(quality)
    shape = (300, 400, len(mode))
    if pattern == "uniform":
        pixels = rng.integers(0, 256, shape, dtype=np.uint8)
    else:  # each sample 0 or 255: the colour cube's corners, which JPEG and WebP code worst
        pixels = (rng.integers(0, 2, shape) * 255).astype(np.uint8)
        if pattern == "corner checker":
            pixels[::2, ::2] = 255 - pixels[::2, ::2]
    im = Image.fromarray(pixels.squeeze(), mode)
    out = io.BytesIO()
    im.save(out, fmt, **({} if fmt == "PNG" else {"quality": quality}))
    assert len(out.getvalue()) <= encoded_bound(fmt, quality, 300 * 400, mode)


def _photo_bytes(size: tuple[int, int] = (1600, 1200), fmt: str = "JPEG", **kwargs: object) -> bytes:
    rng = np.random.default_rng(3)
    small = Image.fromarray(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8))
    out = io.BytesIO()
    small.resize(size, Image.Resampling.BICUBIC).save(out, fmt, **kwargs)
    return out.getvalue()


def test_a_door_limit_refuses_before_any_analysis(monkeypatch: pytest.MonkeyPatch) -> None:
    import autocrop.engine

    monkeypatch.setattr(autocrop.engine, "analyse", lambda *a, **k: pytest.fail("analysed"))
    data = _photo_bytes()
    with pytest.raises(OutputTooLargeError, match="largest side"):
        OutputSpec(size=(16383, 16383), limit_side=4096)
    spec = OutputSpec(size=(4000, 3000), fmt="png", limit_bytes=4_000_000)
    with pytest.raises(OutputTooLargeError, match="an answer can carry"):
        run_job(data, CropOptions.from_ratios("4:3"), spec)
    with pytest.raises(OutputTooLargeError, match="one call may render"):
        run_job(data, CropOptions.from_ratios("1:1,16:9"), OutputSpec(size=(1000, 1000), sizes={"16:9": (1600, 900)},
                                                                      limit_pixels=2_000_000))  # fmt: skip


def test_unsized_crops_shrink_to_what_the_answer_carries() -> None:
    """No size asked, a byte limit: each crop keeps its box's ratio at the most pixels that fit."""
    data = _photo_bytes((3000, 2000))
    spec = OutputSpec(fmt="jpeg", quality=100, limit_bytes=1_000_000)
    done = run_job(data, CropOptions.from_ratios("1:1,16:9"), spec)
    assert sum(len(out.data) for _, out in done.rendered()) <= 1_000_000
    for crop, out in done.rendered():
        assert out.width * out.height < crop.box.w * crop.box.h
        assert abs(out.width / out.height - crop.box.w / crop.box.h) < 0.02
        assert answer_bound("jpeg", 100, (out.width, out.height)) <= 500_000


# --- colour profiles ------------------------------------------------------------------------------


def _profile(size: int) -> bytes:
    """A valid sRGB profile padded to `size` bytes (its header's size field says so)."""
    srgb = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    srgb += b"\0" * (size - len(srgb))
    srgb[0:4] = struct.pack(">I", len(srgb))
    return bytes(srgb)


def test_a_huge_colour_profile_is_not_copied_into_every_crop() -> None:
    data = _photo_bytes((1200, 900), icc_profile=_profile(8_000_000))
    done = run_job(data, CropOptions.from_ratios("1:1,16:9"), OutputSpec(size=(64, 64), sizes={"16:9": (160, 90)},
                                                                       master_side=2560))  # fmt: skip
    for _, out in done.rendered():
        assert len(out.data) < 50_000
        assert out.icc_profile == "converted_to_srgb"
        assert len(Image.open(io.BytesIO(out.data)).info.get("icc_profile", b"")) <= MAX_ICC_BYTES
    assert done.master is not None and len(done.master.data) < 1_000_000
    entry = done.manifest()["crops"][0]
    assert entry["icc_profile"] == "converted_to_srgb"


def test_a_small_profile_is_kept() -> None:
    icc = _profile(4000)
    data = _photo_bytes((400, 300), icc_profile=icc)
    [out] = render_crops(data, [RenderRequest(Box(0, 0, 300, 300))])
    assert out.icc_profile == "kept"
    assert Image.open(io.BytesIO(out.data)).info["icc_profile"] == icc


def test_plan_job_accepts_a_phone_photo_and_refuses_a_bomb_from_headers_alone() -> None:
    spec = OutputSpec(master_side=2560)
    plan_job(_photo_bytes((4000, 3000)), CropOptions(), spec)
    im = Image.new("P", (10000, 10000), 0)
    im.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    out = io.BytesIO()
    im.save(out, "PNG", transparency=0)
    with pytest.raises(ImageTooLargeError):
        plan_job(out.getvalue(), CropOptions(memory_budget=400_000_000), spec)


# --- the API's answers: bounded before any work -------------------------------------------------


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch):
    from fastapi.testclient import TestClient

    from functions.api.app import app
    from functions.settings import get_settings

    monkeypatch.setenv("AUTOCROP_INPUT_BUCKET", "photos-in")
    monkeypatch.setenv("AUTOCROP_OUTPUT_BUCKET", "photos-out")
    get_settings.cache_clear()
    yield TestClient(app)
    get_settings.cache_clear()


@pytest.mark.parametrize(
    "query",
    [
        "size=16383x16383&ratios=1:1,16:9,4:5,9:16&include=images",  # the probe's 904 MB answer
        "size=16383x16383&output=image&ratio=1:1",                     # its 19.8 MB image
        "size=4096x4096&output=image&ratio=1:1&format=png",            # over 6 MB at worst
        "size=2000x2000&ratios=1:1,16:9,4:5,9:16&include=images",      # four of them in JSON
    ],
)
def test_the_api_refuses_answers_it_cannot_carry_before_any_analysis(api, query: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import autocrop.engine

    monkeypatch.setattr(autocrop.engine, "analyse", lambda *a, **k: pytest.fail("analysed"))
    response = api.post(f"/v1/crop?{query}", files={"image": ("p.jpg", _photo_bytes(), "image/jpeg")})
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "output_too_large"


def test_the_api_image_answer_of_a_big_photo_fits_the_lambda_limit(api) -> None:
    """No size asked: the crop at its own resolution where it fits the answer, shrunk where not."""
    from functions.settings import LAMBDA_SYNC_PAYLOAD_LIMIT

    rng = np.random.default_rng(5)
    noisy = Image.fromarray(rng.integers(0, 256, (3000, 4000, 3), dtype=np.uint8))  # the worst case
    body = io.BytesIO()
    noisy.save(body, "JPEG", quality=40)  # under the request limit, noise all the same
    response = api.post("/v1/crop?output=image&ratio=4:3&quality=100", files={"image": ("n.jpg", body.getvalue(), "image/jpeg")})
    assert response.status_code == 200, response.text
    assert (len(response.content) + 2) // 3 * 4 < LAMBDA_SYNC_PAYLOAD_LIMIT
    w, h = (int(v) for v in response.headers["x-autocrop-size"].split("x"))
    assert w * h < 4000 * 3000 and abs(w / h - 4 / 3) < 0.01


@pytest.mark.parametrize(("mode", "fmt"), [("RGBA", "png"), ("RGB", "png"), ("RGBA", "webp")])
def test_a_dropped_profile_never_rides_along_in_the_pixels_metadata(mode: str, fmt: str) -> None:
    """Crops copy the photo's `info`; a profile the rule drops must not come back through it,
    nor a JPEG comment (it may hold a name or a place)."""
    im = Image.new(mode, (600, 400), (200, 30, 30, 255)[: len(mode)])
    src = io.BytesIO()
    im.save(src, "PNG", icc_profile=_profile(300_000))
    done = run_job(src.getvalue(), CropOptions.from_ratios("1:1"), OutputSpec(size=(64, 64), fmt=fmt))
    [(_, out)] = done.rendered()
    assert out.icc_profile in ("dropped", "converted_to_srgb")
    assert len(Image.open(io.BytesIO(out.data)).info.get("icc_profile") or b"") <= MAX_ICC_BYTES
    commented = io.BytesIO()
    Image.new("RGB", (600, 400), (90, 90, 200)).save(commented, "JPEG", comment=b"owner: Jane Doe, 51.5074N 0.1278W")
    [out] = render_crops(commented.getvalue(), [RenderRequest(Box(0, 0, 400, 400))])
    assert b"Jane Doe" not in out.data


def test_a_damaged_profile_tag_is_no_profile() -> None:
    """A TIFF whose ICC tag is a number, not bytes, is cropped without a profile, not a crash."""
    from PIL import TiffImagePlugin

    info = TiffImagePlugin.ImageFileDirectory_v2()
    info[34675] = 7
    info.tagtype[34675] = 3  # SHORT
    out = io.BytesIO()
    Image.new("RGB", (300, 200), (10, 120, 30)).save(out, "TIFF", tiffinfo=info)
    done = run_job(out.getvalue(), CropOptions.from_ratios("1:1"), OutputSpec(size=(64, 64), fmt="png"))
    assert [o.icc_profile for _, o in done.rendered()] == ["none"]


def test_webp_and_single_strip_tiff_count_their_decoders_buffers() -> None:
    """libwebp holds three more 4-byte canvases while it decodes, libtiff a whole strip, libjpeg
    a progressive JPEG's every coefficient (at full size, whatever the DCT scale)."""
    from autocrop.decode import decoder_bytes, open_image

    for progressive in (False, True):
        jpeg = io.BytesIO()
        Image.new("CMYK", (400, 320)).save(jpeg, "JPEG", progressive=progressive)
        im = open_image(jpeg.getvalue())
        im.draft(None, (50, 40))
        assert decoder_bytes(im, "JPEG", (400, 320)) == (400 * 320 * 2 * 4 if progressive else 0)

    webp = io.BytesIO()
    Image.new("RGB", (400, 300)).save(webp, "WEBP")
    assert decoder_bytes(open_image(webp.getvalue()), "WEBP") == 400 * 300 * 12
    tiff = io.BytesIO()
    Image.fromarray(np.zeros((300, 400), np.uint16), "I;16").save(tiff, "TIFF", compression="tiff_deflate")
    im = open_image(tiff.getvalue())
    assert decoder_bytes(im, "TIFF") >= 400 * min(300, int(im.tag_v2.get(278, 300))) * 2


@pytest.mark.parametrize(("fmt", "size"), [("jpeg", (1920, 1080)), ("webp", (1920, 1080)), ("jpeg", (2400, 1350)),
                                           ("png", (1000, 1000)), ("webp", (1080, 1350))])  # fmt: skip
def test_common_page_sizes_fit_one_answer(fmt: str, size: tuple[int, int]) -> None:
    """The bound refuses what could not fit, not the sizes pages ask for (at the default q85)."""
    from functions.settings import ANSWER_BYTES

    assert answer_bound(fmt, 85, size) <= ANSWER_BYTES


@pytest.mark.parametrize(("fmt", "mode"), [("PNG", "LA"), ("PNG", "RGB"), ("JPEG", "RGB"), ("WEBP", "RGB"), ("TIFF", "RGB"),
                                           ("GIF", "P"), ("BMP", "RGB")])  # fmt: skip
def test_planning_decodes_nothing(fmt: str, mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The budget is checked before any pixel is decoded: planning never loads the image
    (a PNG's `getexif` would, to look for an eXIf chunk after the pixels)."""
    from PIL import ImageFile

    loads: list[str] = []
    load = ImageFile.ImageFile.load

    def spy(self: ImageFile.ImageFile) -> Any:
        loads.append(str(self.format))
        return load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy)
    out = io.BytesIO()
    Image.new(mode, (3000, 2000)).save(out, fmt)
    plan_job(out.getvalue(), CropOptions(), OutputSpec(master_side=2560))
    assert loads == []
