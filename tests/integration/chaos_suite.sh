# Chaos against real processes, with a linearizability check. Sourced with
# PROTO and N set (raft/paxos: 3 nodes, pbft: 4).
#
# synod-chaos (tests/integration/chaos_client.c) runs concurrent clients
# doing put / get / cas / del on a handful of keys and records the history;
# meanwhile a nemesis SIGKILLs the leader or a random node and restarts it,
# or SIGSTOPs one for a while (a stalled leader that wakes up in an old
# term or view), stops the leader with SIGTERM (it hands leadership over
# first), moves leadership with synodctl transfer, or kills every node but
# the leader and then the leader
# (what only it held must never have been acknowledged), and for
# the crash-fault protocols now and then takes a majority down so calls
# time out and stay undecided. Snapshots and PBFT
# checkpoints come every few dozen entries, so restarted nodes catch up by
# snapshot and state transfer. At the end the history must be
# linearizable (a lost acknowledged write, a stale read or a cas that saw
# an old value all fail it), every node must converge to the same applied
# index, state digest and ledger head, and every ledger must verify.
#
# With BYZ set (PBFT; test builds), node BYZ runs `synod --byzantine
# $BEHAVIOUR` throughout, crashes and restarts included: the history must
# still be linearizable, and the correct nodes must converge and verify.
#
# CHAOS_SECONDS (default 40) sets the workload's length; CHAOS_SEED seeds
# the workload and the nemesis (runs still differ: the timing does).
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
F=1
SECS=${CHAOS_SECONDS:-40}
SEED=${CHAOS_SEED:-$(( $(date +%s) % 100000 ))}
RANDOM=$SEED
CLIENTS=5

# client-0 (admin) is the operator's, for synodctl transfer; the workload
# uses client-1 .. client-CLIENTS
mk_cluster "$PROTO" "$N" --clients "$((CLIENTS + 1))"
set_cluster_key snapshot_threshold 64
if [ "$PROTO" = pbft ]; then
  set_cluster_key checkpoint_interval 16
  set_cluster_key watermark_window 64
  set_cluster_key state_chunk_bytes 1024
fi
BYZ=${BYZ:-}
if [ -n "$BYZ" ]; then
  NODE_ARGS[$BYZ]="--byzantine $BEHAVIOUR"
  "$BIN/synod" --config "$C_DIR/node-0.ini" --byzantine no-such-behaviour 2>&1 |
    grep -q "only in test builds" && { log "SKIP: synod is not a test build (no --byzantine)"; exit 0; }
fi
start_all
L=$(wait_leader 30) || die "no leader/primary elected within 30s"
log "chaos: $PROTO n=$N, $CLIENTS clients, ${SECS}s, CHAOS_SEED=$SEED${BYZ:+, node $BYZ Byzantine ($BEHAVIOUR)}"

"$BIN/synod-chaos" --cluster "$C_DIR/cluster.ini" --keys "$C_DIR/keys" --clients "$CLIENTS" \
    --duration "$SECS" --keyspace 5 --timeout 2000 --seed "$SEED" --min-ok 200 --first-key 1 \
    >"$T_DIR/chaos.out" 2>&1 &
chaos=$!

declare -A STOPPED=()
down() { [ -z "${T_PIDS[$1]:-}" ] || [ -n "${STOPPED[$1]:-}" ]; }
n_down() { local k=0 i; for ((i = 0; i < N; i++)); do down "$i" && k=$((k + 1)); done; echo $k; }
heal() {
  local i
  for ((i = 0; i < N; i++)); do
    if [ -n "${STOPPED[$i]:-}" ]; then kill -CONT "${T_PIDS[$i]}" 2>/dev/null; unset "STOPPED[$i]"; fi
    [ -z "${T_PIDS[$i]:-}" ] && start_node "$i"
  done
}
pick_up() {  # a node that is up, the leader when wanted and known
  local want=$1 l i
  if [ "$want" = leader ]; then
    l=$(leader)
    [ -n "$l" ] && ! down "$l" && { echo "$l"; return; }
  fi
  for _ in 1 2 3 4 5 6 7 8; do i=$((RANDOM % N)); down "$i" || { echo "$i"; return; }; done
}
actions=0
sleep 2
while kill -0 "$chaos" 2>/dev/null; do
  r=$((RANDOM % 100))
  if [ "$(n_down)" -gt 0 ]; then
    heal; log "nemesis: every node up again"
  elif [ $r -lt 25 ]; then
    i=$(pick_up leader); [ -n "$i" ] && { kill_node "$i" KILL; log "nemesis: SIGKILL node $i (the leader)"; }
  elif [ $r -lt 40 ]; then
    i=$(pick_up any); [ -n "$i" ] && { kill_node "$i" KILL; log "nemesis: SIGKILL node $i"; }
  elif [ $r -lt 55 ]; then
    i=$(pick_up leader)
    if [ -n "$i" ]; then kill -STOP "${T_PIDS[$i]}"; STOPPED[$i]=1; log "nemesis: SIGSTOP node $i (the leader)"; fi
  elif [ $r -lt 65 ]; then
    # a graceful stop: the leader hands leadership over first
    i=$(pick_up leader)
    if [ -n "$i" ]; then
      kill_node "$i" TERM; rc=$?
      log "nemesis: SIGTERM node $i (the leader), exit $rc"
      [ $rc -eq 0 ] || fail "node $i exited $rc on SIGTERM during the chaos"
    fi
  elif [ $r -lt 72 ]; then
    out=$(ctl --timeout 3000 transfer 2>&1); log "nemesis: synodctl transfer: ${out:-exit $?}"
  elif [ $r -lt 86 ]; then
    # the leader alone: every other node killed, so writes reach only the
    # leader and none may be acknowledged (no quorum); then the leader
    # dies too and the others restart without whatever only it had. (A
    # SIGSTOPped node would not do: the kernel keeps queueing what is sent
    # to it, and it reads all of that when it resumes.)
    i=$(pick_up leader)
    if [ -n "$i" ]; then
      for ((k = 0; k < N; k++)); do [ "$k" != "$i" ] && kill_node "$k" KILL; done
      sleep "0.$((3 + RANDOM % 7))"
      kill_node "$i" KILL
      for ((k = 0; k < N; k++)); do [ "$k" != "$i" ] && start_node "$k"; done
      log "nemesis: SIGKILLed every node but the leader $i, then it, restarted the others"
    fi
  elif [ "$PROTO" != pbft ]; then
    # a majority down: no quorum; calls time out undecided until it returns
    a=$(pick_up any); kill_node "$a" KILL
    b=$(pick_up any); [ -n "$b" ] && kill_node "$b" KILL
    log "nemesis: SIGKILL nodes $a and $b (no quorum)"
  else
    i=$(pick_up any)
    if [ -n "$i" ]; then kill -STOP "${T_PIDS[$i]}"; STOPPED[$i]=1; log "nemesis: SIGSTOP node $i"; fi
  fi
  actions=$((actions + 1))
  sleep "$((1 + RANDOM % 3)).$((RANDOM % 10))"
done
wait "$chaos"; crc=$?
heal
sed 's/^/  synod-chaos: /' "$T_DIR/chaos.out"
log "nemesis took $actions actions"
[ "$actions" -ge 5 ] && pass "the nemesis acted $actions times during the workload" || fail "the nemesis acted only $actions times"
chaos_verdict "$PROTO: " "$crc"
# every node back, the same state everywhere (on every correct node), every
# (correct) ledger sound
wait_converged 90 "$BYZ" && pass "every ${BYZ:+correct }node converged after the chaos (applied index, state digest, ledger head)" \
  || fail "the ${BYZ:+correct }nodes did not converge after the chaos"
stop_verify "$PROTO: " "$BYZ"
if grep -l "AddressSanitizer\|runtime error:" "$T_DIR"/logs/node-*.log >/dev/null 2>&1; then
  fail "a sanitizer reported an error in a node log"
fi
finish
