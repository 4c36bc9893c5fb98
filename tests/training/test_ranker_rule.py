"""The rule behind `ranker="auto"`: the learned ranker becomes the default chooser only when it
beats the composition score beyond chance (training.ranker.beats_composition, paired_gain)."""

from __future__ import annotations

import numpy as np
import pytest

from training.ranker import beats_composition, paired_gain


def _table(gains_per_photo: list[list[float]]) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Rows 2k (composition's pick) and 2k+1 (the ranker's) of each (photo, ratio) group, with
    oracle 100 and fixation counts that give the composition 0.9 and the ranker 0.9 + gain."""
    counts, oracle, dataset, name = [], [], [], []
    for p, gains in enumerate(gains_per_photo):
        for g in gains:
            counts += [90.0, 90.0 + 100 * g]
            oracle += [100.0, 100.0]
            dataset += ["osie", "osie"]
            name += [f"{p}.jpg", f"{p}.jpg"]
    data = {"counts": np.array(counts), "oracle": np.array(oracle), "dataset": np.array(dataset), "name": np.array(name)}
    n = len(counts) // 2
    return data, np.arange(n) * 2, np.arange(n) * 2 + 1


def _figures(of_c: float, of_r: float, gain: dict | None) -> dict:
    mean = lambda of: {"all": {"mean": {"of_oracle": of, "face_cut_rate": 0.0, "area": 0.6}}}  # noqa: E731
    figures = {"composition": mean(of_c), "ranker": mean(of_r)}
    return figures if gain is None else {**figures, "gain": gain}


def test_the_gain_is_the_mean_crop_gain_and_its_interval_resamples_photos():
    data, comp, rank = _table([[0.01, 0.01, 0.01, 0.01]] * 30)
    gain = paired_gain(data, comp, rank)
    assert gain["mean"] == pytest.approx(0.01) and gain["photos"] == 30 and gain["crops"] == 120
    assert gain["ci"][0] == pytest.approx(0.01) and gain["ci"][1] == pytest.approx(0.01)  # no spread, no doubt


def test_a_gain_carried_by_one_photo_is_not_beyond_chance():
    """440 crops, one photo lifted a lot, the rest unchanged: the mean is positive, the interval
    reaches 0 (the 110-photo validation split's situation, where a few crops decide the mean)."""
    photos = [[0.0] * 4 for _ in range(109)] + [[0.05, 0.05, 0.05, 0.05]]
    data, comp, rank = _table(photos)
    gain = paired_gain(data, comp, rank)
    assert gain["mean"] > 0 and gain["ci"][0] <= 0 < gain["ci"][1]
    assert not beats_composition(_figures(0.9, 0.9 + gain["mean"], gain))


def test_a_gain_across_photos_is_beyond_chance_and_ties_or_losses_never_are():
    rng = np.random.default_rng(1)
    photos = [list(0.004 + 0.002 * rng.standard_normal(4)) for _ in range(110)]
    data, comp, rank = _table(photos)
    gain = paired_gain(data, comp, rank)
    assert gain["ci"][0] > 0
    assert beats_composition(_figures(0.9, 0.9 + gain["mean"], gain))
    # the same interval with a mean that does not beat the composition score's: no
    assert not beats_composition(_figures(0.9, 0.9, gain))
    losing = {**gain, "mean": -gain["mean"], "ci": [-gain["ci"][1], -gain["ci"][0]]}
    assert not beats_composition(_figures(0.9, 0.9 - gain["mean"], losing))


def test_more_face_cuts_lose_whatever_the_gain():
    figures = _figures(0.9, 0.95, {"mean": 0.05, "ci": [0.04, 0.06], "photos": 110, "crops": 440})
    figures["ranker"]["all"]["mean"]["face_cut_rate"] = 0.01
    assert not beats_composition(figures)


def test_the_interval_is_seeded_so_a_card_reruns_exactly():
    rng = np.random.default_rng(2)
    data, comp, rank = _table([list(0.01 * rng.standard_normal(4)) for _ in range(50)])
    assert paired_gain(data, comp, rank) == paired_gain(data, comp, rank)


def test_figures_written_before_the_interval_never_make_it_the_default():
    """A run trained before the interval was measured has no evidence of a gain beyond chance."""
    assert not beats_composition(_figures(0.9, 0.95, None))


def test_too_few_photos_are_no_evidence():
    data, comp, rank = _table([[0.01] * 4] * 5)
    gain = paired_gain(data, comp, rank)
    assert gain["ci"][0] > 0 and gain["photos"] == 5
    assert not beats_composition(_figures(0.9, 0.91, gain))
