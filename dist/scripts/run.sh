#!/usr/bin/env bash
# Installs the dependencies, builds Sluice (release) and runs a node with the example config.
# Data lives in ./sluice-data (a managed local PostgreSQL is created there on first start).
#   ./dist/scripts/run.sh                 # port 9042
#   SLUICE_PORT=9100 ./dist/scripts/run.sh
#   ./dist/scripts/run.sh --config my-config.json   # extra arguments go to `sluice serve`
#   ./dist/scripts/run.sh --tls           # HTTPS with a self-signed certificate made on first start
# The first start creates the `admin` user: $SLUICE_ADMIN_PASSWORD, else a random password written
# to <data-dir>/admin-password (docs/security.md).
set -euo pipefail
cd "$(dirname "$0")/../.."

./dist/scripts/install-deps.sh
cmake --preset release
cmake --build --preset release

data_dir="${SLUICE_DATA_DIR:-$PWD/sluice-data}"
args=(serve --port "${SLUICE_PORT:-9042}" --data-dir "$data_dir")
rest=()
for a in "$@"; do
  if [[ "$a" == "--tls" ]]; then
    mkdir -p "$data_dir"
    if [[ ! -f "$data_dir/tls-cert.pem" ]]; then
      # Self-signed, for a first start only: replace with a certificate your clients trust.
      openssl req -x509 -newkey rsa:3072 -nodes -days 365 -subj "/CN=localhost" \
        -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
        -keyout "$data_dir/tls-key.pem" -out "$data_dir/tls-cert.pem" 2>/dev/null
      chmod 600 "$data_dir/tls-key.pem"
      echo "created a self-signed certificate: $data_dir/tls-cert.pem (clients: SLUICE_CA_FILE=$data_dir/tls-cert.pem)"
    fi
    args+=(--tls-cert "$data_dir/tls-cert.pem" --tls-key "$data_dir/tls-key.pem")
  else
    rest+=("$a")
  fi
done
set -- "${rest[@]+"${rest[@]}"}"
if [[ " $* " != *" --config "* ]]; then
  args+=(--config dist/examples/config.json)
fi
exec ./build/release/bin/sluice "${args[@]}" "$@"
