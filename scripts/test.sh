#!/usr/bin/env bash
# Every test: installs missing packages, builds with AddressSanitizer and
# UndefinedBehaviorSanitizer, runs all tests through ctest, then a short
# fuzz run of the envelope decoder when clang is present.
set -euo pipefail
cd "$(dirname "$0")/.."
SYNOD_EXTRA_PKGS="clang" bash scripts/deps.sh
jobs=$(nproc)
build=${SYNOD_TEST_BUILD:-build-test}
cmake -S . -B "$build" -DSYNOD_SANITIZE=ON -DSYNOD_TESTING=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build "$build" -j"$jobs"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export LSAN_OPTIONS=suppressions=$(pwd)/tests/lsan.supp:print_suppressions=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
(cd "$build" && ctest --output-on-failure -j"$jobs" ${SYNOD_CTEST_ARGS:-})

if command -v clang >/dev/null 2>&1; then
  fb=${build}-fuzz
  CC=clang cmake -S . -B "$fb" -DSYNOD_FUZZ=ON -DSYNOD_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
  cmake --build "$fb" -j"$jobs" --target fuzz_envelope >/dev/null
  corpus=$(mktemp -d)
  cp tests/fuzz/corpus/envelope/* "$corpus"/ 2>/dev/null || true
  echo "fuzz smoke: fuzz_envelope for ${SYNOD_FUZZ_SECONDS:-30}s"
  "$fb/bin/fuzz_envelope" -max_total_time="${SYNOD_FUZZ_SECONDS:-30}" -max_len=65536 \
      "$corpus" > "$fb/fuzz.log" 2>&1 || { tail -40 "$fb/fuzz.log"; echo "fuzz: FAILED"; exit 1; }
  tail -1 "$fb/fuzz.log"
  rm -rf "$corpus"
else
  echo "fuzz smoke: skipped (clang not installed)"
fi
echo "all tests passed"
