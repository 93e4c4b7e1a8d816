#!/usr/bin/env bash
# Print the path of a real Jaeger v1.75.0 (`cmd/jaeger`, the OpenTelemetry-Collector-based
# all-in-one) for the telemetry tests, building it with Go once into the cache if needed.
set -euo pipefail
VERSION="v1.75.0"
CACHE_DIR="${TEMPORAL_CLI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/temporal-build-worker}"
OUT="$CACHE_DIR/jaeger-$VERSION/jaeger"

if [ -n "${JAEGER_BIN:-}" ] && [ -x "$JAEGER_BIN" ]; then
  echo "$JAEGER_BIN"; exit 0
fi
if [ -x "$OUT" ]; then
  echo "$OUT"; exit 0
fi
if ! command -v go >/dev/null 2>&1; then
  echo "error: the telemetry tests need Jaeger $VERSION, built with Go, and Go was not" >&2
  echo "  found: install Go (https://go.dev/dl) and rerun ./scripts/test.sh" >&2
  exit 1
fi
echo "building Jaeger $VERSION with Go (one time, minutes)..." >&2
# Jaeger's go.mod has a replace directive, so `go install pkg@version` refuses it: build it
# as a tool of a throw-away module instead (nothing of it is kept but the binary).
build="$(mktemp -d)"
trap 'rm -rf "$build"' EXIT
pkg="github.com/jaegertracing/jaeger/cmd/jaeger"
if ! (cd "$build" && go mod init jaeger-build.local >/dev/null 2>&1 \
      && GOFLAGS=-mod=mod go get -tool "$pkg@$VERSION" >&2 \
      && GOFLAGS=-mod=mod go build -o "$build/jaeger" "$pkg" >&2); then
  echo "error: building $pkg@$VERSION with Go failed (see above)." >&2
  exit 1
fi
mkdir -p "$(dirname "$OUT")"
mv "$build/jaeger" "$OUT.tmp.$$"  # then renamed in place: a suite beside us sees all or none
mv "$OUT.tmp.$$" "$OUT"
echo "$OUT"
