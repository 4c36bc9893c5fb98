"""YuNet on onnxruntime against YuNet on LiteRT (the converted model), interleaved, one thread.

    python benchmarks/bench_face_runtime.py [--repeats 9] [--json out.json]

Three measurements, the two runtimes alternating in every loop so both see the same machine
load, CPU time (`time.process_time`: with one thread, the work itself), medians:
- load: a fresh process per run, pinned to one CPU, with LiteRT already imported and the
  saliency model loaded (as the engine has them when the face model loads); the time to build
  the detector (onnxruntime: its import and session; LiteRT: the interpreter);
- inference: `detect` (padding, network, decoding, NMS) on the astronaut photo at 504x378,
  1008x756 and 252x189 (padded 512x384, 1024x768, 256x192): each size repeated ("same size")
  and the three in turn, as the engine's passes call it ("sizes in turn": LiteRT resizes its
  input, and with it XNNPACK's buffers, whenever the size changes);
- LiteRT with an interpreter per padded input size (the 4 last used; "litert-per-size"),
  which resizes nothing when a size recurs, at ~74 MB of buffers for a 1024x768 one;
- the engine's face stage (`faces.face_passes`: every pass, small-face tiles included) on the
  benchmarks' 12 MP few-face photos and crowds, and the first answer (a fresh process, one
  12 MP JPEG, four ratios: imports, model loads and the first analysis, as
  bench_first_answer.py) with each runtime.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "AUTOCROP_THREADS"):
    os.environ[_var] = "1"

from bench_engine import RATIOS, TWELVE_MP, package_photos, pin_to_one_core, upload_photos  # noqa: E402

RUNTIMES = ("onnxruntime", "litert", "litert-per-size")
#: (width, height) of the engine's passes on a 12 MP upload: whole image, 2x, half size.
SIZES = ((504, 378), (1008, 756), (252, 189))

#: A face detector on either runtime, as the engine calls it: rows (x, y, w, h, score).
DETECTOR = """
import pathlib, sys
import numpy as np
import autocrop
from autocrop.faces import DEFAULT_FACE_MODEL, TOP_K
# model_export (the LiteRT detector; its model is made by python -m model_export.yunet)
sys.path.insert(0, str(pathlib.Path(autocrop.__file__).resolve().parents[2]))
from model_export.yunet import TARGET as TFLITE_MODEL
class Detector:
    def __init__(self, runtime):
        if runtime == "onnxruntime":
            from autocrop.yunet import OnnxYuNet
            self.net, self.name = OnnxYuNet(DEFAULT_FACE_MODEL, 0.3, TOP_K, 1), "yunet-2023mar"
        else:
            from model_export.yunet import LiteRTYuNet
            self.net = LiteRTYuNet(TFLITE_MODEL, 0.3, TOP_K, 1)
            self.name = "yunet-2023mar-litert"
        self.per_size = {} if runtime == "litert-per-size" else None
    def detect(self, bgr, score_threshold):
        net = self.net
        if self.per_size is not None:  # an interpreter per padded input size, the 4 last used
            from model_export.yunet import LiteRTYuNet
            from autocrop.yunet import padded_size
            key = padded_size(bgr.shape[1], bgr.shape[0])
            net = self.per_size.pop(key, None) or LiteRTYuNet(TFLITE_MODEL, 0.3, TOP_K, 1)
            self.per_size[key] = net
            while len(self.per_size) > 4:
                self.per_size.pop(next(iter(self.per_size)))
        return np.ascontiguousarray(net.detect(bgr, score_threshold)[:, [0, 1, 2, 3, 14]], dtype=np.float32)
"""

CHILD = """
import json, sys, time
rows = {"interpreter start (wall)": (time.time() - float(sys.argv[2])) * 1000}
c = time.process_time()
def lap(name):
    global c
    now = time.process_time()
    rows[name] = (now - c) * 1000
    c = now
import numpy, cv2, PIL.Image
import autocrop
from autocrop.engine import analyse_image, decode_for
lap("imports: numpy, cv2, PIL, autocrop")
from autocrop.saliency import load_saliency
load_saliency()
lap("saliency model load (LiteRT)")
exec(sys.argv[4])
detector = Detector(sys.argv[5])
lap("face model load")
options = autocrop.CropOptions(ratios=tuple(sys.argv[3].split(",")))
result = analyse_image(decode_for(open(sys.argv[1], "rb").read(), options), options, detector=detector)
lap("first analyse")
rows["total CPU after the interpreter's start"] = sum(v for k, v in rows.items() if k != "interpreter start (wall)")
print(json.dumps({"rows": rows, "stages": result.timings, "crops": len(result.crops), "models": result.models}))
"""


def fresh_process(photo: Path, cpu: int, runtime: str) -> dict:
    """One first answer in a new Python pinned to `cpu`: CPU ms per step."""
    env = {**os.environ, "AUTOCROP_THREADS": "1"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    done = subprocess.run(
        ["taskset", "-c", str(cpu), sys.executable, "-c", CHILD, str(photo), repr(time.time()), ",".join(RATIOS),
         DETECTOR, runtime], capture_output=True, text=True, env=env,
    )  # fmt: skip
    if done.returncode:
        raise RuntimeError(f"the {runtime} child failed:\n{done.stderr[-3000:]}")
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["crops"] == len(RATIOS)
    return answer


def median(values: list[float]) -> float:
    return round(statistics.median(values), 2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    import cv2

    from autocrop import CropOptions
    from autocrop.engine import decode_for, saliency_pass
    from autocrop.faces import face_passes
    from autocrop.saliency import load_saliency
    from training.uploads import camera_like_jpeg

    cpu = pin_to_one_core()
    namespace: dict = {}
    exec(DETECTOR, namespace)
    detectors = {r: namespace["Detector"](r) for r in RUNTIMES}
    clock = time.process_time
    out: dict = {"cpu": cpu, "repeats": args.repeats}

    # Inference: each size repeated, then the sizes in turn.
    bgr = cv2.cvtColor(package_photos()["astronaut"], cv2.COLOR_RGB2BGR)
    images = {s: cv2.resize(bgr, s, interpolation=cv2.INTER_AREA if s[0] < 512 else cv2.INTER_LINEAR) for s in SIZES}
    same: dict = {}
    turn: dict = {}
    for _ in range(args.repeats):
        for runtime, detector in detectors.items():
            for size, image in images.items():
                detector.detect(image, 0.6)  # this size once first: the repeats are same-size calls
                for _ in range(3):
                    t = clock()
                    detector.detect(image, 0.6)
                    same.setdefault((runtime, size), []).append((clock() - t) * 1000)
            for size, image in images.items():
                t = clock()
                detector.detect(image, 0.6)
                turn.setdefault((runtime, size), []).append((clock() - t) * 1000)
    out["inference_ms"] = {
        f"{w}x{h}": {
            r: {"same size": median(same[r, (w, h)]), "sizes in turn": median(turn[r, (w, h)])} for r in RUNTIMES
        }
        for w, h in SIZES
    }

    # The engine's face stage on 12 MP uploads.
    options = CropOptions(ratios=RATIOS)
    predictor = load_saliency(num_threads=1)
    few, crowds = upload_photos()
    groups = {"few-face photos": few, "crowds": crowds}
    prepared = {g: [] for g in groups}
    for group, photos in groups.items():
        for data in photos.values():
            decoded = decode_for(data, options)
            prepared[group].append((decoded.rgb, saliency_pass(decoded.rgb, predictor).saliency))
    stage: dict = {}
    for _ in range(max(1, args.repeats // 3)):
        for group, items in prepared.items():
            for rgb, saliency in items:
                for runtime, detector in detectors.items():
                    t = clock()
                    face_passes(rgb, saliency, detector, options)
                    stage.setdefault((runtime, group), []).append((clock() - t) * 1000)
    out["face_stage_ms"] = {g: {r: median(stage[r, g]) for r in RUNTIMES} for g in groups}

    # Load and first answer: fresh processes, the runtimes alternating.
    with tempfile.TemporaryDirectory() as tmp:
        photo = Path(tmp) / "astronaut_12mp.jpg"
        photo.write_bytes(camera_like_jpeg(package_photos()["astronaut"], TWELVE_MP, 0))
        for runtime in RUNTIMES:
            fresh_process(photo, cpu, runtime)  # warms the page cache and the bytecode
        runs: dict = {r: [] for r in RUNTIMES}
        for _ in range(args.repeats):
            for runtime in RUNTIMES:
                runs[runtime].append(fresh_process(photo, cpu, runtime))
    steps = list(runs[RUNTIMES[0]][0]["rows"])
    out["first_answer_cpu_ms"] = {s: {r: median([a["rows"][s] for a in runs[r]]) for r in RUNTIMES} for s in steps}
    out["first_analyse_faces_ms"] = {r: median([a["stages"]["faces"] for a in runs[r]]) for r in RUNTIMES}

    print(f"one thread, CPU {cpu}, CPU ms, medians ({args.repeats} repeats)")
    print("| measure | " + " | ".join(RUNTIMES) + " |")
    print("|---" * (len(RUNTIMES) + 1) + "|")
    for size, by in out["inference_ms"].items():
        for kind in ("same size", "sizes in turn"):
            print(f"| detect {size}, {kind} | " + " | ".join(str(by[r][kind]) for r in RUNTIMES) + " |")
    for group, by in out["face_stage_ms"].items():
        print(f"| face stage, {group} | " + " | ".join(str(by[r]) for r in RUNTIMES) + " |")
    for s, by in out["first_answer_cpu_ms"].items():
        print(f"| first answer: {s} | " + " | ".join(str(by[r]) for r in RUNTIMES) + " |")
    print(
        "| first answer: its face stage | " + " | ".join(str(out["first_analyse_faces_ms"][r]) for r in RUNTIMES) + " |"
    )
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
