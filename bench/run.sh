#!/usr/bin/env bash
# Cluster benchmark: real synod processes on loopback, fsync on (LMDB synced
# commits on the disk the data directory is on). For each protocol (raft and
# paxos with n=3, pbft with n=4) and each client count, `synodctl bench`
# writes 16-byte keys and 100-byte values for a fixed time; the table gives
# throughput and latency beside the signature floor measured in the same run
# (bench_sigfloor) and, with --etcd, etcd 3.4 on the same machine.
#
#   bench/run.sh [--protocols raft,paxos,pbft] [--clients 1,16,64]
#                [--duration S] [--etcd] [--memory MINUTES]
#                [--memory-protocol P] [--rounds R] [--build DIR] [--keep]
#                [--halt-poll NS]
#
# --etcd        also run ../shared/bench/etcd/etcd_bench.sh 3 (put only, same
#               client counts and duration; installs Debian's etcd and wrk)
# --memory M    afterwards, run raft n=3 under 16 clients for M minutes and
#               print each node's RssAnon every 30 s (compaction is on: the
#               default snapshot_threshold; PBFT: checkpoints)
# --memory-protocol P   the protocol of that run (raft, paxos, pbft n=4)
# --rounds R    repeat the protocol runs and the etcd runs R times, taking
#               turns (synod, etcd, synod, ...), and print the median of each
#               row over the rounds and the Raft/etcd ratio of every round:
#               runs minutes apart on a shared VM differ by 10-20%
# --build DIR   Release build directory (default build-bench; configured and
#               built if needed)
# --keep        keep the cluster directories and logs
# --halt-poll NS  run with the guest's haltpoll cpuidle driver polling NS
#               nanoseconds before it halts an idle vCPU (root; restored
#               afterwards): what a wake-up costs on a VM is this setting
#               (docs/benchmarks.md, "Session 22"; Linux's default 200000)
# Env: SYNOD_BENCH_DIR (where data goes; default /var/tmp, must not be tmpfs
#      for fsync to mean anything), ETCD_REPS (wrk repetitions, default 1),
#      SYNOD_BENCH_PERF=1 (perf record -g the leader during the 16-client run).
#      SYNOD_BENCH_PIN=1 (node i pinned to core i mod cores; an experiment, see bench/README.md).
# Numbers are printed, never asserted. Exit 0 when every run completed.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

PROTOCOLS=raft,paxos,pbft
CLIENTS=1,16,64
DURATION=10
ETCD=
MEMORY=
MEMPROTO=raft
ROUNDS=1
BUILD=$ROOT/build-bench
KEEP=
HALTPOLL=
HP=/sys/module/haltpoll/parameters/guest_halt_poll_ns
usage() { sed -n '2,35p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case $1 in
    --protocols) PROTOCOLS=${2:?--protocols needs a list}; shift 2 ;;
    --clients) CLIENTS=${2:?--clients needs a list}; shift 2 ;;
    --duration) DURATION=${2:?--duration needs seconds}; shift 2 ;;
    --etcd) ETCD=1; shift ;;
    --memory) MEMORY=${2:?--memory needs minutes}; shift 2 ;;
    --memory-protocol) MEMPROTO=${2:?--memory-protocol needs raft, paxos or pbft}; shift 2 ;;
    --rounds) ROUNDS=${2:?--rounds needs a count}; shift 2 ;;
    --build) BUILD=${2:?--build needs a directory}; shift 2 ;;
    --keep) KEEP=1; shift ;;
    --halt-poll) HALTPOLL=${2:?--halt-poll needs nanoseconds}; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "run.sh: unknown argument '$1' (see bench/run.sh --help)" >&2; exit 2 ;;
  esac
done
[[ $DURATION =~ ^[0-9]+$ ]] && [ "$DURATION" -ge 1 ] || { echo "run.sh: --duration wants whole seconds >= 1" >&2; exit 2; }
[[ $ROUNDS =~ ^[0-9]+$ ]] && [ "$ROUNDS" -ge 1 ] || { echo "run.sh: --rounds wants a whole number >= 1" >&2; exit 2; }
if [ -n "$HALTPOLL" ]; then
  [[ $HALTPOLL =~ ^[0-9]+$ ]] || { echo "run.sh: --halt-poll wants whole nanoseconds, got '$HALTPOLL'" >&2; exit 2; }
  [ -w "$HP" ] || { echo "run.sh: --halt-poll needs root and the haltpoll cpuidle driver ($HP is not writable)" >&2; exit 2; }
fi
[ -z "$MEMORY" ] || [[ $MEMORY =~ ^[0-9]+$ ]] || { echo "run.sh: --memory wants whole minutes" >&2; exit 2; }
case $MEMPROTO in raft|paxos) MEMN=3 ;; pbft) MEMN=4 ;;
  *) echo "run.sh: unknown --memory-protocol '$MEMPROTO' (raft, paxos, pbft)" >&2; exit 2 ;; esac
IFS=, read -r -a PROTOS <<<"$PROTOCOLS"
IFS=, read -r -a CLS <<<"$CLIENTS"
MAXC=1
for c in "${CLS[@]}"; do
  [[ $c =~ ^[0-9]+$ ]] && [ "$c" -ge 1 ] || { echo "run.sh: bad client count '$c'" >&2; exit 2; }
  [ "$c" -gt "$MAXC" ] && MAXC=$c
done
[ -n "$MEMORY" ] && [ "$MAXC" -lt 16 ] && MAXC=16
for p in "${PROTOS[@]}"; do
  case $p in raft|paxos|pbft) ;; *) echo "run.sh: unknown protocol '$p' (raft, paxos, pbft)" >&2; exit 2 ;; esac
done

# ---------------------------------------------------------------- build
# -Wno-error for two warnings gcc 12 raises only with optimisation or without
# SYNOD_TESTING (see docs/benchmarks.md); the flags change no code.
if [ ! -f "$BUILD/CMakeCache.txt" ]; then
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release \
    "-DCMAKE_C_FLAGS=-Wno-error=maybe-uninitialized -Wno-error=unused-function" >/dev/null ||
    { echo "run.sh: cmake configure failed" >&2; exit 1; }
fi
if ! cmake --build "$BUILD" -j"$(nproc)" --target synod synodctl synod-keys bench_sigfloor bench_handoff >"$BUILD/bench-build.log" 2>&1; then
  grep -E "error" "$BUILD/bench-build.log" | head -5 >&2
  echo "run.sh: build failed (full log: $BUILD/bench-build.log)" >&2; exit 1
fi
BIN=$BUILD/bin

# ---------------------------------------------------------------- setup
WORK=$(mktemp -d "${SYNOD_BENCH_DIR:-/var/tmp}/synod-bench.XXXXXX")
FSTYPE=$(stat -f -c %T "$WORK")
NODE_PIDS=()
CTL_PID=
HP_WAS=
cleanup() {
  [ -n "$CTL_PID" ] && kill "$CTL_PID" 2>/dev/null
  for p in "${NODE_PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null; done
  sleep 0.3
  for p in "${NODE_PIDS[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null; done
  wait 2>/dev/null
  if [ -z "$KEEP" ]; then rm -rf "$WORK"; else echo "# kept $WORK"; fi
  [ -n "$HP_WAS" ] && echo "$HP_WAS" > "$HP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

HZ=$(getconf CLK_TCK)
NCPU=$(nproc)
cpu_ticks() { # utime+stime of one pid
  local f
  f=($(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null)) || { echo 0; return; }
  echo $(( ${f[11]:-0} + ${f[12]:-0} ))
}
metric() { # metric FILE NAME_REGEX: sum of matching samples (a series
  # printed twice in one scrape counts once)
  awk -v re="$2" '$0 !~ /^#/ && $1 ~ re && !seen[$1]++ {s += $2} END {printf "%.0f", s}' "$1"
}

echo "# synod cluster benchmark $(date -u +%FT%TZ), commit $(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet HEAD 2>/dev/null || echo '+dirty')"
echo "# machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $NCPU cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), kernel $(uname -r)"
echo "# data: $WORK ($FSTYPE), build: $BUILD ($(grep -m1 CMAKE_BUILD_TYPE: "$BUILD/CMakeCache.txt" | cut -d= -f2))"
[ "$FSTYPE" = tmpfs ] && echo "# WARNING: $WORK is tmpfs: fsync does nothing there; set SYNOD_BENCH_DIR to a disk"
echo "# load: $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min) before the run"
# a guest whose idle vCPU halts at once pays for every wake-up of it
# (docs/benchmarks.md, "Session 22"): say which idle policy this run had
if [ -n "$HALTPOLL" ]; then
  HP_WAS=$(cat "$HP")
  echo "$HALTPOLL" > "$HP" || { echo "run.sh: could not write $HP" >&2; exit 2; }
fi
if [ -r /sys/devices/system/cpu/cpuidle/current_driver ]; then
  echo "# cpuidle: $(cat /sys/devices/system/cpu/cpuidle/current_driver)$([ -r $HP ] && echo ", guest_halt_poll_ns=$(cat $HP)")"
fi

# The signature floor's rates: one second of bench_sigfloor now and again
# before every measured run (the cluster idle), keeping the fastest sign
# and verify rates seen. This VM's Ed25519 rate moves by a third within
# minutes; one early sample that fell in a slow second made the floor
# low and every %mach of the run high (a verify rate of 12,085/s in one
# run against 20,374/s an hour before, the same binaries). The best sample
# is the machine at its fastest, so the floor is the highest the run saw.
SIGN_RATE=0 VERIFY_RATE=0 RATE_SAMPLES=0 RATE_LIST=
sample_rates() {
  local sf s v
  sf=$("$BIN/bench_sigfloor" --seconds 1) || { echo "run.sh: bench_sigfloor failed" >&2; exit 1; }
  s=$(sed -n 's/.*sign_per_s=\([0-9]*\).*/\1/p' <<<"$sf")
  v=$(sed -n 's/.*verify_per_s=\([0-9]*\).*/\1/p' <<<"$sf")
  [ "${s:-0}" -gt "$SIGN_RATE" ] && SIGN_RATE=$s
  [ "${v:-0}" -gt "$VERIFY_RATE" ] && VERIFY_RATE=$v
  RATE_SAMPLES=$((RATE_SAMPLES + 1))
  RATE_LIST+="${RATE_LIST:+ }$s/$v"
  LAST_RATES="sign $s/s, verify $v/s"
}
sample_rates
echo "# Ed25519 on one core now: $LAST_RATES"
# what one thread hand-off and one NNG round trip cost now (bench_handoff)
HO=$("$BIN/bench_handoff" --seconds 0.5) || { echo "run.sh: bench_handoff failed" >&2; exit 1; }
echo "# hand-offs now (us; any core / one core): $(awk '/^handoff/ {sub("any=", "", $3); sub("one=", "", $4);
  printf "%s%s %s / %s", (n++ ? ", " : ""), $2, $3, $4}' <<<"$HO") (condvar one way, the rest round trips)"

pick_base() { # a 300-port range with nothing listening
  local b
  for _ in $(seq 1 50); do
    b=$(( 12000 + (RANDOM % 30) * 300 ))
    if ! ss -ltnH 2>/dev/null | awk -v lo="$b" '{n = split($4, a, ":"); p = a[n] + 0}
         p >= lo && p < lo + 300 {found = 1} END {exit !found}'; then echo "$b"; return; fi
  done
  echo 12000
}

# start_cluster PROTO N DIR: generates keys and starts every node
start_cluster() {
  local proto=$1 n=$2 dir=$3 base
  base=$(pick_base)
  "$BIN/synod-keys" cluster --protocol "$proto" --nodes "$n" --base-port "$base" \
      --clients "$MAXC" --id "bench-$proto" --out "$dir" >/dev/null || return 1
  mkdir -p "$dir/logs"
  NODE_PIDS=()
  for ((i = 0; i < n; i++)); do
    if [ -n "${SYNOD_BENCH_PIN:-}" ]; then
      taskset -c $((i % NCPU)) "$BIN/synod" --config "$dir/node-$i.ini" >>"$dir/logs/node-$i.log" 2>&1 &
    else
      "$BIN/synod" --config "$dir/node-$i.ini" >>"$dir/logs/node-$i.log" 2>&1 &
    fi
    NODE_PIDS[$i]=$!
  done
}

stop_cluster() {
  for p in "${NODE_PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null; done
  for p in "${NODE_PIDS[@]:-}"; do [ -n "$p" ] && wait "$p" 2>/dev/null; done
  NODE_PIDS=()
}

ctl() { "$BIN/synodctl" --cluster "$1/cluster.ini" "${@:2}"; }

# wait_leader DIR TIMEOUT_S: prints the leader/primary id
wait_leader() {
  local end=$((SECONDS + $2)) l
  while [ $SECONDS -lt "$end" ]; do
    l=$(ctl "$1" status --json --timeout 1000 2>/dev/null | grep -E '"role": "(leader|primary)"' |
        head -1 | sed -E 's/.*"node": ([0-9]+).*/\1/')
    [ -n "$l" ] && { echo "$l"; return 0; }
    sleep 0.3
  done
  return 1
}

metrics_url() { # metrics_url DIR NODE
  awk -v want="[node \"$2\"]" '$0 == want {on = 1; next} /^\[/ {on = 0}
       on && $1 == "metrics" {print $3}' "$1/cluster.ini"
}

RESULTS=()     # one line per run, fields separated by spaces
FAILS=()

# floors PROTO N BATCH CLIENTS: node and machine floor at the batch size a
# run reached (B = clients when unknown), at the best rates seen so far
floors() {
  local fb=$3 fl
  [ "$fb" = - ] || [ "$(awk -v b="$fb" 'BEGIN{print (b < 1)}')" = 1 ] && fb=$4
  fl=$("$BIN/bench_sigfloor" --rates "$SIGN_RATE" "$VERIFY_RATE" "$1:$2:$fb" | grep '^floor')
  echo "$(sed -n 's/.*node_floor=\([0-9]*\).*/\1/p' <<<"$fl") $(sed -n 's/.*machine_floor=\([0-9]*\).*/\1/p' <<<"$fl")"
}

# run_case PROTO N DIR LEADER C
run_case() {
  local proto=$1 n=$2 dir=$3 leader=$4 c=$5 url out m0 m1 t0 t1 tw ops p50 p90 p99 max errs
  sample_rates
  url=$(metrics_url "$dir" "$leader")/metrics
  m0=$dir/m0; m1=$dir/m1
  curl -s --max-time 2 "$url" >"$m0"
  declare -a c0 c1
  for ((i = 0; i < n; i++)); do c0[$i]=$(cpu_ticks "${NODE_PIDS[$i]}"); done
  local s0 s1 perfpid=
  if [ -n "${SYNOD_BENCH_PERF:-}" ] && [ "$c" -eq 16 ] && command -v perf >/dev/null; then
    perf record -g -o "$dir/perf-$proto-c$c.data" -p "${NODE_PIDS[$leader]}" >/dev/null 2>&1 &
    perfpid=$!
  fi
  s0=$(date +%s.%N)
  TIMEFORMAT='%U %S'
  out=$dir/bench-c$c.out
  tw=$( { time "$BIN/synodctl" --cluster "$dir/cluster.ini" bench --clients "$c" \
            --duration "$DURATION" --value-size 100 --read-ratio 0 --keys 10000 \
            >"$out" 2>"$out.err" ; } 2>&1 )
  local brc=$?
  s1=$(date +%s.%N)
  [ -n "$perfpid" ] && { kill -INT "$perfpid" 2>/dev/null; wait "$perfpid" 2>/dev/null; }
  for ((i = 0; i < n; i++)); do c1[$i]=$(cpu_ticks "${NODE_PIDS[$i]}"); done
  curl -s --max-time 2 "$url" >"$m1"
  ops=$(sed -n 's/^ops \([0-9]*\) in .*: \([0-9]*\) ops\/s, errors \([0-9]*\)$/\2/p' "$out")
  errs=$(sed -n 's/^ops .*errors \([0-9]*\)$/\1/p' "$out")
  read -r p50 p90 p99 max < <(sed -n 's/^latency ms: p50 \([0-9.]*\)  p90 \([0-9.]*\)  p99 \([0-9.]*\)  max \([0-9.]*\)$/\1 \2 \3 \4/p' "$out")
  p50=${p50:--} p90=${p90:--} p99=${p99:--} max=${max:--} errs=${errs:--}
  if [ -z "$ops" ]; then
    FAILS+=("$proto n=$n clients=$c: synodctl bench exit $brc: $(tail -1 "$out.err")")
    ops=0 p50=- p90=- p99=- max=- errs=-
  elif [ "$brc" -ne 0 ]; then
    FAILS+=("$proto n=$n clients=$c: synodctl bench exit $brc: $(grep synodctl "$out.err" | tail -1)")
  fi
  # leader counters over the run: requests per log entry / PBFT batch,
  # verifications and envelope signatures per request, fsyncs per request
  local dreq dent dver dsig dfs batch vpr spr fpr el ldr fol cli
  dreq=$(( $(metric "$m1" '^synod_commits_total$') - $(metric "$m0" '^synod_commits_total$') ))
  dent=$(( $(metric "$m1" '^synod_commit_index$') - $(metric "$m0" '^synod_commit_index$') ))
  dver=$(( $(metric "$m1" '^synod_net_verify_total[{]result="ok"') - $(metric "$m0" '^synod_net_verify_total[{]result="ok"') ))
  dsig=$(( $(metric "$m1" '^synod_messages_out_total') + $(metric "$m1" '^synod_reply_signatures_total') \
           - $(metric "$m0" '^synod_messages_out_total') - $(metric "$m0" '^synod_reply_signatures_total') ))
  dfs=$(( $(metric "$m1" '^synod_fsync_seconds_count$') - $(metric "$m0" '^synod_fsync_seconds_count$') ))
  local fsus0 fsus1 fsp
  fsus0=$(awk '$1 == "synod_fsync_seconds_sum" {print $2; exit}' "$m0")
  fsus1=$(awk '$1 == "synod_fsync_seconds_sum" {print $2; exit}' "$m1")
  read -r batch vpr spr fpr < <(awk -v r="$dreq" -v e="$dent" -v v="$dver" -v s="$dsig" -v f="$dfs" \
      'BEGIN{ if (r <= 0) {print "- - - -"; exit}
              printf "%.1f %.2f %.2f %.2f\n", (e > 0 ? r / e : 0), v / r, s / r, f / r }')
  el=$(awk -v a="$s0" -v b="$s1" 'BEGIN{print b - a}')
  ldr=$(awk -v t=$(( c1[leader] - c0[leader] )) -v hz="$HZ" -v el="$el" 'BEGIN{printf "%.0f", 100 * t / hz / el}')
  local ft=0
  for ((i = 0; i < n; i++)); do [ "$i" -ne "$leader" ] && ft=$(( ft + c1[i] - c0[i] )); done
  fol=$(awk -v t="$ft" -v k=$((n - 1)) -v hz="$HZ" -v el="$el" 'BEGIN{printf "%.0f", 100 * t / hz / el / k}')
  cli=$(awk -v tw="$tw" -v el="$el" 'BEGIN{split(tw, w, " "); printf "%.0f", 100 * (w[1] + w[2]) / el}')
  fsp=$(awk -v a="${fsus0:-0}" -v b="${fsus1:-0}" -v el="$el" 'BEGIN{printf "%.0f", 100 * (b - a) / el}')
  local node_floor mach_floor
  read -r node_floor mach_floor < <(floors "$proto" "$n" "$batch" "$c")
  RESULTS+=("$proto $n $c $ops $p50 $p90 $p99 $max $errs $batch $vpr $spr $fpr $fsp $ldr $fol $cli $node_floor $mach_floor $ROUND")
  printf '  %-5s n=%d clients=%-3d %6s ops/s  p50 %s p99 %s ms  batch %s  leader cpu %s%%  floor %s (node) %s (machine)\n' \
    "$proto" "$n" "$c" "$ops" "$p50" "$p99" "$batch" "$ldr" "$node_floor" "$mach_floor"
  if [ -n "$perfpid" ]; then
    perf report -i "$dir/perf-$proto-c$c.data" --no-children --percent-limit 1.5 --stdio 2>/dev/null |
      grep -E '^ +[0-9.]+%' | head -25 >"$dir/perf-$proto-c$c.top"
    echo "  perf (leader, self time, top entries; $dir/perf-$proto-c$c.data):"
    sed 's/^/    /' "$dir/perf-$proto-c$c.top"
  fi
}

# One round: every protocol, then etcd. With --rounds R the rounds take
# turns, so a slow stretch of the VM hits synod and etcd alike.
run_protocols() {
for proto in "${PROTOS[@]}"; do
  n=3; [ "$proto" = pbft ] && n=4
  dir=$WORK/$proto-r$ROUND
  echo "## $proto n=$n, round $ROUND of $ROUNDS (load $(cut -d' ' -f1 /proc/loadavg))"
  if ! start_cluster "$proto" "$n" "$dir"; then
    FAILS+=("$proto: synod-keys cluster failed"); continue
  fi
  if ! leader=$(wait_leader "$dir" 20); then
    FAILS+=("$proto n=$n: no leader/primary within 20 s; log tails: $(tail -n 3 "$dir"/logs/node-*.log | tr '\n' ' ')")
    echo "  no leader/primary within 20 s"; tail -n 5 "$dir"/logs/node-*.log
    stop_cluster; continue
  fi
  echo "  leader/primary: node $leader"
  for c in "${CLS[@]}"; do
    for ((i = 0; i < n; i++)); do
      kill -0 "${NODE_PIDS[$i]}" 2>/dev/null || FAILS+=("$proto: node $i died: $(tail -n 2 "$dir/logs/node-$i.log" | tr '\n' ' ')")
    done
    l2=$(wait_leader "$dir" 10) || { FAILS+=("$proto n=$n clients=$c: no leader before the run"); continue; }
    [ "$l2" != "$leader" ] && { echo "  leader changed: node $leader -> node $l2"; leader=$l2; }
    run_case "$proto" "$n" "$dir" "$leader" "$c"
  done
  changes=$(ctl "$dir" status --json --timeout 1000 2>/dev/null | grep -o '"leader_changes": [0-9]*' | awk '$2 > m {m = $2} END {print m + 0}')
  warns=$(grep -hcE "WARN|ERROR" "$dir"/logs/node-*.log | awk '{s += $1} END {print s + 0}')
  echo "  leader changes (most any node reports: Raft and Paxos count the first leader, PBFT view changes only): $changes; WARN/ERROR log lines: $warns"
  [ "$warns" -gt 0 ] && grep -hE "WARN|ERROR" "$dir"/logs/node-*.log | sort | uniq -c | sort -rn | head -5 | sed 's/^/    /'
  stop_cluster
done
}

# ---------------------------------------------------------------- etcd
ETCD_RES=()
run_etcd() {
if [ -n "$ETCD" ]; then
  ETCD_SH=$ROOT/../shared/bench/etcd/etcd_bench.sh
  [ -x "$ETCD_SH" ] || ETCD_SH=/work/shared/bench/etcd/etcd_bench.sh
  for c in "${CLS[@]}"; do
    th=2; [ "$c" -lt 2 ] && th=1
    echo "## etcd 3 members, $c connections, round $ROUND of $ROUNDS (load $(cut -d' ' -f1 /proc/loadavg))"
    line=$(DUR=$DURATION REPS=${ETCD_REPS:-1} CONNS=$c THREADS=$th CHECKPERF= KINDS=put QUIET_MAX=20 \
           DATA=$WORK/etcd bash "$ETCD_SH" 3 2>&1 | tee "$WORK/etcd-c$c-r$ROUND.log" | grep '^etcd3 put:')
    if [ -z "$line" ]; then
      FAILS+=("etcd clients=$c round $ROUND: no summary line; tail: $(tail -n 3 "$WORK/etcd-c$c-r$ROUND.log" | tr '\n' ' ')")
      continue
    fi
    echo "  $line"
    # etcd3 put: N ops/s p50 X ms p99 Y ms ...
    noisy=clean; grep -q ALL-NOISY <<<"$line" && noisy=NOISY
    ETCD_RES+=("$c $(awk '{print $3, $6, $9}' <<<"$line") $noisy $ROUND")
  done
fi
}

for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
  run_protocols
  run_etcd
done

# ---------------------------------------------------------------- memory
MEMSER=()
if [ -n "$MEMORY" ]; then
  dir=$WORK/memory
  echo "## memory: $MEMPROTO n=$MEMN, 16 clients, $MEMORY min, RssAnon every 30 s"
  if start_cluster "$MEMPROTO" "$MEMN" "$dir" && leader=$(wait_leader "$dir" 20); then
    "$BIN/synodctl" --cluster "$dir/cluster.ini" bench --clients 16 --duration $((MEMORY * 60)) \
        --value-size 100 --read-ratio 0 --keys 100000 >"$dir/bench.out" 2>"$dir/bench.err" &
    CTL_PID=$!
    t=0
    while :; do
      mem=""
      for ((i = 0; i < MEMN; i++)); do
        mem+=" $(awk '/^RssAnon/{print $2}' "/proc/${NODE_PIDS[$i]}/status" 2>/dev/null || echo -)"
      done
      st=$(ctl "$dir" status --json --timeout 3000 2>/dev/null)
      idx=$(grep "\"node\": $leader," <<<"$st" | sed -E 's/.*"applied_index": ([0-9]+).*"snapshot_index": ([0-9]+).*/\1 \2/')
      MEMSER+=("$t$mem $idx")
      printf '  t=%4ss  RssAnon kB:%s  (leader: applied, snapshot index %s)\n' "$t" "$mem" "$idx"
      kill -0 "$CTL_PID" 2>/dev/null || break
      [ "$t" -ge $((MEMORY * 60)) ] && break
      sleep 30; t=$((t + 30))
    done
    wait "$CTL_PID"; CTL_PID=
    tail -n 3 "$dir/bench.out" | sed 's/^/  /'
  else
    FAILS+=("memory run: cluster did not start or elect a leader")
  fi
  stop_cluster
fi

# ---------------------------------------------------------------- table
echo
echo "## results: 16-byte keys, 100-byte values, writes only, fsync on, ${DURATION}s per run"
printf '%-6s %2s %7s %8s %8s %8s %8s %8s %6s %6s %6s %6s %6s %5s %5s %5s %5s %9s %9s %6s %6s %6s %6s %5s\n' \
  protocol n clients ops/s p50_ms p90_ms p99_ms max_ms errors batch ver/rq sig/rq fs/rq \
  fs% ldr% fol% cli% nodefloor machfloor %node %mach cpu_us sig_us round
# every row's floor again at the best rates of the whole run (a row
# measured before the fastest sample was printed with a lower one)
for k in "${!RESULTS[@]}"; do
  set -- ${RESULTS[$k]}
  read -r nf mf < <(floors "$1" "$2" "${10}" "$3")
  RESULTS[$k]="${*:1:17} $nf $mf ${20}"
done
for r in "${RESULTS[@]}"; do
  set -- $r
  pn=$(awk -v o="$4" -v f="${18}" 'BEGIN{if (f > 0) printf "%.0f", 100 * o / f; else print "-"}')
  pm=$(awk -v o="$4" -v f="${19}" 'BEGIN{if (f > 0) printf "%.0f", 100 * o / f; else print "-"}')
  # CPU per request over the whole machine (leader + followers + synodctl)
  # and what the floor's signatures alone take of it, both in microseconds
  cu=$(awk -v o="$4" -v n="$2" -v l="${15}" -v f="${16}" -v c="${17}" \
       'BEGIN{if (o > 0) printf "%.0f", (l + f * (n - 1) + c) * 1e4 / o; else print "-"}')
  su=$(awk -v f="${19}" -v k="$NCPU" 'BEGIN{if (f > 0) printf "%.0f", k * 1e6 / f; else print "-"}')
  printf '%-6s %2s %7s %8s %8s %8s %8s %8s %6s %6s %6s %6s %6s %5s %5s %5s %5s %9s %9s %6s %6s %6s %6s %5s\n' \
    "${@:1:19}" "$pn" "$pm" "$cu" "$su" "${20}"
done
echo "batch: client requests per log entry (raft/paxos) or per PBFT sequence number, at the leader;"
echo "ver/rq, sig/rq, fs/rq: at the leader per request: envelopes verified (net), envelopes signed"
echo "(messages sent + reply signatures, one per batch of replies; not counting commit evidence or PBFT"
echo "statements), synced writes (write-ahead log records on raft/paxos, LMDB commits);"
echo "fs%: share of the leader's wall time spent in synced writes (100 = always syncing);"
echo "ldr%, fol%, cli%: CPU of the leader, the mean follower, synodctl (100 = one core; $NCPU cores);"
echo "nodefloor: Ed25519 floor of the busiest node on one core at this batch size (sign $SIGN_RATE/s,"
echo "verify $VERIFY_RATE/s: the fastest of $RATE_SAMPLES one-second samples, one before each run:"
echo "sign/verify per s $RATE_LIST);"
echo "machfloor: all nodes' and the client's signatures over $NCPU cores;"
echo "cpu_us: CPU per request of all nodes and synodctl together, microseconds (from ldr%, fol%, cli%);"
echo "sig_us: the part of it the machine floor's signatures take at the raw rates ($NCPU x 1e6 / machfloor):"
echo "%mach = sig_us / cpu_us x the share of the machine that was busy, so 60% needs cpu_us under"
echo "1.67 x sig_us with the machine fully busy: the signatures in place and everything else together."
# median of the numbers on stdin, one per line ("-" when none)
# (a failed run's 0 ops/s or "-" is left out)
median() { awk '$1 != "-" && $1 + 0 > 0' | sort -n |
           awk '{v[NR] = $1} END {if (NR == 0) {print "-"; exit}
                m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
                if (m == int(m)) printf "%d\n", m; else printf "%.3f\n", m}'; }
if [ "$ROUNDS" -gt 1 ]; then
  echo
  echo "## median over $ROUNDS rounds (ops/s: every round's in brackets; %mach of the median)"
  printf '%-6s %2s %7s %8s %8s %8s %6s   %s\n' protocol n clients ops/s p50_ms p99_ms %mach "rounds"
  for proto in "${PROTOS[@]}"; do
    for c in "${CLS[@]}"; do
      rows=$(printf '%s\n' "${RESULTS[@]}" | awk -v p="$proto" -v c="$c" '$1 == p && $3 == c')
      [ -z "$rows" ] && continue
      mo=$(awk '{print $4}' <<<"$rows" | median)
      m50=$(awk '{print $5}' <<<"$rows" | median)
      m99=$(awk '{print $7}' <<<"$rows" | median)
      mf=$(awk '{print $19}' <<<"$rows" | median)
      pm=$(awk -v o="$mo" -v f="$mf" 'BEGIN{if (f > 0) printf "%.0f", 100 * o / f; else print "-"}')
      printf '%-6s %2s %7s %8s %8s %8s %6s   [%s]\n' "$proto" "$(awk 'NR == 1 {print $2}' <<<"$rows")" "$c" \
        "$mo" "$m50" "$m99" "$pm" "$(awk '{printf "%s%s", (NR > 1 ? " " : ""), $4}' <<<"$rows")"
    done
  done
fi
if [ ${#ETCD_RES[@]} -gt 0 ]; then
  echo
  echo "## etcd 3.4, 3 members, same machine (wrk over the JSON gateway, put, 16 B keys, 100 B values)"
  printf '%7s %8s %8s %8s %7s %5s   %s\n' clients ops/s p50_ms p99_ms machine round "raft n=3 ops/s, same round (ratio to etcd)"
  for r in "${ETCD_RES[@]}"; do
    set -- $r
    ec=$1 eo=$2 erd=$6 rr=-
    for x in "${RESULTS[@]}"; do
      set -- $x
      [ "$1" = raft ] && [ "$3" = "$ec" ] && [ "${20}" = "$erd" ] &&
        rr=$(awk -v a="$4" -v e="$eo" 'BEGIN{printf "%d (%.2fx)", a, (e > 0 ? a / e : 0)}')
    done
    printf '%7s %8s %8s %8s %7s %5s   %s\n' $r "$rr"
  done
  if [ "$ROUNDS" -gt 1 ]; then
    echo "median over the rounds:"
    for c in "${CLS[@]}"; do
      eo=$(printf '%s\n' "${ETCD_RES[@]}" | awk -v c="$c" '$1 == c {print $2}' | median)
      ro=$(printf '%s\n' "${RESULTS[@]}" | awk -v c="$c" '$1 == "raft" && $3 == c {print $4}' | median)
      [ "$ro" = - ] && continue
      printf '%7s %8s %31s   %s\n' "$c" "$eo" "" \
        "$(awk -v a="$ro" -v e="$eo" 'BEGIN{if (e > 0) printf "%d (%.2fx)", a, a / e; else printf "%d (-)", a}')"
    done
  fi
  echo "machine: clean, or NOISY when etcd_bench.sh saw other processes use over 20% of a core during every repetition"
fi
if [ ${#MEMSER[@]} -gt 0 ]; then
  echo
  echo "## memory ($MEMPROTO n=$MEMN, 16 clients): RssAnon kB per node, leader's applied and snapshot index"
  hdr="t_s"; for ((i = 0; i < MEMN; i++)); do hdr+=" node$i"; done
  printf '%6s' $hdr; printf ' %10s %10s\n' applied snapshot
  for r in "${MEMSER[@]}"; do set -- $r; printf '%6s' "$1"; shift; printf ' %10s' "$@"; echo; done
fi
if [ ${#FAILS[@]} -gt 0 ]; then
  echo
  echo "## problems"
  for f in "${FAILS[@]}"; do echo "- $f"; done
  exit 1
fi
exit 0
