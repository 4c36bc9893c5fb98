"""The dependency audit says what it did: clean, vulnerable, partly and not audited are told
apart, driven by a stand-in pip-audit (no network), and infra/test.sh repeats the verdict last."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from infra import audit_deps
from infra.audit_deps import Verdict

ROOT = Path(__file__).resolve().parents[2]
#: A stand-in for pip-audit: reads the requirement file it is given and answers as
#: FAKE_PIP_AUDIT_MODE says, the way pip-audit 2.x answers (JSON on stdout, warnings on stderr).
FAKE_PIP_AUDIT = textwrap.dedent(
    """\
    import json, os, sys
    args = sys.argv[1:]
    pins = [line.strip().split("==") for line in open(args[args.index("--requirement") + 1]) if line.strip()]
    log = os.environ.get("FAKE_PIP_AUDIT_LOG")
    if log:
        open(log, "w").write(json.dumps({"args": args, "pins": pins}))
    mode = os.environ["FAKE_PIP_AUDIT_MODE"]
    if mode == "unreachable":
        sys.stderr.write("Traceback (most recent call last):\\n  ...\\nrequests.exceptions.ConnectionError: "
                         "HTTPSConnectionPool(host='pypi.org', port=443): Max retries exceeded\\n")
        sys.exit(1)
    if mode == "crash":
        sys.stderr.write("usage: pip-audit ...\\npip-audit: error: unrecognized arguments: --bogus\\n")
        sys.exit(2)
    deps = []
    for i, (name, version) in enumerate(pins):
        if mode == "unknown" or (mode == "partial" and i % 2):
            deps.append({"name": name, "skip_reason": f"Dependency not found on PyPI and could not be "
                         f"audited: {name} ({version})"})
        elif mode == "vulnerable" and name == "pillow":
            deps.append({"name": name, "version": version, "vulns": [
                {"id": "GHSA-test-0001", "fix_versions": ["99.0.0"], "aliases": [], "description": "x"}]})
        else:
            deps.append({"name": name, "version": version, "vulns": []})
    print(json.dumps({"dependencies": deps, "fixes": []}))
    sys.exit(1 if mode == "vulnerable" else 0)
    """
)


@pytest.fixture
def fake_pip_audit(tmp_path: Path) -> list[str]:
    """The stand-in pip-audit as a command (this interpreter running the script)."""
    script = tmp_path / "pip-audit"
    script.write_text(FAKE_PIP_AUDIT)
    return [sys.executable, str(script)]


def run_main(fake: list[str], mode: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
             monkeypatch: pytest.MonkeyPatch) -> tuple[int, list[str], str, str]:
    """`python -m infra.audit_deps` with the stand-in: (exit status, output lines, summary file, log)."""
    monkeypatch.setenv("FAKE_PIP_AUDIT_MODE", mode)
    monkeypatch.setenv("FAKE_PIP_AUDIT_LOG", str(tmp_path / "log.json"))
    summary = tmp_path / "verdict" / "audit.txt"
    status = audit_deps.main(["--pip-audit", " ".join(fake), "--summary-file", str(summary)])
    out = capsys.readouterr()
    lines = (out.out + out.err).strip().splitlines()
    return status, lines, summary.read_text(), (tmp_path / "log.json").read_text()


@pytest.mark.parametrize(
    ("mode", "status", "verdict"),
    [
        ("clean", 0, "AUDITED, CLEAN"),
        ("vulnerable", 1, "VULNERABLE"),
        ("unreachable", 0, "NOT AUDITED"),
        ("unknown", 0, "NOT AUDITED"),
        ("partial", 0, "PARTLY AUDITED"),
        ("crash", 1, "AUDIT FAILED"),
    ],
)
def test_each_outcome_ends_with_its_verdict(
    fake_pip_audit: list[str], mode: str, status: int, verdict: str, tmp_path: Path,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    got, lines, summary, log = run_main(fake_pip_audit, mode, tmp_path, capsys, monkeypatch)
    assert got == status
    # The verdict is the last line printed and the line kept for infra/test.sh.
    assert lines[-1] == summary.strip()
    assert summary.startswith(f"dependency audit: {verdict}:"), summary
    # What was audited is the layer's whole pinned set, each pin exact.
    pins = audit_deps.pinned_closure(audit_deps.layer_requirements())
    assert json.loads(log)["pins"] == [[name, version] for name, version in pins.items()]


def test_a_service_that_knew_nothing_is_not_a_clean_audit(
    fake_pip_audit: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, _, unknown, _ = run_main(fake_pip_audit, "unknown", tmp_path, capsys, monkeypatch)
    _, _, clean, _ = run_main(fake_pip_audit, "clean", tmp_path, capsys, monkeypatch)
    assert "NOT AUDITED" in unknown and "knew none" in unknown and "CLEAN" not in unknown
    pins = audit_deps.pinned_closure(audit_deps.layer_requirements())
    assert "NOT" not in clean and f"all {len(pins)} dependencies checked" in clean


def test_the_vulnerable_verdict_names_the_advisory(
    fake_pip_audit: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    status, lines, summary, _ = run_main(fake_pip_audit, "vulnerable", tmp_path, capsys, monkeypatch)
    assert status == 1
    assert any("pillow==" in line and "GHSA-test-0001" in line and "99.0.0" in line for line in lines)
    assert "pillow" in summary


def test_the_partial_verdict_names_what_was_not_checked(
    fake_pip_audit: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, _, summary, log = run_main(fake_pip_audit, "partial", tmp_path, capsys, monkeypatch)
    skipped = [name for i, (name, _) in enumerate(json.loads(log)["pins"]) if i % 2]
    assert skipped and all(name in summary for name in skipped)


def test_a_dependency_missing_from_the_report_was_not_audited() -> None:
    report = json.dumps({"dependencies": [{"name": "Pillow", "version": "12.0.0", "vulns": []}]})
    outcome = audit_deps.judge(0, report, "", expected=["pillow", "numpy"])
    assert outcome.verdict is Verdict.PARTIAL and "numpy" in outcome.summary and not outcome.audited
    assert audit_deps.judge(0, report, "", expected=["pillow"]).verdict is Verdict.CLEAN


def test_an_empty_report_audited_nothing() -> None:
    outcome = audit_deps.judge(0, json.dumps({"dependencies": [], "fixes": []}), "")
    assert outcome.verdict is Verdict.NOT_AUDITED and "NOT AUDITED" in outcome.summary


def test_an_ignored_advisory_does_not_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    report = json.dumps({"dependencies": [{"name": "pillow", "version": "1", "vulns": [{"id": "GHSA-x"}]}]})
    assert audit_deps.judge(1, report, "").verdict is Verdict.VULNERABLE
    monkeypatch.setitem(audit_deps.IGNORED, "GHSA-x", "accepted: not reachable from the handlers")
    assert audit_deps.judge(1, report, "").verdict is Verdict.CLEAN


def test_the_runner_is_injectable_and_a_hang_is_not_audited() -> None:
    seen: list[list[str]] = []

    def hangs(command: list[str]) -> subprocess.CompletedProcess[str]:
        seen.append(list(command))
        raise subprocess.TimeoutExpired(command, audit_deps.RUN_TIMEOUT_S)

    outcome = audit_deps.audit({"pillow": "12.0.0"}, runner=hangs)
    assert outcome.verdict is Verdict.NOT_AUDITED and outcome.status == 0
    assert seen and seen[0][:3] == list(audit_deps.PIP_AUDIT) and "--no-deps" in seen[0]


def test_a_missing_pip_audit_fails_the_audit(tmp_path: Path) -> None:
    outcome = audit_deps.audit({"pillow": "12.0.0"}, pip_audit=[str(tmp_path / "no-such-pip-audit")])
    assert outcome.verdict is Verdict.FAILED and outcome.status == 1


def test_the_real_pip_audit_accepts_the_command() -> None:
    """The flags are ones the pinned pip-audit understands: whatever the network allows, the
    audit runs (clean, vulnerable or not audited), it does not break."""
    outcome = audit_deps.audit({"idna": "3.10"})
    assert outcome.verdict is not Verdict.FAILED, outcome.message


def stub_tree(tmp_path: Path, pytest_status: int, lint_status: int = 0) -> Path:
    """A copy of infra/test.sh with a no-op bootstrap and a .venv python that stands in for the
    audit (NOT AUDITED) and for pytest (exits `pytest_status`); ruff and mypy stand-ins exit
    `lint_status`."""
    (tmp_path / "infra").mkdir()
    shutil.copy(ROOT / "infra" / "test.sh", tmp_path / "infra" / "test.sh")
    (tmp_path / "infra" / "bootstrap.sh").write_text("true\n")
    python = tmp_path / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        if [ "$2" = infra.audit_deps ]; then
          echo "dependency audit: NOT AUDITED: stand-in" | tee "$4"
        else
          echo "pytest: collected 3 items"; echo "3 passed"; exit {pytest_status}
        fi
        """))
    python.chmod(0o755)
    for tool in ("ruff", "mypy"):
        stand_in = python.parent / tool
        stand_in.write_text(f"#!/bin/sh\necho {tool} stand-in; exit {lint_status}\n")
        stand_in.chmod(0o755)
    return tmp_path


@pytest.mark.parametrize("pytest_status", [0, 1])
def test_test_sh_prints_the_verdict_last_and_keeps_pytests_status(tmp_path: Path, pytest_status: int) -> None:
    tree = stub_tree(tmp_path, pytest_status)
    done = subprocess.run(["bash", str(tree / "infra" / "test.sh")], capture_output=True, text=True, timeout=60)
    lines = done.stdout.strip().splitlines()
    assert done.returncode == pytest_status, done.stderr
    assert "3 passed" in lines and lines[-1] == "dependency audit: NOT AUDITED: stand-in"
    assert lines.index("3 passed") < len(lines) - 1, "the verdict comes after pytest's output"


def test_test_sh_fails_on_a_lint_or_type_finding_and_still_runs_pytest(tmp_path: Path) -> None:
    tree = stub_tree(tmp_path, pytest_status=0, lint_status=1)
    done = subprocess.run(["bash", str(tree / "infra" / "test.sh")], capture_output=True, text=True, timeout=60)
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 1
    assert "3 passed" in lines and lines[-1] == "dependency audit: NOT AUDITED: stand-in"
