#!/usr/bin/env bash
# PBFT state transfer under load: n=4 on loopback, fsync on. Fills a state
# of KEYS keys with VALUE-byte values, SIGKILLs replica 3, keeps writing
# for GAP seconds (the others checkpoint and compact past it), restarts it
# while C clients write for LOAD seconds, and prints when it installed a
# snapshot by state transfer, how often (each install after the first means
# the cluster had checkpointed again while it fetched), and whether it
# converged with the others.
#
#   bench/pbft_xfer.sh [--keys 20000] [--value-size 1000] [--fill 40000]
#                      [--clients 16] [--gap 5] [--load 20]
#                      [--checkpoint-interval 128] [--chunk BYTES]
#                      [--build DIR] [--keep]
#
# Numbers are printed, never asserted. Exit 0 when the run completed.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
KEYS=20000 VS=1000 FILL=40000 C=16 GAP=5 LOAD=20 K=128 CHUNK= KEEP=
BUILD=$ROOT/build-bench
usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case $1 in
    --keys) KEYS=$2; shift 2 ;;
    --value-size) VS=$2; shift 2 ;;
    --fill) FILL=$2; shift 2 ;;
    --clients) C=$2; shift 2 ;;
    --gap) GAP=$2; shift 2 ;;
    --load) LOAD=$2; shift 2 ;;
    --checkpoint-interval) K=$2; shift 2 ;;
    --chunk) CHUNK=$2; shift 2 ;;
    --build) BUILD=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "pbft_xfer.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
B=$BUILD/bin
if [ ! -x "$B/synod" ]; then
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null && \
    cmake --build "$BUILD" -j"$(nproc)" --target synod synodctl synod-keys >/dev/null || exit 1
fi
D=$(mktemp -d "${SYNOD_BENCH_DIR:-/var/tmp}/synod-xfer.XXXXXX")
PIDS=()
cleanup() { kill "${PIDS[@]}" 2>/dev/null; wait 2>/dev/null; [ -n "$KEEP" ] || rm -rf "$D"; }
trap cleanup EXIT
"$B/synod-keys" cluster --protocol pbft --nodes 4 --base-port 15600 --clients 64 --id xfer \
  --out "$D/c" >/dev/null || exit 1
sed -i "/^\[cluster\]/a checkpoint_interval = $K" "$D/c/cluster.ini"
[ -n "$CHUNK" ] && sed -i "/^\[cluster\]/a state_chunk_bytes = $CHUNK" "$D/c/cluster.ini"
for i in 0 1 2 3; do "$B/synod" --config "$D/c/node-$i.ini" >"$D/n$i.log" 2>&1 & PIDS[$i]=$!; done
sleep 2
CTL=("$B/synodctl" --cluster "$D/c/cluster.ini")
bench() { "${CTL[@]}" bench --value-size "$VS" --read-ratio 0 --keys "$KEYS" "$@" 2>&1 | tail -2 | tr '\n' ' '; echo; }
echo "fill: $FILL puts over $KEYS keys of $VS bytes: $(bench --clients 32 --requests "$FILL")"
kill -9 "${PIDS[3]}"; wait "${PIDS[3]}" 2>/dev/null
echo "replica 3 SIGKILLed; $GAP s more: $(bench --clients 16 --duration "$GAP")"
bench --clients "$C" --duration "$LOAD" > "$D/load.out" &
BP=$!
sleep 1
t0=$(date +%s.%N)
"$B/synod" --config "$D/c/node-3.ini" >>"$D/n3.log" 2>&1 & PIDS[3]=$!
echo "replica 3 restarted under $C clients at $(date -u +%T.%3N)"
wait $BP
echo "load: $(cat "$D/load.out")"
secs() { date -d "$1" +%s.%N; }
n=0
while read -r ts rest; do
  n=$((n + 1))
  idx=$(sed -n 's/.*at index \([0-9]*\) (\([0-9]*\) bytes).*/\1 \2/p' <<<"$rest")
  printf 'install %d: +%s s after the restart, checkpoint %s (%s bytes)\n' "$n" \
    "$(awk -v a="$(secs "$ts")" -v b="$t0" 'BEGIN { printf "%.2f", a - b }')" "${idx% *}" "${idx#* }"
done < <(grep 'installed snapshot' "$D/n3.log" | awk '{print $1, $0}')
[ "$n" -gt 0 ] || echo "no snapshot installed by state transfer"
ok=
for _ in $(seq 1 60); do
  v=$("${CTL[@]}" status --json 2>/dev/null | grep -o '"applied_index": *[0-9]*' | grep -o '[0-9]*$')
  [ "$(wc -l <<<"$v")" = 4 ] && [ "$(sort -u <<<"$v" | wc -l)" = 1 ] && { ok=1; break; }
  sleep 0.5
done
[ -n "$ok" ] && echo "converged: all four replicas at the same applied index" \
  || { echo "NOT converged within 30 s of the load's end:"; "${CTL[@]}" status 2>&1; }
[ -n "$KEEP" ] && echo "kept $D"
exit 0
