"""The whole product on one machine, no AWS account: S3 upload -> crops, and the HTTPS API.

    python -m infra.local_stack            # serve until Ctrl-C
    python -m infra.local_stack --once     # send the sample photos through, say where, exit

What runs, all in this process:
- a moto server on 127.0.0.1 (S3 and SQS over real HTTP) with an input bucket, an output
  bucket and S3 -> SQS ObjectCreated notifications (a dead-letter queue plays the failure
  destination);
- a poller that hands delivered messages, as Lambda's SQS event, to the real
  `functions.s3.trigger.handler`, deletes what it reports done and prints a line per upload
  (cropped, rejected or retried; where its crops.json or error.json is; how long it took);
- the API with its demo page under uvicorn.

Any S3 client pointed at the printed endpoint can upload to the input bucket, with any
credentials and region (it needs some), e.g.
`AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local AWS_DEFAULT_REGION=us-east-1 aws
--endpoint-url http://127.0.0.1:4566 s3 cp photo.jpg s3://autocrop-input/`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import shlex
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

ROOT = Path(__file__).resolve().parent.parent
REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's account
INPUT_BUCKET = "autocrop-input"
OUTPUT_BUCKET = "autocrop-output"
OUTPUT_PREFIX = "crops"
QUEUE = "autocrop-uploads"
#: The SSM parameter holding the crop URL signing key (created with a fresh key per run).
URL_KEY_PARAMETER = "/autocrop/local/url-signing-key"
#: After this many failed deliveries a message moves to the dead-letter queue, as a
#: Lambda's failed async event goes to its failure destination.
MAX_RECEIVES = 3


# ---------------------------------------------------------------------------------------------
# moto


def start_moto(host: str = "127.0.0.1", port: int = 0) -> tuple[Any, str]:
    """A moto server in a background thread (port 0: a free one); returns (server, URL)."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    bound_host, bound_port = server.get_host_and_port()
    return server, f"http://{bound_host}:{bound_port}"


def aws_environment(endpoint: str) -> dict[str, str]:
    """Standard AWS variables that point every boto3 client in a process at `endpoint`."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
    }


# ---------------------------------------------------------------------------------------------
# Buckets, queues, notifications


@dataclass(frozen=True)
class Stack:
    """Names and URLs of one local stack."""

    endpoint: str
    input_bucket: str
    output_bucket: str
    output_prefix: str
    queue_url: str
    queue_arn: str
    dead_letter_url: str

    def client(self, service: str) -> Any:
        return boto3.client(service, endpoint_url=self.endpoint, region_name=REGION)

    def settings_environment(self) -> dict[str, str]:
        """The AUTOCROP_* variables the handlers need for this stack."""
        return {
            "AUTOCROP_INPUT_BUCKET": self.input_bucket,
            "AUTOCROP_OUTPUT_BUCKET": self.output_bucket,
            "AUTOCROP_OUTPUT_PREFIX": self.output_prefix,
        }


def create_stack(
    endpoint: str,
    input_bucket: str = INPUT_BUCKET,
    output_bucket: str = OUTPUT_BUCKET,
    output_prefix: str = OUTPUT_PREFIX,
    queue: str = QUEUE,
    visibility_timeout: int = 30,
) -> Stack:
    """Both buckets (encrypted, private), the upload queue and its dead-letter queue, and the
    input bucket's ObjectCreated -> SQS notification. Idempotent."""
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name=REGION)
    sqs = boto3.client("sqs", endpoint_url=endpoint, region_name=REGION)
    for bucket in {input_bucket, output_bucket}:
        s3.create_bucket(Bucket=bucket)
        s3.put_bucket_encryption(
            Bucket=bucket,
            ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
            },
        )
        s3.put_public_access_block(
            Bucket=bucket,
            PublicAccessBlockConfiguration={
                "BlockPublicAcls": True,
                "IgnorePublicAcls": True,
                "BlockPublicPolicy": True,
                "RestrictPublicBuckets": True,
            },
        )
    dead_letter_url = sqs.create_queue(QueueName=f"{queue}-failures")["QueueUrl"]
    dead_letter_arn = _queue_arn(sqs, dead_letter_url)
    queue_url = sqs.create_queue(
        QueueName=queue,
        Attributes={
            "VisibilityTimeout": str(visibility_timeout),
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dead_letter_arn, "maxReceiveCount": str(MAX_RECEIVES)}),
        },
    )["QueueUrl"]
    queue_arn = _queue_arn(sqs, queue_url)
    s3.put_bucket_notification_configuration(
        Bucket=input_bucket,
        NotificationConfiguration={
            "QueueConfigurations": [{"Id": "autocrop-uploads", "QueueArn": queue_arn, "Events": ["s3:ObjectCreated:*"]}]
        },
    )
    return Stack(
        endpoint=endpoint,
        input_bucket=input_bucket,
        output_bucket=output_bucket,
        output_prefix=output_prefix,
        queue_url=queue_url,
        queue_arn=queue_arn,
        dead_letter_url=dead_letter_url,
    )


def _queue_arn(sqs: Any, url: str) -> str:
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


# ---------------------------------------------------------------------------------------------
# The poller: Lambda's SQS event source mapping, in miniature


@dataclass(frozen=True)
class LocalContext:
    """The parts of a Lambda context object that handlers and Powertools read."""

    function_name: str = "autocrop-upload-local"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 2048
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:autocrop-upload-local"
    log_group_name: str = "/aws/lambda/autocrop-upload-local"
    log_stream_name: str = "local"

    def get_remaining_time_in_millis(self) -> int:
        return 300_000


def sqs_lambda_event(messages: Iterable[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    """SQS ReceiveMessage results as the event a Lambda SQS trigger receives."""
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": m.get("MessageAttributes", {}),
                "md5OfBody": m["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": REGION,
            }
            for m in messages
        ]
    }


Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
Report = Callable[[str], None]


class Poller:
    """Delivers queued upload events to a Lambda handler; deletes the ones it reports done.

    With `report` (e.g. `print`), each upload a batch named gets one line: cropped (where its
    crops.json is), rejected (where its error.json is), skipped or failed, and how long the
    handler took; batch_size=1 makes that time the upload's own."""

    def __init__(
        self,
        stack: Stack,
        handler: Handler | None = None,
        batch_size: int = 10,
        report: Report | None = None,
    ):
        if handler is None:
            from functions.s3.trigger import handler as upload_handler

            handler = upload_handler
        self.stack = stack
        self.handler: Handler = handler
        self.batch_size = batch_size
        self.report = report
        self.sqs = stack.client("sqs")
        self.s3 = stack.client("s3") if report is not None else None  # reads the outcomes
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poll_once(self, wait_seconds: int = 0) -> int:
        """Receive one batch and hand it to the handler; returns how many messages came."""
        messages = self.sqs.receive_message(
            QueueUrl=self.stack.queue_url,
            MaxNumberOfMessages=self.batch_size,
            WaitTimeSeconds=wait_seconds,
            AttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            return 0
        event = sqs_lambda_event(messages, self.stack.queue_arn)
        started = time.perf_counter()
        try:
            response = self.handler(event, LocalContext()) or {}
            failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
        except Exception as e:  # the whole batch failed, as a raising Lambda would
            print(f"[poller] handler raised {type(e).__name__}: {e}", flush=True)
            failed = {m["MessageId"] for m in messages}
        took = time.perf_counter() - started
        done = [m for m in messages if m["MessageId"] not in failed]
        if done:
            self.sqs.delete_message_batch(
                QueueUrl=self.stack.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
            )
        if self.report is not None:
            self._report(messages, failed, took)
        return len(messages)

    def _report(self, messages: list[dict[str, Any]], failed: set[str], took: float) -> None:
        """One line per upload the batch named (an s3:TestEvent names none)."""
        report = self.report
        assert report is not None
        uploads = [(m, obj) for m in messages for obj in _uploads_in(m)]
        if len(uploads) == 1:
            timing = f"in {took:.2f} s"
        else:
            timing = f"in a batch of {len(uploads)} uploads taking {took:.2f} s"
        for message, obj in uploads:
            try:
                line = self._outcome(message, obj, message["MessageId"] in failed, timing)
            except Exception as e:  # a report must never stop the poller
                line = f"{obj.key} handled {timing}; outcome unknown ({type(e).__name__}: {e})"
            report(f"[upload] {line}")

    def _outcome(self, message: dict[str, Any], obj: Any, failed: bool, timing: str) -> str:
        if failed:
            receives = int(message.get("Attributes", {}).get("ApproximateReceiveCount", 1))
            then = "it goes to the dead-letter queue" if receives >= MAX_RECEIVES else "it will be retried"
            return f"{obj.key} failed {timing} (delivery {receives} of {MAX_RECEIVES}); {then}"
        from functions.s3.outputs import ERROR_RECORD, KEY_LIMIT, SIDECAR, hashed_error_key, output_base, read_json

        prefix = self.stack.output_prefix.strip("/")
        base = output_base(obj.key, prefix)
        bucket = self.stack.output_bucket
        error_key = f"{base}/{ERROR_RECORD}"
        if len(f"{base}/{SIDECAR}".encode()) > KEY_LIMIT:  # its record went under a short hashed key
            sidecar, error_key = None, hashed_error_key(obj.key, prefix)
        else:
            sidecar = read_json(self.s3, bucket, f"{base}/{SIDECAR}")
        error = read_json(self.s3, bucket, error_key)

        def describes(record: dict[str, Any] | None) -> bool:  # this upload, not an older one
            source = (record or {}).get("source") or {}
            return record is not None and (not obj.etag or source.get("etag") == obj.etag)

        if sidecar is not None and describes(sidecar):
            outputs = sidecar.get("outputs") or {}
            return (
                f"{obj.key} cropped {timing} -> s3://{bucket}/{base}/{SIDECAR} "
                f"({len(outputs)} crops: {', '.join(outputs)})"
            )
        if error is not None and describes(error):
            code = (error.get("error") or {}).get("code", "error")
            return f"{obj.key} rejected ({code}) {timing} -> s3://{bucket}/{error_key}"
        return (
            f"{obj.key} skipped {timing}: nothing written (the object is gone or was replaced, or is a folder marker)"
        )

    def drain(self, max_batches: int = 100) -> int:
        """Poll until the queue gives nothing; returns the messages handled."""
        total = 0
        for _ in range(max_batches):
            n = self.poll_once()
            if n == 0:
                break
            total += n
        return total

    def start(self) -> None:
        """Poll in a background thread until `stop()`."""

        def loop() -> None:
            while not self._stop.is_set():
                try:
                    self.poll_once(wait_seconds=1)
                except Exception as e:  # keep serving; a moto hiccup should not end the stack
                    print(f"[poller] {type(e).__name__}: {e}", flush=True)
                    time.sleep(1)

        self._thread = threading.Thread(target=loop, name="autocrop-poller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)


def _uploads_in(message: dict[str, Any]) -> list[Any]:
    """The objects (functions.s3.events.SourceObject) an SQS message's S3 event names."""
    from functions.s3.trigger import objects_in

    try:
        return objects_in(json.loads(message["Body"]))
    except (KeyError, TypeError, ValueError):  # InvalidEventError is a ValueError
        return []


# ---------------------------------------------------------------------------------------------
# Sample photos


def sample_photos() -> list[tuple[str, Path]]:
    """(key, path) of the photos `autocrop crop --samples` crops (`autocrop.cli.sample_photos`:
    those scikit-image and matplotlib ship), each uploaded as samples/<file name>."""
    from autocrop.cli import sample_photos as cli_sample_photos

    photos: list[tuple[str, Path]] = []
    taken: set[str] = set()
    for path in cli_sample_photos():
        key, n = f"samples/{path.name}", 1
        while key in taken:  # two packages shipping the same file name
            n += 1
            key = f"samples/{path.stem}-{n}{path.suffix}"
        taken.add(key)
        photos.append((key, path))
    return photos


def send_photos(stack: Stack, photos: Iterable[tuple[str, Path]]) -> list[str]:
    """Upload photos to the input bucket; returns their keys."""
    s3 = stack.client("s3")
    keys = []
    for key, path in photos:
        content_type = "image/png" if path.suffix.lower() == ".png" else "image/jpeg"
        s3.put_object(Bucket=stack.input_bucket, Key=key, Body=path.read_bytes(), ContentType=content_type)
        keys.append(key)
    return keys


def wait_for_outputs(stack: Stack, keys: list[str], timeout: float = 300) -> dict[str, list[str]]:
    """Wait until each key has a sidecar or an error record; returns its output keys."""
    from functions.s3.trigger import output_base

    s3 = stack.client("s3")
    deadline = time.monotonic() + timeout
    outputs: dict[str, list[str]] = {}
    while len(outputs) < len(keys) and time.monotonic() < deadline:
        for key in keys:
            if key in outputs:
                continue
            base = output_base(key, stack.output_prefix.strip("/"))
            listed = s3.list_objects_v2(Bucket=stack.output_bucket, Prefix=base + "/")
            names = [o["Key"] for o in listed.get("Contents", [])]
            if any(n.endswith(("/crops.json", "/error.json")) for n in names):
                outputs[key] = sorted(names)
        time.sleep(0.5)
    return outputs


def download(stack: Stack, keys: Iterable[str], folder: Path) -> list[Path]:
    """Copy output objects into `folder` (mirroring their keys) for a look without S3 tools."""
    s3 = stack.client("s3")
    paths = []
    for key in keys:
        path = folder / key
        path.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(stack.output_bucket, key, str(path))
        paths.append(path)
    return paths


# ---------------------------------------------------------------------------------------------
# Main


def start_api(host: str = "127.0.0.1", port: int = 0) -> tuple[Any, str]:
    """uvicorn serving `functions.api.app:app` in a background thread (port 0: a free one);
    returns (server, URL). Stop it with `server.should_exit = True`."""
    import uvicorn

    config = uvicorn.Config("functions.api.app:app", host=host, port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="autocrop-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    if not server.started:
        raise SystemExit(f"the API did not start on {host}:{port}")
    bound_port = server.servers[0].sockets[0].getsockname()[1]
    return server, f"http://{host}:{bound_port}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="autoCropper on one machine (no AWS account).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--s3-port", type=int, default=4566, help="moto (S3 + SQS); 0: any free")
    parser.add_argument("--api-port", type=int, default=8000, help="API and demo page")
    parser.add_argument("--no-samples", action="store_true", help="do not upload sample photos")
    parser.add_argument("--once", action="store_true", help="send the samples through, report, and exit")
    parser.add_argument(
        "--download-to", type=Path, default=ROOT / "out" / "local_stack",
        help="where the sample photos' crops are copied for viewing",
    )  # fmt: skip
    parser.add_argument("--verbose", action="store_true", help="the handler's INFO logs too")
    args = parser.parse_args(argv)

    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "INFO" if args.verbose else "WARNING")
    moto, endpoint = start_moto(args.host, args.s3_port)
    os.environ.update(aws_environment(endpoint))
    stack = create_stack(endpoint)
    os.environ.update(stack.settings_environment())
    # Crop URLs are signed with a key in SSM Parameter Store, as deployed (moto's SSM here).
    signing_key = secrets.token_urlsafe(32)
    stack.client("ssm").put_parameter(Name=URL_KEY_PARAMETER, Value=signing_key, Type="SecureString", Overwrite=True)
    os.environ["AUTOCROP_URL_SIGNING_KEY_PARAMETER"] = URL_KEY_PARAMETER
    # Overrides set through the API are cropped again by the poller, as the deployed queue does.
    os.environ["AUTOCROP_REGENERATE_QUEUE_URL"] = stack.queue_url

    from functions.s3.trigger import s3_client
    from functions.settings import get_settings

    get_settings.cache_clear()
    s3_client.cache_clear()
    # One upload per invocation, as S3 invokes the deployed function, so each printed line's
    # time is that upload's own.
    poller = Poller(stack, batch_size=1, report=lambda line: print(line, flush=True))
    poller.start()
    api, api_url = start_api(args.host, args.api_port)

    for line in usage_lines(stack, api_url, signing_key):
        print(line, flush=True)

    status = 0
    try:
        with urllib.request.urlopen(f"{api_url}/healthz", timeout=30) as health:
            print(f"API health:         {json.load(health)['status']}", flush=True)
        if not args.no_samples:
            status = _send_samples(stack, args.download_to)
            status |= _show_crop_url(api_url, sample_photos()[0][0], signing_key.encode())
        if not args.once:
            print("serving; Ctrl-C stops", flush=True)
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        api.should_exit = True
        poller.stop()
        moto.stop()
    return status


#: Credentials and a region for command-line S3 clients: moto accepts any, but the aws CLI
#: and boto3 refuse to send a request without some ("Unable to locate credentials").
CLI_AWS_VARIABLES = f"AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local AWS_DEFAULT_REGION={REGION}"


def cloud_command() -> str:
    """`python -m infra.cli` as a shell in any folder can run it, the venv not activated: this
    Python by its absolute path (the project's .venv/bin/python), with the checkout on
    PYTHONPATH (infra/ and functions/ are not installed packages; infra/cli.py says why)."""
    return f"PYTHONPATH={shlex.quote(str(ROOT))} {shlex.quote(sys.executable)} -m infra.cli"


def usage_lines(stack: Stack, api_url: str, signing_key: str) -> list[str]:
    """What the stack prints on start: where everything is, and commands that run as printed
    in a fresh shell (no AWS configuration, venv not activated)."""
    endpoint, cloud = stack.endpoint, cloud_command()
    where = f"--endpoint-url {endpoint} --input-bucket {stack.input_bucket} --output-bucket {stack.output_bucket}"
    return [
        f"S3 and SQS (moto):  {endpoint}   (any S3 client, with any credentials and region: "
        "the aws commands below set them inline)",
        f"input bucket:       s3://{stack.input_bucket}/",
        f"output bucket:      s3://{stack.output_bucket}/{stack.output_prefix}/<key>/",
        f"API + demo page:    {api_url}/   (OpenAPI docs: {api_url}/docs)",
        f"upload a photo:     {CLI_AWS_VARIABLES} aws --endpoint-url {endpoint} "
        f"s3 cp photo.jpg s3://{stack.input_bucket}/",
        f"see its crops:      {CLI_AWS_VARIABLES} aws --endpoint-url {endpoint} "
        f"s3 ls --recursive s3://{stack.output_bucket}/",
        f"crop photos already in the bucket: {cloud} backfill --endpoint-url {endpoint} "
        f"--output-bucket {stack.output_bucket} s3://{stack.input_bucket}/PREFIX",
        f"a signed crop URL:  AUTOCROP_URL_SIGNING_KEY={signing_key} {cloud} url KEY "
        f"--ratio 16:9 --size 640x360 --base-url {api_url} {where}",
        f"a photo's focal point: {cloud} override KEY --focal-point 0.3,0.6 {where} "
        f"--queue-url {stack.queue_url}   (--show, --clear)",
    ]


def _show_crop_url(api_url: str, key: str, secret: bytes) -> int:
    """Fetch one signed crop URL of a cropped sample from the API, as a page would."""
    from autocrop.urls import crop_url

    url = crop_url(key, "16:9", (640, 360), secret, fmt="webp", base_url=api_url)
    with urllib.request.urlopen(url, timeout=120) as response:  # follows the redirect to the current version
        body, headers, final = response.read(), response.headers, response.geturl()
    ok = response.status == 200 and headers["Content-Type"] == "image/webp"
    if final != url:
        print(f"crop URL, no version: {url}\n                    -> 302 to the current version's URL", flush=True)
    print(
        f"crop URL:           {final}\n                    -> {response.status} {headers['Content-Type']}, "
        f"{len(body)} bytes, {headers['X-Autocrop-Analysis']} analysis from the {headers.get('X-Autocrop-Source', 'original')}, {headers['Cache-Control']}",
        flush=True,
    )
    return 0 if ok else 1


def _send_samples(stack: Stack, folder: Path) -> int:
    photos = sample_photos()
    if not photos:
        print("no sample photos found (scikit-image and matplotlib ship them)")
        return 1
    keys = send_photos(stack, photos)
    print(f"sent {len(keys)} sample photos; cropping...", flush=True)
    outputs = wait_for_outputs(stack, keys)
    status = 0
    for key in keys:
        names = outputs.get(key)
        if not names:
            print(f"  {key}: no output yet")
            status = 1
            continue
        failed = any(n.endswith("/error.json") for n in names)
        status |= int(failed)
        local = download(stack, names, folder)
        print(f"  {key} -> s3://{stack.output_bucket}/{names[0].rsplit('/', 1)[0]}/")
        for name, path in zip(names, local, strict=True):
            shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
            print(f"      {name.rsplit('/', 1)[1]:<12} {shown}")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
