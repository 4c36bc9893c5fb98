#!/usr/bin/env bash
# The whole test suite from a fresh machine: set up, install CI tools, run pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash infra/bootstrap.sh
if [ -f infra/ci_setup.sh ]; then bash infra/ci_setup.sh; fi
exec .venv/bin/python -m pytest "$@"
