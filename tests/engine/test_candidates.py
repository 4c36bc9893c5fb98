"""Candidate windows and the face rule: known-answer geometry tables."""

from __future__ import annotations

import numpy as np
import pytest

from autocrop import CropOptions, Region
from autocrop.candidates import (
    SaliencyIndex,
    centredness,
    edge_cuts,
    head_boxes,
    largest_window,
    measure_windows,
    propose_windows,
    sliced,
    window_sizes,
)
from autocrop.options import parse_ratio
from autocrop.ranking import CompositionRanker, PhotoContext, rank_candidates
from autocrop.types import Box

OPTIONS = CropOptions()


def choose(
    width: int,
    height: int,
    ratio: str,
    faces: list[tuple[float, float, float, float]] = (),  # type: ignore[assignment]
    saliency: np.ndarray | None = None,
    options: CropOptions = OPTIONS,
) -> Box:
    """The best window of `ratio` for a photo with these faces (x, y, w, h; confidence 0.9),
    measured and ranked as the engine does (`autocrop.engine.analyse_image`)."""
    sal = saliency if saliency is not None else np.ones((height, width), np.float32)
    index = SaliencyIndex.build(sal, width, height)
    face_rows = np.array([(*f, 0.9) for f in faces], np.float64).reshape(-1, 5)
    photo = PhotoContext.build(width, height, index, face_rows)
    windows = propose_windows(width, height, parse_ratio(ratio), options)
    features = measure_windows(windows, index, photo.faces, width, height, options, heads_of_allowed_only=True)
    ranking = rank_candidates(CompositionRanker(), photo, windows, features, options, limit=60)
    i = int(ranking.order[0])
    return Box(int(windows.x[i]), int(windows.y[i]), int(windows.w[i]), int(windows.h[i]))


def head(face: tuple[float, float, float, float], width: int, height: int, relax: float = 1.0) -> np.ndarray:
    return head_boxes(np.array([[*face, 1.0]]), width, height, OPTIONS, relax)[0]


def inside(box: Box, rect: np.ndarray) -> bool:
    return box.x <= rect[0] and box.y <= rect[1] and box.right >= rect[2] and box.bottom >= rect[3]


def outside(box: Box, rect: np.ndarray) -> bool:
    return box.right <= rect[0] or box.x >= rect[2] or box.bottom <= rect[1] or box.y >= rect[3]


@pytest.mark.parametrize(
    ("width", "height", "ratio", "expected"),
    [
        (640, 480, "1:1", (480, 480)),
        (640, 480, "16:9", (640, 360)),
        (640, 480, "4:5", (384, 480)),
        (640, 480, "9:16", (270, 480)),
        (480, 640, "16:9", (480, 270)),
        (480, 640, "9:16", (360, 640)),
        (1000, 1000, "1.91:1", (1000, 524)),
        (4032, 3024, "3:2", (4032, 2688)),
        (640, 480, "4:3", (640, 480)),
        (7, 5, "9:16", (3, 5)),
    ],
)
def test_largest_window(width: int, height: int, ratio: str, expected: tuple[int, int]) -> None:
    assert largest_window(width, height, parse_ratio(ratio)) == expected


@pytest.mark.parametrize("ratio", ["1:1", "16:9", "4:5", "9:16", "1.91:1", "3:2"])
@pytest.mark.parametrize(("width", "height"), [(640, 480), (480, 640), (4000, 3000), (513, 287)])
def test_windows_fit_the_photo_and_keep_the_ratio(width: int, height: int, ratio: str) -> None:
    r = parse_ratio(ratio)
    windows = propose_windows(width, height, r, OPTIONS)
    assert len(windows) > 0
    assert (windows.x >= 0).all() and (windows.y >= 0).all()
    assert (windows.x1 <= width).all() and (windows.y1 <= height).all()
    # Within rounding of one pixel on the shorter side.
    err = np.abs(windows.w / windows.h - r) * windows.h / np.minimum(windows.w, windows.h)
    assert (err <= 1.0 / np.minimum(windows.w, windows.h) * (1 + r) + 1e-9).all()
    sizes = window_sizes(width, height, r, OPTIONS)
    assert sizes[0][:2] == largest_window(width, height, r)
    assert min(s for _, _, s in sizes) >= OPTIONS.min_scale - 1e-9
    # Both ends of the free range are candidates at full scale.
    full = windows.scale == 1.0
    assert windows.x[full].min() == 0 and windows.x1[full].max() == width
    assert windows.y[full].min() == 0 and windows.y1[full].max() == height


def test_saliency_sums_match_brute_force() -> None:
    rng = np.random.default_rng(0)
    sal = rng.random((48, 64)).astype(np.float32)
    index = SaliencyIndex.build(sal, 128, 96)  # full resolution is 2x the map
    x0, y0, x1, y1 = np.array([0, 10, 64]), np.array([0, 4, 30]), np.array([128, 50, 100]), np.array([96, 40, 90])
    got = index.sums(x0, y0, x1, y1)
    want = [sal[a // 2 : c // 2, b // 2 : d // 2].sum(dtype=np.float64) for b, a, d, c in zip(x0, y0, x1, y1)]
    np.testing.assert_allclose(got, want, rtol=1e-9)
    assert index.total == pytest.approx(float(sal.sum(dtype=np.float64)), rel=1e-9)


def test_saliency_picks_the_salient_side() -> None:
    sal = np.zeros((480, 640), np.float32)
    sal[200:260, 560:620] = 1.0  # a subject near the right edge
    box = choose(640, 480, "1:1", saliency=sal)
    assert box.w == 480 and box.x <= 560 and box.right >= 620


def test_uniform_saliency_gives_the_centred_largest_box() -> None:
    assert choose(640, 480, "1:1") == Box(80, 0, 480, 480)
    assert choose(640, 480, "16:9") == Box(0, 60, 640, 360)


# --- the face rule: (photo, ratio, faces) -> the chosen box keeps each head whole or out --------

FACE_TABLE = [
    # photo, ratio, faces (x, y, w, h)
    ((640, 480), "9:16", [(40, 120, 60, 70)]),  # face at the far left
    ((640, 480), "9:16", [(290, 150, 60, 70)]),  # centred face
    ((640, 480), "9:16", [(300, 4, 50, 60)]),  # face at the top edge: no room above exists
    ((640, 480), "16:9", [(280, 20, 60, 70)]),  # face high up in a landscape crop
    ((640, 480), "16:9", [(280, 390, 60, 70)]),  # face low down
    ((480, 640), "16:9", [(200, 250, 80, 95)]),  # portrait photo, landscape crop
    ((640, 480), "1:1", [(60, 150, 50, 60), (520, 150, 50, 60)]),  # two faces far apart
    ((640, 480), "4:5", [(100, 100, 40, 50), (200, 110, 40, 50), (450, 100, 40, 50)]),
    ((4000, 3000), "9:16", [(1700, 800, 400, 480)]),  # 12 MP photo
]


@pytest.mark.parametrize(("size", "ratio", "faces"), FACE_TABLE)
def test_face_rule_keeps_heads_whole_with_room_or_leaves_them_out(
    size: tuple[int, int], ratio: str, faces: list[tuple[float, float, float, float]]
) -> None:
    width, height = size
    box = choose(width, height, ratio, faces)
    for face in faces:
        h = head(face, width, height)
        assert inside(box, h) or outside(box, h), f"{box} slices the head {h} of face {face}"


def test_a_face_in_the_middle_is_kept_with_room() -> None:
    face = (290, 150, 60, 70)
    box = choose(640, 480, "9:16", [face])
    assert inside(box, head(face, 640, 480))


def test_when_faces_cannot_all_fit_the_more_important_one_is_kept() -> None:
    # Too far apart for one 9:16 window; the small face sits where the centred window would be.
    big, small = (60, 140, 80, 95), (300, 150, 40, 48)
    box = choose(640, 480, "9:16", [big, small])
    assert inside(box, head(big, 640, 480))
    assert outside(box, head(small, 640, 480))


def test_a_face_too_tall_for_its_head_room_is_kept_not_dropped() -> None:
    # Face so tall that its full head room does not fit a 16:9 window of a 640x480 photo.
    face = (280, 130, 150, 240)
    box = choose(640, 480, "16:9", [face])
    bare = head(face, 640, 480, relax=0.0)
    assert inside(box, bare)


def test_a_crowd_without_gaps_sacrifices_the_least_important_faces() -> None:
    # A row of touching faces across the photo: every 9:16 window edge lands on one.
    faces = [(x, 200, 40, 48) for x in range(0, 640, 40)]
    faces[8] = (320, 180, 80, 96)  # one face much larger (more important) than the others
    faces[9] = (400, 200, 40, 48)
    box = choose(640, 480, "9:16", faces)
    big = head(faces[8], 640, 480, relax=0.0)
    assert inside(box, big) or outside(box, big), "the most important face is never sliced"
    assert sliced_count(box, faces) == 1, "as few faces as possible are sliced"


def sliced_count(box: Box, faces: list[tuple[float, float, float, float]]) -> int:
    from autocrop.candidates import Windows

    windows = Windows(*(np.array([v]) for v in (box.x, box.y, box.w, box.h, 1.0)))
    rects = np.array([(x, y, x + w, y + h) for x, y, w, h in faces], np.float64)
    return int(sliced(windows, rects).sum())


def test_tiny_faces_are_not_protected() -> None:
    tiny = (318, 200, 4, 5)  # under face_min_size of the long side
    box = choose(640, 480, "9:16", [tiny])
    assert box == Box(185, 0, 270, 480)  # the centred box, whatever it does to the tiny face


# --- hints -------------------------------------------------------------------------------------


def test_keep_region_is_contained() -> None:
    options = CropOptions(keep=(Region(0.85, 0.4, 0.1, 0.2),))
    box = choose(640, 480, "9:16", options=options)
    assert box.x <= 0.85 * 640 and box.right >= 0.95 * 640


def test_focal_point_is_inside_and_centred_where_possible() -> None:
    options = CropOptions(focal_point=(0.3, 0.5))
    box = choose(640, 480, "9:16", options=options)
    assert box.x <= 192 <= box.right
    assert abs((box.x + box.w / 2) - 192) <= 0.02 * 640


def test_focal_point_near_the_edge_still_lies_inside() -> None:
    options = CropOptions(focal_point=(0.99, 0.02))
    box = choose(640, 480, "16:9", options=options)
    assert box.x <= 0.99 * 640 <= box.right and box.y <= 0.02 * 480 <= box.bottom


# --- score features ------------------------------------------------------------------------------


def test_edge_cut_is_high_only_where_an_edge_slices_salient_content() -> None:
    sal = np.zeros((100, 200), np.float32)
    sal[:, 90:110] = 1.0  # a vertical salient band
    index = SaliencyIndex.build(sal, 200, 100)
    from autocrop.candidates import Windows

    through = Windows(np.array([0]), np.array([0]), np.array([100]), np.array([100]), np.array([1.0]))
    beside = Windows(np.array([100 + 15]), np.array([0]), np.array([85]), np.array([100]), np.array([1.0]))
    assert edge_cuts(through, index, OPTIONS, 200, 100)[0] > 0.2
    assert edge_cuts(beside, index, OPTIONS, 200, 100)[0] == pytest.approx(0.0)


def test_centredness() -> None:
    from autocrop.candidates import Windows

    w = Windows(np.array([80, 0, 160]), np.array([0, 0, 0]), np.array([480] * 3), np.array([480] * 3), np.ones(3))
    np.testing.assert_allclose(centredness(w, 640, 480), [1.0, 1 - np.sqrt(0.5), 1 - np.sqrt(0.5)])


def test_window_sets_are_reused_read_only_and_bounded():
    """One size, ratio and settings give the same read-only set (its lattice and features
    built once); a set too large for the cache (a fine position_step) is built every time
    and never kept; the cache holds at most PROPOSALS_KEPT sets within PROPOSALS_BYTES."""
    import autocrop.candidates as cand

    options = CropOptions()
    a = cand.propose_windows(4032, 3024, 16 / 9, options)
    assert cand.propose_windows(4032, 3024, 16 / 9, options) is a
    assert cand.propose_windows(4032, 3024, 16 / 9, options.with_(focal_point=(0.3, 0.3))) is not a
    with pytest.raises(ValueError):
        a.x[0] = 1
    with pytest.raises(ValueError):
        a.x1[0] = 1
    fine = options.with_(position_step=0.002)
    big = cand.propose_windows(4032, 3024, 1.0, fine)
    assert len(big) * cand._BYTES_PER_WINDOW > cand.PROPOSALS_BYTES // 4
    assert cand.propose_windows(4032, 3024, 1.0, fine) is not big
    for w in range(100, 100 + 3 * cand.PROPOSALS_KEPT):
        cand.propose_windows(w, 300, 1.0, options)
    assert len(cand._kept) <= cand.PROPOSALS_KEPT
    assert sum(len(w) for w in cand._kept.values()) * cand._BYTES_PER_WINDOW <= cand.PROPOSALS_BYTES


def test_positions_are_numpys_rounded_linspace_with_the_centre():
    """`_positions` builds its offsets in plain Python (quicker for a first photo): the same
    offsets as np.unique(np.rint(np.linspace(0, free, n)) + the centre), over odd sizes and
    steps, halves that round to even included."""
    import math

    from autocrop.candidates import _positions

    rng = np.random.default_rng(7)
    frees = [0, 1, 2, 3, 5, 7, 10, 101, 999, 4031, 100_000, *rng.integers(0, 60_000, 400).tolist()]
    for free in frees:
        for step in (0.3, 1.0, 2.5, 7.3, 120.96, 90.72, 1234.5, 1e9):
            got = _positions(int(free), step)
            if free <= 0:
                assert got.tolist() == [0]
                continue
            n = int(math.ceil(free / max(step, 1.0))) + 1
            grid = np.rint(np.linspace(0, free, n)).astype(np.int64)
            want = np.unique(np.append(grid, free // 2))
            assert got.dtype == np.int64 and np.array_equal(got, want), (free, step)
