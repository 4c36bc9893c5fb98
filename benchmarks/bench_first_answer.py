"""A process's first answer, stage by stage: fresh process, one thread, one 12 MP JPEG, four ratios.

    python benchmarks/bench_first_answer.py [--repeats 7] [--json out.json]

Each run spawns a fresh Python pinned to one CPU (AUTOCROP_THREADS=1), with the page cache
warm and the bytecode written (a first, untimed run reads every file and writes any missing
.pyc, as the deployed layer ships them), and times, in that process: interpreter start
(spawn to the script's first line), numpy + OpenCV + Pillow (what any analysis needs),
`import autocrop`, the saliency model load (LiteRT), the face model load (onnxruntime), and
the first `analyse` of the astronaut photo as a camera-like 12 MP JPEG with the engine's own
stage timings (decode, saliency, faces, candidates). Start to first result is spawn to the
moment the result exists (the child's clock, the same wall clock as the spawn's); the
interpreter's exit after it (unloading numpy, OpenCV, the runtimes) is no part of the
answer and is shown apart. Wall time (perf_counter) and, beside it, the process's CPU time
(process_time: the work itself, little moved by other processes on a busy machine). Medians
over runs.

    python benchmarks/bench_first_answer.py --layer

runs the child as Lambda does: the runtime's interpreter (python3.13, which must be on
PATH, or --python) on the layer's own files (an x86_64 build of infra/build_layer.py with the same pins,
in build/bench-layer/, with bytecode as the layer ships it) first on the path, as Lambda puts
/opt/python, and the interpreter's own site-packages after it, as the runtime's: the
development virtualenv carries packages the layer leaves out (defusedxml, which Pillow
imports when it is there; setuptools' distutils hook), so the layer's figure is the
deployed one and the plain run is the development one.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
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
result_at = time.time()
lap("first analyse")
print(json.dumps({"rows": rows, "stages": result.timings, "crops": len(result.crops), "result_at": result_at,
                  "python": sys.version.split()[0]}))
"""


@dataclass(frozen=True)
class Child:
    """How the child runs: its interpreter and what is on its path."""

    python: str = sys.executable
    path: str | None = None  # PYTHONPATH (the layer's python/); None: the interpreter's own

    def env(self) -> dict[str, str]:
        env = {**os.environ, "AUTOCROP_THREADS": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # bytecode as a deployed layer has it (see infra/build_layer.py)
        if self.path is not None:
            env["PYTHONPATH"] = self.path
            env.pop("VIRTUAL_ENV", None)
        return env


def run_once(photo: Path, cpu: int, child: Child) -> tuple[float, float, dict]:
    """(spawn to result, spawn to exit, the child's answer), seconds."""
    spawned_wall, start = time.time(), time.perf_counter()
    done = subprocess.run(
        ["taskset", "-c", str(cpu), child.python, "-c", CHILD, str(photo), repr(spawned_wall), ",".join(RATIOS)],
        capture_output=True, text=True, check=True, env=child.env(),
    )  # fmt: skip
    to_exit = time.perf_counter() - start
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["crops"] == len(RATIOS)
    return answer["result_at"] - spawned_wall, to_exit, answer


def layer_child(build_dir: Path, python: str | None = None) -> Child:
    """The runtime's interpreter on an x86_64 build of the layer (built once, then reused
    until the layer's inputs change), bytecode compiled as the shipped layer's is."""
    from infra import build_layer as layer

    python = python or shutil.which(f"python{layer.PYTHON_VERSION}")
    if python is None or subprocess.run([python, "-c", ""], capture_output=True).returncode:
        raise SystemExit(f"--layer needs python{layer.PYTHON_VERSION} (the Lambda runtime's): on PATH or --python")
    inputs = layer.inputs_digest("x86_64", layer.PYTHON_VERSION, layer.runtime_requirements(), layer.installed_pins())
    if layer.stale_reason(build_dir, "x86_64", inputs) is not None:
        layer.build_layer("x86_64", build_dir, None, layer.PYTHON_VERSION, bytecode=False)
    target = build_dir / "layer-x86_64" / "python"
    subprocess.run(
        [python, "-m", "compileall", "-q", "--invalidation-mode", "unchecked-hash", str(target)],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    return Child(python=python, path=str(target))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--layer", action="store_true", help="python3.13 on an x86_64 build of the layer")
    parser.add_argument("--layer-dir", type=Path, default=Path(__file__).resolve().parents[1] / "build" / "bench-layer")
    parser.add_argument("--python", help="the interpreter for --layer (default: python3.13 on PATH)")
    args = parser.parse_args(argv)
    child = layer_child(args.layer_dir, args.python) if args.layer else Child()

    from training.uploads import camera_like_jpeg

    cpu = max(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as tmp:
        photo = Path(tmp) / "astronaut_12mp.jpg"
        photo.write_bytes(camera_like_jpeg(package_photos()["astronaut"], TWELVE_MP, 0))
        run_once(photo, cpu, child)  # warms the page cache (and writes any missing bytecode)
        runs = [run_once(photo, cpu, child) for _ in range(args.repeats)]
    totals = [t for t, _, _ in runs]
    exits = [e for _, e, _ in runs]
    names = [r[0] for r in runs[0][2]["rows"]]
    wall = {n: statistics.median(a["rows"][i][1] * 1000 for _, _, a in runs) for i, n in enumerate(names)}
    cpu_ms = {n: statistics.median(a["rows"][i][2] * 1000 for _, _, a in runs) for i, n in enumerate(names)}
    stages = {k: statistics.median(a["stages"][k] for _, _, a in runs) for k in runs[0][2]["stages"]}
    where = f"the layer ({child.path})" if child.path else "this environment"
    print(
        f"fresh process on CPU {cpu}, one thread, 12 MP JPEG, {len(RATIOS)} ratios; python "
        f"{runs[0][2]['python']} on {where}; medians of {args.repeats}"
    )
    print("| stage | wall ms | CPU ms |")
    print("|---|---|---|")
    for n in names:
        print(f"| {n} | {wall[n]:.0f} | {cpu_ms[n]:.0f} |")
    for k, v in stages.items():
        print(f"| first analyse: {k} | {v:.0f} | |")
    print(
        f"start to first result: {statistics.median(totals):.3f} s (wall), "
        f"{sum(cpu_ms.values()) / 1000:.3f} s (CPU, summed medians); "
        f"the process exits {statistics.median(e - t for t, e in zip(totals, exits)):.3f} s later"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "cpu": cpu,
                    "wall_ms": wall,
                    "cpu_ms": cpu_ms,
                    "analyse_stages_ms": stages,
                    "python": runs[0][2]["python"],
                    "layer": child.path,
                    "start_to_first_result_s": statistics.median(totals),
                    "start_to_exit_s": statistics.median(exits),
                    "all_start_to_first_result_s": totals,
                },
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
