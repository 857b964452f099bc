#!/usr/bin/env bash
# Installs the dependencies, builds Sluice (release) and runs a node with the example config.
# Data lives in ./sluice-data (a managed local PostgreSQL is created there on first start).
#   ./dist/scripts/run.sh                 # port 9042
#   SLUICE_PORT=9100 ./dist/scripts/run.sh
#   ./dist/scripts/run.sh --config my-config.json   # extra arguments go to `sluice serve`
set -euo pipefail
cd "$(dirname "$0")/../.."

./dist/scripts/install-deps.sh
cmake --preset release
cmake --build --preset release

args=(serve --port "${SLUICE_PORT:-9042}" --data-dir "${SLUICE_DATA_DIR:-$PWD/sluice-data}")
if [[ " $* " != *" --config "* ]]; then
  args+=(--config dist/examples/config.json)
fi
exec ./build/release/bin/sluice "${args[@]}" "$@"
