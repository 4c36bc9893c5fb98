"""Crop benchmark metrics against hand computations and the published reference figures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from training.crop_metrics import (
    boundary_displacement,
    centred_crop,
    fcdb_scores,
    gaicd_scores,
    iou,
    rank_correlation,
    top_k_accuracy,
    whole_image,
)

CROPS = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "crops"
needs_crops = pytest.mark.skipif(not (CROPS / "fcdb").is_dir(), reason="../shared/data/crops not present")


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ([0, 0, 10, 10], [0, 0, 10, 10], 1.0),
        ([0, 0, 10, 10], [10, 0, 10, 10], 0.0),  # touching is not overlapping
        ([0, 0, 2, 2], [1, 1, 2, 2], 1 / 7),  # 1 shared of 4 + 4 - 1
        ([0, 0, 4, 2], [0, 0, 2, 2], 0.5),  # one inside the other
        ([0, 0, 10, 10], [20, 20, 5, 5], 0.0),
    ],
)
def test_iou_by_hand(a, b, expected):
    assert iou(a, b) == pytest.approx(expected)
    assert iou(b, a) == pytest.approx(expected)


def test_iou_broadcasts_over_boxes():
    boxes = np.array([[0, 0, 10, 10], [5, 0, 10, 10]])
    assert iou(boxes, [0, 0, 10, 10]) == pytest.approx([1.0, 50 / 150])


def test_boundary_displacement_by_hand():
    # Left/right edges move 1 px each in a 20 px wide image, top/bottom 2 px in a 40 px tall one.
    assert boundary_displacement([0, 0, 10, 10], [1, 2, 10, 10], 20, 40) == pytest.approx((2 / 20 + 4 / 40) / 4)
    assert boundary_displacement([3, 4, 5, 6], [3, 4, 5, 6], 100, 100) == 0.0
    # The whole image against a crop of its left half: only the right edge moves, by half the width.
    assert boundary_displacement(whole_image(100, 50), [0, 0, 50, 50], 100, 50) == pytest.approx(0.5 / 4)


def test_baseline_boxes():
    assert whole_image(640, 480).tolist() == [0, 0, 640, 480]
    assert centred_crop(100, 50, 0.9).tolist() == pytest.approx([5, 2.5, 90, 45])


def test_fcdb_scores_mean_over_images():
    s = fcdb_scores([[0, 0, 10, 10], [0, 0, 2, 2]], [[0, 0, 10, 10], [1, 1, 2, 2]], [(10, 10), (4, 4)])
    assert s.iou == pytest.approx((1 + 1 / 7) / 2)
    assert s.bde == pytest.approx((0 + (2 / 4 + 2 / 4) / 4) / 2)
    assert s.images == 2


def test_rank_correlation_by_hand():
    mos = np.array([1.0, 2.0, 3.0, 4.0])
    assert rank_correlation(mos, mos) == pytest.approx(1.0)
    assert rank_correlation(-mos, mos) == pytest.approx(-1.0)
    # One swap of neighbours: d = (1, -1, 0, 0), rho = 1 - 6 * 2 / (4 * 15) = 0.8.
    assert rank_correlation(np.array([2.0, 1.0, 3.0, 4.0]), mos) == pytest.approx(0.8)
    assert rank_correlation(np.ones(4), mos) == 0.0  # a constant prediction ranks nothing


def test_top_k_accuracy_by_hand():
    mos = np.arange(10, 0, -1, dtype=float)  # crop 0 best ... crop 9 worst
    assert top_k_accuracy(mos, mos, 1, 5) == 1.0
    assert top_k_accuracy(mos, mos, 4, 5) == 1.0
    assert top_k_accuracy(-mos, mos, 1, 5) == 0.0
    # Predicted order 5, 0, 1, 9: crops 0 and 1 are in the top 5, crops 5 and 9 are not.
    pred = np.zeros(10)
    pred[[5, 0, 1, 9]] = [4, 3, 2, 1]
    pred[[2, 3, 4, 6, 7, 8]] = -1
    assert top_k_accuracy(pred, mos, 1, 5) == 0.0
    assert top_k_accuracy(pred, mos, 4, 5) == 0.5
    assert top_k_accuracy(pred, mos, 4, 10) == 1.0


def test_top_k_accuracy_counts_ties_with_the_nth_best():
    # The 5th best MOS is 4.0, shared by crops 1-6: any of them counts as top 5 (TestAccuracy.py).
    mos = np.array([5.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 1.0, 1.0, 1.0])
    pred = np.zeros(10)
    pred[6] = 1.0
    assert top_k_accuracy(pred, mos, 1, 5) == 1.0
    # Ties in the prediction keep annotation order: all-equal scores pick crop 0 first.
    assert top_k_accuracy(np.zeros(10), mos, 1, 5) == 1.0


def test_gaicd_scores_average_per_image():
    mos = np.arange(12, 0, -1, dtype=float)
    s = gaicd_scores([mos, -mos], [mos, mos])
    assert s.srcc == pytest.approx(0.0)
    assert s.acc1_5 == pytest.approx(0.5)
    assert s.acc1_10 == pytest.approx(0.5)
    # Reversed: the 4 best-predicted are the 4 worst, ranks 9-12; ranks 9 and 10 are top 10.
    assert s.acc4_10 == pytest.approx((1.0 + 0.5) / 2)
    assert s.images == 2
    with pytest.raises(ValueError):
        top_k_accuracy(mos[:3], mos[:3], 1, 5)


@needs_crops
def test_fcdb_reference_baselines():
    """EVALUATION.md: whole image 0.643 / 0.099, centred 0.9 crop 0.666 / 0.089 (IoU / BDE).

    The photo sizes are recovered from the sliding windows (the file has no sizes), and the
    papers scored the photos they could download, so agreement is to a few thousandths.
    """
    from training.crop_datasets import load_fcdb_sliding_windows

    photos = load_fcdb_sliding_windows(CROPS / "fcdb")
    assert len(photos) == 345
    gts = [p.gt for p in photos]
    sizes = [(p.width, p.height) for p in photos]
    whole = fcdb_scores([whole_image(w, h) for w, h in sizes], gts, sizes)
    centred = fcdb_scores([centred_crop(w, h, 0.9) for w, h in sizes], gts, sizes)
    assert whole.iou == pytest.approx(0.643, abs=0.005)
    assert whole.bde == pytest.approx(0.099, abs=0.002)
    assert centred.iou == pytest.approx(0.666, abs=0.005)
    assert centred.bde == pytest.approx(0.089, abs=0.002)
    assert centred.iou > whole.iou and centred.bde < whole.bde  # the published ordering


@needs_crops
def test_gaicd_metrics_on_the_real_annotations():
    """The MOS ranks itself perfectly; a random order is near chance (Acc1/5 ~ 5/crops)."""
    from training.crop_datasets import load_gaicd

    test = [g for g in load_gaicd(CROPS / "gaicd") if g.split == "test"]
    assert len(test) == 200
    perfect = gaicd_scores([g.mos for g in test], [g.mos for g in test])
    assert perfect.srcc == pytest.approx(1.0)
    assert perfect.acc1_5 == perfect.acc4_5 == perfect.acc1_10 == perfect.acc4_10 == 1.0
    rng = np.random.default_rng(0)
    chance = gaicd_scores([rng.random(len(g.mos)) for g in test], [g.mos for g in test])
    assert abs(chance.srcc) < 0.05
    assert chance.acc1_5 < 0.2 and chance.acc4_10 < 0.3
