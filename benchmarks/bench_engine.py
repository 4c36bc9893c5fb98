"""Engine benchmark, side by side with smartcrop.py in the same run on the same photos.

    python benchmarks/bench_engine.py [--repeats 15] [--json out.json]

What it measures (everything on one core: the process is pinned to one CPU, OpenCV and
OpenMP use one thread, LiteRT runs with num_threads=1):
- box-only analysis of 12 MP JPEGs (4032x3024, camera-like noise) for four ratios, two
  groups interleaved in the same loop: few-face photos and crowds (`crowd_photos`):
  `autocrop.analyse` vs smartcrop.py 0.5 (`SmartCrop().crop` per ratio, its defaults,
  targets at the engine's analysis scale, 640 px). smartcrop.py runs two ways: as its
  README uses it (`Image.open`, a full decode, then its own prescale), and given the
  engine's own trick, the 1/8 DCT-scale JPEG decode (its fastest possible setup). Runs
  alternate so every method sees the same machine load; medians over photos and repeats.
- the learned ranker's cost: the same analysis with `ranker="composition"` and
  `ranker="learned"`, interleaved.
- process start to first result: `autocrop crop PHOTO --json` in a fresh process, from
  spawn to the first JSON line on stdout (median of 5).
- peak memory at 24 MP (6000x4000 JPEG): a fresh process runs `analyse` (and, separately,
  analyse + writing the four crops at full resolution) and reports its peak RSS from
  `resource.getrusage`.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# The repository root, for `training` (photo makers shared with the evaluations).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# One core, one thread: set before numpy/OpenCV/LiteRT start their pools.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "AUTOCROP_THREADS"):
    os.environ[_var] = "1"

import numpy as np  # noqa: E402

from training.uploads import camera_like_jpeg  # noqa: E402  (shared with training.face_eval)

RATIOS = ("1:1", "16:9", "4:5", "9:16")
SMARTCROP_AS_DOCUMENTED = "smartcrop.py, as documented (full decode, prescale)"
SMARTCROP_REDUCED = "smartcrop.py given the engine's 1/8 JPEG decode"
TWELVE_MP = (4032, 3024)
TWENTY_FOUR_MP = (6000, 4000)


def pin_to_one_core() -> int:
    """Pin this process to one CPU (the last one); return it."""
    cpu = max(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return cpu


def package_photos() -> dict[str, np.ndarray]:
    """Photos that installed packages ship: two with a face, two without."""
    import skimage.data
    from matplotlib import cbook
    from PIL import Image

    hopper = np.asarray(Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).convert("RGB"))
    return {
        "astronaut": skimage.data.astronaut(),
        "grace_hopper": hopper,  # portrait: 3024 x 4032
        "coffee": skimage.data.coffee(),
        "chelsea": skimage.data.chelsea(),
    }


#: EyeCrowd's eight most crowded training photos (87-268 labelled faces; validation photos,
#: every 10th by name, are left to the evaluations).
EYECROWD_CROWDS = ("184.jpg", "183.jpg", "085.jpg", "055.jpg", "171.jpg", "163.jpg", "124.jpg", "115.jpg")


def made_crowd() -> np.ndarray:
    """A crowd made from package photos: seven rows of faces, larger in front, ~80 faces."""
    import cv2
    import skimage.data
    from matplotlib import cbook
    from PIL import Image

    hopper = np.asarray(Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).convert("RGB"))
    heads = [skimage.data.astronaut()[20:240, 130:320], hopper[60:420, 120:420]]
    rng = np.random.default_rng(5)
    canvas = np.full((1512, 2016, 3), 96, np.uint8)
    canvas[:, :, 1] = 110
    y = 1512
    for size in (250, 215, 185, 160, 140, 120, 105):  # front row at the bottom, largest
        y -= round(size * 1.2)
        x = int(rng.integers(0, size // 2))
        while x + size < 2016:
            head = cv2.resize(heads[int(rng.integers(0, 2))], (size, round(size * 1.15)))
            canvas[y : y + head.shape[0], x : x + size] = head[:, ::-1] if rng.random() < 0.5 else head
            x += size + int(rng.integers(4, 40))
    return canvas


def crowd_photos() -> dict[str, np.ndarray]:
    """Crowds: EyeCrowd's photos named in EYECROWD_CROWDS where ../shared is beside the
    checkout, else the made crowd (so the benchmark still runs without the data)."""
    import cv2

    try:
        from training.datasets import DEFAULT_DATA_ROOT, load_eyecrowd_faces

        root = Path(DEFAULT_DATA_ROOT) / "saliency" / "eyecrowd"
        faces = load_eyecrowd_faces(root)
    except (OSError, ImportError, ValueError):
        return {"made crowd": made_crowd()}
    photos = {}
    for name in EYECROWD_CROWDS:
        bgr = cv2.imread(str(root / "stimuli_640x480" / name), cv2.IMREAD_COLOR)
        photos[f"EyeCrowd {name} ({len(faces[name])} faces)"] = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    return photos


def upload_photos() -> tuple[dict[str, bytes], dict[str, bytes]]:
    """The benchmarks' 12 MP camera-like JPEGs: (few-face photos, crowds), by name."""
    photos = {
        name: camera_like_jpeg(rgb, TWELVE_MP if rgb.shape[1] >= rgb.shape[0] else TWELVE_MP[::-1], i)
        for i, (name, rgb) in enumerate(package_photos().items())
    }
    crowds = {name: camera_like_jpeg(rgb, TWELVE_MP, 50 + i) for i, (name, rgb) in enumerate(crowd_photos().items())}
    return photos, crowds


def smartcrop_boxes(data: bytes, reduced: bool) -> list[dict]:
    """smartcrop.py's top crop for each ratio: decode, then one `crop` call per ratio."""
    import smartcrop
    from PIL import Image

    from autocrop.candidates import largest_window
    from autocrop.options import parse_ratio

    im = Image.open(io.BytesIO(data))
    if reduced:  # the engine's decode: the smallest DCT scale keeping >= 480 px (1/8 at 12 MP)
        im.draft("RGB", (im.size[0] * 480 // max(im.size), im.size[1] * 480 // max(im.size)))
    image = im.convert("RGB")
    sc = smartcrop.SmartCrop()
    boxes = []
    # Target sizes at the analysis scale (the largest box of the ratio in the decoded photo,
    # at most 640 px long), so smartcrop.py's own prescale brings it to the engine's scale.
    scale = min(1.0, 640 / max(image.size))
    for r in RATIOS:
        w, h = largest_window(*image.size, parse_ratio(r))
        boxes.append(sc.crop(image, max(1, round(w * scale)), max(1, round(h * scale)))["top_crop"])
    return boxes


def time_analysis(
    photos: dict[str, bytes], repeats: int, groups: dict[str, str] | None = None
) -> dict[str, dict[str, dict[str, float]]]:
    """Median ms per photo group for the engine and smartcrop.py, every photo of every group
    interleaved in one loop (so the groups see the same machine load)."""
    import cv2

    from autocrop import CropOptions, analyse
    from autocrop.saliency import load_saliency

    cv2.setNumThreads(1)
    load_saliency(num_threads=1)
    groups = groups or {name: "photos" for name in photos}
    options = CropOptions(ratios=RATIOS)
    runs: dict[tuple[str, str], list[float]] = {}
    for data in photos.values():  # warm-up: model loads, first-call costs
        analyse(data, options)
        smartcrop_boxes(data, reduced=True)
    slow_every = 5  # smartcrop.py on a full decode takes ~0.5 s: time it on every 5th round
    for round_ in range(repeats):
        for name, data in photos.items():
            calls = [
                ("engine", lambda data=data: analyse(data, options)),
                (SMARTCROP_REDUCED, lambda data=data: smartcrop_boxes(data, reduced=True)),
            ]
            if round_ % slow_every == 0:
                calls.append((SMARTCROP_AS_DOCUMENTED, lambda data=data: smartcrop_boxes(data, reduced=False)))
            for method, call in calls:
                start = time.perf_counter()
                call()
                runs.setdefault((groups[name], method), []).append((time.perf_counter() - start) * 1000)
    out: dict[str, dict[str, dict[str, float]]] = {}
    for (group, method), v in runs.items():
        out.setdefault(group, {})[method] = {
            "median_ms": statistics.median(v),
            "p90_ms": float(np.percentile(v, 90)),
            "runs": len(v),
        }
    return out


def time_rankers(photos: dict[str, bytes], repeats: int) -> dict[str, dict[str, float]]:
    """Median ms for the whole analysis with each ranker, interleaved on the same photos.

    Side by side, so the learned ranker's cost (pooling its features, the TFLite head over
    the shortlist of `ranker_shortlist` windows per ratio) reads as the difference from the
    composition score's run in the same moment, not as a number from another day.
    """
    from autocrop import CropOptions, analyse
    from autocrop.ranker_choice import select_ranker

    options = {name: CropOptions(ratios=RATIOS, ranker=name) for name in ("composition", "learned")}
    if select_ranker(options["learned"]).name == "composition":
        return {}  # no ranker model shipped: nothing to compare
    runs: dict[str, list[float]] = {name: [] for name in options}
    for data in photos.values():  # warm-up: both models loaded
        for opts in options.values():
            analyse(data, opts)
    for _ in range(repeats):
        for data in photos.values():
            for name, opts in options.items():
                start = time.perf_counter()
                analyse(data, opts)
                runs[name].append((time.perf_counter() - start) * 1000)
    return {name: {"median_ms": statistics.median(v), "runs": len(v)} for name, v in runs.items()}


def stage_medians(photos: dict[str, bytes], repeats: int) -> dict[str, float]:
    """Median per-stage timings the engine reports (decode, saliency, faces, candidates), and
    the median number of faces found."""
    from autocrop import CropOptions, analyse

    results = [analyse(d, CropOptions(ratios=RATIOS)) for _ in range(repeats) for d in photos.values()]
    rows = [r.timings for r in results]
    out = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    out["faces_found"] = statistics.median(len(r.faces) for r in results)
    return out


def start_to_first_result(photo: Path, cpu: int, repeats: int = 5) -> float:
    """Median seconds from spawning `autocrop crop PHOTO --json` to its first JSON line."""
    exe = Path(sys.executable).with_name("autocrop")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "autocrop.cli"]
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        proc = subprocess.Popen(
            ["taskset", "-c", str(cpu), *cmd, "crop", str(photo), "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        assert proc.stdout is not None
        line = proc.stdout.readline()
        times.append(time.perf_counter() - start)
        proc.wait()
        assert json.loads(line)["crops"], "the CLI must print a result"
    return statistics.median(times)


COLD_SCRIPT = """
import json, sys, time
t0 = time.perf_counter()
import autocrop
from autocrop.faces import load_face_detector
from autocrop.saliency import load_saliency
t1 = time.perf_counter()
load_saliency(); load_face_detector()
t2 = time.perf_counter()
result = autocrop.analyse(open(sys.argv[1], "rb").read())
t3 = time.perf_counter()
learned = sys.modules.get("autocrop.ranker")  # imported only when the learned ranker may run
print(json.dumps({"import_ms": 1000 * (t1 - t0), "models_ms": 1000 * (t2 - t1), "first_result_ms": 1000 * (t3 - t2),
                  "ranker_interpreter_built": learned is not None and learned.load_ranker.cache_info().currsize > 0}))
"""


def cold_start_breakdown(photo: Path, cpu: int, repeats: int = 5) -> dict[str, float]:
    """Medians, in fresh processes: import autocrop, load the saliency and face models, first
    `analyse` of a 12 MP photo (the learned ranker's interpreter is built only when used)."""
    rows = []
    for _ in range(repeats):
        done = subprocess.run(
            ["taskset", "-c", str(cpu), sys.executable, "-c", COLD_SCRIPT, str(photo)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    out: dict[str, float] = {
        k: statistics.median(r[k] for r in rows) for k in ("import_ms", "models_ms", "first_result_ms")
    }
    out["ranker_interpreter_built"] = float(any(r["ranker_interpreter_built"] for r in rows))
    return out


PEAK_SCRIPT = """
import sys
import cv2
cv2.setNumThreads(1)
import autocrop
data = open(sys.argv[1], "rb").read()
result = autocrop.analyse(data)
if sys.argv[2].startswith("render"):  # render1, render2, renderauto: every crop from one decode
    requests = [autocrop.RenderRequest(crop.box) for crop in result.crops]
    threads = sys.argv[2][len("render"):]
    autocrop.render_crops(data, requests, threads=None if threads == "auto" else int(threads))
"""
#: Linux carries a process's peak RSS over fork and exec, so a child of this (large) process
#: would report at least our own peak. A small launcher runs the measured process as *its*
#: child and reads RUSAGE_CHILDREN once that child has exited.
LAUNCHER = """
import resource, subprocess, sys
subprocess.run([sys.executable, "-c", sys.argv[1], *sys.argv[2:]], check=True)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)
"""


def peak_memory_mb(photo: Path, mode: str, cpus: str) -> float:
    """Peak RSS (MB) of a fresh process that analyses (and optionally renders) one photo."""
    done = subprocess.run(
        ["taskset", "-c", cpus, sys.executable, "-c", LAUNCHER, PEAK_SCRIPT, str(photo), mode],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return float(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=15, help="timed runs per photo and method")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    cpu = pin_to_one_core()
    photos, crowds = upload_photos()
    big = camera_like_jpeg(package_photos()["astronaut"], TWENTY_FOUR_MP, 99)
    results: dict[str, object] = {
        "cpu": cpu,
        "photos_12mp_bytes": {k: len(v) for k, v in photos.items()},
        "crowds_12mp_bytes": {k: len(v) for k, v in crowds.items()},
        "photo_24mp_bytes": len(big),
    }
    groups = {**{k: "few-face photos" for k in photos}, **{k: "crowds" for k in crowds}}
    by_group = time_analysis({**photos, **crowds}, args.repeats, groups)
    results["analysis"] = by_group["few-face photos"]
    results["analysis_crowds"] = by_group["crowds"]
    results["engine_stages_ms"] = stage_medians(photos, max(3, args.repeats // 3))
    results["engine_stages_ms_crowds"] = stage_medians(crowds, max(3, args.repeats // 3))
    results["rankers"] = time_rankers(photos, max(3, args.repeats // 3))
    with tempfile.TemporaryDirectory() as tmp:
        twelve = Path(tmp) / "photo_12mp.jpg"
        twelve.write_bytes(photos["astronaut"])
        twenty_four = Path(tmp) / "photo_24mp.jpg"
        twenty_four.write_bytes(big)
        results["start_to_first_result_s"] = start_to_first_result(twelve, cpu)
        results["cold_start_ms"] = cold_start_breakdown(twelve, cpu)
        both = f"0-{(os.cpu_count() or 1) - 1}"  # every CPU: the two-thread run may use two
        results["peak_rss_mb_24mp"] = {
            "analyse": peak_memory_mb(twenty_four, "analyse", str(cpu)),
            "analyse_and_render_4_crops": peak_memory_mb(twenty_four, "render1", str(cpu)),
            "analyse_and_render_4_crops_2_threads": peak_memory_mb(twenty_four, "render2", both),
            "analyse_and_render_4_crops_default_threads_all_cpus": peak_memory_mb(twenty_four, "renderauto", both),
        }
    analysis = results["analysis"]
    assert isinstance(analysis, dict)
    engine = analysis["engine"]["median_ms"]
    results["speedup_vs_smartcrop"] = {
        name: analysis[name]["median_ms"] / engine for name in (SMARTCROP_AS_DOCUMENTED, SMARTCROP_REDUCED)
    }
    print(f"one core (CPU {cpu}); 12 MP JPEGs: {results['photos_12mp_bytes']}, crowds: {results['crowds_12mp_bytes']}")
    print("| photos | method (4 ratios, box only) | median ms | p90 ms | runs |")
    print("|---|---|---|---|---|")
    for group, table in by_group.items():
        for name, row in table.items():
            print(f"| {group} | {name} | {row['median_ms']:.1f} | {row['p90_ms']:.1f} | {row['runs']} |")
    for name, row in results["rankers"].items():  # type: ignore[union-attr]
        print(f"analysis with ranker={name}: median {row['median_ms']:.1f} ms ({row['runs']} runs)")
    print(f"engine stages (median ms): { {k: round(v, 1) for k, v in results['engine_stages_ms'].items()} }")
    print(
        f"engine stages, crowds (median ms): { {k: round(v, 1) for k, v in results['engine_stages_ms_crowds'].items()} }"
    )
    for name, factor in results["speedup_vs_smartcrop"].items():  # type: ignore[union-attr]
        print(f"engine speed-up over {name}: {factor:.2f}x")
    print(f"process start to first result (autocrop crop --json, 12 MP): {results['start_to_first_result_s']:.2f} s")
    print(f"cold start, fresh process (median ms): {results['cold_start_ms']}")
    print(f"peak RSS at 24 MP: {results['peak_rss_mb_24mp']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
