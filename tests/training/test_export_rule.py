"""The saliency export's recipe rule (model_export.saliency.choose_recipe) on hand-made figures."""

import pytest

from model_export.saliency import LATENCY_BUDGET_MS, choose_recipe


def variant(parity: float, size: int, ms: float) -> dict:
    return {"parity_cc_mean": parity, "size_bytes": size, "latency_ms_1thread": {"median": ms}}


def test_float_recipe_within_budget_beats_faster_int8():
    # int8 is faster, but its map depends on the CPU (x86_64 vs arm64): float16 ships.
    chosen, rule = choose_recipe({"float32": variant(1.0, 8_300_000, 9.5),
                                  "float16": variant(1.0, 4_200_000, 5.4),
                                  "int8": variant(0.997, 2_600_000, 2.9)})
    assert chosen == "float16"
    assert "arm64" in rule


def test_int8_when_no_float_recipe_fits_the_budget():
    slow = LATENCY_BUDGET_MS + 1
    chosen, _ = choose_recipe({"float32": variant(1.0, 7_000_000, slow + 3),
                               "float16": variant(1.0, 4_000_000, slow),
                               "int8": variant(0.995, 2_000_000, 3.0)})
    assert chosen == "int8"


def test_parity_and_size_still_bar():
    chosen, _ = choose_recipe({"float32": variant(1.0, 9_000_000, 4.0),  # over 8 MB
                               "float16": variant(0.98, 4_000_000, 4.5),  # parity too low
                               "int8": variant(0.995, 2_000_000, 3.0)})
    assert chosen == "int8"
    with pytest.raises(RuntimeError):
        choose_recipe({"int8": variant(0.9, 2_000_000, 3.0)})


def test_a_prior_with_a_face_channel_cannot_ship():
    """The engine applies no face channel and refuses a card naming one: the export says so
    before any work, and a card's runtime_prior carries no face_weight."""
    from autocrop.saliency import RuntimePrior
    from model_export.saliency import runtime_prior, shipped_prior

    assert shipped_prior(None) == RuntimePrior()
    assert shipped_prior({"prior": "learned", "centre_exponent": 0.5, "face_weight": 0.0}) == RuntimePrior(0.5)
    assert "face_weight" not in runtime_prior({"prior": "learned", "centre_exponent": 0.5, "face_weight": 0.0})
    with pytest.raises(ValueError, match="face channel"):
        shipped_prior({"prior": "learned", "centre_exponent": 0.5, "face_weight": 0.25})


def test_card_names_every_data_set_a_distilled_run_learned_from():
    """A run distilled on EMOd maps and unlabelled photos gets a card whose training data,
    licence terms and rebuild commands name them; a plain run's names neither."""
    from pathlib import Path

    from model_export.saliency import DATA_TERMS, commands, training_data

    plain = {"epochs": 24, "epochs_frozen": 3}
    distilled = {**plain, "teachers": [["a/saliency.tflite", 0.7], ["b/saliency.tflite", 0.3]], "distill": 0.5,
                 "teacher_flip": True, "unlabelled": "../shared/data/photos", "unlabelled_share": 0.5,
                 "emod": "../shared/data/saliency/emod_fdm"}  # fmt: skip
    text = training_data(distilled, 990)
    assert "EMOd" in text and "unlabelled photos" in text and "0.5 of each source" in text and "mirrored" in text
    assert "EMOd" not in training_data(plain, 990) and "unlabelled" not in training_data(plain, 990)
    terms = "".join(term for key, term in DATA_TERMS if distilled.get(key))
    assert "ImageNet" in terms and "research use" in terms
    rebuild = commands(Path("runs/s"), distilled, None)[1]
    for flag in ("--unlabelled ../shared/data/photos", "--unlabelled-share 0.5", "--emod ../shared/data/saliency/emod_fdm",
                 "--teacher-flip", "--distill 0.5", "--epochs 24"):
        assert flag in rebuild, flag
