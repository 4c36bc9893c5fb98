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
    """The model shipped at `rev`, with its card and any ensemble member it names, in `folder`."""
    models = Path(MODEL_PATH).parent

    def show(name: str, required: bool) -> bytes:
        done = subprocess.run(["git", "show", f"{rev}:{models / name}"], capture_output=True, check=required)
        return done.stdout if done.returncode == 0 else b""

    path = folder / Path(MODEL_PATH).name
    path.write_bytes(show(path.name, True))
    card = show(path.with_suffix(".json").name, False)
    if card:
        path.with_suffix(".json").write_bytes(card)
        for entry in (json.loads(card).get("ensemble") or {}).get("members", []):
            member = folder / entry["file"]
            member.write_bytes(show(member.name, True))
            member.with_suffix(".json").write_bytes(show(member.with_suffix(".json").name, True))
    return path


def passes(path: Path) -> tuple[list, int]:
    """(one (runner, mirrored?) per network pass one photo costs, the bytes of every file): the
    engine's own predictor says which (`LiteRTSaliency.passes`: flip and members included)."""
    from autocrop.saliency import LiteRTSaliency

    runners = LiteRTSaliency(path, num_threads=1).passes()
    return runners, sum(Path(f).stat().st_size for f in {runner.path for runner, _ in runners})


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
