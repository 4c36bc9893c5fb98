"""How far could better saliency take the engine? The inter-observer ceiling.

    python -m training.ceiling [--data ../shared/data] [--split val]

No model predicts where a new person looks better than other people's fixations do. For
each validation photo the observers are split in two halves; the fixation density of one
half (EVALUATION.md's blur) stands in for the saliency model, and crops are scored on the
other half's fixations (then the halves swap). The same crops are chosen with the shipped
saliency model and scored on the same halves, so both rows are measured alike (on half the
observers, of_oracle reads lower than with all of them: the oracle box of a few observers
holds a noisier peak). Two ways to choose: the engine as it runs (faces, rules, score) and
saliency alone (the largest box of each ratio holding the most saliency, no face rule).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from autocrop import Box, CropOptions
from autocrop.candidates import largest_window
from autocrop.engine import analyse_image, decode_for
from autocrop.options import parse_ratio
from autocrop.saliency import load_saliency

from .crop_eval import (
    RATIOS,
    MapSaliency,
    box_count,
    countable_faces,
    cuts_a_face,
    fixation_integral,
    oracle_count,
    window_sums,
)
from .datasets import DEFAULT_DATA_ROOT, inside_image, load_eyecrowd_faces, load_saliency_sets, observer_fixations
from .fixations import density_map


def saliency_only_boxes(saliency: np.ndarray, width: int, height: int) -> list[Box]:
    """Largest box of each ratio holding the most saliency (no faces, no rules)."""
    s = cv2.resize(saliency.astype(np.float64), (width, height), interpolation=cv2.INTER_LINEAR)
    ii = cv2.integral(s)
    boxes = []
    for r in RATIOS:
        w, h = largest_window(width, height, parse_ratio(r))
        sums = window_sums(ii, w, h)
        y, x = np.unravel_index(int(np.argmax(sums)), sums.shape)
        boxes.append(Box(int(x), int(y), w, h))
    return boxes


def run(data_root: Path, split: str = "val", options: CropOptions | None = None, limit: int = 0) -> dict[str, dict[str, float]]:
    """{method: {of_oracle, face_cut_rate}} averaged over photos, ratios and both halves."""
    options = (options or CropOptions()).with_(ratios=RATIOS)
    sets = load_saliency_sets(data_root, ("osie", "eyecrowd"))
    part = 1 if split == "val" else 0
    faces = load_eyecrowd_faces(Path(data_root) / "saliency" / "eyecrowd")
    model = load_saliency()
    scores: dict[str, list[float]] = {}
    cuts: dict[str, list[bool]] = {}
    for name in ("osie", "eyecrowd"):
        observers = observer_fixations(data_root, name)
        for record in sets[name][part][: limit or None]:
            per = observers[record.name]
            n = len(per)
            decoded = decode_for(record.image_path.read_bytes(), options)
            engine_model = analyse_image(decoded, options, saliency=model)
            model_only = saliency_only_boxes(engine_model.saliency, record.width, record.height)
            labels = countable_faces(faces.get(record.name, []), record.width, record.height) if name == "eyecrowd" else []
            for a, b in ((slice(0, n // 2), slice(n // 2, n)), (slice(n // 2, n), slice(0, n // 2))):
                guide, held_out = (np.concatenate(per[half]) for half in (a, b))
                guide = guide[inside_image(guide, record.width, record.height)].astype(np.float32)
                held_out = held_out[inside_image(held_out, record.width, record.height)].astype(np.float32)
                judge = replace(record, fixations=held_out)
                density = density_map(guide, record.height, record.width).astype(np.float32)
                human = analyse_image(decoded, options, saliency=MapSaliency(density))
                methods = {
                    "engine, saliency model": [c.box for c in engine_model.crops],
                    "engine, other observers' density": [c.box for c in human.crops],
                    "saliency alone, saliency model": model_only,
                    "saliency alone, other observers' density": saliency_only_boxes(density, record.width, record.height),
                }
                integral = fixation_integral(judge)
                for method, boxes in methods.items():
                    for box in boxes:
                        best = oracle_count(integral, box.w, box.h)
                        scores.setdefault(method, []).append(box_count(integral, box) / best if best else 1.0)
                        if labels:
                            cuts.setdefault(method, []).append(cuts_a_face(box, labels))
    return {
        m: {"of_oracle": float(np.mean(v)), "face_cut_rate": float(np.mean(cuts[m])) if cuts.get(m) else float("nan")}
        for m, v in scores.items()
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA_ROOT)
    parser.add_argument("--split", choices=("val", "train"), default="val")
    parser.add_argument("--limit", type=int, default=0, help="first N photos per set")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    table = run(args.data, args.split, limit=args.limit)
    print("| chooser | guided by | of_oracle (held-out half) | face_cut_rate |")
    print("|---|---|---|---|")
    for method, v in table.items():
        chooser, guide = method.split(", ")
        print(f"| {chooser} | {guide} | {v['of_oracle']:.4f} | {v['face_cut_rate']:.3f} |")
    if args.json:
        args.json.write_text(json.dumps(table, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
