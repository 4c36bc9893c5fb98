"""training.cards.dump_card: the one layout of a model card on disk."""

from __future__ import annotations

import json

from training.cards import dump_card


def test_plain_lists_go_on_one_line_and_the_card_reads_back_unchanged():
    card = {"shape": [1, 256, 256, 3], "sets": ["osie", "eyecrowd"], "ci": [0.47, 0.56],
            "nested": [[1, 2], {"a": [3]}], "empty": [], "text": "a, b\nc"}
    text = dump_card(card)
    assert text.endswith("\n") and json.loads(text) == card
    assert '"shape": [1, 256, 256, 3]' in text and '"sets": ["osie", "eyecrowd"]' in text
    assert '"ci": [0.47, 0.56]' in text


def test_strings_that_look_like_layout_are_never_changed():
    """Brackets, commas and spaces inside strings: the layout only moves whitespace between
    values, and any doubt falls back to the plain indented layout."""
    card = {"commands": ["python -m x --a 1, 2 ]", "[ y ]", "z,\\n  w", " ] [ "], "k": ["ok ]", "["]}
    assert json.loads(dump_card(card)) == card


def test_the_shipped_cards_are_written_this_way():
    from autocrop.saliency import DEFAULT_SALIENCY_MODEL

    for path in [DEFAULT_SALIENCY_MODEL.with_suffix(".json"), *DEFAULT_SALIENCY_MODEL.parent.glob("saliency_member*.json")]:
        text = path.read_text()
        assert dump_card(json.loads(text)) == text, path.name


def test_long_lists_keep_one_value_per_line():
    card = {"commands": ["python -m training.saliency --out runs/a --per-dataset-priors --emod ../shared/data/saliency/emod_fdm", "python -m model_export.saliency --run runs/a"]}
    text = dump_card(card)
    assert json.loads(text) == card and text.count("\n") == 6
