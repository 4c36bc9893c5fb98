"""Face stage: YuNet through cv2.FaceDetectorYN, in passes sized for the photo.

YuNet finds faces from about 10 to 300 px. The analysis image (long side ~640) covers most
faces in one pass; a half-size pass catches faces too big for it (close portraits), and an
upscaled pass catches faces near its lower limit. The upscaled pass costs ~4x the first, so
by default it runs only when the first pass found a small face: small faces come in groups
(crowds, team photos), and a photo whose first pass found none rarely hides one. Passes
are merged by non-maximum suppression.

The detector is a one-method protocol with a model-free fallback (no faces, labelled), so the
engine degrades instead of failing when OpenCV cannot load the model.
"""

from __future__ import annotations

import logging
import os
import threading
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from .geometry import area, iou, overlap_area, xywh_to_xyxy
from .options import CropOptions
from .threads import THREADS_ENV, default_threads

log = logging.getLogger(__name__)

DEFAULT_FACE_MODEL = Path(__file__).parent / "models" / "face_detection_yunet_2023mar.onnx"
#: Shrink factor of the pass for faces too large for the analysis image.
LARGE_FACE_SHRINK = 0.5
#: Below this long side (analysis px) the half-size pass would see nothing useful.
LARGE_FACE_MIN_SIDE = 200
#: Upper bound on candidates YuNet keeps before its own NMS.
TOP_K = 5000
#: A detection with more than this share of its area inside a better one is a duplicate.
CONTAINMENT = 0.7


class FaceDetector(Protocol):
    """Anything that finds faces in a BGR uint8 image: rows of (x, y, w, h, score) in its pixels."""

    name: str

    def detect(self, bgr: np.ndarray, score_threshold: float) -> np.ndarray: ...


class YuNetDetector:
    """cv2.FaceDetectorYN behind a lock: one OpenCV object is not safe to share across threads."""

    name = "yunet-2023mar"

    def __init__(self, path: Path | str = DEFAULT_FACE_MODEL, nms_iou: float = 0.3):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"face model not found: {self.path}")
        self._detector = cv2.FaceDetectorYN.create(
            str(self.path), "", (320, 320), 0.5, nms_iou, TOP_K
        )
        self._lock = threading.Lock()

    def detect(self, bgr: np.ndarray, score_threshold: float) -> np.ndarray:
        h, w = bgr.shape[:2]
        with self._lock:
            self._detector.setInputSize((w, h))
            self._detector.setScoreThreshold(float(score_threshold))
            _, found = self._detector.detect(bgr)
        if found is None:
            return np.zeros((0, 5), np.float32)
        return np.ascontiguousarray(found[:, [0, 1, 2, 3, 14]], dtype=np.float32)


class NoFaceDetector:
    """Model-free fallback: finds nothing, and says so in the result's `models`."""

    name = "no-face-detector"

    def detect(self, bgr: np.ndarray, score_threshold: float) -> np.ndarray:
        return np.zeros((0, 5), np.float32)


@lru_cache(maxsize=4)
def load_face_detector(path: str | None = None) -> FaceDetector:
    """The process-wide face detector: YuNet, or the labelled no-face fallback.

    OpenCV's pool (which YuNet's forward pass uses) is sized here when AUTOCROP_THREADS is set;
    otherwise OpenCV's own default, every core, stands."""
    if os.environ.get(THREADS_ENV, "").strip():
        cv2.setNumThreads(default_threads())
    try:
        return YuNetDetector(Path(path) if path else DEFAULT_FACE_MODEL)
    except (OSError, cv2.error) as e:
        log.warning("face model unavailable (%s); faces will not be protected", e)
        return NoFaceDetector()


def _run_pass(detector: FaceDetector, bgr: np.ndarray, scale: float, threshold: float) -> np.ndarray:
    """Detect on `bgr` resized by `scale`; boxes come back in `bgr`'s pixels."""
    if scale == 1.0:
        found = detector.detect(bgr, threshold)
    else:
        h, w = bgr.shape[:2]
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        found = detector.detect(cv2.resize(bgr, size, interpolation=interp), threshold)
        found = found.copy()
        found[:, :4] /= scale
    return found


def merge_detections(boxes: np.ndarray, iou_limit: float, containment: float = CONTAINMENT) -> np.ndarray:
    """Greedy NMS over (x, y, w, h, score) rows, best score first.

    Besides IoU, a box mostly inside a better one is dropped: passes at different scales
    sometimes report part of a large face as a small one.
    """
    if len(boxes) == 0:
        return boxes.reshape(0, 5).astype(np.float32)
    boxes = boxes[np.argsort(-boxes[:, 4], kind="stable")]
    # Every pair's overlap once (a few hundred boxes in a crowd: a small matrix), then one
    # greedy sweep: a box still alive removes the worse boxes it suppresses.
    xyxy = xywh_to_xyxy(boxes[:, :4])
    inter = overlap_area(xyxy[:, None], xyxy[None, :])
    sizes = area(xyxy)
    contained = inter / np.maximum(np.minimum(sizes[:, None], sizes[None, :]), 1e-6)
    suppress = np.triu((iou(xyxy[:, None], xyxy[None, :]) > iou_limit) | (contained > containment), k=1)
    alive = np.ones(len(boxes), bool)
    for i in np.flatnonzero(suppress.any(axis=1)):
        if alive[i]:
            alive &= ~suppress[i]
    return boxes[alive]


def detect_faces(rgb: np.ndarray, detector: FaceDetector, options: CropOptions) -> np.ndarray:
    """Faces in an RGB analysis image: (N, 5) rows of x, y, w, h (analysis px), score.

    Boxes are clipped to the image; best score first.
    """
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    threshold = options.face_score_threshold
    passes = [_run_pass(detector, bgr, 1.0, threshold)]
    if max(rgb.shape[:2]) >= LARGE_FACE_MIN_SIDE:
        passes.append(_run_pass(detector, bgr, LARGE_FACE_SHRINK, threshold))
    found_small = bool(len(passes[0])) and bool((passes[0][:, 2] < options.face_small_px).any())
    mode = options.face_small_pass
    if mode == "always" or (mode == "auto" and found_small):
        passes.append(_run_pass(detector, bgr, options.face_upscale, threshold))
    faces = merge_detections(np.concatenate(passes), options.face_nms_iou)
    return clip_boxes(faces, rgb.shape[1], rgb.shape[0])


def clip_boxes(faces: np.ndarray, width: int, height: int) -> np.ndarray:
    """Clip (x, y, w, h, score) rows to a width x height image, dropping empty ones."""
    if len(faces) == 0:
        return faces.reshape(0, 5).astype(np.float32)
    x0 = np.clip(faces[:, 0], 0, width)
    y0 = np.clip(faces[:, 1], 0, height)
    x1 = np.clip(faces[:, 0] + faces[:, 2], 0, width)
    y1 = np.clip(faces[:, 1] + faces[:, 3], 0, height)
    out = np.stack([x0, y0, x1 - x0, y1 - y0, faces[:, 4]], axis=1).astype(np.float32)
    return out[(out[:, 2] > 1) & (out[:, 3] > 1)]


__all__ = [
    "DEFAULT_FACE_MODEL",
    "FaceDetector",
    "NoFaceDetector",
    "YuNetDetector",
    "detect_faces",
    "load_face_detector",
    "merge_detections",
]
