"""One spelling per crop URL at the edge: the CDN's viewer-request function (infra/edge/crop_urls.js)
run under node with CloudFront-shaped events (cloudfront-js-2.0: event.request.uri as the
viewer sent it) passes crop URLs only in their one spelling, 400 for any other, 404 for paths
that are no crop URL; and the Python rule (`autocrop.urls.parse`, what a server that sees the
spelling applies) accepts and refuses exactly the same URLs."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from autocrop.urls import ROUTE, crop_url, parse

ROOT = Path(__file__).resolve().parents[2]
EDGE = ROOT / "infra" / "edge" / "crop_urls.js"
NODE = shutil.which("node")
KEY = b"test signing key, not a real one"  # a bare key: id k0

#: Runs the function's code in a bare context (no require, no module: CloudFront Functions have
#: neither) in strict mode, as CloudFront does, and prints each URI's status (null: passed on).
RUNNER = r"""
const vm = require('vm');
const fs = require('fs');
const input = JSON.parse(fs.readFileSync(0, 'utf8'));
const context = vm.createContext({});
vm.runInContext('"use strict";\n' + input.code, context);
const out = input.uris.map((uri) => {
  const event = {
    version: '1.0',
    context: { distributionDomainName: 'd111111abcdef8.cloudfront.net', distributionId: 'EDFDVBD6EXAMPLE',
               eventType: 'viewer-request', requestId: '4TyzHTaYWb1GX1qTfsHhEqV6HUDd_BzoBZnwfnvQc_1oF26ClkoUSEQ==' },
    viewer: { ip: '198.51.100.11' },
    request: { method: 'GET', uri: uri, querystring: {}, headers: { host: { value: 'd111111abcdef8.cloudfront.net' } },
               cookies: {} },
  };
  const answer = context.handler(event);
  return answer === event.request ? null : answer.statusCode;
});
process.stdout.write(JSON.stringify(out));
"""


def run_edge(code: str, uris: list[str]) -> list[int | None]:
    """Each URI through `handler(event)` of `code` under node: its status, or None where it passes the request on."""
    # Node comes with the machine and infra/ci_setup.sh installs the Serverless CLI on it: a
    # missing node is a broken setup, not a reason to skip the only test of the edge function.
    assert NODE is not None, "node is not on PATH: the CloudFront Function cannot be tested"
    done = subprocess.run([NODE, "-e", RUNNER], input=json.dumps({"code": code, "uris": uris}),
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def url(key: str) -> str:
    return crop_url(key, "16:9", (320, 180), KEY)


def canonical() -> list[str]:
    """Crop URLs as `crop_url` writes them: keys with what percent-encoding must carry."""
    keys = ("beach.jpg", "2019/summer trip/b#ach?.jpg", "a//b.jpg", "sale%41+x.jpg", "été/写真 ü.png", "it's (1)*!~.jpg",
            "/leading.jpg")  # fmt: skip
    return [url(k) for k in keys]


def non_canonical() -> dict[str, str]:
    """The same crops spelled otherwise: each decodes to a signed path, each would be a cache
    entry and a render of its own."""
    return {
        "an escape that is not needed": url("beach.jpg").replace("beach", "be%61ch"),
        "an escaped slash": url("2019/summer/b.jpg").replace("2019/summer", "2019%2Fsummer"),
        "an escaped slash in lowercase": url("2019/summer/b.jpg").replace("2019/summer", "2019%2fsummer"),
        "lowercase hex": url("été.jpg").replace("%C3%A9", "%c3%a9"),
        "a raw character that must be escaped": url("it's.jpg").replace("%27", "'"),
        "a raw plus": url("a+b.jpg").replace("%2B", "+"),
        "an escaped tilde": url("~a.jpg").replace("~", "%7E"),
        "an escaped dot": url("beach.jpg").replace("beach.jpg", "beach%2Ejpg"),
        "raw non-ASCII": url("été.jpg").replace("%C3%A9", "é"),
        "a stray percent": url("beach.jpg").replace("beach", "be%ach"),
        "bytes that are not UTF-8": url("beach.jpg").replace("beach", "be%FFach"),
        "a dot segment": url("a/b.jpg").replace("/a/b.jpg", "/a/./b.jpg"),
        "a dot-dot segment": url("a/b.jpg").replace("/a/b.jpg", "/a/../a/b.jpg"),
        "an escaped dot-dot segment": url("a/b.jpg").replace("/a/b.jpg", "/a/%2E%2E/a/b.jpg"),
        "an escaped signature": url("beach.jpg").replace("/k0.", "/k0%2E"),
        "an escaped size": url("beach.jpg").replace("/320x180.", "/%33%32%30x180."),
        "an escaped version slot": url("beach.jpg").replace("/_/", "/%5F/"),
    }


NOT_CROP_URLS = ["/", "/docs", "/v1/crop", "/v1/crops", "/v1/crop%73/k1.x/_/a.jpg/1x1/1x1.jpg", "/V1/crops/a"]


def rest(uri: str) -> str:
    return uri[len(ROUTE) + 1:]


def test_the_edge_passes_crop_urls_only_in_their_one_spelling():
    uris = [*canonical(), *non_canonical().values(), *NOT_CROP_URLS]
    got = run_edge(EDGE.read_text(), uris)
    expected = [None] * len(canonical()) + [400] * len(non_canonical()) + [404] * len(NOT_CROP_URLS)
    assert dict(zip(uris, got)) == dict(zip(uris, expected))


def test_python_refuses_the_same_spellings_the_edge_refuses():
    from autocrop.urls import NonCanonicalUrlError

    for uri in canonical():
        assert parse(rest(uri)).request.path() == rest(uri).split("/", 1)[1]
    for why, uri in non_canonical().items():
        with pytest.raises(NonCanonicalUrlError):
            parse(rest(uri))
            pytest.fail(why)


def test_the_edge_code_fits_cloudfront_functions():
    code = EDGE.read_text()
    assert len(code.encode()) <= 10 * 1024  # CloudFront Functions' size limit
    assert "${" not in code  # serverless.yml reads it through a variable: nothing to resolve in it
    assert "require(" not in code and "module." not in code  # neither exists in CloudFront Functions
