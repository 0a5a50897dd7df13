#!/usr/bin/env bash
# Every test: installs missing packages, builds with AddressSanitizer and
# UndefinedBehaviorSanitizer, runs all tests through ctest, then short fuzz
# runs when clang is present: the envelope decoder, PBFT replicas against a
# Byzantine one, engines booting from damaged durable state, Raft and
# Multi-Paxos replicas under any schedule of loss, delay, crashes and hand-offs.
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
  # Each target replays its seed corpus (tests/fuzz/corpus/<name>: what
  # longer runs found, minimised), then explores a fixed number of inputs
  # from a fixed seed (libFuzzer counts the corpus replay in -runs, so each
  # budget is the corpus size plus what it explores; grow one with the
  # other): the same inputs on every run of one commit, so this
  # gate never fails at random (a finding shows up for whoever runs the
  # commit first). SYNOD_FUZZ_SECONDS=S explores for S seconds per target
  # from a random seed instead. A finding -- a crash, a sanitizer report,
  # an input running over 10 s -- fails the run and prints its input.
  fb=${build}-fuzz
  CC=clang cmake -S . -B "$fb" -DSYNOD_FUZZ=ON -DSYNOD_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
  cmake --build "$fb" -j"$jobs" --target fuzz_envelope fuzz_pbft fuzz_pbft_primary fuzz_boot fuzz_raft fuzz_paxos >/dev/null
  for t in envelope:3000000 pbft:1100 pbft_primary:850 boot:200000 raft:1830 paxos:1440; do
    name=${t%%:*}
    if [ -n "${SYNOD_FUZZ_SECONDS:-}" ]; then
      budget=(-max_total_time="$SYNOD_FUZZ_SECONDS"); what="${SYNOD_FUZZ_SECONDS}s, random seed"
    else
      budget=(-runs="${t#*:}" -seed=1); what="${t#*:} inputs, seed 1"
    fi
    corpus=$(mktemp -d)
    cp tests/fuzz/corpus/"$name"/* "$corpus"/ 2>/dev/null || true
    echo "fuzz smoke: fuzz_$name ($what)"
    (cd "$fb" && "./bin/fuzz_$name" "${budget[@]}" -timeout=10 -max_len=65536 -len_control=0 \
        "$corpus" > "fuzz_$name.log" 2>&1) || { tail -40 "$fb/fuzz_$name.log"; echo "fuzz: FAILED"; exit 1; }
    tail -1 "$fb/fuzz_$name.log"
    rm -rf "$corpus"
  done
else
  echo "fuzz smoke: skipped (clang not installed)"
fi
echo "all tests passed"
