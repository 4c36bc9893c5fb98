"""Shared fixtures."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


# --- AWS on this machine: a live moto server over HTTP ------------------------------------------


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """A moto server (S3, SQS, ...) on a free 127.0.0.1 port for the session; yields its URL.

    Clients reach it over real HTTP; give each test its own bucket names to stay independent.
    """
    from infra.local_stack import start_moto

    server, url = start_moto("127.0.0.1", 0)
    yield url
    server.stop()


@pytest.fixture
def aws_env(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point every boto3 client this test creates at the moto server; yields its URL."""
    from infra.local_stack import aws_environment

    monkeypatch.delenv("AWS_PROFILE", raising=False)
    for name, value in aws_environment(moto_server).items():
        monkeypatch.setenv(name, value)
    return moto_server


# --- the Lambda layer, built once per session ---------------------------------------------------


@pytest.fixture(scope="session")
def lambda_layer() -> dict:
    """Build build/layer-arm64.zip (wheels cached under build/wheels, so reruns are offline
    and fast); returns {"report": the size report, "output": what the build printed}."""
    done = subprocess.run(
        ["nice", "-n", "10", sys.executable, "infra/build_layer.py", "--arch", "arm64"],
        cwd=ROOT, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((ROOT / "build" / "layer-arm64.json").read_text())
    return {"report": report, "output": done.stdout}
