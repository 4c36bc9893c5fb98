"""Saliency inference, the shipped model side by side with an earlier one, in one run.

    python benchmarks/bench_saliency.py [--baseline-rev a0ecc1f] [--baseline FILE] [--repeats 200]

One core (the process is pinned), LiteRT with one thread, the shipped input size; the two
interpreters alternate call by call so both see the same machine load. A model whose card
names ensemble members (or test-time flipping) is timed with every pass one photo costs. The
earlier model is read from git (`git show REV:layers/autocrop/models/saliency.tflite` and its
card) unless a file is given. Prints median and p90 per model; the figures are compared within
one run, never across runs.
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
#: The last commit with the one-network model (fine-tuned, single prior) before the ensemble.
DEFAULT_BASELINE_REV = "27bfb5f"


def baseline_file(rev: str, folder: Path) -> Path:
    path = folder / f"saliency_{rev}.tflite"
    for suffix in (".tflite", ".json"):
        blob = subprocess.run(
            ["git", "show", f"{rev}:{MODEL_PATH[: -len('.tflite')]}{suffix}"],
            capture_output=True,
            check=suffix == ".tflite",
        ).stdout
        path.with_suffix(suffix).write_bytes(blob)
    return path


def passes(path: Path) -> tuple[list, int]:
    """(one (runner, mirrored?) per network pass one photo costs, the bytes of every file)."""
    from autocrop.saliency import TFLiteModel

    try:
        card = json.loads(path.with_suffix(".json").read_text())
    except (OSError, ValueError):
        card = {}
    runners = [(TFLiteModel(path, num_threads=1), False)]
    runners += [(runners[0][0], True)] if card.get("test_time_flip") else []
    size = path.stat().st_size
    for entry in (card.get("ensemble") or {}).get("members", []):
        member = path.parent / entry["file"]
        more, member_size = passes(member)  # the member's own card: its flip counts too
        runners += more
        size += member_size
    return runners, size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline-rev", default=DEFAULT_BASELINE_REV)
    parser.add_argument("--baseline", type=Path)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})
    with tempfile.TemporaryDirectory() as tmp:
        old = args.baseline or baseline_file(args.baseline_rev, Path(tmp))
        models, sizes = {}, {}
        for name, path in (("shipped", Path(MODEL_PATH)), (f"earlier ({args.baseline or args.baseline_rev})", old)):
            models[name], sizes[name] = passes(path)
        x = np.random.default_rng(0).uniform(0, 255, models["shipped"][0][0].input_shape).astype(np.float32)
        mirrored = np.ascontiguousarray(x[:, :, ::-1])
        times: dict[str, list[float]] = {name: [] for name in models}

        def run(runners: list) -> None:
            for runner, flip in runners:
                runner(mirrored if flip else x)

        for runners in models.values():  # warm-up
            for _ in range(5):
                run(runners)
        for _ in range(args.repeats):
            for name, runners in models.items():
                t = time.perf_counter()
                run(runners)
                times[name].append((time.perf_counter() - t) * 1e3)
    out = {
        name: {
            "median_ms": float(np.median(v)),
            "p90_ms": float(np.percentile(v, 90)),
            "size_bytes": sizes[name],
            "passes": len(models[name]),
        }
        for name, v in times.items()
    }
    print("| model | passes | median ms | p90 ms | size MB |")
    print("|---|---|---|---|---|")
    for name, v in out.items():
        print(f"| {name} | {v['passes']} | {v['median_ms']:.2f} | {v['p90_ms']:.2f} | {v['size_bytes'] / 1e6:.2f} |")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
