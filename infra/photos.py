"""The AWS commands on one stored photo: its overrides, and its crops' current version.

    python -m infra.cli override KEY [--focal-point X,Y] [--keep X,Y,W,H ...] [--box W:H=X,Y,W,H ...] [--file F.json]
    python -m infra.cli override KEY --show
    python -m infra.cli override KEY --clear
        [--endpoint-url URL] [--input-bucket B] [--output-bucket B] [--queue-url URL]

Setting stores the overrides (`autocrop.overrides`) as the API's PUT /v1/photos/<key>/overrides
does, through the same code (`functions.api.photos.store_overrides`): checked whole first (a
malformed value, a box of a ratio the service does not crop or not of its ratio's shape on the
photo: exit 2 with the reason, nothing written), written to `<prefix>/<key>/overrides.json`,
replacing what was stored, and the photo is cropped again by the upload function through the
regeneration queue. `--clear` deletes them (the DELETE route; a deleted photo's too, with
nothing to crop again); `--show` prints what the GET
route answers: the stored overrides, what the crops were made with, their version and URLs.

`python -m infra.cli url` (infra/cli.py) asks `current_version` for the version its URL names.

Settings come from the AUTOCROP_* variables the functions read (`functions.settings`), the
flags winning; `--endpoint-url` points at the local stack (`python -m infra.local_stack`),
whose buckets and queue are then the defaults.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

#: How a person runs `main` (infra/cli.py); error lines and usage start with it.
PROG = "python -m infra.cli override"
#: Exit status: done; AWS failed (nothing, or only the stored file, changed); bad usage or input.
EXIT_OK, EXIT_AWS, EXIT_USAGE = 0, 1, 2
#: A lookup for `python -m infra.cli url` waits this long for S3 before it prints the version-less URL.
LOOKUP_TIMEOUT_S = 5


class Unreachable(Exception):
    """The photo's current version could not be read (no buckets configured, no credentials,
    no network, no access): `python -m infra.cli url` then prints the version-less URL."""


class NoPhoto(LookupError):
    """The input bucket has no photo under the key."""


def local_defaults(endpoint_url: str, queue: bool) -> dict[str, str]:
    """Point boto3 at `endpoint_url` (the local stack) and return its buckets (and, with
    `queue`, its queue, which the local stack's poller drains) as settings."""
    from infra.local_stack import INPUT_BUCKET, OUTPUT_BUCKET, QUEUE, aws_environment

    os.environ["AWS_ENDPOINT_URL"] = endpoint_url
    for name, value in aws_environment(endpoint_url).items():
        os.environ.setdefault(name, value)
    defaults = {"input_bucket": INPUT_BUCKET, "output_bucket": OUTPUT_BUCKET}
    if queue:
        import boto3
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            defaults["regenerate_queue_url"] = boto3.client("sqs").get_queue_url(QueueName=QUEUE)["QueueUrl"]
        except (BotoCoreError, ClientError):  # no such queue there: the missing queue is reported
            pass
    return defaults


def settings_from(endpoint_url: str | None, queue: bool = False, **given: str | None) -> Any:
    """The functions' settings (AUTOCROP_* variables), with the flags `given` over them and,
    with `endpoint_url`, the local stack's names where neither says."""
    from functions.api import photos
    from functions.s3 import outputs
    from functions.settings import Settings

    local = local_defaults(endpoint_url, queue) if endpoint_url else {}
    env = Settings()
    chosen = {name: value for name, value in given.items() if value}
    for name, value in local.items():  # the local stack's names, unless configured
        if not getattr(env, name) and name not in chosen:
            chosen[name] = value
    outputs.s3_client.cache_clear()  # (clients made before the endpoint was known)
    photos.sqs_client.cache_clear()
    return Settings(**chosen)


def current_version(key: str, endpoint_url: str | None = None, input_bucket: str | None = None,
                    output_bucket: str | None = None) -> str | None:  # fmt: skip
    """The version of the photo's crops its crops.json records, if they are of the photo as it
    is now (None: not cropped since it was uploaded); `Unreachable` or `NoPhoto` otherwise."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    from functions.api.crops import current_version as version_of
    from functions.api.crops import photo_head
    from functions.api.models import ApiError
    from functions.s3.events import bare_etag
    from functions.s3.outputs import SIDECAR, output_base, read_json

    settings = settings_from(endpoint_url, input_bucket=input_bucket, output_bucket=output_bucket)
    if not (settings.input_bucket and settings.output_bucket):
        raise Unreachable("no buckets named: --input-bucket and --output-bucket, or AUTOCROP_INPUT_BUCKET and "
                          "AUTOCROP_OUTPUT_BUCKET")  # fmt: skip
    s3 = boto3.client("s3", config=Config(connect_timeout=LOOKUP_TIMEOUT_S, read_timeout=LOOKUP_TIMEOUT_S,
                                          retries={"mode": "standard", "max_attempts": 2}))  # fmt: skip
    try:
        head = photo_head(s3, settings, key)
        sidecar = read_json(s3, settings.output_bucket, f"{output_base(key, settings.normalised_prefix)}/{SIDECAR}")
    except ApiError as e:
        if e.status == 404:
            raise NoPhoto(f"no photo {key!r} in s3://{settings.input_bucket}/") from e
        raise Unreachable(e.detail) from e
    except (BotoCoreError, ClientError) as e:
        raise Unreachable(f"S3 could not be read: {e}") from e
    return version_of(sidecar, str(bare_etag(head.get("ETag"))))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Set, show or clear a stored photo's overrides; setting or clearing crops it again.",
    )
    parser.add_argument("key", metavar="KEY", help="the photo's key in the input bucket")
    what = parser.add_argument_group("set (replacing what is stored), from flags and/or a JSON file")
    what.add_argument("--focal-point", metavar="X,Y", help="the point every crop centres on, fractions 0..1")
    what.add_argument("--keep", action="append", metavar="X,Y,W,H", help="a region every crop contains, repeatable")
    what.add_argument("--box", action="append", metavar="W:H=X,Y,W,H",
                      help="the exact crop of a ratio (of its shape on the photo), repeatable")  # fmt: skip
    what.add_argument("--file", metavar="FILE",
                      help='JSON {"focal_point": [x, y], "keep": [[x, y, w, h]], "boxes": {"W:H": [x, y, w, h]}} '
                           "(- reads stdin); flags win over it")  # fmt: skip
    other = parser.add_mutually_exclusive_group()
    other.add_argument(
        "--show",
        action="store_const",
        const="show",
        dest="action",
        default="set",
        help="print the stored overrides, the crops' version and their URLs",
    )
    other.add_argument(
        "--clear",
        action="store_const",
        const="clear",
        dest="action",
        help="delete the stored overrides (back to the upload's metadata or the automatic crops)",
    )
    aws = parser.add_argument_group("where (default: the AUTOCROP_* variables the functions read)")
    aws.add_argument("--endpoint-url", help="an AWS endpoint other than AWS's (the local stack: http://127.0.0.1:4566)")
    aws.add_argument("--input-bucket", help="the photos' bucket (AUTOCROP_INPUT_BUCKET; the stack's InputBucket)")
    aws.add_argument("--output-bucket", help="the crops' bucket (AUTOCROP_OUTPUT_BUCKET; the stack's OutputBucket)")
    aws.add_argument("--prefix", help="the outputs' prefix in it (AUTOCROP_OUTPUT_PREFIX, default crops)")
    aws.add_argument("--queue-url", help="the regeneration queue (AUTOCROP_REGENERATE_QUEUE_URL; the stack's "
                     "RegenerateQueueUrl)")  # fmt: skip
    return parser


def given_overrides(args: argparse.Namespace, settings: Any) -> Any:
    """The overrides the flags and `--file` give (InvalidOptionsError / ApiError: the reason)."""
    from autocrop.overrides import Overrides
    from functions.api.photos import checked_overrides

    flags = Overrides.from_flags(args.focal_point, args.keep or (), args.box or ())
    if not args.file:
        return flags
    try:
        document = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    except OSError as e:
        from autocrop.errors import InvalidOptionsError

        raise InvalidOptionsError(f"--file: {e}") from e
    return checked_overrides(document, settings).merged(flags)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setting = bool(args.focal_point or args.keep or args.box or args.file)
    if args.action != "set" and setting:
        print(f"{PROG}: --{args.action} takes no overrides", file=sys.stderr)
        return EXIT_USAGE
    if args.action == "set" and not setting:
        print(f"{PROG}: nothing to set: give --focal-point, --keep, --box or --file, "
              "or --show / --clear", file=sys.stderr)  # fmt: skip
        return EXIT_USAGE

    from botocore.exceptions import BotoCoreError, ClientError

    from autocrop.errors import InvalidOptionsError
    from functions.api import photos
    from functions.api.models import ApiError

    settings = settings_from(args.endpoint_url, queue=args.action != "show", input_bucket=args.input_bucket,
                             output_bucket=args.output_bucket, output_prefix=args.prefix,
                             regenerate_queue_url=args.queue_url)  # fmt: skip
    missing = [flag for flag, value in (("--input-bucket", settings.input_bucket),
                                        ("--output-bucket", settings.output_bucket)) if not value]  # fmt: skip
    if missing:
        print(f"{PROG}: say where the photo is: {' and '.join(missing)} (or AUTOCROP_INPUT_BUCKET, "
              "AUTOCROP_OUTPUT_BUCKET)", file=sys.stderr)  # fmt: skip
        return EXIT_USAGE
    try:
        if args.action == "show":
            print(json.dumps(photos.state(args.key, settings), indent=2, ensure_ascii=False))
            return EXIT_OK
        if args.action == "clear":
            if not photos.clear_overrides(args.key, settings):
                print(
                    f"{args.key}: stored overrides deleted; the photo is not in the input bucket: nothing to crop again"
                )
                return EXIT_OK
            print(f"{args.key}: stored overrides deleted; cropping it again")
        else:
            overrides = given_overrides(args, settings)
            photos.store_overrides(args.key, overrides, settings)
            print(f"{args.key}: overrides stored: {json.dumps(overrides.to_json())}; cropping it again")
    except InvalidOptionsError as e:
        print(f"{PROG}: {e}; nothing changed", file=sys.stderr)
        return EXIT_USAGE
    except ApiError as e:
        if e.code == "regeneration_not_configured":
            print(f"{PROG}: say which queue crops the photo again: --queue-url or "
                  "AUTOCROP_REGENERATE_QUEUE_URL (the stack's RegenerateQueueUrl output); nothing changed", file=sys.stderr)  # fmt: skip
        else:
            print(f"{PROG}: {e.detail}; nothing changed", file=sys.stderr)
        return EXIT_USAGE
    except (BotoCoreError, ClientError) as e:
        print(f"{PROG}: AWS: {e}", file=sys.stderr)
        return EXIT_AWS
    print(f"  `{PROG} {shlex.quote(args.key)} --show` says when its new crops and their version are there")
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
