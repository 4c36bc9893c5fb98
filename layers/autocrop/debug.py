"""Debug view: why a crop was chosen, as one PNG (the original demo's table, in one picture).

    [ saliency heatmap over the photo | faces, runner-up and chosen boxes ]
    [ the chosen crops, one per ratio, labelled with ratio and score      ]

Everything is drawn at analysis size: it explains the analysis, it is not a preview.
"""

from __future__ import annotations

import cv2
import numpy as np

from .decode import decode
from .memory import DEFAULT_MEMORY_BUDGET
from .options import DEFAULT_MAX_PIXELS
from .types import Box, CropResult

#: One colour (BGR) per ratio, in request order, cycling.
PALETTE = ((0, 200, 255), (255, 120, 0), (80, 220, 60), (220, 60, 220), (0, 80, 255), (255, 255, 0))
FACE_BGR = (255, 255, 255)
GAP = 8
HEATMAP_OPACITY = 0.55


def _to_analysis(box: Box, sx: float, sy: float) -> tuple[int, int, int, int]:
    """Full-resolution box -> (x0, y0, x1, y1) at analysis size."""
    return (
        round(box.x * sx),
        round(box.y * sy),
        round(box.right * sx) - 1,
        round(box.bottom * sy) - 1,
    )


def _label(img: np.ndarray, text: str, x: int, y: int, colour: tuple[int, int, int]) -> None:
    """Text with a dark outline, readable on any photo."""
    font, scale = cv2.FONT_HERSHEY_SIMPLEX, 0.45
    org = (max(2, x), max(12, y))
    cv2.putText(img, text, org, font, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(img, text, org, font, scale, colour, 1, cv2.LINE_AA)


def render_debug(rgb: np.ndarray, result: CropResult) -> np.ndarray:
    """The debug picture (BGR uint8) for an analysis image and the result found on it."""
    photo = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    ah, aw = photo.shape[:2]
    sx, sy = aw / result.width, ah / result.height
    sal = result.saliency
    if sal.shape != (ah, aw):
        sal = cv2.resize(sal, (aw, ah), interpolation=cv2.INTER_LINEAR)
    heat = cv2.applyColorMap(np.clip(sal * 255, 0, 255).astype(np.uint8), cv2.COLORMAP_JET)
    heat = cv2.addWeighted(heat, HEATMAP_OPACITY, photo, 1 - HEATMAP_OPACITY, 0)
    boxes = photo.copy()
    for face in result.faces:
        x0, y0, x1, y1 = _to_analysis(face.box, sx, sy)
        for panel in (heat, boxes):
            cv2.rectangle(panel, (x0, y0), (x1, y1), FACE_BGR, 1)
    for i, crop in enumerate(result.crops):
        colour = PALETTE[i % len(PALETTE)]
        dim = tuple(int(c * 0.6) for c in colour)
        for other in result.candidates.get(crop.ratio, ()):
            x0, y0, x1, y1 = _to_analysis(other, sx, sy)
            cv2.rectangle(boxes, (x0, y0), (x1, y1), dim, 1)
    for i, crop in enumerate(result.crops):
        colour = PALETTE[i % len(PALETTE)]
        x0, y0, x1, y1 = _to_analysis(crop.box, sx, sy)
        cv2.rectangle(boxes, (x0, y0), (x1, y1), colour, 2)
        # A legend, bottom up: labels on the boxes would overlap where boxes share an edge.
        _label(boxes, f"{crop.ratio}  score {crop.score:.2f}", 6, ah - 8 - 16 * (len(result.crops) - i), colour)
    _label(heat, f"saliency: {result.models.get('saliency', '?')}", 6, 16, (255, 255, 255))
    _label(boxes, f"faces: {len(result.faces)}  (thin: runners-up)", 6, ah - 8, FACE_BGR)
    top = np.concatenate([heat, np.zeros((ah, GAP, 3), np.uint8), boxes], axis=1)

    width = top.shape[1]
    crops = []
    for i, crop in enumerate(result.crops):
        x0, y0, x1, y1 = _to_analysis(crop.box, sx, sy)
        crops.append((photo[max(0, y0) : y1 + 1, max(0, x0) : x1 + 1], crop, PALETTE[i % len(PALETTE)]))
    ratios = sum(c.shape[1] / max(1, c.shape[0]) for c, _, _ in crops)
    # At least a pixel: a photo a few pixels across leaves less width than the gaps take.
    row_h = max(1, int(min(ah, (width - GAP * (len(crops) - 1)) / max(ratios, 1e-6))))
    row = np.zeros((row_h, width, 3), np.uint8)
    x = 0
    for img, crop, colour in crops:
        w = max(1, round(img.shape[1] * row_h / max(1, img.shape[0])))
        w = min(w, width - x)
        if w <= 0 or img.size == 0:
            continue
        row[:, x : x + w] = cv2.resize(img, (w, row_h), interpolation=cv2.INTER_AREA)
        _label(row, f"{crop.ratio}  {crop.score:.2f}", x + 4, 16, colour)
        x += w + GAP
    return np.concatenate([top, np.zeros((GAP, width, 3), np.uint8), row], axis=0)


def debug_view(data: bytes, result: CropResult, *, max_pixels: int = DEFAULT_MAX_PIXELS,
               memory_budget: int = DEFAULT_MEMORY_BUDGET) -> bytes:  # fmt: skip
    """PNG of the saliency heatmap, faces, candidate and chosen boxes, and the crops.

    Drawn on the analysis image the result carries (no decode); a result without it (built by
    hand, or loaded) decodes `data` at the saliency map's size.
    """
    rgb = result.image
    if rgb is None or rgb.shape[:2] != result.saliency.shape:
        long_side = max(result.saliency.shape)
        rgb = decode(data, max_pixels, analysis_long_side=long_side, analysis_min_long_side=None,
                     memory_budget=memory_budget).rgb  # fmt: skip
    ok, png = cv2.imencode(".png", render_debug(rgb, result))
    if not ok:  # pragma: no cover - OpenCV always encodes a uint8 BGR image
        raise RuntimeError("PNG encoding failed")
    return png.tobytes()


__all__ = ["debug_view", "render_debug"]
