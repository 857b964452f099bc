#!/usr/bin/env bash
# Builds the libFuzzer targets in fuzz/ with clang (a separate CMake project, so the main gcc
# build never depends on clang) and runs each for a bounded time from its seed corpus. A crash,
# leak or sanitizer report fails the script and leaves the reproducer in build/fuzz/artifacts/.
#   ./dist/scripts/fuzz.sh                 # 20 s per target
#   SLUICE_FUZZ_SECONDS=300 ./dist/scripts/fuzz.sh
# Needs the main build first (fuzz_config validates against its built-in plugins):
#   SLUICE_PLUGIN_DIR defaults to build/ci/lib/sluice/plugins.
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v clang++ >/dev/null; then
  echo "fuzz.sh: clang++ is not installed (dist/scripts/install-deps.sh installs it)" >&2
  exit 1
fi
seconds="${SLUICE_FUZZ_SECONDS:-20}"
build="${SLUICE_FUZZ_BUILD_DIR:-build/fuzz}"
plugins="${SLUICE_PLUGIN_DIR:-build/ci/lib/sluice/plugins}"

cmake -S fuzz -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ >/dev/null
cmake --build "$build" -j2

mkdir -p "$build/artifacts"
for target in config dtl batch; do
  corpus="$build/corpus/$target"          # grows across runs; the seeds stay in fuzz/corpus
  mkdir -p "$corpus"
  echo "== fuzz_$target: ${seconds}s"
  SLUICE_FUZZ_PLUGIN_DIR="$(realpath -m "$plugins")" \
  ASAN_OPTIONS="detect_leaks=1:allocator_may_return_null=1" LSAN_OPTIONS="suppressions=$PWD/fuzz/lsan.supp" UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:suppressions=$PWD/fuzz/ubsan.supp" \
    "$build/fuzz_$target" -max_total_time="$seconds" -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix="$build/artifacts/$target-" "$corpus" "fuzz/corpus/$target"
done
echo "fuzz.sh: no crashes"
