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
# (what only it held must never have been acknowledged), replaces a node's
# disk by an empty one and starts it with --rejoin (without a Byzantine
# replica), and for
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
# A node that exits by itself at any point (a stop on an impossible state,
# an abort, a sanitizer report) fails the test.
#
# CHAOS_SECONDS (default 40) sets the workload's length; CHAOS_SEED seeds
# the workload and the nemesis' choices (runs still differ: the timing
# does, and so what the leader is when a choice is made).
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
F=1
SECS=${CHAOS_SECONDS:-40}
SEED=${CHAOS_SEED:-$(( $(date +%s) % 100000 ))}
RANDOM=$SEED
CLIENTS=5
# a call's deadline: PBFT's reads first try the quorum read for a client
# attempt (1 s) and then go through the ordering, so they get more
OP_TIMEOUT=2000
[ "$PROTO" = pbft ] && OP_TIMEOUT=4000

# client-0 (admin) is the operator's, for synodctl transfer; the workload
# uses client-1 .. client-CLIENTS
mk_cluster "$PROTO" "$N" --clients "$((CLIENTS + 1))"
compact_often "$PROTO" 64
BYZ=${BYZ:-}
if [ -n "$BYZ" ]; then
  NODE_ARGS[$BYZ]="--byzantine $BEHAVIOUR"
  "$BIN/synod" --config "$C_DIR/node-0.ini" --byzantine no-such-behaviour 2>&1 |
    grep -q "only in test builds" && { log "SKIP: synod is not a test build (no --byzantine)"; exit 0; }
fi
start_all
L=$(wait_leader 30) || die "no leader/primary elected within 30s"
log "chaos: $PROTO n=$N, $CLIENTS clients, ${SECS}s, CHAOS_SEED=$SEED${BYZ:+, node $BYZ Byzantine ($BEHAVIOUR)}"

# decided operations and nemesis actions a run must reach: low enough for
# a loaded CI machine under ASan (measured there: 1,300-25,000 decided
# operations in 40 s; PBFT with a Byzantine replica the lowest)
MIN_OK=$((SECS * 5))
MIN_ACTIONS=$((SECS / 10 > 2 ? SECS / 10 : 2))
"$BIN/synod-chaos" --cluster "$C_DIR/cluster.ini" --keys "$C_DIR/keys" \
    --clients "$CLIENTS" --duration "$SECS" --keyspace 5 --timeout "$OP_TIMEOUT" --seed "$SEED" \
    --min-ok "$MIN_OK" --first-key 1 >"$T_DIR/chaos.out" 2>&1 &
chaos=$!
# a workload that outlives its duration by 2 minutes hangs: its threads'
# stacks go into chaos.out (printed below) before it is killed
( dog_end=$((SECONDS + SECS + 120))
  while kill -0 "$chaos" 2>/dev/null; do
    if [ $SECONDS -ge $dog_end ]; then
      { echo "synod-chaos still running $((SECS + 120)) s after it started: its threads"
        command -v gdb >/dev/null &&
          timeout 60 gdb -p "$chaos" -batch -ex "thread apply all bt" 2>&1 | grep -E "^Thread|^#"
      } >>"$T_DIR/chaos.out" 2>&1
      kill -KILL "$chaos" 2>/dev/null
      break
    fi
    sleep 1
  done ) >/dev/null 2>&1 &
chaos_dog=$!
t_end=$((SECONDS + SECS))

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
# pick_up leader|any: PICK = a node that is up (the leader when wanted and
# known), "" if none. Sets a variable rather than printing: a command
# substitution's subshell would reseed RANDOM, and CHAOS_SEED would no
# longer fix the choices.
pick_up() {
  local l i
  PICK=
  if [ "$1" = leader ]; then
    l=$(leader)
    if [ -n "$l" ] && ! down "$l"; then PICK=$l; return; fi
  fi
  for _ in 1 2 3 4 5 6 7 8; do i=$((RANDOM % N)); down "$i" || { PICK=$i; return; }; done
}
actions=0
sleep 2
while kill -0 "$chaos" 2>/dev/null && [ $SECONDS -lt $t_end ]; do
  reap_dead "$PROTO: "
  r=$((RANDOM % 100))
  if [ "$(n_down)" -gt 0 ]; then
    heal; log "nemesis: every node up again"
  elif [ $r -lt 25 ]; then
    pick_up leader; [ -n "$PICK" ] && { crash "$PICK" "$PROTO: "; log "nemesis: SIGKILL node $PICK (the leader)"; }
  elif [ $r -lt 40 ]; then
    pick_up any; [ -n "$PICK" ] && { crash "$PICK" "$PROTO: "; log "nemesis: SIGKILL node $PICK"; }
  elif [ $r -lt 55 ]; then
    pick_up leader
    if [ -n "$PICK" ]; then kill -STOP "${T_PIDS[$PICK]}"; STOPPED[$PICK]=1; log "nemesis: SIGSTOP node $PICK (the leader)"; fi
  elif [ $r -lt 65 ]; then
    # a graceful stop: the leader hands leadership over first
    pick_up leader
    if [ -n "$PICK" ]; then
      kill_node "$PICK" TERM; rc=$?
      log "nemesis: SIGTERM node $PICK (the leader), exit $rc"
      [ $rc -eq 0 ] || fail "$PROTO: node $PICK exited $rc on SIGTERM during the chaos"
    fi
  elif [ $r -lt 72 ]; then
    out=$(ctl --timeout 3000 transfer 2>&1); log "nemesis: synodctl transfer: ${out:-exit $?}"
  elif [ $r -lt 86 ]; then
    # the leader alone: every other node killed, so writes reach only the
    # leader and none may be acknowledged (no quorum); then the leader
    # dies too and the others restart without whatever only it had. (A
    # SIGSTOPped node would not do: the kernel keeps queueing what is sent
    # to it, and it reads all of that when it resumes.)
    pick_up leader
    if [ -n "$PICK" ]; then
      for ((k = 0; k < N; k++)); do [ "$k" != "$PICK" ] && crash "$k" "$PROTO: "; done
      sleep "0.$((3 + RANDOM % 7))"
      crash "$PICK" "$PROTO: "
      for ((k = 0; k < N; k++)); do [ "$k" != "$PICK" ] && start_node "$k"; done
      log "nemesis: SIGKILLed every node but the leader $PICK, then it, restarted the others"
    fi
  elif [ $r -lt 93 ] && [ -z "${BYZ:-}" ]; then
    # a node's disk dies (docs/operations.md, section 7): killed, its data
    # directory emptied, started at once with --rejoin; it counts as the
    # one fault until it has rejoined (Raft/Paxos: after a write it saw
    # committed), so the nemesis waits for that before striking again
    pick_up any
    if [ -n "$PICK" ]; then
      o=$(( (PICK + 1) % N ))
      target=$(field "$o" applied_index)
      crash "$PICK" "$PROTO: "
      rm -rf "$C_DIR/data/node-$PICK"
      from=$(wc -l <"$T_DIR/logs/node-$PICK.log")
      NODE_ARGS[$PICK]=--rejoin
      start_node "$PICK"
      NODE_ARGS[$PICK]=
      if [ "$PROTO" = pbft ]; then
        # a replica on an empty disk is one of the f faulty ones until it
        # holds what the others had: no other strike meanwhile
        caught=
        for _ in $(seq 1 300); do
          a=$(field "$PICK" applied_index)
          [[ "$a" =~ ^[0-9]+$ ]] && [[ "$target" =~ ^[0-9]+$ ]] && [ "$a" -ge "$target" ] && { caught=1; break; }
          sleep 0.1
        done
        [ -n "$caught" ] && log "nemesis: node $PICK's disk replaced by an empty one; it caught up" \
          || fail "$PROTO: node $PICK did not catch up within 30 s of its disk's replacement"
      elif wait_log "$PICK" "rejoined: caught up" 30 "$from"; then
        log "nemesis: node $PICK's disk replaced by an empty one; it rejoined"
      else
        fail "$PROTO: node $PICK did not finish rejoining within 30 s of its disk's replacement"
      fi
    fi
  elif [ "$PROTO" != pbft ]; then
    # a majority down: no quorum; calls time out undecided until it returns
    pick_up any; a=$PICK; [ -n "$a" ] && crash "$a" "$PROTO: "
    pick_up any; b=$PICK; [ -n "$b" ] && crash "$b" "$PROTO: "
    log "nemesis: SIGKILL nodes $a and $b (no quorum)"
  else
    pick_up any
    if [ -n "$PICK" ]; then kill -STOP "${T_PIDS[$PICK]}"; STOPPED[$PICK]=1; log "nemesis: SIGSTOP node $PICK"; fi
  fi
  actions=$((actions + 1))
  sleep "$((1 + RANDOM % 3)).$((RANDOM % 10))"
done
reap_dead "$PROTO: "
heal
wait "$chaos"; crc=$?
wait "$chaos_dog" 2>/dev/null   # it ends within a second of the workload
sed 's/^/  synod-chaos: /' "$T_DIR/chaos.out"
log "nemesis took $actions actions"
[ "$actions" -ge "$MIN_ACTIONS" ] && pass "the nemesis acted $actions times during the workload" \
  || fail "the nemesis acted only $actions times (at least $MIN_ACTIONS wanted)"
chaos_verdict "$PROTO: " "$crc"
# every node back, the same state everywhere (on every correct node), every
# (correct) ledger sound
wait_converged 90 "$BYZ" && pass "every ${BYZ:+correct }node converged after the chaos (applied index, state digest, ledger head)" \
  || fail "the ${BYZ:+correct }nodes did not converge after the chaos"
if [ -n "$BYZ" ]; then
  correct=()
  for ((i = 0; i < N; i++)); do [ "$i" = "$BYZ" ] || correct+=("$i"); done
  no_false_accusation "$PROTO: " "$BYZ" "${correct[@]}"
fi
stop_verify "$PROTO: " "$BYZ"
finish
