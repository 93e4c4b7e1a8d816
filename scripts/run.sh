#!/usr/bin/env bash
# First command: set up, make sure a Temporal server answers (embedded dev server), run the worker.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
./scripts/setup.sh
TEMPORAL="$(./scripts/ensure-temporal.sh)"
ADDRESS="${TEMPORAL_ADDRESS:-localhost:7233}"
STATE="$ROOT/.state"

answers() {
  .venv/bin/python - "$1" <<'PY'
import socket, sys
host, _, port = sys.argv[1].rpartition(":")
try:
    socket.create_connection((host or "localhost", int(port)), timeout=1).close()
except (OSError, ValueError):
    sys.exit(1)
PY
}

if ! answers "$ADDRESS"; then
  case "$ADDRESS" in
    localhost:*|127.0.0.1:*) ;;
    *) echo "error: nothing answers on TEMPORAL_ADDRESS=$ADDRESS (not local, not starting one)" >&2
       exit 1 ;;
  esac
  mkdir -p "$STATE"
  port="${ADDRESS##*:}"
  echo "starting the Temporal dev server on $ADDRESS (Web UI http://localhost:8233," \
       "data in .state/temporal.db, log in .state/temporal-server.log)" >&2
  nohup "$TEMPORAL" server start-dev --ip 127.0.0.1 --port "$port" --ui-port 8233 \
    --db-filename "$STATE/temporal.db" --log-level warn \
    --search-attribute BuildName=Keyword --search-attribute TargetAgent=Keyword \
    >"$STATE/temporal-server.log" 2>&1 &
  echo $! >"$STATE/temporal-server.pid"
  for _ in $(seq 1 120); do
    answers "$ADDRESS" && break
    sleep 0.5
  done
  answers "$ADDRESS" || { echo "error: the dev server did not start; see .state/temporal-server.log" >&2; exit 1; }
  # The server accepts connections a moment before the namespace is ready.
  for _ in $(seq 1 60); do
    "$TEMPORAL" operator namespace describe --address "$ADDRESS" -n default >/dev/null 2>&1 && break
    sleep 0.5
  done
fi
exec .venv/bin/python worker.py
