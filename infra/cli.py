"""The commands that call AWS, apart from the engine's `autocrop` command:

    python -m infra.cli url KEY --ratio W:H --size WxH [--format webp] [--base-url URL] [--crop-version V | --offline]
                        (a signed crop URL of the crops' current version, read from crops.json)
    python -m infra.cli backfill s3://BUCKET/PREFIX [--endpoint-url URL] [--create-job ...]   (infra/backfill.py)
    python -m infra.cli override KEY [--focal-point X,Y] [--keep ...] [--box ...] [--file F] | --show | --clear
                        (a stored photo's overrides: infra/photos.py)
    python -m infra.cli rotate-url-key --parameter NAME [--endpoint-url URL]   (infra/rotate_url_key.py)

Run from the project checkout (or with it on PYTHONPATH), in the venv with the `serve` extra:
these commands drive the functions (functions/) through boto3, and neither ships in the
`autocrop` distribution.

Why `python -m infra.cli` and no console script: the `autocrop` distribution packages the
engine alone (pyproject.toml `[tool.setuptools.packages.find]` includes `autocrop*` under
layers/), so that what `pip install` gives is what the Lambda layer ships, with no boto3.
A script entry `infra.cli:main` would be installed into every environment of that
distribution, where `infra` cannot be imported; shipping infra/ and functions/ in the wheel
to make it importable would put the tooling back into the product. The engine's `autocrop`
keeps the names of the commands that moved, each answering a one-line pointer here (exit 2).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

#: How a person runs this module; error lines and usage start with it.
PROG = "python -m infra.cli"
#: Exit status: done; bad usage or input (as `autocrop`'s).
EXIT_OK, EXIT_USAGE = 0, 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="The autocrop commands that call AWS.")
    sub = parser.add_subparsers(dest="command", required=True)
    url = sub.add_parser("url", help="print the signed URL of a stored photo's crop at a size")
    url.add_argument("key", metavar="KEY", help="the photo's key in the input bucket")
    url.add_argument("--ratio", required=True, metavar="W:H", help="which crop")
    url.add_argument("--size", required=True, metavar="WxH", help="its size (of the ratio)")
    url.add_argument("--format", default="jpeg", help="jpeg (default), webp or png")
    url.add_argument(
        "--base-url", default="", metavar="URL", help="the CDN (or API) origin, e.g. https://d111.cloudfront.net"
    )
    url.add_argument("--signing-key-file", type=Path, metavar="FILE",
                     help="the signing key, or the key ring as SSM holds it: signs with its current key "
                          "(default: AUTOCROP_URL_SIGNING_KEY)")  # fmt: skip
    url.add_argument("--crop-version", metavar="VERSION",
                     help="the version of the photo's crops the URL names (default: the current one, from the "
                          "photo's crops.json in the outputs bucket)")  # fmt: skip
    url.add_argument(
        "--offline",
        action="store_true",
        help="do not read the outputs bucket: the version-less URL, which redirects to the current one",
    )
    url.add_argument("--endpoint-url", help="an S3 endpoint other than AWS's (the local stack)")
    url.add_argument("--input-bucket", help="the photos' bucket (default: AUTOCROP_INPUT_BUCKET)")
    url.add_argument("--output-bucket", help="the crops' bucket (default: AUTOCROP_OUTPUT_BUCKET)")
    url.set_defaults(func=cmd_url)
    sub.add_parser("backfill", add_help=False,
                   help=f"crop the photos already in a bucket (S3 Batch Operations, or locally): {PROG} backfill --help")  # fmt: skip
    sub.add_parser("override", add_help=False,
                   help="set, show or clear a stored photo's overrides (focal point, keep regions, boxes); "
                        f"its crops are made again: {PROG} override --help")  # fmt: skip
    sub.add_parser("rotate-url-key", add_help=False,
                   help=f"rotate the crop URL signing key in SSM Parameter Store: {PROG} rotate-url-key --help")  # fmt: skip
    return parser


def cmd_url(args: argparse.Namespace) -> int:
    """Print the signed crop URL of a stored photo (`autocrop.urls`)."""
    from autocrop.errors import InvalidOptionsError
    from autocrop.options import parse_size
    from autocrop.urls import KeyRing, SigningKeyError, crop_url

    if args.signing_key_file is not None:
        stored = args.signing_key_file.read_bytes()
    else:
        stored = os.environ.get("AUTOCROP_URL_SIGNING_KEY", "").encode()
    if not stored.strip():
        print(f"{PROG} url: the signing key: AUTOCROP_URL_SIGNING_KEY or --signing-key-file "
              "(deployed: aws ssm get-parameter --with-decryption --name <the urlSigningKeyParameter>)",
              file=sys.stderr)  # fmt: skip
        return EXIT_USAGE
    try:
        keys = KeyRing.parse(stored)
        size = parse_size(args.size)
        crop_url(args.key, args.ratio, size, keys, fmt=args.format)  # checked before any lookup
        version = args.crop_version or current_version(args)
        print(crop_url(args.key, args.ratio, size, keys, fmt=args.format, base_url=args.base_url, version=version))
    except (SigningKeyError, InvalidOptionsError, LookupError) as e:
        print(f"{PROG} url: {e}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


def current_version(args: argparse.Namespace) -> str | None:
    """The version of the photo's crops that `url` names: the current one, from the photo's
    crops.json (read by infra/photos.py); None, said on stderr, where it cannot be read or the
    photo has no crops yet (LookupError: no such photo)."""
    from infra import photos

    why = "offline (--offline)"
    if not args.offline:
        try:
            version = photos.current_version(args.key, args.endpoint_url, args.input_bucket, args.output_bucket)
        except photos.Unreachable as e:
            why = f"offline: {e}"
        else:
            if version is not None:
                return str(version)
            why = "the photo as it is now has no crops yet"
    print(f"{PROG} url: {why}: this is the version-less URL ('_' for the version), which answers a "
          "short-lived redirect (302) to the current version's URL once there is one", file=sys.stderr)  # fmt: skip
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m infra.cli`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["backfill"]:
        from infra import backfill

        return backfill.main(argv[1:])
    if argv[:1] == ["override"]:
        from infra import photos

        return photos.main(argv[1:])
    if argv[:1] == ["rotate-url-key"]:
        from infra import rotate_url_key

        return rotate_url_key.main(argv[1:])
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
