"""The shipped saliency card records the out-of-domain figures and its run-time prior."""

from __future__ import annotations

import json

from autocrop.saliency import DEFAULT_SALIENCY_MODEL, LiteRTSaliency, RuntimePrior


def test_card_records_the_out_of_domain_and_human_level_figures():
    card = json.loads(DEFAULT_SALIENCY_MODEL.with_suffix(".json").read_text())
    model = card["validation"]["model"]
    assert {"osie", "eyecrowd", "combined", "mit1003"} <= set(model)
    assert model["mit1003"]["n"] == 100 and model["combined"]["n"] == 110
    half = card["split_half"]["mit1003"]
    assert half["cc_people"] > half["cc_model"] > half["cc_centre"]
    level = (half["cc_model"] - half["cc_centre"]) / (half["cc_people"] - half["cc_centre"])
    assert abs(level - half["saliency_level"]) < 2e-4  # the card's figures are rounded to 4 places
    assert card["size_bytes"] == DEFAULT_SALIENCY_MODEL.stat().st_size <= 8_000_000


def test_the_runtime_applies_the_prior_its_card_names():
    card = json.loads(DEFAULT_SALIENCY_MODEL.with_suffix(".json").read_text())
    assert LiteRTSaliency(DEFAULT_SALIENCY_MODEL).prior == RuntimePrior.from_card(card)
    assert "chosen_by" in card["runtime_prior"]
