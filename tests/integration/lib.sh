# Helpers for integration tests: real synod processes on loopback.
# Sourced by tests/integration/test_*.sh. Each test gets its own directory
# and port range, and every process it starts is killed on exit.
set -u
BIN=${SYNOD_BIN:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/build/bin}
TMPROOT=${SYNOD_TMP:-/tmp}
mkdir -p "$TMPROOT"
T_NAME=$(basename "$0" .sh)
T_DIR=$(mktemp -d "$TMPROOT/$T_NAME.XXXXXX")
# 300 ports per cluster (peer, client, metrics): a fixed slot per test name
# (10000..19000; unit tests that open ports use 20000+), kept
# below the kernel's ephemeral range (32768+) so outgoing connections
# cannot have taken them.
T_SLOT=$(( $(printf '%s' "$T_NAME" | cksum | cut -d' ' -f1) % 30 ))
# Skip slots another test of this build holds (a lock file kept open for
# the test's life: two names can hash to one slot, and under ctest -j both
# may start before either listens) or something else listens in (another
# checkout's run).
for _ in $(seq 1 30); do
  T_BASE=$(( 10000 + T_SLOT * 300 ))
  exec {T_SLOT_FD}>"$TMPROOT/.port-slot-$T_SLOT.lock"
  if flock -n "$T_SLOT_FD" &&
     ! ss -Hltn 2>/dev/null | awk '{print $4}' | sed 's/.*://' |
       awk -v lo="$T_BASE" -v hi=$((T_BASE + 300)) '$1 >= lo && $1 < hi {f=1} END {exit !f}'; then
    break
  fi
  exec {T_SLOT_FD}>&-
  T_SLOT=$(( (T_SLOT + 7) % 30 ))
done
declare -A T_PIDS=()
T_FAILS=0
T_PASSES=0

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*"; }
fail() { log "FAIL: $*"; T_FAILS=$((T_FAILS + 1)); }
pass() { log "ok: $*"; T_PASSES=$((T_PASSES + 1)); }
die() { log "FATAL: $*"; dump_logs; exit 1; }

dump_logs() {
  for f in "$T_DIR"/logs/node-*.log; do
    [ -f "$f" ] || continue
    echo "---- tail of $f"
    tail -n 25 "$f"
  done
}

cleanup() {
  for i in "${!T_PIDS[@]}"; do
    kill -9 "${T_PIDS[$i]}" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  if [ "$T_FAILS" -eq 0 ] && [ -z "${KEEP:-}" ]; then rm -rf "$T_DIR"; fi
}
trap cleanup EXIT
# ctest stops a test that runs past its TIMEOUT with SIGTERM: exit through
# the EXIT trap, so the nodes (and mounts, namespaces) go too
trap 'exit 143' TERM
trap 'exit 130' INT

# mk_cluster PROTO N [extra synod-keys args...]
mk_cluster() {
  local proto=$1 n=$2; shift 2
  C_DIR=$T_DIR/cluster
  C_N=$n
  "$BIN/synod-keys" cluster --protocol "$proto" --nodes "$n" --base-port "$T_BASE" \
      --clients 4 --out "$C_DIR" "$@" >/dev/null || die "synod-keys cluster failed"
  mkdir -p "$T_DIR/logs"
}

# set_cluster_key KEY VALUE: edit [cluster] in the manifest
set_cluster_key() {
  sed -i "/^\[cluster\]/a $1 = $2" "$C_DIR/cluster.ini"
}

# compact_often PROTO SNAPSHOT_THRESHOLD: snapshots every that many
# entries, so restarted nodes catch up after compaction; PBFT checkpoints
# every 16 sequence numbers (window 64) and state in 1 KB chunks, so a
# restarted replica fetches a snapshot in several chunks
compact_often() {
  set_cluster_key snapshot_threshold "${CHAOS_SNAP:-$2}"
  if [ "$1" = pbft ]; then
    set_cluster_key checkpoint_interval "${CHAOS_CKPT:-16}"
    set_cluster_key watermark_window "${CHAOS_WINDOW:-64}"
    set_cluster_key state_chunk_bytes "${CHAOS_CHUNK:-1024}"
  fi
  # CHAOS_KEYS="k=v k=v": extra [cluster] keys (long runs with other settings)
  local kv
  for kv in ${CHAOS_KEYS:-}; do
    sed -i "/^\[cluster\]/,/^\[node/{/^${kv%%=*} *=/d}" "$C_DIR/cluster.ini"
    set_cluster_key "${kv%%=*}" "${kv#*=}"
  done
}

start_node() {
  local i=$1
  # started with the common default soft limit of 1,024 open files, which
  # the node raises to its hard limit (cluster_suite section 6 checks)
  ( ulimit -Sn 1024 2>/dev/null
    exec "$BIN/synod" --config "$C_DIR/node-$i.ini" ${NODE_ARGS[$i]:-} ) >>"$T_DIR/logs/node-$i.log" 2>&1 &
  T_PIDS[$i]=$!
}
declare -A NODE_ARGS=()

start_all() { for ((i = 0; i < C_N; i++)); do start_node "$i"; done; }

# still_running PID: the process exists and is not a zombie, from one read
# of its state. (A `kill -0` and then a `ps` race with bash reaping the
# process between the two: the `ps` finds nothing, which is not "Z", and a
# node that had exited looked hung -- 82 false reports in a session's
# 300 s chaos soaks, each with an empty stack dump.)
still_running() {
  local st
  st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
  [ -n "$st" ] && [ "${st:0:1}" != Z ]
}

kill_node() {  # kill_node I [SIGNAL]: signals node I and reaps it; a node
  # still running 30 s later (a shutdown that hangs) gets SIGKILL, so the
  # caller sees exit 137 and fails rather than the suite stalling
  local i=$1 sig=${2:-KILL} pid=${T_PIDS[$1]:-} end=$((SECONDS + 30))
  [ -n "$pid" ] || return 0
  kill -"$sig" "$pid" 2>/dev/null || true
  while still_running "$pid" && [ $SECONDS -lt $end ]; do
    sleep 0.1
  done
  if still_running "$pid"; then
    # a hang: every thread's stack into the node's log first, so the
    # failure can be read afterwards (gdb where the machine has it)
    if command -v gdb >/dev/null; then
      { echo "---- node $i did not stop within 30 s of SIG$sig: its threads"
        timeout 60 gdb -p "$pid" -batch -ex "thread apply all bt" 2>&1 | grep -E "^Thread|^#"
      } >> "$T_DIR/logs/node-$i.log" 2>&1
    fi
    kill -KILL "$pid" 2>/dev/null
  fi
  wait "$pid" 2>/dev/null
  local rc=$?
  unset "T_PIDS[$i]"
  return $rc
}

ctl() { "$BIN/synodctl" --cluster "$C_DIR/cluster.ini" "$@"; }

# wait_log I TEXT SECS [FROM]: node I's log says TEXT within SECS seconds
# (in its lines after line FROM, default 0: the whole log)
wait_log() {
  local i=$1 text=$2 secs=$3 from=${4:-0} t
  for ((t = 0; t < secs * 10; t++)); do
    tail -n +"$((from + 1))" "$T_DIR/logs/node-$i.log" 2>/dev/null | grep -qF -- "$text" && return 0
    sleep 0.1
  done
  return 1
}

status_json() { ctl status --json --timeout 1000 2>/dev/null; }

# json_num LINE NAME: the number (or null) of field NAME in one JSON line
json_num() { echo "$1" | sed -n -E "s/.*\"$2\": ([0-9]+|null).*/\1/p"; }

# no_false_accusation PREFIX BYZ NODES...: no correct replica (NODES) names
# another correct one in synodctl status -- whoever it names (evidence_from,
# bad_signature_from; for a vote against its pre-prepare, the voter
# dissent_from or that view's primary dissent_primary) is node BYZ
no_false_accusation() {
  local pre=$1 byz=$2 s i line ev bs df dp bad=""
  shift 2
  s=$(status_json)
  for i in "$@"; do
    line=$(echo "$s" | grep "\"node\": $i,")
    ev=$(json_num "$line" evidence_from); bs=$(json_num "$line" bad_signature_from)
    df=$(json_num "$line" dissent_from); dp=$(json_num "$line" dissent_primary)
    [ -n "$ev" ] && [ -n "$bs" ] && [ -n "$df" ] && [ -n "$dp" ] \
      || { bad="$bad node $i: no fault fields in its status;"; continue; }
    [ "$ev" = null ] || [ "$ev" = "$byz" ] || bad="$bad node $i: evidence against $ev;"
    [ "$bs" = null ] || [ "$bs" = "$byz" ] || bad="$bad node $i: bad signatures from $bs;"
    [ "$df" = null ] || [ "$df" = "$byz" ] || [ "$dp" = "$byz" ] \
      || bad="$bad node $i: votes of $df against primary $dp;"
  done
  [ -z "$bad" ] && pass "${pre}no correct replica names a correct one as faulty" \
    || fail "${pre}a correct replica names a correct one:$bad"
}

# leader: prints the id of a node that says it leads (role leader/primary)
leader() {
  status_json | grep -E '"role": "(leader|primary)"' | head -1 | sed -E 's/.*"node": ([0-9]+).*/\1/'
}

# wait_leader TIMEOUT_S [EXCLUDE]: prints the leader id once one exists
wait_leader() {
  local t=${1:-20} ex=${2:-x} end=$((SECONDS + ${1:-20})) l
  while [ $SECONDS -lt $end ]; do
    l=$(leader)
    if [ -n "$l" ] && [ "$l" != "$ex" ]; then echo "$l"; return 0; fi
    sleep 0.3
  done
  return 1
}

# field NODE NAME: a numeric/string field of one node's status
field() {
  status_json | grep "\"node\": $1," | sed -E "s/.*\"$2\": \"?([^,\"}]*)\"?.*/\1/"
}

# wait_converged TIMEOUT_S [EXCEPT]: every node (but node EXCEPT, a
# Byzantine one) reachable, same applied index, state digest and ledger head
wait_converged() {
  local end=$((SECONDS + ${1:-30})) s want=$C_N
  [ -n "${2:-}" ] && want=$((C_N - 1))
  while [ $SECONDS -lt $end ]; do
    s=$(status_json | grep -v "\"node\": ${2:-none},")
    if [ "$(echo "$s" | grep -c '"reachable": true')" -eq "$want" ]; then
      local a d h
      a=$(echo "$s" | grep -o '"applied_index": [0-9]*' | sort -u | wc -l)
      d=$(echo "$s" | grep -o '"state_digest": "[0-9a-f]*"' | sort -u | wc -l)
      h=$(echo "$s" | grep -o '"ledger_head": "[0-9a-f]*"' | sort -u | wc -l)
      if [ "$a" -eq 1 ] && [ "$d" -eq 1 ] && [ "$h" -eq 1 ]; then return 0; fi
    fi
    sleep 0.5
  done
  echo "$s"
  return 1
}

# alive I: node I's process exists and is not a zombie (it may be stopped)
alive() {
  local pid=${T_PIDS[$1]:-}
  [ -n "$pid" ] && still_running "$pid"
}

# reap_dead PREFIX: a node that exited by itself (a stop on SY_EFATAL, an
# abort, a sanitizer report) is a failure; it is reaped, so it counts as
# down from now on
reap_dead() {
  local i rc
  for i in "${!T_PIDS[@]}"; do
    alive "$i" && continue
    wait "${T_PIDS[$i]}" 2>/dev/null; rc=$?
    unset "T_PIDS[$i]"
    fail "${1}node $i exited by itself (exit $rc): $(tail -n 1 "$T_DIR/logs/node-$i.log" 2>/dev/null)"
  done
}

# crash I PREFIX: SIGKILL node I; it must have been running until then
crash() {
  local rc
  kill_node "$1" KILL; rc=$?
  [ $rc -eq 137 ] || fail "${2:-}node $1 had exited by itself before the SIGKILL (exit $rc)"
}

# stop_verify PREFIX [EXCEPT]: SIGTERM every node (each must exit 0), then
# verify every ledger but node EXCEPT's; DATA_DIR[i] overrides node i's
# data directory. PREFIX starts the messages ("raft: ").
declare -A DATA_DIR=()
stop_verify() {
  local pre=$1 except=${2:-none} i rc out bad=0
  for ((i = 0; i < C_N; i++)); do
    kill_node "$i" TERM; rc=$?
    [ $rc -eq 0 ] || { fail "${pre}node $i exited $rc on SIGTERM"; bad=1; }
  done
  for ((i = 0; i < C_N; i++)); do
    [ "$i" = "$except" ] && continue
    out=$(ctl ledger verify "${DATA_DIR[$i]:-$C_DIR/data/node-$i}" 2>&1) ||
      { fail "${pre}node $i ledger: $out"; bad=1; }
  done
  if grep -l "AddressSanitizer\|runtime error:" "$T_DIR"/logs/node-*.log >/dev/null 2>&1; then
    fail "${pre}a sanitizer reported an error in a node log"; bad=1
  fi
  [ $bad -eq 0 ] && pass "${pre}every node exits 0 on SIGTERM, every ledger verifies, no sanitizer report"
}

# chaos_verdict PREFIX RC: synod-chaos's exit code (chaos_client.c) as a
# test result
chaos_verdict() {
  case $2 in
    0) pass "$1the history under the faults is linearizable" ;;
    1) fail "$1the history is not linearizable, or too few operations were decided (CHAOS_SEED=${SEED:-?})" ;;
    3) fail "$1the linearizability check hit its search bound without a verdict (CHAOS_SEED=${SEED:-?})" ;;
    *) fail "$1synod-chaos could not run or hung (exit $2)" ;;
  esac
}

finish() {
  log "$T_NAME: $T_PASSES passed, $T_FAILS failed"
  echo "$T_PASSES passed, $T_FAILS failed"
  [ "$T_FAILS" -eq 0 ] || { dump_logs; exit 1; }
  exit 0
}
