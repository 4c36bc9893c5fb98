"""The face rule on the window grid: the same answers as the dense rule, a crowd cropped
without slicing a detected face, and the per-crop face report."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
import skimage.data
from PIL import Image

from autocrop import CropOptions, analyse
from autocrop.candidates import Windows, propose_windows
from autocrop.face_rule import (
    count_inside,
    face_feasible,
    face_importance,
    face_report,
    head_cuts,
    measure_faces,
    rects_of,
    sliced,
)

OPTIONS = CropOptions()
SIZES = [(4032, 3024), (640, 480), (3024, 4032), (1000, 1000)]
RATIOS = [1.0, 16 / 9, 0.8, 9 / 16]


def face_feasible_dense(windows: Windows, faces: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """The rule written out plainly over a windows x faces matrix (the reference)."""
    cut = sliced(windows, rects_of(faces))
    ok = allowed & ~cut.any(axis=1)
    if ok.any():
        return ok
    importance = np.where(cut, face_importance(faces)[None, :], 0.0)
    worst = np.where(allowed, importance.max(axis=1), np.inf)
    ok = worst <= worst.min() * (1 + 1e-9)
    total = np.where(ok, importance.sum(axis=1), np.inf)
    return ok & (total <= total.min() * (1 + 1e-9))


def as_dense(windows: Windows) -> Windows:
    """The same windows without their grid description (the dense path)."""
    return Windows(windows.x, windows.y, windows.w, windows.h, windows.scale)


def random_faces(rng: np.random.Generator, n: int, width: int, height: int, lo: float, hi: float) -> np.ndarray:
    side = rng.uniform(lo, hi, n) * min(width, height)
    return np.stack(
        [rng.uniform(0, width - side), rng.uniform(0, height - side), side, side * rng.uniform(0.9, 1.3, n),
         rng.uniform(0.6, 1.0, n)],
        axis=1,
    )


@pytest.mark.parametrize("trial", range(16))
def test_the_grid_rule_matches_the_dense_rule(trial: int) -> None:
    rng = np.random.default_rng(trial)
    width, height = SIZES[trial % 4]
    windows = propose_windows(width, height, RATIOS[(trial // 4) % 4], OPTIONS)
    assert windows.grids, "proposed windows carry their grids"
    n_faces = 250 if trial % 5 == 0 else int(rng.integers(1, 60))
    faces = random_faces(rng, n_faces, width, height, 0.02, 0.25)
    if trial % 3 == 0:  # tied importance: the fallback's levels must treat ties alike
        faces[1:, 2:5] = faces[0, 2:5]
    allowed = rng.random(len(windows)) > 0.1
    dense = as_dense(windows)
    reference = face_feasible_dense(dense, faces, allowed)
    np.testing.assert_array_equal(face_feasible(windows, faces, allowed), reference)
    np.testing.assert_array_equal(face_feasible(dense, faces, allowed), reference)
    np.testing.assert_allclose(
        count_inside(windows, faces, faces[:, 4]), count_inside(dense, faces, faces[:, 4]), rtol=1e-9, atol=1e-9
    )
    np.testing.assert_array_equal(count_inside(windows, faces), count_inside(dense, faces))


def test_measure_faces_with_nothing_to_measure() -> None:
    windows = propose_windows(640, 480, 1.0, OPTIONS)
    allowed = np.ones(len(windows), bool)
    feasible, sums = measure_faces(windows, [(np.zeros((0, 5)), None)], [], allowed)
    assert feasible.all() and not sums[0].any()


def test_head_cuts_are_measured_on_the_allowed_windows_only() -> None:
    rng = np.random.default_rng(7)
    windows = propose_windows(4032, 3024, 1.0, OPTIONS)
    faces = random_faces(rng, 30, 4032, 3024, 0.03, 0.1)
    faces[0] = (1000, 100, 1500, 2800, 0.9)  # a close-up no window holds with its head
    among = rng.random(len(windows)) > 0.7
    cuts = head_cuts(windows, faces, 4032, 3024, OPTIONS, among=among)
    assert np.isnan(cuts[~among]).all() and np.isfinite(cuts[among]).all()
    full = head_cuts(Windows(windows.x, windows.y, windows.w, windows.h, windows.scale), faces, 4032, 3024, OPTIONS)
    np.testing.assert_allclose(cuts[among], full[among], atol=1e-6)  # floors over every window (dense)
    assert (cuts[among] > 0).any(), "some allowed windows cut a head"


def jpeg(rgb: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, "JPEG", quality=92)
    return out.getvalue()


def team_photo(rows: int, cols: int, face_px: int, gap: int, size: tuple[int, int]) -> np.ndarray:
    """Rows of the astronaut's face on a grey wall with `gap` px between faces."""
    face = cv2.resize(skimage.data.astronaut()[30:230, 140:310], (face_px, round(face_px * 1.18)))
    width, height = size
    img = np.full((height, width, 3), 110, np.uint8)
    fh, fw = face.shape[:2]
    x0 = (width - cols * fw - (cols - 1) * gap) // 2
    y0 = (height - rows * fh - (rows - 1) * gap) // 2
    for r in range(rows):
        for c in range(cols):
            x, y = x0 + c * (fw + gap), y0 + r * (fh + gap)
            img[y : y + fh, x : x + fw] = face
    return img


def test_a_crowd_is_cropped_without_slicing_a_detected_face() -> None:
    data = jpeg(team_photo(4, 9, 70, 40, (1600, 1200)))
    result = analyse(data)
    assert len(result.faces) >= 30, "the crowd's faces are found"
    for crop in result.crops:
        # The promise checked with this test's own geometry, not the engine's face helpers
        # (the rule and its report share them, so one bug there would hide in both).
        b = crop.box
        whole_inside = 0
        for face in result.faces:
            f = face.box
            # Faces are reported as the integer boxes covering the detections: 1 px of slack.
            inside = b.x <= f.x + 1 and b.y <= f.y + 1 and b.right >= f.right - 1 and b.bottom >= f.bottom - 1
            outside = b.right <= f.x + 1 or b.x >= f.right - 1 or b.bottom <= f.y + 1 or b.y >= f.bottom - 1
            assert inside or outside, f"{crop.ratio} {b} slices the face {f}"
            whole_inside += inside
        assert whole_inside >= 1, f"{crop.ratio} {b} keeps no face of the crowd"
        # ...and the report the engine returns tells the same story.
        report = crop.face_report
        assert report.cut == 0 and report.protected_cut == 0, f"{crop.ratio} slices a face: {report}"
        assert report.kept + report.dropped == len(result.faces)
        assert report.kept == crop.faces_kept >= 1


def test_where_heads_cannot_stay_whole_faces_still_do() -> None:
    # Two faces 30 px apart whose guards (faces + 20 px a side) overlap: no window can keep
    # one guard whole and leave the other out, but the bare faces can be split.
    faces = np.array([[100, 100, 50, 60, 0.9], [180, 100, 50, 60, 0.8]], np.float64)
    guards = faces + np.array([-20, -20, 40, 40, 0])
    windows = Windows(np.array([0, 0, 0]), np.array([0, 0, 0]), np.array([178, 140, 400]),
                      np.array([300, 300, 300]), np.ones(3))
    feasible, _ = measure_faces(windows, [], [guards, faces], np.array([True, True, False]))
    # 0..178 keeps face 1 whole and face 2 out (slicing its guard); 0..140 slices face 1
    np.testing.assert_array_equal(feasible, [True, False, False])
    report = face_report((0, 0, 178, 300), faces, 400, 300, OPTIONS.with_(face_guard_side=0.5), 400, 300)
    assert report.heads_cut == 1 and report.protected_cut == 0 and report.all_protected_whole


class TouchingFaces:
    """A detector that reports a row of touching, tall faces across the whole photo: no 9:16
    window's edges can miss them all."""

    name = "touching-faces"

    def detect(self, bgr: np.ndarray, score_threshold: float) -> np.ndarray:
        w, h = bgr.shape[1] / 16, bgr.shape[0]  # the same faces at every pass size
        return np.array([[i * w, 0.1 * h, w, 0.8 * h, 0.9 if i != 8 else 0.99] for i in range(16)], np.float32)


def test_the_report_says_when_a_face_could_not_be_kept_whole() -> None:
    from autocrop.engine import analyse_image, decode_for

    options = CropOptions(ratios=("9:16",), face_small_pass="never")
    decoded = decode_for(jpeg(team_photo(1, 1, 50, 0, (640, 480))), options)
    crop = analyse_image(decoded, options, detector=TouchingFaces()).crops[0]
    report = crop.face_report
    assert report.protected_cut >= 1 and not report.all_protected_whole
    assert report.to_dict()["all_protected_whole"] is False
    assert report.kept + report.dropped + report.cut == 16


def test_face_report_counts() -> None:
    faces = np.array(
        [
            [10, 10, 20, 20, 0.9],  # inside
            [200, 10, 20, 20, 0.9],  # outside
            [90, 10, 20, 20, 0.9],  # across the right edge
            [50, 60, 3, 3, 0.9],  # tiny, inside
        ],
        np.float64,
    )
    report = face_report((0, 0, 100, 100), faces, 400, 100, OPTIONS, 400, 100)
    assert (report.kept, report.dropped, report.cut) == (2, 1, 1)
    assert report.protected_cut == 1  # the face across the edge is protected
    assert report.heads_cut == 0

    beside = np.array([[101, 10, 20, 20, 0.9]])  # face whole outside, its head reaches in
    assert face_report((0, 0, 100, 100), beside, 400, 100, OPTIONS, 400, 100).heads_cut == 1


def test_every_window_gets_a_head_cut_unless_the_caller_ranks_only_allowed_ones() -> None:
    from autocrop.candidates import SaliencyIndex, measure_windows

    rng = np.random.default_rng(3)
    index = SaliencyIndex.build(rng.random((48, 64)), 640, 480)
    windows = propose_windows(640, 480, 1.0, OPTIONS)
    for faces in (np.zeros((0, 5)), np.array([[300.0, 150, 40, 48, 0.9]])):
        every = measure_windows(windows, index, faces, 640, 480, OPTIONS)
        assert np.isfinite(every.head_cut).all(), "training tables read infeasible windows too"
        allowed = measure_windows(windows, index, faces, 640, 480, OPTIONS, heads_of_allowed_only=True)
        np.testing.assert_allclose(allowed.head_cut[allowed.feasible], every.head_cut[every.feasible])


def test_near_tied_importances_count_as_tied() -> None:
    faces = np.array([[50, 0, 100, 100, 0.9], [250, 0, 100 * (1 + 1e-12), 100, 0.9]], np.float64)
    windows = Windows(np.array([0, 200]), np.array([0, 0]), np.array([100, 100]), np.array([100, 100]), np.ones(2))
    np.testing.assert_array_equal(face_feasible(windows, faces), [True, True])
    np.testing.assert_array_equal(face_feasible_dense(windows, faces, np.ones(2, bool)), [True, True])
