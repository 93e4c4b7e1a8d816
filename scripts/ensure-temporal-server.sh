#!/usr/bin/env bash
# Print a directory holding the real Temporal server v1.29.1 (temporal-server), its SQL schema
# tool (temporal-sql-tool) and the PostgreSQL schema, building them with Go once if needed.
set -euo pipefail
VERSION="v1.29.1"  # the server the CLI v1.5.1 embeds
CACHE_DIR="${TEMPORAL_CLI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/temporal-build-worker}"
OUT="$CACHE_DIR/server-$VERSION"

if [ -n "${TEMPORAL_SERVER_DIR:-}" ] && [ -x "$TEMPORAL_SERVER_DIR/temporal-server" ]; then
  echo "$TEMPORAL_SERVER_DIR"; exit 0
fi
if [ -x "$OUT/temporal-server" ] && [ -x "$OUT/temporal-sql-tool" ] && [ -d "$OUT/schema" ]; then
  echo "$OUT"; exit 0
fi
if ! command -v go >/dev/null 2>&1; then
  echo "error: the cluster tests need the Temporal server $VERSION, built with Go, and Go" >&2
  echo "  was not found: install Go (https://go.dev/dl) and rerun ./scripts/test.sh" >&2
  exit 1
fi
echo "building the Temporal server $VERSION and its SQL tool with Go (one time, minutes)..." >&2
build="$(mktemp -d)"
trap 'rm -rf "$build"' EXIT
for pkg in cmd/server cmd/tools/sql; do
  if ! GOBIN="$build" GOFLAGS=-mod=mod go install "go.temporal.io/server/$pkg@$VERSION" >&2; then
    echo "error: 'go install go.temporal.io/server/$pkg@$VERSION' failed (see above)." >&2
    exit 1
  fi
done
module="$(go env GOMODCACHE)/go.temporal.io/server@$VERSION"
if [ ! -d "$module/schema/postgresql/v12" ]; then
  echo "error: the PostgreSQL schema was not found in the Go module cache ($module)" >&2
  exit 1
fi
mkdir -p "$OUT.tmp"
mv "$build/server" "$OUT.tmp/temporal-server"
mv "$build/sql" "$OUT.tmp/temporal-sql-tool"
cp -r "$module/schema/postgresql/v12" "$OUT.tmp/schema"
chmod -R u+w "$OUT.tmp/schema"
rm -rf "$OUT"
mv "$OUT.tmp" "$OUT"
echo "$OUT"
