"""model_export.saliency's ensemble members: what `--member` accepts, what ships beside the
model, and that every card names every set its weights learned from."""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from autocrop.saliency import DEFAULT_SALIENCY_MODEL
from model_export.saliency import (commands, learned_from, licence, member_arg, rounded, ship_members,
                                   training_data)

OTHER = DEFAULT_SALIENCY_MODEL.parent / "saliency_member1.tflite"
FROZEN_EMOD = {"sets": ["osie", "eyecrowd", "emod"], "frozen_encoder": True, "net": {"priors": 3, "tune_top": True}}


def _member(folder: Path, config: dict, name: str = "m") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.tflite"
    path.write_bytes(OTHER.read_bytes())
    card = {"name": f"net-{name}", "licence": "data: OSIE and EyeCrowd, MIT",
            "training": {"data": "OSIE + EyeCrowd", "train_images": 990, "config": config}}
    path.with_suffix(".json").write_text(json.dumps(card))
    return path


def test_a_frozen_run_that_learned_emod_names_it_in_data_and_licence():
    """training.saliency_frozen says EMOd in `sets`, not with an `emod` flag: both count."""
    assert learned_from(FROZEN_EMOD, "emod") and learned_from({"emod": "../x"}, "emod")
    assert not learned_from({"sets": ["osie", "eyecrowd"]}, "emod") and not learned_from({}, "unlabelled")
    assert "EMOd" in training_data(FROZEN_EMOD, 990) and "EMOd" in licence(FROZEN_EMOD)
    assert "EMOd" not in licence({"sets": ["osie", "eyecrowd"]})


def test_ship_members_copies_each_member_corrects_its_card_and_removes_stale_ones(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    for stale in ("saliency_member1.tflite", "saliency_member1.json", "saliency_member7.tflite"):
        (models / stale).write_bytes(b"old")
    (models / "saliency.tflite").write_bytes(b"the main model stays")
    member = _member(tmp_path / "run", FROZEN_EMOD)
    spec = ship_members(((member, 0.3),), models)
    assert spec is not None and spec["weight"] == pytest.approx(0.7)
    (entry,) = spec["members"]
    assert entry["file"] == "saliency_member1.tflite" and entry["weight"] == 0.3
    assert entry["sha256"] == hashlib.sha256(OTHER.read_bytes()).hexdigest()
    assert entry["sets"] == ["osie", "eyecrowd", "emod"]
    assert sorted(p.name for p in models.iterdir()) == ["saliency.tflite", "saliency_member1.json",
                                                        "saliency_member1.tflite"]
    card = json.loads((models / "saliency_member1.json").read_text())
    assert "EMOd" in card["training"]["data"] and "EMOd" in card["licence"]  # the old card said neither
    assert (models / "saliency_member1.tflite").read_bytes() == OTHER.read_bytes()
    # an export without members leaves none behind
    assert ship_members((), models) is None
    assert sorted(p.name for p in models.iterdir()) == ["saliency.tflite"]


def test_a_member_that_is_an_ensemble_is_refused(tmp_path):
    member = _member(tmp_path, {})
    card = json.loads(member.with_suffix(".json").read_text())
    card["ensemble"] = {"weight": 0.5, "members": []}
    member.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(ValueError, match="ensemble itself"):
        ship_members(((member, 0.3),), tmp_path / "models")


def test_member_arg_accepts_path_weight_and_refuses_the_rest(tmp_path):
    member = _member(tmp_path, {})
    assert member_arg(f"{member}:0.3") == (member, 0.3)
    bare = tmp_path / "bare.tflite"
    bare.write_bytes(b"x")  # no card beside it
    for bad in (f"{member}", f"{member}:", f"{member}:x", f"{member}:0", f"{member}:1", f"{member}:-0.2",
                f"{member}:nan", f"{tmp_path / 'none.tflite'}:0.3", f"{bare}:0.3", ":0.3"):
        with pytest.raises(argparse.ArgumentTypeError):
            member_arg(bad)


def test_the_commands_name_the_members(tmp_path):
    member = tmp_path / "b" / "saliency.tflite"
    cmds = commands(Path("runs/a"), {}, {"source": "docs/priors/p.json"}, ((member, 0.3),))
    assert any(f"--member {member}:0.3" in c and "--prior docs/priors/p.json" in c for c in cmds)
    assert any(c.startswith("# members:") for c in cmds)
    assert not any("--member" in c for c in commands(Path("runs/a"), {}, None))


def test_rounded_rounds_every_float_and_nothing_else():
    figures = {"a": 0.123456789, "b": [np.float32(0.5555555), 3, "x"], "c": {"d": np.float64(1 / 3), "n": 19}}
    assert rounded(figures) == {"a": 0.1235, "b": [0.5556, 3, "x"], "c": {"d": 0.3333, "n": 19}}
    assert json.dumps(rounded(figures))  # plain JSON types
