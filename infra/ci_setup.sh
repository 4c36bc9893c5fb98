#!/usr/bin/env bash
# What CI needs beyond pip, for the deployment and browser tests:
#   - the Serverless CLI (osls, pinned in package-lock.json) for `serverless package`;
#   - Debian's Chromium and ChromeDriver for the demo page test;
#   - as root, the emulated arm64 root of the layer's arm64 check (infra/arm64_check.py).
# Idempotent: a second run checks and returns in about a second.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x node_modules/.bin/serverless ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi

if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    chromium chromium-driver >/dev/null
fi

# The emulated arm64 root of infra/arm64_check.py (qemu-user-static, mmdebstrap, Debian's
# python3.13 for arm64; about 7 minutes once, then cached in ~/.cache/autocrop-arm64): made before
# the tests so infra/build_layer.py compiles the layer's bytecode in it and tests/infra/test_arm64.py runs
# the layer zip there. Needs root; AUTOCROP_ARM64=0 opts out.
arm64="arm64 root: skipped"
if [ "${AUTOCROP_ARM64:-}" != "0" ] && [ "$(id -u)" -eq 0 ] && [ "$(uname -s)" = Linux ]; then
  python=python3
  [ -x .venv/bin/python ] && python=.venv/bin/python
  if "$python" -m infra.arm64_check --root-only >/dev/null; then
    arm64="arm64 root: ready"
  else
    arm64="arm64 root: FAILED (python -m infra.arm64_check --root-only says why)"
  fi
fi

echo "ci_setup: $(node_modules/.bin/serverless --version 2>/dev/null | head -n 1); $(chromium --version 2>/dev/null); $arm64"
