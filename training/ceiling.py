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
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from autocrop import Box, CropOptions
from autocrop.candidates import largest_window
from autocrop.engine import analyse_image, decode_for
from autocrop.options import parse_ratio
from autocrop.saliency import centre_bias, load_saliency

from .crop_eval import (
    RATIOS,
    MapSaliency,
    centred_boxes,
    countable_faces,
    cuts_a_face,
    fixation_integral,
    of_oracle,
    point_integral,
    window_sums,
)
from .datasets import DEFAULT_DATA_ROOT, inside_image, load_eyecrowd_faces, load_saliency_sets, observer_fixations
from .engine_options import parse_overrides
from .fixations import density_map
from .metrics import cc


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
                        scores.setdefault(method, []).append(of_oracle(integral, box))
                        if labels:
                            cuts.setdefault(method, []).append(cuts_a_face(box, labels))
    return {
        m: {"of_oracle": float(np.mean(v)), "face_cut_rate": float(np.mean(cuts[m])) if cuts.get(m) else float("nan")}
        for m, v in scores.items()
    }


def split_half_photo(per_observer: Sequence[np.ndarray], width: int, height: int,
                     model_map: np.ndarray, engine_boxes: Sequence[Box],
                     seeds: Sequence[int] = (0, 1, 2),
                     engine_on: Callable[[np.ndarray], Sequence[Box]] | None = None) -> dict[str, list[float]]:
    """EVALUATION.md's "Human level" figures of one photo, one value per seed (crops: per box).

    For each seed the observers are split at random into halves A and B (A the smaller when
    their number is odd). Saliency: CC against B's density of the model's map (`model_map`,
    the photo's size), of A's density (people) and of the centre bias. Crops (largest box of
    each ratio): placed where A's density is densest (people), the engine's boxes, the
    centred boxes, and placed where the model's map is densest (map alone: what the map
    allows with the crop step left out); each scored by of_oracle on B's fixations. With
    `engine_on` (the engine's boxes for a given map), also the engine guided by A's density
    (engine on people: the engine's crop step, faces and rules with a human map, the most a
    better map could give it).
    """
    w, h = width, height
    centre = centre_bias(h, w)
    centre_boxes = centred_boxes(w, h)
    map_boxes = saliency_only_boxes(model_map, w, h)
    out: dict[str, list[float]] = {}
    for seed in seeds:
        order = np.random.default_rng((seed, len(per_observer))).permutation(len(per_observer))
        half = len(per_observer) // 2
        pts_a, pts_b = (np.concatenate([np.asarray(per_observer[i], np.float32).reshape(-1, 2) for i in idx])
                        for idx in (order[:half], order[half:]))
        pts_a = pts_a[inside_image(pts_a, w, h)]
        pts_b = pts_b[inside_image(pts_b, w, h)]
        dens_a, dens_b = density_map(pts_a, h, w), density_map(pts_b, h, w)
        out.setdefault("cc_model", []).append(cc(model_map, dens_b))
        out.setdefault("cc_people", []).append(cc(dens_a, dens_b))
        out.setdefault("cc_centre", []).append(cc(centre, dens_b))
        judge = point_integral(pts_b, w, h)
        rows = [("crop_engine", engine_boxes), ("crop_people", saliency_only_boxes(dens_a, w, h)),
                ("crop_centre", centre_boxes), ("crop_map", map_boxes)]
        if engine_on is not None:
            rows.append(("crop_engine_people", engine_on(dens_a)))
        for name, boxes in rows:
            out.setdefault(name, []).extend(of_oracle(judge, box) for box in boxes)
    return out


def summarise_split_half(sums: dict[str, list[float]]) -> dict[str, float]:
    """Means, plus level = (model - centre) / (people - centre) for saliency and crops."""
    out = {k: float(np.mean(v)) for k, v in sums.items()}

    def share(value: float, floor: float, top: float) -> float:
        """How far `value` goes from `floor` to `top`; NaN where they are equal (no way to go)."""
        return (value - floor) / (top - floor) if top != floor else float("nan")

    out["saliency_level"] = share(out["cc_model"], out["cc_centre"], out["cc_people"])
    for row, gap in (("crop_engine", "crop_gap_closed"), ("crop_map", "map_gap_closed"),
                     ("crop_engine_people", "engine_people_gap_closed")):  # fmt: skip
        if row in out:
            out[gap] = share(out[row], out["crop_centre"], out["crop_people"])
    return out


def split_half(data_root: Path, dataset: str, options: CropOptions | None = None,
               seeds: Sequence[int] = (0, 1, 2), limit: int = 0, saliency=None,
               engine_on_people: bool = False) -> dict[str, float]:
    """`split_half_photo` over a set's validation photos (the MIT1003 sample: all 100)."""
    options = (options or CropOptions()).with_(ratios=RATIOS)
    part = load_saliency_sets(data_root, (dataset,))[dataset][1][: limit or None]
    observers = observer_fixations(data_root, dataset)
    model = saliency or load_saliency()
    sums: dict[str, list[float]] = {}
    for record in part:
        decoded = decode_for(record.image_path.read_bytes(), options)
        result = analyse_image(decoded, options, saliency=model)
        model_map = cv2.resize(result.saliency, (record.width, record.height), interpolation=cv2.INTER_LINEAR)
        def engine_on(density: np.ndarray, decoded=decoded) -> list[Box]:
            return [c.box for c in analyse_image(decoded, options, saliency=MapSaliency(density)).crops]

        photo = split_half_photo(observers[record.name], record.width, record.height, model_map,
                                 [c.box for c in result.crops], seeds, engine_on if engine_on_people else None)
        for k, v in photo.items():
            sums.setdefault(k, []).extend(v)
    out = summarise_split_half(sums)
    out["photos"] = float(len(part))
    return out


def format_split_half(rows: dict[str, dict[str, float]]) -> str:
    """Markdown table of `split_half` per data set."""
    head = ("set", "CC model vs B", "CC people (A vs B)", "CC centre vs B", "saliency level",
            "crops engine", "crops people", "crops centre", "gap_closed", "crops map alone", "map gap_closed",
            "crops engine on people", "engine-on-people gap_closed")
    keys = ("cc_model", "cc_people", "cc_centre", "saliency_level", "crop_engine", "crop_people",
            "crop_centre", "crop_gap_closed", "crop_map", "map_gap_closed", "crop_engine_people",
            "engine_people_gap_closed")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in rows.items():
        lines.append(f"| {name} ({int(r['photos'])}) | " + " | ".join(f"{r[k]:.3f}" if k in r else "-" for k in keys) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA_ROOT)
    parser.add_argument("--split", choices=("val", "train"), default="val")
    parser.add_argument("--limit", type=int, default=0, help="first N photos per set")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--split-half-only", action="store_true",
                        help="only EVALUATION.md's split-half figures (MIT1003 sample and validation)")
    parser.add_argument("--seeds", type=int, default=3, help="random observer splits per photo")
    parser.add_argument("--sets", default="mit1003,osie,eyecrowd", help="the split-half's sets, comma-separated")
    parser.add_argument("--engine-on-people", action="store_true",
                        help="split-half: also the engine guided by one half's density (its ceiling with a human map)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="engine option override for the split-half, e.g. --set min_scale=0.8")
    parser.add_argument("--model", type=Path, default=None,
                        help="a candidate saliency model (.tflite beside its card; the card's runtime prior "
                             "and test_time_flip apply) instead of the shipped one")
    args = parser.parse_args(argv)
    candidate = None
    if args.model:
        from autocrop.saliency import LiteRTSaliency

        candidate = LiteRTSaliency(args.model, num_threads=1)
    options = CropOptions(**parse_overrides(args.overrides))
    halves = {name: split_half(args.data, name, options, seeds=range(args.seeds), limit=args.limit, saliency=candidate,
                         engine_on_people=args.engine_on_people)
              for name in args.sets.split(",")}
    print("Split-half human level (EVALUATION.md), observers split at random per seed:")
    print(format_split_half(halves))
    if args.split_half_only:
        if args.json:
            args.json.write_text(json.dumps({"split_half": halves}, indent=1))
        return 0
    table = run(args.data, args.split, limit=args.limit)
    print("| chooser | guided by | of_oracle (held-out half) | face_cut_rate |")
    print("|---|---|---|---|")
    for method, v in table.items():
        chooser, guide = method.split(", ")
        print(f"| {chooser} | {guide} | {v['of_oracle']:.4f} | {v['face_cut_rate']:.3f} |")
    if args.json:
        args.json.write_text(json.dumps({"split_half": halves, "ceiling": table}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
