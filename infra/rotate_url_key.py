"""Rotate the crop URL signing key in SSM Parameter Store: a new current key, the current one kept.

    python -m infra.cli rotate-url-key --parameter /autocrop/dev/url-signing-key [--endpoint-url URL]

The parameter (a SecureString, under the KMS key it already has) then holds the key ring that
`autocrop.urls.KeyRing` reads: JSON {"current": {"id": "k2", "key": ...}, "previous": {"id":
"k1", "key": ...}}. URLs signed with the key that was current keep verifying until the next
rotation; the previous one is dropped, and with it the URLs it signed. A bare key (the format
before key ids) becomes the previous key, id k0; a missing parameter is created with key k1.

The API caches the ring for AUTOCROP_URL_KEY_MAX_AGE seconds (300 by default): sign with the
new key only once that has passed, or its URLs answer 403 from instances that still hold the
old ring.
"""

from __future__ import annotations

import argparse
import secrets
import sys
from typing import Any

from autocrop.urls import KeyRing, SigningKey, SigningKeyError

#: How a person runs `main` (infra/cli.py); error lines and usage start with it.
PROG = "python -m infra.cli rotate-url-key"
#: Random bytes behind each new key (written base64url: 64 characters, twice MIN_KEY_BYTES).
NEW_KEY_BYTES = 48


def new_key() -> str:
    """A fresh random signing key, as text."""
    return secrets.token_urlsafe(NEW_KEY_BYTES)


def rotate(ssm: Any, name: str) -> KeyRing:
    """Write the rotated key ring to parameter `name`; returns it."""
    try:
        stored = ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
    except ssm.exceptions.ParameterNotFound:
        ring = KeyRing(SigningKey.of(new_key(), "k1"))
    else:
        ring = KeyRing.parse(stored).rotated(new_key())
    described = ssm.describe_parameters(ParameterFilters=[{"Key": "Name", "Values": [name]}])["Parameters"]
    kms = {"KeyId": described[0]["KeyId"]} if described and described[0].get("KeyId") else {}
    ssm.put_parameter(Name=name, Value=ring.to_json(), Type="SecureString", Overwrite=True, **kms)
    return ring


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description="Rotate the crop URL signing key (SSM Parameter Store).")
    parser.add_argument("--parameter", required=True, help="the SSM parameter, e.g. /autocrop/dev/url-signing-key")
    parser.add_argument("--endpoint-url", help="an SSM endpoint other than AWS's (the local stack)")
    parser.add_argument("--region", help="default: the AWS configuration's")
    args = parser.parse_args(argv)

    import boto3

    ssm = boto3.client("ssm", endpoint_url=args.endpoint_url, region_name=args.region)
    try:
        ring = rotate(ssm, args.parameter)
    except SigningKeyError as e:
        print(f"{PROG}: the stored key ring is unusable, nothing written: {e}", file=sys.stderr)
        return 1
    previous = ring.previous.id if ring.previous else "none"
    print(f"{args.parameter}: current key {ring.current.id}, previous {previous}. Sign with "
          f"{ring.current.id} once the API's key cache has expired (AUTOCROP_URL_KEY_MAX_AGE, 300 s by default).")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
