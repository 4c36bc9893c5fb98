"""The shipped saliency networks: each card is its file's and names every set the weights
learned from (the main network and each ensemble member), the main card holds the figures the
out-of-domain targets are read from, and the runtime's centre term applies."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from autocrop.saliency import DEFAULT_SALIENCY_MODEL, LiteRTSaliency

HERE = DEFAULT_SALIENCY_MODEL.parent


def test_card_is_the_files_and_names_what_it_learned_from():
    card = json.loads((HERE / "saliency.json").read_text())
    blob = (HERE / "saliency.tflite").read_bytes()
    assert card["sha256"] == hashlib.sha256(blob).hexdigest() and card["size_bytes"] == len(blob)
    data = card["training"]["data"]
    assert "OSIE" in data and "EyeCrowd" in data and "EMOd" in data and "maps only" in data
    assert card["training"]["config"]["net"]["priors"] == 3  # OSIE, EyeCrowd, EMOd
    assert card["runtime_prior"]["centre_exponent"] == 0.25 and card["runtime_prior"].get("face_weight", 0) == 0
    assert card["validation"]["model"]["mit1003"]["cc"] >= 0.73  # docs/saliency.md: 0.768
    assert card["split_half"]["mit1003"]["saliency_level"] >= 0.60  # 0.69
    assert card["split_half"]["mit1003"]["crop_gap_closed"] >= 0.35  # 0.50
    for s in ("osie", "eyecrowd"):  # the one-network model it replaced: 0.796 / 0.818
        assert card["validation"]["model"][s]["cc"] >= {"osie": 0.796, "eyecrowd": 0.818}[s]
    assert "EMOd" in card["licence"] and "research use" in card["licence"]


def test_every_member_card_is_its_file_and_names_what_it_learned_from():
    card = json.loads((HERE / "saliency.json").read_text())
    assert card.get("ensemble"), "the shipped model is the two-network blend of docs/saliency.md"
    for entry in card["ensemble"]["members"]:
        member = json.loads((HERE / entry["file"]).with_suffix(".json").read_text())
        blob = (HERE / entry["file"]).read_bytes()
        assert member["sha256"] == entry["sha256"] == hashlib.sha256(blob).hexdigest()
        assert member["size_bytes"] == len(blob)
        names = {"osie": "OSIE", "eyecrowd": "EyeCrowd", "emod": "EMOd", "unlabelled": "unlabelled"}
        for s in entry["sets"]:
            assert names[s] in member["training"]["data"]
        if "emod" in entry["sets"]:
            assert "EMOd" in member["licence"]
        assert not any(c.startswith("python -m model_export.saliency") and "--models-dir" not in c
                       for c in member["commands"])  # rebuilding a member never overwrites the main model


def test_the_runtime_runs_it_and_its_centre_term_applies():
    from skimage import data

    model = LiteRTSaliency(HERE / "saliency.tflite", num_threads=1)
    model.members = ()  # the main network alone: its own centre term
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
