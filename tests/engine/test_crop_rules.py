"""Known answers for the crop rules (`autocrop.rules`) and the edge terms that keep crop
edges off slivers (`candidates.edge_cuts`, `stray_bodies`, `objects_cut`).

Each photo is drawn here, so the right answer is known from its geometry, not from the
code: a near-ratio frame kept whole, an object or a person cut-out on a plain background
kept whole with its margin, the same object on a busy background left to the score, the
shapes of a graphic never sliced, a dropped person's body never left at a crop's edge. The
real models run (the saliency network, YuNet).
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from autocrop.engine import analyse
from autocrop.job import OutputSpec, run_job
from autocrop.options import CropOptions, parse_ratio
from autocrop.rules import PLAIN_BACKGROUND, WHOLE_PHOTO, shape_error
from autocrop.types import Region
from tests.shared_data import DATA, needs_data
from tests.synthetic_photos import busy, jpeg, plain, product, squares

EYECROWD_STIMULI = DATA / "saliency" / "eyecrowd" / "stimuli_640x480"

RATIOS = ("1:1", "16:9", "4:5", "9:16")


def holds(box, rect, slack: float = 0.0) -> bool:
    x0, y0, x1, y1 = rect
    return box.x <= x0 + slack and box.y <= y0 + slack and box.x + box.w >= x1 - slack and box.y + box.h >= y1 - slack


# --- whole photo ------------------------------------------------------------------------


def test_a_photo_within_the_tolerance_of_a_ratio_is_kept_whole() -> None:
    photo = jpeg(busy(680, 383))  # 0.13% wider than tall than 16:9
    assert shape_error(680, 383, 16 / 9) < 0.002
    crop = analyse(photo, CropOptions.from_ratios("16:9,1:1")).crop("16:9")
    assert crop.chosen_by == WHOLE_PHOTO and crop.box.to_list() == [0, 0, 680, 383]
    assert crop.face_report.cut == 0
    # 2.8% off is beyond the default tolerance: trimmed to the exact shape as before.
    wider = analyse(jpeg(busy(700, 383)), CropOptions.from_ratios("16:9")).crop("16:9")
    assert wider.chosen_by != WHOLE_PHOTO and abs(wider.box.w / wider.box.h - 16 / 9) * wider.box.h <= 1
    # The option turns it off.
    exact = analyse(photo, CropOptions.from_ratios("16:9", whole_photo_tolerance=0.0)).crop("16:9")
    assert exact.chosen_by != WHOLE_PHOTO and exact.box.to_list() != [0, 0, 680, 383]


def test_an_exact_size_is_reached_by_a_stretch_the_tolerance_bounds() -> None:
    options = CropOptions.from_ratios("16:9")
    done = run_job(jpeg(busy(680, 383)), options, OutputSpec(size=(1600, 900), fmt="png"))
    (crop, out), = list(done.rendered())
    assert crop.chosen_by == WHOLE_PHOTO
    assert (out.width, out.height) == (1600, 900)
    stretch = abs((out.width / out.height) / (crop.box.w / crop.box.h) - 1)
    assert 0 < stretch <= options.whole_photo_tolerance


@pytest.mark.parametrize("tolerance", [-0.01, 0.2])
def test_the_tolerance_is_bounded(tolerance: float) -> None:
    with pytest.raises(Exception, match="whole_photo_tolerance"):
        CropOptions(whole_photo_tolerance=tolerance)


# --- plain background -------------------------------------------------------------------


def test_an_object_on_a_plain_background_is_kept_whole_with_its_margin() -> None:
    im, subject = product(plain(1200, 900))
    options = CropOptions(ratios=RATIOS)
    result = analyse(jpeg(im), options)
    margin = options.plain_margin * 1200
    x0, y0, x1, y1 = subject
    wanted = (max(0, x0 - margin), max(0, y0 - margin), min(1200, x1 + margin), min(900, y1 + margin))
    for crop in result.crops:
        box = crop.box
        assert crop.chosen_by == PLAIN_BACKGROUND, crop.ratio
        # Whole, with the margin (within the analysis image's rounding: 1200 -> 640 px).
        assert holds(box, wanted, slack=4), (crop.ratio, box, wanted)
        # The smallest such box: on the side that binds it, no more than the margin.
        need_w, need_h = wanted[2] - wanted[0], wanted[3] - wanted[1]
        assert min(box.w - need_w, box.h - need_h) <= 6, (crop.ratio, box)
        # Centred on the subject unless the photo's edge stops it.
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        if 0 < box.x and box.x + box.w < 1200:
            assert abs(box.x + box.w / 2 - cx) <= 4, crop.ratio
        if 0 < box.y and box.y + box.h < 900:
            assert abs(box.y + box.h / 2 - cy) <= 4, crop.ratio
        assert abs(box.w / box.h - parse_ratio(crop.ratio)) * box.h <= 1.0 + 1e-9


def test_the_same_object_on_a_busy_background_is_left_to_the_score() -> None:
    im, _ = product(busy(1200, 900))
    result = analyse(jpeg(im), CropOptions(ratios=RATIOS))
    assert {c.chosen_by for c in result.crops}.isdisjoint({PLAIN_BACKGROUND, WHOLE_PHOTO})


def test_a_dark_or_coloured_plain_background_counts_too() -> None:
    im, subject = product(plain(1200, 900, colour=(20, 24, 30), noise=3.0))
    crop = analyse(jpeg(im), CropOptions.from_ratios("4:5")).crop("4:5")
    assert crop.chosen_by == PLAIN_BACKGROUND and holds(crop.box, subject)


def test_a_caller_who_says_where_to_look_is_not_second_guessed() -> None:
    im, _ = product(plain(1200, 900))
    for hint in ({"focal_point": (0.2, 0.5)}, {"keep": (Region(0.05, 0.1, 0.2, 0.2),)}):
        result = analyse(jpeg(im), CropOptions.from_ratios("1:1", **hint))
        assert result.crop("1:1").chosen_by != PLAIN_BACKGROUND, hint
    off = analyse(jpeg(im), CropOptions.from_ratios("1:1", plain_border_share=0.0)).crop("1:1")
    assert off.chosen_by != PLAIN_BACKGROUND


@needs_data
def test_a_person_cut_out_on_a_plain_background_is_kept_whole() -> None:
    """A real person (face and body, from an EyeCrowd photo) pasted onto a studio white."""
    source = np.asarray(Image.open(EYECROWD_STIMULI / "236.jpg").convert("RGB"))
    person = source[140:480, 195:325]  # one woman, head to knees, her own backdrop with her
    canvas = plain(900, 700)
    canvas[250:590, 480:610] = person
    result = analyse(jpeg(canvas), CropOptions(ratios=("1:1", "4:5", "9:16")))
    assert result.faces, "YuNet finds her face"
    for crop in result.crops:
        assert crop.chosen_by == PLAIN_BACKGROUND, crop.ratio
        assert holds(crop.box, (480, 250, 610, 590), slack=3), (crop.ratio, crop.box)
        assert crop.face_report.cut == 0 and crop.face_report.heads_cut == 0


# --- edges: no slivers ------------------------------------------------------------------


def test_a_graphics_shapes_are_never_sliced_where_the_graphic_does_not_fit() -> None:
    im, rects = squares(plain(1200, 500, colour=(255, 255, 255), noise=1.0))
    result = analyse(jpeg(im), CropOptions(ratios=("1:1", "4:5", "9:16")))
    for crop in result.crops:
        b = crop.box
        assert crop.chosen_by != PLAIN_BACKGROUND, "five squares in a row fit none of these ratios"
        for x0, y0, x1, y1 in rects:
            inside = max(0, min(b.x + b.w, x1) - max(b.x, x0))
            assert inside <= 3 or inside >= (x1 - x0) - 3, (crop.ratio, b, (x0, x1))
        assert crop.breakdown["objects_sliced"] == 0


@needs_data
def test_a_dropped_persons_body_is_not_left_at_the_crops_edge() -> None:
    """Three people side by side, 40 px apart, on a busy background: a 9:16 crop keeps one,
    drops the others whole, and shows no sliver of their bodies (a narrower crop exists)."""
    source = np.asarray(Image.open(EYECROWD_STIMULI / "236.jpg").convert("RGB"))
    person = source[140:480, 195:325]
    canvas = busy(1200, 500, seed=3)
    tiles = [(300, 130), (470, 130), (640, 130)]
    for x, y in tiles:
        canvas[y:y + 340, x:x + 130] = person
    crop = analyse(jpeg(canvas), CropOptions.from_ratios("9:16")).crop("9:16")
    b = crop.box
    kept = [x for x, _ in tiles if b.x <= x + 8 and x + 122 <= b.x + b.w]
    assert len(kept) == 1, (b, "one person kept")
    for x, _ in tiles:
        if x in kept:
            continue
        shown = max(0, min(b.x + b.w, x + 130) - max(b.x, x))
        assert shown <= 12, (b, x, "a sliver of a dropped person")  # her tile's backdrop edge at most
    assert crop.breakdown["people_slivers"] == 0


def test_a_dropped_persons_body_counts_by_how_much_of_it_shows() -> None:
    """`stray_bodies` on windows drawn by hand: one face of 40 px at x 400-440 (its body
    estimate 2.4 face widths wide, 372-468), windows that keep her, drop her cleanly, or
    drop her face but show part of her body."""
    from autocrop.candidates import BODY_WIDTH, STRAY_FULL, Windows, stray_bodies

    faces = np.array([[400.0, 100.0, 40.0, 50.0, 0.9]])
    body = BODY_WIDTH * 40
    x = np.array([380, 0, 0, 0, 460])  # keeps her; clear of her; shows 24 px; 48 px; 8 px on her right
    w = np.array([100, 372, 396, 420, 100])
    windows = Windows(x=x, y=np.zeros(5, np.int64), w=w, h=np.full(5, 400), scale=np.ones(5))
    got = stray_bodies(windows, faces, 1000, 600)
    want = [0.0, 0.0, 24 / body / STRAY_FULL, 48 / body / STRAY_FULL, 8 / body / STRAY_FULL]
    assert got == pytest.approx(np.minimum(want, 1.0), abs=1e-6)
