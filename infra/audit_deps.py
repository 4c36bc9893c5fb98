"""pip-audit on what the Lambda layer ships: the runtime dependencies, pinned exactly.

    .venv/bin/python -m infra.audit_deps            # what infra/test.sh runs before pytest
    .venv/bin/python -m infra.audit_deps --summary-file build/audit.txt   # keep the verdict

The audited set is the layer's requirements (`infra/build_layer.py` `runtime_requirements`: the
engine's dependencies plus the handlers', less what Lambda provides) and everything they pull
in, each pinned to the version installed here, the one the tests run on and the layer build
is constrained to. pip-audit is run with `--disable-pip --no-deps` on that fully pinned list:
nothing is resolved or downloaded; only the vulnerability service (PyPI's JSON API) is asked.

Verdicts, and why:
- CLEAN: the service answered for every dependency and knew no advisory (exit 0).
- VULNERABLE: a known vulnerability in a shipped dependency fails CI (exit 1). The layer
  decodes untrusted images behind a public endpoint; an advisory in Pillow, OpenCV or the HTTP
  stack is exactly what must stop a release. An accepted one is listed in IGNORED with its reason.
- NOT AUDITED: the service could not be reached, or answered "unknown" for every dependency
  (a registry mirror without PyPI's JSON API does that): nothing was checked. The test run
  still passes (exit 0) so a third party's outage or an offline machine does not turn CI red,
  but the verdict is printed last, and `python -m infra.deploy` refuses such a set unless told
  `--accept-unaudited`.
- PARTLY AUDITED: the service knew some dependencies but not all; the rest were not checked
  (exit 0, named in the summary; the deploy treats it as not audited).
- AUDIT FAILED: any other failure of the audit itself (a bad requirement, a pip-audit crash)
  fails (exit 1): an audit that cannot run must be fixed, not ignored.
"""

from __future__ import annotations

import argparse
import enum
import importlib.metadata as md
import json
import re
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
#: Vulnerability ids accepted on purpose: {id: why}. Empty: nothing is accepted today.
IGNORED: dict[str, str] = {}
#: What pip-audit prints when it cannot reach the vulnerability service.
UNREACHABLE = re.compile(
    r"ConnectionError|ConnectTimeout|ReadTimeout|Max retries exceeded|Name or service not known|"
    r"Temporary failure in name resolution|Network is unreachable|ServiceError|"
    r"Connection (refused|reset|aborted)|SSLError|ProxyError",
    re.IGNORECASE,
)
EXIT_CLEAN, EXIT_VULNERABLE = 0, 1
#: pip-audit as this interpreter runs it (the venv's, next to the packages it audits).
PIP_AUDIT: tuple[str, ...] = (sys.executable, "-m", "pip_audit")
#: Seconds for the whole pip-audit run; past it the service counts as unreachable.
RUN_TIMEOUT_S = 600
#: Runs one command and returns its exit status, stdout and stderr (injectable for tests).
Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]


class Verdict(enum.Enum):
    """What one audit established, as the summary line spells it."""

    CLEAN = "AUDITED, CLEAN"
    VULNERABLE = "VULNERABLE"
    PARTIAL = "PARTLY AUDITED"
    NOT_AUDITED = "NOT AUDITED"
    FAILED = "AUDIT FAILED"


def layer_requirements() -> list[str]:
    """The layer's top-level requirements, as infra/build_layer.py installs them."""
    from infra.build_layer import runtime_requirements

    return list(runtime_requirements())


def pinned_closure(requirements: list[str]) -> dict[str, str]:
    """{name: installed version} for the requirements and everything they depend on."""
    pins: dict[str, str] = {}
    todo = [(Requirement(r), "") for r in requirements]
    while todo:
        req, extra = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": extra}):
            continue
        name = canonicalize_name(req.name)
        try:
            dist = md.distribution(req.name)
        except md.PackageNotFoundError as e:
            raise SystemExit(f"audit: {req.name} is required but not installed") from e
        extras_needed = set(req.extras)
        seen_before = name in pins
        pins[name] = dist.version
        for child in dist.requires or []:
            child_req = Requirement(child)
            if child_req.marker is None:
                if not seen_before:
                    todo.append((child_req, ""))
                continue
            for wanted in extras_needed | {""}:
                if child_req.marker.evaluate({"extra": wanted}) and (not seen_before or wanted):
                    todo.append((child_req, wanted))
    return dict(sorted(pins.items()))


@dataclass(frozen=True)
class Outcome:
    """One audit's verdict: the exit status, the details, and the one-line summary."""

    verdict: Verdict
    message: str
    summary: str

    @property
    def status(self) -> int:
        """Exit status of the audit command: only a finding or a broken audit fails a test run."""
        return EXIT_VULNERABLE if self.verdict in (Verdict.VULNERABLE, Verdict.FAILED) else EXIT_CLEAN

    @property
    def audited(self) -> bool:
        """Every dependency was checked (whatever was found)."""
        return self.verdict in (Verdict.CLEAN, Verdict.VULNERABLE)


def _summary(verdict: Verdict, detail: str) -> str:
    return f"dependency audit: {verdict.value}: {detail}"


def _not_audited(message: str, detail: str) -> Outcome:
    return Outcome(Verdict.NOT_AUDITED, message, _summary(
        Verdict.NOT_AUDITED, f"{detail}; no dependency was checked for known vulnerabilities "
        "(a deploy needs --accept-unaudited)"))  # fmt: skip


def judge(returncode: int, report: str | None, stderr: str, expected: Iterable[str] = ()) -> Outcome:
    """Read one pip-audit run: clean, vulnerable (fail), not or partly audited (warn), or broken (fail).

    `expected` names the dependencies asked about: one missing from the report was not audited.
    """
    expected = sorted({canonicalize_name(name) for name in expected})
    if report:
        try:
            dependencies = json.loads(report).get("dependencies", [])
        except (ValueError, AttributeError):
            return _failed(returncode, f"unreadable report: {report[:200]!r}\n{stderr}")
        found = [
            (dep["name"], dep.get("version"), vuln["id"], ",".join(vuln.get("fix_versions", [])))
            for dep in dependencies
            for vuln in dep.get("vulns", [])
            if vuln["id"] not in IGNORED
        ]
        if found:
            lines = [f"  {n}=={v}: {i} (fixed in: {f or 'no fix yet'})" for n, v, i, f in found]
            names = sorted({n for n, *_ in found})
            return Outcome(Verdict.VULNERABLE, "audit: known vulnerabilities in shipped dependencies:\n"
                           + "\n".join(lines), _summary(Verdict.VULNERABLE, f"{len(found)} known "
                           f"vulnerabilities in {', '.join(names)}"))  # fmt: skip
        # The service answers "not found" for a package it has no record of; a registry
        # mirror without PyPI's JSON API answers that for everything.
        checked = {canonicalize_name(dep["name"]) for dep in dependencies if not dep.get("skip_reason")}
        asked = sorted(set(expected) | {canonicalize_name(dep["name"]) for dep in dependencies})
        unchecked = [name for name in asked if name not in checked]
        if not checked:
            return _not_audited(
                f"audit: WARNING: the vulnerability service knew none of the {len(asked)} dependencies "
                "(no PyPI JSON API here?); dependencies NOT audited this run",
                f"the vulnerability service knew none of the {len(asked)} dependencies",
            )
        if unchecked:
            return Outcome(Verdict.PARTIAL, "audit: no known vulnerabilities in the "
                           f"{len(checked)} checked; WARNING: NOT audited (unknown to the service): "
                           + ", ".join(unchecked), _summary(Verdict.PARTIAL, f"{len(checked)} of "
                           f"{len(asked)} dependencies checked, no known vulnerabilities; NOT "
                           f"checked: {', '.join(unchecked)}"))  # fmt: skip
        return Outcome(Verdict.CLEAN, "audit: no known vulnerabilities", _summary(
            Verdict.CLEAN, f"all {len(checked)} dependencies checked, no known vulnerabilities"))  # fmt: skip
    if UNREACHABLE.search(stderr):
        return _not_audited(
            "audit: WARNING: the vulnerability service could not be reached; dependencies NOT "
            "audited this run:\n  " + stderr.strip().splitlines()[-1],
            "the vulnerability service could not be reached",
        )
    return _failed(returncode, stderr)


def _failed(returncode: int, stderr: str) -> Outcome:
    return Outcome(Verdict.FAILED, f"audit: pip-audit failed (exit {returncode}):\n{stderr}",
                   _summary(Verdict.FAILED, f"pip-audit failed (exit {returncode}); see above"))  # fmt: skip


def run_command(command: Sequence[str]) -> subprocess.CompletedProcess[str]:
    """Run `command`, capturing its output as text."""
    return subprocess.run(list(command), capture_output=True, text=True, timeout=RUN_TIMEOUT_S)


def audit(
    pins: dict[str, str], timeout: int = 15, *, pip_audit: Sequence[str] = PIP_AUDIT, runner: Runner = run_command
) -> Outcome:
    """pip-audit the pinned set (`pip_audit` is the command, `runner` what runs it)."""
    with tempfile.TemporaryDirectory() as tmp:
        requirements = Path(tmp) / "requirements.txt"
        requirements.write_text("".join(f"{n}=={v}\n" for n, v in pins.items()))
        command = [
            *pip_audit, "--requirement", str(requirements),
            "--disable-pip", "--no-deps", "--vulnerability-service", "pypi",
            "--format", "json", "--progress-spinner", "off", "--timeout", str(timeout),
            *[arg for vuln in IGNORED for arg in ("--ignore-vuln", vuln)],
        ]  # fmt: skip
        try:
            done = runner(command)
        except subprocess.TimeoutExpired:
            return _not_audited(f"audit: WARNING: pip-audit did not finish in {RUN_TIMEOUT_S} s; "
                                "dependencies NOT audited this run",
                                "the vulnerability service did not answer in time")  # fmt: skip
        except OSError as e:  # pip-audit itself missing or not executable
            return _failed(127, str(e))
        # The JSON report is pip-audit's whole stdout; its warnings go to stderr.
        return judge(done.returncode, done.stdout if done.stdout.strip() else None, done.stderr, pins)


def audit_layer(*, pip_audit: Sequence[str] = PIP_AUDIT, runner: Runner = run_command) -> Outcome:
    """The audit of the layer's pinned runtime set."""
    return audit(pinned_closure(layer_requirements()), pip_audit=pip_audit, runner=runner)


def main(argv: list[str] | None = None, *, runner: Runner = run_command) -> int:
    parser = argparse.ArgumentParser(description="pip-audit the Lambda layer's dependencies.")
    parser.add_argument("--list", action="store_true", help="print the pinned set and exit")
    parser.add_argument(
        "--summary-file", type=Path, help="also write the one-line verdict here (infra/test.sh prints it again last)"
    )
    parser.add_argument(
        "--pip-audit",
        type=shlex.split,
        default=list(PIP_AUDIT),
        help="the pip-audit command (default: this interpreter's pip_audit module)",
    )
    args = parser.parse_args(argv)
    pins = pinned_closure(layer_requirements())
    if args.list:
        print("".join(f"{n}=={v}\n" for n, v in pins.items()), end="")
        return 0
    outcome = audit(pins, pip_audit=args.pip_audit, runner=runner)
    out = sys.stderr if outcome.status else sys.stdout
    print(f"audit: the layer's {len(pins)} pinned runtime dependencies, through pip-audit", file=out)
    print(outcome.message, file=out)
    print(outcome.summary, file=out)
    if args.summary_file:
        args.summary_file.parent.mkdir(parents=True, exist_ok=True)
        args.summary_file.write_text(outcome.summary + "\n")
    return outcome.status


if __name__ == "__main__":
    raise SystemExit(main())
