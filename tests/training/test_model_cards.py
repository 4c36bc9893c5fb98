"""The shipped model cards stay cards: the shipped model's figures, small enough to read, with
the experiments and every audit figure in docs/ (the card names where)."""

from __future__ import annotations

import json
from pathlib import Path

CARD = Path(__file__).resolve().parents[2] / "layers" / "autocrop" / "models" / "saliency.json"


def test_the_saliency_card_is_under_ten_kilobytes() -> None:
    assert CARD.stat().st_size < 10_000


def test_the_fairness_section_holds_every_pair_and_the_detectors_recall_per_group() -> None:
    fairness = json.loads(CARD.read_text())["fairness"]
    pairs = fairness["kept_share_first_group"]
    assert len(pairs) == 7 and all(0 <= p["ci"][0] <= p["share"] <= p["ci"][1] <= 1 for p in pairs.values())
    assert set(fairness["yunet_recall_single_photos_adults"]) == {"white", "black", "asian", "indian", "female", "male"}
    assert (Path(__file__).resolve().parents[2] / fairness["figures"]).is_file()
