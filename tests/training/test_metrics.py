"""Fixation maps, densities and metrics against hand computations; centre bias on the real data."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from autocrop.saliency import centre_bias as autocrop_centre_bias
from tests.shared_data import DATA, needs_data
from training.datasets import FixationRecord, load_saliency_sets
from training.fixations import density_map, density_sigma, fixation_map
from training.metrics import (
    auc_judd,
    cc,
    centre_bias,
    evaluate_centre_bias,
    evaluate_maps,
    kl_div,
    nss,
)



# --- fixation maps and densities ------------------------------------------------------------


def test_fixation_map_rounds_clips_and_counts_once() -> None:
    pts = np.array([[0.49, 0.0], [0.5, 1.0], [2.0, 2.0], [2.2, 1.8], [-3.0, 9.0], [9.0, -0.7]])
    fmap = fixation_map(pts, 4, 5)
    expected = np.zeros((4, 5), bool)
    expected[0, 0] = True  # x 0.49 -> 0
    expected[1, 1] = True  # x 0.5 rounds half up -> 1
    expected[2, 2] = True  # hit twice, still one pixel
    expected[3, 0] = True  # (-3, 9) clipped into the corner
    expected[0, 4] = True  # (9, -0.7) clipped
    np.testing.assert_array_equal(fmap, expected)
    assert fixation_map(np.zeros((0, 2)), 3, 3).sum() == 0


def test_density_sigma_is_three_percent_of_long_side() -> None:
    assert density_sigma(600, 800) == pytest.approx(24.0)
    assert density_sigma(480, 640) == pytest.approx(19.2)


def test_blurred_point_has_the_right_std() -> None:
    height, width = 300, 400  # sigma = 12 px
    density = density_map(np.array([[200.0, 150.0]]), height, width)
    ys, xs = np.mgrid[0:height, 0:width]
    mass = density.sum(dtype=np.float64)
    assert mass == pytest.approx(1.0, abs=1e-4)  # well inside: nothing leaves the image
    std_x = math.sqrt(float((density * (xs - 200) ** 2).sum()) / mass)
    std_y = math.sqrt(float((density * (ys - 150) ** 2).sum()) / mass)
    assert std_x == pytest.approx(12.0, rel=0.005)
    assert std_y == pytest.approx(12.0, rel=0.005)
    assert np.unravel_index(density.argmax(), density.shape) == (150, 200)


def test_density_matches_zero_padded_gaussian_and_counts_repeats_once() -> None:
    pts = np.array([[0.0, 0.0], [10.0, 20.0], [10.2, 19.9], [63.0, 47.0]])
    density = density_map(pts, 48, 64)
    reference = gaussian_filter(
        fixation_map(pts, 48, 64).astype(np.float64), 64 * 0.03, mode="constant"
    )
    np.testing.assert_allclose(density, reference, atol=1e-6)
    assert density.dtype == np.float32
    # A corner point keeps a quarter of its mass plus the half of the centre row and column
    # that lies on the image: zero padding, nothing reflected back in.
    corner = density_map(np.array([[0.0, 0.0]]), 300, 400)
    per_axis = 0.5 + 0.5 / (12 * math.sqrt(2 * math.pi))
    assert corner.sum(dtype=np.float64) == pytest.approx(per_axis**2, rel=1e-3)


# --- metrics ---------------------------------------------------------------------------------


def test_cc() -> None:
    rng = np.random.default_rng(0)
    a = rng.random((6, 7))
    assert cc(a, a) == pytest.approx(1.0)
    assert cc(a, 3 * a + 2) == pytest.approx(1.0)
    assert cc(a, -a) == pytest.approx(-1.0)
    assert cc(np.ones((6, 7)), a) == 0.0  # constant prediction: no information
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    y = np.array([[1.0, 3.0], [2.0, 5.0]])
    # Hand: dx = (-1.5, -.5, .5, 1.5), dy = (-1.75, .25, -.75, 2.25): sum 5.5 / sqrt(5 * 8.75)
    assert cc(x, y) == pytest.approx(5.5 / math.sqrt(5 * 8.75))
    with pytest.raises(ValueError):
        cc(a, a[:, :-1])


def test_nss_constant_plus_spike() -> None:
    pred = np.zeros((4, 4))
    pred[1, 2] = 1.0
    fix = np.zeros((4, 4), bool)
    fix[1, 2] = True
    # mean 1/16, population std sqrt(15)/16: the spike standardises to (15/16) / (sqrt(15)/16).
    assert nss(pred, fix) == pytest.approx(math.sqrt(15))
    fix[3, 3] = True  # a fixation on the background adds -(1/16) / (sqrt(15)/16) = -1/sqrt(15)
    assert nss(pred, fix) == pytest.approx((math.sqrt(15) - 1 / math.sqrt(15)) / 2)
    assert nss(np.full((4, 4), 0.3), fix) == 0.0
    with pytest.raises(ValueError):
        nss(pred, np.zeros((4, 4), bool))


def test_auc_judd_by_hand() -> None:
    pred = np.arange(16, dtype=np.float64).reshape(4, 4)
    fix = np.isin(pred, [15, 10, 3])
    # 3 positives, 13 negatives; thresholds 15, 10, 3:
    #   15: tp 1/3, fp 0/13;  10: tp 2/3, fp 4/13 (11..14);  3: tp 1, fp 10/13 (4..14 minus 10)
    # points (0,0) (0,1/3) (4/13,2/3) (10/13,1) (1,1); trapezoids 0 + 2/13 + 5/13 + 3/13.
    assert auc_judd(pred, fix) == pytest.approx(10 / 13)
    # A perfect map (the fixations hold the top values) and a constant one.
    assert auc_judd(np.where(fix, 2.0, pred / 100), fix) == pytest.approx(1.0)
    assert auc_judd(np.ones((4, 4)), fix) == pytest.approx(0.5)
    # Invariant to any increasing transform of the prediction.
    assert auc_judd(np.exp(pred / 3), fix) == pytest.approx(10 / 13)


def test_auc_judd_ties_share_a_threshold() -> None:
    pred = np.array([[1.0, 1.0, 0.0, 0.0]])
    fix = np.array([[True, False, True, False]])
    # Thresholds 1 (tp 1/2, fp 1/2) and 0 (tp 1, fp 1): points (0,0) (.5,.5) (1,1) (1,1) -> 0.5
    assert auc_judd(pred, fix) == pytest.approx(0.5)


def test_kl_div() -> None:
    rng = np.random.default_rng(1)
    d = rng.random((5, 5)) + 0.1
    assert kl_div(d, d) == pytest.approx(0.0, abs=1e-9)
    assert kl_div(2 * d, d) == pytest.approx(0.0, abs=1e-9)
    assert kl_div(np.ones((5, 5)), d) > 0


def test_centre_bias_is_autocrops() -> None:
    cb = centre_bias(60, 80)
    np.testing.assert_array_equal(cb, autocrop_centre_bias(60, 80))
    # sigma 0.25 x width (20.25 px) and 0.25 x height (15.25 px), peak 1 at the centre pixel.
    centre = centre_bias(61, 81)
    assert centre[30, 40] == pytest.approx(1.0)
    assert centre[30, 60] == pytest.approx(math.exp(-0.5 * (20 / 20.25) ** 2), rel=1e-5)
    assert centre[45, 40] == pytest.approx(math.exp(-0.5 * (15 / 15.25) ** 2), rel=1e-5)


# --- evaluate_maps ---------------------------------------------------------------------------


def record(dataset: str, name: str, fixations: list[list[float]]) -> FixationRecord:
    """A synthetic 40x50 record (no image file needed: predictors here never read it)."""
    return FixationRecord(
        dataset, name, Path(name), 50, 40, np.array(fixations, np.float32).reshape(-1, 2), 1
    )


def test_evaluate_maps_per_set_and_pooled() -> None:
    records = [
        record("osie", "a.jpg", [[10, 10], [30, 20]]),
        record("osie", "b.jpg", [[25, 20]]),
        record("eyecrowd", "c.jpg", [[40, 5], [5, 35], [20, 20]]),
    ]
    perfect = evaluate_maps(lambda r: density_map(r.fixations, r.height, r.width), records)
    assert perfect["osie"]["n"] == 2 and perfect["eyecrowd"]["n"] == 1
    assert perfect["combined"]["n"] == 3
    for key in ("osie", "eyecrowd", "combined"):
        assert perfect[key]["cc"] == pytest.approx(1.0)
        assert perfect[key]["auc_judd"] == pytest.approx(1.0, abs=1e-3)
    baseline = evaluate_centre_bias(records)
    per_image = [cc(centre_bias(40, 50), density_map(r.fixations, 40, 50)) for r in records]
    assert baseline["osie"]["cc"] == pytest.approx(np.mean(per_image[:2]))
    assert baseline["combined"]["cc"] == pytest.approx(np.mean(per_image))  # pooled, not set-mean
    with pytest.raises(ValueError, match="stored image"):
        evaluate_maps(lambda r: np.zeros((r.height // 2, r.width // 2)), records)


# --- centre bias on the real validation split -------------------------------------------------

#: Measured with this code (2 x 0.001 tolerance): the regression pin for the metric definitions.
MEASURED_CENTRE_BIAS = {
    "osie": {"cc": 0.2838, "nss": 0.7861, "auc_judd": 0.7262},
    "eyecrowd": {"cc": 0.4448, "nss": 0.8558, "auc_judd": 0.7393},
}
#: EVALUATION.md: "Centre-bias baseline ... scores CC 0.45-0.49, NSS 0.9-1.1, AUC-Judd 0.74-0.79".
EVALUATION_MD_RANGES = {"cc": (0.45, 0.49), "nss": (0.9, 1.1), "auc_judd": (0.74, 0.79)}


@pytest.fixture(scope="module")
def centre_bias_val() -> dict[str, dict[str, float]]:
    sets = load_saliency_sets(DATA)
    result = evaluate_centre_bias([r for name in ("osie", "eyecrowd") for r in sets[name][1]])
    for key in ("osie", "eyecrowd", "combined"):
        row = result[key]
        scores = " ".join(f"{m} {row[m]:.4f}" for m in ("cc", "nss", "auc_judd"))
        print(f"\ncentre bias {key:9s} n={row['n']:3d} {scores}")
    return result


@needs_data
def test_centre_bias_figures_are_stable(centre_bias_val: dict[str, dict[str, float]]) -> None:
    for key, expected in MEASURED_CENTRE_BIAS.items():
        for metric, value in expected.items():
            assert centre_bias_val[key][metric] == pytest.approx(value, abs=0.002), (key, metric)


@needs_data
@pytest.mark.xfail(
    reason="OSIE val's centre bias is far below EVALUATION.md's range (CC 0.28, NSS 0.79, "
    "AUC 0.73) and EyeCrowd val a little below it (CC 0.445, NSS 0.86, AUC 0.739); the "
    "definitions were checked against MIT-benchmark code, the data are less centred. Reported, "
    "not tuned.",
    strict=False,
)
def test_centre_bias_in_evaluation_md_ranges(centre_bias_val: dict[str, dict[str, float]]) -> None:
    for key in ("osie", "eyecrowd"):
        for metric, (low, high) in EVALUATION_MD_RANGES.items():
            assert low <= centre_bias_val[key][metric] <= high, (key, metric)
