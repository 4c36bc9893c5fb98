"""Where a crowd photo's time goes, stage by stage, on one core.

    python benchmarks/bench_crowd_stages.py [--repeats 5] [--json out.json]

The photos are the peer benchmark's (`bench_engine.upload_photos`): EyeCrowd's most crowded
training photos made into 12 MP camera-like JPEGs, and the few-face package photos for
comparison. One thread everywhere (OpenCV, LiteRT, the face runtime), the process pinned to
one CPU. Each stage is the engine's own function, called in the engine's order on the same
values, so the table adds up to the engine's analysis: decode; saliency; each face pass
(whole image, half size, the small-face pass: its tiles and their total); merging; the
candidates' shared preparation (face-evened map, integral image); per ratio the windows,
their measurement (face rule) and ranking. Medians over photos and repeats, per group.

The clock is the process's CPU time by default (`time.process_time`: with one thread, the
work itself, little moved by other processes on a busy machine); `--clock wall` for
perf_counter.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "AUTOCROP_THREADS"):
    os.environ[_var] = "1"

from bench_engine import RATIOS, pin_to_one_core, upload_photos  # noqa: E402


def stages_of(
    data: bytes,
    options,
    predictor,
    detector,
    ranker,
    whole_small_pass: bool = False,  # type: ignore[no-untyped-def]
    clock=time.perf_counter,
) -> dict[str, float]:
    """ms per stage for one photo, calling the engine's stages in the engine's order."""
    from autocrop import faces as face_stage
    from autocrop.candidates import SaliencyIndex, measure_windows, propose_windows
    from autocrop.engine import boosted, decode_for, faces_to_full, saliency_pass
    from autocrop.face_rule import even_face_saliency, face_report
    from autocrop.ranking import PhotoContext, rank_candidates

    ms: dict[str, float] = {}

    def lap(name: str, start: float) -> float:
        now = clock()
        ms[name] = ms.get(name, 0.0) + (now - start) * 1000
        return now

    t0 = t = clock()
    decoded = decode_for(data, options)
    t = lap("decode", t)
    sal_pass = saliency_pass(decoded.rgb, predictor)
    t = lap("saliency", t)
    placed_by = None if whole_small_pass else sal_pass.saliency
    found = face_stage.face_passes(decoded.rgb, placed_by, detector, options, timings=ms, clock=clock)
    t = clock()
    faces_px = face_stage.clip_boxes(
        face_stage.merge_detections(found, options.face_nms_iou), *decoded.rgb.shape[1::-1]
    )
    t = lap("faces: merge", t)
    faces_full = faces_to_full(faces_px, decoded)
    even = even_face_saliency(sal_pass.saliency, faces_full, decoded.width, decoded.height, options)
    index = SaliencyIndex.build(boosted(even, options.boost), decoded.width, decoded.height)
    photo = PhotoContext.build(decoded.width, decoded.height, index, faces_full, sal_pass.features, sal_pass.letterbox)
    t = lap("candidates: evened map + index", t)
    w, h = decoded.width, decoded.height
    for ratio in options.ratio_values:
        windows = propose_windows(w, h, ratio, options)
        t = lap("per ratio: propose windows", t)
        features = measure_windows(windows, photo.index, photo.faces, w, h, options, heads_of_allowed_only=True)
        t = lap("per ratio: measure (face rule)", t)
        ranking = rank_candidates(ranker, photo, windows, features, options, limit=60)
        best = int(ranking.order[0])
        face_report(
            (int(windows.x[best]), int(windows.y[best]), int(windows.w[best]), int(windows.h[best])),
            photo.faces,
            w,
            h,
            options,
            windows.w.max(),
            windows.h.max(),
        )
        t = lap("per ratio: rank + report", t)
    ms["total"] = (clock() - t0) * 1000
    ms["faces found"] = float(len(faces_px))
    return ms


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--crowds-only", action="store_true")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="cpu")
    parser.add_argument("--opencv", action="store_true", help="YuNet on cv2.FaceDetectorYN (the fallback runtime)")
    parser.add_argument(
        "--whole-small-pass", action="store_true", help="the small-face pass over the whole image instead of its tiles"
    )
    args = parser.parse_args(argv)

    import cv2

    from autocrop import CropOptions
    from autocrop.faces import OpenCVYuNetDetector, load_face_detector
    from autocrop.ranker_choice import select_ranker
    from autocrop.saliency import load_saliency

    cpu = pin_to_one_core()
    cv2.setNumThreads(1)
    few, crowds = upload_photos()
    groups = {"crowds": crowds} if args.crowds_only else {"crowds": crowds, "few-face photos": few}
    options = CropOptions(ratios=RATIOS)
    predictor, ranker = load_saliency(num_threads=1), select_ranker(options)
    detector = OpenCVYuNetDetector() if args.opencv else load_face_detector(num_threads=1)
    whole, clock = args.whole_small_pass, CLOCKS[args.clock]
    for photos in groups.values():  # warm-up
        for data in photos.values():
            stages_of(data, options, predictor, detector, ranker, whole, clock)
    rows: dict[str, list[dict[str, float]]] = {g: [] for g in groups}
    for _ in range(args.repeats):
        for group, photos in groups.items():
            for data in photos.values():
                rows[group].append(stages_of(data, options, predictor, detector, ranker, whole, clock))
    out: dict[str, dict[str, float]] = {}
    for group, runs in rows.items():
        names = list(dict.fromkeys(k for r in runs for k in r))
        out[group] = {k: statistics.median(r.get(k, 0.0) for r in runs) for k in names}
    print(
        f"one core (CPU {cpu}), {args.clock} clock, 12 MP JPEGs, four ratios, face runtime: {detector.name}, small-face pass: {'whole image' if whole else 'tiles'}; "
        f"medians over photos x {args.repeats} repeats; {', '.join(f'{g}: {len(p)} photos' for g, p in groups.items())}"
    )
    print("| stage | " + " | ".join(f"{g} ms" for g in out) + " |")
    print("|---" * (len(out) + 1) + "|")
    for name in dict.fromkeys(k for g in out.values() for k in g):
        cells = [f"{g.get(name, 0.0):.1f}" for g in out.values()]
        print(f"| {name} | " + " | ".join(cells) + " |")
    if args.json:
        args.json.write_text(json.dumps({"cpu": cpu, "detector": detector.name, "stages_ms": out}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
