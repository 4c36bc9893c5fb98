"""The one preprocessing contract shared by the runtime, training and export.

Any aspect ratio goes in without distortion: the photo is resized so its long side fits a
square canvas and the rest is padded ("letterbox"). The model itself normalises pixels
(ImageNet mean/std, inside its first layer), so the canvas holds plain RGB values in
[0, 255] as float32 and the padding is the ImageNet mean colour (normalises to ~0).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

#: Side of the square canvas the saliency network sees (pixels).
CANVAS = 256
#: Output stride of the saliency map relative to the canvas.
OUTPUT_STRIDE = 4
#: ImageNet statistics used by the torchvision backbone (RGB in [0, 1]).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: Padding colour: the ImageNet mean in [0, 255], so padded pixels normalise to ~0.
PAD_RGB = tuple(round(255 * m) for m in IMAGENET_MEAN)


@dataclass(frozen=True)
class Letterbox:
    """Where the photo sits inside the canvas, in canvas pixels."""

    x: int
    y: int
    w: int
    h: int
    canvas: int

    def content_slice(self, scale: int = 1) -> tuple[slice, slice]:
        """Rows/cols of the content inside a map that is `canvas / scale` pixels wide."""
        return (
            slice(self.y // scale, -(-(self.y + self.h) // scale)),
            slice(self.x // scale, -(-(self.x + self.w) // scale)),
        )


def letterbox_geometry(height: int, width: int, canvas: int = CANVAS) -> Letterbox:
    """Placement of an image of `height` x `width` in a centred square canvas."""
    if height <= 0 or width <= 0:
        raise ValueError(f"image must be non-empty, got {width}x{height}")
    scale = canvas / max(height, width)
    w = max(1, min(canvas, round(width * scale)))
    h = max(1, min(canvas, round(height * scale)))
    return Letterbox(x=(canvas - w) // 2, y=(canvas - h) // 2, w=w, h=h, canvas=canvas)


def letterbox(rgb: np.ndarray, canvas: int = CANVAS) -> tuple[np.ndarray, Letterbox]:
    """Resize an RGB uint8 image into the canvas without distortion; float32 [0, 255]."""
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 RGB image, got shape {rgb.shape}")
    box = letterbox_geometry(rgb.shape[0], rgb.shape[1], canvas)
    shrinking = box.w < rgb.shape[1]
    resized = cv2.resize(rgb, (box.w, box.h), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    out = np.empty((canvas, canvas, 3), np.float32)
    out[...] = PAD_RGB
    out[box.y : box.y + box.h, box.x : box.x + box.w] = resized
    return out, box


def unletterbox(saliency: np.ndarray, box: Letterbox, height: int, width: int) -> np.ndarray:
    """Cut the content out of a canvas-space map and resize it to `height` x `width`."""
    scale = box.canvas // saliency.shape[0]
    rows, cols = box.content_slice(scale)
    content = np.ascontiguousarray(saliency[rows, cols], dtype=np.float32)
    return cv2.resize(content, (width, height), interpolation=cv2.INTER_LINEAR)


def normalise_map(saliency: np.ndarray) -> np.ndarray:
    """Scale a non-negative map to [0, 1] (all-zero maps stay zero)."""
    saliency = np.clip(saliency.astype(np.float32), 0.0, None)
    peak = float(saliency.max()) if saliency.size else 0.0
    return saliency / peak if peak > 0 else saliency
