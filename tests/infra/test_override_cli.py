"""`python -m infra.cli override` and `... url` on the live moto server: the command stores what the
API's PUT stores, through the same checks, has the upload function crop the photo again through
the same queue, and `url` names the crops' current version (or says why it cannot)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from autocrop.urls import NO_VERSION
from functions.s3.trigger import output_base
from infra.cli import main as cloud
from infra.local_stack import ROOT, Poller, Stack
from infra.photos import PROG
from tests.doors.test_crop_urls import SECRET
from tests.doors.test_overrides import api, boxes, cropped, route, sidecar
from tests.doors.test_s3_trigger import photo, s3, stack, upload

__all__ = ["api", "s3", "stack"]  # fixtures imported for pytest

BOX = [0.1, 0.0, 0.5, 0.5 * 451 / 300 * 9 / 16]  # a 16:9 box on chelsea.png (451 x 300)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cloud(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def stored(s3: Any, stack: Stack, key: str) -> dict[str, Any] | None:
    try:
        got = s3.get_object(Bucket=stack.output_bucket, Key=f"{output_base(key, stack.output_prefix)}/overrides.json")
    except s3.exceptions.NoSuchKey:
        return None
    return json.loads(got["Body"].read())


def version_in(url: str) -> str:
    return url.split("/v1/crops/")[1].split("/")[1]


def test_override_sets_shows_and_clears_as_the_api_does(stack: Stack, s3: Any, api: TestClient, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]):  # fmt: skip
    key = "shoots/été 50%+more.png"
    first = cropped(s3, stack, key, photo())
    document = tmp_path / "overrides.json"
    document.write_text(json.dumps({"focal_point": [0.1, 0.1], "boxes": {"16:9": BOX}}))

    code, out, err = run(capsys, "override", key, "--file", str(document), "--focal-point", "0.8,0.4")
    assert code == 0, err
    assert "cropping it again" in out and "--show" in out
    assert stored(s3, stack, key) == {"focal_point": [0.8, 0.4], "boxes": {"16:9": BOX}}  # flags win over the file
    assert api.get(route(key)).json()["overrides"] == stored(s3, stack, key)  # what the API reads back
    assert Poller(stack).drain() == 1  # one regeneration, through the upload queue
    second = sidecar(s3, stack, key)
    assert second["overrides"] == {"from": "stored", "focal_point": [0.8, 0.4], "boxes": {"16:9": BOX}}
    assert second["version"] != first["version"]
    assert boxes(second)["16:9"] == [round(0.1 * 451), 0, round(0.5 * 451), round(BOX[3] * 300)]

    code, out, _ = run(capsys, "override", key, "--show")
    shown = json.loads(out)
    assert code == 0 and shown == api.get(route(key)).json()
    assert shown["version"] == second["version"] and not shown["regenerating"]

    # `url` names the current version; the API serves that URL without a redirect
    code, out, err = run(capsys, "url", key, "--ratio", "16:9", "--size", "320x180")
    assert code == 0 and err == "" and version_in(out.strip()) == second["version"]
    assert api.get(out.strip()).status_code == 200

    code, out, err = run(capsys, "override", key, "--clear")
    assert code == 0, err
    assert stored(s3, stack, key) is None and Poller(stack).drain() == 1
    assert sidecar(s3, stack, key)["version"] == first["version"]  # the automatic crops again
    code, _, err = run(capsys, "override", key, "--clear")
    assert code == 2 and "no stored overrides" in err and Poller(stack).drain() == 0


def test_bad_overrides_exit_2_with_the_reason_and_change_nothing(stack: Stack, s3: Any, api: TestClient, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]):  # fmt: skip
    key = "bad/cat.png"
    before = cropped(s3, stack, key, photo())
    broken = tmp_path / "broken.json"
    broken.write_text('{"focal_point": [0.5, 0.5], "focus": [0.1, 0.1]}')
    huge = tmp_path / "huge.json"
    huge.write_text('{"keep": [' + "[0, 0, 0.1, 0.1]," * 5000 + "[0, 0, 0.1, 0.1]]}")
    cases = [
        (["--focal-point", "1.5,0.5"], "0..1"),
        (["--focal-point", "0.5"], "--focal-point"),
        (["--keep", "0.9,0,0.5,0.5"], "edge"),
        (["--box", "16:9=0,0,1,1"], "not 16:9"),  # not of its ratio's shape on this photo
        (["--box", "3:2=0,0,1,0.9"], "does not crop"),  # a ratio the service does not crop
        (["--box", "16:9"], "W:H=X,Y,W,H"),
        (["--file", str(broken)], "unknown override field"),
        (["--file", str(huge)], "at most"),
        (["--file", str(tmp_path / "missing.json")], "--file"),
        ([], "nothing to set"),
        (["--show", "--focal-point", "0.5,0.5"], "takes no overrides"),
    ]
    for flags, why in cases:
        code, out, err = run(capsys, "override", key, *flags)
        assert code == 2 and why in err and err.startswith(f"{PROG}:"), (flags, err)
    code, _, err = run(capsys, "override", "no/such photo.png", "--focal-point", "0.5,0.5")
    assert code == 2 and "no/such photo.png" in err
    monkeypatch.delenv("AUTOCROP_REGENERATE_QUEUE_URL")
    code, _, err = run(capsys, "override", key, "--focal-point", "0.5,0.5")
    assert code == 2 and "--queue-url" in err
    monkeypatch.delenv("AUTOCROP_OUTPUT_BUCKET")
    code, _, err = run(capsys, "override", key, "--focal-point", "0.5,0.5")
    assert code == 2 and "--output-bucket" in err

    listed = s3.list_objects_v2(Bucket=stack.output_bucket).get("Contents", [])
    assert not [o for o in listed if o["Key"].endswith("overrides.json")]
    assert Poller(stack).drain() == 0  # no regeneration was asked for
    assert sidecar(s3, stack, key) == before


def test_clear_deletes_the_overrides_of_a_deleted_photo(stack: Stack, s3: Any, api: TestClient,
                                                        capsys: pytest.CaptureFixture[str]):  # fmt: skip
    key = "gone/été.png"
    cropped(s3, stack, key, photo())
    assert run(capsys, "override", key, "--focal-point", "0.2,0.2")[0] == 0
    Poller(stack).drain()
    s3.delete_object(Bucket=stack.input_bucket, Key=key)
    code, out, err = run(capsys, "override", key, "--clear")
    assert code == 0, err
    assert "nothing to crop again" in out and "--show" not in out
    assert stored(s3, stack, key) is None and Poller(stack).drain() == 0
    code, out, err = run(capsys, "override", key, "--clear")
    assert code == 2 and "no photo" in err and "no stored overrides" in err


def test_the_cloud_command_dispatches_override(stack: Stack, s3: Any, api: TestClient):
    """`python -m infra.cli override`, in a process of its own, as a person runs it in the checkout."""
    key = "cli/cat.png"
    cropped(s3, stack, key, photo())
    command = [sys.executable, "-m", "infra.cli", "override", key, "--keep", "0.6,0.5,0.3,0.4"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, env=os.environ.copy(), cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert stored(s3, stack, key) == {"keep": [[0.6, 0.5, 0.3, 0.4]]}
    Poller(stack).drain()
    record = sidecar(s3, stack, key)
    W, H = record["width"], record["height"]
    for ratio, (x, y, w, h) in boxes(record).items():  # every crop contains the region
        assert x <= 0.6 * W + 1 and x + w >= 0.9 * W - 1 and y <= 0.5 * H + 1 and y + h >= 0.9 * H - 1, ratio


def test_url_says_when_it_prints_the_version_less_form(stack: Stack, s3: Any, api: TestClient,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]):  # fmt: skip
    key = "urls/cat portrait.png"
    record = cropped(s3, stack, key, photo())
    args = ["url", key, "--ratio", "4:5", "--size", "400x500", "--format", "webp"]
    code, current, err = run(capsys, *args)
    assert code == 0 and err == "" and version_in(current) == record["version"]

    code, out, err = run(capsys, *args, "--offline")
    assert code == 0 and version_in(out) == NO_VERSION and "offline" in err and "redirect" in err
    moved = api.get(out.strip())
    assert moved.status_code == 302 and moved.headers["location"] == current.strip()  # the version-less form redirects
    code, out, err = run(capsys, *args, "--crop-version", "0123456789abcdef")
    assert code == 0 and version_in(out) == "0123456789abcdef" and err == ""

    # S3 out of reach: said, and the version-less URL all the same
    monkeypatch.setenv("AWS_ENDPOINT_URL", os.environ["AWS_ENDPOINT_URL"])  # (restored after the test)
    code, out, err = run(capsys, *args, "--endpoint-url", "http://127.0.0.1:9")
    assert code == 0 and version_in(out) == NO_VERSION and "offline: S3 could not be read" in err
    monkeypatch.setenv("AWS_ENDPOINT_URL", stack.endpoint)
    # no buckets named
    monkeypatch.delenv("AUTOCROP_INPUT_BUCKET")
    code, out, err = run(capsys, *args)
    assert code == 0 and version_in(out) == NO_VERSION and "--input-bucket" in err
    code, out, err = run(capsys, *args, "--input-bucket", stack.input_bucket)
    assert code == 0 and version_in(out) == record["version"]
    # a replaced photo not cropped again yet: no current version; no such photo: exit 2
    upload(s3, stack, key, photo("coffee.png"))
    code, out, err = run(capsys, *args, "--input-bucket", stack.input_bucket)
    assert code == 0 and version_in(out) == NO_VERSION and "no crops yet" in err
    code, out, err = run(capsys, "url", "no/such.png", "--ratio", "1:1", "--size", "100x100",
                         "--input-bucket", stack.input_bucket)  # fmt: skip
    assert code == 2 and out == "" and "no photo 'no/such.png'" in err
    # a bad request is refused before any lookup
    code, out, err = run(capsys, "url", key, "--ratio", "4:5", "--size", "400x400")
    assert code == 2 and out == ""


@pytest.fixture(autouse=True)
def _signing_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOCROP_URL_SIGNING_KEY", SECRET.decode())


def test_the_local_stacks_printed_commands_run_in_a_fresh_shell(stack: Stack, s3: Any, tmp_path: Path):
    """What `python -m infra.local_stack` prints, run as printed (no AWS or AUTOCROP_ variables)."""
    from infra.local_stack import usage_lines
    from tests.infra.test_local_stack import fresh_shell_env, printed, run_shell

    key = "fresh/cat.png"
    record = cropped(s3, stack, key, photo())
    lines = usage_lines(stack, "http://127.0.0.1:8000", "a-url-safe-signing-key-as-the-stack-makes-one")
    env = fresh_shell_env(tmp_path)
    done = run_shell(printed(lines, "a photo's focal point:").split("   (")[0].replace(" KEY ", f" {key} "), tmp_path, env)
    assert done.returncode == 0, done.stderr
    assert stored(s3, stack, key) == {"focal_point": [0.3, 0.6]}
    Poller(stack).drain()
    current = sidecar(s3, stack, key)["version"]
    assert current != record["version"]
    url = run_shell(printed(lines, "a signed crop URL:").replace(" KEY ", f" {key} "), tmp_path, env)
    assert url.returncode == 0 and url.stderr == "" and version_in(url.stdout) == current
