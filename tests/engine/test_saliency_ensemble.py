"""Saliency ensembles: a card may name member networks whose maps are blended into its own.

Real LiteRT networks throughout: the shipped network and its shipped member (two networks
trained apart), copied into a temporary folder with hand-written cards, so each rule of
`autocrop.saliency.load_members` is tried against the card a wrong install could hold."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from skimage import data

from autocrop.saliency import (DEFAULT_SALIENCY_MODEL, CentreBiasSaliency, LiteRTSaliency, UnsupportedCardError,
                               load_saliency)

OTHER = DEFAULT_SALIENCY_MODEL.parent / "saliency_member1.tflite"
SHIPPED_CARD = json.loads(DEFAULT_SALIENCY_MODEL.with_suffix(".json").read_text())


def _install(folder: Path, ensemble: dict | None, main_card: dict | None = None, member_card: dict | None = None,
             member_name: str = "member.tflite") -> Path:
    """main.tflite (the shipped network, no ensemble of its own) + a member beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    main = folder / "main.tflite"
    main.write_bytes(DEFAULT_SALIENCY_MODEL.read_bytes())
    card = dict(main_card if main_card is not None else SHIPPED_CARD)
    card.pop("ensemble", None)
    if ensemble is not None:
        card["ensemble"] = ensemble
    main.with_suffix(".json").write_text(json.dumps(card))
    member = folder / member_name
    member.write_bytes(OTHER.read_bytes())
    member.with_suffix(".json").write_text(json.dumps(member_card if member_card is not None else
                                                      json.loads(OTHER.with_suffix(".json").read_text())))
    return main


def _spec(weight: float = 0.3, file: str = "member.tflite", sha: bool = True) -> dict:
    entry: dict = {"file": file, "weight": weight}
    if sha:
        entry["sha256"] = hashlib.sha256(OTHER.read_bytes()).hexdigest()
    return {"weight": round(1 - weight, 6), "members": [entry]}


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return data.astronaut()[40:400, :]  # 360x512: letterboxed, not square


def test_the_blend_is_each_networks_map_weighted_and_rescaled(tmp_path, photo):
    main = _install(tmp_path, _spec(0.3))
    ensemble = LiteRTSaliency(main, num_threads=1)
    alone = LiteRTSaliency(_install(tmp_path / "alone", None), num_threads=1)
    other = LiteRTSaliency(OTHER, num_threads=1)
    assert ensemble.weight == pytest.approx(0.7) and [w for _, w in ensemble.members] == [0.3]
    a, b = alone.predict(photo), other.predict(photo)
    assert a.max() == pytest.approx(1) and b.max() == pytest.approx(1)
    expected = 0.7 * a + 0.3 * b
    expected /= expected.max()
    out = ensemble.predict_with_features(photo)
    np.testing.assert_allclose(out.saliency, expected, atol=1e-5)
    assert out.saliency.shape == photo.shape[:2] and out.saliency.dtype == np.float32
    assert 0 <= out.saliency.min() and out.saliency.max() == pytest.approx(1)
    # the blend is not either network's map alone (the member is a different network) ...
    assert np.abs(out.saliency - a).max() > 0.02
    # ... and the ranker's features are the main network's one pass, untouched
    np.testing.assert_array_equal(out.features, alone.predict_with_features(photo).features)
    assert ensemble.name == f"{alone.name}+{other.name}"


def test_a_members_own_card_sets_its_prior_and_flip(tmp_path, photo):
    card = json.loads(OTHER.with_suffix(".json").read_text())
    card["test_time_flip"] = True
    card["runtime_prior"] = {"centre_exponent": 1.0, "sigma_frac": 0.25}
    main = _install(tmp_path, _spec(0.5), member_card=card)
    ensemble = LiteRTSaliency(main, num_threads=1)
    member, _ = ensemble.members[0]
    assert member.flip and member.prior.centre_exponent == 1.0 and not ensemble.flip
    alone = LiteRTSaliency(_install(tmp_path / "alone", None), num_threads=1)
    expected = 0.5 * alone.predict(photo) + 0.5 * member.predict(photo)
    np.testing.assert_allclose(ensemble.predict(photo), expected / expected.max(), atol=1e-5)


@pytest.mark.parametrize("ensemble", [
    {"weight": 0.7, "members": [{"file": "member.tflite", "weight": 0.4}]},  # sums to 1.1
    {"weight": 1.0, "members": [{"file": "member.tflite", "weight": 0.0}]},  # a member of no weight
    {"weight": 1.2, "members": [{"file": "member.tflite", "weight": -0.2}]},
    {"weight": float("nan"), "members": [{"file": "member.tflite", "weight": 0.5}]},
    {"weight": 1.0, "members": []},
    {"weight": 0.7},
    {"weight": "much", "members": [{"file": "member.tflite", "weight": 0.3}]},
    {"weight": 0.7, "members": [{"weight": 0.3}]},
    {"weight": 0.7, "members": ["member.tflite"]},
    {"weight": 0.7, "members": [{"file": "../member.tflite", "weight": 0.3}]},
    {"weight": 0.7, "members": [{"file": "/etc/passwd", "weight": 0.3}]},
    {"weight": 0.7, "members": [{"file": "main.tflite", "weight": 0.3}]},  # itself
], ids=["sum", "zero", "negative", "nan", "empty", "no-members", "text", "no-file", "not-a-dict", "parent",
        "absolute", "itself"])
def test_a_card_the_engine_cannot_honour_is_refused_at_load(tmp_path, ensemble):
    main = _install(tmp_path, ensemble)
    with pytest.raises(UnsupportedCardError):
        LiteRTSaliency(main, num_threads=1)
    with pytest.raises(UnsupportedCardError):  # said at load, not hidden behind the fallback
        load_saliency(str(main), 1)


def test_a_member_that_names_members_is_refused(tmp_path):
    nested = json.loads(OTHER.with_suffix(".json").read_text())
    nested["ensemble"] = {"weight": 0.5, "members": [{"file": "main.tflite", "weight": 0.5}]}
    main = _install(tmp_path, _spec(0.3), member_card=nested)
    with pytest.raises(UnsupportedCardError, match="members of its own"):
        LiteRTSaliency(main, num_threads=1)


def test_a_missing_or_altered_member_falls_back_to_the_labelled_centre_prior(tmp_path, caplog):
    missing = _install(tmp_path / "missing", _spec(0.3))
    (missing.parent / "member.tflite").unlink()
    with pytest.raises(OSError):
        LiteRTSaliency(missing, num_threads=1)
    assert isinstance(load_saliency(str(missing), 1), CentreBiasSaliency)
    altered = _install(tmp_path / "altered", _spec(0.3))
    blob = bytearray((altered.parent / "member.tflite").read_bytes())
    blob[-1] ^= 0xFF
    (altered.parent / "member.tflite").write_bytes(bytes(blob))
    with pytest.raises(ValueError, match="sha256"):
        LiteRTSaliency(altered, num_threads=1)
    fallback = load_saliency(str(altered), 1)
    assert isinstance(fallback, CentreBiasSaliency) and fallback.name == "centre-bias-fallback"
    assert "sha256" in caplog.text
    # a card without a digest still loads the member (a hand-made ensemble)
    assert LiteRTSaliency(_install(tmp_path / "nodigest", _spec(0.3, sha=False)), num_threads=1).members


def test_concurrent_calls_on_one_ensemble_match_serial_ones(tmp_path):
    """Two interpreters behind two locks: six threads at once get the serial maps."""
    from tests.engine.test_saliency_runtime import concurrent_mismatches

    assert not concurrent_mismatches(LiteRTSaliency(_install(tmp_path, _spec(0.3)), num_threads=1), rounds=3)


def test_the_shipped_card_names_a_member_that_is_there_and_matches():
    """Whatever ships: an ensemble's members are beside the model, byte for byte as the card
    says, and the predictor the engine loads blends them."""
    spec = SHIPPED_CARD.get("ensemble")
    if spec is None:
        assert not list(DEFAULT_SALIENCY_MODEL.parent.glob("saliency_member*")), "a member file nothing names"
        return
    named = set()
    for entry in spec["members"]:
        path = DEFAULT_SALIENCY_MODEL.parent / entry["file"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"]
        assert path.with_suffix(".json").is_file() and {"osie", "eyecrowd"} <= set(entry["sets"])
        named |= {path.name, path.with_suffix(".json").name}
    assert {p.name for p in DEFAULT_SALIENCY_MODEL.parent.glob("saliency_member*")} == named
    assert spec["weight"] + sum(e["weight"] for e in spec["members"]) == pytest.approx(1)
    model = LiteRTSaliency(DEFAULT_SALIENCY_MODEL, num_threads=1)
    assert len(model.members) == len(spec["members"])
