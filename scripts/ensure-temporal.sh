#!/usr/bin/env bash
# Print the path of a usable Temporal CLI, building v1.5.1 with Go once if needed.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VERSION="v1.5.1"
TOOLS_BIN="$ROOT/.tools/bin"
CACHE_DIR="${TEMPORAL_CLI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/temporal-build-worker}"
CACHED="$CACHE_DIR/temporal-$VERSION"

if [ -n "${TEMPORAL_CLI:-}" ] && [ -x "$TEMPORAL_CLI" ]; then
  echo "$TEMPORAL_CLI"; exit 0
fi
if [ -x "$TOOLS_BIN/temporal" ]; then
  echo "$TOOLS_BIN/temporal"; exit 0
fi
if command -v temporal >/dev/null 2>&1; then
  command -v temporal; exit 0
fi
mkdir -p "$TOOLS_BIN" "$CACHE_DIR"
if [ ! -x "$CACHED" ]; then
  if ! command -v go >/dev/null 2>&1; then
    echo "error: the Temporal CLI is required and neither 'temporal' nor Go was found." >&2
    echo "  install it from https://docs.temporal.io/cli#install (official download)," >&2
    echo "  or install Go and rerun: go install github.com/temporalio/cli/cmd/temporal@$VERSION" >&2
    exit 1
  fi
  echo "building the Temporal CLI $VERSION with Go (one time, a few minutes)..." >&2
  build="$(mktemp -d)"
  if ! GOBIN="$build" GOFLAGS=-mod=mod go install "github.com/temporalio/cli/cmd/temporal@$VERSION" >&2; then
    rm -rf "$build"
    echo "error: 'go install github.com/temporalio/cli/cmd/temporal@$VERSION' failed (see above)." >&2
    echo "  install the CLI from https://docs.temporal.io/cli#install and put it on PATH." >&2
    exit 1
  fi
  mv "$build/temporal" "$CACHED"
  rm -rf "$build"
fi
ln -sf "$CACHED" "$TOOLS_BIN/temporal"
echo "$TOOLS_BIN/temporal"
