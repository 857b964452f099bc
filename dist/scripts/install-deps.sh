#!/usr/bin/env bash
# Installs the Debian packages Sluice builds and runs with. Idempotent: packages
# already present are skipped by apt. Needs root (or sudo).
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config
  libpoco-dev libboost-dev rapidjson-dev
  libpqxx-dev libpq-dev libssl-dev libcppunit-dev
  postgresql postgresql-contrib
  curl procps tzdata openssl
  clang libclang-rt-14-dev  # libFuzzer targets (fuzz/, Debian 12: clang 14), built only when clang is present
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  exit 0
fi

sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then sudo_cmd=(sudo); fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
