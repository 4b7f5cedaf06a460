#!/usr/bin/env bash
# Builds the benchmark in release mode and prints Gatehouse's figures. The PostgreSQL half of the
# users section gets a throwaway server unless GATEHOUSE_TEST_DATABASE_URL names one. Arguments go
# to gatehouse-bench (e.g. `scripts/bench.sh mapping`).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_packages "${BUILD_PACKAGES[@]}"
# The users section makes its databases as the tests do, on the server GATEHOUSE_TEST_DATABASE_URL names.
if [ -z "${GATEHOUSE_TEST_DATABASE_URL:-}" ] && { [ $# -eq 0 ] || [ "$1" = users ]; }; then
  start_throwaway_postgres
  export GATEHOUSE_TEST_DATABASE_URL="$THROWAWAY_POSTGRES_URL"
fi
swift build -c release --product gatehouse-bench
.build/release/gatehouse-bench "$@"
