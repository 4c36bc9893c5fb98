"""Score a saliency model and the centre-bias baseline on the fixed validation split.

    python -m training.evaluate --model layers/autocrop/models/saliency.tflite \
        [--data ../shared/data] [--json out.json] [--baseline-only] [--emod DIR]

Prints CC, NSS and AUC-Judd for OSIE val, EyeCrowd val and both combined (mean over all
images pooled), and for the out-of-domain MIT1003 sample (reported apart, never part of
"combined", never tuned on), for the model (run through `autocrop.saliency.LiteRTSaliency`, the same
path the engine uses) and for the centre-bias baseline, plus the model's CC gain over the
baseline. With `--emod ../shared/data/saliency/emod_fdm` a row for EMOd's held-out photos
(every 10th by name, never trained on) is added: CC only, because EMOd publishes density maps
and no fixation points, which NSS and AUC-Judd need. Progress goes to stderr, the table to
stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from autocrop.saliency import DEFAULT_SALIENCY_MODEL, LiteRTSaliency

from .datasets import DEFAULT_DATA_ROOT, REPORT_ONLY_SETS, FixationRecord, load_saliency_sets
from .metrics import METRIC_NAMES, centre_bias, evaluate_maps

#: Table rows: result key -> label.
ROW_LABELS = {"osie": "OSIE val", "eyecrowd": "EyeCrowd val", "combined": "combined",
              "mit1003": "MIT1003 sample (out-of-domain)", "emod": "EMOd held-out (maps: CC only)"}
#: Column headers for the metrics, in METRIC_NAMES order.
METRIC_LABELS = {"cc": "CC", "nss": "NSS", "auc_judd": "AUC-Judd"}


def validation_records(
    data_root: Path, sets: Sequence[str] = ("osie", "eyecrowd")
) -> list[FixationRecord]:
    """The fixed validation images of each set, in set order."""
    loaded = load_saliency_sets(data_root, sets)
    return [record for name in sets for record in loaded[name][1]]


def evaluate_predictor(data_root: Path, predict: Any, progress: bool = False,
                       desc: str = "evaluate") -> dict[str, Any]:
    """Scores of `predict(record) -> map` per in-domain val set, combined, and MIT1003 apart."""
    records = validation_records(data_root)
    outside = validation_records(data_root, REPORT_ONLY_SETS)
    # In-domain sets pool into "combined"; the out-of-domain set is its own row.
    result = evaluate_maps(predict, records, progress=progress, desc=desc)
    for name, row in evaluate_maps(predict, outside, progress=progress, desc=desc).items():
        if name != "combined":
            result[name] = row
    return result


def evaluate_maps_only(predict_rgb: Any, emod_root: Path) -> dict[str, Any]:
    """CC of `predict_rgb(rgb) -> map` against EMOd's held-out density maps (the map's size)."""
    import cv2

    from .metrics import cc
    from .saliency import emod_maps, read_density

    scores = []
    for image, map_path in emod_maps(Path(emod_root))[1]:
        bgr = cv2.imread(str(image), cv2.IMREAD_COLOR)
        if bgr is None:
            raise FileNotFoundError(f"cannot read image {image}")
        density = read_density(map_path)
        pred = np.asarray(predict_rgb(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)), np.float32)
        if pred.shape != density.shape:
            pred = cv2.resize(pred, density.shape[::-1], interpolation=cv2.INTER_AREA)
        scores.append(cc(pred, density))
    return {"n": len(scores), "cc": float(np.mean(scores))}


def evaluate_centre(data_root: Path, progress: bool = False) -> dict[str, Any]:
    """`evaluate_predictor` for the centre-bias baseline."""
    return evaluate_predictor(data_root, lambda r: centre_bias(r.height, r.width), progress, "centre bias")


def evaluate(
    data_root: Path, model_path: Path | None, num_threads: int = 1, progress: bool = True,
    ensemble: Sequence[tuple[str, float]] = (), flip: bool = False, emod: Path | None = None,
) -> dict[str, Any]:
    """Baseline (and model, unless `model_path` is None) scores and the CC gain per set.

    With `ensemble` ((model, weight), ...) or `flip` the scored map is
    `training.saliency.EnsembleTeacher`'s (the distillation teachers' maps, measured alone)."""
    results: dict[str, Any] = {"data": str(data_root), "baseline": evaluate_centre(data_root, progress)}
    if emod is not None:
        results["baseline"]["emod"] = evaluate_maps_only(lambda rgb: centre_bias(*rgb.shape[:2]), emod)
    if model_path is not None:
        model = LiteRTSaliency(model_path, num_threads=num_threads)
        results["model_path"] = str(model_path)
        results["model_name"] = model.name
        predict_rgb = model.predict
        if ensemble or flip:
            from .saliency import EnsembleTeacher

            members = tuple(ensemble) or ((str(model_path), 1.0),)
            teacher = EnsembleTeacher(members, flip=flip)
            results["model_name"] = ("flipped " if flip else "") + " + ".join(
                f"{w:g} x {Path(m).name}" for m, w in members)
            predict_rgb = teacher
        results["model"] = evaluate_predictor(data_root, lambda r: predict_rgb(r.load_rgb()), progress,
                                              results["model_name"])
        if emod is not None:
            results["model"]["emod"] = evaluate_maps_only(predict_rgb, emod)
        results["cc_gain"] = {
            key: results["model"][key]["cc"] - results["baseline"][key]["cc"]
            for key in results["baseline"]
        }
    return results


def format_table(results: dict[str, Any]) -> str:
    """A plain-text table of the results, one row per set."""
    metric_cols = [METRIC_LABELS[m] for m in METRIC_NAMES]
    header = ["set", "n"]
    if "model" in results:
        header += [f"model {c}" for c in metric_cols]
    header += [f"centre {c}" for c in metric_cols]
    if "model" in results:
        header.append("CC gain")
    rows = [header]
    for key, label in ROW_LABELS.items():
        if key not in results["baseline"]:
            continue
        base = results["baseline"][key]
        row = [label, str(base["n"])]
        if "model" in results:
            row += [f"{results['model'][key][m]:.3f}" if m in results["model"][key] else "-"
                    for m in METRIC_NAMES]
        row += [f"{base[m]:.3f}" if m in base else "-" for m in METRIC_NAMES]
        if "model" in results:
            row.append(f"{results['cc_gain'][key]:+.3f}")
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in rows
    ]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        prog="python -m training.evaluate", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--model", type=Path, default=DEFAULT_SALIENCY_MODEL, help="saliency .tflite"
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA_ROOT, help="shared data root")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--baseline-only", action="store_true", help="score the centre bias only")
    parser.add_argument("--threads", type=int, default=1, help="LiteRT interpreter threads")
    parser.add_argument("--ensemble", action="append", default=[], metavar="MODEL.tflite[:WEIGHT]",
                        help="score the weighted mean of these models' maps instead (repeat)")
    parser.add_argument("--flip", action="store_true",
                        help="average each map with the mirrored photo's (test-time flipping)")
    parser.add_argument("--emod", type=Path, default=None, metavar="DIR",
                        help="also score EMOd's held-out maps (../shared/data/saliency/emod_fdm), CC only")
    args = parser.parse_args(argv)
    from .saliency import check_emod_arg

    check_emod_arg(parser, args.emod)
    if not args.baseline_only and not args.model.is_file():
        parser.error(f"model file not found: {args.model} (use --baseline-only to skip the model)")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the evaluation, print the table, optionally write JSON."""
    args = parse_args(argv)
    from .saliency import teacher_arg

    results = evaluate(args.data, None if args.baseline_only else args.model, args.threads,
                       ensemble=[teacher_arg(t) for t in args.ensemble], flip=args.flip, emod=args.emod)
    print(format_table(results))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
