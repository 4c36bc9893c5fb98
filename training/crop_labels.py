"""EVALUATION.md's crop labels, in one place: fixations inside a box, the oracle, face cuts.

`training.crop_eval` scores crops with them, `training.ceiling` the split-half ceiling, and
`training.ranker` labels its training windows with the same functions (vectorised forms for
many boxes at once), so the ranker learns exactly what the evaluation measures.

- A fixation is inside a box when the pixel it rounds to is.
- of_oracle: fixations inside / the most any box of the same width and height holds.
- A face counts (EVALUATION.md) when it is frontal, unoccluded and its shorter side is at
  least 3% of the image width; boxes running past the image edge are clipped to it. It is cut
  when more than 10% and less than 90% of its box lies inside the crop.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from autocrop import Box
from autocrop.geometry import area, overlap_area, xywh_to_xyxy

from .datasets import FaceLabel, FixationRecord

#: EVALUATION.md: faces whose shorter side is at least this share of the image width count.
FACE_MIN_SHORT_SIDE = 0.03
#: ...and a face is cut when the share of its box inside the crop is strictly between these.
CUT_LOW, CUT_HIGH = 0.10, 0.90

FaceRect = tuple[float, float, float, float]


def point_integral(points: np.ndarray, width: int, height: int) -> np.ndarray:
    """(H+1, W+1) integral image of (x, y) point counts at the pixels they round to."""
    xy = np.floor(np.asarray(points, np.float64).reshape(-1, 2) + 0.5).astype(np.int64)
    x = np.clip(xy[:, 0], 0, width - 1)
    y = np.clip(xy[:, 1], 0, height - 1)
    counts = np.zeros((height, width), np.int64)
    np.add.at(counts, (y, x), 1)
    integral = np.zeros((height + 1, width + 1), np.int64)
    integral[1:, 1:] = counts.cumsum(0).cumsum(1)
    return integral


def fixation_integral(record: FixationRecord) -> np.ndarray:
    """(H+1, W+1) integral image of a record's fixation counts."""
    return point_integral(record.fixations, record.width, record.height)


def box_counts(integral: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Fixations inside each (x, y, w, h) integer box (clipped to the image)."""
    h, w = integral.shape[0] - 1, integral.shape[1] - 1
    b = np.asarray(boxes, np.int64).reshape(-1, 4)
    x0, y0 = np.clip(b[:, 0], 0, w), np.clip(b[:, 1], 0, h)
    x1, y1 = np.clip(b[:, 0] + b[:, 2], 0, w), np.clip(b[:, 1] + b[:, 3], 0, h)
    return integral[y1, x1] - integral[y0, x1] - integral[y1, x0] + integral[y0, x0]


def box_count(integral: np.ndarray, box: Box) -> int:
    """Fixations inside `box` (clipped to the image)."""
    return int(box_counts(integral, np.array([box.to_list()]))[0])


def window_sums(integral: np.ndarray, w: int, h: int) -> np.ndarray:
    """Sum of the integrated map over every w x h box inside the image, indexed [y, x]."""
    ii = integral
    return ii[h:, w:] - ii[:-h or None, w:] - ii[h:, : -w or None] + ii[:-h or None, : -w or None]


def oracle_count(integral: np.ndarray, w: int, h: int) -> int:
    """The most fixations any w x h box inside the image holds."""
    return int(window_sums(integral, w, h).max())


def oracle_counts(integral: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """`oracle_count` for each (x, y, w, h) row's width and height (computed once per size)."""
    cache: dict[tuple[int, int], int] = {}
    sizes = np.asarray(boxes, np.int64).reshape(-1, 4)[:, 2:]
    out = np.empty(len(sizes), np.int64)
    for i, (w, h) in enumerate(sizes):
        key = (int(w), int(h))
        if key not in cache:
            cache[key] = oracle_count(integral, *key)
        out[i] = cache[key]
    return out


def oracle_shares(counts: np.ndarray, oracle: np.ndarray) -> np.ndarray:
    """of_oracle of many boxes from their fixation counts and oracle counts (1.0 with no fixations)."""
    counts, oracle = np.asarray(counts), np.asarray(oracle)
    return np.where(oracle > 0, counts / np.maximum(oracle, 1), 1.0)


def of_oracle(integral: np.ndarray, box: Box) -> float:
    """Fixations inside `box` / the most any box of its size holds (1.0 with no fixations)."""
    return float(oracle_shares(box_count(integral, box), oracle_count(integral, box.w, box.h)))


def face_rects(faces: Iterable[FaceLabel], width: int, height: int, countable: bool = True) -> np.ndarray:
    """(F, 4) x0, y0, x1, y1 of labelled faces at least 3% of the width, clipped to the image.

    `countable`: EVALUATION.md's faces (frontal and unoccluded). Otherwise every frontal or
    profile face (the ranker's training labels: a sliced face is as bad turned or hidden).
    """
    rows = []
    for f in faces:
        if countable and (not f.frontal or f.occluded):
            continue
        if not countable and not (f.frontal or f.profile):
            continue
        if min(f.w, f.h) < FACE_MIN_SHORT_SIDE * width:
            continue
        x0, y0 = max(0.0, f.x), max(0.0, f.y)
        x1, y1 = min(float(width), f.x + f.w), min(float(height), f.y + f.h)
        if x1 > x0 and y1 > y0:
            rows.append((x0, y0, x1, y1))
    return np.array(rows, np.float64).reshape(-1, 4)


def countable_faces(faces: Iterable[FaceLabel], width: int, height: int) -> list[FaceRect]:
    """EVALUATION.md's faces of a photo, as (x0, y0, x1, y1) tuples."""
    return [tuple(map(float, r)) for r in face_rects(faces, width, height)]  # type: ignore[misc]


def cuts_faces(boxes: np.ndarray, rects: np.ndarray | Sequence[FaceRect]) -> np.ndarray:
    """Per (x, y, w, h) box: more than 10% and less than 90% of some face rect lies inside."""
    b = xywh_to_xyxy(np.asarray(boxes, np.float64).reshape(-1, 4))
    r = np.asarray(rects, np.float64).reshape(-1, 4)
    if len(r) == 0:
        return np.zeros(len(b), bool)
    share = overlap_area(b[:, None], r[None, :]) / area(r)[None, :]
    return ((share > CUT_LOW) & (share < CUT_HIGH)).any(axis=1)


def cuts_a_face(box: Box, faces: Sequence[FaceRect]) -> bool:
    """True when `box` cuts one of `faces` (EVALUATION.md's rule)."""
    return bool(cuts_faces(np.array([box.to_list()]), faces)[0])


__all__ = [
    "CUT_HIGH",
    "CUT_LOW",
    "FACE_MIN_SHORT_SIDE",
    "FaceRect",
    "box_count",
    "box_counts",
    "countable_faces",
    "cuts_a_face",
    "cuts_faces",
    "face_rects",
    "fixation_integral",
    "of_oracle",
    "oracle_count",
    "oracle_counts",
    "oracle_shares",
    "point_integral",
    "window_sums",
]
