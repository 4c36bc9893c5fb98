#!/bin/sh
# Build build/layer-<arch>.zip (infra/build_layer.py) when it is missing or its inputs changed since
# it was built; `npm run package` runs this before `serverless package`, so a fresh clone packages.
# Uses the project's .venv (infra/bootstrap.sh): the layer pins the versions installed there.
# Arguments go to infra/build_layer.py (e.g. --arch x86_64); PYTHON=... picks another interpreter.
set -eu
cd "$(dirname "$0")/.."
if [ -n "${PYTHON:-}" ]; then
  python=$PYTHON
elif [ -x .venv/bin/python ]; then
  python=.venv/bin/python
else
  python=python3
  echo "build_layer: no .venv (run infra/bootstrap.sh); pinning the layer to $python's packages" >&2
fi
exec "$python" infra/build_layer.py --if-stale "$@"
