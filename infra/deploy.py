"""Deploy the stack: audit the layer's dependencies, build the layer if stale, `serverless deploy`.

    .venv/bin/python -m infra.deploy --stage prod -- --param="bucketPrefix=<globally unique prefix>"
    npm run deploy -- --stage prod -- --param="bucketPrefix=<globally unique prefix>"
    .venv/bin/python -m infra.deploy --stage prod --accept-unaudited -- ...   # no advisory service

Arguments after `--` go to `serverless deploy` unchanged. The dependency audit
(`infra.audit_deps`) runs first, so a refusal costs seconds, not a layer build:
- a known vulnerability (not listed in `audit_deps.IGNORED`) always refuses;
- an audit that broke (pip-audit crashed, a bad requirement) always refuses: fix it;
- a set the advisory service did not check (unreachable, or it knew none or only some of
  the dependencies: NOT AUDITED / PARTLY AUDITED) refuses unless `--accept-unaudited`, so
  shipping unchecked dependencies is a decision someone typed, not a warning nobody read.
Then `infra/build_layer.sh` rebuilds build/layer-arm64.zip if its inputs changed (with this
interpreter, whose packages the audit just read), and the Serverless CLI deploys.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from infra import audit_deps

ROOT = Path(__file__).resolve().parent.parent
#: The pinned Serverless CLI (package.json's osls), else whatever npx finds.
LOCAL_SERVERLESS = ROOT / "node_modules" / ".bin" / "serverless"
EXIT_REFUSED = 1


def default_serverless() -> list[str]:
    """The Serverless CLI command: the project's own install when present."""
    return [str(LOCAL_SERVERLESS)] if LOCAL_SERVERLESS.exists() else ["npx", "serverless"]


def build_layer() -> int:
    """Rebuild the layer zip when stale, pinned to this interpreter's packages (the audited ones)."""
    env = {**os.environ, "PYTHON": sys.executable}
    return subprocess.run(["sh", str(ROOT / "infra" / "build_layer.sh")], cwd=ROOT, env=env).returncode


def run_command(command: Sequence[str]) -> int:
    """Run `command` in the project root with this terminal; its exit status."""
    return subprocess.run(list(command), cwd=ROOT).returncode


def refusal(outcome: audit_deps.Outcome, accept_unaudited: bool) -> str | None:
    """Why the audited set must not ship, or None when it may."""
    if outcome.verdict is audit_deps.Verdict.CLEAN:
        return None
    if outcome.verdict is audit_deps.Verdict.VULNERABLE:
        return ("known vulnerabilities in the layer's dependencies: upgrade them, or accept one "
                "on purpose in infra/audit_deps.py IGNORED with its reason")  # fmt: skip
    if outcome.verdict is audit_deps.Verdict.FAILED:
        return "the dependency audit itself failed (see above); fix it and deploy again"
    if accept_unaudited:
        return None
    return ("the layer's dependencies were not (all) checked for known vulnerabilities; deploy "
            "from a machine that reaches PyPI's vulnerability service, or pass --accept-unaudited "
            "to ship them unchecked")  # fmt: skip


def parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    """Our options, and what follows `--` (for `serverless deploy`)."""
    argv = list(argv)
    ours, extra = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    parser = argparse.ArgumentParser(
        prog="python -m infra.deploy",
        description="Audit the layer's dependencies, build the layer if stale, then `serverless deploy`.",
        epilog="Arguments after `--` go to `serverless deploy`.",
    )
    parser.add_argument("--stage", default="dev", help="the Serverless stage (default: dev)")
    parser.add_argument("--accept-unaudited", action="store_true",
                        help="deploy even when no advisory service checked the dependencies "
                             "(never overrides a known vulnerability)")  # fmt: skip
    parser.add_argument(
        "--serverless",
        type=shlex.split,
        default=None,
        help="the Serverless CLI command (default: node_modules/.bin/serverless, else npx)",
    )
    return parser.parse_args(ours), extra


def main(
    argv: Sequence[str] | None = None,
    *,
    audit: Callable[[], audit_deps.Outcome] = audit_deps.audit_layer,
    build: Callable[[], int] = build_layer,
    run: Callable[[Sequence[str]], int] = run_command,
) -> int:
    args, extra = parse_args(sys.argv[1:] if argv is None else argv)
    outcome = audit()
    print(outcome.message, file=sys.stderr)
    print(outcome.summary, file=sys.stderr)
    why = refusal(outcome, args.accept_unaudited)
    if why is not None:
        print(f"deploy: REFUSED: {why}", file=sys.stderr)
        return EXIT_REFUSED
    if not outcome.audited:
        print(f"deploy: WARNING: deploying {outcome.verdict.value} dependencies (--accept-unaudited)",
              file=sys.stderr)  # fmt: skip
    status = build()
    if status != 0:
        print(f"deploy: the layer build failed (exit {status}); nothing deployed", file=sys.stderr)
        return status
    command = [*(args.serverless or default_serverless()), "deploy", "--stage", args.stage, *extra]
    print(f"deploy: {shlex.join(command)}", file=sys.stderr)
    return run(command)


if __name__ == "__main__":
    raise SystemExit(main())
