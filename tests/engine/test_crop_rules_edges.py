"""Edge cases of the crop rules (`autocrop.rules`): boxes at the limits of a photo's shape."""

from __future__ import annotations

import numpy as np
import pytest

from autocrop.options import CropOptions
from autocrop.rules import Subject, subject_box


def off_ratio(w: int, h: int, ratio: float) -> float:
    """How far a w x h box is from `ratio`, in pixels of its nearer side (as `box_fits`)."""
    return min(abs(w - h * ratio), abs(h - w / ratio))


@pytest.mark.parametrize(
    ("width", "height", "ratio", "margin", "rect"),
    [
        (183, 77, 1.91, 0.2, (0.0, 66.4, 111.4, 72.4)),  # rounded up past the 147x77 window
        (225, 9, 20.0, 0.03, (0.0, 3.1, 175.1, 7.7)),  # wider than the 180x9 window
        (10, 347, 0.8, 0.0, (0.0, 333.9, 9.2, 347.0)),  # taller than the 10x12 window
    ],
)
def test_a_subject_box_near_the_largest_window_keeps_its_ratio(width, height, ratio, margin, rect) -> None:
    box = subject_box(Subject(*rect, colour=(255, 255, 255)), width, height, ratio, CropOptions(plain_margin=margin))
    if box is not None:
        assert box.x >= 0 and box.y >= 0 and box.x + box.w <= width and box.y + box.h <= height
        assert off_ratio(box.w, box.h, ratio) <= 1.0


def test_subject_boxes_keep_their_ratio_and_hold_the_subject() -> None:
    rng = np.random.default_rng(1)
    for _ in range(20000):
        width, height = (int(v) for v in rng.integers(1, 400, 2))
        ratio = float(rng.choice([1.0, 16 / 9, 0.8, 9 / 16, 1.91, 20.0, 0.05, rng.uniform(0.05, 20)]))
        x0, y0 = rng.uniform(0, width), rng.uniform(0, height)
        x1, y1 = rng.uniform(x0, width), rng.uniform(y0, height)
        margin = float(rng.choice([0.0, 0.03, 0.2, 1.0]))
        box = subject_box(
            Subject(x0, y0, x1, y1, (255, 255, 255)), width, height, ratio, CropOptions(plain_margin=margin)
        )
        if box is None:
            continue
        assert box.x >= 0 and box.y >= 0 and box.x + box.w <= width and box.y + box.h <= height
        assert off_ratio(box.w, box.h, ratio) <= 1.0 + 1e-9, (width, height, ratio, box)
        m = margin * max(width, height)
        need = (max(0, x0 - m), max(0, y0 - m), min(width, x1 + m), min(height, y1 + m))
        assert box.x <= need[0] + 1 and box.y <= need[1] + 1, (width, height, ratio, box)
        assert box.x + box.w >= need[2] - 1 and box.y + box.h >= need[3] - 1, (width, height, ratio, box)


@pytest.mark.parametrize(("width", "height", "tolerance"), [(1020, 1000, 0.02), (1100, 1000, 0.1)])
def test_a_photo_exactly_at_the_tolerance_is_kept_whole(width: int, height: int, tolerance: float) -> None:
    from autocrop.rules import keeps_whole

    assert keeps_whole(width, height, 1.0, CropOptions(whole_photo_tolerance=tolerance))
    assert not keeps_whole(width + 1, height, 1.0, CropOptions(whole_photo_tolerance=tolerance))
