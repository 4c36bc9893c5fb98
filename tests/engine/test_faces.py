"""Face stage: YuNet on package-shipped photos, the passes, merging, fallback, threads."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest
import skimage.data
from matplotlib import cbook
from PIL import Image

from autocrop import CropOptions
from autocrop.faces import (
    NoFaceDetector,
    YuNetDetector,
    clip_boxes,
    detect_faces,
    load_face_detector,
    merge_detections,
)

OPTIONS = CropOptions()


def grace_hopper() -> np.ndarray:
    path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    return np.asarray(Image.open(path).convert("RGB"))


def iou(a: np.ndarray, b: tuple[float, float, float, float]) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def crowd(face_px: int, step: int) -> np.ndarray:
    """A grey 640x480 picture tiled with the astronaut's face at `face_px` pixels."""
    face = cv2.resize(skimage.data.astronaut()[50:200, 150:300], (face_px, face_px), interpolation=cv2.INTER_AREA)
    img = np.full((480, 640, 3), 120, np.uint8)
    for y in range(40, 480 - face_px, step):
        for x in range(30, 640 - face_px, step):
            img[y : y + face_px, x : x + face_px] = face
    return img


class CountingDetector:
    """Wraps a detector and records the input size of every call."""

    def __init__(self, inner: YuNetDetector | NoFaceDetector):
        self.inner = inner
        self.name = inner.name
        self.sizes: list[tuple[int, int]] = []

    def detect(self, bgr: np.ndarray, score_threshold: float) -> np.ndarray:
        self.sizes.append((bgr.shape[1], bgr.shape[0]))
        return self.inner.detect(bgr, score_threshold)


@pytest.fixture(scope="module")
def yunet() -> YuNetDetector:
    detector = load_face_detector()
    assert isinstance(detector, YuNetDetector), "the vendored YuNet model must load"
    return detector


@pytest.mark.parametrize(
    ("photo", "expected"),
    [
        (skimage.data.astronaut, (178, 66, 94, 112)),  # Eileen Collins, brow to chin
        (grace_hopper, (180, 118, 174, 216)),
    ],
    ids=["astronaut", "grace_hopper"],
)
def test_one_face_where_it_is(yunet: YuNetDetector, photo, expected) -> None:  # type: ignore[no-untyped-def]
    faces = detect_faces(photo(), yunet, OPTIONS)
    assert len(faces) == 1
    assert iou(faces[0], expected) > 0.7
    assert faces[0, 4] > 0.8


@pytest.mark.parametrize("photo", [skimage.data.coffee, skimage.data.chelsea], ids=["coffee", "chelsea"])
def test_no_face_in_photos_without_people(yunet: YuNetDetector, photo) -> None:  # type: ignore[no-untyped-def]
    assert len(detect_faces(photo(), yunet, OPTIONS)) == 0


def test_a_face_too_big_for_the_first_pass_is_found(yunet: YuNetDetector) -> None:
    closeup = cv2.resize(skimage.data.astronaut()[40:220, 150:300], (600, 720))
    faces = detect_faces(closeup, yunet, OPTIONS)
    assert len(faces) == 1 and faces[0, 2] > 300


def test_passes_are_sized_for_the_photo(yunet: YuNetDetector) -> None:
    spy = CountingDetector(yunet)
    detect_faces(skimage.data.astronaut(), spy, OPTIONS)
    assert spy.sizes == [(512, 512), (256, 256)], "full size, then half size; no upscaled pass"


def test_small_faces_trigger_the_upscaled_pass(yunet: YuNetDetector) -> None:
    spy = CountingDetector(yunet)
    img = crowd(20, 50)
    auto = detect_faces(img, spy, OPTIONS)
    assert (1280, 960) in spy.sizes
    never = detect_faces(img, yunet, OPTIONS.with_(face_small_pass="never"))
    assert len(auto) > len(never)


def test_small_face_pass_modes(yunet: YuNetDetector) -> None:
    spy = CountingDetector(yunet)
    detect_faces(skimage.data.astronaut(), spy, OPTIONS.with_(face_small_pass="always"))
    assert (1024, 1024) in spy.sizes
    spy.sizes.clear()
    detect_faces(crowd(20, 50), spy, OPTIONS.with_(face_small_pass="never"))
    assert all(w <= 640 for w, _ in spy.sizes)


def test_merge_removes_duplicates_and_parts_of_faces() -> None:
    boxes = np.array(
        [
            [100, 100, 50, 60, 0.8],
            [102, 101, 50, 60, 0.9],  # same face, better score
            [110, 110, 20, 20, 0.7],  # part of it, found at another scale
            [300, 100, 50, 60, 0.6],  # another face
        ],
        np.float32,
    )
    merged = merge_detections(boxes, iou_limit=0.3)
    np.testing.assert_array_equal(merged[:, 4], np.array([0.9, 0.6], np.float32))


def test_clip_boxes_keeps_faces_inside_the_photo() -> None:
    boxes = np.array([[-10, -5, 40, 40, 0.9], [630, 470, 30, 30, 0.8], [700, 10, 20, 20, 0.7]], np.float32)
    clipped = clip_boxes(boxes, 640, 480)
    np.testing.assert_allclose(clipped, [[0, 0, 30, 35, 0.9], [630, 470, 10, 10, 0.8]])


def test_missing_model_falls_back_to_no_faces() -> None:
    detector = load_face_detector("/nonexistent/yunet.onnx")
    assert isinstance(detector, NoFaceDetector) and detector.name == "no-face-detector"
    assert len(detect_faces(skimage.data.astronaut(), detector, OPTIONS)) == 0


def test_one_detector_is_safe_to_share_between_threads(yunet: YuNetDetector) -> None:
    photos = [skimage.data.astronaut(), grace_hopper(), crowd(36, 70), skimage.data.coffee()] * 3
    sequential = [detect_faces(p, yunet, OPTIONS) for p in photos]
    with ThreadPoolExecutor(4) as pool:
        threaded = list(pool.map(lambda p: detect_faces(p, yunet, OPTIONS), photos))
    for a, b in zip(sequential, threaded):
        np.testing.assert_allclose(a, b)


def left_crowd() -> tuple[np.ndarray, np.ndarray]:
    """Small faces on the left third of a grey photo; a saliency map that sees only them."""
    img = crowd(20, 50)
    img[:, 220:] = 120
    saliency = np.zeros(img.shape[:2], np.float32)
    saliency[30:460, 20:220] = 1.0
    return img, saliency


def test_the_small_face_pass_runs_only_where_a_small_face_can_be(yunet: YuNetDetector) -> None:
    img, saliency = left_crowd()
    spy = CountingDetector(yunet)
    tiled = detect_faces(img, spy, OPTIONS, saliency)
    upscaled = [(w, h) for w, h in spy.sizes if w > 640 or h > 480]
    assert upscaled and all(w < 1280 * 0.75 for w, _ in upscaled), spy.sizes
    whole = detect_faces(img, yunet, OPTIONS)  # no map: the pass covers the whole image
    assert len(tiled) == len(whole)
    np.testing.assert_allclose(tiled[np.lexsort(tiled[:, :2].T)], whole[np.lexsort(whole[:, :2].T)], atol=1.0)


def test_tiles_cover_a_crowd_and_skip_what_the_map_sees_as_empty() -> None:
    from autocrop.faces import small_face_tiles

    first = np.array([[40, 40, 20, 20, 0.9]], np.float32)
    empty = np.zeros((480, 640), np.float32)
    near = small_face_tiles(640, 480, first, empty, OPTIONS)
    assert len(near) == 1 and near[0][0] == 0 and near[0][2] < 640 and near[0][3] < 480
    busy = np.ones((480, 640), np.float32)
    assert small_face_tiles(640, 480, first, busy, OPTIONS) == [(0, 0, 640, 480)]


def test_a_face_cut_by_a_tile_edge_is_left_to_the_other_passes(yunet: YuNetDetector) -> None:
    """Detections crossing a tile's inner edge are dropped; the image's own edges do not cut."""
    from autocrop.faces import _run_tiles

    img = cv2.cvtColor(crowd(36, 70), cv2.COLOR_RGB2BGR)
    inner = _run_tiles(yunet, img, [(0, 0, 200, 480)], 2.0, 0.6)
    assert len(inner) and (inner[:, 0] + inner[:, 2] <= 200).all()
    whole = _run_tiles(yunet, img, [(0, 0, 640, 480)], 2.0, 0.6)
    assert len(whole) > len(inner)
