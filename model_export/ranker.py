"""Export the trained crop ranker to TFLite, check parity and speed, ship it with a model card.

    python -m model_export.ranker --run runs/ranker [--data ../shared/data]

One float32 TFLite file with two signatures: `reduce` (feature cells (K, C) -> (K, P), run
once per photo before pooling) and `score` (descriptors (N, REGIONS x P + G) -> scores).
The head is tiny (tens of kB), so quantizing it would save nothing worth a parity risk.

Parity: on every validation photo and ratio, the window the float Keras scorer picks from
the engine's shortlist (pooling the 96 raw channels, as in training) against the window the
shipped runtime picks (`autocrop.ranker.LearnedRanker`: reduce, pool, TFLite head); top-1
agreement must be >= 0.95. Latency: the runtime scoring 200 candidates on one thread.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import hashlib
import json
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from autocrop.options import parse_ratio
from autocrop.ranker import (
    DEFAULT_RANKER_MODEL,
    GRID,
    REDUCE_SIGNATURE,
    REGIONS,
    SCORE_SIGNATURE,
    STAT_NAMES,
    LearnedRanker,
    describe_windows,
    face_safe,
    pool_regions,
    take,
    window_stats,
)

from .quantize import git_commit, latency_ms, write

log = logging.getLogger("model_export.ranker")
PARITY_BAR = 0.95
#: Candidates a ratio's shortlist holds; the speed bar is for this many.
LATENCY_CANDIDATES = 200


def convert_two_signatures(reducer, head, channels: int, width: int) -> bytes:
    """Both Keras models in one TFLite flatbuffer, via a SavedModel with two endpoints."""
    import keras
    import tensorflow as tf

    archive = keras.export.ExportArchive()
    archive.track(reducer)
    archive.track(head)
    archive.add_endpoint(
        name=REDUCE_SIGNATURE,
        fn=lambda features: {"reduced": reducer(features)},
        input_signature=[tf.TensorSpec([None, channels], tf.float32, name="features")],
    )
    archive.add_endpoint(
        name=SCORE_SIGNATURE,
        fn=lambda descriptor: {"score": head(descriptor)},
        input_signature=[tf.TensorSpec([None, width], tf.float32, name="descriptor")],
    )
    with tempfile.TemporaryDirectory() as tmp:
        archive.write_out(tmp, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp, signature_keys=[REDUCE_SIGNATURE, SCORE_SIGNATURE])
        return converter.convert()


def parity_and_latency(scorer, runtime: LearnedRanker, records, stages, ratios) -> dict[str, Any]:
    """Top-1 agreement float vs TFLite on every (photo, ratio); score gap; latency for 200."""
    from training.ranker import composition_order, composition_score

    options = stages.options
    agree, total, gaps = 0, 0, []
    timing_case = None
    for record in records:
        photo = stages.photo(record.image_path.read_bytes())
        for ratio in ratios:
            from autocrop.candidates import measure_windows, propose_windows

            windows = propose_windows(photo.width, photo.height, parse_ratio(ratio), options)
            measured = measure_windows(windows, photo.index, photo.faces, photo.width, photo.height, options)
            short = face_safe(composition_order(measured, options)[:LATENCY_CANDIDATES], measured)
            w, m = take(windows, short), take(measured, short)
            boxes = np.stack([w.x, w.y, w.w, w.h], axis=1)
            x = [pool_regions(photo, boxes), window_stats(photo, w, m, options)]
            composition = composition_score(m, options)
            ref = composition + np.asarray(scorer(x, training=False)).reshape(-1)
            got = runtime.score(photo, w, m, options)
            agree += int(np.argmax(ref) == np.argmax(got))
            total += 1
            gaps.append(float(np.abs(ref - got).max()))
            if timing_case is None and len(short) == LATENCY_CANDIDATES:
                timing_case = (photo, w, m)
    assert timing_case is not None, "no shortlist of 200 candidates to time"
    photo, w, m = timing_case

    def score_200():
        # A fresh context each time, so the per-photo reduction is counted too.
        fresh = dataclasses.replace(photo, _integrals={})
        return runtime.score(fresh, w, m, options)

    integral = photo.feature_integral(runtime.reduce, key="timing")
    return {
        "photos": len(records),
        "groups": total,
        "top1_agreement": round(agree / total, 4),
        "max_abs_score_gap": round(max(gaps), 6),
        "latency_ms_200_candidates": {
            "total_per_ratio": latency_ms(score_200, repeats=100),
            "describe_only": latency_ms(lambda: describe_windows(photo, w, m, options, integral), repeats=100),
            "tflite_head_only": latency_ms(
                lambda: runtime.score_descriptors(describe_windows(photo, w, m, options, integral)), repeats=100
            ),
        },
    }


def export(run_dir: Path, data_root: Path, models_dir: Path, ship: bool = True) -> dict[str, Any]:
    from training.datasets import load_saliency_sets
    from training.ranker import RATIOS, Stages, beats_composition, load_trained

    cfg, scorer, reducer, head = load_trained(run_dir)
    meta = json.loads((run_dir / "config.json").read_text())
    channels = int(meta["channels"])
    width = REGIONS * cfg.reduced_channels + len(STAT_NAMES)
    flatbuffer = convert_two_signatures(reducer, head, channels, width)
    candidate = write(run_dir / "ranker.tflite", flatbuffer)
    stages = Stages()
    if stages.saliency.name != meta["saliency_model"]:
        raise RuntimeError(
            f"the ranker was trained on {meta['saliency_model']} features, the shipped saliency model is "
            f"{stages.saliency.name}: retrain it"
        )
    sets = load_saliency_sets(data_root)
    val = [r for s in sets.values() for r in s[1]]
    (run_dir / "ranker.json").write_text(json.dumps({"name": "candidate", "stats": list(STAT_NAMES)}))
    runtime = LearnedRanker(candidate)
    report = parity_and_latency(scorer, runtime, val, stages, RATIOS)
    log.info("parity/latency: %s", report)
    if report["top1_agreement"] < PARITY_BAR:
        raise RuntimeError(f"top-1 agreement {report['top1_agreement']} < {PARITY_BAR}")
    if not ship:
        return report
    target = models_dir / DEFAULT_RANKER_MODEL.name
    write(target, flatbuffer)
    digest = hashlib.sha256(flatbuffer).hexdigest()
    figures = meta["figures"]
    beats = beats_composition(figures["val"])  # training.ranker's rule, the one place it lives
    card = {
        "name": f"autocrop-ranker-{digest[:8]}",
        "file": target.name,
        "sha256": digest,
        "size_bytes": len(flatbuffer),
        "task": "crop ranking: a score per candidate window of one photo and ratio; higher is "
                "preferred by people (compare within a photo only)",
        "backbone": {
            "model": meta["saliency_model"],
            "output": "features: (1, 16, 16, 96) stride-16 MobileNetV2 encoder map of the saliency "
                      "pass over the letterboxed canvas; no second backbone pass",
        },
        "signatures": {
            REDUCE_SIGNATURE: {"input": {"features": [-1, channels]},
                               "output": {"reduced": [-1, cfg.reduced_channels]},
                               "meaning": "per feature cell: channel scaling + learned linear "
                                          "1x1 reduction; linear, so it runs before pooling"},
            SCORE_SIGNATURE: {"input": {"descriptor": [-1, width]}, "output": {"score": [-1, 1]}},
        },
        "descriptor": {
            "preprocessing_function": "autocrop.ranker.describe_windows",
            "layout": f"{REGIONS} regions x {cfg.reduced_channels} reduced channels (region-major), "
                      f"then {len(STAT_NAMES)} statistics",
            "regions": [f"window bin ({i}, {j}) of a {GRID}x{GRID} grid (row, col)"
                        for i in range(GRID) for j in range(GRID)]
            + ["discarded border: mean over the photo outside the window (0 when nothing is discarded)",
               "whole photo: mean over the photo"],
            "pooling": "exact mean of the map over each region (integral image; RoIAlign/PrRoIPool "
                       "layout, GAIC's RoI + RoD)",
            "stats": list(STAT_NAMES),
            "box_mapping": "upright full-resolution px -> letterboxed canvas px -> feature cells (/16)",
        },
        "stats": list(STAT_NAMES),
        "scope": cfg.scope,
        "output": "a correction in composition-score units: a window's score is its composition "
                  "score (with the caller's options) plus this",
        "use": f"re-ranks the composition score's best {cfg.shortlist} windows that obey the hard "
               "rules (faces, keep regions, focal point); the composition score is the fallback",
        "training": {
            "data": "OSIE + EyeCrowd train split (every 10th photo by name is validation, never used); "
                    "dev = every 10th train photo (offset 5), picks the epoch",
            "photos": meta["photos"],
            "crossfit": (
                "training and dev photos were seen through cross-fitted saliency models "
                f"({len(meta['crossfit'])} folds, `training.saliency --folds {len(meta['crossfit'])} --fold k`: "
                "the model for a photo never saw it), so their maps and features carry the errors "
                "the shipped model makes on new photos; validation photos through the shipped model"
                if meta.get("crossfit") else "none: training photos through the shipped model"
            ),
            "pairs": meta["pairs"],
            "preferences": {
                "attention": "same ratio and size: the window with more human fixations wins "
                             f"(gap >= max({cfg.attention_min_gap}, {cfg.attention_margin} x the photo's fixations))",
                "faces": "a window keeping every labelled EyeCrowd face (frontal/profile, >= 3% of "
                         "the width) whole beats one slicing one",
                "composition": "VFN: the full frame beats a random shifted/zoomed sub-window "
                               f"(scale {cfg.composition_scale[0]}-{cfg.composition_scale[1]}), "
                               f"weight {cfg.composition_weight}",
                "crops": "FCDB votes / GAICD scores, when their photos are given (not in this model)"
                if not meta["pairs"].get("crops") else "FCDB votes / GAICD scores",
            },
            "loss": cfg.loss,
            "config": meta["config"],
            "epoch": meta["epoch"],
        },
        "validation": {
            "split": "OSIE + EyeCrowd validation photos, 4 ratios; the engine's shortlist",
            "beats_composition": beats,
            "rule": "of_oracle higher and face_cut_rate no higher than the composition score's; "
                    "CropOptions(ranker='auto') uses the learned ranker only when this holds",
            "composition_vs_ranker": figures["val"],
            "dev": figures["dev"],
        },
        "parity": {"rule": f"top-1 agreement >= {PARITY_BAR}", **{k: v for k, v in report.items()
                                                                  if k != "latency_ms_200_candidates"}},
        "latency_ms_1thread": report["latency_ms_200_candidates"],
        "commands": [
            f"python -m training.ranker --out {run_dir}"
            + (" --crossfit " + " ".join(meta["crossfit"]) if meta.get("crossfit") else ""),
            f"python -m model_export.ranker --run {run_dir}",
            "python -m training.crop_eval --methods engine --set ranker=composition",
            "python -m training.crop_eval --methods engine",
        ],
        "commit": git_commit(),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "licence": "weights: MIT (this project); data: OSIE and EyeCrowd, MIT",
    }
    target.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
    LearnedRanker(target)  # the shipped pair loads
    report["card"] = card
    return report


def main(argv: list[str] | None = None) -> None:
    from training.datasets import DEFAULT_DATA_ROOT

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, default=Path("runs/ranker"))
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA_ROOT)
    parser.add_argument("--models-dir", type=Path, default=DEFAULT_RANKER_MODEL.parent)
    parser.add_argument("--no-ship", action="store_true", help="measure only; do not replace the shipped model")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    report = export(args.run, args.data, args.models_dir, ship=not args.no_ship)
    print(json.dumps({k: v for k, v in report.items() if k != "card"}, indent=2))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
