"""The learned crop ranker: pooling, window statistics, ranking, training helpers, export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from autocrop.candidates import SaliencyIndex, Windows, measure_windows, propose_windows
from autocrop.options import CropOptions
from autocrop.preprocess import letterbox_geometry
from autocrop.ranker import GRID, REGIONS, STAT_NAMES, LearnedRanker, edge_bands, face_stats, pool_regions, window_stats
from autocrop.ranking import DEFAULT_RANKER_MODEL, CompositionRanker, PhotoContext, order_by, rank_candidates, take
from tests.shared_data import DATA, needs_data

OPTIONS = CropOptions()
STAT = {name: i for i, name in enumerate(STAT_NAMES)}


def photo_with_map(features: np.ndarray, width: int = 4000, height: int = 3000, saliency=None, faces=None):
    """A photo context whose analysis image is 640 x 480, over a given (16, 16, C) feature map."""
    sal = np.ones((480, 640), np.float32) if saliency is None else saliency
    index = SaliencyIndex.build(sal, width, height)
    faces = np.zeros((0, 5)) if faces is None else np.asarray(faces, np.float64)
    return PhotoContext.build(width, height, index, faces, features, letterbox_geometry(480, 640))


def brute_mean(feat: np.ndarray, x0: float, y0: float, x1: float, y1: float, cell: float = 16.0) -> np.ndarray:
    """Mean of a cell-constant map over a canvas-pixel rectangle, cell by cell (overlap areas)."""
    edges = np.arange(feat.shape[0] + 1) * cell
    wx = np.clip(np.minimum(edges[1:], x1) - np.maximum(edges[:-1], x0), 0, None)
    wy = np.clip(np.minimum(edges[1:], y1) - np.maximum(edges[:-1], y0), 0, None)
    return np.einsum("r,c,rck->k", wy, wx, feat.astype(np.float64)) / (wx.sum() * wy.sum())


# --- pooling -----------------------------------------------------------------------------------


def test_pooling_is_the_exact_mean_over_each_region():
    rng = np.random.default_rng(0)
    feat = rng.random((16, 16, 4)).astype(np.float32)
    photo = photo_with_map(feat)
    lb = letterbox_geometry(480, 640)
    box = np.array([[1000.0, 500.0, 1500.0, 1200.0]])
    got = pool_regions(photo, box)[0]
    assert got.shape == (REGIONS, 4)
    sx, sy = lb.w / 4000, lb.h / 3000
    x0, y0 = lb.x + 1000 * sx, lb.y + 500 * sy
    bw, bh = 1500 * sx / GRID, 1200 * sy / GRID
    for i in range(GRID):
        for j in range(GRID):
            ref = brute_mean(feat, x0 + j * bw, y0 + i * bh, x0 + (j + 1) * bw, y0 + (i + 1) * bh)
            np.testing.assert_allclose(got[i * GRID + j], ref, atol=1e-5)
    whole = brute_mean(feat, lb.x, lb.y, lb.x + lb.w, lb.y + lb.h)
    np.testing.assert_allclose(got[-1], whole, atol=1e-5)
    # The border is the rest of the photo: photo total = window + border, by area.
    win_area, photo_area = 1500 * 1200, 4000 * 3000
    window_mean = got[: GRID * GRID].mean(axis=0)
    np.testing.assert_allclose(
        got[-1] * photo_area, window_mean * win_area + got[-2] * (photo_area - win_area), rtol=1e-4
    )


def test_a_window_discarding_nothing_has_a_zero_border():
    feat = np.random.default_rng(1).random((16, 16, 3)).astype(np.float32)
    got = pool_regions(photo_with_map(feat), np.array([[0.0, 0.0, 4000.0, 3000.0]]))[0]
    assert np.all(got[GRID * GRID] == 0.0)
    np.testing.assert_allclose(got[: GRID * GRID].mean(axis=0), got[-1], rtol=1e-5)


def test_reducing_the_map_before_pooling_equals_reducing_after():
    rng = np.random.default_rng(2)
    feat = rng.normal(size=(16, 16, 8)).astype(np.float32)
    matrix = rng.normal(size=(8, 3)).astype(np.float32)
    photo = photo_with_map(feat)
    boxes = np.array([[0, 0, 3000, 3000], [500, 200, 2100, 2700], [0, 0, 4000, 3000]], np.float64)
    after = pool_regions(photo, boxes) @ matrix
    before = pool_regions(photo, boxes, photo.feature_integral(lambda x: x @ matrix, key="m"))
    np.testing.assert_allclose(before, after, atol=1e-4)


# --- window statistics -------------------------------------------------------------------------


def test_saliency_layout_of_a_window():
    sal = np.zeros((480, 640), np.float32)
    sal[20:100, 20:120] = 1.0  # a subject in the top-left of the photo
    photo = photo_with_map(np.zeros((16, 16, 2), np.float32), saliency=sal)
    windows = Windows(np.array([0]), np.array([0]), np.array([3000]), np.array([3000]), np.array([1.0]))
    measured = measure_windows(windows, photo.index, photo.faces, 4000, 3000, OPTIONS)
    s = window_stats(photo, windows, measured, OPTIONS)[0]
    assert s.shape == (len(STAT_NAMES),)
    assert s[STAT["saliency_bin00"]] == pytest.approx(1.0)  # all of it in the top-left bin
    assert s[STAT["centroid_dx"]] == pytest.approx(-1 / 3) and s[STAT["centroid_dy"]] == pytest.approx(-1 / 3)
    assert s[STAT["saliency_kept"]] == pytest.approx(1.0)
    assert s[STAT["x1"]] == pytest.approx(0.75) and s[STAT["area_frac"]] == pytest.approx(0.75)
    assert s[STAT["log_aspect"]] == pytest.approx(0.0)
    assert s[STAT["has_faces"]] == 0.0


def test_face_statistics():
    # One 300 px face at (1800, 1200): a window slicing it, one keeping it with room, one without it.
    photo = photo_with_map(np.zeros((16, 16, 2), np.float32), faces=[[1800, 1200, 300, 300, 0.9]])
    windows = Windows(
        np.array([0, 1000, 2400]), np.array([0, 0, 0]), np.array([1950, 2000, 1600]),
        np.array([3000, 3000, 3000]), np.ones(3),
    )  # fmt: skip
    measured = measure_windows(windows, photo.index, photo.faces, 4000, 3000, OPTIONS)
    f = face_stats(photo, windows, measured, OPTIONS)
    assert f[:, 0].tolist() == [1.0, 1.0, 1.0]  # the photo has a protected face
    assert f[:, 1].tolist() == [1.0, 0.0, 0.0]  # sliced by the first window only
    assert f[:, 2].tolist() == [0.0, 1.0, 0.0]  # kept with its margins by the second


def test_face_statistics_follow_the_face_rule_on_close_ups():
    """A face taller than every window is protected by its core (`fit_faces`): a window
    holding the core keeps the face whole, as the face rule says, and does not slice it."""
    photo = photo_with_map(np.zeros((16, 16, 2), np.float32), faces=[[1500, 0, 1000, 3000, 0.9]])
    windows = Windows(np.array([1000, 3000]), np.array([750, 750]), np.array([2000, 1000]), np.array([1500, 1500]), np.ones(2))
    measured = measure_windows(windows, photo.index, photo.faces, 4000, 3000, OPTIONS)
    core = measured.protected[0]
    assert core[3] == pytest.approx(0.9 * 1500)  # the rule's face: the core of the close-up
    assert measured.faces_share[0] == 1.0 and measured.faces_share[1] == 0.0
    f = face_stats(photo, windows, measured, OPTIONS)
    assert f[:, 0].tolist() == [1.0, 1.0]
    assert f[:, 1].tolist() == [0.0, 0.0]  # the core is wholly inside the first, outside the second
    # The subset the engine hands the ranker keeps the rule's faces.
    np.testing.assert_array_equal(take(measured, np.array([1])).protected, measured.protected)


def test_edge_bands_see_a_subject_sliced_by_an_edge():
    sal = np.zeros((480, 640), np.float32)
    sal[200:280, 300:340] = 1.0  # a subject around x = 1875..2125 full-res px
    photo = photo_with_map(np.zeros((16, 16, 2), np.float32), saliency=sal)
    windows = Windows(  # right edge through the subject; subject inside; subject outside
        np.array([0, 1000, 2600]), np.array([0, 0, 0]), np.array([2000, 1500, 1400]),
        np.array([3000, 3000, 3000]), np.ones(3),
    )  # fmt: skip
    inner, outer, cut = edge_bands(photo, windows, OPTIONS).T
    # The subject fills 80 of 480 rows of the bands on both sides of the first window's edge.
    assert cut[0] == pytest.approx(80 / 480, rel=0.02) and cut[1] == 0.0 and cut[2] == 0.0
    assert inner[0] == pytest.approx(80 / 480, rel=0.02) and outer[0] == pytest.approx(80 / 480, rel=0.02)
    assert outer[2] == 0.0  # the third window's right edge is the photo's border


# --- ranking -----------------------------------------------------------------------------------


class AreaRanker:
    """A stand-in learned ranker: prefers the smallest window, anywhere in the shortlist."""

    name = "ranker:smallest"
    scope = "shortlist"

    def score(self, photo, windows, measured, options):
        return -(windows.w * windows.h).astype(np.float64)


def ranked(ranker, features):
    rng = np.random.default_rng(3)
    sal = rng.random((480, 640)).astype(np.float32)
    photo = photo_with_map(features, saliency=sal)
    windows = propose_windows(4000, 3000, 1.0, OPTIONS)
    measured = measure_windows(windows, photo.index, photo.faces, 4000, 3000, OPTIONS)
    return windows, measured, rank_candidates(ranker, photo, windows, measured, OPTIONS, shortlist=50)


def test_composition_ranker_is_the_engine_order():
    windows, measured, r = ranked(CompositionRanker(), np.zeros((16, 16, 2), np.float32))
    assert r.chosen_by == "composition"
    assert set(r.terms) >= {"saliency", "no_protected_face", "edges", "position", "area"}  # no faces here
    assert np.all(np.diff(r.score[r.order]) <= 1e-12)  # best first
    assert measured.feasible[r.order].all()
    np.testing.assert_array_equal(r.order, order_by(r.score, measured.feasible))


def test_order_by_is_stable_and_its_partial_selection_keeps_the_order():
    score = np.array([0.5, 0.9, 0.5, 0.1, 0.9, 0.7])
    feasible = np.array([True, True, True, True, False, True])
    assert order_by(score, feasible).tolist() == [1, 5, 0, 2, 3]  # ties: the earlier window first
    assert order_by(score).tolist() == [1, 4, 5, 0, 2, 3]
    for limit in range(1, 6):  # the best `limit` scores, best first (a tie at the cut may go either way)
        part = order_by(score, feasible, limit)
        assert score[part].tolist() == score[[1, 5, 0, 2, 3][:limit]].tolist()
    assert order_by(score, feasible, 2).tolist() == [1, 5]


def test_a_position_ranker_only_moves_the_chosen_size():
    windows, measured, comp = ranked(CompositionRanker(), np.ones((16, 16, 2), np.float32))

    class Position(AreaRanker):
        scope = "position"

    _, _, r = ranked(Position(), np.ones((16, 16, 2), np.float32))
    first = comp.order[0]
    same = (windows.w[comp.order[:50]] == windows.w[first]) & (windows.h[comp.order[:50]] == windows.h[first])
    moved = r.order[: int(same.sum())]
    assert set(moved.tolist()) == set(comp.order[:50][same].tolist())
    assert (windows.w[r.order[0]], windows.h[r.order[0]]) == (windows.w[first], windows.h[first])


def test_a_learned_ranker_reorders_only_the_shortlist():
    features = np.ones((16, 16, 2), np.float32)
    windows, measured, comp = ranked(CompositionRanker(), features)
    _, _, r = ranked(AreaRanker(), features)
    assert r.chosen_by == "ranker:smallest"
    short = comp.order[:50]
    assert set(r.order[:50].tolist()) == set(short.tolist())
    np.testing.assert_array_equal(r.order[50:], comp.order[50:])
    areas = windows.w[short] * windows.h[short]
    assert windows.w[r.order[0]] * windows.h[r.order[0]] == areas.min()
    # Outside the shortlist the composition score stands; the terms add up to the score.
    np.testing.assert_array_equal(r.score[comp.order[50:]], comp.score[comp.order[50:]])
    np.testing.assert_allclose(sum(r.terms.values()), r.score)


def test_without_features_the_composition_score_decides():
    windows, measured, comp = ranked(CompositionRanker(), np.ones((16, 16, 2), np.float32))
    sal = np.random.default_rng(3).random((480, 640)).astype(np.float32)
    photo = PhotoContext.build(4000, 3000, SaliencyIndex.build(sal, 4000, 3000), np.zeros((0, 5)))
    r = rank_candidates(AreaRanker(), photo, windows, measured, OPTIONS, shortlist=50)
    assert r.chosen_by == "composition"
    np.testing.assert_array_equal(r.order, comp.order)


def test_take_keeps_every_field():
    windows = propose_windows(400, 300, 1.0, OPTIONS)
    sub = take(windows, np.array([0, 2]))
    assert sub.x.tolist() == windows.x[[0, 2]].tolist() and sub.scale.shape == (2,)


# --- the shipped model -----------------------------------------------------------------------

shipped = pytest.mark.skipif(not DEFAULT_RANKER_MODEL.exists(), reason="no shipped ranker model")


@shipped
def test_shipped_ranker_loads_with_its_card():
    ranker = LearnedRanker()
    assert ranker.name.startswith("ranker:autocrop-ranker-")
    assert tuple(ranker.card["stats"]) == STAT_NAMES
    assert ranker.card["parity"]["top1_agreement"] >= 0.95
    assert ranker.channels == 96


@shipped
def test_scoring_200_candidates_repeatably():
    """200 candidates scored from a fresh photo (its per-photo reduction included) give
    finite scores, the same each time. How long it takes is measured, side by side with the
    composition score, by benchmarks/bench_engine.py, not asserted here."""
    import dataclasses

    ranker = LearnedRanker()
    rng = np.random.default_rng(4)
    photo = photo_with_map(rng.random((16, 16, ranker.channels)).astype(np.float32), saliency=rng.random((480, 640)).astype(np.float32))
    windows = propose_windows(4000, 3000, 1.0, OPTIONS)
    measured = measure_windows(windows, photo.index, photo.faces, 4000, 3000, OPTIONS)
    w, m = take(windows, np.arange(200)), take(measured, np.arange(200))
    runs = [ranker.score(dataclasses.replace(photo, _integrals={}), w, m, OPTIONS) for _ in range(3)]
    assert runs[0].shape == (200,) and np.isfinite(runs[0]).all()
    assert np.ptp(runs[0]) > 0, "different windows must get different scores"
    np.testing.assert_allclose(runs[1], runs[0], rtol=1e-6)
    np.testing.assert_allclose(runs[2], runs[0], rtol=1e-6)


# --- training helpers ------------------------------------------------------------------------


def test_fixation_labels_count_what_the_evaluation_counts():
    """The ranker's labels come from training.crop_labels, the evaluation's own module:
    known answers for counts (a fixation is inside where its pixel rounds to) and oracles."""
    from training.crop_labels import box_counts, oracle_counts, point_integral

    fix = np.array([[0.4, 0.4], [0.6, 0.4], [9.49, 9.5], [5.0, 5.0], [5.2, 4.9]], np.float32)
    integral = point_integral(fix, 10, 10)  # pixels (0,0), (1,0), (9,9)->(9,9) clipped, (5,5) x2
    boxes = np.array([[0, 0, 1, 1], [0, 0, 2, 1], [5, 5, 1, 1], [0, 0, 10, 10], [8, 8, 5, 5]])
    assert box_counts(integral, boxes).tolist() == [1, 2, 2, 5, 1]
    assert oracle_counts(integral, boxes).tolist() == [2, 2, 2, 5, 3]  # a 5x5 box: (5,5) x2 and (9,9)


def test_face_cuts_follow_the_ten_to_ninety_percent_rule():
    from autocrop import Box
    from training.crop_labels import cuts_a_face, cuts_faces

    rects = np.array([[10.0, 10.0, 30.0, 30.0], [60.0, 10.0, 70.0, 20.0]])
    boxes = np.array([[0, 0, 40, 40], [0, 0, 20, 40], [0, 0, 12, 40], [55, 0, 10, 40], [0, 0, 100, 100]])
    assert cuts_faces(boxes, rects).tolist() == [False, True, False, True, False]
    assert [cuts_a_face(Box(*b), [tuple(r) for r in rects]) for b in boxes] == [False, True, False, True, False]
    assert cuts_faces(boxes, np.zeros((0, 4))).tolist() == [False] * 5


def test_attention_and_face_pairs():
    from training.ranker import RankerConfig, attention_pairs, face_pairs

    cfg = RankerConfig(attention_margin=0.0, attention_min_gap=2, attention_pairs=100, face_pairs=10)
    rows = np.arange(10, 16)
    counts = np.array([10, 5, 9, 1, 7, 7])
    sizes = np.array([1, 1, 1, 2, 2, 2])
    pairs = attention_pairs(rows, counts, sizes, 100, cfg, np.random.default_rng(0))
    got = {tuple(p) for p in pairs.tolist()}
    # Same size only, gap >= 2: (10 > 5), (9 > 5), (7 > 1) twice; 10 vs 9 is too close.
    assert got == {(10, 11), (12, 11), (14, 13), (15, 13)}
    cut = np.array([False, True, False, False, True, False])
    fp = face_pairs(rows, cut, cfg, np.random.default_rng(0))
    assert len(fp) == 8 and not cut[fp[:, 0] - 10].any() and cut[fp[:, 1] - 10].all()


def test_flipped_records_and_faces():
    from training.datasets import FaceLabel, FixationRecord
    from training.ranker import flip_faces, flip_record

    rec = FixationRecord("osie", "x.jpg", Path("x.jpg"), 100, 80, np.array([[0.0, 5.0], [99.0, 7.0]], np.float32), 1)
    assert flip_record(rec).fixations.tolist() == [[99.0, 5.0], [0.0, 7.0]]
    face = FaceLabel(10, 20, 30, 40, True, False, False, False)
    assert flip_faces([face], 100)[0].x == 60


def test_a_tiny_ranker_converts_with_parity(tmp_path):
    """A real (tiny) conversion: both signatures, float32, same scores as Keras."""
    pytest.importorskip("tensorflow")
    from model_export.ranker import convert_two_signatures
    from training.ranker import RankerConfig, build_models

    cfg = RankerConfig(reduced_channels=3, hidden=8)
    c, g = 5, len(STAT_NAMES)
    rng = np.random.default_rng(6)
    scorer, reducer, head, _ = build_models(cfg, c, np.ones(c) * 2, np.zeros(g), np.ones(g))
    path = tmp_path / "ranker.tflite"
    path.write_bytes(convert_two_signatures(reducer, head, c, REGIONS * 3 + g))
    runtime = LearnedRanker(path)
    assert (runtime.channels, runtime.reduced) == (5, 3)
    cells = rng.normal(size=(256, c)).astype(np.float32)
    reduced = runtime.reduce(cells)
    assert reduced.dtype == np.float32
    np.testing.assert_allclose(reduced, np.asarray(reducer(cells)), atol=1e-5)
    regions = rng.normal(size=(20, REGIONS, c)).astype(np.float32)
    stats = rng.normal(size=(20, g)).astype(np.float32)
    desc = np.concatenate([runtime.reduce(regions.reshape(-1, c)).reshape(20, -1), stats], axis=1)
    np.testing.assert_allclose(
        runtime.score_descriptors(desc), np.asarray(scorer([regions, stats], training=False)).reshape(-1), atol=1e-4
    )


# --- the engine ---------------------------------------------------------------------------------


def test_the_engine_says_who_chose_each_crop():
    """The options pick the ranker; every crop names the one that chose it."""
    import cv2
    from skimage import data as skdata

    import autocrop
    from autocrop.ranker_choice import select_ranker

    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR))
    assert ok
    # Astronaut is square: its 1:1 crop is the whole photo (rules.keeps_whole), not ranked.
    ratios = ("16:9", "4:5", "9:16")
    composition = autocrop.analyse(jpeg.tobytes(), CropOptions(ratios=ratios, ranker="composition"))
    assert {c.chosen_by for c in composition.crops} == {"composition"}
    assert composition.models["ranker"] == "composition"
    learned = autocrop.analyse(jpeg.tobytes(), CropOptions(ratios=ratios))
    expected = select_ranker(CropOptions()).name  # per the shipped model's card (or its fallback)
    assert {c.chosen_by for c in learned.crops} == {expected}
    assert learned.models["ranker"] == expected
    for crop in learned.crops:
        d = crop.to_dict()
        assert d["chosen_by"] == expected
        assert sum(d["breakdown"].values()) == pytest.approx(d["score"], abs=1e-3)
    forced = autocrop.analyse(jpeg.tobytes(), CropOptions(ranker="learned"))
    assert forced.models["ranker"] == select_ranker(CropOptions(ranker="learned")).name
    with pytest.raises(autocrop.InvalidOptionsError):
        CropOptions(ranker="svm")


def test_auto_uses_the_learned_ranker_only_when_its_card_says_it_won(monkeypatch):
    from autocrop import ranker, ranker_choice

    class Won(AreaRanker):
        beats_composition = True

    class Lost(AreaRanker):
        beats_composition = False

    monkeypatch.setattr(ranker_choice, "ranker_beats_composition", lambda: True)
    monkeypatch.setattr(ranker, "load_ranker", lambda: Won())
    assert isinstance(ranker_choice.select_ranker(CropOptions(ranker="auto")), Won)
    monkeypatch.setattr(ranker, "load_ranker", lambda: Lost())  # the card and the model disagree
    assert isinstance(ranker_choice.select_ranker(CropOptions(ranker="auto")), CompositionRanker)
    assert isinstance(ranker_choice.select_ranker(CropOptions(ranker="learned")), Lost)
    assert isinstance(ranker_choice.select_ranker(CropOptions(ranker="composition")), CompositionRanker)


def test_auto_never_builds_the_model_when_its_card_says_it_lost(monkeypatch, tmp_path):
    """Cold start: `ranker="auto"` reads the card alone and loads no interpreter it would not use."""
    import json

    from autocrop import ranker, ranker_choice
    from autocrop.ranker_choice import ranker_beats_composition

    loaded = []
    monkeypatch.setattr(ranker, "load_ranker", lambda: loaded.append(1) or AreaRanker())
    monkeypatch.setattr(ranker_choice, "ranker_beats_composition", lambda: False)
    assert isinstance(ranker_choice.select_ranker(CropOptions(ranker="auto")), CompositionRanker)
    assert loaded == []
    assert isinstance(ranker_choice.select_ranker(CropOptions(ranker="learned")), AreaRanker)
    assert loaded == [1]
    # The card reader itself: the field, a card that says no, no card, a broken card.
    for name, text, expected in (
        ("won", json.dumps({"validation": {"beats_composition": True}}), True),
        ("lost", json.dumps({"validation": {"beats_composition": False}}), False),
        ("broken", "{not json", False),
        ("list", "[1]", False),
    ):
        (tmp_path / f"{name}.json").write_text(text)
        assert ranker_beats_composition(str(tmp_path / f"{name}.tflite")) is expected
    assert ranker_beats_composition(str(tmp_path / "absent.tflite")) is False


def test_analysing_with_the_composition_ranker_never_imports_the_learned_one():
    """Pay only for what runs: with ranker "auto" (whose card says no) or "composition" the
    learned ranker's module is never imported."""
    import subprocess
    import sys

    script = (
        "import sys, cv2, numpy as np\n"
        "import autocrop\n"
        "rgb = np.zeros((240, 320, 3), np.uint8); rgb[60:180, 200:280] = 255\n"
        "jpeg = cv2.imencode('.jpg', rgb)[1].tobytes()\n"
        "result = autocrop.analyse(jpeg, autocrop.CropOptions(ranker='composition'))\n"
        "assert result.crops and result.models['ranker'] == 'composition', result.models\n"
        "assert 'autocrop.ranker' not in sys.modules\n"
        "result = autocrop.analyse(jpeg, autocrop.CropOptions(ranker='auto'))\n"
        "learned = 'autocrop.ranker' in sys.modules\n"
        "assert learned == (sys.argv[1] == 'True'), 'auto must load the learned ranker exactly when its card says it wins'\n"
        "assert (result.models['ranker'] != 'composition') == learned, result.models\n"
        "print('ok')\n"
    )
    from autocrop.ranker_choice import ranker_beats_composition

    # Whatever the shipped card says: "auto" imports the learned ranker only when it wins.
    wins = str(ranker_beats_composition())
    done = subprocess.run([sys.executable, "-c", script, wins], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr


# --- cross-fitting ------------------------------------------------------------------------------



@needs_data
def test_fold_assignment_partitions_the_training_photos_as_saliency_training_does():
    from training.datasets import load_saliency_sets
    from training.saliency import TrainConfig, fold_assignment

    sets = load_saliency_sets(DATA, TrainConfig.sets)
    train = [r for name in TrainConfig.sets for r in sets[name][0]]
    val = {(r.dataset, r.name) for name in TrainConfig.sets for r in sets[name][1]}
    folds = fold_assignment(DATA, folds=2)
    assert set(folds) == {(r.dataset, r.name) for r in train} and not set(folds) & val
    # `training.saliency.train` keeps index % folds != fold: fold k's model never sees fold k.
    for k in (0, 1):
        kept = {(r.dataset, r.name) for i, r in enumerate(train) if i % 2 != k}
        assert all(folds[key] != k for key in kept)
        assert sum(v == k for v in folds.values()) == len(train) - len(kept)


def test_each_training_photo_is_seen_by_the_model_that_never_saw_it():
    from autocrop.saliency import CentreBiasSaliency
    from training.datasets import FixationRecord
    from training.ranker import Stages

    a, b = CentreBiasSaliency(name="fold0"), CentreBiasSaliency(name="fold1")
    stages = Stages(fold_models=(a, b), folds={("osie", "1.jpg"): 0, ("osie", "2.jpg"): 1})

    def rec(name: str) -> FixationRecord:
        return FixationRecord("osie", name, Path(name), 10, 10, np.zeros((0, 2), np.float32), 1)

    assert stages.saliency_for(rec("1.jpg")) is a
    assert stages.saliency_for(rec("2.jpg")) is b
    assert stages.saliency_for(rec("0.jpg")) is stages.saliency  # validation: the shipped model
    plain = Stages()
    assert plain.saliency_for(rec("1.jpg")) is plain.saliency  # no folds: the shipped model


def test_a_statistics_only_ranker_ignores_the_pooled_features():
    pytest.importorskip("keras")
    from training.ranker import RankerConfig, build_models

    cfg = RankerConfig(reduced_channels=3, hidden=8, use_features=False)
    c, g = 5, len(STAT_NAMES)
    scorer, reducer, _, _ = build_models(cfg, c, np.ones(c), np.zeros(g), np.ones(g))
    assert not reducer.get_layer("reduce").trainable
    rng = np.random.default_rng(7)
    stats = rng.normal(size=(4, g)).astype(np.float32)
    one = np.asarray(scorer([rng.normal(size=(4, REGIONS, c)).astype(np.float32), stats], training=False))
    two = np.asarray(scorer([rng.normal(size=(4, REGIONS, c)).astype(np.float32), stats], training=False))
    np.testing.assert_allclose(one, two)
