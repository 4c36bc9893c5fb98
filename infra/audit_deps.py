"""pip-audit on what the Lambda layer ships: the runtime dependencies, pinned exactly.

    .venv/bin/python -m infra.audit_deps            # what infra/test.sh runs before pytest

The audited set is the layer's requirements (`layers/build.py` `runtime_requirements`: the
engine's dependencies plus the handlers', less what Lambda provides) and everything they pull
in, each pinned to the version installed here, the one the tests run on and the layer build
is constrained to. pip-audit is run with `--disable-pip --no-deps` on that fully pinned list:
nothing is resolved or downloaded; only the vulnerability service (PyPI's JSON API) is asked.

Policy, and why:
- A known vulnerability in a shipped dependency fails CI (exit 1). The layer decodes
  untrusted images behind a public endpoint; an advisory in Pillow, OpenCV or the HTTP stack
  is exactly what must stop a release. An accepted one is listed in IGNORED with its reason.
- The service being unreachable only warns (exit 0): CI must not go red because a third
  party is down or the machine is offline, and the next run with a network audits again.
  Any other failure of the audit itself (a bad requirement, a pip-audit crash) fails.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import json
import re
import subprocess
import sys
import tempfile
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


def layer_requirements() -> list[str]:
    """The layer's top-level requirements, as layers/build.py installs them."""
    sys.path.insert(0, str(ROOT / "layers"))
    try:
        from build import runtime_requirements  # type: ignore[import-not-found]
    finally:
        sys.path.pop(0)
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
    status: int
    message: str


def judge(returncode: int, report: str | None, stderr: str) -> Outcome:
    """Read one pip-audit run: clean, vulnerable (fail), not audited (warn) or broken (fail)."""
    if report:
        dependencies = json.loads(report).get("dependencies", [])
        found = [
            (dep["name"], dep.get("version"), vuln["id"], ",".join(vuln.get("fix_versions", [])))
            for dep in dependencies
            for vuln in dep.get("vulns", [])
            if vuln["id"] not in IGNORED
        ]
        if found:
            lines = [f"  {n}=={v}: {i} (fixed in: {f or 'no fix yet'})" for n, v, i, f in found]
            return Outcome(EXIT_VULNERABLE, "audit: known vulnerabilities in shipped "
                           "dependencies:\n" + "\n".join(lines))  # fmt: skip
        # The service answers "not found" for a package it has no record of; a registry
        # mirror without PyPI's JSON API answers that for everything.
        skipped = [dep["name"] for dep in dependencies if dep.get("skip_reason")]
        if skipped and len(skipped) == len(dependencies):
            return Outcome(EXIT_CLEAN, "audit: WARNING: the vulnerability service knew none of "
                           f"the {len(skipped)} dependencies (no PyPI JSON API here?); "
                           "dependencies NOT audited this run")  # fmt: skip
        if skipped:
            return Outcome(EXIT_CLEAN, "audit: no known vulnerabilities; WARNING: not audited "
                           f"(unknown to the service): {', '.join(skipped)}")  # fmt: skip
        return Outcome(EXIT_CLEAN, "audit: no known vulnerabilities")
    if UNREACHABLE.search(stderr):
        return Outcome(EXIT_CLEAN, "audit: WARNING: the vulnerability service could not be "
                       "reached; dependencies NOT audited this run:\n  "
                       + stderr.strip().splitlines()[-1])  # fmt: skip
    return Outcome(EXIT_VULNERABLE, f"audit: pip-audit failed (exit {returncode}):\n{stderr}")


def audit(pins: dict[str, str], timeout: int = 15) -> Outcome:
    with tempfile.TemporaryDirectory() as tmp:
        requirements = Path(tmp) / "requirements.txt"
        requirements.write_text("".join(f"{n}=={v}\n" for n, v in pins.items()))
        report = Path(tmp) / "report.json"
        command = [
            sys.executable, "-m", "pip_audit", "--requirement", str(requirements),
            "--disable-pip", "--no-deps", "--vulnerability-service", "pypi",
            "--format", "json", "--output", str(report), "--progress-spinner", "off",
            "--timeout", str(timeout),
            *[arg for vuln in IGNORED for arg in ("--ignore-vuln", vuln)],
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, timeout=600)
        text = report.read_text() if report.exists() and report.stat().st_size else None
        return judge(done.returncode, text, done.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="pip-audit the Lambda layer's dependencies.")
    parser.add_argument("--list", action="store_true", help="print the pinned set and exit")
    args = parser.parse_args(argv)
    pins = pinned_closure(layer_requirements())
    if args.list:
        print("".join(f"{n}=={v}\n" for n, v in pins.items()), end="")
        return 0
    outcome = audit(pins)
    print(f"audit: the layer's {len(pins)} pinned runtime dependencies, through pip-audit")
    print(outcome.message, file=sys.stderr if outcome.status else sys.stdout)
    return outcome.status


if __name__ == "__main__":
    raise SystemExit(main())
