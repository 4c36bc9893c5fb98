"""Attacks on the quick first answer: Pillow marked pre-initialised, plain-Python window offsets, lazy imports.

- decode.py marks Pillow's `preinit` done after importing the sniffed plugins: every accepted
  format must still decode in any order in one fresh process, unsniffable input must still be
  an UnsupportedImageError, Pillow's own open (no formats) must identify files exactly as a
  plain Pillow does, every save must still work, first decodes may race in threads, and the
  render path must work in a process whose first photo was a JPEG.
- candidates.py builds offsets in plain Python: the window sets must equal the previous
  numpy implementation (kept below verbatim as the reference) bit for bit.
- ImageCms, hashlib and the overrides module are imported lazily: profiles still convert and
  exact-box overrides still work in a fresh process.

Fresh-process behaviour runs in subprocesses (a module-level Pillow state is the subject).
"""

from __future__ import annotations

import io
import json
import math
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms

from tests.engine.test_decode import encode_image, quadrants

LAYERS = Path(__file__).resolve().parents[2] / "layers"
ROOT = Path(__file__).resolve().parents[2]
#: The engine's accepted formats as files to write (MPO: a two-frame camera JPEG).
ENGINE_FORMATS = ("JPEG", "MPO", "PNG", "WEBP", "GIF", "TIFF", "BMP", "HEIF", "AVIF")
#: Formats Pillow itself reads and writes that the engine does not accept.
PILLOW_ONLY = ("PPM", "PCX", "QOI", "TGA", "SGI", "DDS", "IM", "SPIDER", "ICO", "JPEG2000", "DIB")


def _run(child: str, *args: str, timeout: float = 60) -> str:
    done = subprocess.run(
        [sys.executable, "-c", child, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=str(ROOT),
        env={"PYTHONPATH": f"{ROOT}:{LAYERS}", "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One small picture in every engine format and in Pillow-only formats, written by Pillow."""
    import pillow_heif

    out = tmp_path_factory.mktemp("formats")
    pixels = quadrants(60, 40)
    im = Image.fromarray(pixels)
    for fmt in ENGINE_FORMATS + PILLOW_ONLY:
        buf = io.BytesIO()
        if fmt == "MPO":
            im.save(buf, "MPO", save_all=True, append_images=[im.rotate(180)])
        elif fmt == "HEIF":
            pillow_heif.from_pillow(im).save(buf, format="HEIF", quality=95)
        else:
            im.save(buf, fmt)
        (out / fmt).write_bytes(buf.getvalue())
    return out


IDENTIFY = r"""
import io, json, os, sys
from PIL import Image
files, first = sys.argv[1], sys.argv[2]
if first != "-":
    import autocrop
    autocrop.decode(open(os.path.join(files, first), "rb").read())
seen = {}
for name in sorted(os.listdir(files)):
    if name in ("HEIF",):  # the engine registers pillow-heif's opener: a plain Pillow cannot
        continue
    for how, src in (("path", os.path.join(files, name)), ("bytes", io.BytesIO(open(os.path.join(files, name), "rb").read()))):
        try:
            with Image.open(src) as im:
                im.load()
                seen[how + ":" + name] = [im.format, list(im.size), im.mode]
        except Exception as e:
            seen[how + ":" + name] = type(e).__name__
print(json.dumps(seen, sort_keys=True))
"""


@pytest.mark.parametrize("first", ["JPEG", "TIFF", "HEIF"])
def test_pillows_own_open_identifies_every_file_as_a_plain_pillow_does(files: Path, first: str) -> None:
    """After the engine's first decode marked `preinit` done, Image.open with no formats (from a
    path and from bytes) names every format, size and mode exactly as a plain Pillow process."""
    plain = json.loads(_run(IDENTIFY, str(files), "-"))
    after = json.loads(_run(IDENTIFY, str(files), first))
    assert after == plain
    assert plain["path:PPM"][0] == "PPM" and plain["bytes:TGA"][0] == "TGA"


ORDER = r"""
import io, os, random, sys
import numpy as np
from PIL import Image
import autocrop
from autocrop.errors import UnsupportedImageError
files, first, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
engine = ["JPEG", "MPO", "PNG", "WEBP", "GIF", "TIFF", "BMP", "HEIF", "AVIF"]
read = lambda name: open(os.path.join(files, name), "rb").read()
junk = [b"not an image, just some words", b"\x00" * 64, read("PPM"), read("PCX"), read("QOI"),
        b"BM" + b"\x01" * 30, b"\xff\xd8\xff" + b"\x00" * 20, b"\x00\x00\x00\x18ftypheic" + b"\x00" * 30]
rest = [f for f in engine if f != first]
random.Random(seed).shuffle(rest)
order = ([] if first == "junk" else [first]) + (["junk"] if seed % 2 or first == "junk" else []) + rest
for name in order:
    if name == "junk":
        for data in junk:
            try:
                autocrop.decode(data)
            except UnsupportedImageError:
                continue
            raise AssertionError(f"accepted {data[:12]!r}")
        continue
    rgb = autocrop.decode(read(name)).rgb
    assert rgb.shape == (40, 60, 3), (name, rgb.shape)
    assert rgb[:20, :30, 0].mean() > 150 and rgb[:20, 30:, 1].mean() > 150, name  # red, green: upright
src = Image.open(os.path.join(files, "PNG"))
for fmt in ("AVIF", "BMP", "DDS", "DIB", "GIF", "ICNS", "ICO", "IM", "JPEG", "JPEG2000", "MPO", "PCX",
            "PDF", "PNG", "PPM", "QOI", "SGI", "SPIDER", "TGA", "TIFF", "WEBP", "HEIF"):
    out = io.BytesIO()
    src.save(out, fmt)
    if fmt != "PDF":
        assert Image.open(io.BytesIO(out.getvalue())).size[0] > 0, fmt
for ext in (".ppm", ".png", ".webp", ".tga"):  # a save by file name: the extension table
    path = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"review_{os.getpid()}{ext}")
    src.save(path)
    assert Image.open(path).size == (60, 40), ext
    os.remove(path)
print("ok", order)
"""


@pytest.mark.parametrize(
    ("first", "seed"),
    [("JPEG", 1), ("JPEG", 2), ("MPO", 3), ("PNG", 4), ("GIF", 5), ("BMP", 6), ("WEBP", 7), ("TIFF", 8),
     ("HEIF", 9), ("AVIF", 10), ("junk", 11)],
)  # fmt: skip
def test_every_format_decodes_in_any_order_and_pillow_still_saves_everything(files: Path, first: str, seed: int) -> None:
    """A fresh process whose first photo is `first`: every other accepted format then decodes
    (shuffled), unsniffable and unaccepted bytes are UnsupportedImageError, and Pillow saves
    every format it writes (by name and by file extension) afterwards."""
    assert _run(ORDER, str(files), first, str(seed)).startswith("ok")


THREADS = r"""
import io, os, sys, threading
from concurrent.futures import ThreadPoolExecutor
sys.setswitchinterval(1e-5)
import autocrop
from PIL import Image
files = sys.argv[1]
engine = ["JPEG", "MPO", "PNG", "WEBP", "GIF", "TIFF", "BMP", "HEIF", "AVIF"]
other = ["PPM", "PCX", "QOI", "TGA"]
data = {n: open(os.path.join(files, n), "rb").read() for n in engine + other}
gate = threading.Barrier(2 * len(engine) + len(other))
def engine_decode(name):
    gate.wait()
    return autocrop.decode(data[name]).rgb.shape
def pillow_open(name):
    gate.wait()
    im = Image.open(io.BytesIO(data[name]))
    im.load()
    im.save(io.BytesIO(), "WEBP" if name == "PPM" else "PNG")
    return im.format
with ThreadPoolExecutor(len(engine) * 2 + len(other)) as pool:
    shapes = [pool.submit(engine_decode, n) for n in engine * 2]
    formats = [pool.submit(pillow_open, n) for n in other]
    assert [f.result() for f in shapes] == [(40, 60, 3)] * (2 * len(engine))
    assert [f.result() for f in formats] == other
print("ok")
"""


def test_concurrent_first_decodes_in_threads(files: Path) -> None:
    """A fresh process's first decodes race in threads (every format twice) beside Pillow's own
    opens and saves of formats the engine does not accept: all succeed."""
    for _ in range(2):
        assert _run(THREADS, str(files)).strip() == "ok"


RENDER = r"""
import io, struct, sys
import numpy as np
from PIL import Image
import autocrop
from autocrop import CropOptions
photo = open(sys.argv[1], "rb").read()
options = CropOptions.from_ratios("1:1,16:9")
assert [m for m in sys.modules if m.startswith("PIL.") and m.endswith("ImagePlugin")] == []
result = autocrop.analyse(photo, options)  # the process's first photo: a JPEG
assert [m for m in sys.modules if m.startswith("PIL.") and m.endswith("ImagePlugin")] == ["PIL.JpegImagePlugin"]
assert "PIL.ImageCms" not in sys.modules and "autocrop.overrides" not in sys.modules
from autocrop import OutputSpec, RenderRequest
for fmt, name in (("jpeg", "JPEG"), ("png", "PNG"), ("webp", "WEBP")):
    done = autocrop.run_job(photo, options, OutputSpec(size=(64, 48), fmt=fmt))
    assert len(done.outputs) == 2, fmt
    for crop, out in done.rendered():
        im = Image.open(io.BytesIO(out.data))
        assert (im.format, im.size) == (name, (64, 48)), (fmt, im.format, im.size)
    assert done.manifest()["crops"][0]["media_type"] == out.media_type
outs = autocrop.render_crops(photo, [RenderRequest(c.box, fmt=f) for c in result.crops for f in ("png", "webp", "jpeg")])
assert [Image.open(io.BytesIO(o.data)).format for o in outs] == ["PNG", "WEBP", "JPEG"] * 2
print("ok")
"""


def test_render_path_in_a_fresh_process_whose_first_photo_is_a_jpeg(tmp_path: Path) -> None:
    """analyse, run_job (JPEG, PNG, WEBP outputs) and render_crops in a fresh process whose
    first photo is a JPEG: every output is written and reads back in its format."""
    rng = np.random.default_rng(3)
    pixels = np.clip(quadrants(480, 320).astype(np.int16) + rng.integers(-20, 20, (320, 480, 3)), 0, 255)
    path = tmp_path / "photo.jpg"
    path.write_bytes(encode_image(pixels.astype(np.uint8), "JPEG"))
    assert _run(RENDER, str(path)).strip() == "ok"


def _large_rgb_profile() -> bytes:
    """An sRGB profile padded past render.MAX_ICC_BYTES (64 KiB): one the render converts."""
    profile = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    profile += b"\0" * (70_000 - len(profile))
    profile[0:4] = struct.pack(">I", len(profile))
    return bytes(profile)


PROFILES = r"""
import io, sys
import numpy as np
from PIL import Image
import autocrop
big_png, cmyk_jpeg, kept_png = (open(p, "rb").read() for p in sys.argv[1:4])
for data in (big_png, cmyk_jpeg, kept_png):  # analysis first: no colour profile module needed
    assert autocrop.decode(data).rgb.shape == (40, 60, 3)
assert "PIL.ImageCms" not in sys.modules
from autocrop import Box, RenderRequest
from autocrop.render import MAX_ICC_BYTES
# a large RGB profile is applied to the pixels (decode._to_mode's lazily imported ImageCms)
out = autocrop.render_crops(big_png, [RenderRequest(Box(30, 0, 30, 20), fmt="png")])[0]
im = Image.open(io.BytesIO(out.data))
assert im.mode == "RGB" and 0 < len(im.info["icc_profile"]) < MAX_ICC_BYTES, len(im.info.get("icc_profile", b""))
assert np.asarray(im)[..., 1].mean() > 150 > np.asarray(im)[..., 0].mean()  # still green
out = autocrop.render_crops(cmyk_jpeg, [RenderRequest(Box(30, 0, 30, 20), fmt="jpeg")])[0]
px = np.asarray(Image.open(io.BytesIO(out.data)))
assert px.ndim == 3 and px[..., 1].mean() > px[..., 0].mean()
out = autocrop.render_crops(kept_png, [RenderRequest(Box(0, 0, 60, 40), fmt="webp")])[0]
assert Image.open(io.BytesIO(out.data)).info.get("icc_profile") == Image.open(io.BytesIO(kept_png)).info["icc_profile"]
print("ok")
"""


def test_colour_profiles_still_apply_in_a_fresh_process(tmp_path: Path) -> None:
    """Photos with ICC profiles in a fresh process (ImageCms not imported by the analysis): a
    PNG whose large RGB profile is converted to sRGB, a CMYK JPEG, a PNG whose profile is kept."""
    pixels = quadrants(60, 40)
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    paths = []
    for name, data in (
        ("big.png", encode_image(pixels, "PNG", icc_profile=_large_rgb_profile())),
        ("cmyk.jpg", encode_image(Image.fromarray(pixels).convert("CMYK"), "JPEG")),
        ("kept.png", encode_image(pixels, "PNG", icc_profile=srgb)),
    ):
        (tmp_path / name).write_bytes(data)
        paths.append(str(tmp_path / name))
    assert _run(PROFILES, *paths).strip() == "ok"


OVERRIDES = r"""
import sys
import autocrop
from autocrop import CropOptions, Region
photo = open(sys.argv[1], "rb").read()
options = CropOptions.from_ratios("1:1,16:9", boxes=(("1:1", Region(0.25, 0.0, 0.5, 0.75)),))
result = autocrop.analyse(photo, options)
boxes = {c.ratio: c.box.to_list() for c in result.crops}
assert boxes["1:1"] == [120, 0, 240, 240], boxes  # exactly the box, in the photo's pixels
from autocrop.overrides import crop_version
v = crop_version({"photo": "a", "boxes": [1, 2]})
assert v == crop_version({"boxes": [1, 2], "photo": "a"}) != crop_version({"photo": "b"}), v
print("ok")
"""


def test_exact_box_override_in_a_fresh_process(tmp_path: Path) -> None:
    """A fresh process's first analysis with an exact-box override (the lazily imported
    overrides module) crops exactly that box; crop_version (lazy hashlib) digests."""
    path = tmp_path / "photo.jpg"
    path.write_bytes(encode_image(quadrants(480, 320), "JPEG"))
    assert _run(OVERRIDES, str(path)).strip() == "ok"


# --- window offsets: the previous implementation (2a173d6), verbatim, as the reference -----------


def _old_positions(free: int, step: float) -> np.ndarray:
    if free <= 0:
        return np.zeros(1, np.int64)
    n = int(math.ceil(free / max(step, 1.0))) + 1
    grid = np.rint(np.linspace(0, free, n)).astype(np.int64)
    return np.unique(np.append(grid, free // 2))


def _old_proposed(width, height, ratio, position_step, scale_step, min_scale, focal_point):  # type: ignore[no-untyped-def]
    from autocrop.candidates import Grid, _centred, _ProposalSettings, window_sizes

    options = _ProposalSettings(position_step, scale_step, min_scale, focal_point)
    xs, ys, ws, hs, ss = [], [], [], [], []
    grids = []
    start = 0
    for w, h, s in window_sizes(width, height, ratio, options):
        if options.focal_point is not None:
            px = _centred(options.focal_point[0] * width, w, width)
            py = _centred(options.focal_point[1] * height, h, height)
        else:
            px = _old_positions(width - w, options.position_step * width)
            py = _old_positions(height - h, options.position_step * height)
        gx, gy = np.meshgrid(px, py)
        n = gx.size
        grids.append(Grid(start, px, py, w, h))
        start += n
        xs.append(gx.ravel())
        ys.append(gy.ravel())
        ws.append(np.full(n, w, np.int64))
        hs.append(np.full(n, h, np.int64))
        ss.append(np.full(n, s, np.float64))
    arrays = [np.concatenate(a) for a in (xs, ys, ws, hs, ss)] + [a for g in grids for a in (g.px, g.py)]
    for a in arrays:
        a.setflags(write=False)
    return arrays[:5], tuple(grids)


def _same_array(a: np.ndarray, b: np.ndarray) -> None:
    assert a.dtype == b.dtype and a.shape == b.shape, (a.dtype, b.dtype, a.shape, b.shape)
    assert np.array_equal(a, b)
    assert a.flags.writeable == b.flags.writeable and a.flags.c_contiguous == b.flags.c_contiguous


def _cases() -> list[tuple]:
    rng = np.random.default_rng(11)
    sizes = [(1, 1), (1, 2), (2, 1), (3, 7), (5, 5), (640, 480), (4032, 3024), (3024, 4032), (99_991, 3),
             (100_000, 1), (1, 100_000), (100_000, 99_989)]  # fmt: skip
    ratios = [1.0, 16 / 9, 9 / 16, 4 / 5, 1.91, 0.01, 100.0]
    cases = []
    for width, height in sizes:
        for ratio in ratios:
            for step in (0.01, 0.5, 0.0333) if min(width, height) < 10_000 else (0.01, 0.5):
                cases.append((width, height, ratio, step, 0.05, 0.6, None))
            for focal in ((0.0, 0.0), (1.0, 1.0), (0.3, 0.9)):
                cases.append((width, height, ratio, 0.01, 0.05, 0.6, focal))
            cases.append((width, height, ratio, 0.01, 0.013, 0.1, None))
    cases += [(100_000, 1, 1.0, 1e-5, 0.05, 0.6, None), (100_000, 3, 1.0, 1e-5, 0.05, 0.6, None),
              (7, 100_000, 0.01, 1e-6, 0.2, 0.1, None)]  # fmt: skip
    for _ in range(30):
        cases.append((int(rng.integers(1, 9000)), int(rng.integers(1, 9000)), float(rng.uniform(0.2, 5)),
                      float(rng.uniform(0.002, 0.5)), float(rng.uniform(0.02, 1)), float(rng.uniform(0.1, 1)),
                      None if rng.random() < 0.7 else (float(rng.random()), float(rng.random()))))  # fmt: skip
    return cases


def test_window_sets_equal_the_previous_implementation_bit_for_bit() -> None:
    """Every array (values, dtype, order, contiguity, read-only flag) and every Grid of
    `_proposed` equals the numpy implementation it replaced, extreme sizes and steps included."""
    from autocrop.candidates import _proposed

    for case in _cases():
        got = _proposed(*case)
        (x, y, w, h, scale), grids = _old_proposed(*case)
        for name, old in zip(("x", "y", "w", "h", "scale"), (x, y, w, h, scale)):
            _same_array(getattr(got, name), old)
        assert len(got.grids) == len(grids), case
        for new_grid, old_grid in zip(got.grids, grids):
            for field in old_grid.__dataclass_fields__:
                a, b = getattr(new_grid, field), getattr(old_grid, field)
                if isinstance(b, np.ndarray):
                    _same_array(a, b)
                else:
                    assert a == b and type(a) is type(b), (case, field, a, b)
