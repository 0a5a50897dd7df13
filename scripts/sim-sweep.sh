#!/usr/bin/env bash
# Long seeded simulation sweeps: builds synod-sim if needed, then runs
# --seeds N seeds (in parallel chunks, one per CPU) and reports every failing
# seed with the command line that replays it.
#
#   scripts/sim-sweep.sh --protocol raft --seeds 10000 [--faults all] [--nodes 5]
#                        [--start S] [--requests R] [--jobs J] [-- extra synod-sim args]
#
# Environment: SYNOD_SIM_BUILD (default build-sim) is the build directory
# (configured with SYNOD_TESTING=ON so --byzantine behaviours exist);
# SYNOD_SIM_SANITIZE=ON builds with ASan/UBSan (slower, catches memory bugs).
# Exit: 0 all seeds passed, 1 some seed failed, 2 usage error.
set -euo pipefail
cd "$(dirname "$0")/.."

protocol="" seeds="" faults="all" nodes=3 start=1 requests=200 jobs=$(nproc)
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --protocol) protocol=$2; shift 2 ;;
    --seeds) seeds=$2; shift 2 ;;
    --faults) faults=$2; shift 2 ;;
    --nodes) nodes=$2; shift 2 ;;
    --start) start=$2; shift 2 ;;
    --requests) requests=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "sim-sweep: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[ -n "$protocol" ] || { echo "sim-sweep: --protocol is required (raft, paxos or pbft)" >&2; exit 2; }
[[ "$seeds" =~ ^[0-9]+$ ]] && [ "$seeds" -ge 1 ] || { echo "sim-sweep: --seeds wants a count >= 1" >&2; exit 2; }
[[ "$jobs" =~ ^[0-9]+$ ]] && [ "$jobs" -ge 1 ] || jobs=1

build=${SYNOD_SIM_BUILD:-build-sim}
if [ ! -f "$build/CMakeCache.txt" ]; then
  # An optimised build for speed, asserts kept (no NDEBUG). GCC's
  # -Wformat-truncation only fires with optimisation; it is a lint the
  # normal Debug builds enforce, not something a sweep should stop on.
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O2 -g" -DCMAKE_C_FLAGS="-Wno-format-truncation" \
        -DSYNOD_SANITIZE="${SYNOD_SIM_SANITIZE:-OFF}" -DSYNOD_TESTING=ON >/dev/null
fi
cmake --build "$build" -j"$(nproc)" --target synod-sim >/dev/null
sim="$build/bin/synod-sim"

[ "$jobs" -gt "$seeds" ] && jobs=$seeds
chunk=$(( (seeds + jobs - 1) / jobs ))
logdir=$(mktemp -d)
trap 'rm -rf "$logdir"' EXIT
t0=$(date +%s)
pids=()
for ((j = 0; j < jobs; j++)); do
  s=$(( start + j * chunk ))
  n=$chunk
  [ $(( s + n )) -gt $(( start + seeds )) ] && n=$(( start + seeds - s ))
  [ "$n" -le 0 ] && continue
  "$sim" --protocol "$protocol" --nodes "$nodes" --seed "$s" --seeds "$n" \
         --requests "$requests" --faults "$faults" "${extra[@]}" \
         >"$logdir/$j.out" 2>&1 &
  pids+=($!)
done
failed=0
for j in "${!pids[@]}"; do
  rc=0
  wait "${pids[$j]}" || rc=$?
  if [ "$rc" -ne 0 ]; then
    [ "$rc" -eq 2 ] && { cat "$logdir/$j.out" >&2; exit 2; }
    failed=1
    if grep -q "FAILED check" "$logdir/$j.out"; then
      grep -h "FAILED check\|replay:" "$logdir/$j.out"
    else
      echo "sim-sweep: chunk $j exited $rc without a failed check (crash or sanitizer report):"
      tail -30 "$logdir/$j.out"
    fi
  fi
done
t1=$(date +%s)
echo "sim-sweep: $protocol, $nodes nodes, seeds $start..$(( start + seeds - 1 )), faults $faults:" \
     "$( [ $failed -eq 0 ] && echo "all passed" || echo "FAILURES above (each chunk stops at its first failing seed)")" \
     "in $(( t1 - t0 ))s"
exit $failed
