# Shared by run.sh and test.sh: find Swift and install the Debian packages Gatehouse needs.

export PATH="/opt/swift/usr/bin:$PATH"

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root to run: $*" >&2; return 1; fi
}

# ensure_packages PKG...: installs the missing ones with apt-get (updating the lists once).
ensure_packages() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "Installing ${missing[*]} ..." >&2
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  if ! command -v swift >/dev/null; then
    echo "Swift 6.2 or later is required (expected at /opt/swift)." >&2
    return 1
  fi
}

# What Swift needs to build and link on Debian 12, and the C libraries Gatehouse links.
BUILD_PACKAGES=(binutils git libc6-dev libgcc-12-dev libstdc++-12-dev zlib1g-dev tzdata libedit2 pkg-config
  libxml2-dev libxmlsec1-dev libssl-dev libcurl4-openssl-dev)

# start_throwaway_postgres: Debian's postgresql in a temp dir on a free 127.0.0.1 port, stopped and
# removed when the calling script exits. Sets THROWAWAY_POSTGRES_URL.
pg_dir=""
pg_run() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
stop_postgres() {
  if [ -n "$pg_dir" ] && [ -d "$pg_dir" ]; then
    pg_run "$PGBIN/pg_ctl" -D "$pg_dir/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$pg_dir"
  fi
}
start_throwaway_postgres() {
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
  local port
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
  THROWAWAY_POSTGRES_URL="postgres://gatehouse@127.0.0.1:$port/postgres?sslmode=disable"
  echo "Throwaway PostgreSQL on 127.0.0.1:$port" >&2
}
