#!/usr/bin/env bash
# The whole test suite from a fresh machine: set up, install CI tools, run pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash infra/bootstrap.sh
if [ -f infra/ci_setup.sh ]; then bash infra/ci_setup.sh; fi
# Known vulnerabilities in what the Lambda layer ships fail the run; an unreachable
# advisory service only warns (infra/audit_deps.py says why).
.venv/bin/python -m infra.audit_deps
exec .venv/bin/python -m pytest "$@"
