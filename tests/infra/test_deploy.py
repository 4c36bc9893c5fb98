"""`python -m infra.deploy`: refuses a vulnerable, broken or (unless told) unaudited dependency
set before building or deploying anything; otherwise builds the layer and runs a stand-in
Serverless CLI that only records what it was asked."""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

import pytest

from infra import audit_deps, deploy
from tests.infra.test_audit_deps import FAKE_PIP_AUDIT

ROOT = Path(__file__).resolve().parents[2]
#: A stand-in Serverless CLI: writes its arguments to FAKE_SERVERLESS_LOG and deploys nothing.
FAKE_SERVERLESS = textwrap.dedent(
    """\
    import json, os, sys
    open(os.environ["FAKE_SERVERLESS_LOG"], "w").write(json.dumps(sys.argv[1:]))
    """
)


class Steps:
    """What the deploy did, in order: the layer build and the commands it ran."""

    def __init__(self, build_status: int = 0) -> None:
        self.done: list[str] = []
        self.build_status = build_status

    def build(self) -> int:
        self.done.append("build")
        return self.build_status


@pytest.fixture
def tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], str, Path]:
    """(stand-in pip-audit command, stand-in serverless command, where serverless logs)."""
    (tmp_path / "pip-audit").write_text(FAKE_PIP_AUDIT)
    (tmp_path / "serverless").write_text(FAKE_SERVERLESS)
    log = tmp_path / "serverless.json"
    monkeypatch.setenv("FAKE_SERVERLESS_LOG", str(log))
    monkeypatch.delenv("FAKE_PIP_AUDIT_LOG", raising=False)
    return [sys.executable, str(tmp_path / "pip-audit")], f"{sys.executable} {tmp_path / 'serverless'}", log


def deploy_with(
    tools: tuple[list[str], str, Path], mode: str, argv: Sequence[str], monkeypatch: pytest.MonkeyPatch,
    steps: Steps | None = None,
) -> tuple[int, Steps, list[str] | None]:
    """Run the deploy with the pip-audit stand-in answering as `mode`; (status, steps, serverless argv)."""
    pip_audit, serverless, log = tools
    monkeypatch.setenv("FAKE_PIP_AUDIT_MODE", mode)
    steps = steps or Steps()
    status = deploy.main(
        ["--serverless", serverless, *argv],
        audit=lambda: audit_deps.audit_layer(pip_audit=pip_audit),
        build=steps.build,
    )
    return status, steps, json.loads(log.read_text()) if log.exists() else None


@pytest.mark.parametrize("mode", ["unreachable", "unknown", "partial"])
def test_an_unaudited_set_is_refused_before_anything_is_built(
    tools, mode: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    status, steps, deployed = deploy_with(tools, mode, ["--stage", "prod"], monkeypatch)
    err = capsys.readouterr().err
    assert status != 0 and steps.done == [] and deployed is None
    assert "REFUSED" in err and "--accept-unaudited" in err and "AUDITED:" in err


@pytest.mark.parametrize("mode", ["unreachable", "unknown", "partial"])
def test_accept_unaudited_deploys_an_unaudited_set_and_says_so(
    tools, mode: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    status, steps, deployed = deploy_with(
        tools, mode, ["--stage", "prod", "--accept-unaudited", "--", "--param=bucketPrefix=acme-crops"], monkeypatch
    )
    assert status == 0 and steps.done == ["build"]
    assert deployed == ["deploy", "--stage", "prod", "--param=bucketPrefix=acme-crops"]
    assert "WARNING: deploying" in capsys.readouterr().err


@pytest.mark.parametrize("mode", ["vulnerable", "crash"])
@pytest.mark.parametrize("accept", [[], ["--accept-unaudited"]])
def test_a_vulnerable_or_broken_audit_always_refuses(
    tools, mode: str, accept: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    status, steps, deployed = deploy_with(tools, mode, accept, monkeypatch)
    assert status != 0 and steps.done == [] and deployed is None
    assert "REFUSED" in capsys.readouterr().err


def test_a_clean_audit_builds_then_deploys_the_default_stage(tools, monkeypatch: pytest.MonkeyPatch) -> None:
    status, steps, deployed = deploy_with(tools, "clean", [], monkeypatch)
    assert status == 0 and steps.done == ["build"]
    assert deployed == ["deploy", "--stage", "dev"]


def test_a_failed_layer_build_deploys_nothing(tools, monkeypatch: pytest.MonkeyPatch) -> None:
    status, steps, deployed = deploy_with(tools, "clean", ["--stage", "prod"], monkeypatch, Steps(build_status=3))
    assert status == 3 and steps.done == ["build"] and deployed is None


def test_serverless_exit_status_is_the_deploys(monkeypatch: pytest.MonkeyPatch) -> None:
    clean = audit_deps.judge(0, json.dumps({"dependencies": [{"name": "pillow", "version": "1", "vulns": []}]}), "")
    ran: list[list[str]] = []
    status = deploy.main(["--serverless", "sls", "--stage", "qa", "--", "--force"], audit=lambda: clean,
                         build=lambda: 0, run=lambda command: ran.append(list(command)) or 7)  # fmt: skip
    assert status == 7 and ran == [["sls", "deploy", "--stage", "qa", "--force"]]


def test_npm_run_deploy_is_this_command() -> None:
    scripts = json.loads((ROOT / "package.json").read_text())["scripts"]
    assert scripts["deploy"].split()[-2:] == ["-m", "infra.deploy"]

