#!/usr/bin/env bash
# The whole test suite from a fresh machine: set up, install CI tools, audit, run pytest, and
# repeat the audit's verdict last, where a reader of the CI log looks.
set -euo pipefail
cd "$(dirname "$0")/.."
bash infra/bootstrap.sh
if [ -f infra/ci_setup.sh ]; then bash infra/ci_setup.sh; fi
# Known vulnerabilities in what the Lambda layer ships fail the run; an unreachable advisory
# service only warns, so its NOT AUDITED verdict must not scroll away above pytest's output
# (infra/audit_deps.py says why; infra/deploy.py refuses such a set).
verdict=$(mktemp)
trap 'rm -f "$verdict"' EXIT
.venv/bin/python -m infra.audit_deps --summary-file "$verdict"
status=0
# The setup above installed every outside tool (Chromium, node packages): a test that finds
# one missing fails instead of skipping (tests/tools.py).
export AUTOCROP_TOOLS_INSTALLED=1
# Lint and format on the engine, the doors, infra/, benchmarks/ and research/ (pyproject.toml: [tool.ruff]),
# types on what [tool.mypy] lists; a finding fails the run, and pytest still runs so one log
# shows everything.
.venv/bin/ruff check layers/autocrop functions infra benchmarks research || status=1
.venv/bin/ruff format --check layers/autocrop functions infra benchmarks research || status=1
.venv/bin/mypy || status=1
.venv/bin/python -m pytest "$@" || status=$?
cat "$verdict"
exit "$status"
