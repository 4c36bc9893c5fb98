"""EVALUATION.md's split-half ("Human level") figures on small hand-made photos."""

from __future__ import annotations

import numpy as np
import pytest

from autocrop import Box
from training.ceiling import saliency_only_boxes, split_half_photo, summarise_split_half
from training.crop_eval import centred_boxes
from training.fixations import density_map

W, H = 160, 120


def observers_at(points: list[tuple[float, float]], count: int) -> list[np.ndarray]:
    """`count` observers who all fixate exactly `points`."""
    return [np.array(points, np.float32) for _ in range(count)]


def test_people_who_agree_are_human_level_and_the_model_that_matches_them_too():
    # Everybody looks at the same spot in the top-left: halves agree perfectly.
    per = observers_at([(30.0, 25.0), (34.0, 28.0)], 6)
    truth = density_map(np.concatenate(per), H, W)
    engine = [Box(0, 0, 120, 120)]  # a 1:1 box over the spot (the 1:1 ratio's largest box)
    sums = split_half_photo(per, W, H, truth, engine, seeds=(0, 1))
    assert len(sums["cc_people"]) == 2 and len(sums["crop_engine"]) == 2
    out = summarise_split_half(sums)
    assert out["cc_people"] == pytest.approx(1.0)
    assert out["cc_model"] == pytest.approx(1.0)
    assert out["cc_centre"] < 0.5
    assert out["saliency_level"] == pytest.approx(1.0)
    # The centred 1:1 box (x 20..140) holds the spot too, so every crop is at the oracle.
    assert out["crop_people"] == pytest.approx(1.0)


def test_level_and_gap_closed_are_the_share_of_the_way_from_centre_to_people():
    # Two groups: the spot is at the far left, so the centred boxes miss part of it.
    per = observers_at([(8.0, 60.0), (12.0, 64.0)], 4) + observers_at([(10.0, 58.0)], 4)
    flat = np.ones((H, W), np.float32)  # a model that knows nothing
    boxes = centred_boxes(W, H)
    sums = split_half_photo(per, W, H, flat, boxes, seeds=(0, 1, 2))
    out = summarise_split_half(sums)
    # A constant map has CC 0 with anything; the engine boxes are the centred boxes.
    assert out["cc_model"] == pytest.approx(0.0)
    assert out["crop_engine"] == pytest.approx(out["crop_centre"])
    assert out["crop_gap_closed"] == pytest.approx(0.0)
    assert out["crop_people"] == pytest.approx(1.0)
    assert out["crop_centre"] < 1.0
    expected = (0.0 - out["cc_centre"]) / (out["cc_people"] - out["cc_centre"])
    assert out["saliency_level"] == pytest.approx(expected)


def test_halves_are_disjoint_random_and_reproducible():
    # Observer i fixates only pixel column 10 + 20 i: A's and B's densities never share a peak.
    per = [np.array([[10.0 + 20 * i, 60.0]], np.float32) for i in range(7)]
    flat = np.ones((H, W), np.float32)
    a = split_half_photo(per, W, H, flat, [], seeds=(0, 1, 2))
    b = split_half_photo(per, W, H, flat, [], seeds=(0, 1, 2))
    assert a == b
    # Different seeds give different splits (people CC differs between seeds).
    assert len(set(np.round(a["cc_people"], 6))) > 1


def test_the_map_alone_row_places_the_largest_box_where_the_map_is_densest():
    # Everybody looks at the far left; a map that knows it puts every largest box there and
    # closes the whole gap on its own, whatever the engine's boxes did (here: centred).
    per = observers_at([(8.0, 60.0), (12.0, 64.0)], 4) + observers_at([(10.0, 58.0)], 4)
    truth = density_map(np.concatenate(per), H, W)
    out = summarise_split_half(split_half_photo(per, W, H, truth, centred_boxes(W, H), seeds=(0, 1, 2)))
    assert out["crop_map"] == pytest.approx(out["crop_people"])
    assert out["map_gap_closed"] == pytest.approx(1.0)
    assert out["crop_gap_closed"] == pytest.approx(0.0)


def test_the_engine_on_people_row_runs_the_given_chooser_on_the_first_halfs_density():
    # The chooser sees A's density (one half's fixations, all at the far left here) and puts
    # its boxes where that density is densest: that row then equals people's own boxes.
    per = observers_at([(8.0, 60.0), (12.0, 64.0)], 4) + observers_at([(10.0, 58.0)], 4)
    seen = []

    def chooser(density):
        seen.append(density.shape)
        return saliency_only_boxes(density, W, H)

    flat = np.ones((H, W), np.float32)
    out = summarise_split_half(split_half_photo(per, W, H, flat, centred_boxes(W, H), seeds=(0, 1), engine_on=chooser))
    assert seen == [(H, W), (H, W)]
    assert out["crop_engine_people"] == pytest.approx(out["crop_people"])
    assert out["engine_people_gap_closed"] == pytest.approx(1.0)
    assert "engine_people_gap_closed" not in summarise_split_half(split_half_photo(per, W, H, flat, [], seeds=(0,)))
