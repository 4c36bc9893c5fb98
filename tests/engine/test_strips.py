"""Extreme strips (20000x10, 10x20000 and thinner) crop without a warning reaching the user:
every test here turns warnings into errors."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from autocrop.faces import detect_faces, load_face_detector
from autocrop.job import OutputSpec, run_job
from autocrop.options import CropOptions
from tests.corpus import by_name

pytestmark = pytest.mark.filterwarnings("error")


def noise_png(width: int, height: int, seed: int = 1) -> bytes:
    """Random pixels: on a strip a few px thin, YuNet decodes them into infinite boxes."""
    pixels = np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG")
    return out.getvalue()


STRIPS = {
    "strip_20000x10.png": by_name("strip_20000x10.png").data,
    "strip_10x20000.png": by_name("strip_10x20000.png").data,
    "noise_20000x10.png": noise_png(20000, 10),
    "noise_10x20000.png": noise_png(10, 20000),
    "noise_640x1.png": noise_png(640, 1),
    "noise_2000x4.png": noise_png(2000, 4),
}


@pytest.mark.parametrize("name", list(STRIPS))
def test_a_strip_crops_every_ratio_without_a_warning(name: str) -> None:
    options = CropOptions(ratios=("1:1", "16:9", "4:5", "9:16"), face_small_pass="always")
    done = run_job(STRIPS[name], options, OutputSpec(render=True, debug=True))
    width, height = done.result.width, done.result.height
    assert done.result.faces == ()
    for crop in done.result.crops:
        box = crop.box
        assert 0 <= box.x and box.x + box.w <= width and 0 <= box.y and box.y + box.h <= height
    assert len(list(done.rendered())) == 4 and done.debug_png is not None


@pytest.mark.parametrize("size", [(640, 1), (1, 640), (640, 3), (2000, 4), (4, 2000)])
def test_no_face_pass_runs_on_an_image_no_face_fits_in(size: tuple[int, int]) -> None:
    """YuNet's answer on such an image is boxes far outside it, some infinite, at full
    confidence; the face stage finds nothing there instead."""
    width, height = size
    rgb = np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)
    faces = detect_faces(rgb, load_face_detector(), CropOptions(face_small_pass="always"))
    assert faces.shape == (0, 5)


def test_the_command_line_prints_no_warning_on_strips(tmp_path: Path) -> None:
    for name, data in STRIPS.items():
        (tmp_path / name).write_bytes(data)
    done = subprocess.run([sys.executable, "-W", "error", "-m", "autocrop.cli", "crop", str(tmp_path),
                           "-o", str(tmp_path / "out"), "--debug", str(tmp_path / "debug")],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stderr and "internal error" not in done.stderr
    assert f"{len(STRIPS)} done, 0 failed" in done.stderr
