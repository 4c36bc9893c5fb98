"""Saliency inference, the shipped model side by side with an earlier one, in one run.

    python benchmarks/bench_saliency.py [--baseline-rev a0ecc1f] [--baseline FILE] [--repeats 200]

One core (the process is pinned), LiteRT with one thread, the shipped input size; the two
interpreters alternate call by call so both see the same machine load. The earlier model is
read from git (`git show REV:layers/autocrop/models/saliency.tflite`) unless a file is given.
Prints median and p90 per model; the figures are compared within one run, never across runs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

MODEL_PATH = "layers/autocrop/models/saliency.tflite"
#: The last commit with the fine-tuned single-prior model (before the per-dataset-prior experiments).
DEFAULT_BASELINE_REV = "a0ecc1f"


def baseline_file(rev: str, folder: Path) -> Path:
    path = folder / f"saliency_{rev}.tflite"
    path.write_bytes(subprocess.run(["git", "show", f"{rev}:{MODEL_PATH}"], capture_output=True, check=True).stdout)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline-rev", default=DEFAULT_BASELINE_REV)
    parser.add_argument("--baseline", type=Path)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})
    from autocrop.saliency import TFLiteModel

    with tempfile.TemporaryDirectory() as tmp:
        old = args.baseline or baseline_file(args.baseline_rev, Path(tmp))
        models = {
            "shipped": TFLiteModel(MODEL_PATH, num_threads=1),
            f"earlier ({args.baseline or args.baseline_rev})": TFLiteModel(old, num_threads=1),
        }
        sizes = {
            "shipped": Path(MODEL_PATH).stat().st_size,
            f"earlier ({args.baseline or args.baseline_rev})": old.stat().st_size,
        }
        x = np.random.default_rng(0).uniform(0, 255, models["shipped"].input_shape).astype(np.float32)
        times: dict[str, list[float]] = {name: [] for name in models}
        for m in models.values():  # warm-up
            for _ in range(5):
                m(x)
        for _ in range(args.repeats):
            for name, m in models.items():
                t = time.perf_counter()
                m(x)
                times[name].append((time.perf_counter() - t) * 1e3)
    out = {
        name: {"median_ms": float(np.median(v)), "p90_ms": float(np.percentile(v, 90)), "size_bytes": sizes[name]}
        for name, v in times.items()
    }
    print("| model | median ms | p90 ms | size MB |")
    print("|---|---|---|---|")
    for name, v in out.items():
        print(f"| {name} | {v['median_ms']:.2f} | {v['p90_ms']:.2f} | {v['size_bytes'] / 1e6:.2f} |")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
