"""YuNet on onnxruntime: the network, then what cv2.FaceDetectorYN does around it.

OpenCV's FaceDetectorYN pads the BGR image (bottom and right, zeros) to a multiple of 32,
runs the network on the raw 0-255 values, decodes each of the three heads (strides 8, 16,
32: one anchor per cell) and keeps the best boxes by NMS on integer rectangles. This module
does the same steps with the same arithmetic (padding and decoding in numpy, the NMS by the
same cv2.dnn.NMSBoxes call), so its rows match OpenCV's (tests/engine/test_yunet.py
holds them to ~1 px and ~1e-3 on real photos); the network runs about twice as fast on
onnxruntime as on OpenCV's DNN module at one thread (docs/speed.md).

The shipped ONNX file declares a fixed 640x640 input (OpenCV ignores it); the network itself
is size-agnostic (reshapes to -1, resizes by scale), so the declared sizes are made free in
the serialized model before onnxruntime loads it. No `onnx` package is needed for that: the
few protobuf fields involved are rewritten here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

#: Strides of YuNet's three heads, in the order of its outputs (cls_8, cls_16, cls_32, ...).
STRIDES = (8, 16, 32)
#: The input is padded to a multiple of this (the coarsest stride), as FaceDetectorYN pads it.
PAD_DIVISOR = 32
#: The network's outputs by name, in the order `decode` takes them (the ONNX model's order).
OUTPUT_NAMES = tuple(f"{kind}_{stride}" for kind in ("cls", "obj", "bbox", "kps") for stride in STRIDES)
#: onnxruntime's telemetry switch, read when it loads: the engine sends nothing anywhere.
TELEMETRY_ENV = "ORT_DISABLE_TELEMETRY"


# --- making the declared input size free (protobuf wire format) ---------------------------


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        byte = buf[i]
        i += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, i
        shift += 7


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _fields(buf: bytes) -> Iterator[tuple[int, int, bytes, bytes]]:
    """(field number, wire type, the field's raw bytes, its payload if length-delimited)."""
    i = 0
    while i < len(buf):
        start = i
        key, i = _varint(buf, i)
        number, wire = key >> 3, key & 7
        payload = b""
        if wire == 0:
            _, i = _varint(buf, i)
        elif wire == 1:
            i += 8
        elif wire == 2:
            size, i = _varint(buf, i)
            payload, i = buf[i : i + size], i + size
        elif wire == 5:
            i += 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield number, wire, buf[start:i], payload


def _message(number: int, payload: bytes) -> bytes:
    return _encode_varint(number << 3 | 2) + _encode_varint(len(payload)) + payload


def _rewrite(buf: bytes, number: int, change: Callable[[bytes], bytes | None]) -> bytes:
    """`buf` with every length-delimited field `number` replaced by change(payload) (None drops it)."""
    out = bytearray()
    for n, wire, raw, payload in _fields(buf):
        if n == number and wire == 2:
            new = change(payload)
            if new is not None:
                out += _message(n, new)
        else:
            out += raw
    return bytes(out)


def _free_dims(names: dict[int, str]) -> Callable[[bytes], bytes]:
    """A ValueInfoProto rewriter: the tensor dims at these positions become named (free) dims."""

    def shape(payload: bytes) -> bytes:  # TensorShapeProto: dim = 1
        if sum(1 for n, *_ in _fields(payload) if n == 1) <= max(names):
            raise ValueError("the model's declared shape has fewer dims than expected")
        out, index = bytearray(), 0
        for n, _, raw, _ in _fields(payload):
            if n == 1 and index in names:
                out += _message(1, _message(2, names[index].encode()))  # Dimension.dim_param = 2
            else:
                out += raw
            index += n == 1
        return bytes(out)

    def tensor(payload: bytes) -> bytes:  # TypeProto.Tensor: shape = 2
        return _rewrite(payload, 2, shape)

    def type_(payload: bytes) -> bytes:  # TypeProto: tensor_type = 1
        return _rewrite(payload, 1, tensor)

    return lambda value_info: _rewrite(value_info, 2, type_)  # ValueInfoProto: type = 2


def free_input_size(model: bytes) -> bytes:
    """The serialized ONNX model with its input's height and width, and its outputs' anchor
    counts, made free; the intermediate shapes it records (value_info) are dropped."""

    def graph(payload: bytes) -> bytes:  # GraphProto: input = 11, output = 12, value_info = 13
        payload = _rewrite(payload, 11, _free_dims({2: "height", 3: "width"}))
        payload = _rewrite(payload, 12, _free_dims({1: "anchors"}))
        return _rewrite(payload, 13, lambda _: None)

    return _rewrite(model, 7, graph)  # ModelProto: graph = 7


# --- FaceDetectorYN's steps ---------------------------------------------------------------


def padded_size(width: int, height: int) -> tuple[int, int]:
    """The network's input size for a width x height image: each side up to a multiple of 32."""
    return -(-width // PAD_DIVISOR) * PAD_DIVISOR, -(-height // PAD_DIVISOR) * PAD_DIVISOR


def input_blob(bgr: np.ndarray) -> np.ndarray:
    """(1, 3, H32, W32) float32: the BGR image's 0-255 values, zero-padded bottom and right."""
    h, w = bgr.shape[:2]
    pw, ph = padded_size(w, h)
    blob = np.zeros((1, 3, ph, pw), np.float32)
    blob[0, :, :h, :w] = bgr.transpose(2, 0, 1)
    return blob


def decode(outputs: list[np.ndarray], width: int, height: int, score_threshold: float) -> np.ndarray:
    """(N, 15) rows x, y, w, h, 10 landmark coordinates, score: every anchor scoring at least
    `score_threshold`, in FaceDetectorYN's order (stride, then row-major), before NMS.

    `outputs`: the network's 12 outputs in its order (cls, obj, bbox, kps per stride);
    `width` x `height`: the padded input size."""
    rows = []
    for i, stride in enumerate(STRIDES):
        cols, lines = width // stride, height // stride
        cls = np.clip(outputs[i].reshape(-1), 0.0, 1.0)
        if len(cls) != lines * cols:
            raise ValueError(f"stride {stride}: {len(cls)} anchors for a {width}x{height} input")
        obj = np.clip(outputs[i + 3].reshape(-1), 0.0, 1.0)
        score = np.sqrt(cls * obj)
        keep = np.flatnonzero(score >= score_threshold)
        if not len(keep):
            continue
        bbox = outputs[i + 6].reshape(-1, 4)[keep]
        kps = outputs[i + 9].reshape(-1, 10)[keep]
        c = (keep % cols).astype(np.float32)
        r = (keep // cols).astype(np.float32)
        s = np.float32(stride)
        cx, cy = (c + bbox[:, 0]) * s, (r + bbox[:, 1]) * s
        w, h = np.exp(bbox[:, 2]) * s, np.exp(bbox[:, 3]) * s
        lx = (kps[:, 0::2] + c[:, None]) * s
        ly = (kps[:, 1::2] + r[:, None]) * s
        marks = np.stack([lx, ly], axis=2).reshape(-1, 10)
        rows.append(np.column_stack([cx - w / 2, cy - h / 2, w, h, marks, score[keep]]))
    if not rows:
        return np.zeros((0, 15), np.float32)
    return np.concatenate(rows).astype(np.float32)


def nms(rows: np.ndarray, score_threshold: float, iou_limit: float, top_k: int) -> np.ndarray:
    """FaceDetectorYN's NMS: cv2.dnn.NMSBoxes, the function it calls, on the same integer
    rectangles (scores above the threshold, the `top_k` best, greedy IoU suppression).
    A crowd's 1,500 anchors take it ~4 ms; the same greedy loop in numpy took ~20."""
    if len(rows) < 2:
        return rows
    import cv2

    rects = np.trunc(rows[:, :4]).astype(np.int32)  # C++ int(): towards zero, as FaceDetectorYN
    scores = rows[:, 14].astype(np.float32)
    keep = cv2.dnn.NMSBoxes(rects, scores, score_threshold, iou_limit, 1.0, top_k)  # type: ignore[arg-type]
    return rows[np.asarray(keep, np.intp).reshape(-1)]


class OnnxYuNet:
    """YuNet's network on an onnxruntime session (thread-safe: one session serves every thread)."""

    def __init__(self, path: Path, nms_iou: float, top_k: int, num_threads: int):
        os.environ.setdefault(TELEMETRY_ENV, "1")
        import onnxruntime as ort

        self.nms_iou, self.top_k = nms_iou, top_k
        options = ort.SessionOptions()
        options.intra_op_num_threads = num_threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only
        self.session = ort.InferenceSession(
            free_input_size(Path(path).read_bytes()), options, providers=["CPUExecutionProvider"]
        )
        self.input_name = self.session.get_inputs()[0].name

    def detect(self, bgr: np.ndarray, score_threshold: float) -> np.ndarray:
        """(N, 15) FaceDetectorYN rows for a BGR uint8 image, best score first."""
        blob = input_blob(bgr)
        outputs = self.session.run(None, {self.input_name: blob})
        rows = decode(outputs, blob.shape[3], blob.shape[2], score_threshold)
        return nms(rows, score_threshold, self.nms_iou, self.top_k)


__all__ = [
    "OUTPUT_NAMES",
    "OnnxYuNet",
    "decode",
    "free_input_size",
    "input_blob",
    "nms",
    "padded_size",
]
