"""The run-time prior the saliency card names (centre weighting), and the face channel that
training.prior_select measures and the engine refuses."""

from __future__ import annotations

import numpy as np
import pytest

from autocrop.saliency import RuntimePrior, UnsupportedCardError, centre_bias


def test_face_map_peaks_at_each_face_with_its_score_and_stays_local():
    from training.prior_select import face_map

    faces = np.array([[10, 20, 8, 8, 0.9], [60, 30, 20, 20, 0.5]], np.float32)
    m = face_map(faces, 80, 100)
    assert m.shape == (80, 100)
    assert m[24, 14] == pytest.approx(0.9, abs=0.02)  # centre of the first face
    assert m[40, 70] == pytest.approx(0.5, abs=0.02)
    assert m[79, 0] < 1e-3  # far from both
    assert m.max() <= 0.9 + 1e-6  # overlapping blobs take the maximum, never the sum
    assert not face_map(np.zeros((0, 5)), 5, 5).any()


def test_a_face_at_the_border_or_outside_costs_nothing_and_never_fails():
    from training.prior_select import face_map

    faces = np.array([[-50, -50, 10, 10, 1.0], [95, 75, 30, 30, 1.0]], np.float32)
    m = face_map(faces, 80, 100)
    assert m[0, 0] < 1e-3 and m[79, 99] > 0.5


def test_prior_from_the_card_and_its_defaults():
    assert RuntimePrior.from_card({}) == RuntimePrior(0.0, 0.25)
    card = {"runtime_prior": {"centre_exponent": 0.5, "sigma_frac": 0.2, "prior_map": "learned", "face_weight": 0}}
    assert RuntimePrior.from_card(card) == RuntimePrior(0.5, 0.2)


def test_a_card_with_a_face_channel_is_refused_not_cropped_without_it(tmp_path):
    """No shipped setting reaches a face channel: a card naming one is a wrong install, said at
    load, not the labelled centre-bias fallback of a missing model."""
    import json
    import shutil

    from autocrop.saliency import DEFAULT_SALIENCY_MODEL, load_saliency

    with pytest.raises(UnsupportedCardError, match="face_weight is 0.25"):
        RuntimePrior.from_card({"runtime_prior": {"centre_exponent": 0.5, "face_weight": 0.25}})
    model = tmp_path / "saliency.tflite"
    shutil.copyfile(DEFAULT_SALIENCY_MODEL, model)
    card = json.loads(DEFAULT_SALIENCY_MODEL.with_suffix(".json").read_text())
    card["runtime_prior"]["face_weight"] = 0.5
    model.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(UnsupportedCardError):
        load_saliency(str(model), 1)


def test_centre_weighting_is_the_centre_gaussian_to_the_power():
    flat = np.ones((30, 40), np.float32)
    assert np.allclose(RuntimePrior(0.0).apply(flat), 1.0)
    weighted = RuntimePrior(2.0).apply(flat)
    expected = centre_bias(30, 40) ** 2
    assert np.allclose(weighted, expected / expected.max(), atol=1e-6)
    # Weighting moves the peak of an off-centre map towards the centre, never past it.
    ramp = np.tile(np.linspace(0.5, 1.0, 40, dtype=np.float32), (30, 1))
    assert int(RuntimePrior(0.0).apply(ramp).argmax() % 40) == 39
    assert 20 <= int(RuntimePrior(3.0).apply(ramp).argmax() % 40) < 39


def test_the_face_channel_raises_faces_and_keeps_the_map_in_0_1():
    from training.prior_select import face_map, with_face_map

    sal = np.zeros((60, 80), np.float32)
    sal[10, 10] = 1.0
    blobs = face_map(np.array([[50, 30, 12, 12, 1.0]], np.float32), 60, 80)
    out = with_face_map(sal, blobs, 0.5)
    assert out.max() == pytest.approx(1.0) and out.min() >= 0
    assert out[36, 56] > 0.3  # the face now draws attention
    assert with_face_map(sal, blobs, 0.0) is sal
    assert with_face_map(sal, face_map(None, 60, 80), 0.5) is sal


def test_prior_select_chooses_only_a_prior_the_engine_applies():
    from training.prior_select import choose

    table = {"learned^0.5+faces*0.25": {"mean": 0.75}, "learned^0.5+faces*0": {"mean": 0.74},
             "flat^1+faces*0": {"mean": 0.70}}  # fmt: skip
    assert choose(table) == {"prior": "learned", "centre_exponent": 0.5, "face_weight": 0.0}
