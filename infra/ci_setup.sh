#!/usr/bin/env bash
# What CI needs beyond pip, for the deployment and browser tests:
#   - the Serverless CLI (osls, pinned in package-lock.json) for `serverless package`;
#   - Debian's Chromium and ChromeDriver for the demo page test.
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

echo "ci_setup: $(node_modules/.bin/serverless --version 2>/dev/null | head -n 1); $(chromium --version 2>/dev/null)"
