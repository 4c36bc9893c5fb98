"""The kept candidate (research/candidates/saliency_emod): its card is the file's, names every
set it learned from, and the engine's runtime loads and runs it as it would a shipped model."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from autocrop.saliency import LiteRTSaliency

HERE = Path(__file__).resolve().parents[2] / "research" / "candidates" / "saliency_emod"


def test_card_is_the_files_and_names_what_it_learned_from():
    card = json.loads((HERE / "saliency.json").read_text())
    blob = (HERE / "saliency.tflite").read_bytes()
    assert card["sha256"] == hashlib.sha256(blob).hexdigest() and card["size_bytes"] == len(blob)
    data = card["training"]["data"]
    assert "OSIE" in data and "EyeCrowd" in data and "EMOd" in data and "maps only" in data
    assert card["training"]["config"]["net"]["priors"] == 3  # OSIE, EyeCrowd, EMOd
    assert card["runtime_prior"]["centre_exponent"] == 0.25 and card["runtime_prior"].get("face_weight", 0) == 0
    assert card["validation"]["model"]["mit1003"]["cc"] > 0.74  # docs/saliency.md: 0.751


def test_the_runtime_runs_it_and_its_centre_term_applies():
    from skimage import data

    model = LiteRTSaliency(HERE / "saliency.tflite", num_threads=1)
    rgb = data.astronaut()
    sal = model.predict(rgb)
    assert sal.shape == rgb.shape[:2] and np.isfinite(sal).all() and sal.max() > sal.min() >= 0
    # The card's centre term pulls the map inward: the centre quarter holds more than the
    # same map with the term taken off would (the prior is applied on top of the net).
    h, w = sal.shape
    centre = sal[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4].sum() / sal.sum()
    model.prior = type(model.prior)(centre_exponent=0.0, sigma_frac=model.prior.sigma_frac)
    flat = model.predict(rgb)
    assert centre > flat[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4].sum() / flat.sum()
