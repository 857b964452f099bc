#!/usr/bin/env bash
# Installs the build dependencies, builds Sluice with the `ci` preset (optimised, warnings as
# errors) and runs every test suite. Suites that need PostgreSQL start their own local cluster
# (as a non-root user when run as root), so nothing else has to be running.
#   ./dist/scripts/test.sh            # everything
#   ./dist/scripts/test.sh -L unit    # extra arguments go to ctest (and skip the fuzzers)
set -euo pipefail
cd "$(dirname "$0")/../.."

./dist/scripts/install-deps.sh
cmake --preset ci
cmake --build --preset ci
# Two cores: suites run two at a time; each suite bounds its own duration (ctest timeouts).
ctest --preset ci -j2 "$@"
# libFuzzer targets (fuzz/, clang): ~20 s each, only for a full run (no ctest filter given).
if [[ $# -eq 0 ]]; then
  ./dist/scripts/fuzz.sh
fi
