#!/usr/bin/env bash
# Print the path of pm2 installed from npm into a project-local prefix (installed once).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PREFIX="$ROOT/.tools/npm"
VERSION="${PM2_VERSION:-7.0.4}"
PM2="$PREFIX/node_modules/.bin/pm2"
if [ ! -x "$PM2" ]; then
  if ! command -v npm >/dev/null 2>&1; then
    echo "error: pm2 is needed by the tests and npm was not found; install Node.js and npm" >&2
    exit 1
  fi
  mkdir -p "$PREFIX"
  npm install --prefix "$PREFIX" --no-audit --no-fund --loglevel=error "pm2@$VERSION" >&2
fi
echo "$PM2"
