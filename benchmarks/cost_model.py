"""What one million uploads cost on Lambda (arm64, list price), from bench_peer.py's figures.

    python benchmarks/bench_peer.py --json runs/bench_peer.json
    python benchmarks/cost_model.py runs/bench_peer.json [--memory-mb 2048] [--cores one_core]

Per upload: the measured whole job (boxes + four full-resolution JPEG crops) in seconds x the
function's memory in GB = GB-seconds, at AWS Lambda's arm64 list price (us-east-1, first
pricing tier: USD 0.0000133334 per GB-second, USD 0.20 per million requests). The S3 requests
the job makes are the same for both (one GET, four crop PUTs; autoCropper adds crops.json and
the crop URLs' master) and are listed apart: at S3 Standard's list price they cost more than the compute.

The milliseconds are this machine's, one core (or two, --cores two_cores): Lambda grants one
vCPU's worth of time at 1,769 MB, so at the project's 2,048 MB a one-core figure is a fair
stand-in for the duration; Graviton's speed differs from this x86_64 machine by a factor
that applies to both sides alike.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

#: AWS Lambda arm64, us-east-1, first tier (list price, USD).
GB_SECOND_ARM64 = 0.0000133334
PER_MILLION_REQUESTS = 0.20
#: S3 Standard request prices (USD per 1,000).
S3_PUT_PER_1000 = 0.005
S3_GET_PER_1000 = 0.0004
ENGINE_JOB, PEER_JOB = "autoCropper, boxes + 4 crops", "smartcrop.js + sharp, boxes + 4 crops"


def per_million(ms: float, memory_mb: int) -> tuple[float, float]:
    """(GB-seconds per upload, USD per million uploads) for a duration at a memory size."""
    gb_s = ms / 1000 * memory_mb / 1024
    return gb_s, 1e6 * gb_s * GB_SECOND_ARM64 + PER_MILLION_REQUESTS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, help="bench_peer.py --json output")
    parser.add_argument("--memory-mb", type=int, default=2048, help="the function's memory (serverless.yml: 2048)")
    parser.add_argument("--cores", default="one_core", choices=("one_core", "two_cores"))
    args = parser.parse_args(argv)
    table = json.loads(args.results.read_text())[args.cores]["table"]
    print(f"Lambda arm64 at {args.memory_mb} MB, list price; durations: bench_peer.py, {args.cores.replace('_', ' ')}")
    print("| photos | method | ms per upload | GB-s per upload | USD per million uploads (compute) |")
    print("|---|---|---|---|---|")
    for group, rows in table.items():
        for method in (ENGINE_JOB, PEER_JOB):
            ms = rows[method]["median_ms"]
            gb_s, usd = per_million(ms, args.memory_mb)
            print(f"| {group} | {method} | {ms:.0f} | {gb_s:.3f} | {usd:.2f} |")
    s3_engine = 1000 * (S3_GET_PER_1000 + 6 * S3_PUT_PER_1000)
    s3_peer = 1000 * (S3_GET_PER_1000 + 4 * S3_PUT_PER_1000)
    print(
        f"S3 requests per million uploads: autoCropper {s3_engine:.2f} USD (1 GET, 4 crops + crops.json + master), "
        f"peer {s3_peer:.2f} USD (1 GET, 4 crops)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
