#!/usr/bin/env bash
# Crash-fault clusters (raft, then paxos), 3 real nodes, each in its own
# network namespace, joined by veth links to a bridge in a fourth namespace
# where the client runs. All addresses (10.x) exist only inside the
# namespaces this test creates; nothing is routed anywhere else.
#
#  a. links impaired (netem delay 20ms loss 5%; if the kernel has no netem,
#     the links flap instead): the cluster still commits writes, values
#     read back;
#  b. the leader's link goes down: the majority elects a new leader and
#     commits through it; the isolated old leader, asked by a client in its
#     own namespace, neither commits a write nor serves a stale read;
#  c. heal: the old leader rejoins as a follower of the majority's leader
#     (pre-vote / pre-prepare: it cannot depose it), everybody converges on
#     the same applied index, state digest and ledger head, the write the
#     old leader took during the partition is nowhere; ledgers verify.
#
# Needs root (network namespaces); prints SKIP and exits 0 otherwise.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

NS_N=3
N=3
# shellcheck source=netns_lib.sh
source "$(dirname "$0")/netns_lib.sh"

# ---------------------------------------------------------------- scenario
run_proto() {
  local P=$1 i L L2 v rc out bad j
  SC_FAILS0=$T_FAILS
  mk_ns_cluster "$P" $N
  log "== $P: 3 nodes in namespaces"
  start_all
  L=$(wait_leader 30) || die "$P: no leader elected within 30s"
  pass "$P: node $L leads; every node reachable only through its own link"

  # ---- a. impaired links
  impair_on
  log "$P: links impaired ($IMPAIR)"
  bad=0
  for j in $(seq 1 20); do
    ctl --timeout 15000 put "imp-$j" "val-$j" >/dev/null || bad=$((bad + 1))
  done
  [ $bad -eq 0 ] && pass "$P: 20 writes acknowledged over impaired links ($IMPAIR)" \
    || fail "$P: $bad of 20 writes over impaired links failed"
  bad=0
  for j in $(seq 1 20); do
    v=$(ctl --timeout 15000 get "imp-$j") && [ "$v" = "val-$j" ] || bad=$((bad + 1))
  done
  [ $bad -eq 0 ] && pass "$P: every write reads back over impaired links" || fail "$P: $bad of 20 reads wrong or failed"
  impair_off
  ctl put lin before >/dev/null || fail "$P: put before the partition failed"

  # ---- b. isolate the leader
  L=$(wait_leader 20) || die "$P: no leader before the partition"
  log "$P: link of leader node $L goes down"
  ip -n "$NSP-$L" link set eth0 down
  if L2=$(wait_leader 40 "$L"); then
    pass "$P: the majority elected node $L2 after node $L was cut off"
  else
    fail "$P: no new leader among the majority within 40s"
  fi
  bad=0
  for j in 1 2 3 4 5; do
    ctl --timeout 15000 put "part-$j" "p$j" >/dev/null || bad=$((bad + 1))
  done
  ctl --timeout 15000 put lin after >/dev/null || bad=$((bad + 1))
  [ $bad -eq 0 ] && pass "$P: writes commit through the new leader during the partition" \
    || fail "$P: $bad of 6 writes failed during the partition"
  v=$(ctl --timeout 15000 get part-3) && [ "$v" = p3 ] && pass "$P: the majority reads its own write" \
    || fail "$P: get part-3 during the partition gave '$v'"
  out=$(ctl_ns "$NSP-$L" --timeout 3000 put stranded nope 2>&1); rc=$?
  [ $rc -eq 1 ] && pass "$P: the isolated old leader does not commit a write (exit 1: $out)" \
    || fail "$P: write through the isolated old leader: rc=$rc out=$out"
  v=$(ctl_ns "$NSP-$L" --timeout 3000 get lin 2>"$T_DIR/stale.err"); rc=$?
  [ $rc -ne 0 ] && [ "$v" != before ] \
    && pass "$P: the isolated old leader serves no stale linearizable read (exit $rc: $(head -1 "$T_DIR/stale.err"))" \
    || fail "$P: linearizable get from the isolated old leader returned '$v' (rc=$rc); the majority has 'after'"

  # ---- c. heal
  # the majority's leader now (it may have changed during the partition)
  L2=$(wait_leader 20 "$L") || fail "$P: no leader among the majority before healing"
  ip -n "$NSP-$L" link set eth0 up
  log "$P: link of node $L up again"
  if wait_converged 60; then
    pass "$P: after healing every node has the same applied index, state digest and ledger head"
  else
    fail "$P: no convergence within 60s after healing"
  fi
  # Pre-vote (Raft) / pre-prepare (Paxos) and check-quorum: the isolated
  # node stepped down and never raised its term or ballot while alone, so
  # it cannot depose the majority's leader when it returns; it follows it
  # from the first message it gets.
  local s line role leader l2line end=$((SECONDS + 20))
  while :; do
    s=$(status_json); line=$(echo "$s" | grep "\"node\": $L,")
    role=$(echo "$line" | sed -E 's/.*"role": "([^"]*)".*/\1/')
    leader=$(echo "$line" | sed -E 's/.*"leader": ([0-9a-z]*).*/\1/')
    l2line=$(echo "$s" | grep "\"node\": $L2,")
    [ "$role" = follower ] && [ "$leader" = "$L2" ] && echo "$l2line" | grep -q '"role": "leader"' && break
    [ $SECONDS -ge $end ] && break
    sleep 0.5
  done
  [ "$role" = follower ] && [ "$leader" = "$L2" ] && echo "$l2line" | grep -q '"role": "leader"' \
    && pass "$P: old leader $L rejoined as a follower of node $L2, which still leads" \
    || { fail "$P: 20s after healing old leader $L reports role '$role' leader '$leader' (majority's leader was $L2); status:"; echo "$s"; }
  out=$(ctl --timeout 10000 get stranded 2>&1); rc=$?
  [ $rc -eq 1 ] && echo "$out" | grep -q "not found" \
    && pass "$P: the write taken by the isolated leader is nowhere after healing" \
    || fail "$P: get stranded after healing: rc=$rc out=$out"
  v=$(ctl --timeout 10000 get lin) && [ "$v" = after ] && pass "$P: reads see the partition-time write" \
    || fail "$P: get lin after healing gave '$v'"
  ctl --timeout 10000 put healed yes >/dev/null && wait_converged 30 \
    && pass "$P: a write after healing reaches every node" || fail "$P: write after healing did not converge"

  for ((i = 0; i < N; i++)); do
    kill_node "$i" TERM; rc=$?
    [ $rc -eq 0 ] || fail "$P: node $i exited $rc on SIGTERM"
  done
  for ((i = 0; i < N; i++)); do
    out=$(ctl ledger verify "$C_DIR/data/node-$i" 2>&1) && pass "$P: node $i ledger verifies: $out" \
      || fail "$P: node $i ledger: $out"
  done
  [ "$T_FAILS" -eq "$SC_FAILS0" ] || dump_logs
  mv "$T_DIR/logs" "$T_DIR/logs-$P"
  mv "$C_DIR" "$T_DIR/cluster-$P"
}

run_proto raft
T_BASE=$((T_BASE + 10))
run_proto paxos

if [ -s "$T_DIR/ctl-hangs" ]; then
  fail "synodctl hung (killed after ${CTL_WATCHDOG_S}s) $(wc -l < "$T_DIR/ctl-hangs") time(s): $(tr '\n' ';' < "$T_DIR/ctl-hangs")"
else
  pass "every synodctl call exited by itself"
fi
finish
