#!/usr/bin/env bash
# Runs the whole test suite. Installs what it needs and, unless GATEHOUSE_TEST_DATABASE_URL names a
# PostgreSQL server, starts a throwaway one (Debian's postgresql, in a temp dir, on 127.0.0.1) and
# stops it afterwards. Extra arguments go to `swift test` (e.g. --filter EndToEnd).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_packages "${BUILD_PACKAGES[@]}"

if [ -z "${GATEHOUSE_TEST_DATABASE_URL:-}" ]; then
  start_throwaway_postgres
  export GATEHOUSE_TEST_DATABASE_URL="$THROWAWAY_POSTGRES_URL"
  # The whole server is deleted afterwards: tests need not drop their databases one by one.
  export GATEHOUSE_TEST_DATABASE_THROWAWAY=1
fi
# The suite must not quietly skip PostgreSQL.
export GATEHOUSE_TEST_REQUIRE_POSTGRES=1

# A real SAML IdP for the end-to-end tests: Debian's SimpleSAMLphp under PHP's built-in server (the
# package pulls in apache2, which is not started). The C compiler checks xmlsec's struct layout.
ensure_packages simplesamlphp php-cli php-xml php-mbstring php-curl gcc pkg-config
export GATEHOUSE_TEST_REQUIRE_SIMPLESAMLPHP=1

swift build --build-tests
# glibc fills memory it frees (beyond its small per-thread cache) with this byte, so a read of
# memory that was given back yields garbage and fails a test instead of passing by luck.
MALLOC_PERTURB_=165 swift test --skip-build "$@"
