"""Crop the photos already in a bucket: S3 Batch Operations, or the same handler driven locally.

    # on AWS: one Batch Operations job over a bucket or prefix (S3 lists it; no manifest file)
    python -m infra.cli backfill s3://my-photos/2019/ --create-job --account-id 123456789012 \\
        --function-arn arn:aws:lambda:...:function:autocrop-dev-upload \\
        --role-arn arn:aws:iam::123456789012:role/autocrop-dev-batch-operations \\
        --report s3://my-crops/batch-reports/

    # locally (the local stack, or any S3 endpoint): the same handler, task by task
    python -m infra.cli backfill --endpoint-url http://127.0.0.1:4566 --output-bucket autocrop-output \\
        s3://autocrop-input/PREFIX

Locally every object under the prefix goes to `functions.s3.trigger.handler` as the
Batch Operations invocation (schema 2.0) AWS would send for it, with a progress bar and a
summary: cropped, skipped (already cropped or already recorded as broken), failed (error
records written), retry (AWS faults a rerun picks up). The handler's idempotency makes a run
resumable: run it again and only what is not done yet is worked on (`--start-after KEY`
skips the listing up to a key).
"""

from __future__ import annotations

import argparse
import os
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote_plus, urlparse

#: How a person runs `main` (infra/cli.py); error lines and usage start with it.
PROG = "python -m infra.cli backfill"
#: Summary categories, in the order they are printed.
CATEGORIES = ("cropped", "skipped", "failed", "retry", "missing")


def parse_s3_url(url: str) -> tuple[str, str]:
    """'s3://bucket/some/prefix' -> ('bucket', 'some/prefix')."""
    parsed = urlparse(url)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"expected s3://BUCKET[/PREFIX], got {url!r}")
    return parsed.netloc, parsed.path.lstrip("/")


def list_keys(s3: Any, bucket: str, prefix: str, start_after: str = "") -> Iterator[str]:
    """Every object key under the prefix, in S3's (lexicographic) order."""
    kwargs = {"Bucket": bucket, "Prefix": prefix, **({"StartAfter": start_after} if start_after else {})}
    for page in s3.get_paginator("list_objects_v2").paginate(**kwargs):
        for item in page.get("Contents", []):
            yield item["Key"]


def batch_task_event(bucket: str, key: str, n: int) -> dict[str, Any]:
    """The schema 2.0 invocation S3 Batch Operations sends for one manifest entry."""
    return {
        "invocationSchemaVersion": "2.0",
        "invocationId": f"local-{uuid.uuid4().hex}",
        "job": {"id": "local-backfill", "userArguments": {}},
        "tasks": [{"taskId": f"task-{n}", "s3Bucket": bucket, "s3Key": quote_plus(key, safe="/"), "s3VersionId": None}],
    }


def category(result: dict[str, Any]) -> str:
    """Which summary line a task result counts in."""
    code, text = result["resultCode"], result.get("resultString") or ""
    if code == "Succeeded":
        return "cropped" if text.startswith("cropped") else "skipped"
    if code == "TemporaryFailure":
        return "retry"
    return "missing" if text.startswith("NoSuchKey") else "failed"


def run_local(bucket: str, prefix: str, start_after: str = "", progress: bool = True) -> Counter[str]:
    """Drive the upload function's handler over the prefix, as Batch Operations would."""
    from functions.s3 import trigger
    from functions.settings import get_settings
    from infra.local_stack import LocalContext

    get_settings.cache_clear()
    s3 = trigger.s3_client()
    keys = list(list_keys(s3, bucket, prefix, start_after))
    counts: Counter[str] = Counter({c: 0 for c in CATEGORIES})
    failures: list[str] = []
    items: Any = keys
    if progress:
        from tqdm import tqdm

        items = tqdm(keys, desc="backfill", unit="photo", file=sys.stderr)
    for n, key in enumerate(items):
        [result] = trigger.handler(batch_task_event(bucket, key, n), LocalContext())["results"]
        kind = category(result)
        counts[kind] += 1
        if kind in ("failed", "retry", "missing"):
            failures.append(f"  {kind}: {key}: {result['resultString']}")
    if failures:
        print("\n".join(failures), file=sys.stderr)
    return counts


def create_job(s3control: Any, args: argparse.Namespace, bucket: str, prefix: str) -> str:
    """Create the Batch Operations job (S3 generates the manifest from the prefix); its id."""
    report_bucket, report_prefix = parse_s3_url(args.report)
    request: dict[str, Any] = {
        "AccountId": args.account_id,
        "ConfirmationRequired": False,
        "Operation": {"LambdaInvoke": {"FunctionArn": args.function_arn, "InvocationSchemaVersion": "2.0"}},
        "ManifestGenerator": {
            "S3JobManifestGenerator": {
                "SourceBucket": f"arn:aws:s3:::{bucket}",
                "EnableManifestOutput": False,
                **({"Filter": {"KeyNameConstraint": {"MatchAnyPrefix": [prefix]}}} if prefix else {}),
            }
        },
        "Report": {
            "Bucket": f"arn:aws:s3:::{report_bucket}",
            "Format": "Report_CSV_20180820",
            "Enabled": True,
            "Prefix": report_prefix.rstrip("/") or "batch-reports",
            "ReportScope": "AllTasks",
        },
        "Priority": args.priority,
        "RoleArn": args.role_arn,
        "ClientRequestToken": args.token or str(uuid.uuid4()),
        "Description": f"autocrop backfill of s3://{bucket}/{prefix}"[:256],
    }
    return str(s3control.create_job(**request)["JobId"])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Crop the photos already in a bucket.")
    parser.add_argument("source", metavar="s3://BUCKET[/PREFIX]", help="the photos to crop")
    parser.add_argument("--endpoint-url", help="S3 endpoint (the local stack: http://127.0.0.1:4566)")
    parser.add_argument("--output-bucket", help="where crops go (default: AUTOCROP_OUTPUT_BUCKET)")
    parser.add_argument("--start-after", default="", metavar="KEY", help="resume the listing after KEY")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    job = parser.add_argument_group("an S3 Batch Operations job on AWS (instead of running locally)")
    job.add_argument("--create-job", action="store_true", help="create the job and print its id")
    job.add_argument("--account-id")
    job.add_argument("--function-arn", help="the upload function (serverless.yml: upload)")
    job.add_argument("--role-arn", help="the role Batch Operations assumes (BatchOperationsRole)")
    job.add_argument("--report", metavar="s3://BUCKET/PREFIX", help="where the completion report goes")
    job.add_argument("--priority", type=int, default=10)
    job.add_argument("--token", help="client request token (a retried call creates no second job)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        bucket, prefix = parse_s3_url(args.source)
    except ValueError as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 2
    if args.endpoint_url:
        from infra.local_stack import OUTPUT_BUCKET, aws_environment

        os.environ["AWS_ENDPOINT_URL"] = args.endpoint_url
        for name, value in aws_environment(args.endpoint_url).items():  # the local stack's defaults
            os.environ.setdefault(name, value)
        if not args.output_bucket and not os.environ.get("AUTOCROP_OUTPUT_BUCKET"):
            args.output_bucket = OUTPUT_BUCKET  # the local stack's
    if args.create_job:
        missing = [f"--{n.replace('_', '-')}" for n in ("account_id", "function_arn", "role_arn", "report")
                   if not getattr(args, n)]  # fmt: skip
        if missing:
            print(f"{PROG}: --create-job needs {', '.join(missing)}", file=sys.stderr)
            return 2
        if not parse_s3_url(args.report)[1].startswith("batch-reports"):
            print(f"{PROG}: --report must be s3://<output bucket>/batch-reports/...: the only "
                  "prefix serverless.yml's BatchOperationsRole may write", file=sys.stderr)  # fmt: skip
            return 2
        import boto3

        job_id = create_job(boto3.client("s3control"), args, bucket, prefix)
        print(f"created S3 Batch Operations job {job_id}: aws s3control describe-job "
              f"--account-id {args.account_id} --job-id {job_id}")  # fmt: skip
        return 0
    if args.output_bucket:
        os.environ["AUTOCROP_OUTPUT_BUCKET"] = args.output_bucket
    # The summary and the failures list say what happened; the handler's JSON logs would
    # break the progress bar (POWERTOOLS_LOG_LEVEL=INFO brings them back).
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "ERROR")
    if not os.environ.get("AUTOCROP_OUTPUT_BUCKET"):
        print(f"{PROG}: say where crops go: --output-bucket or AUTOCROP_OUTPUT_BUCKET", file=sys.stderr)
        return 2
    counts = run_local(bucket, prefix, args.start_after, progress=not args.no_progress)
    print(", ".join(f"{counts[c]} {c}" for c in CATEGORIES))
    return 1 if counts["retry"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
