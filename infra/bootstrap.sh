#!/usr/bin/env bash
# Create .venv and install autocrop with every extra (training, serving, tests).
# Idempotent: a second run only checks that the pinned set is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv with $("$PYTHON" --version 2>&1)"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.autocrop-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "bootstrap: installing the pinned packages into .venv (about 3 minutes on a fresh 2-core machine)..."
  # setuptools: what pyproject's [build-system] asks for (77: the SPDX `license` string), so
  # `pip install --no-build-isolation -e .` works in .venv too (a new venv has Python's own).
  .venv/bin/python -m pip install --quiet --upgrade pip "setuptools==84.2.1"
  .venv/bin/python -m pip install --quiet -e ".[dev]"
  touch "$stamp"
  echo "bootstrap: installed"
fi
# Byte-compile the project's own modules: where PYTHONDONTWRITEBYTECODE is set (as on this
# project's machines) Python would otherwise compile them again in every process, ~70 ms of
# each CLI start (measured). Site-packages were compiled by pip.
.venv/bin/python -m compileall -q layers/autocrop functions training infra >/dev/null || true
