"""A text channel for saliency, measured (not shipped; docs/saliency.md).

    pip download rapidocr_onnxruntime==1.4.4 --no-deps -d /tmp/rocr
    unzip -o /tmp/rocr/rapidocr_onnxruntime-1.4.4-py3-none-any.whl \
        'rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx' -d /tmp/rocr
    python -m research.text_channel --det /tmp/rocr/rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx

People read: text draws fixations almost as faces do. PaddleOCR's PP-OCRv4 text detector
(DBNet, Apache-2.0, 4.7 MB, bundled in the rapidocr_onnxruntime wheel) runs in OpenCV DNN,
which the layer already has. Its text-probability map, blurred like the ground truth
(sigma 0.03 x the long side), scaled to peak 1, is added to the shipped model's map with a
weight; the weight is chosen on the in-domain validation split and the MIT1003 sample only
reports, as for every saliency experiment. Prints CC per set and weight.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

from autocrop.preprocess import normalise_map
from autocrop.saliency import DEFAULT_SALIENCY_MODEL, LiteRTSaliency
from training.datasets import DEFAULT_DATA_ROOT, REPORT_ONLY_SETS
from training.evaluate import validation_records
from training.fixations import blur_like_density, density_map
from training.metrics import cc

#: Below this peak probability a photo has no text (the detector's own threshold is 0.3).
NO_TEXT_PEAK = 0.3
WEIGHTS = (0.0, 0.1, 0.2, 0.35, 0.5, 0.75)


def text_blob(prob: np.ndarray) -> np.ndarray:
    """The detector's probability map (photo size) blurred like the ground truth, peak 1;
    all zeros where nothing reaches NO_TEXT_PEAK."""
    if float(prob.max()) < NO_TEXT_PEAK:
        return np.zeros_like(prob, dtype=np.float32)
    blob = blur_like_density(prob)
    return blob / max(float(blob.max()), 1e-6)


class TextDetector:
    """PP-OCRv4 detection in OpenCV DNN: RGB photo -> text probability at the photo's size."""

    def __init__(self, path: Path, long_side: int = 640):
        self.net = cv2.dnn.readNetFromONNX(str(path))
        self.long_side = long_side

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        h, w = rgb.shape[:2]
        scale = self.long_side / max(h, w)
        size = (max(32, round(w * scale / 32) * 32), max(32, round(h * scale / 32) * 32))
        bgr = cv2.resize(rgb[:, :, ::-1], size, interpolation=cv2.INTER_AREA).astype(np.float32)
        x = (bgr / 255.0 - 0.5) / 0.5  # PaddleOCR's det normalisation (rapidocr config.yaml)
        self.net.setInput(np.ascontiguousarray(x.transpose(2, 0, 1)[None]))
        return cv2.resize(self.net.forward()[0, 0], (w, h), interpolation=cv2.INTER_LINEAR)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--det", type=Path, required=True, help="ch_PP-OCRv4_det_infer.onnx")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA_ROOT)
    parser.add_argument("--model", type=Path, default=DEFAULT_SALIENCY_MODEL)
    parser.add_argument("--long-side", type=int, default=640)
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)
    detector, saliency = TextDetector(args.det, args.long_side), LiteRTSaliency(args.model)
    rows, seconds = [], []
    for group, records in (
        ("val", validation_records(args.data)),
        ("out", validation_records(args.data, REPORT_ONLY_SETS)),
    ):
        for r in records:
            rgb = r.load_rgb()
            t0 = time.perf_counter()
            blob = text_blob(detector(rgb))
            seconds.append(time.perf_counter() - t0)
            rows.append((group, r.dataset, saliency.predict(rgb), blob, density_map(r.fixations, r.height, r.width)))
    print(
        f"text detection at long side {args.long_side}: median {np.median(seconds) * 1e3:.0f} ms "
        f"(one thread); photos with text: {sum(bool(b.any()) for *_, b, _ in rows)} / {len(rows)}"
    )
    for weight in WEIGHTS:
        scores: dict[str, list[float]] = {}
        for group, name, sal, blob, gt in rows:
            c = cc(normalise_map(sal + weight * blob), gt)
            scores.setdefault(name, []).append(c)
            if group == "val":
                scores.setdefault("combined val", []).append(c)
        print(f"weight {weight:<5g}" + "".join(f"  {k} {np.mean(v):.4f}" for k, v in scores.items()))


if __name__ == "__main__":
    main()
