#!/usr/bin/env bash
# Second command: set up everything the tests drive for real, then run the whole suite.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
./scripts/setup.sh --dev
./scripts/ensure-system-packages.sh
TEMPORAL_CLI="$(./scripts/ensure-temporal.sh)"
PM2_BIN="$(./scripts/ensure-pm2.sh)"
TEMPORAL_SERVER_DIR="$(./scripts/ensure-temporal-server.sh)"
TEMPORAL_TEST_SERVER="$(./scripts/ensure-test-server.sh)"
JAEGER_BIN="$(./scripts/ensure-jaeger.sh)"
export TEMPORAL_CLI PM2_BIN TEMPORAL_SERVER_DIR TEMPORAL_TEST_SERVER JAEGER_BIN
exec .venv/bin/python -m pytest "$@"
