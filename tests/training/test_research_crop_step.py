"""research/head_margins.py and research/two_models.py: the pieces their figures rest on."""

from __future__ import annotations

import numpy as np
import pytest

from autocrop.saliency import load_saliency
from research.head_margins import SLICED, summarise
from research.two_models import MeanOfTwo
from tests.engine.test_decode import quadrants


def test_the_mean_of_a_model_with_itself_is_its_own_map_at_peak_one():
    shipped = load_saliency()
    rgb = np.ascontiguousarray(np.kron(quadrants(64, 48), np.ones((4, 4, 1), np.uint8)))
    alone = shipped.predict_with_features(rgb)
    both = MeanOfTwo(shipped, shipped, 0.3).predict_with_features(rgb)
    assert both.saliency.shape == alone.saliency.shape
    np.testing.assert_allclose(both.saliency, alone.saliency / alone.saliency.max(), rtol=1e-5, atol=1e-6)
    assert both.letterbox == alone.letterbox


def test_head_margin_summary_counts_only_face_crops_and_eyecrowds_cuts():
    row = dict(image="x", ratio="1:1")
    rows = [
        {**row, "dataset": "osie", "of_oracle": 0.9, "face_cut": None, "has_face": True, "head_cut": SLICED + 0.01},
        {**row, "dataset": "osie", "of_oracle": 1.0, "face_cut": None, "has_face": False, "head_cut": 0.9},
        {**row, "dataset": "eyecrowd", "of_oracle": 0.8, "face_cut": True, "has_face": True, "head_cut": SLICED},
        {**row, "dataset": "eyecrowd", "of_oracle": 0.7, "face_cut": False, "has_face": True, "head_cut": 0.0},
        {**row, "dataset": "mit1003", "of_oracle": 0.5, "face_cut": None, "has_face": True, "head_cut": 1.0},
    ]
    out = summarise(rows)
    assert out["val_of_oracle"] == pytest.approx(0.85)
    assert out["mit1003_of_oracle"] == pytest.approx(0.5)
    assert out["eyecrowd_face_cut_rate"] == pytest.approx(0.5)
    assert out["face_crops"] == 3  # validation crops of photos with a face; MIT1003's are not counted
    assert out["face_crops_slicing_a_head_margin"] == pytest.approx(1 / 3)  # over SLICED, not at it
