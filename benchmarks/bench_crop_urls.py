"""Crop URLs: rendering from the stored analysis (from the master, or from the original)
against analysing again, same photos, one run; and what the master costs an upload.

    python benchmarks/bench_crop_urls.py [--repeats 5] [--upload-rounds 3] [--json out.json]

A moto server (S3 over real HTTP) holds 12 MP camera-like JPEGs, each cropped once by the upload
function (its crops.json is the stored analysis, its master.jpg the master). Then, interleaved
per photo and round, the API answers the same signed URL (the 16:9 crop, at each size and
format of CASES) four ways:

- master:   GET /v1/crops/... with crops.json current: HEAD the photo, read crops.json, fetch
  the 2048 px master, decode it (at the smallest DCT scale the size allows), resize, encode;
- original: the same with crops.json recording no master: fetch the 12 MP original instead
  (the stored-analysis path before masters);
- fresh:    the same URL with crops.json gone: fetch the original, analyse (the whole engine),
  render;
- resize:   a floor without the service: Pillow decoding the original and resizing the box.

The upload's cost of the master: each photo cropped by the upload function with
AUTOCROP_URL_MASTER on and off, interleaved, `--upload-rounds` times (wall time of the whole
upload: GET, analysis, four full-resolution crops, the PUTs), and the master's bytes.
Everything runs in this process on the same CPU; medians over photos and rounds.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "layers"))

SECRET = b"benchmark signing key, not a real one"  # at least 32 bytes
#: What pages ask for: a thumbnail and a hero image, JPEG and WebP.
CASES = (((640, 360), "jpeg"), ((1280, 720), "jpeg"), ((1280, 720), "webp"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--upload-rounds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    from infra.local_stack import aws_environment, create_stack, start_moto

    moto, endpoint = start_moto("127.0.0.1", 0)
    os.environ.update(aws_environment(endpoint))
    stack = create_stack(endpoint)
    os.environ.update(stack.settings_environment())
    os.environ.update({"AUTOCROP_URL_SIGNING_KEY": SECRET.decode(), "POWERTOOLS_LOG_LEVEL": "ERROR"})

    from fastapi.testclient import TestClient
    from PIL import Image

    from autocrop.urls import crop_url
    from benchmarks.bench_engine import upload_photos
    from functions.api.app import app
    from functions.s3 import trigger
    from functions.settings import get_settings

    s3 = stack.client("s3")
    photos, _ = upload_photos()
    keys = {name: f"bench/{name}.jpg" for name in photos}

    def crop_upload(key: str, master: bool) -> float:
        """One upload through the upload function (its records removed first), ms."""
        os.environ["AUTOCROP_URL_MASTER"] = "true" if master else "false"
        get_settings.cache_clear()
        s3.delete_object(Bucket=stack.output_bucket, Key=f"{stack.output_prefix}/{key}/crops.json")
        event = {"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
                              "s3": {"bucket": {"name": stack.input_bucket}, "object": {"key": key}}}]}  # fmt: skip
        start = time.perf_counter()
        [outcome] = trigger.process_event(event)
        took = (time.perf_counter() - start) * 1000
        assert outcome["status"] == "cropped", outcome
        return took

    for name, key in keys.items():
        s3.put_object(Bucket=stack.input_bucket, Key=key, Body=photos[name], ContentType="image/jpeg")
        crop_upload(key, master=False)  # warm: models loaded, clients made
    uploads: dict[str, list[float]] = {"with_master": [], "without": []}
    for _ in range(args.upload_rounds):
        for key in keys.values():
            uploads["without"].append(crop_upload(key, master=False))
            uploads["with_master"].append(crop_upload(key, master=True))  # the last write: stays
    master_bytes = [s3.head_object(Bucket=stack.output_bucket, Key=f"{stack.output_prefix}/{k}/master.jpg")["ContentLength"]
                    for k in keys.values()]  # fmt: skip

    client = TestClient(app)
    stages: dict[str, list[str]] = {"master": [], "original": [], "fresh": []}

    def timed(url: str, expect: str) -> float:
        start = time.perf_counter()
        response = client.get(url)
        took = (time.perf_counter() - start) * 1000
        assert response.status_code == 200, response.text
        answered = (
            "fresh" if response.headers["x-autocrop-analysis"] == "fresh" else response.headers["x-autocrop-source"]
        )
        assert answered == expect, (expect, dict(response.headers))
        stages[expect].append(response.headers["server-timing"])
        return took

    timed(crop_url(next(iter(keys.values())), "16:9", (64, 36), SECRET), "master")  # warm: clients made
    rows = []
    for size, fmt in CASES:
        times: dict[str, list[float]] = {"master": [], "original": [], "fresh": [], "resize": []}
        analysis: dict[str, list[float]] = {"master": [], "original": [], "fresh": []}
        for _ in range(args.repeats):
            for name, key in keys.items():
                url = crop_url(key, "16:9", size, SECRET, fmt)
                sidecar_key = f"{stack.output_prefix}/{key}/crops.json"
                times["master"].append(timed(url, "master"))
                sidecar = s3.get_object(Bucket=stack.output_bucket, Key=sidecar_key)["Body"].read()
                box = next(c["box"] for c in json.loads(sidecar)["crops"] if c["ratio"] == "16:9")
                no_master = json.dumps({**json.loads(sidecar), "master": None}).encode()
                s3.put_object(Bucket=stack.output_bucket, Key=sidecar_key, Body=no_master)
                times["original"].append(timed(url, "original"))
                s3.delete_object(Bucket=stack.output_bucket, Key=sidecar_key)
                times["fresh"].append(timed(url, "fresh"))
                s3.put_object(Bucket=stack.output_bucket, Key=sidecar_key, Body=sidecar)
                for kind in analysis:
                    analysis[kind].append(float(stages[kind][-1].split("analysis;dur=")[1].split(";")[0]))
                start = time.perf_counter()
                im = Image.open(io.BytesIO(photos[name]))
                x, y, w, h = box
                im.crop((x, y, x + w, y + h)).resize(size, Image.Resampling.LANCZOS).save(
                    io.BytesIO(), fmt.upper(), quality=85
                )
                times["resize"].append((time.perf_counter() - start) * 1000)
        medians = {k: round(statistics.median(v), 1) for k, v in times.items()}
        stage = {k: round(statistics.median(v), 1) for k, v in analysis.items()}
        rows.append({"size": list(size), "format": fmt, "median_ms": medians, "analysis_stage_ms": stage,
                     "fresh_over_master": round(medians["fresh"] / medians["master"], 2),
                     "fresh_over_original": round(medians["fresh"] / medians["original"], 2),
                     "original_over_master": round(medians["original"] / medians["master"], 2)})  # fmt: skip
    moto.stop()
    upload = {k: round(statistics.median(v), 1) for k, v in uploads.items()}
    upload_cost = {"median_ms": upload, "extra_ms": round(upload["with_master"] - upload["without"], 1),
                   "rounds": args.upload_rounds, "master_bytes_median": int(statistics.median(master_bytes))}  # fmt: skip
    summary = {"photos": len(keys), "repeats": args.repeats, "cases": rows, "upload": upload_cost}
    print(f"{len(keys)} photos (12 MP JPEG) x {args.repeats} rounds, the 16:9 crop; median ms per request:")
    print(
        "  size       format  stored:master  stored:original   fresh  plain-resize  fresh/master  fresh/original"
        "  original/master"
    )
    for r in rows:
        m = r["median_ms"]
        print(
            f"  {r['size'][0]}x{r['size'][1]:<5} {r['format']:<6} {m['master']:13.1f} {m['original']:16.1f} {m['fresh']:7.1f}"
            f" {m['resize']:13.1f} {r['fresh_over_master']:12.2f}x {r['fresh_over_original']:14.2f}x"
            f" {r['original_over_master']:15.2f}x"
        )
    print(
        f"upload, {len(keys)} photos x {args.upload_rounds} rounds (median ms): {upload['with_master']} with the master, "
        f"{upload['without']} without ({upload_cost['extra_ms']:+.1f} ms); master {upload_cost['master_bytes_median']} "
        "bytes (median)"
    )
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
