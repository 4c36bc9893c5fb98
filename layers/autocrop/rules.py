"""Crop rules that decide a ratio's crop before any window is scored.

- **Whole photo** (`CropOptions.whole_photo_tolerance`): a photo within that share of a
  ratio's shape is kept whole for it. Trimming 0.1% off a 680x383 graphic to make it exactly
  16:9 only loses content; a resize to an exact size stretches it by at most the tolerance.
- **Plain background** (`plain_border_share`, `plain_colour_distance`, `plain_margin`): when
  the photo's border is nearly all one colour (a product shot, a cut-out), whatever differs
  from that colour is the subject, and the crop is the smallest box of the ratio that holds
  it whole with the margin, centred on it, where the ratio allows. The saliency network
  sees a product on white as salient in its middle and the engine would otherwise crop
  into its ends; the hand-made crops people make of such photos keep the object whole
  with a little space around it.

Both are named in `Crop.chosen_by`, and the crop is still measured against the face rule
and scored term by term like any window (`engine.box_crop`). Caller hints (a focal point,
keep or boost regions, box overrides) take precedence over the plain-background rule: a
person who says where to look is not second-guessed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from .candidates import largest_window
from .options import CropOptions
from .types import Box

#: `Crop.chosen_by` of a photo kept whole for a ratio it nearly has.
WHOLE_PHOTO = "whole photo"
#: `Crop.chosen_by` of a crop holding a plain background's subject whole.
PLAIN_BACKGROUND = "plain background"
#: Depth of the border read for the background's colour, as a share of the shorter side
#: (at least 2 analysis px).
BORDER_DEPTH = 0.02
#: Specks smaller than this share of the photo (dust, JPEG noise, a watermark's dot) are
#: not the subject.
MIN_PART = 0.0005
#: A subject this close to the whole photo on both sides leaves nothing to trim.
WHOLE_SHARE = 0.9


def shape_error(width: int, height: int, ratio: float) -> float:
    """How far the photo's shape is from `ratio` (W / H): |photo W/H / ratio - 1|."""
    return abs(width / height / ratio - 1.0)


def keeps_whole(width: int, height: int, ratio: float, options: CropOptions) -> bool:
    """Whether the whole photo is the crop of `ratio` (`whole_photo_tolerance`)."""
    # (+1e-12: a shape exactly at the tolerance counts, whatever the float rounding of its error)
    tolerance = options.whole_photo_tolerance
    return tolerance > 0 and shape_error(width, height, ratio) <= tolerance + 1e-12


@dataclass(frozen=True)
class Subject:
    """A plain background's subject: its extent in upright full-resolution px (x0, y0, x1, y1)
    and the background's colour (RGB)."""

    x0: float
    y0: float
    x1: float
    y1: float
    colour: tuple[int, int, int]
    #: (K, 4) x0, y0, x1, y1 of each separate part of the subject (the objects of a graphic,
    #: the products of a shot): where the subject does not fit a ratio, crop edges stay
    #: off them (`candidates.objects_cut`).
    parts: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))


def plain_subject(rgb: np.ndarray, width: int, height: int, options: CropOptions) -> Subject | None:
    """The subject of a photo on a plain background, or None when the border is not plain,
    nothing stands out, or the subject fills the photo. `rgb`: the upright analysis image
    (uint8, H x W x 3) of a `width` x `height` photo."""
    if options.plain_border_share <= 0 or rgb.ndim != 3 or min(rgb.shape[:2]) < 8:
        return None
    if options.focal_point is not None or options.keep or options.boost:
        return None
    h, w = rgb.shape[:2]
    depth = max(2, round(BORDER_DEPTH * min(h, w)))
    pixels = rgb.astype(np.int16)
    border = np.concatenate([
        pixels[:depth].reshape(-1, 3), pixels[-depth:].reshape(-1, 3),
        pixels[depth:-depth, :depth].reshape(-1, 3), pixels[depth:-depth, -depth:].reshape(-1, 3),
    ])  # fmt: skip
    colour = np.median(border, axis=0)
    limit = options.plain_colour_distance**2
    if float((((border - colour) ** 2).sum(axis=1) <= limit).mean()) < options.plain_border_share:
        return None
    differs = (((pixels - colour) ** 2).sum(axis=2) > limit).astype(np.uint8)
    # A thin line or a speck of noise is not a subject; a 3x3 opening removes both.
    differs = cv2.morphologyEx(differs, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    count, _, stats, _ = cv2.connectedComponentsWithStats(differs, connectivity=8)
    parts = stats[1:][stats[1:, cv2.CC_STAT_AREA] >= MIN_PART * h * w]
    if count <= 1 or len(parts) == 0:
        return None
    x0 = int(parts[:, cv2.CC_STAT_LEFT].min())
    y0 = int(parts[:, cv2.CC_STAT_TOP].min())
    x1 = int((parts[:, cv2.CC_STAT_LEFT] + parts[:, cv2.CC_STAT_WIDTH]).max())
    y1 = int((parts[:, cv2.CC_STAT_TOP] + parts[:, cv2.CC_STAT_HEIGHT]).max())
    if (x1 - x0) >= WHOLE_SHARE * w and (y1 - y0) >= WHOLE_SHARE * h:
        return None
    sx, sy = width / w, height / h
    rgb_colour = tuple(int(round(float(c))) for c in colour)
    boxes = np.stack([
        parts[:, cv2.CC_STAT_LEFT], parts[:, cv2.CC_STAT_TOP],
        parts[:, cv2.CC_STAT_LEFT] + parts[:, cv2.CC_STAT_WIDTH], parts[:, cv2.CC_STAT_TOP] + parts[:, cv2.CC_STAT_HEIGHT],
    ], axis=1).astype(np.float64) * np.array([sx, sy, sx, sy])  # fmt: skip
    boxes = np.minimum(boxes, [width, height, width, height])
    return Subject(x0 * sx, y0 * sy, min(width, x1 * sx), min(height, y1 * sy), rgb_colour, boxes)  # type: ignore[arg-type]


def subject_box(subject: Subject, width: int, height: int, ratio: float, options: CropOptions) -> Box | None:
    """The smallest box of `ratio` holding `subject` with `plain_margin` around it (the margin
    clipped where the subject meets the photo's edge), centred on it and moved inside the
    photo; None when no box of the ratio holds it."""
    margin = options.plain_margin * max(width, height)
    x0, y0 = max(0.0, subject.x0 - margin), max(0.0, subject.y0 - margin)
    x1, y1 = min(float(width), subject.x1 + margin), min(float(height), subject.y1 + margin)
    need_w, need_h = x1 - x0, y1 - y0
    box_w = max(need_w, need_h * ratio)
    box_h = box_w / ratio
    # Measured against the largest whole-pixel window of the ratio, not the photo: a box
    # rounded up past it would be clipped on its other side, off the ratio.
    big_w, big_h = largest_window(width, height, ratio)
    if box_w > big_w + 0.5 or box_h > big_h + 0.5:
        return None
    # Whole pixels, the ratio kept within half a pixel: the longer side first, the other
    # rounded from it, grown a pixel at a time until both hold what is needed.
    if ratio >= 1:
        bw = min(big_w, max(1, int(np.ceil(box_w - 1e-9))))
        while round(bw / ratio) < need_h - 1e-6 and bw < big_w:
            bw += 1
        bh = min(height, max(1, round(bw / ratio)))
    else:
        bh = min(big_h, max(1, int(np.ceil(box_h - 1e-9))))
        while round(bh * ratio) < need_w - 1e-6 and bh < big_h:
            bh += 1
        bw = min(width, max(1, round(bh * ratio)))
    cx, cy = (subject.x0 + subject.x1) / 2, (subject.y0 + subject.y1) / 2
    bx = int(round(min(max(cx - bw / 2, 0.0), width - bw)))
    by = int(round(min(max(cy - bh / 2, 0.0), height - bh)))
    return Box(bx, by, bw, bh)


__all__ = ["PLAIN_BACKGROUND", "WHOLE_PHOTO", "Subject", "keeps_whole", "plain_subject", "shape_error", "subject_box"]
