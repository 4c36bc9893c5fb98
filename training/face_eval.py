"""Face recall of the engine's detector (YuNet, all passes) on EyeCrowd's labelled faces.

Counted faces: frontal, unoccluded, at least 24 px wide in the 640x480 photos. A labelled
face is found when a detection overlaps it with IoU >= 0.3, each detection matching one
label at most (greedy, best IoU first). Why 0.3 and not the usual 0.5: YuNet boxes run
from brow to chin while EyeCrowd labels the whole head, ~1.55x wider and ~1.5x taller, so a
perfect detection has an IoU of only ~0.42 with its label.

Precision cannot be measured here (profile, back and unlabelled faces are not errors), so
the number of detections per image is reported beside recall.
Run `python -m training.face_eval` (all 400 photos: YuNet never saw them).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from autocrop import CropOptions
from autocrop.faces import detect_faces, load_face_detector

from .crop_eval import parse_overrides
from .datasets import DEFAULT_DATA_ROOT, VALIDATION_EVERY, FaceLabel, load_eyecrowd_faces

MIN_WIDTH = 24.0
MATCH_IOU = 0.3


def counted(labels: Sequence[FaceLabel], min_width: float = MIN_WIDTH) -> np.ndarray:
    """(N, 4) x0, y0, x1, y1 of the frontal, unoccluded labels at least `min_width` wide."""
    rows = [(f.x, f.y, f.x + f.w, f.y + f.h) for f in labels if f.frontal and not f.occluded and f.w >= min_width]
    return np.array(rows, np.float64).reshape(-1, 4)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every (x0, y0, x1, y1) row of `a` with every row of `b`."""
    iw = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = iw * ih
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def matched(labels: np.ndarray, detections: np.ndarray, threshold: float = MATCH_IOU) -> int:
    """Labels found by a distinct detection with IoU >= threshold (greedy, best pairs first)."""
    if len(labels) == 0 or len(detections) == 0:
        return 0
    iou = iou_matrix(labels, detections)
    found = 0
    while True:
        i, j = np.unravel_index(int(iou.argmax()), iou.shape)
        if iou[i, j] < threshold:
            return found
        found += 1
        iou[i, :] = -1
        iou[:, j] = -1


def evaluate(root: Path, options: CropOptions, names: Sequence[str] | None = None) -> dict[str, float]:
    """Recall (overall and for faces under / over 40 px) and detections per image."""
    faces = load_eyecrowd_faces(root)
    detector = load_face_detector()
    names = list(names) if names is not None else list(faces)
    totals = {"labels": 0, "found": 0, "small": 0, "small_found": 0, "detections": 0}
    from tqdm import tqdm

    for name in tqdm(names, desc="faces", unit="img", file=sys.stderr):
        bgr = cv2.imread(str(root / "stimuli_640x480" / name), cv2.IMREAD_COLOR)
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        found = detect_faces(rgb, detector, options)
        dets = np.stack([found[:, 0], found[:, 1], found[:, 0] + found[:, 2], found[:, 1] + found[:, 3]], 1)
        labels = counted(faces[name])
        small = labels[(labels[:, 2] - labels[:, 0]) < 40]
        totals["labels"] += len(labels)
        totals["found"] += matched(labels, dets)
        totals["small"] += len(small)
        totals["small_found"] += matched(small, dets)
        totals["detections"] += len(dets)
    return {
        "images": len(names),
        "labels": totals["labels"],
        "recall": totals["found"] / max(1, totals["labels"]),
        "recall_under_40px": totals["small_found"] / max(1, totals["small"]),
        "detections_per_image": totals["detections"] / max(1, len(names)),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA_ROOT)
    parser.add_argument("--val-only", action="store_true", help="only the validation split")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    root = Path(args.data) / "saliency" / "eyecrowd"
    options = CropOptions(**parse_overrides(args.overrides))
    names = sorted(load_eyecrowd_faces(root))
    if args.val_only:
        names = names[::VALIDATION_EVERY]
    result = evaluate(root, options, names)
    print(
        f"YuNet ({load_face_detector().name}, small-face pass {options.face_small_pass}) on EyeCrowd, "
        f"{result['images']} photos, {result['labels']} frontal unoccluded faces >= {MIN_WIDTH:g} px: "
        f"recall {result['recall']:.3f} (under 40 px: {result['recall_under_40px']:.3f}), "
        f"{result['detections_per_image']:.1f} detections per photo"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
