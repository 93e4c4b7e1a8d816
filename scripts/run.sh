#!/usr/bin/env bash
# First command: set up, make sure a Temporal server answers (embedded dev server), run the worker.
# `run.sh --where` only prints where this address's dev server keeps its state and its Web UI.
#
# Each address has a state directory of its own (.state/<host>_<port>: database, log, pid file,
# Web UI URL), so two run.sh on different addresses share nothing. The Web UI's port is
# TEMPORAL_UI_PORT, else the gRPC port + 1000 (the Temporal CLI's own default: 8233 for 7233).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
ADDRESS="${TEMPORAL_ADDRESS:-localhost:7233}"
PORT="${ADDRESS##*:}"
case "$PORT" in
  ''|*[!0-9]*) echo "run.sh: error: TEMPORAL_ADDRESS=$ADDRESS is not host:port" >&2; exit 2 ;;
esac
UI_PORT="${TEMPORAL_UI_PORT:-$((PORT + 1000))}"
case "$UI_PORT" in
  ''|*[!0-9]*) echo "run.sh: error: TEMPORAL_UI_PORT=$UI_PORT is not a port" >&2; exit 2 ;;
esac
UI_URL="http://localhost:$UI_PORT"
STATE="$ROOT/.state/$(printf '%s' "$ADDRESS" | tr -c 'A-Za-z0-9.-' '_')"
PIDFILE="$STATE/temporal-server.pid"

say() { echo "run.sh: $*" >&2; }

if [ "${1:-}" = "--where" ]; then
  printf 'address: %s\nstate: %s\npid file: %s\nWeb UI: %s\n' "$ADDRESS" "$STATE" "$PIDFILE" \
    "$UI_URL"
  exit 0
fi

say "setting up the project (scripts/setup.sh)"
./scripts/setup.sh --for-run >&2  # its lines beside ours, not in the worker's log stream
say "finding the Temporal CLI (scripts/ensure-temporal.sh)"
TEMPORAL="$(./scripts/ensure-temporal.sh)"
say "Temporal CLI: $TEMPORAL"

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

# Before state directories were per address, the default address kept its database in .state/.
adopt_old_state() {
  if [ "$ADDRESS" = "localhost:7233" ] && [ -f "$ROOT/.state/temporal.db" ] && [ ! -e "$STATE" ]; then
    mkdir -p "$STATE"
    mv "$ROOT"/.state/temporal.db* "$STATE"/
    rm -f "$ROOT/.state/temporal-server.pid"
    say "moved .state/temporal.db into $STATE (one state directory per address now)"
  fi
}

if answers "$ADDRESS"; then
  if [ -f "$STATE/web-ui-url" ] && kill -0 "$(cat "$PIDFILE" 2>/dev/null || echo x)" 2>/dev/null; then
    say "Temporal answers on $ADDRESS (the dev server run.sh started: Web UI $(cat "$STATE/web-ui-url"))"
  else
    say "Temporal answers on $ADDRESS (not started by run.sh: its Web UI is wherever that server serves it)"
  fi
else
  case "$ADDRESS" in
    localhost:*|127.0.0.1:*) ;;
    *) say "error: nothing answers on TEMPORAL_ADDRESS=$ADDRESS (not local, not starting one)"
       exit 1 ;;
  esac
  adopt_old_state
  mkdir -p "$STATE"
  say "starting the Temporal dev server on $ADDRESS (Web UI $UI_URL, data in" \
      "$STATE/temporal.db, log in $STATE/temporal-server.log; stop it with:" \
      "kill \$(cat $PIDFILE))"
  # The HTTP API on the gRPC port + 10 (7243 for 7233), where the agents' CLI looks for it.
  # A session of its own: Ctrl-C in this terminal stops the worker, never the server.
  setsid nohup "$TEMPORAL" server start-dev --ip 127.0.0.1 --port "$PORT" --ui-port "$UI_PORT" \
    --http-port "$((PORT + 10))" --db-filename "$STATE/temporal.db" --log-level warn \
    --search-attribute BuildName=Keyword --search-attribute TargetAgent=Keyword \
    >"$STATE/temporal-server.log" 2>&1 &
  echo $! >"$PIDFILE"
  echo "$UI_URL" >"$STATE/web-ui-url"
  for _ in $(seq 1 120); do
    answers "$ADDRESS" && break
    sleep 0.5
  done
  answers "$ADDRESS" || { say "error: the dev server did not start; see $STATE/temporal-server.log"; exit 1; }
  # The server accepts connections a moment before the namespace is ready.
  for _ in $(seq 1 60); do
    "$TEMPORAL" operator namespace describe --address "$ADDRESS" -n default >/dev/null 2>&1 && break
    sleep 0.5
  done
  say "the dev server is up on $ADDRESS; Web UI $UI_URL"
fi
# glibc's allocator for the worker, read only as a process starts (bootstrap.py's
# ALLOCATOR_ENV says why); values already set stay.
export MALLOC_ARENA_MAX="${MALLOC_ARENA_MAX:-2}"
export MALLOC_MMAP_THRESHOLD_="${MALLOC_MMAP_THRESHOLD_:-131072}"
export MALLOC_TRIM_THRESHOLD_="${MALLOC_TRIM_THRESHOLD_:-131072}"
say "starting the worker (.venv/bin/python worker.py): it prints 'worker ready: ...' once it serves"
exec .venv/bin/python worker.py
