#!/usr/bin/env bash
# Runs the whole test suite. Installs what it needs and, unless GATEHOUSE_TEST_DATABASE_URL names a
# PostgreSQL server, starts a throwaway one (Debian's postgresql, in a temp dir, on 127.0.0.1) and
# stops it afterwards. Extra arguments go to `swift test` (e.g. --filter EndToEnd).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_packages "${BUILD_PACKAGES[@]}"

pg_dir=""
pg_run() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
stop_postgres() {
  if [ -n "$pg_dir" ] && [ -d "$pg_dir" ]; then
    pg_run "$PGBIN/pg_ctl" -D "$pg_dir/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$pg_dir"
  fi
}

if [ -z "${GATEHOUSE_TEST_DATABASE_URL:-}" ]; then
  if ! ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1; then
    # Debian's package would otherwise create and start a system-wide cluster on port 5432.
    as_root mkdir -p /etc/postgresql-common
    echo "create_main_cluster = false" | as_root tee -a /etc/postgresql-common/createcluster.conf >/dev/null
    ensure_packages postgresql
  fi
  PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  pg_dir=$(mktemp -d /tmp/gatehouse-pg.XXXXXX)
  trap stop_postgres EXIT
  if [ "$(id -u)" = 0 ]; then chown postgres "$pg_dir"; fi
  # A free port: nothing answers on it (bash's /dev/tcp, no other tool needed).
  while :; do
    port=$((20000 + RANDOM % 40000))
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || break
  done
  pg_run "$PGBIN/initdb" -D "$pg_dir/data" -A trust -U gatehouse >"$pg_dir/initdb.log" 2>&1 || { cat "$pg_dir/initdb.log" >&2; exit 1; }
  if ! pg_run "$PGBIN/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/log" -w \
    -o "-k $pg_dir -p $port -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=500" start >/dev/null; then
    cat "$pg_dir/log" >&2
    exit 1
  fi
  export GATEHOUSE_TEST_DATABASE_URL="postgres://gatehouse@127.0.0.1:$port/postgres?sslmode=disable"
  echo "Throwaway PostgreSQL on 127.0.0.1:$port" >&2
fi
# The suite must not quietly skip PostgreSQL.
export GATEHOUSE_TEST_REQUIRE_POSTGRES=1

# A real SAML IdP for the end-to-end tests: Debian's SimpleSAMLphp under PHP's built-in server (the
# package pulls in apache2, which is not started). The C compiler checks xmlsec's struct layout.
ensure_packages simplesamlphp php-cli php-xml php-mbstring php-curl gcc pkg-config
export GATEHOUSE_TEST_REQUIRE_SIMPLESAMLPHP=1

swift build --build-tests
swift test --skip-build "$@"
