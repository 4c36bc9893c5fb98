"""The ranker end to end on a handful of real photos: train a few steps, export, load, parity."""

from __future__ import annotations

import json

import numpy as np
import pytest

from autocrop.ranker import REGIONS, STAT_NAMES, LearnedRanker
from tests.shared_data import DATA, needs_data

pytestmark = needs_data


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A 2-epoch run on 3 photos per set and split (5 fit, 1 dev, 6 validation), exported."""
    pytest.importorskip("tensorflow")
    from model_export.ranker import export
    from training.ranker import main

    out = tmp_path_factory.mktemp("ranker")
    assert main(["--out", str(out / "run"), "--data", str(DATA), "--set", "max_images=3", "--set", "epochs=2"]) == 0
    report = export(out / "run", DATA, out / "models")
    return out, json.loads((out / "run" / "config.json").read_text()), report


def test_training_lowers_the_pairwise_loss(run):
    _, meta, _ = run
    assert meta["photos"] == {"fit": 5, "dev": 1, "val": 6}
    assert all(meta["pairs"][k] > 0 for k in ("attention", "faces", "composition"))
    losses = [h["loss"] for h in meta["history"]]
    assert len(losses) == 2 and losses[1] < losses[0], losses


def test_the_exported_model_loads_and_matches_the_keras_head(run):
    from training.ranker import load_trained

    out, meta, report = run
    assert report["top1_agreement"] >= 0.95 and report["max_abs_score_gap"] < 1e-4  # on the 6 validation photos
    runtime = LearnedRanker(out / "models" / "ranker.tflite")
    card = report["card"]
    assert runtime.name == f"ranker:{card['name']}" and tuple(card["stats"]) == STAT_NAMES
    assert card["training"]["config"] == meta["config"] and isinstance(card["validation"]["beats_composition"], bool)
    assert (runtime.channels, runtime.reduced) == (meta["channels"], meta["config"]["reduced_channels"])
    _, scorer, reducer, _ = load_trained(out / "run")
    val = np.load(out / "run" / "table_val.npz")  # real validation windows: pooled regions, statistics
    regions, stats, c = val["regions"][:256].astype(np.float32), val["stats"][:256], runtime.channels
    assert regions.shape[1:] == (REGIONS, c)
    np.testing.assert_allclose(runtime.reduce(regions[0]), np.asarray(reducer(regions[0])), rtol=1e-5, atol=1e-5)
    desc = np.concatenate([runtime.reduce(regions.reshape(-1, c)).reshape(len(regions), -1), stats], axis=1)
    keras_scores = np.asarray(scorer([regions, stats], training=False)).reshape(-1)
    assert np.ptp(keras_scores) > 0, "a trained head gives different windows different corrections"
    np.testing.assert_allclose(runtime.score_descriptors(desc), keras_scores, rtol=1e-5, atol=1e-5)
