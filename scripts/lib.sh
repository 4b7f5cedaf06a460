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
