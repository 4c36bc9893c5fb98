"""The fairness audit's promises: balanced probes come out at parity, a biased ranker is caught,
and near-equal faces are not told apart by a small saliency or importance difference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from autocrop import CropOptions
from autocrop.face_rule import even_face_saliency, face_importance
from tests.shared_data import DATA
from training.fairness_audit import (
    KINDS,
    RATIOS,
    GroupPair,
    Models,
    adults,
    audit_composite,
    background,
    bootstrap_by_face,
    compose,
    draw_layout,
    kept_face,
    kept_share,
    load_faces,
    matched_pairs,
)

FACES = DATA / "faces_demographic"
needs_faces = pytest.mark.skipif(not (FACES / "labels.csv").is_file(), reason="../shared/data/faces_demographic is not present")


def _rgb(path: Path) -> np.ndarray:
    import cv2

    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def _audit(faces: list[tuple[str, np.ndarray, str, np.ndarray]], seed: int = 0) -> list[dict]:
    """Rows of the audit for (id a, face a, id b, face b) pairs, each layout in both orders."""
    rng = np.random.default_rng(seed)
    photos = sorted((DATA / "photos").rglob("*.jpg"))
    models = Models.load()
    options = CropOptions(ratios=RATIOS)
    rows = []
    for i, (ida, a, idb, b) in enumerate(faces):
        layout = draw_layout(list(KINDS)[i % 2], ("grey", "photo")[(i // 2) % 2], rng, photos)
        canvas = background(layout)
        for swap in (False, True):
            rgb, tiles = compose(b if swap else a, a if swap else b, layout, canvas)
            row = audit_composite(rgb, tiles[::-1] if swap else tiles, options, models)
            rows.append({**row, "a": ida, "b": idb})
    return rows


@needs_faces
def test_identical_faces_are_kept_half_the_time_and_a_brightness_ranker_is_caught() -> None:
    """The probe is balanced: a face against itself is kept 50% of the time, within the
    interval; the control (a ranker preferring the brighter window), given a face against a
    darker copy of itself, is reported as biased (its interval excludes parity)."""
    records = adults(load_faces(FACES))[::97][:6]
    faces = [_rgb(FACES / "images" / r.file) for r in records]
    same = _audit([(f"{r.file}", f, f"{r.file}'", f) for r, f in zip(records, faces)])
    engine = kept_share(same, "engine")
    assert engine["n"] >= 12 and abs(engine["share"] - 0.5) < 1e-9
    assert engine["ci"][0] <= 0.5 <= engine["ci"][1] and not engine["significant"]
    darker = _audit([(r.file, f, r.file + "-dark", (f * 0.55).astype(np.uint8)) for r, f in zip(records, faces)], seed=1)
    control = kept_share(darker, "control")
    assert control["significant"] and control["share"] > 0.6, control


@needs_faces
def test_pairs_are_adult_age_matched_and_matched_on_the_other_attribute() -> None:
    records = load_faces(FACES)
    rng = np.random.default_rng(0)
    for pair in (GroupPair("race", "white", "black"), GroupPair("gender", "female", "male")):
        pairs = matched_pairs(records, pair, 40, rng)
        assert len(pairs) == 40
        for a, b in pairs:
            assert (a.group(pair.attribute), b.group(pair.attribute)) == (pair.a, pair.b)
            assert a.group(pair.matched_on) == b.group(pair.matched_on)
            assert abs(a.age - b.age) <= 3 and min(a.age, b.age) >= 18


def test_the_face_bootstrap_is_centred_and_widens_when_faces_repeat() -> None:
    rng = np.random.default_rng(0)
    n = 400
    a_ids, b_ids = [f"a{i}" for i in range(n)], [f"b{i}" for i in range(n)]
    fair = (rng.random(n) < 0.5).astype(float)
    share, lo, hi = bootstrap_by_face(a_ids, b_ids, fair)
    assert lo < share < hi and lo < 0.5 < hi
    # The same outcomes from 20 faces, each face always winning or always losing: far wider.
    few = [f"a{i % 20}" for i in range(n)]
    clustered = np.array([float(i % 20 < 10) for i in range(n)])
    _, lo2, hi2 = bootstrap_by_face(few, b_ids, clustered)
    assert hi2 - lo2 > 2 * (hi - lo)


def test_kept_face_reads_which_core_the_crop_holds() -> None:
    tiles = np.array([[40.0, 80.0, 240.0, 280.0], [400.0, 80.0, 600.0, 280.0]])
    assert kept_face((0, 0, 360, 360), tiles) == "a"
    assert kept_face((280, 0, 360, 360), tiles) == "b"
    assert kept_face((0, 0, 640, 360), tiles) == "both"


def test_near_equal_importances_tie_and_distant_ones_keep_their_order() -> None:
    faces = np.array([[0, 0, 100, 100, 0.93], [0, 0, 95, 95, 0.92], [0, 0, 40, 40, 0.99]], np.float64)
    raw = face_importance(faces)
    tied = face_importance(faces, tie=0.25)
    assert raw[0] > raw[1] and tied[0] == tied[1]  # a 5% smaller box is as important
    assert tied[2] == raw[2] < tied[0]  # a face in the background stays less important


def test_faces_share_the_saliency_on_them_by_importance() -> None:
    """Two equal faces, the map 10% more salient on one: once evened, each head holds the
    same saliency, the photo's total is kept, and the rest of the map is untouched."""
    options = CropOptions()
    sal = np.full((360, 640), 0.05, np.float32)
    sal[100:260, 80:240] = 1.0
    sal[100:260, 400:560] = 0.9
    faces = np.array([[120, 130, 80, 100, 0.93], [440, 130, 80, 100, 0.93]], np.float64)
    even = even_face_saliency(sal, faces, 640, 360, options)
    assert even.sum() == pytest.approx(float(sal.sum(dtype=np.float64)), rel=1e-9)
    left, right = even[:, :320].sum(), even[:, 320:].sum()
    assert left == pytest.approx(right, rel=1e-6)
    assert even[0, 0] == pytest.approx(0.05)
    assert even_face_saliency(sal, faces[:1], 640, 360, options) is sal  # one face: nothing to share
    assert even_face_saliency(sal, faces, 640, 360, options.with_(face_saliency_even=0.0)) is sal


def test_tied_faces_pool_over_heads_of_one_size() -> None:
    """Two tied faces whose detector boxes differ by 10% in width (as YuNet's do between
    groups of people): the saliency each keeps outside the pooled region must not depend on
    its box. Each face's blob of saliency is the same size; with heads sized from each
    box, the smaller box would leave more of its own face's saliency outside the pool."""
    options = CropOptions()
    sal = np.full((360, 640), 0.02, np.float32)
    sal[90:270, 90:250] = 1.0  # each face's saliency: the same blob, centred on the face
    sal[90:270, 410:570] = 1.0
    faces = np.array([[130, 130, 80, 100, 0.93], [454, 130, 72, 100, 0.93]], np.float64)  # 10% narrower
    even = even_face_saliency(sal, faces, 640, 360, options)
    left, right = even[:, :320].sum(dtype=np.float64), even[:, 320:].sum(dtype=np.float64)
    assert left == pytest.approx(right, rel=1e-6), "the same saliency on each side"
    # The pooled regions: one size for both, each centred on its face.
    from autocrop.face_rule import common_size

    sized = common_size(faces, np.array([0, 0]))
    assert sized[0, 2] == sized[1, 2] == 76 and sized[0, 3] == sized[1, 3] == 100
    assert sized[:, 0] + sized[:, 2] / 2 == pytest.approx(faces[:, 0] + faces[:, 2] / 2)


class _FixedMap:
    """A saliency stage that returns a given map (resized to the image)."""

    name = "fixed-map"

    def __init__(self, saliency: np.ndarray):
        self.saliency = saliency

    def predict(self, rgb: np.ndarray) -> np.ndarray:
        import cv2

        return cv2.resize(self.saliency, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_AREA)


class _FixedFaces:
    """A face stage that finds the given (x, y, w, h, score) rows of a 640 px wide image."""

    name = "fixed-faces"

    def __init__(self, faces: np.ndarray):
        self.faces = faces

    def detect(self, bgr: np.ndarray, score_threshold: float) -> np.ndarray:
        out = self.faces.astype(np.float32).copy()
        out[:, :4] *= bgr.shape[1] / 640
        return out


@pytest.mark.parametrize("ratio", ["1:1", "4:5", "9:16"])
def test_a_small_saliency_difference_between_equal_faces_no_longer_separates_them(ratio: str) -> None:
    """Two equal faces, the map 8% more salient on one's head: on the map as predicted
    (`face_saliency_even` 0) the best window keeping the less salient face scores clearly
    lower, so the crop keeps the other every time; on the engine's map the two best windows
    score the same to 1e-3, and the crop follows the rest of the photo."""
    from autocrop.candidates import measure_windows, propose_windows
    from autocrop.engine import prepare_photo
    from autocrop.options import parse_ratio
    from autocrop.scoring import composition_score
    from autocrop.types import DecodedImage

    faces = np.array([[130, 120, 100, 120, 0.93], [410, 120, 100, 120, 0.93]], np.float64)
    photo = DecodedImage(np.full((360, 640, 3), 128, np.uint8), 640, 360, "PNG")
    yy, xx = np.mgrid[0:360, 0:640].astype(np.float32)
    sal = np.full((360, 640), 0.02, np.float32)
    for k, (x, y, w, h, _) in enumerate(faces):
        sal += (1.0 if k == 0 else 0.92) * np.exp(-((xx - x - w / 2) ** 2 + (yy - y - h / 2) ** 2) / (2 * 30.0**2))

    def gap(options: CropOptions) -> float:
        context, _ = prepare_photo(photo, options, _FixedMap(sal / sal.max()), _FixedFaces(faces))
        windows = propose_windows(640, 360, parse_ratio(ratio), options)
        measured = measure_windows(windows, context.index, context.faces, 640, 360, options, heads_of_allowed_only=True)
        score = composition_score(measured, options)
        right = windows.x + windows.w / 2 > 320
        best = [score[measured.feasible & (right == side)].max() for side in (False, True)]
        return float(best[0] - best[1])

    options = CropOptions(ratios=(ratio,), ranker="composition")
    assert gap(options.with_(face_saliency_even=0.0)) > 0.03
    assert abs(gap(options)) < 1e-3


@pytest.mark.parametrize("ratio", ["1:1", "4:5", "9:16"])
def test_the_crop_keeps_the_same_place_whichever_equal_face_is_more_salient(ratio: str) -> None:
    """Two equal faces, either one 8% more salient: the engine keeps the face on the same side
    both times (position decides between equals); with the tie rule and the evening off it
    keeps the more salient face both times."""
    from autocrop.engine import analyse_image
    from autocrop.types import DecodedImage

    faces = np.array([[130, 120, 100, 120, 0.93], [410, 120, 100, 120, 0.93]], np.float64)
    photo = DecodedImage(np.full((360, 640, 3), 128, np.uint8), 640, 360, "PNG")
    yy, xx = np.mgrid[0:360, 0:640].astype(np.float32)

    def side(more_salient: int, options: CropOptions) -> int:
        sal = np.full((360, 640), 0.02, np.float32)
        for k, (x, y, w, h, _) in enumerate(faces):
            peak = 1.0 if k == more_salient else 0.92
            sal += peak * np.exp(-((xx - x - w / 2) ** 2 + (yy - y - h / 2) ** 2) / (2 * 60.0**2))
        box = analyse_image(photo, options, saliency=_FixedMap(sal / sal.max()), detector=_FixedFaces(faces)).crops[0].box
        return int(box.x + box.w / 2 > 320)

    options = CropOptions(ratios=(ratio,), ranker="composition")
    assert [side(k, options.with_(face_saliency_even=0.0, face_score_tie=0.0)) for k in (0, 1)] == [0, 1]
    assert [side(k, options) for k in (0, 1)] == [0, 0]
