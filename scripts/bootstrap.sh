#!/usr/bin/env bash
# Creates the platform environment (.venv) from requirements/platform.lock with uv and installs
# loan-risk into it (editable), then runs `riskctl setup`; with --env-only it stops after .venv (what
# lint and the unit tests need). Safe to re-run: each step skips itself when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
UV_VERSION="0.13.8"
digest() { sha256sum "$@" | sha256sum | cut -c1-16; }

if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv (platform environment)"
  "$PY" -m venv .venv
fi
if ! .venv/bin/uv --version 2>/dev/null | grep -q "$UV_VERSION"; then
  echo "==> installing uv $UV_VERSION into .venv"
  .venv/bin/python -m pip install -q "uv==$UV_VERSION"
fi
want="$(digest requirements/platform.lock pyproject.toml)"
if [ "$(cat .venv/.lock-digest 2>/dev/null || true)" != "$want" ]; then
  echo "==> installing requirements/platform.lock"
  .venv/bin/uv pip sync -q -p .venv/bin/python requirements/platform.lock
  .venv/bin/uv pip install -q -p .venv/bin/python uv=="$UV_VERSION"
  .venv/bin/uv pip install -q -p .venv/bin/python --no-deps -e .
  echo "$want" > .venv/.lock-digest
fi
if [ "${1:-}" = "--env-only" ]; then
  exit 0
fi
echo "==> riskctl setup"
.venv/bin/riskctl setup
