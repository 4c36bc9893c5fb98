"""YuNet on onnxruntime against cv2.FaceDetectorYN: the same rows on real photos.

The engine's decoding (priors, boxes, landmarks, scores) and NMS replace OpenCV's; these
tests hold them to OpenCV's on photos with people (EyeCrowd crowds where ../shared is there,
package photos always), at the sizes the engine's passes use.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import skimage.data
from matplotlib import cbook
from PIL import Image

from autocrop.faces import DEFAULT_FACE_MODEL, TOP_K, OpenCVYuNetDetector, YuNetDetector, load_face_detector
from autocrop.yunet import (
    OUTPUT_NAMES,
    OnnxYuNet,
    decode,
    free_input_size,
    input_blob,
    nms,
    padded_size,
)

pytest.importorskip("onnxruntime")

from tests.shared_data import DATA  # noqa: E402

#: Parity limits: box and landmark coordinates (px), scores.
BOX_PX, SCORE = 1.0, 1e-3
EYECROWD = DATA / "saliency" / "eyecrowd" / "stimuli_640x480"
#: Crowded EyeCrowd photos (dozens to hundreds of faces each).
CROWDS = ("184.jpg", "183.jpg", "085.jpg", "055.jpg", "171.jpg", "163.jpg")


def package_photos() -> dict[str, np.ndarray]:
    hopper = np.asarray(Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).convert("RGB"))
    return {"astronaut": skimage.data.astronaut(), "grace_hopper": hopper, "coffee": skimage.data.coffee()}


def opencv_rows(bgr: np.ndarray, threshold: float = 0.6) -> np.ndarray:
    h, w = bgr.shape[:2]
    detector = cv2.FaceDetectorYN.create(str(DEFAULT_FACE_MODEL), "", (w, h), threshold, 0.3, TOP_K)
    _, rows = detector.detect(bgr)
    return np.zeros((0, 15), np.float32) if rows is None else rows


@pytest.fixture(scope="module")
def onnx_yunet() -> OnnxYuNet:
    return OnnxYuNet(DEFAULT_FACE_MODEL, nms_iou=0.3, top_k=TOP_K, num_threads=1)


def bgr_photos() -> list[tuple[str, np.ndarray]]:
    photos = [(name, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)) for name, rgb in package_photos().items()]
    for name in CROWDS:
        if (EYECROWD / name).is_file():
            photos.append((f"EyeCrowd {name}", cv2.imread(str(EYECROWD / name), cv2.IMREAD_COLOR)))
    return photos


#: The engine's pass sizes for a 12 MP upload (504 px analysis image): the whole image, half
#: size, the small-face pass at 2x; and sizes that are not multiples of 32.
SCALES = (504 / 640, 252 / 640, 1008 / 640, 0.37)


@pytest.mark.parametrize("scale", SCALES)
def test_rows_match_opencv_on_real_photos(onnx_yunet: OnnxYuNet, scale: float) -> None:
    compared = 0
    for name, bgr in bgr_photos():
        size = (round(bgr.shape[1] * scale), round(bgr.shape[0] * scale))
        img = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        ours, theirs = onnx_yunet.detect(img, 0.6), opencv_rows(img)
        assert len(ours) == len(theirs), (name, scale)
        if len(ours):
            np.testing.assert_allclose(ours[:, :14], theirs[:, :14], atol=BOX_PX, err_msg=name)
            np.testing.assert_allclose(ours[:, 14], theirs[:, 14], atol=SCORE, err_msg=name)
        compared += len(ours)
    assert compared > 0


def test_the_engine_detector_matches_the_opencv_fallback() -> None:
    onnx, opencv = load_face_detector(), OpenCVYuNetDetector()
    assert isinstance(onnx, YuNetDetector) and onnx.name == "yunet-2023mar"
    assert opencv.name == "yunet-2023mar-opencv"
    for _, bgr in bgr_photos():
        a, b = onnx.detect(bgr, 0.6), opencv.detect(bgr, 0.6)
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, atol=BOX_PX)


def test_the_declared_input_size_is_made_free() -> None:
    import onnxruntime as ort

    model = DEFAULT_FACE_MODEL.read_bytes()
    session = ort.InferenceSession(free_input_size(model), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape[2:] == ["height", "width"]
    out = session.run(None, {"input": np.zeros((1, 3, 96, 160), np.float32)})
    assert [o.shape[1] for o in out[:3]] == [12 * 20, 6 * 10, 3 * 5]  # cells at strides 8, 16, 32


def test_input_is_padded_to_32_like_opencv() -> None:
    assert padded_size(504, 378) == (512, 384) and padded_size(512, 384) == (512, 384)
    blob = input_blob(np.full((5, 7, 3), (1, 2, 3), np.uint8))
    assert blob.shape == (1, 3, 32, 32) and blob.dtype == np.float32
    assert blob[0, :, 0, 0].tolist() == [1, 2, 3] and blob[0, :, 5:, :].max() == 0 and blob[0, :, :, 7:].max() == 0


def test_decode_places_anchors_on_the_grid() -> None:
    """One confident anchor at stride 16, cell (row 1, col 2) of a 64x32 input: a 16x16 box
    centred on the cell's corner plus its offsets, landmarks likewise."""
    w, h = 64, 32
    outputs = []
    for kind, channels in (("cls", 1), ("obj", 1), ("bbox", 4), ("kps", 10)):
        for stride in (8, 16, 32):
            outputs.append(np.zeros((1, (w // stride) * (h // stride), channels), np.float32))
    cols16 = w // 16
    outputs[1][0, 1 * cols16 + 2] = 0.81  # cls at stride 16
    outputs[4][0, 1 * cols16 + 2] = 1.0  # obj at stride 16
    outputs[7][0, 1 * cols16 + 2] = [0.5, 0.25, 0.0, np.log(2.0)]  # bbox: dx, dy, log w, log h
    outputs[10][0, 1 * cols16 + 2] = [0.5] * 10
    rows = decode(outputs, w, h, 0.6)
    assert rows.shape == (1, 15)
    cx, cy, bw, bh = (2 + 0.5) * 16, (1 + 0.25) * 16, 16.0, 32.0
    np.testing.assert_allclose(rows[0, :4], [cx - bw / 2, cy - bh / 2, bw, bh])
    np.testing.assert_allclose(rows[0, 4:6], [(2 + 0.5) * 16, (1 + 0.5) * 16])
    np.testing.assert_allclose(rows[0, 14], 0.9)


def test_nms_keeps_the_best_of_overlapping_boxes_in_score_order() -> None:
    rows = np.zeros((4, 15), np.float32)
    rows[:, :4] = [[10, 10, 20, 20], [11, 10, 20, 20], [100, 100, 20, 20], [50, 50, 5, 5]]
    rows[:, 14] = [0.7, 0.9, 0.8, 0.65]
    kept = nms(rows, 0.6, 0.3, TOP_K)
    assert kept[:, 14].tolist() == pytest.approx([0.9, 0.8, 0.65])
    assert nms(rows, 0.6, 0.3, 2)[:, 14].tolist() == pytest.approx([0.9, 0.8])  # top_k before NMS


def test_without_onnxruntime_yunet_runs_on_opencv_labelled(monkeypatch: pytest.MonkeyPatch) -> None:
    """onnxruntime missing (an import that fails): the OpenCV runtime, named as such, same faces."""
    import sys

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` raises ImportError
    load_face_detector.cache_clear()
    try:
        fallback = load_face_detector()
    finally:
        load_face_detector.cache_clear()
    assert isinstance(fallback, OpenCVYuNetDetector) and fallback.name == "yunet-2023mar-opencv"
    bgr = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)
    np.testing.assert_allclose(fallback.detect(bgr, 0.6), load_face_detector().detect(bgr, 0.6), atol=BOX_PX)
