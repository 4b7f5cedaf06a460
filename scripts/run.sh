#!/usr/bin/env bash
# Runs Gatehouse on its embedded default: SQLite under ./data, signing keys generated on first start
# (sealed with ./data/master.key), listening on http://127.0.0.1:8080. Extra arguments go to `serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_packages "${BUILD_PACKAGES[@]}"
swift build --product gatehouse
exec .build/debug/gatehouse serve "$@"
