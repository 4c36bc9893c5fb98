"""Face stage: YuNet, in passes sized for the photo.

YuNet finds faces from about 10 to 300 px. The analysis image (long side ~640) covers most
faces in one pass; a half-size pass catches faces too big for it (close portraits), and an
upscaled pass catches faces near its lower limit. The upscaled pass costs ~4x the first, so
by default it runs only when the first pass found a small face: small faces come in groups
(crowds, team photos), and a photo whose first pass found none rarely hides one. It runs
only where a small face can be (`small_face_tiles`): near the first pass's small faces, or
where the saliency map sees anything at all; never on a colour cue. Passes are merged by
non-maximum suppression.

YuNet runs on onnxruntime (`autocrop.yunet`: the network, then FaceDetectorYN's decoding and
NMS in numpy, about twice as fast at one thread); where onnxruntime is not installed, on
cv2.FaceDetectorYN (labelled "yunet-2023mar-opencv" in a result's `models`), with the same
boxes. The detector is a one-method protocol with a model-free fallback (no faces, labelled),
so the engine degrades instead of failing when no runtime can load the model.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
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
#: YuNet's smallest face (px). On a thinner image it decodes boxes far outside the image,
#: some infinite (NaN once added), with full confidence: such a pass is not run.
MIN_FACE_PX = 10
#: Upper bound on candidates YuNet keeps before its own NMS.
TOP_K = 5000
#: A detection with more than this share of its area inside a better one is a duplicate.
CONTAINMENT = 0.7
#: Where the small-face pass runs: within this share of the analysis image's long side of a
#: small face the first pass found (small faces come in groups)...
SMALL_FACE_REACH = 0.2
#: ...or wherever the saliency map reaches this share of its peak: low, so a face the network
#: barely noticed still counts and only what it sees as empty (sky, walls, floor) is skipped.
#: On EyeCrowd, 1 of the 1,044 faces found only by the small-face pass lay outside both.
SMALL_FACE_SALIENCY = 0.02
#: Grid cell (analysis px) the small-face tiles are built from.
TILE_CELL = 16
#: At most this many tiles...
MAX_TILES = 4
#: ...and when the tiles cover more than this share of the box around them all, that box
#: is one tile (fewer, larger passes cost less than many small ones).
ONE_TILE_SHARE = 0.6


class FaceDetector(Protocol):
    """Anything that finds faces in a BGR uint8 image: rows of (x, y, w, h, score) in its pixels."""

    name: str

    def detect(self, bgr: np.ndarray, score_threshold: float) -> np.ndarray: ...


class YuNetDetector:
    """YuNet on onnxruntime, decoded as cv2.FaceDetectorYN decodes it (`autocrop.yunet`)."""

    name = "yunet-2023mar"

    def __init__(self, path: Path | str = DEFAULT_FACE_MODEL, nms_iou: float = 0.3, num_threads: int = 1):
        from .yunet import OnnxYuNet  # imports onnxruntime: ImportError where it is not installed

        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"face model not found: {self.path}")
        self._net = OnnxYuNet(self.path, nms_iou, TOP_K, num_threads)

    def detect(self, bgr: np.ndarray, score_threshold: float) -> np.ndarray:
        found = self._net.detect(bgr, score_threshold)
        return np.ascontiguousarray(found[:, [0, 1, 2, 3, 14]], dtype=np.float32)


class OpenCVYuNetDetector:
    """The fallback runtime: cv2.FaceDetectorYN behind a lock (one OpenCV object is not safe
    to share across threads). Same boxes as YuNetDetector, about half as fast."""

    name = "yunet-2023mar-opencv"

    def __init__(self, path: Path | str = DEFAULT_FACE_MODEL, nms_iou: float = 0.3):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"face model not found: {self.path}")
        self._detector = cv2.FaceDetectorYN.create(str(self.path), "", (320, 320), 0.5, nms_iou, TOP_K)
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
def load_face_detector(path: str | None = None, num_threads: int | None = None) -> FaceDetector:
    """The process-wide face detector: YuNet on onnxruntime, else on OpenCV (labelled), else
    the labelled no-face fallback.

    `num_threads` None: `threads.default_threads()` (the cores, or AUTOCROP_THREADS) for
    onnxruntime. OpenCV's pool (the fallback's) is sized only when AUTOCROP_THREADS is set;
    otherwise OpenCV's own default, every core, stands."""
    model = Path(path) if path else DEFAULT_FACE_MODEL
    try:
        return YuNetDetector(model, num_threads=num_threads or default_threads())
    except ImportError as e:
        log.info("onnxruntime unavailable (%s); YuNet runs on OpenCV's DNN module", e)
    except (OSError, ValueError, RuntimeError) as e:
        log.warning("face model unavailable on onnxruntime (%s); trying OpenCV's DNN module", e)
    if os.environ.get(THREADS_ENV, "").strip():
        cv2.setNumThreads(default_threads())
    try:
        return OpenCVYuNetDetector(model)
    except (OSError, cv2.error) as e:
        log.warning("face model unavailable (%s); faces will not be protected", e)
        return NoFaceDetector()


def _run_pass(detector: FaceDetector, bgr: np.ndarray, scale: float, threshold: float) -> np.ndarray:
    """Detect on `bgr` resized by `scale`; boxes come back in `bgr`'s pixels."""
    if min(bgr.shape[:2]) * scale < MIN_FACE_PX:  # a strip no face fits in: YuNet's boxes there are garbage
        return np.zeros((0, 5), np.float32)
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


def small_face_tiles(
    width: int, height: int, first: np.ndarray, saliency: np.ndarray, options: CropOptions
) -> list[tuple[int, int, int, int]]:
    """(x0, y0, x1, y1) analysis-px regions where a small face can be, for the small-face pass.

    Grid cells near a small face of the first pass (`first`: its rows) or where the saliency
    map is not empty, grown by half a small face (so a face at the edge of that area is whole
    in its tile), joined into connected tiles; one tile when they are many or cover most of
    the box around them."""
    cell = TILE_CELL
    rows, cols = -(-height // cell), -(-width // cell)
    grid = np.zeros((rows * cell, cols * cell), np.float32)
    grid[:height, :width] = saliency
    need = grid.reshape(rows, cell, cols, cell).max(axis=(1, 3)) >= SMALL_FACE_SALIENCY * max(
        float(saliency.max()), 1e-6
    )
    reach = SMALL_FACE_REACH * max(width, height)
    for x, y, w, h in first[first[:, 2] < options.face_small_px, :4]:
        c0, r0 = max(0, int((x - reach) // cell)), max(0, int((y - reach) // cell))
        c1, r1 = int((x + w + reach) // cell) + 1, int((y + h + reach) // cell) + 1
        need[r0:r1, c0:c1] = True
    grow = 2 * -(-int(options.face_small_px / 2) // cell) + 1
    need = cv2.dilate(need.astype(np.uint8), np.ones((grow, grow), np.uint8))
    count, _, stats, _ = cv2.connectedComponentsWithStats(need, connectivity=8)
    tiles = [
        (int(c * cell), int(r * cell), min(width, int((c + w) * cell)), min(height, int((r + h) * cell)))
        for c, r, w, h, _ in stats[1:count]
    ]
    if not tiles:
        return []
    box = (min(t[0] for t in tiles), min(t[1] for t in tiles), max(t[2] for t in tiles), max(t[3] for t in tiles))
    covered = sum((t[2] - t[0]) * (t[3] - t[1]) for t in tiles)
    if len(tiles) > MAX_TILES or covered > ONE_TILE_SHARE * (box[2] - box[0]) * (box[3] - box[1]):
        return [box]
    return tiles


def _run_tiles(
    detector: FaceDetector, bgr: np.ndarray, tiles: list[tuple[int, int, int, int]], scale: float, threshold: float
) -> np.ndarray:
    """`_run_pass` on each tile of `bgr`; boxes in `bgr`'s pixels. A face cut by a tile's edge
    inside the photo is dropped: it lies in the tile's margin, outside where a face was sought."""
    height, width = bgr.shape[:2]
    found: list[np.ndarray] = [np.zeros((0, 5), np.float32)]
    for x0, y0, x1, y1 in tiles:
        rows = _run_pass(detector, bgr[y0:y1, x0:x1], scale, threshold).copy()
        rows[:, 0] += x0
        rows[:, 1] += y0
        cut = ((x0 > 0) & (rows[:, 0] < x0)) | ((y0 > 0) & (rows[:, 1] < y0))
        cut |= ((x1 < width) & (rows[:, 0] + rows[:, 2] > x1)) | ((y1 < height) & (rows[:, 1] + rows[:, 3] > y1))
        found.append(rows[~cut])
    return np.concatenate(found)


def face_passes(
    rgb: np.ndarray,
    saliency: np.ndarray | None,
    detector: FaceDetector,
    options: CropOptions,
    timings: dict[str, float] | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> np.ndarray:
    """Every pass's detections, unmerged: (N, 5) rows in analysis px. `saliency` (the analysis
    image's map) places the small-face pass; without it that pass covers the whole image.
    `timings`, when given, gets each pass's ms by `clock` (seconds)."""
    timings = {} if timings is None else timings
    start = clock()

    def lap(name: str) -> None:
        nonlocal start
        now = clock()
        timings[name] = timings.get(name, 0.0) + (now - start) * 1000
        start = now

    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    threshold = options.face_score_threshold
    passes = [_run_pass(detector, bgr, 1.0, threshold)]
    lap("faces: whole image")
    if max(rgb.shape[:2]) >= LARGE_FACE_MIN_SIDE:
        passes.append(_run_pass(detector, bgr, LARGE_FACE_SHRINK, threshold))
        lap("faces: half size")
    found_small = bool(len(passes[0])) and bool((passes[0][:, 2] < options.face_small_px).any())
    mode = options.face_small_pass
    if mode == "always" or (mode == "auto" and found_small and saliency is None):
        passes.append(_run_pass(detector, bgr, options.face_upscale, threshold))
        lap("faces: small-face pass")
    elif mode == "auto" and found_small and saliency is not None:
        tiles = small_face_tiles(rgb.shape[1], rgb.shape[0], passes[0], saliency, options)
        lap("faces: small-face tiles chosen")
        passes.append(_run_tiles(detector, bgr, tiles, options.face_upscale, threshold))
        lap("faces: small-face pass")
    return np.concatenate(passes)


def detect_faces(
    rgb: np.ndarray, detector: FaceDetector, options: CropOptions, saliency: np.ndarray | None = None
) -> np.ndarray:
    """Faces in an RGB analysis image: (N, 5) rows of x, y, w, h (analysis px), score.

    `saliency`: the image's saliency map (analysis size, [0, 1]), which bounds where the
    small-face pass runs; without it that pass covers the whole image.
    Boxes are clipped to the image; best score first.
    """
    faces = merge_detections(face_passes(rgb, saliency, detector, options), options.face_nms_iou)
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
    "OpenCVYuNetDetector",
    "detect_faces",
    "face_passes",
    "load_face_detector",
    "merge_detections",
]
