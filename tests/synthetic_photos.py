"""Photos drawn for known-answer tests (tests/engine/test_crop_rules.py) and the docs' examples
(docs/crop_rules/examples.py): their right crops follow from their geometry. No engine
import here, so any version of the engine can be shown them."""

from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image, ImageDraw


def jpeg(im: Image.Image | np.ndarray, quality: int = 92) -> bytes:
    if isinstance(im, np.ndarray):
        im = Image.fromarray(im)
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def busy(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A busy background: colour blobs a tenth of the photo across with fine grain on top,
    the way foliage or a street behind a subject looks to a colour test."""
    rng = np.random.default_rng(seed)
    blobs = rng.integers(0, 256, (max(2, height // 40), max(2, width // 40), 3)).astype(np.uint8)
    out = cv2.resize(blobs, (width, height), interpolation=cv2.INTER_CUBIC).astype(np.float64)
    out += rng.normal(0, 12, out.shape)
    return np.clip(out, 0, 255).astype(np.uint8)


def plain(width: int, height: int, colour=(246, 246, 242), noise: float = 2.0, seed: int = 0) -> np.ndarray:
    """A studio background: one colour with a little sensor noise."""
    rng = np.random.default_rng(seed)
    out = np.empty((height, width, 3), np.float64)
    out[:] = colour
    out += rng.normal(0, noise, out.shape)
    return np.clip(out, 0, 255).astype(np.uint8)


def product(background: np.ndarray) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """A red box with a blue lid drawn off-centre; (photo, subject extent x0, y0, x1, y1)."""
    im = Image.fromarray(background)
    d = ImageDraw.Draw(im)
    d.rectangle([700, 300, 999, 699], fill=(200, 30, 30))
    d.ellipse([760, 220, 939, 339], fill=(30, 30, 200))
    return im, (700, 220, 1000, 700)


def squares(background: np.ndarray) -> tuple[Image.Image, list[tuple[int, int, int, int]]]:
    """Five coloured squares in a row (a graphic): (photo, their rects)."""
    im = Image.fromarray(background)
    d = ImageDraw.Draw(im)
    rects = []
    for i, colour in enumerate([(220, 40, 40), (40, 160, 60), (40, 80, 220), (240, 180, 20), (150, 50, 180)]):
        x = 40 + i * 230
        d.rectangle([x, 150, x + 189, 339], fill=colour)
        rects.append((x, 150, x + 190, 340))
    return im, rects
