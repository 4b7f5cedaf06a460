#!/usr/bin/env bash
# Runs the whole test suite. Installs what it needs and, unless GATEHOUSE_TEST_DATABASE_URL names a
# PostgreSQL server, starts a throwaway one (Debian's postgresql, in a temp dir, on 127.0.0.1) and
# stops it afterwards. Extra arguments go to `swift test` (e.g. --filter EndToEnd).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_packages "${BUILD_PACKAGES[@]}" postgresql

pg_dir=""
stop_postgres() {
  if [ -n "$pg_dir" ] && [ -d "$pg_dir" ]; then
    pg_run "$PGBIN/pg_ctl" -D "$pg_dir/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$pg_dir"
  fi
}

pg_run() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

if [ -z "${GATEHOUSE_TEST_DATABASE_URL:-}" ]; then
  PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  pg_dir=$(mktemp -d /tmp/gatehouse-pg.XXXXXX)
  trap stop_postgres EXIT
  [ "$(id -u)" = 0 ] && chown postgres "$pg_dir"
  # A free port: nothing answers on it (bash's /dev/tcp, no other tool needed).
  while :; do
    port=$((20000 + RANDOM % 40000))
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || break
  done
  pg_run "$PGBIN/initdb" -D "$pg_dir/data" -A trust -U gatehouse >/dev/null
  pg_run "$PGBIN/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/log" -w \
    -o "-k $pg_dir -p $port -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=500" start >/dev/null
  export GATEHOUSE_TEST_DATABASE_URL="postgres://gatehouse@127.0.0.1:$port/postgres?sslmode=disable"
  echo "Throwaway PostgreSQL on 127.0.0.1:$port" >&2
fi

swift build --build-tests
swift test --skip-build "$@"
