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
