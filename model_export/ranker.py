"""Export the trained crop ranker to TFLite, check parity, ship it with a model card.

    python -m model_export.ranker --run runs/ranker [--data ../shared/data] [--no-ship]

One float32 TFLite file with two signatures: `reduce` (feature cells (K, C) -> (K, P), once
per photo before pooling) and `score` (descriptors (N, REGIONS x P + G) -> corrections); the
head is tens of kB, so quantizing it would save nothing worth a parity risk. Parity: on every
validation photo and ratio, the float Keras scorer's pick from the engine's shortlist against
the shipped runtime's (`autocrop.ranker.LearnedRanker`); top-1 agreement >= PARITY_BAR.
Speed is measured by benchmarks/bench_engine.py, beside the composition score.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from autocrop.ranker import GRID, REDUCE_SIGNATURE, REGIONS, SCORE_SIGNATURE, STAT_NAMES, LearnedRanker
from autocrop.ranker import pool_regions, window_stats
from autocrop.ranking import DEFAULT_RANKER_MODEL, take
from autocrop.scoring import composition_score

from .quantize import git_commit, write

log = logging.getLogger("model_export.ranker")
PARITY_BAR = 0.95


def convert_two_signatures(reducer, head, channels: int, width: int) -> bytes:
    """Both Keras models in one TFLite flatbuffer, via a SavedModel with two endpoints."""
    import keras
    import tensorflow as tf

    archive = keras.export.ExportArchive()
    archive.track(reducer)
    archive.track(head)
    archive.add_endpoint(
        name=REDUCE_SIGNATURE, fn=lambda features: {"reduced": reducer(features)},
        input_signature=[tf.TensorSpec([None, channels], tf.float32, name="features")],
    )  # fmt: skip
    archive.add_endpoint(
        name=SCORE_SIGNATURE, fn=lambda descriptor: {"score": head(descriptor)},
        input_signature=[tf.TensorSpec([None, width], tf.float32, name="descriptor")],
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        archive.write_out(tmp, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp, signature_keys=[REDUCE_SIGNATURE, SCORE_SIGNATURE])
        return converter.convert()


def parity(scorer, runtime: LearnedRanker, records, stages, ratios, shortlist: int) -> dict[str, Any]:
    """Top-1 agreement and largest score gap, float Keras vs TFLite, on every (photo, ratio)."""
    from training.ranker import shortlist_of

    options = stages.options
    agree, gaps = 0, []
    for record in records:
        photo = stages.photo(record.image_path.read_bytes())
        for ratio in ratios:
            windows, measured, short = shortlist_of(photo, ratio, options, shortlist)
            w, m = take(windows, short), take(measured, short)
            x = [pool_regions(photo, np.stack([w.x, w.y, w.w, w.h], axis=1)), window_stats(photo, w, m, options)]
            ref = composition_score(m, options).astype(np.float32) + np.asarray(scorer(x, training=False)).reshape(-1)
            got = runtime.score(photo, w, m, options)
            agree += int(np.argmax(ref) == np.argmax(got))
            gaps.append(float(np.abs(ref - got).max()))
    return {"photos": len(records), "groups": len(gaps), "top1_agreement": round(agree / len(gaps), 4),
            "max_abs_score_gap": round(max(gaps), 6)}  # fmt: skip


def model_card(target: Path, flatbuffer: bytes, run_dir: Path, meta: dict[str, Any], cfg, report: dict[str, Any]) -> dict[str, Any]:
    """The shipped model's card: what it computes, from what data, how well, how to remake it."""
    from training.ranker import beats_composition  # the one "better than composition" rule

    digest, figures, crossfit, p = hashlib.sha256(flatbuffer).hexdigest(), meta["figures"], meta.get("crossfit"), cfg.reduced_channels
    return {
        "name": f"autocrop-ranker-{digest[:8]}", "file": target.name, "sha256": digest, "size_bytes": len(flatbuffer),
        "task": "a correction, in composition-score units, per candidate window of one photo and ratio: its score "
                "is its composition score (with the caller's options) plus this; higher is preferred by people",
        "backbone": {"model": meta["saliency_model"], "output": "features: the saliency pass's (1, 16, 16, 96) "
                     "stride-16 MobileNetV2 encoder map over the letterboxed canvas; no second backbone pass"},
        "signatures": {
            REDUCE_SIGNATURE: {"input": {"features": [-1, int(meta["channels"])]}, "output": {"reduced": [-1, p]},
                               "meaning": "per feature cell: channel scaling + linear 1x1 reduction, before pooling"},
            SCORE_SIGNATURE: {"input": {"descriptor": [-1, REGIONS * p + len(STAT_NAMES)]}, "output": {"score": [-1, 1]}},
        },
        "descriptor": {
            "preprocessing_function": "autocrop.ranker.describe_windows",
            "layout": f"{REGIONS} regions ({GRID}x{GRID} window bins row-major, the discarded border (0 when nothing "
                      f"is), the whole photo) x {p} reduced channels, then {len(STAT_NAMES)} statistics",
            "pooling": "exact means over each region from an integral image (RoIAlign layout, GAIC's RoI + RoD); "
                       "full-resolution px -> letterboxed canvas px -> feature cells (/16)",
        },
        "stats": list(STAT_NAMES),
        "scope": cfg.scope,
        "use": f"re-ranks the face-safe part of the composition score's best {cfg.shortlist} feasible windows "
               "(autocrop.ranking.rank_candidates); the composition score is the fallback",
        "training": {
            "data": "OSIE + EyeCrowd train split (every 10th photo by name is validation, never used); dev = every "
                    "10th train photo (offset 5), picks the epoch",
            "photos": meta["photos"],
            "crossfit": f"{len(crossfit)} cross-fitted saliency models for training and dev photos (none saw the "
                        "photo it sees); validation through the shipped model" if crossfit else "none",
            "pairs": meta["pairs"],
            "preferences": f"attention (same size, fixation gap >= max({cfg.attention_min_gap}, {cfg.attention_margin} x "
                           "the photo's)), faces (every labelled EyeCrowd face whole over one sliced), composition (VFN: "
                           f"the frame over a sub-window of scale {cfg.composition_scale[0]}-{cfg.composition_scale[1]})",
            "loss": "logistic", "config": meta["config"], "epoch": meta["epoch"],
        },
        "validation": {
            "split": "OSIE + EyeCrowd validation photos, 4 ratios; the engine's shortlist",
            "beats_composition": beats_composition(figures["val"]),
            "rule": "training.ranker.beats_composition: of_oracle higher, face_cut_rate and area no worse than the "
                    "composition score's, and the of_oracle gain's 95% bootstrap interval over >= 20 photos above 0 "
                    "(`composition_vs_ranker.gain`); CropOptions(ranker='auto') uses the learned ranker only when "
                    "this holds",
            "composition_vs_ranker": figures["val"], "dev": figures["dev"],
        },
        "parity": {"rule": f"top-1 agreement >= {PARITY_BAR}", **report},
        "commands": [
            f"python -m training.ranker --out {run_dir}" + (" --crossfit " + " ".join(crossfit) if crossfit else ""),
            f"python -m model_export.ranker --run {run_dir}",
            "python -m training.crop_eval --methods engine --set ranker=learned",
        ],
        "commit": git_commit(),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "licence": "weights: MIT (this project); data: OSIE and EyeCrowd, MIT",
    }  # fmt: skip


def export(run_dir: Path, data_root: Path, models_dir: Path, ship: bool = True) -> dict[str, Any]:
    """Convert a run and check parity on its validation photos; with `ship`, install the model and card."""
    from training.datasets import load_saliency_sets
    from training.ranker import RATIOS, Stages, load_trained

    cfg, scorer, reducer, head = load_trained(run_dir)
    meta = json.loads((run_dir / "config.json").read_text())
    flatbuffer = convert_two_signatures(reducer, head, int(meta["channels"]), REGIONS * cfg.reduced_channels + len(STAT_NAMES))
    candidate = write(run_dir / "ranker.tflite", flatbuffer)
    stages = Stages()
    if stages.saliency.name != meta["saliency_model"]:
        raise RuntimeError(f"the ranker was trained on {meta['saliency_model']} features, the shipped saliency "
                           f"model is {stages.saliency.name}: retrain it")  # fmt: skip
    val = [r for s in load_saliency_sets(data_root).values() for r in s[1][: cfg.max_images]]
    (run_dir / "ranker.json").write_text(json.dumps({"name": "candidate", "stats": list(STAT_NAMES)}))
    report = parity(scorer, LearnedRanker(candidate), val, stages, RATIOS, cfg.shortlist)
    log.info("parity: %s", report)
    if report["top1_agreement"] < PARITY_BAR:
        raise RuntimeError(f"top-1 agreement {report['top1_agreement']} < {PARITY_BAR}")
    if not ship:
        return report
    target = write(models_dir / DEFAULT_RANKER_MODEL.name, flatbuffer)
    card = model_card(target, flatbuffer, run_dir, meta, cfg, report)
    target.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
    LearnedRanker(target)  # the shipped pair loads
    return report | {"card": card}


def main(argv: list[str] | None = None) -> None:
    """The command line (see the module docstring)."""
    from training.datasets import DEFAULT_DATA_ROOT

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, default=Path("runs/ranker"))
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA_ROOT)
    parser.add_argument("--models-dir", type=Path, default=DEFAULT_RANKER_MODEL.parent)
    parser.add_argument("--no-ship", action="store_true", help="check only; do not replace the shipped model")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    report = export(args.run, args.data, args.models_dir, ship=not args.no_ship)
    print(json.dumps({k: v for k, v in report.items() if k != "card"}, indent=2), flush=True)


if __name__ == "__main__":
    main()
