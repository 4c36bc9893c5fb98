"""Crop quality on the validation split, exactly as EVALUATION.md defines it.

For each validation image of OSIE and EyeCrowd and each ratio (1:1, 16:9, 4:5, 9:16):
- retention: share of all fixations inside the chosen box;
- of_oracle: fixations inside / the most any box of the same width and height could hold;
- area: box area / image area;
- face cut (EyeCrowd): a labelled frontal, unoccluded face whose shorter side is at least 3%
  of the image width is cut when more than 10% and less than 90% of its box lies inside the
  crop; face_cut_rate = share of crops (of images with such faces) cutting at least one.

A fixation is inside a box when the pixel it rounds to is (the data loaders' convention).
Labelled face boxes that run past the image edge are clipped to it first: a crop can only
contain the part of a face that is in the photo.

Methods: the engine (`autocrop.analyse` on the file's bytes), the centre crop and
smartcrop.py (largest box of the ratio, min_scale 1.0). Run `python -m training.crop_eval`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from autocrop import Box, CropOptions, analyse
from autocrop.candidates import largest_window
from autocrop.options import parse_ratio

from .crop_labels import (  # noqa: F401  (re-exported: the evaluation's labels live there)
    CUT_HIGH,
    CUT_LOW,
    FACE_MIN_SHORT_SIDE,
    FaceRect,
    box_count,
    countable_faces,
    cuts_a_face,
    fixation_integral,
    of_oracle,
    oracle_count,
    point_integral,
    window_sums,
)
from .datasets import (
    DEFAULT_DATA_ROOT,
    REPORT_ONLY_SETS,
    FaceLabel,
    FixationRecord,
    load_eyecrowd_faces,
    load_saliency_sets,
)
from .engine_options import parse_overrides

RATIOS = ("1:1", "16:9", "4:5", "9:16")
#: The croppers compared by default; "density-engine" (a ceiling, not a method) on request.
DEFAULT_METHODS = ("engine", "centre", "smartcrop")
METHODS = (*DEFAULT_METHODS, "density-engine", "labelled-faces-engine", "labelled-yunet-engine")
#: `--labelled-kinds`: which labelled faces the ceilings are given.
LABELLED_KINDS = ("all", "countable")

#: A cropper: (record, ratios) -> one box per ratio, in stored-image pixels.
Cropper = Callable[[FixationRecord, Sequence[str]], list[Box]]


@dataclass(frozen=True)
class CropScore:
    """One crop's figures; `face_cut` is None for images without countable faces."""

    dataset: str
    image: str
    ratio: str
    retention: float
    of_oracle: float
    area: float
    face_cut: bool | None
    box: tuple[int, int, int, int] = (0, 0, 0, 0)  # x, y, w, h of the crop


def score_crop(
    record: FixationRecord,
    ratio: str,
    box: Box,
    integral: np.ndarray,
    faces: Sequence[FaceRect] | None,
) -> CropScore:
    """The EVALUATION.md figures of one crop."""
    total = max(1, int(integral[-1, -1]))
    inside = box_count(integral, box)
    return CropScore(
        dataset=record.dataset,
        image=record.name,
        ratio=ratio,
        retention=inside / total,
        of_oracle=of_oracle(integral, box),
        area=box.area / (record.width * record.height),
        face_cut=cuts_a_face(box, faces) if faces else None,
        box=(box.x, box.y, box.w, box.h),
    )


# --- croppers ---------------------------------------------------------------------------------


def engine_cropper(options: CropOptions) -> Cropper:
    """The engine on the image file's bytes, as every door runs it."""

    def crop(record: FixationRecord, ratios: Sequence[str]) -> list[Box]:
        result = analyse(record.image_path.read_bytes(), options.with_(ratios=tuple(ratios)))
        return [c.box for c in result.crops]

    return crop


def crossfit_saliency(models: Sequence[Path], data_root: Path) -> Callable[[FixationRecord], Any]:
    """Per training photo, the saliency model of the cross-fitting fold that never saw it
    (`training.saliency[_frozen] --folds N --fold k`; `models[k]` held fold k out), for
    `_engine_with`: the fairest preview of photos from elsewhere, with everything else the
    shipped engine's (faces, rules, ranker), or a ceiling's detector."""
    from autocrop.saliency import LiteRTSaliency

    from .saliency import fold_assignment

    predictors = [LiteRTSaliency(m) for m in models]
    folds = fold_assignment(data_root, folds=len(predictors))
    return lambda r: predictors[folds[(r.dataset, r.name)]]


@dataclass
class LabelledFaces:
    """A face detector that returns a photo's labelled heads as YuNet-like face boxes: each
    head shrunk by the median of how far labelled heads reach beyond YuNet's boxes (0.43 face
    heights above, 0.12 below, 0.29 face widths a side, `autocrop.options`), at the size of
    the image it is given."""

    heads: list[FaceLabel]
    width: int
    height: int
    name: str = "labelled-faces"

    def detect(self, bgr: np.ndarray, score_threshold: float) -> np.ndarray:
        sx, sy = bgr.shape[1] / self.width, bgr.shape[0] / self.height
        rows = []
        for f in self.heads:
            fw, fh = f.w / (1 + 2 * 0.29), f.h / (1 + 0.43 + 0.12)
            rows.append(((f.x + 0.29 * fw) * sx, (f.y + 0.43 * fh) * sy, fw * sx, fh * sy, 0.95))
        return np.array(rows, np.float32).reshape(-1, 5)


@dataclass
class YuNetOnLabels:
    """A ceiling's detector: the engine's YuNet, keeping only the detections that find one of
    the given labelled faces (`training.face_eval.match_mask`, the recall table's rule), at
    the size of the image it is given. Given the countable faces, it says what the rule
    would do if YuNet found only the faces the evaluation counts, with YuNet's own boxes."""

    faces: list[FaceLabel]
    width: int
    height: int
    name: str = "yunet-on-labels"

    def detect(self, bgr: np.ndarray, score_threshold: float) -> np.ndarray:
        from autocrop.faces import load_face_detector
        from autocrop.geometry import xywh_to_xyxy

        from .face_eval import as_rects, match_mask

        found = load_face_detector().detect(bgr, score_threshold)
        if len(found) == 0 or not self.faces:
            return found[:0]
        scale = np.array([bgr.shape[1] / self.width, bgr.shape[0] / self.height] * 2)
        return found[match_mask(as_rects(self.faces) * scale, xywh_to_xyxy(found[:, :4])).any(axis=0)]


#: Per photo, the face detector a ceiling runs the engine with (None: the engine's own).
DetectorFor = Callable[[FixationRecord], Any]


def labelled_detector(labelled_faces: dict[str, list[FaceLabel]], kind: type = LabelledFaces) -> DetectorFor:
    """`kind` (`LabelledFaces` or `YuNetOnLabels`) over each photo's labelled faces."""
    return lambda r: kind(labelled_faces.get(r.name, []), r.width, r.height)


def countable_labels(labelled_faces: dict[str, list[FaceLabel]]) -> dict[str, list[FaceLabel]]:
    """Only the frontal, unoccluded labels (EVALUATION.md's kind of face, any size)."""
    return {k: [f for f in v if f.frontal and not f.occluded] for k, v in labelled_faces.items()}


def _engine_with(options: CropOptions, saliency_for: Callable[[FixationRecord], Any],
                 detector_for: DetectorFor | None) -> Cropper:
    from autocrop.engine import analyse_image, decode_for

    def crop(record: FixationRecord, ratios: Sequence[str]) -> list[Box]:
        o = options.with_(ratios=tuple(ratios))
        decoded = decode_for(record.image_path.read_bytes(), o)
        detector = detector_for(record) if detector_for is not None else None
        result = analyse_image(decoded, o, saliency=saliency_for(record), detector=detector)
        return [c.box for c in result.crops]

    return crop


@dataclass
class MapSaliency:
    """A fixed map (a human fixation density) as the engine's saliency stage, resized to the
    analysis image and scaled to peak 1, as the model's maps are."""

    density: np.ndarray
    name: str = "human-fixation-density"

    def predict(self, rgb: np.ndarray) -> np.ndarray:
        d = cv2.resize(self.density, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_AREA)
        return d / max(float(d.max()), 1e-12)


def density_engine_cropper(options: CropOptions) -> Cropper:
    """A ceiling, not a method: the engine with the photo's own human fixation density
    (EVALUATION.md's ground truth, from the very fixations that are scored) in place of the
    saliency model; faces, rules and score as the engine's. It shows what the engine's rules
    cost when saliency is perfect, and so how far better saliency alone could take it."""
    from .fixations import density_map

    def density(record: FixationRecord) -> MapSaliency:
        return MapSaliency(density_map(record.fixations, record.height, record.width).astype(np.float32))

    return _engine_with(options, density, None)


def centre_cropper(record: FixationRecord, ratios: Sequence[str]) -> list[Box]:
    """The largest box of each ratio, centred."""
    return centred_boxes(record.width, record.height, ratios)


def centred_boxes(width: int, height: int, ratios: Sequence[str] = RATIOS) -> list[Box]:
    """The largest box of each ratio, centred in a width x height image."""
    boxes = []
    for r in ratios:
        w, h = largest_window(width, height, parse_ratio(r))
        boxes.append(Box((width - w) // 2, (height - h) // 2, w, h))
    return boxes


def smartcrop_cropper(record: FixationRecord, ratios: Sequence[str]) -> list[Box]:
    """smartcrop.py 0.5 with its defaults, largest box of each ratio (min_scale 1.0)."""
    import smartcrop
    from PIL import Image

    sc = smartcrop.SmartCrop()
    with Image.open(record.image_path) as im:
        image = im.convert("RGB")
    boxes = []
    for r in ratios:
        w, h = largest_window(record.width, record.height, parse_ratio(r))
        top = sc.crop(image, w, h, min_scale=1.0)["top_crop"]
        boxes.append(Box(int(top["x"]), int(top["y"]), int(top["width"]), int(top["height"])))
    return boxes


def croppers(options: CropOptions) -> dict[str, Cropper]:
    return {
        "engine": engine_cropper(options),
        "centre": centre_cropper,
        "smartcrop": smartcrop_cropper,
        "density-engine": density_engine_cropper(options),
    }


# --- evaluation -------------------------------------------------------------------------------


def evaluate(
    crop: Cropper,
    records: Sequence[FixationRecord],
    faces: dict[str, list[FaceLabel]],
    ratios: Sequence[str] = RATIOS,
    progress: bool = False,
    desc: str = "crops",
) -> list[CropScore]:
    """Score `crop` on every record and ratio."""
    iterator: Iterable[FixationRecord] = records
    if progress:
        from tqdm import tqdm

        iterator = tqdm(records, desc=desc, unit="img", file=sys.stderr)
    rows = []
    for record in iterator:
        integral = fixation_integral(record)
        face_boxes = (
            countable_faces(faces[record.name], record.width, record.height)
            if record.dataset == "eyecrowd" and record.name in faces
            else None
        )
        for ratio, box in zip(ratios, crop(record, ratios)):
            rows.append(score_crop(record, ratio, box, integral, face_boxes))
    return rows


def summarise(rows: Sequence[CropScore], ratios: Sequence[str] = RATIOS) -> dict[str, Any]:
    """Means per data set (and 'all') and ratio (and 'mean' over ratios)."""
    out: dict[str, Any] = {}
    # "all" pools the in-domain sets; an out-of-domain set (MIT1003) is only ever its own row.
    sets = sorted({r.dataset for r in rows}) + ["all"]
    for ds in sets:
        picked = [r for r in rows if (ds == "all" and r.dataset not in REPORT_ONLY_SETS) or r.dataset == ds]
        if not picked:
            continue
        table: dict[str, Any] = {}
        for ratio in (*ratios, "mean"):
            sel = [r for r in picked if ratio == "mean" or r.ratio == ratio]
            if not sel:
                continue
            cut = [r.face_cut for r in sel if r.face_cut is not None]
            table[ratio] = {
                "n": len(sel),
                "of_oracle": float(np.mean([r.of_oracle for r in sel])),
                "retention": float(np.mean([r.retention for r in sel])),
                "area": float(np.mean([r.area for r in sel])),
                "face_cut_rate": float(np.mean(cut)) if cut else None,
                "face_crops": len(cut),
            }
        out[ds] = table
    return out


def format_table(summaries: dict[str, dict[str, Any]], ratios: Sequence[str] = RATIOS) -> str:
    """A Markdown table: method, data set, of_oracle per ratio and mean, area, face_cut_rate."""
    head = ["method", "set", *[f"of_oracle {r}" for r in ratios], "of_oracle mean", "retention", "area", "face_cut_rate"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for method, summary in summaries.items():
        for ds, table in summary.items():
            mean = table["mean"]
            cut = mean["face_cut_rate"]
            cells = [
                method,
                ds,
                *[f"{table[r]['of_oracle']:.3f}" if r in table else "-" for r in ratios],
                f"{mean['of_oracle']:.3f}",
                f"{mean['retention']:.3f}",
                f"{mean['area']:.3f}",
                f"{cut:.3f} ({mean['face_crops']})" if cut is not None else "-",
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA_ROOT, help="shared data root")
    parser.add_argument("--sets", nargs="+", default=["osie", "eyecrowd", "mit1003"],
                        help="mit1003 (out-of-domain, report only) is scored apart from 'all'")
    parser.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS), choices=METHODS,
                        help="density-engine: the engine with the human fixation density as its saliency; "
                             "labelled-faces-engine: with EyeCrowd's labelled faces as its detections; "
                             "labelled-yunet-engine: with YuNet's detections on labelled faces only (ceilings)")
    parser.add_argument("--labelled-kinds", choices=LABELLED_KINDS, default="all",
                        help="the labelled faces the ceilings get: every kind, or only the frontal, "
                             "unoccluded ones the evaluation counts")
    parser.add_argument("--split", choices=("val", "train"), default="val",
                        help="validation split (reported figures) or training split (for tuning)")
    parser.add_argument("--limit", type=int, default=0, help="first N images per set")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="engine option override, e.g. --set min_scale=0.8")
    parser.add_argument("--json", type=Path, help="also write the summaries (and rows) here")
    parser.add_argument("--model", type=Path, default=None,
                        help="a candidate saliency model (with its card beside it) in place of the shipped one")
    parser.add_argument("--crossfit", type=Path, nargs="+", metavar="MODEL",
                        help="with --split train: the engine sees each photo through the fold model "
                             "that never saw it (fold k's .tflite, k = 0..N-1)")
    args = parser.parse_args(argv)
    if args.crossfit and args.split != "train":
        parser.error("--crossfit previews the training photos: use it with --split train")

    options = CropOptions(**parse_overrides(args.overrides))
    sets = load_saliency_sets(args.data, args.sets)
    part = 1 if args.split == "val" else 0
    records = [r for name in args.sets for r in sets[name][part][: args.limit or None]]
    faces = load_eyecrowd_faces(Path(args.data) / "saliency" / "eyecrowd") if "eyecrowd" in args.sets else {}
    given = countable_labels(faces) if args.labelled_kinds == "countable" else faces
    ceilings = {"labelled-faces-engine": labelled_detector(given, LabelledFaces),
                "labelled-yunet-engine": labelled_detector(given, YuNetOnLabels)}
    available = croppers(options)
    saliency_for: Callable[[FixationRecord], Any] = lambda record: None  # noqa: E731  (the shipped model)
    if args.model:
        from autocrop.saliency import LiteRTSaliency

        candidate = LiteRTSaliency(args.model, num_threads=1)
        saliency_for = lambda record: candidate  # noqa: E731
    if args.crossfit:
        saliency_for = crossfit_saliency(args.crossfit, args.data)
    if args.model or args.crossfit:
        available["engine"] = _engine_with(options, saliency_for, None)
    for name, detector_for in ceilings.items():
        available[name] = _engine_with(options, saliency_for, detector_for)
    summaries: dict[str, Any] = {}
    all_rows: dict[str, list[dict[str, Any]]] = {}
    models: dict[str, str] = {}
    for method in args.methods:
        start = time.perf_counter()
        rows = evaluate(available[method], records, faces, progress=True, desc=method)
        summaries[method] = summarise(rows)
        all_rows[method] = [r.__dict__ for r in rows]
        print(f"{method}: {len(rows)} crops in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    if "engine" in args.methods:
        from autocrop.faces import load_face_detector
        from autocrop.saliency import load_saliency

        models = {"saliency": str(args.model) if args.model else load_saliency().name,
                  "faces": load_face_detector().name}
    print(f"{args.split} images: {len(records)} ({', '.join(args.sets)}); engine models: {models}")
    print(format_table(summaries))
    if args.json:
        args.json.write_text(json.dumps({"models": models, "summaries": summaries, "rows": all_rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
