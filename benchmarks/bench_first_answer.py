"""A process's first answer, stage by stage: fresh process, one thread, one 12 MP JPEG, four ratios.

    python benchmarks/bench_first_answer.py [--repeats 7] [--json out.json]

Each run spawns a fresh Python pinned to one CPU (AUTOCROP_THREADS=1), with the page cache
warm and the bytecode written (a first, untimed run reads every file and writes any missing
.pyc, as the deployed layer ships them), and times, in that process: interpreter start
(spawn to the script's first line), numpy + OpenCV + Pillow (what any analysis needs),
`import autocrop`, the saliency model load (LiteRT), the face model load (onnxruntime), and
the first `analyse` of the astronaut photo as a camera-like 12 MP JPEG with the engine's own
stage timings (decode, saliency, faces, candidates). Start to first result is spawn to the
result. Wall time (perf_counter) and, beside it, the process's CPU time (process_time: the
work itself, little moved by other processes on a busy machine). Medians over runs.
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

from bench_engine import RATIOS, TWELVE_MP, package_photos  # noqa: E402

CHILD = """
import json, sys, time
rows = [("interpreter start", time.time() - float(sys.argv[2]), time.process_time())]
w, c = time.perf_counter(), time.process_time()
def lap(name):
    global w, c
    now_w, now_c = time.perf_counter(), time.process_time()
    rows.append((name, now_w - w, now_c - c))
    w, c = now_w, now_c
import numpy, cv2, PIL.Image
lap("import numpy, cv2, PIL")
import autocrop
lap("import autocrop")
from autocrop.saliency import load_saliency
load_saliency()
lap("saliency model load (LiteRT)")
from autocrop.faces import load_face_detector
detector = load_face_detector()
lap("face model load (" + detector.name + ")")
data = open(sys.argv[1], "rb").read()
result = autocrop.analyse(data, autocrop.CropOptions(ratios=tuple(sys.argv[3].split(","))))
lap("first analyse")
print(json.dumps({"rows": rows, "stages": result.timings, "crops": len(result.crops)}))
"""


def run_once(photo: Path, cpu: int) -> tuple[float, dict]:
    env = {**os.environ, "AUTOCROP_THREADS": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # bytecode as a deployed layer has it (see infra/build_layer.py)
    spawned_wall, start = time.time(), time.perf_counter()
    done = subprocess.run(
        ["taskset", "-c", str(cpu), sys.executable, "-c", CHILD, str(photo), repr(spawned_wall), ",".join(RATIOS)],
        capture_output=True, text=True, check=True, env=env,
    )  # fmt: skip
    total = time.perf_counter() - start
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["crops"] == len(RATIOS)
    return total, answer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    from training.uploads import camera_like_jpeg

    cpu = max(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as tmp:
        photo = Path(tmp) / "astronaut_12mp.jpg"
        photo.write_bytes(camera_like_jpeg(package_photos()["astronaut"], TWELVE_MP, 0))
        run_once(photo, cpu)  # warms the page cache (and writes any missing bytecode)
        runs = [run_once(photo, cpu) for _ in range(args.repeats)]
    totals = [t for t, _ in runs]
    names = [r[0] for r in runs[0][1]["rows"]]
    wall = {n: statistics.median(a["rows"][i][1] * 1000 for _, a in runs) for i, n in enumerate(names)}
    cpu_ms = {n: statistics.median(a["rows"][i][2] * 1000 for _, a in runs) for i, n in enumerate(names)}
    stages = {k: statistics.median(a["stages"][k] for _, a in runs) for k in runs[0][1]["stages"]}
    print(f"fresh process on CPU {cpu}, one thread, 12 MP JPEG, {len(RATIOS)} ratios; medians of {args.repeats}")
    print("| stage | wall ms | CPU ms |")
    print("|---|---|---|")
    for n in names:
        print(f"| {n} | {wall[n]:.0f} | {cpu_ms[n]:.0f} |")
    for k, v in stages.items():
        print(f"| first analyse: {k} | {v:.0f} | |")
    print(
        f"start to first result: {statistics.median(totals):.3f} s (wall), "
        f"{sum(cpu_ms.values()) / 1000:.3f} s (CPU, summed medians)"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "cpu": cpu,
                    "wall_ms": wall,
                    "cpu_ms": cpu_ms,
                    "analyse_stages_ms": stages,
                    "start_to_first_result_s": statistics.median(totals),
                },
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
