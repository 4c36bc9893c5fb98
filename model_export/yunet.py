"""Convert YuNet's ONNX model to a float32 TFLite model for LiteRT, check it, card it.

    python3.11 -m venv /tmp/yunet-export
    /tmp/yunet-export/bin/pip install onnx2tf==1.29.24   # pins tensorflow 2.19.0, onnx 1.19.1, onnxsim 0.4.36
    .venv/bin/python -m model_export.yunet --converter /tmp/yunet-export/bin/python [--no-ship]

The converter (onnx2tf, which needs TensorFlow and versions of onnx and onnxruntime of its own)
lives in a throwaway environment; this script runs in the project's, hands it the model with
its declared input size made free (`autocrop.yunet.free_input_size`, the rule onnxruntime's
runtime uses), and checks the result with the engine's own runtime. onnx2tf turns the NCHW
graph channels-last: the TFLite input is (1, H, W, 3) BGR 0-255 with H and W free (LiteRT
resizes it per call), the twelve outputs keep the ONNX names. Parity: the network's outputs
against onnxruntime's, and the detector's rows against cv2.FaceDetectorYN, on package photos
at the engine's three pass sizes. The float32 file and its card go to build/yunet/: the engine
does not ship it (on LiteRT YuNet ran 8-20% slower than on onnxruntime, and 1.7x slower when
the input size changes pass to pass; docs/speed.md), so this is the measured alternative.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from autocrop.faces import DEFAULT_FACE_MODEL, TOP_K
from autocrop.yunet import OUTPUT_NAMES, OnnxYuNet, decode, free_input_size, input_blob, nms, padded_size

from .quantize import git_commit

#: The converter and what it pins; the versions actually used are read from the environment.
CONVERTER_PACKAGES = ("onnx2tf", "tensorflow", "onnx", "onnxsim", "onnx_graphsurgeon")
#: Where the converted model goes: not into the engine's models/ (the layer ships only what
#: runs, and LiteRT was slower than onnxruntime for YuNet: docs/speed.md), beside its card.
TARGET = Path(__file__).resolve().parents[1] / "build" / "yunet" / DEFAULT_FACE_MODEL.with_suffix(".tflite").name
#: The engine's pass sizes for a 12 MP upload's 504 px analysis image: whole, half, 2x.
PASS_SIZES = ((504, 378), (252, 189), (1008, 756))
#: Largest difference of any raw network output from onnxruntime's (float32 arithmetic).
OUTPUT_TOLERANCE = 1e-3
#: Detector rows against cv2.FaceDetectorYN: coordinates (px), scores.
BOX_PX, SCORE = 1.0, 1e-3


def input_image(bgr: np.ndarray) -> np.ndarray:
    """`input_blob` channels-last, (1, H32, W32, 3): the converted TFLite network's layout."""
    h, w = bgr.shape[:2]
    pw, ph = padded_size(w, h)
    image = np.zeros((1, ph, pw, 3), np.float32)
    image[0, :h, :w] = bgr
    return image


class LiteRTYuNet:
    """YuNet's network converted to TFLite (model_export.yunet: channels-last input, height and
    width free), on a LiteRT interpreter behind a lock (interpreters are not thread-safe)."""

    def __init__(self, path: Path, nms_iou: float, top_k: int, num_threads: int):
        from ai_edge_litert.interpreter import Interpreter

        from autocrop.litert import litert_banner_filtered

        self.nms_iou, self.top_k = nms_iou, top_k
        with litert_banner_filtered():  # allocating prints LiteRT's banner
            interpreter = Interpreter(model_path=str(path), num_threads=num_threads)
            interpreter.allocate_tensors()
        self._runner = interpreter.get_signature_runner()
        self._input_name = next(iter(self._runner.get_input_details()))
        missing = set(OUTPUT_NAMES) - set(self._runner.get_output_details())
        if missing:
            raise ValueError(f"{path.name} lacks YuNet's outputs {sorted(missing)}")
        self._lock = threading.Lock()

    def detect(self, bgr: np.ndarray, score_threshold: float) -> np.ndarray:
        """(N, 15) FaceDetectorYN rows for a BGR uint8 image, best score first."""
        image = input_image(bgr)
        with self._lock:  # the runner resizes the input to this image's size, then runs
            out = self._runner(**{self._input_name: image})
        rows = decode([out[name] for name in OUTPUT_NAMES], image.shape[2], image.shape[1], score_threshold)
        return nms(rows, score_threshold, self.nms_iou, self.top_k)



def converter_versions(python: str) -> dict[str, str]:
    """The converter environment's package versions."""
    code = (
        "import importlib.metadata as m, json; "
        f"print(json.dumps({{p: m.version(p.replace('_', '-')) for p in {CONVERTER_PACKAGES!r}}}))"
    )
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1]) | {
        "python": subprocess.run(
            [python, "-c", "import sys; print(sys.version.split()[0])"], capture_output=True, text=True, check=True
        ).stdout.strip()
    }


def convert(python: str, onnx_path: Path, work: Path) -> bytes:
    """The float32 TFLite flatbuffer onnx2tf makes of the ONNX model with its input size free."""
    free = work / "yunet.onnx"  # a copy: onnx2tf overwrites its input with onnxsim's simplified model
    free.write_bytes(free_input_size(onnx_path.read_bytes()))
    out = work / "tflite"
    done = subprocess.run([python, "-m", "onnx2tf", "-i", str(free), "-o", str(out), "-n"], cwd=work,
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode:  # TensorFlow's start-up chatter is shown only when the conversion fails
        raise RuntimeError(f"onnx2tf failed:\n{done.stderr[-4000:]}")
    return (out / "yunet_float32.tflite").read_bytes()


def package_photos() -> dict[str, np.ndarray]:
    """BGR photos with faces that ship with the project's dependencies."""
    import skimage.data
    from matplotlib import cbook
    from PIL import Image

    hopper = np.asarray(Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).convert("RGB"))
    rgb = {"astronaut": skimage.data.astronaut(), "grace_hopper": hopper, "coffee": skimage.data.coffee()}
    return {name: cv2.cvtColor(image, cv2.COLOR_RGB2BGR) for name, image in rgb.items()}


def parity(model: Path) -> dict[str, Any]:
    """The TFLite network and detector against onnxruntime and cv2.FaceDetectorYN."""
    onnx = OnnxYuNet(DEFAULT_FACE_MODEL, 0.3, TOP_K, 1)
    litert = LiteRTYuNet(model, 0.3, TOP_K, 1)
    worst_output = worst_px = worst_score = 0.0
    faces = 0
    same_count = True
    for bgr in package_photos().values():
        for width, height in PASS_SIZES:
            image = cv2.resize(
                bgr, (width, height), interpolation=cv2.INTER_AREA if width < bgr.shape[1] else cv2.INTER_LINEAR
            )
            blob = input_blob(image)
            theirs = onnx.session.run(None, {onnx.input_name: blob})
            ours = litert._runner(input=np.ascontiguousarray(blob.transpose(0, 2, 3, 1)))
            worst_output = max(worst_output, *(float(np.abs(ours[n] - t).max()) for n, t in zip(OUTPUT_NAMES, theirs)))
            detector = cv2.FaceDetectorYN.create(str(DEFAULT_FACE_MODEL), "", (width, height), 0.6, 0.3, TOP_K)
            found = detector.detect(image)[1]
            found = np.zeros((0, 15), np.float32) if found is None else found
            rows = litert.detect(image, 0.6)
            same_count &= len(rows) == len(found)
            if len(rows) == len(found) and len(rows):
                worst_px = max(worst_px, float(np.abs(rows[:, :14] - found[:, :14]).max()))
                worst_score = max(worst_score, float(np.abs(rows[:, 14] - found[:, 14]).max()))
            faces += len(found)
    return {
        "photos": sorted(package_photos()),
        "pass_sizes": [f"{w}x{h}" for w, h in PASS_SIZES],
        "faces": faces,
        "same_count": same_count,
        "max_output_diff_vs_onnxruntime": worst_output,
        "max_coordinate_diff_px_vs_opencv": worst_px,
        "max_score_diff_vs_opencv": worst_score,
    }


def main(argv: list[str] | None = None) -> int:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--converter",
        default="/tmp/yunet-export/bin/python",
        help="python of the environment with onnx2tf (see the module docstring)",
    )
    parser.add_argument("--no-ship", action="store_true", help="convert and check only")
    args = parser.parse_args(argv)

    versions = converter_versions(args.converter)
    with tempfile.TemporaryDirectory() as tmp:
        flatbuffer = convert(args.converter, DEFAULT_FACE_MODEL, Path(tmp))
        candidate = Path(tmp) / TARGET.name
        candidate.write_bytes(flatbuffer)
        report = parity(candidate)
    passed = (
        report["same_count"]
        and report["max_output_diff_vs_onnxruntime"] <= OUTPUT_TOLERANCE
        and report["max_coordinate_diff_px_vs_opencv"] <= BOX_PX
        and report["max_score_diff_vs_opencv"] <= SCORE
    )
    print(json.dumps(report | {"converter": versions, "passed": passed}, indent=2))
    if not passed:
        print("parity failed: nothing shipped", file=sys.stderr)
        return 1
    if args.no_ship:
        return 0
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    TARGET.write_bytes(flatbuffer)
    onnx_card = json.loads(DEFAULT_FACE_MODEL.with_suffix(".json").read_text())
    card_path = TARGET.with_suffix(".json")
    card = {
        "file": TARGET.name,
        "sha256": hashlib.sha256(flatbuffer).hexdigest(),
        "size_bytes": len(flatbuffer),
        "made_from": f"{DEFAULT_FACE_MODEL.name} (sha256 {onnx_card['sha256'][:8]}...), float32, no quantization",
        "input": "(1, H, W, 3) float32 BGR 0-255, H and W free (multiples of 32: model_export.yunet.input_image pads as "
        "FaceDetectorYN does); LiteRT resizes the input to each image",
        "outputs": "the ONNX model's twelve, by name (autocrop.yunet.OUTPUT_NAMES), rows in the same order",
        "runtime": "ai-edge-litert (model_export.yunet.LiteRTYuNet: the same decode and NMS as onnxruntime's runtime)",
        "converter": versions,
        "parity": report,
        "command": "python -m model_export.yunet --converter /tmp/yunet-export/bin/python",
        "commit": git_commit(),
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
