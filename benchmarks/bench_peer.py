"""The whole job against smartcrop.js on sharp, the same photos both ways, interleaved in one run.

    python benchmarks/bench_peer.py [--repeats 7] [--json out.json] [--no-two-cores]

The peer is smartcrop.js 2.0.5 on sharp 0.34.5 (libvips 8.17), pinned in
benchmarks/peer/package.json and installed from npm on first use (`npm ci`). It runs as
smartcrop-sharp 2.0.8 runs it (peer/peer.js carries smartcrop-sharp's image operations: its
own peer range, sharp ^0.32, would not take sharp 0.34): one `smartcrop.crop` per ratio, then
each box extracted at full resolution and encoded as JPEG q85 with sharp.

Both sides get the photo's bytes in memory and are timed inside their own process (the engine
with perf_counter around the call, the peer with process.hrtime around its promise chain),
so neither pays the other's IPC. One core: this process and the Node.js worker are pinned to
the same CPU, VIPS_CONCURRENCY=1, one OpenCV/LiteRT/onnxruntime thread, `render_crops(threads=1)`. Then,
unless --no-two-cores, the same on two cores (Lambda grants a function one vCPU's worth of
time at 1,769 MB and two at 3,538 MB): the
engine with two threads for onnxruntime (YuNet), LiteRT (saliency) and the encoding, the peer with libvips concurrency 2 and its four analyses,
then its four crops, run at once (Promise.all), as a user with two cores would write it.

Per photo and round, in turn: engine boxes only; peer boxes only; engine boxes + four
full-resolution JPEG crops (one decode, `render_crops`); peer boxes + crops; and on every
third round the engine's previous path (one full decode per crop, `render_crop` per ratio,
what the S3 function did before), for the record; with --also-opencv, the engine's boxes
with YuNet on OpenCV's DNN module too (its fallback runtime). Medians over photos and rounds,
by group (few-face photos; crowds: EyeCrowd's photos named in bench_engine.EYECROWD_CROWDS);
the ratios engine / peer are printed and written with --json.
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
from functools import lru_cache
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "AUTOCROP_THREADS"):
    os.environ[_var] = "1"

from bench_engine import RATIOS, upload_photos  # noqa: E402

PEER_DIR = Path(__file__).resolve().parent / "peer"
#: Output sizes the peer is asked for (smartcrop.js takes the ratio from them and crops the
#: largest box of that ratio, as the engine does).
PEER_SIZES = {"1:1": (1080, 1080), "16:9": (1920, 1080), "4:5": (1080, 1350), "9:16": (1080, 1920)}
QUALITY = 85
ENGINE_BOXES, PEER_BOXES = "autoCropper, boxes", "smartcrop.js + sharp, boxes"
ENGINE_JOB, PEER_JOB = "autoCropper, boxes + 4 crops", "smartcrop.js + sharp, boxes + 4 crops"
ENGINE_BEFORE = "autoCropper before (a decode per crop), boxes + 4 crops"
ENGINE_BOXES_OPENCV = "autoCropper, boxes, YuNet on OpenCV's DNN (the fallback runtime)"


def install_peer() -> Path:
    """node_modules of the pinned peer, installed with `npm ci` when missing."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise SystemExit("bench_peer needs Node.js and npm (the peer is smartcrop.js on sharp)")
    if not (PEER_DIR / "node_modules" / "sharp").is_dir():
        print("installing the peer (npm ci in benchmarks/peer)...", file=sys.stderr)
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=PEER_DIR, check=True)
    return PEER_DIR


class Peer:
    """The Node.js worker (peer/peer.js): one JSON request and answer per line."""

    def __init__(self, cpus: set[int], concurrency: int):
        self.parallel = concurrency > 1
        env = {**os.environ, "VIPS_CONCURRENCY": str(concurrency), "UV_THREADPOOL_SIZE": str(max(4, concurrency))}
        cpu_list = ",".join(str(c) for c in sorted(cpus))
        self.proc = subprocess.Popen(
            ["taskset", "-c", cpu_list, "node", str(PEER_DIR / "peer.js")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        self.hello = self._read()

    def _read(self) -> dict:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the peer worker exited")
        return json.loads(line)

    def run(self, path: Path, crops: bool) -> dict:
        assert self.proc.stdin is not None
        request = {
            "path": str(path), "ratios": [PEER_SIZES[r] for r in RATIOS], "crops": crops, "quality": QUALITY,
            "parallel": self.parallel,
        }  # fmt: skip
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        answer = self._read()
        if "error" in answer:
            raise RuntimeError(f"peer failed on {path}: {answer['error']}")
        return answer

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)


def engine_job(data: bytes, threads: int, crops: bool, opencv_faces: bool = False) -> tuple[float, list]:
    """ms for the engine's boxes (and, with `crops`, the four full-resolution JPEGs); the
    saliency interpreter and OpenCV's pool (set by `measure`) run `threads` threads.
    `opencv_faces`: YuNet on cv2.FaceDetectorYN (the engine's fallback runtime) instead."""
    from autocrop import CropOptions, RenderRequest, render_crops
    from autocrop.engine import analyse_image, decode_for
    from autocrop.faces import load_face_detector
    from autocrop.saliency import load_saliency

    start = time.perf_counter()
    options = CropOptions(ratios=RATIOS)
    detector = opencv_detector() if opencv_faces else load_face_detector(num_threads=threads)
    result = analyse_image(
        decode_for(data, options), options, saliency=load_saliency(num_threads=threads), detector=detector
    )
    out = []
    if crops:
        out = render_crops(data, [RenderRequest(c.box, quality=QUALITY) for c in result.crops], threads=threads)
    return (time.perf_counter() - start) * 1000, [(c.box, o) for c, o in zip(result.crops, out)]


@lru_cache(maxsize=1)
def opencv_detector():  # type: ignore[no-untyped-def]
    from autocrop.faces import OpenCVYuNetDetector

    return OpenCVYuNetDetector()


def engine_before(data: bytes) -> float:
    """ms for the previous path: boxes, then one full decode per crop (`render_crop` per ratio)."""
    from autocrop import CropOptions, analyse, render_crop

    start = time.perf_counter()
    result = analyse(data, CropOptions(ratios=RATIOS))
    for c in result.crops:
        render_crop(data, c.box, quality=QUALITY)
    return (time.perf_counter() - start) * 1000


def measure(
    photos: dict[str, tuple[str, Path, bytes]], repeats: int, cpus: set[int], threads: int, opencv: bool = False
) -> tuple[dict, dict]:
    """Medians per group and method, every method interleaved photo by photo."""
    import cv2

    os.sched_setaffinity(0, cpus)
    cv2.setNumThreads(threads)
    peer = Peer(cpus, concurrency=threads)
    runs: dict[tuple[str, str], list[float]] = {}
    megapixels: dict[tuple[str, str], list[float]] = {}
    try:
        for _group, path, data in photos.values():  # warm-up: models, first-call costs, the peer's JIT
            engine_job(data, threads, crops=True)
            peer.run(path, crops=True)
        for round_ in range(repeats):
            for group, path, data in photos.values():
                ms, _ = engine_job(data, threads, crops=False)
                runs.setdefault((group, ENGINE_BOXES), []).append(ms)
                if opencv:
                    ms, _ = engine_job(data, threads, crops=False, opencv_faces=True)
                    runs.setdefault((group, ENGINE_BOXES_OPENCV), []).append(ms)
                runs.setdefault((group, PEER_BOXES), []).append(peer.run(path, crops=False)["ms"])
                ms, written = engine_job(data, threads, crops=True)
                runs.setdefault((group, ENGINE_JOB), []).append(ms)
                megapixels.setdefault((group, ENGINE_JOB), []).append(sum(o.width * o.height for _, o in written) / 1e6)
                answer = peer.run(path, crops=True)
                runs.setdefault((group, PEER_JOB), []).append(answer["ms"])
                megapixels.setdefault((group, PEER_JOB), []).append(sum(b[2] * b[3] for b in answer["boxes"]) / 1e6)
                if round_ % 3 == 0 and threads == 1:
                    runs.setdefault((group, ENGINE_BEFORE), []).append(engine_before(data))
    finally:
        peer.close()
    table: dict[str, dict[str, dict[str, float]]] = {}
    for (group, method), values in runs.items():
        row = {"median_ms": statistics.median(values), "runs": len(values)}
        if (group, method) in megapixels:
            row["megapixels_encoded"] = statistics.median(megapixels[(group, method)])
        table.setdefault(group, {})[method] = row
    ratios = {
        group: {
            "boxes": rows[ENGINE_BOXES]["median_ms"] / rows[PEER_BOXES]["median_ms"],
            "boxes + 4 crops": rows[ENGINE_JOB]["median_ms"] / rows[PEER_JOB]["median_ms"],
        }
        for group, rows in table.items()
    }
    return table, {"peer": peer.hello, "ratios": ratios}


def print_table(title: str, table: dict, info: dict) -> None:
    print(
        f"\n{title} (peer: sharp {info['peer'].get('sharp')}, libvips {info['peer'].get('vips')}, "
        f"concurrency {info['peer'].get('concurrency')})"
    )
    print("| photos | method | median ms | MP encoded | runs |")
    print("|---|---|---|---|---|")
    for group, rows in table.items():
        for method, row in rows.items():
            mp = f"{row['megapixels_encoded']:.1f}" if "megapixels_encoded" in row else ""
            print(f"| {group} | {method} | {row['median_ms']:.1f} | {mp} | {row['runs']} |")
    for group, r in info["ratios"].items():
        print(f"{group}: autoCropper / peer = {r['boxes']:.2f}x (boxes), {r['boxes + 4 crops']:.2f}x (boxes + 4 crops)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7, help="rounds over every photo")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--no-two-cores", action="store_true", help="skip the two-core run")
    parser.add_argument(
        "--also-opencv",
        action="store_true",
        help="also time the engine's boxes with YuNet on OpenCV (its fallback runtime)",
    )
    args = parser.parse_args(argv)

    import cv2

    from autocrop.saliency import load_saliency

    install_peer()
    cv2.setNumThreads(1)
    load_saliency(num_threads=1)
    available = sorted(os.sched_getaffinity(0))
    one = {available[-1]}
    few, crowds = upload_photos()
    made = {**{n: ("few-face photos", d) for n, d in few.items()}, **{n: ("crowds", d) for n, d in crowds.items()}}
    results: dict[str, object] = {"cpus": available}
    with tempfile.TemporaryDirectory() as tmp:
        photos = {}
        for i, (name, (group, data)) in enumerate(made.items()):
            path = Path(tmp) / f"photo_{i}.jpg"
            path.write_bytes(data)
            photos[name] = (group, path, data)
        table, info = measure(photos, args.repeats, one, threads=1, opencv=args.also_opencv)
        results["one_core"] = {"table": table, **info}
        print_table(f"one core (CPU {min(one)}), 12 MP JPEGs, four ratios, JPEG q{QUALITY}", table, info)
        if not args.no_two_cores and len(available) >= 2:
            two = set(available[-2:])
            table, info = measure(photos, max(3, args.repeats // 2), two, threads=2)
            results["two_cores"] = {"table": table, **info}
            print_table(
                f"two cores (CPUs {sorted(two)}): engine threads 2, peer concurrency 2 + Promise.all", table, info
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
