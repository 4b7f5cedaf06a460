#!/usr/bin/env bash
# Makes the development and test TLS certificate in certs/dev/: a self-signed EC P-256 certificate
# for localhost and 127.0.0.1, valid ten years. Dev and tests only: never deploy it.
set -euo pipefail
cd "$(dirname "$0")/dev"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
  -subj "/CN=Gatehouse development" \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -addext "basicConstraints=critical,CA:TRUE" \
  -keyout localhost.key -out localhost.crt 2>/dev/null
echo "wrote certs/dev/localhost.crt and certs/dev/localhost.key"
