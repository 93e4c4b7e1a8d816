#!/usr/bin/env bash
# Create the venv and install requirements (dev ones with --dev); quiet and quick when done.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="$ROOT/.venv"
PY="${PYTHON:-python3}"
req="$ROOT/requirements.txt"
[ "${1:-}" = "--dev" ] && req="$ROOT/requirements-dev.txt"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
stamp="$VENV/.installed-$(basename "$req")"
if [ ! -f "$stamp" ] || [ "$req" -nt "$stamp" ] || [ "$ROOT/requirements.txt" -nt "$stamp" ]; then
  "$VENV/bin/python" -m pip install --disable-pip-version-check -q -r "$req"
  touch "$stamp"
fi
# The worker runs with -OO (bootstrap.py): its libraries' bytecode for that, compiled once here
# instead of at every start where PYTHONDONTWRITEBYTECODE is set.
lean="$VENV/.compiled-OO"
if [ ! -f "$lean" ] || [ "$stamp" -nt "$lean" ]; then
  "$VENV/bin/python" -m compileall -q -j 0 -o 2 "$VENV/lib" > /dev/null
  touch "$lean"
fi
