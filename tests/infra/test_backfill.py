"""`python -m infra.cli backfill`: the photos already in a bucket, through the upload function's Batch
Operations path on the live moto server; and the Batch Operations job request for AWS."""

from __future__ import annotations

import io
from typing import Any

import boto3
import numpy as np
import pytest
import skimage.data
from botocore.stub import ANY, Stubber
from PIL import Image

from infra import backfill
from infra.cli import main as cloud_main
from infra.local_stack import Stack
from tests.doors.test_s3_trigger import output_keys, s3, stack, upload

__all__ = ["s3", "stack"]  # fixtures imported for pytest

PREFIX = "archive/2019/"


def photos(n: int) -> list[bytes]:
    """n distinct small photos: windows of scikit-image's pictures at different offsets."""
    sources = [skimage.data.astronaut(), skimage.data.chelsea(), skimage.data.coffee(), skimage.data.rocket()]
    out = []
    for i in range(n):
        im = sources[i % len(sources)]
        h, w = im.shape[:2]
        dy, dx = (i * 7) % (h // 4), (i * 11) % (w // 4)
        crop = np.ascontiguousarray(im[dy : dy + 3 * h // 4, dx : dx + 3 * w // 4])
        buf = io.BytesIO()
        Image.fromarray(crop).resize((320, 240)).save(buf, "JPEG", quality=85)
        out.append(buf.getvalue())
    return out


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = cloud_main(["backfill", *args])
    return code, capsys.readouterr().out.strip().splitlines()[-1]


def test_backfill_a_prefix_crops_the_rest_once_and_a_rerun_does_nothing(
    stack: Stack, s3: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "ERROR")  # main sets it, and the fixtures the rest: restored
    endpoint = stack.endpoint
    good = photos(27)
    keys = [f"{PREFIX}photo {i:02d}.jpg" for i in range(30)]
    for key, data in zip(keys, good):
        upload(s3, stack, key, data, "image/jpeg")
    for key in keys[27:]:
        upload(s3, stack, key, b"\xff\xd8\xff\xe0 a truncated JPEG", "image/jpeg")
    upload(s3, stack, "elsewhere/not-in-the-prefix.jpg", good[0], "image/jpeg")
    common = ["--endpoint-url", endpoint, "--output-bucket", stack.output_bucket, "--no-progress"]

    # 5 photos were cropped before (the first five: run over exactly them)
    code, summary = run(capsys, f"s3://{stack.input_bucket}/{PREFIX}photo 0", *common)
    assert code == 0 and summary.startswith("10 cropped")  # "photo 00".."photo 09"
    for key in keys[5:10]:  # undo five of them: those are "not yet cropped" again
        for out in [k for k in output_keys(s3, stack) if k.startswith(f"{stack.output_prefix}/{key}/")]:
            s3.delete_object(Bucket=stack.output_bucket, Key=out)

    code, summary = run(capsys, f"s3://{stack.input_bucket}/{PREFIX}", *common)
    assert (code, summary) == (0, "22 cropped, 5 skipped, 3 failed, 0 retry, 0 missing")
    written = output_keys(s3, stack)
    assert sum(k.endswith("/crops.json") for k in written) == 27
    assert sum(k.endswith("/error.json") for k in written) == 3
    assert not any("elsewhere" in k for k in written)

    code, summary = run(capsys, f"s3://{stack.input_bucket}/{PREFIX}", *common)
    assert (code, summary) == (0, "0 cropped, 30 skipped, 0 failed, 0 retry, 0 missing")
    assert output_keys(s3, stack) == written


def test_a_bad_source_or_missing_job_arguments_are_usage_errors(capsys: pytest.CaptureFixture[str]):
    assert cloud_main(["backfill", "my-bucket/photos"]) == 2
    assert "s3://BUCKET" in capsys.readouterr().err
    assert cloud_main(["backfill", "s3://b/p", "--create-job", "--account-id", "1"]) == 2
    assert "--function-arn" in capsys.readouterr().err
    job = ["s3://b/p", "--create-job", "--account-id", "1", "--function-arn", "f", "--role-arn", "r"]
    assert cloud_main(["backfill", *job, "--report", "s3://out/elsewhere/"]) == 2
    assert "batch-reports" in capsys.readouterr().err  # the only prefix the role may write


def test_create_job_asks_batch_operations_for_the_prefix_through_the_upload_function():
    """The request as botocore's model of S3 Control validates it (the job cannot run here)."""
    client = boto3.client("s3control", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    args = backfill.build_parser().parse_args([
        "s3://my-photos/2019/", "--create-job", "--account-id", "123456789012",
        "--function-arn", "arn:aws:lambda:us-east-1:123456789012:function:autocrop-dev-upload",
        "--role-arn", "arn:aws:iam::123456789012:role/autocrop-dev-batch", "--report", "s3://my-crops/batch-reports/",
        "--token", "t-1",
    ])  # fmt: skip
    expected = {
        "AccountId": "123456789012",
        "ConfirmationRequired": False,
        "Operation": {"LambdaInvoke": {"FunctionArn": args.function_arn, "InvocationSchemaVersion": "2.0"}},
        "ManifestGenerator": {"S3JobManifestGenerator": {
            "SourceBucket": "arn:aws:s3:::my-photos", "EnableManifestOutput": False,
            "Filter": {"KeyNameConstraint": {"MatchAnyPrefix": ["2019/"]}}}},
        "Report": {"Bucket": "arn:aws:s3:::my-crops", "Format": "Report_CSV_20180820", "Enabled": True,
                   "Prefix": "batch-reports", "ReportScope": "AllTasks"},
        "Priority": 10,
        "RoleArn": args.role_arn,
        "ClientRequestToken": "t-1",
        "Description": ANY,
    }  # fmt: skip
    with Stubber(client) as stub:
        stub.add_response("create_job", {"JobId": "job-42"}, expected)
        assert backfill.create_job(client, args, "my-photos", "2019/") == "job-42"
        stub.assert_no_pending_responses()


@pytest.mark.parametrize(("result", "kind"), [
    ({"resultCode": "Succeeded", "resultString": "cropped: crops/a/crops.json"}, "cropped"),
    ({"resultCode": "Succeeded", "resultString": "skipped: already processed"}, "skipped"),
    ({"resultCode": "PermanentFailure", "resultString": "unsupported_image: ..."}, "failed"),
    ({"resultCode": "PermanentFailure", "resultString": "NoSuchKey: object gone"}, "missing"),
    ({"resultCode": "TemporaryFailure", "resultString": "SlowDown: ..."}, "retry"),
])  # fmt: skip
def test_summary_categories(result: dict[str, str], kind: str):
    assert backfill.category(result) == kind
