"""BlazeFace (MediaPipe's full-range face detector, ../shared/data/weights/faces) as a
measured alternative to YuNet: a second face detector.

    python -m research.blazeface [--with-yunet] [training.face_eval's flags]

Not shipped: this runs `training.face_eval` with BlazeFace in the engine's YuNet pass's place
(or, `--with-yunet`, both merged by NMS), with the same matching rules and buckets, and
docs/faces.md records the verdict.

The full-range model takes a 192x192 RGB image in [-1, 1] and predicts, per cell of a 48x48
grid (stride 4, one anchor per cell), a box (centre offset, width, height in input pixels)
and a logit. MediaPipe's own graph uses score 0.6 and NMS IoU 0.3. A 640x480 photo squeezed
into 192 px makes a 24 px face 7 px wide, below what the model sees, so the photo is also
run in overlapping 192-px tiles at `tile_scale` of its size (the tiled pass is what a
crowd needs; the whole-photo pass catches faces larger than a tile).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from autocrop import CropOptions
from autocrop.faces import merge_detections
from training import face_eval

SIDE = 192
GRID = 48
DEFAULT_MODEL = "faces/blazeface/face_detection_full_range.tflite"
#: MediaPipe's own NMS IoU for this model.
NMS_IOU = 0.3


def anchors() -> np.ndarray:
    """(2304, 2) anchor centres in [0, 1]: the 48x48 grid's cell centres, row-major."""
    c = (np.arange(GRID) + 0.5) / GRID
    ys, xs = np.meshgrid(c, c, indexing="ij")
    return np.stack([xs.ravel(), ys.ravel()], 1)


def decode(raw_boxes: np.ndarray, raw_scores: np.ndarray, threshold: float) -> np.ndarray:
    """(N, 5) x, y, w, h (input px), score of the anchors scoring above `threshold`."""
    scores = 1.0 / (1.0 + np.exp(-np.clip(raw_scores.reshape(-1), -100, 100)))
    keep = scores >= threshold
    a = anchors()[keep]
    b = raw_boxes.reshape(-1, raw_boxes.shape[-1])[keep, :4] / SIDE
    cx, cy = a[:, 0] + b[:, 0], a[:, 1] + b[:, 1]
    w, h = b[:, 2], b[:, 3]
    out = np.stack([(cx - w / 2) * SIDE, (cy - h / 2) * SIDE, w * SIDE, h * SIDE, scores[keep]], 1)
    return out.astype(np.float32)


class BlazeFaceDetector:
    """The `autocrop.faces.FaceDetector` protocol over BlazeFace full range, whole photo + tiles
    (one thread at a time: measurement code, not shared like the engine's YuNet)."""

    name = "blazeface-full-range"

    def __init__(self, path: Path, tile_scale: float = 2.0, num_threads: int = 1):
        from ai_edge_litert.interpreter import Interpreter

        self._interpreter = Interpreter(model_path=str(path), num_threads=num_threads)
        self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]["index"]
        outputs = sorted(self._interpreter.get_output_details(), key=lambda d: -d["shape"][-1])
        self._boxes, self._scores = outputs[0]["index"], outputs[1]["index"]
        self.tile_scale = tile_scale

    def _square(self, rgb: np.ndarray, threshold: float) -> np.ndarray:
        """Detections in one image resized to 192x192 (letterboxed), in that image's pixels."""
        h, w = rgb.shape[:2]
        s = SIDE / max(h, w)
        canvas = np.zeros((SIDE, SIDE, 3), np.uint8)
        small = cv2.resize(
            rgb,
            (max(1, round(w * s)), max(1, round(h * s))),
            interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR,
        )
        canvas[: small.shape[0], : small.shape[1]] = small
        x = (canvas.astype(np.float32) / 127.5 - 1.0)[None]
        self._interpreter.set_tensor(self._input, x)
        self._interpreter.invoke()
        boxes = self._interpreter.get_tensor(self._boxes)[0]
        scores = self._interpreter.get_tensor(self._scores)[0]
        found = decode(boxes, scores, threshold)
        found[:, :4] /= s
        return found

    def detect(self, bgr: np.ndarray, score_threshold: float) -> np.ndarray:
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        found = [self._square(rgb, score_threshold)]
        big = cv2.resize(rgb, None, fx=self.tile_scale, fy=self.tile_scale, interpolation=cv2.INTER_LINEAR)
        H, W = big.shape[:2]
        step = SIDE * 3 // 4
        for y in range(0, max(1, H - SIDE + step), step):
            for x in range(0, max(1, W - SIDE + step), step):
                tile = big[y : y + SIDE, x : x + SIDE]
                if tile.shape[0] < SIDE // 2 or tile.shape[1] < SIDE // 2:
                    continue
                f = self._square(tile, score_threshold)
                f[:, 0] += x
                f[:, 1] += y
                f[:, :4] /= self.tile_scale
                found.append(f)
        return merge_detections(np.concatenate(found), NMS_IOU)


def finder(options: CropOptions, data: Path, with_yunet: bool = False) -> face_eval.Finder:
    """`training.face_eval`'s detector: BlazeFace full range (weights under `data`) in the
    engine's YuNet passes' place, or (`with_yunet`) both merged by NMS."""
    blaze = BlazeFaceDetector(data / "weights" / DEFAULT_MODEL)

    def blaze_faces(rgb: np.ndarray) -> np.ndarray:
        return blaze.detect(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), options.face_score_threshold)

    if not with_yunet:
        return blaze.name, blaze_faces
    yunet_name, engine_faces = face_eval.engine_finder(options, data)

    def both(rgb: np.ndarray) -> np.ndarray:
        return merge_detections(np.concatenate([engine_faces(rgb), blaze_faces(rgb)]), options.face_nms_iou)

    return f"{yunet_name}+{blaze.name}", both


def main(argv: Sequence[str] | None = None) -> int:
    parser = face_eval.build_parser("Face recall of BlazeFace full range (whole photo + 2x tiles) on EyeCrowd.")
    parser.add_argument(
        "--with-yunet", action="store_true", help="the engine's YuNet passes and BlazeFace, merged by NMS"
    )
    args = parser.parse_args(argv)
    return face_eval.run(args, lambda options, data: finder(options, data, args.with_yunet))


if __name__ == "__main__":
    raise SystemExit(main())
