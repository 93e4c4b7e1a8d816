#!/usr/bin/env bash
# Create the venv and install requirements (dev ones with --dev); one line per step, and quick
# when everything is done already.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="$ROOT/.venv"
PY="${PYTHON:-python3}"
req="$ROOT/requirements.txt"
for_run=""
for arg in "$@"; do
  case "$arg" in
    --dev) req="$ROOT/requirements-dev.txt" ;;
    --for-run) for_run=1 ;;  # run.sh goes on to start the worker: no "ready: run ..." line
  esac
done
say() { echo "setup.sh: $*"; }
if [ ! -x "$VENV/bin/python" ]; then
  say "creating the venv $VENV with $("$PY" -c 'import sys; print(sys.executable, sys.version.split()[0])')"
  "$PY" -m venv "$VENV"
else
  say "venv: $VENV ($("$VENV/bin/python" -c 'import sys; print(sys.version.split()[0])'))"
fi
stamp="$VENV/.installed-$(basename "$req")"
if [ ! -f "$stamp" ] || [ "$req" -nt "$stamp" ] || [ "$ROOT/requirements.txt" -nt "$stamp" ]; then
  say "installing $(basename "$req") with pip (quiet; a minute the first time)"
  "$VENV/bin/python" -m pip install --disable-pip-version-check -q -r "$req"
  touch "$stamp"
else
  say "$(basename "$req"): installed already"
fi
# The worker runs with -OO (bootstrap.py): its libraries' bytecode for that, compiled once here
# instead of at every start where PYTHONDONTWRITEBYTECODE is set.
lean="$VENV/.compiled-OO"
if [ ! -f "$lean" ] || [ "$stamp" -nt "$lean" ]; then
  say "compiling the libraries' bytecode for python -OO (once)"
  "$VENV/bin/python" -m compileall -q -j 0 -o 2 "$VENV/lib" > /dev/null
  touch "$lean"
else
  say "bytecode for -OO: compiled already"
fi
# Our own modules too: the agents' CLI starts once per hand-off (plain python3), the worker
# with -OO. compileall skips what is current; a stale file is only compiled again in memory.
say "compiling the project's bytecode (the CLIs and the worker)"
"$VENV/bin/python" -m compileall -q -j 0 -o 0 -o 2 \
  -x '(^|/)(\.venv|\.tools|\.state|\.git|node_modules|mutants)(/|$)' "$ROOT" > /dev/null
[ -n "$for_run" ] || say "ready: run ./scripts/run.sh (or pm2 start ecosystem.config.js)"
