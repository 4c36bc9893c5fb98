"""Box arithmetic shared by the engine, the evaluations and training: overlap and IoU.

Boxes are (x0, y0, x1, y1) along the last axis; every function broadcasts over the leading
axes, so `iou(a[:, None], b[None, :])` is the pairwise matrix and `iou(a, b)` the row-wise one.
"""

from __future__ import annotations

import numpy as np


def xywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """(..., 4) rows of x, y, w, h -> x0, y0, x1, y1 (float64)."""
    b = np.asarray(boxes, np.float64)
    if b.shape[-1] != 4:
        raise ValueError(f"a box has 4 numbers, got shape {b.shape}")
    return np.concatenate([b[..., :2], b[..., :2] + b[..., 2:4]], axis=-1)


def area(boxes: np.ndarray) -> np.ndarray:
    """Area of (x0, y0, x1, y1) boxes."""
    b = np.asarray(boxes, np.float64)
    return (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])


def overlap_area(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Area of the intersection of (x0, y0, x1, y1) boxes (0 where they do not meet)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    iw = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    ih = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    return iw * ih


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of (x0, y0, x1, y1) boxes; 0 where both are empty."""
    inter = overlap_area(a, b)
    union = area(a) + area(b) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


__all__ = ["area", "iou", "overlap_area", "xywh_to_xyxy"]
