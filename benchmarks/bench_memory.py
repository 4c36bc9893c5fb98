"""Peak memory of the upload's job for every Pillow mode, at the largest pixel count the memory
budget accepts, side by side with smartcrop.py doing the same job in the same run.

    python benchmarks/bench_memory.py [--modes 1,L,P] [--json out.json] [--no-peer]

For each mode (1, L, LA, P, P with transparency, RGB, RGBA, I;16, I, F, CMYK):
- the largest 4:3 frame `autocrop.job.plan_job` accepts under the upload function's settings
  (`functions.s3.trigger`: the default ratios at full resolution as JPEG q85, plus the 2560 px
  master), found by bisection on the plan alone (no pixels);
- a photo of that mode and size (a real photo enlarged, so it compresses like one; PNG for the
  8- and 16-bit modes, TIFF for I and F, JPEG for CMYK), written by a separate process;
- a fresh process that imports the upload function (its real baseline: boto3, Powertools, the
  engine, both models warmed on a small photo), runs `run_job` on the file with the upload's
  options and spec, and reports its peak RSS (`resource.getrusage`), the planned peak, the
  seconds the job took and what it refused, if anything;
- the peer: a fresh process running smartcrop.py 0.5 (as its README uses it: `Image.open`,
  `convert("RGB")`, `SmartCrop().crop` per ratio) and saving each crop at full resolution.
Then the probe's own odd files (10000x10000 1-bit and palette PNGs, 8900x8900 LA), which the
budget must refuse or keep under it. Every figure is a measurement of this run; docs/memory.md
holds a dated table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "layers"))

#: mode -> (Pillow mode to save, file format, palette transparency)
MODES: dict[str, tuple[str, str, bool]] = {
    "1": ("1", "PNG", False),
    "L": ("L", "PNG", False),
    "LA": ("LA", "PNG", False),
    "P": ("P", "PNG", False),
    "P+transparency": ("P", "PNG", True),
    "RGB": ("RGB", "PNG", False),
    "RGBA": ("RGBA", "PNG", False),
    "I;16": ("I;16", "PNG", False),
    "I": ("I", "TIFF", False),
    "F": ("F", "TIFF", False),
    "CMYK": ("CMYK", "JPEG", False),
    "CMYK progressive": ("CMYK", "JPEG", False),
}
#: The file's own bytes the search allows for: the upload function's object limit, so the frame
#: found is accepted whatever its file weighs.
FILE_ALLOWANCE = 50_000_000
#: The probe's files: (name, mode key, width, height).
PROBE = [("1-bit 10000x10000", "1", 10000, 10000), ("P+transparency 10000x10000", "P+transparency", 10000, 10000),
         ("LA 8900x8900", "LA", 8900, 8900), ("RGB JPEG 48 MP", "RGB-JPEG", 8000, 6000)]  # fmt: skip


def upload_settings():  # noqa: ANN201 - the function's own objects
    """The upload function's options and spec, from its default settings."""
    from functions.s3.trigger import crop_options, output_spec
    from functions.settings import Settings

    settings = Settings(output_bucket="bench")
    return crop_options(settings), output_spec(settings)


def largest_accepted(mode_key: str) -> tuple[int, int, int]:
    """(width, height, planned peak) of the largest 4:3 frame of `mode_key` the plan accepts."""
    from autocrop.job import plan_frame
    from autocrop.render import Frame

    options, spec = upload_settings()
    save_mode, fmt, transparency = MODES[mode_key]
    probe_mode = "P" if save_mode == "P" else save_mode

    def peak(k: int) -> int:
        w, h = 4 * k, 3 * k
        progressive = mode_key == "CMYK progressive"
        coefficients = (-(-w // 16) * 16) * (-(-h // 16) * 16) * 2 * 4 if progressive else 0
        frame = Frame((w, h), (w, h), probe_mode, fmt, transparency or "A" in save_mode, 0, False, coefficients)
        return plan_frame(frame, FILE_ALLOWANCE, options, spec)

    lo, hi = 1, 5000  # 4:3 frames up to 20000x15000 (the pixel guard stops at 100 MP)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if 4 * mid * 3 * mid <= options.max_pixels and peak(mid) <= options.memory_budget:
            lo = mid
        else:
            hi = mid - 1
    return 4 * lo, 3 * lo, peak(lo)


def write_photo(path: Path, mode_key: str, width: int, height: int) -> None:
    """A photo of `mode_key` at `width` x `height`: a real photo enlarged, in that mode."""
    import numpy as np
    from PIL import Image
    from skimage import data as samples

    if mode_key == "RGB-JPEG":
        Image.fromarray(samples.astronaut()).resize((width, height), Image.Resampling.BILINEAR).save(
            path, "JPEG", quality=90
        )
        return
    save_mode, fmt, transparency = MODES[mode_key]
    base = Image.fromarray(samples.astronaut()).resize((width, height), Image.Resampling.BILINEAR)
    if save_mode in ("RGB", "L", "1", "CMYK"):
        im = base.convert(save_mode)
    elif save_mode in ("RGBA", "LA"):
        im = base.convert(save_mode[:-1])
        alpha = Image.linear_gradient("L").resize((width, height))
        im.putalpha(alpha)
    elif save_mode == "P":
        im = base.quantize(64)
        if transparency:
            im.info["transparency"] = 0
    elif save_mode == "I;16":
        arr = np.asarray(base.convert("L"), dtype=np.uint16) * 257
        im = Image.fromarray(arr, "I;16")
    elif save_mode == "I":
        im = Image.fromarray(np.asarray(base.convert("L"), dtype=np.int32) * 100, "I")
    else:  # F
        im = Image.fromarray(np.asarray(base.convert("L"), dtype=np.float32) / 255.0, "F")
    kwargs = {"quality": 90} if fmt == "JPEG" else {"compression": "tiff_deflate"} if fmt == "TIFF" else {}
    if mode_key == "CMYK progressive":  # libjpeg then holds every coefficient until the last scan
        kwargs.update(progressive=True, subsampling=0)
    if save_mode == "P" and transparency:
        kwargs["transparency"] = 0
    im.save(path, fmt, **kwargs)


def peak_rss() -> int:
    """This process's peak RSS in bytes: /proc's VmHWM (ru_maxrss would also count the parent's
    RSS at the fork that started this process, which Linux keeps across exec)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def measure_job(path: str) -> dict:
    """In this (fresh) process: the upload's job on `path`; peak RSS and what it did."""
    import io

    import numpy as np
    from PIL import Image

    from autocrop.errors import AutocropError
    from autocrop.job import plan_job, run_job

    options, spec = upload_settings()
    warm = io.BytesIO()
    Image.fromarray(np.full((480, 640, 3), 128, np.uint8)).save(warm, "JPEG")
    run_job(warm.getvalue(), options, spec)
    baseline = peak_rss()
    data = Path(path).read_bytes()
    started = time.perf_counter()
    try:
        done = run_job(data, options, spec)
        outcome = f"cropped ({len(done.outputs)} crops, master {'yes' if done.master else 'no'})"
    except AutocropError as e:
        outcome = f"refused: {e.code}"
    seconds = time.perf_counter() - started
    try:
        plan_job(data, options, spec)
        planned = "accepted"
    except AutocropError:
        planned = "refused"
    return {"peak_rss_mb": peak_rss() / 1e6, "baseline_mb": baseline / 1e6,
            "seconds": round(seconds, 2), "outcome": outcome, "plan": planned, "file_mb": len(data) / 1e6}  # fmt: skip


def measure_peer(path: str) -> dict:
    """In this (fresh) process: smartcrop.py's job on `path` (analysis per ratio, full-size crops)."""
    import smartcrop
    from PIL import Image

    started = time.perf_counter()
    im = Image.open(path)
    im = im.convert("RGB")
    cropper = smartcrop.SmartCrop()
    for w, h in ((1, 1), (16, 9), (4, 5), (9, 16)):
        found = cropper.crop(im, w * 100, h * 100)["top_crop"]
        box = (found["x"], found["y"], found["x"] + found["width"], found["y"] + found["height"])
        im.crop(box).save(os.devnull, "JPEG", quality=85)
    return {"peak_rss_mb": peak_rss() / 1e6, "seconds": round(time.perf_counter() - started, 2)}


def in_fresh_process(what: str, path: str, timeout: float) -> dict:
    """Run `measure_job` or `measure_peer` in a new interpreter (its own peak RSS)."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'layers'}"}
    try:
        done = subprocess.run([sys.executable, __file__, "--child", what, path], capture_output=True, text=True,
                              timeout=timeout, env=env)  # fmt: skip
    except subprocess.TimeoutExpired:
        return {"outcome": f"timed out after {timeout:.0f} s"}
    if done.returncode != 0:
        return {"outcome": f"exit {done.returncode}: {done.stderr.strip().splitlines()[-1:]}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated mode keys")
    parser.add_argument("--json", type=Path, help="write the rows here too")
    parser.add_argument("--no-peer", action="store_true", help="skip smartcrop.py")
    parser.add_argument("--no-probe", action="store_true", help="skip the probe's odd files")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        what, path = args.child
        print(json.dumps(measure_job(path) if what == "job" else measure_peer(path)))
        return
    from autocrop.memory import DEFAULT_MEMORY_BUDGET

    print(f"budget {DEFAULT_MEMORY_BUDGET / 1e6:.0f} MB (peak RSS, baseline included)")
    rows = []
    cases = [(m, m, *largest_accepted(m)) for m in args.modes.split(",") if m]
    if not args.no_probe:
        cases += [(name, key, w, h, None) for name, key, w, h in PROBE]
    with tempfile.TemporaryDirectory() as tmp:
        for name, key, w, h, planned in cases:
            path = Path(tmp) / "photo"
            subprocess.run([sys.executable, "-c", f"import sys; sys.path[:0]={[str(ROOT), str(ROOT / 'layers')]!r}; "
                            f"from benchmarks.bench_memory import write_photo; from pathlib import Path; "
                            f"write_photo(Path({str(path)!r}), {key!r}, {w}, {h})"], check=True)  # fmt: skip
            row = {"case": name, "size": f"{w}x{h}", "mp": round(w * h / 1e6, 1),
                   "planned_mb": round(planned / 1e6) if planned else None,
                   "autocrop": in_fresh_process("job", str(path), args.timeout)}  # fmt: skip
            if not args.no_peer:
                row["smartcrop.py"] = in_fresh_process("peer", str(path), args.timeout)
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"budget_mb": DEFAULT_MEMORY_BUDGET / 1e6, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
