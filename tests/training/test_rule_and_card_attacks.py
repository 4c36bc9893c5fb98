"""Adversarial tests of the "beyond chance" ranker rule (training.ranker.paired_gain,
beats_composition), the card layout (training.cards.dump_card) and the saliency export's
helpers (model_export.saliency: commands, read_members / ship_members, rounded).

Each test names the promise it attacks; each one failing names a defect. Nothing under test is
mocked: real numpy tables, the shipped cards and networks copied into temporary folders.
"""

from __future__ import annotations

import json
import math
import shlex
from pathlib import Path

import numpy as np
import pytest

from autocrop.preprocess import IMAGENET_MEAN, IMAGENET_STD
from autocrop.saliency import DEFAULT_SALIENCY_MODEL, CentreBiasSaliency, LiteRTSaliency, UnsupportedCardError
from model_export.saliency import commands, rounded, ship_members
from training.cards import dump_card
from training.ranker import beats_composition, crop_figures, paired_gain

MODELS = DEFAULT_SALIENCY_MODEL.parent
SALIENCY_CARD = DEFAULT_SALIENCY_MODEL.with_suffix(".json")
RANKER_CARD = MODELS / "ranker.json"


# --- training.ranker: paired_gain / beats_composition ---------------------------------------------


def _table(photos: list[tuple[str, list[float]]]) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Every column crop_figures and paired_gain read. Per (photo, ratio) group two rows: 2k, the
    composition's pick (of_oracle 0.9), 2k+1, the ranker's (0.9 + gain). `photos`: (dataset, gains)."""
    cols: dict[str, list] = {k: [] for k in ("counts", "oracle", "total", "dataset", "name", "ratio", "area",
                                              "face_cut", "has_countable", "group")}
    group = 0
    for p, (dataset, gains) in enumerate(photos):
        for r, g in enumerate(gains):
            for count in (90.0, 90.0 + 100 * g):
                cols["counts"].append(count)
                cols["oracle"].append(100.0)
                cols["total"].append(200)
                cols["dataset"].append(dataset)
                cols["name"].append(f"{p}.jpg")
                cols["ratio"].append(r % 4)
                cols["area"].append(0.6)
                cols["face_cut"].append(False)
                cols["has_countable"].append(False)
                cols["group"].append(group)
            group += 1
    data = {k: np.array(v) for k, v in cols.items()}
    n = len(cols["counts"]) // 2
    return data, np.arange(n) * 2, np.arange(n) * 2 + 1


def _figures(data: dict[str, np.ndarray], comp: np.ndarray, rank: np.ndarray) -> dict:
    """What training.ranker.compare returns for these picks."""
    return {"composition": crop_figures(data, comp), "ranker": crop_figures(data, rank),
            "gain": paired_gain(data, comp, rank)}


def test_one_photo_is_never_a_gain_beyond_chance():
    """Attack: a split of ONE photo (4 ratios) where the ranker gains a little on each crop. The
    bootstrap over photos then draws that same photo 2,000 times: a zero-width interval
    [0.01, 0.01], lower end above 0, and `beats_composition` says the learned ranker wins
    "beyond chance" on a single photo (also a smoke run, `--set max_images=1`, whose dev split
    is one photo). One resampling unit is no evidence at all: the interval must not exclude 0
    (or the rule must ask for more photos than one)."""
    data, comp, rank = _table([("osie", [0.01, 0.01, 0.01, 0.01])])
    figures = _figures(data, comp, rank)
    assert figures["gain"]["photos"] == 1
    assert not beats_composition(figures)


def test_pairs_from_different_groups_are_refused():
    """Attack: composition and ranker picks that are not aligned group by group (the ranker's in
    the opposite order, as any caller but `compare` could pass them). paired_gain promises a
    gain "crop by crop (the same photo and ratio)" but never checks it: it subtracts photo A's
    composition crop from photo B's ranker crop and files the difference under photo A. It
    must refuse (ValueError) picks whose rows are not of the same (photo, ratio) group."""
    data, comp, rank = _table([("osie", [0.0] * 4), ("eyecrowd", [0.05] * 4), ("osie", [-0.02] * 4)])
    with pytest.raises(ValueError):
        paired_gain(data, comp, rank[::-1].copy())


def test_the_gain_is_the_difference_of_the_means_the_rule_compares():
    """Attack: a table that also holds a report-only set (MIT1003: `training.crop_eval.summarise`
    leaves it out of "all", which is what beats_composition's means compare). paired_gain pools
    every crop, so the interval judges photos the means never counted: in-domain the ranker ties
    (gains +-0.01, mean 0), on MIT1003 it gains 0.03, and the rule reads "a higher of_oracle
    (in domain) and a gain beyond chance (out of domain)". The gain must be the difference of
    the two "all" means, over the same photos."""
    rng = np.random.default_rng(3)
    in_domain = [("osie", list(np.round(0.01 * rng.choice([-1.0, 1.0], 4), 4))) for _ in range(60)]
    out_of_domain = [("mit1003", [0.03] * 4) for _ in range(60)]
    data, comp, rank = _table(in_domain + out_of_domain)
    figures = _figures(data, comp, rank)
    difference = figures["ranker"]["all"]["mean"]["of_oracle"] - figures["composition"]["all"]["mean"]["of_oracle"]
    assert figures["gain"]["crops"] == figures["ranker"]["all"]["mean"]["n"]
    assert figures["gain"]["mean"] == pytest.approx(difference, abs=1e-9)


def test_figures_without_the_interval_do_not_make_the_learned_ranker_the_default():
    """Attack: the shipped ranker's own validation figures, as a run trained before the interval
    existed wrote them (no `gain`; model_export.ranker reads `figures` from the run's
    config.json and writes `beats_composition(figures["val"])` into the card, next to a `rule`
    text saying the interval was required). The same ranker that docs/ranker.md says "records
    no win beyond chance" (+0.0006 [-0.0013, +0.0026]) is then judged on its means alone and
    wins: re-exporting such a run ships `beats_composition: true`, so `ranker="auto"` picks it.
    Figures that carry no evidence of a gain beyond chance must not change the default chooser.
    (tests/training/test_ranker_rule.py::test_figures_written_before_the_interval_are_judged_on_the_means
    asserts the opposite and would have to go with the fix.)"""
    shipped = json.loads(RANKER_CARD.read_text())["validation"]["composition_vs_ranker"]
    assert not beats_composition(shipped)  # with its interval: no
    legacy = {k: v for k, v in shipped.items() if k != "gain"}
    assert not beats_composition(legacy)


# --- training.cards.dump_card ----------------------------------------------------------------------


def test_the_card_the_export_builds_keeps_the_layout_and_the_size_cap():
    """Attack: the saliency card exactly as model_export.saliency.export builds it, whose
    `normalisation` holds IMAGENET_MEAN / IMAGENET_STD, Python tuples. dump_card's check
    `json.loads(compact) == card` compares lists read back with those tuples, never equal, so
    every export falls back to the plain indented layout for the WHOLE card: 10,282 bytes for
    the shipped card, over the 10 KB cap of tests/training/test_model_cards.py, and not the
    layout tests/training/test_cards.py requires of shipped cards (the shipped file only has it
    because the fairness audit rewrote it from JSON afterwards)."""
    text = SALIENCY_CARD.read_text()
    card = json.loads(text)
    card["normalisation"] = {**card["normalisation"], "mean": IMAGENET_MEAN, "std": IMAGENET_STD}
    written = dump_card(card)
    assert len(written.encode()) < 10_000
    assert written == text


def test_a_nan_figure_is_never_written_into_a_card():
    """Attack: one NaN figure (json.dumps allows NaN by default), e.g. a recall over a group with
    no faces in the fairness section, which `--card` writes through dump_card without
    `rounded`. dump_card writes the bare token NaN, which is not JSON (strict readers refuse
    the card), and since NaN != NaN its read-back check fails, so the whole card silently drops
    to the plain layout (10,282 bytes, over the 10 KB cap). A card must be JSON: refuse NaN
    (ValueError), or write it as null as `rounded` does, keeping the layout."""
    card = json.loads(SALIENCY_CARD.read_text())
    card["fairness"]["yunet_recall_single_photos_adults"]["asian"] = math.nan
    try:
        written = dump_card(card)
    except ValueError:
        return

    def strict(token: str):
        raise AssertionError(f"{token} is not JSON")

    json.loads(written, parse_constant=strict)
    assert len(written.encode()) < 10_000


# --- model_export.saliency -------------------------------------------------------------------------


def test_the_rebuild_commands_quote_every_path():
    """Attack: a run folder and a prior file with spaces ("runs/teacher a", "docs/priors/my
    prior.json"). b88bba5 quoted `--member` (and ship_members `--models-dir`), but `--out`,
    `--run` and `--prior` are still pasted in bare: a shell splits them and the card's
    commands rebuild from "runs/teacher". Parsed as a shell would, each flag's argument must be
    the whole path."""
    run = Path("runs/teacher a")
    prior = "docs/priors/my prior.json"
    for cfg in ({}, {"frozen_encoder": True, "net": {"tune_top": True}}):
        cmds = [c for c in commands(run, cfg, {"source": prior}) if not c.startswith("#")]
        for c in cmds:
            argv = shlex.split(c)
            for flag, value in (("--out", str(run)), ("--run", str(run)), ("--prior", prior)):
                if flag in argv and value.split()[0] in argv[argv.index(flag) + 1]:
                    assert argv[argv.index(flag) + 1] == value, c


def _models_dir(folder: Path) -> Path:
    """A copy of the shipped models folder: an installed, working two-network ensemble."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("saliency.tflite", "saliency.json", "saliency_member1.tflite", "saliency_member1.json"):
        (folder / name).write_bytes((MODELS / name).read_bytes())
    return folder


@pytest.mark.parametrize("which", ["ranker-network", "not-a-network"])
def test_a_member_the_engine_cannot_load_is_refused_before_the_install_changes(tmp_path, which):
    """Attack: `--member layers/autocrop/models/ranker.tflite:0.3` (a real .tflite with a card
    beside it that names no ensemble, but not a saliency network), or bytes that are no network
    at all. read_members checks weights and card only, so "a member the engine would refuse"
    passes the check export makes "before any work"; ship_members then deletes the installed
    member and writes this one; the engine refuses it (ValueError at LiteRTSaliency) only
    after the install is changed: the installed card's member no longer matches its sha256 and
    the layer silently crops with the centre-bias fallback. The member must be refused first."""
    models = _models_dir(tmp_path / "models")
    run = tmp_path / "run"
    run.mkdir()
    member = run / "saliency.tflite"
    if which == "ranker-network":
        member.write_bytes((MODELS / "ranker.tflite").read_bytes())
        member.with_suffix(".json").write_text(RANKER_CARD.read_text())
    else:
        member.write_bytes(b"TFL3 but not a network")
        member.with_suffix(".json").write_text(json.dumps({"name": "junk"}))
    with pytest.raises((ValueError, RuntimeError, UnsupportedCardError)):
        ship_members(((member, 0.3),), models)
    assert (models / "saliency_member1.tflite").read_bytes() == (MODELS / "saliency_member1.tflite").read_bytes()
    installed = LiteRTSaliency(models / "saliency.tflite", num_threads=1)
    assert len(installed.members) == 1 and not isinstance(installed, CentreBiasSaliency)


def test_ship_members_removes_only_names_an_export_writes(tmp_path):
    """Attack: files an export never writes but MEMBER_FILE (`saliency_member\\d+`) matches:
    `\\d` is any Unicode decimal digit (Arabic-Indic three) and allows leading zeros and 0,
    while ship_members only ever writes saliency_member1, 2, ... The docstring: "the member
    files an earlier export wrote (`MEMBER_FILE`) go"; these are someone else's and must stay."""
    models = tmp_path / "models"
    models.mkdir()
    foreign = ["saliency_member\u0663.tflite", "saliency_member01.json", "saliency_member0.tflite"]
    for name in foreign:
        (models / name).write_bytes(b"not an export's")
    (models / "saliency_member2.json").write_text("{}")  # an earlier export's: goes
    assert ship_members((), models) is None
    assert sorted(p.name for p in models.iterdir()) == sorted(foreign)


def test_rounded_leaves_only_plain_json_types_for_numpy_bools_and_0d_arrays():
    """Attack: figures that are numpy booleans (a comparison such as `cc >= bar` on numpy
    floats) or 0-d arrays (np.mean(..., keepdims) / np.asarray of a scalar). `rounded` is what
    makes a card's figures plain JSON, but both pass through untouched and json.dumps raises
    TypeError when the card is written, after the model was already replaced."""
    figures = {"passed": np.float32(0.8) >= 0.5, "cc": np.asarray(0.81234567), "n": np.asarray(70)}
    out = rounded(figures)
    assert json.loads(json.dumps(out)) == {"passed": True, "cc": 0.8123, "n": 70}
