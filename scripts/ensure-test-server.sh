#!/usr/bin/env bash
# Print the path of a launcher for Temporal's Java test server (time-skipping), resolving
# io.temporal:temporal-test-server and its dependencies from Maven Central once (cached).
set -euo pipefail
VERSION="1.31.0"
CACHE_DIR="${TEMPORAL_CLI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/temporal-build-worker}"
HOME_DIR="$CACHE_DIR/test-server-$VERSION"
LAUNCHER="$HOME_DIR/launch"
if [ -x "$LAUNCHER" ] && [ -s "$HOME_DIR/classpath" ]; then
  echo "$LAUNCHER"; exit 0
fi
for tool in java mvn; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "error: '$tool' is required for the time-skipping tests (Debian: apt-get install" \
         "openjdk-17-jre-headless maven; scripts/ensure-system-packages.sh does it)" >&2
    exit 1
  fi
done
mkdir -p "$HOME_DIR"
work="$(mktemp -d)"
cat >"$work/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.temporal-build-worker</groupId>
  <artifactId>time-skipping-server</artifactId>
  <version>1</version>
  <dependencies>
    <dependency>
      <groupId>io.temporal</groupId>
      <artifactId>temporal-test-server</artifactId>
      <version>$VERSION</version>
    </dependency>
  </dependencies>
</project>
POM
echo "resolving io.temporal:temporal-test-server:$VERSION from Maven Central (one time)..." >&2
if ! (cd "$work" && mvn -q -B dependency:build-classpath \
        -Dmdep.outputFile="$HOME_DIR/classpath" >&2); then
  rm -rf "$work"
  echo "error: maven could not resolve io.temporal:temporal-test-server:$VERSION (see above)" >&2
  exit 1
fi
rm -rf "$work"
cat >"$LAUNCHER" <<SH
#!/bin/sh
# Temporal's Java test server; the Python SDK's start_time_skipping() passes the port.
exec java -cp "\$(cat "$HOME_DIR/classpath")" io.temporal.testserver.TestServer "\$@"
SH
chmod +x "$LAUNCHER"
echo "$LAUNCHER"
