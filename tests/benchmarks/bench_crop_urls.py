"""Crop URLs: rendering from the stored analysis against analysing again, same photos, one run.

    python tests/benchmarks/bench_crop_urls.py [--repeats 5] [--json out.json]

A moto server (S3 over real HTTP) holds 12 MP camera-like JPEGs, each cropped once by the upload
function (its crops.json is the stored analysis). Then, interleaved per photo and round, the
API answers the same signed URL (the 16:9 crop, at each size and format of CASES) three ways:

- stored:  GET /v1/crops/... with crops.json current: fetch, decode at the smallest DCT scale
  the size allows, resize, encode (no saliency or face pass);
- fresh:   the same URL with crops.json gone: fetch, analyse (the whole engine), render;
- resize:  the floor: Pillow decoding the same bytes and resizing the same box, no service.

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

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "layers"))

SECRET = b"benchmark key"
#: What pages ask for: a thumbnail and a hero image, JPEG and WebP.
CASES = (((640, 360), "jpeg"), ((1280, 720), "jpeg"), ((1280, 720), "webp"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
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
    from functions import s3_trigger
    from functions.api import app
    from tests.benchmarks.bench_engine import upload_photos

    s3 = stack.client("s3")
    photos, _ = upload_photos()
    keys = {}
    for name, data in photos.items():
        key = f"bench/{name}.jpg"
        s3.put_object(Bucket=stack.input_bucket, Key=key, Body=data, ContentType="image/jpeg")
        event = {"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
                              "s3": {"bucket": {"name": stack.input_bucket}, "object": {"key": key}}}]}  # fmt: skip
        [outcome] = s3_trigger.process_event(event)
        assert outcome["status"] == "cropped", outcome
        keys[name] = key
    client = TestClient(app)
    stages: dict[str, list[str]] = {"stored": [], "fresh": []}

    def timed(url: str, expect: str) -> float:
        start = time.perf_counter()
        response = client.get(url)
        took = (time.perf_counter() - start) * 1000
        assert response.status_code == 200 and response.headers["x-autocrop-analysis"] == expect, response.text
        stages[expect].append(response.headers["server-timing"])
        return took

    timed(crop_url(next(iter(keys.values())), "16:9", (64, 36), SECRET), "stored")  # warm: clients made
    rows = []
    for size, fmt in CASES:
        times: dict[str, list[float]] = {"stored": [], "fresh": [], "resize": []}
        analysis: dict[str, list[float]] = {"stored": [], "fresh": []}
        for _ in range(args.repeats):
            for name, key in keys.items():
                url = crop_url(key, "16:9", size, SECRET, fmt)
                sidecar_key = f"{stack.output_prefix}/{key}/crops.json"
                times["stored"].append(timed(url, "stored"))
                sidecar = s3.get_object(Bucket=stack.output_bucket, Key=sidecar_key)["Body"].read()
                box = next(c["box"] for c in json.loads(sidecar)["crops"] if c["ratio"] == "16:9")
                s3.delete_object(Bucket=stack.output_bucket, Key=sidecar_key)
                times["fresh"].append(timed(url, "fresh"))
                s3.put_object(Bucket=stack.output_bucket, Key=sidecar_key, Body=sidecar)
                for kind in analysis:
                    analysis[kind].append(float(stages[kind][-1].split("analysis;dur=")[1].split(";")[0]))
                start = time.perf_counter()
                im = Image.open(io.BytesIO(photos[name]))
                x, y, w, h = box
                im.crop((x, y, x + w, y + h)).resize(size, Image.Resampling.LANCZOS).save(
                    io.BytesIO(), fmt.upper(), quality=85)
                times["resize"].append((time.perf_counter() - start) * 1000)
        medians = {k: round(statistics.median(v), 1) for k, v in times.items()}
        stage = {k: round(statistics.median(v), 1) for k, v in analysis.items()}
        rows.append({"size": list(size), "format": fmt, "median_ms": medians, "analysis_stage_ms": stage,
                     "fresh_over_stored": round(medians["fresh"] / medians["stored"], 2),
                     "analysis_stage_fresh_over_stored": round(stage["fresh"] / max(stage["stored"], 0.1), 1)})  # fmt: skip
    moto.stop()
    summary = {"photos": len(keys), "repeats": args.repeats, "cases": rows}
    print(f"{len(keys)} photos (12 MP JPEG) x {args.repeats} rounds, the 16:9 crop; median ms per request:")
    print("  size       format  stored   fresh  plain-resize  fresh/stored  analysis stage: stored / fresh")
    for r in rows:
        m, a = r["median_ms"], r["analysis_stage_ms"]
        print(f"  {r['size'][0]}x{r['size'][1]:<5} {r['format']:<6} {m['stored']:7.1f} {m['fresh']:7.1f} {m['resize']:12.1f}"
              f"  {r['fresh_over_stored']:11.2f}x  {a['stored']:.1f} / {a['fresh']:.1f} ms ({r['analysis_stage_fresh_over_stored']}x)")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
