"""The score breakdown reads as what it measured: every term is named and explained, a photo
without faces says so, and the head term is told apart from face_report's heads_cut."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib
import pytest
import skimage.data

from autocrop.engine import analyse
from autocrop.options import CropOptions
from autocrop.scoring import TERM_MEANINGS
from autocrop.types import CropResult
from functions.api.models import CropOut
from tests.engine.test_decode import encode_image

RATIOS = ("1:1", "16:9", "4:5", "9:16")


@pytest.fixture(scope="module")
def results() -> dict[str, CropResult]:
    hopper = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    photos = {
        "coffee": encode_image(skimage.data.coffee(), "PNG"),  # no face
        "astronaut": encode_image(skimage.data.astronaut(), "PNG"),  # one face
        "hopper": hopper.read_bytes(),  # one face, close up
    }
    options = CropOptions(ratios=RATIOS)
    return {name: analyse(data, options) for name, data in photos.items()}


def test_every_reported_term_is_explained(results: dict[str, CropResult]) -> None:
    for result in results.values():
        for crop in result.crops:
            assert set(crop.breakdown) <= set(TERM_MEANINGS), set(crop.breakdown) - set(TERM_MEANINGS)
    described = CropOut.model_json_schema()["properties"]["breakdown"]["description"]
    assert all(f"{name}: " in described for name in TERM_MEANINGS)


def test_a_photo_without_faces_says_there_was_no_face_to_keep(results: dict[str, CropResult]) -> None:
    assert results["coffee"].faces == ()
    for crop in results["coffee"].crops:
        assert "faces_kept_whole" not in crop.breakdown
        assert crop.breakdown["no_protected_face"] == pytest.approx(CropOptions().weight_faces)
    for crop in results["astronaut"].crops:
        assert "no_protected_face" not in crop.breakdown
        assert crop.breakdown["faces_kept_whole"] == pytest.approx(CropOptions().weight_faces)  # its face is kept


def test_head_margins_are_not_heads_cut() -> None:
    """Grace Hopper's tall 1:3 crop slices her hair margin a little, but no guard: the two
    numbers a reader sees side by side carry names that say they differ."""
    hopper = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    tall = analyse(hopper.read_bytes(), CropOptions(ratios=("1:3",))).crop("1:3").to_dict()
    assert tall["breakdown"]["head_margins_sliced"] < 0 and tall["face_report"]["heads_cut"] == 0
    assert "heads" not in tall["breakdown"] and "faces" not in tall["breakdown"]


def test_no_term_reads_minus_zero(results: dict[str, CropResult]) -> None:
    for result in results.values():
        text = json.dumps(result.to_dict())
        assert "-0.0," not in text and "-0.0}" not in text
        for crop in result.to_dict()["crops"]:
            assert crop["score"] == pytest.approx(sum(crop["breakdown"].values()), abs=1e-3)
