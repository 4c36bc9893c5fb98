"""The shipped saliency file against the float net it was exported from (parity >= 0.99 CC)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from skimage import data

from autocrop.preprocess import letterbox, unletterbox
from autocrop.saliency import DEFAULT_SALIENCY_MODEL, LiteRTSaliency, RuntimePrior
from model_export.quantize import pearson
from model_export.saliency import REFERENCE_DIR
from tests.shared_data import DATA, needs_data

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle_left")


@needs_data
def test_shipped_model_matches_its_float_net_on_photos_it_never_saw():
    from training.backbone import DEFAULT_WEIGHTS
    from training.prior_select import prior_map
    from training.saliency_frozen import assemble

    card = json.loads(DEFAULT_SALIENCY_MODEL.with_suffix(".json").read_text())
    reference = json.loads((REFERENCE_DIR / "prior.json").read_text())
    assert reference["runtime_prior"] == card["runtime_prior"]
    backbone = DATA / "weights" / "backbone" / DEFAULT_WEIGHTS.name
    net = assemble(REFERENCE_DIR, prior_map(REFERENCE_DIR, reference["prior"]), backbone)
    shipped = LiteRTSaliency(DEFAULT_SALIENCY_MODEL)
    prior = RuntimePrior.from_card(card)
    assert shipped.prior == prior
    parities = []
    for name in PHOTOS:
        rgb = getattr(data, name)()[..., :3]
        canvas, box = letterbox(rgb)
        raw = np.asarray(net(canvas[None], training=False))[0, ..., 0]
        ref = prior.apply(unletterbox(raw, box, rgb.shape[0], rgb.shape[1]))
        parities.append(pearson(ref, shipped.predict_with_features(rgb).saliency))
    assert np.mean(parities) >= 0.99, parities
    assert min(parities) >= 0.97, parities
    # And the card says what the file is.
    assert card["sha256"] and card["size_bytes"] == DEFAULT_SALIENCY_MODEL.stat().st_size
    assert card["size_bytes"] <= 8_000_000


def test_card_records_the_out_of_domain_figures_and_how_the_prior_was_chosen():
    card = json.loads(DEFAULT_SALIENCY_MODEL.with_suffix(".json").read_text())
    assert "mit1003" in card["validation"]["model"]
    prior = card["runtime_prior"]
    assert "leave-one-dataset-out" in prior["chosen_by"] and prior["lodo_table"]
    best = max(prior["lodo_table"].items(), key=lambda kv: kv[1]["mean"])[0]
    assert best.startswith(f"{prior['prior_map']}^{prior['centre_exponent']:g}+faces*{prior['face_weight']:g}")
    assert "split_half" in card and card["split_half"]["mit1003"]["cc_people"] > card["split_half"]["mit1003"]["cc_centre"]
