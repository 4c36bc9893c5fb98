"""The head-margin weight's price: crops against heads sliced, on validation and MIT1003.

    python -m research.head_margins [--weights 1.0 0.5 0.25 0.0001] [--json out.json]

For each `weight_heads` the engine crops every validation photo (OSIE, EyeCrowd) and the
MIT1003 sample in four ratios; each crop is scored as `training.crop_eval` scores it
(of_oracle on all observers, EyeCrowd's face cuts), and the crop's own head-margin term says
how much of a face's wide head (hair, chin, ears: `face_margin_*`) its edges slice. A crop
"slices a head margin" when that term is over 5% of the main face's head; the share is among
crops of photos with a detected face. A weight near 0 (not 0) keeps the term readable in the
breakdown. Measured, not shipped: docs/saliency.md ("Where the out-of-domain crop gap is").
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Sequence
from pathlib import Path

from autocrop import CropOptions, analyse
from training.crop_eval import RATIOS, countable_faces, fixation_integral, score_crop
from training.datasets import DEFAULT_DATA_ROOT, load_eyecrowd_faces, load_saliency_sets

#: A crop slices a head margin when its term reads more than this share of the main face's head.
SLICED = 0.05
SETS = ("osie", "eyecrowd", "mit1003")


def crops_at(weight: float, data_root: Path, limit: int = 0) -> list[dict]:
    """One row per photo and ratio: of_oracle, face cut (EyeCrowd), the unweighted head-margin term."""
    options = CropOptions(ratios=RATIOS, weight_heads=weight)
    sets = load_saliency_sets(data_root, SETS)
    faces = load_eyecrowd_faces(Path(data_root) / "saliency" / "eyecrowd")
    rows = []
    for name in SETS:
        for record in sets[name][1][: limit or None]:
            result = analyse(record.image_path.read_bytes(), options)
            integral = fixation_integral(record)
            labels = (countable_faces(faces[record.name], record.width, record.height)
                      if name == "eyecrowd" and record.name in faces else None)  # fmt: skip
            for ratio, crop in zip(RATIOS, result.crops):
                score = score_crop(record, ratio, crop.box, integral, labels)
                rows.append({"dataset": name, "image": record.name, "ratio": ratio, "of_oracle": score.of_oracle,
                             "face_cut": score.face_cut, "has_face": bool(result.faces),
                             "head_cut": -crop.breakdown.get("head_margins_sliced", 0.0) / weight})  # fmt: skip
    return rows


def summarise(rows: Sequence[dict]) -> dict[str, float]:
    """Validation (OSIE + EyeCrowd) and MIT1003 figures of one weight's rows."""
    val = [r for r in rows if r["dataset"] != "mit1003"]
    mit = [r for r in rows if r["dataset"] == "mit1003"]
    cuts = [r["face_cut"] for r in val if r["face_cut"] is not None]
    with_face = [r for r in val if r["has_face"]]
    return {
        "val_of_oracle": statistics.mean(r["of_oracle"] for r in val),
        "mit1003_of_oracle": statistics.mean(r["of_oracle"] for r in mit) if mit else float("nan"),
        "eyecrowd_face_cut_rate": sum(cuts) / len(cuts) if cuts else float("nan"),
        "face_crops": float(len(with_face)),
        "face_crops_slicing_a_head_margin": (
            sum(r["head_cut"] > SLICED for r in with_face) / len(with_face) if with_face else float("nan")
        ),  # fmt: skip
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA_ROOT)
    parser.add_argument("--weights", type=float, nargs="+", default=[1.0, 0.5, 0.25, 0.0001])
    parser.add_argument("--limit", type=int, default=0, help="first N photos per set")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if any(w <= 0 for w in args.weights):
        parser.error("weights must be > 0 (use 0.0001 for 'almost none': the term stays readable)")
    table = {str(w): summarise(crops_at(w, args.data, args.limit)) for w in args.weights}
    print(
        "| weight_heads | validation of_oracle | EyeCrowd face cuts | face crops slicing a head margin | MIT1003 of_oracle |"
    )
    print("|---|---|---|---|---|")
    for w, s in table.items():
        print(f"| {w} | {s['val_of_oracle']:.4f} | {s['eyecrowd_face_cut_rate']:.4f} | "
              f"{s['face_crops_slicing_a_head_margin']:.3f} of {int(s['face_crops'])} | {s['mit1003_of_oracle']:.4f} |")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(table, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
