#!/usr/bin/env bash
# Snapshots slower than the cluster's pace, as a large state's are: every
# node runs with --slow-snapshot (test builds only), which adds 400 ms to
# each snapshot on the node's snapshot thread.
#
#  a. PBFT, 4 nodes, a checkpoint every 8 sequence numbers under a write
#     load: checkpoints come due faster than their snapshots finish, so a
#     replica waits for the one under way before it takes the next (the
#     "waited" log line). The writes all succeed, checkpoints go stable,
#     the replicas converge, and a replica stopped with SIGTERM while a
#     snapshot is being taken exits 0 and comes back.
#  b. Raft, 3 nodes, a snapshot every 50 entries: the leader goes on
#     taking and answering writes while its snapshots run (a snapshot due
#     while one is under way is simply taken later), and the nodes converge.
#  c. A node whose network close hangs in NNG (--stall-close) still stops
#     on SIGTERM with its storage closed, and restarts.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

if ! "$BIN/synod" --help | grep -q -- --slow-snapshot; then
  log "SKIP: $BIN/synod is not a test build (cmake -DSYNOD_TESTING=ON)"
  exit 0
fi

# stable_checkpoint I: the engine's own snapshot index (PBFT: its stable
# checkpoint h), from the node's metrics (status shows the larger of it and
# the last local snapshot)
stable_checkpoint() {
  curl -s "http://127.0.0.1:$((T_BASE + 200 + $1))/metrics" | sed -n 's/^synod_snapshot_index \([0-9]*\)$/\1/p'
}
# no snapshot was dropped or failed, and none stopped a node
no_bad_snapshots() {
  ! cat "$T_DIR"/logs/node-*.log | grep -E 'snapshot at index [0-9]+ (dropped|failed)|snapshot at index [0-9]+: the store'
}

bench_ok() {  # bench_ok OUTPUT: the bench finished with no errors
  echo "$1" | grep -Eq 'ops [0-9]+ in .* errors 0$'
}

# ---- a. PBFT
mk_cluster pbft 4
set_cluster_key checkpoint_interval 8
for i in 0 1 2 3; do NODE_ARGS[$i]="--slow-snapshot 400"; done
start_all
wait_leader 20 >/dev/null || die "no primary"
out=$(ctl --timeout 20000 bench --clients 4 --duration 6 --value-size 100 --keys 500 2>&1)
bench_ok "$out" && pass "pbft: writes under slow snapshots all succeed ($(echo "$out" | grep -o 'ops [0-9]* in [0-9.]* s'))" \
  || fail "pbft bench: $out"
# the log says it once per 10 s per node, with how many it left out
waited=$(cat "$T_DIR"/logs/node-*.log | sed -n 's/.*waited [0-9]* ms for the snapshot before it.* (\([0-9]*\) more such.*/\1/p' |
  awk '{ n += $1 + 1 } END { print n + 0 }')
[ "$waited" -gt 0 ] && pass "pbft: checkpoints came due while a snapshot was under way and waited (logged: at least $waited)" \
  || fail "pbft: no checkpoint ever waited for a snapshot: the test did not exercise the slow path"
wait_converged 60 && pass "pbft: the replicas converge" || fail "pbft: no convergence"
if command -v curl >/dev/null; then
  h=$(stable_checkpoint 1)
  [ "${h:-0}" -ge 16 ] && pass "pbft: checkpoints went stable (node 1's h at $h)" \
    || fail "pbft: node 1's stable checkpoint is '${h:-}'"
  lines=$(cat "$T_DIR"/logs/node-*.log | grep -c 'waited .* ms for the snapshot before it')
  w=0
  for i in 0 1 2 3; do
    v=$(curl -s "http://127.0.0.1:$((T_BASE + 200 + i))/metrics" | sed -n 's/^synod_snapshot_waits_total \([0-9]*\)$/\1/p')
    w=$((w + ${v:-0}))
  done
  [ "$w" -ge "$waited" ] && [ "$w" -gt "$lines" ] && [ "$lines" -le 8 ] \
    && pass "pbft: synod_snapshot_waits_total counts the waits ($w) the log summarises in $lines lines" \
    || fail "pbft: synod_snapshot_waits_total sums to $w; the logs say $waited in $lines lines"
fi
no_bad_snapshots && pass "pbft: no snapshot was dropped or failed" || fail "pbft: snapshots dropped or failed"
# SIGTERM while a snapshot is (very likely) under way: a write makes the
# next checkpoint come due, the stop follows at once
ctl bench --clients 4 --duration 2 --value-size 100 --keys 500 >/dev/null 2>&1 &
bp=$!
sleep 1
kill_node 2 TERM; rc=$?
wait $bp
[ $rc -eq 0 ] && pass "pbft: a replica stopped during slow snapshots exits 0" || fail "pbft: node 2 exited $rc on SIGTERM"
grep -q 'storage closed cleanly' "$T_DIR/logs/node-2.log" && pass "pbft: it closed its storage cleanly" \
  || fail "pbft: node 2 did not log a clean close"
start_node 2
ctl --timeout 20000 put after-restart ok >/dev/null && pass "pbft: writes go on after its restart" \
  || fail "pbft: write after restart failed"
wait_converged 60 && pass "pbft: the restarted replica catches up" || fail "pbft: no convergence after restart"
for i in 0 1 2 3; do kill_node "$i" TERM; done

# ---- b. Raft
T_DIR_A=$T_DIR
T_DIR=$T_DIR_A/raft
mkdir -p "$T_DIR"
mk_cluster raft 3
set_cluster_key snapshot_threshold 50
for i in 0 1 2; do NODE_ARGS[$i]="--slow-snapshot 400"; done
start_all
wait_leader 20 >/dev/null || die "no leader"
out=$(ctl --timeout 20000 bench --clients 4 --duration 5 --value-size 100 --keys 500 2>&1)
bench_ok "$out" && pass "raft: writes under slow snapshots all succeed ($(echo "$out" | grep -o 'ops [0-9]* in [0-9.]* s'))" \
  || fail "raft bench: $out"
n=$(cat "$T_DIR"/logs/node-*.log | grep -Ec 'INFO +node=[0-9]+ snapshot at index [0-9]+ \([0-9]+ bytes, [0-9]+ ms\)')
[ "$n" -ge 3 ] && pass "raft: snapshots taken meanwhile ($n)" || fail "raft: only $n snapshots"
no_bad_snapshots && pass "raft: no snapshot was dropped or failed" || fail "raft: snapshots dropped or failed"
wait_converged 60 && pass "raft: the nodes converge" || fail "raft: no convergence"
# c. A network close that hangs in NNG (1.5.2 can: nng_close, and the HTTP
# server's stop) does not keep a node from stopping: --stall-close (test
# builds) makes the close stall 2 minutes; SIGTERM still stops the node,
# its storage closed, within kill_node's 30 s, and it restarts and rejoins.
kill_node 1 TERM
NODE_ARGS[1]="--stall-close 120000"
start_node 1
wait_converged 60 || fail "raft: node 1 did not rejoin"
t0=$SECONDS
kill_node 1 TERM; rc=$?
[ $rc -eq 0 ] && pass "raft: a node whose network close hangs still stops on SIGTERM, exit 0 ($((SECONDS - t0)) s)" \
  || fail "raft: node 1 exited $rc on SIGTERM with its network close stalled"
sed -n '/the network did not close within .* left behind/,$p' "$T_DIR/logs/node-1.log" \
  | grep -q 'storage closed cleanly' \
  && pass "raft: it said the close was left behind and closed its storage cleanly" \
  || fail "raft: node 1's log lacks the left-behind warning or the clean close"
NODE_ARGS[1]=""
start_node 1
ctl --timeout 20000 put after-stall ok >/dev/null || fail "raft: write after node 1's restart failed"
wait_converged 60 && pass "raft: it restarts and catches up" || fail "raft: node 1 did not catch up"
for i in 0 1 2; do kill_node "$i" TERM || fail "raft: node $i did not exit 0 on SIGTERM"; done
T_DIR=$T_DIR_A
finish
