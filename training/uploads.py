"""Photos as users upload them: a data set's small photo made into a camera-sized JPEG.

The shared data sets hold 640x480 photos; a 12 MP upload is decoded by the engine at 1/8
(504 px), where its faces are smaller than in the 640 px photo. Upscaling a photo and adding
sensor-like noise reproduces that path (a smooth upscale would decode faster and compress
smaller than a real photo; real 12 MP JPEGs are 3-6 MB, these 2.7-2.9 MB).
"""

from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image


def camera_like_jpeg(rgb: np.ndarray, size: tuple[int, int], seed: int) -> bytes:
    """Upscale `rgb` to `size` (w, h; cropped to its ratio first), add noise, JPEG q=92."""
    w, h = size
    src_ratio = rgb.shape[1] / rgb.shape[0]
    if src_ratio > w / h:  # crop the source to the target ratio first
        cw = round(rgb.shape[0] * w / h)
        x0 = (rgb.shape[1] - cw) // 2
        rgb = rgb[:, x0 : x0 + cw]
    else:
        ch = round(rgb.shape[1] * h / w)
        y0 = (rgb.shape[0] - ch) // 2
        rgb = rgb[y0 : y0 + ch]
    big = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    rng = np.random.default_rng(seed)
    big += rng.normal(0.0, 5.0, big.shape).astype(np.float32)
    out = io.BytesIO()
    Image.fromarray(np.clip(big, 0, 255).astype(np.uint8)).save(out, "JPEG", quality=92)
    return out.getvalue()


__all__ = ["camera_like_jpeg"]
