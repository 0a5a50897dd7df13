#!/usr/bin/env bash
# A node whose disk fills up, for Raft (3 nodes) and PBFT (4): its data
# directory sits on a small tmpfs of its own; under a write load the test
# fills that file system. The node must stop by itself with one line
# naming the storage failure (exit 1), never acknowledge what it could not
# store, and the others go on serving; restarted on the still-full disk it
# stops again the same way (or runs, if it has nothing to write yet), but
# does not crash or hang. Once space is freed the node
# restarts from its data directory, catches up, and every acknowledged
# write is on every node; every ledger verifies.
#
# Needs root (mount); prints SKIP and exits 0 otherwise.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

if [ "$(id -u)" -ne 0 ]; then echo "SKIP: mounting a small file system needs root"; exit 0; fi
MNT=$T_DIR/mnt
mkdir -p "$MNT"
if ! mount -t tmpfs -o size=48m tmpfs "$MNT" 2>"$T_DIR/mount.err"; then
  echo "SKIP: cannot mount a tmpfs: $(cat "$T_DIR/mount.err")"
  exit 0
fi
# nodes die first (they hold files there), then the mount goes, then
# lib.sh's cleanup
trap 'for i in "${!T_PIDS[@]}"; do kill -9 "${T_PIDS[$i]}" 2>/dev/null; done
      wait 2>/dev/null; umount "$MNT" 2>/dev/null; cleanup' EXIT

run_proto() {
  local P=$1 n=$2 V=$3 acked loader i rc out lost v end
  SC_FAILS0=$T_FAILS
  mk_cluster "$P" "$n"
  set_cluster_key snapshot_threshold 200
  [ "$P" = pbft ] && set_cluster_key checkpoint_interval 16
  # node V keeps its data on the small file system
  mkdir -p "$MNT/$P"
  sed -i "s|^data_dir = .*|data_dir = $MNT/$P/node-$V|" "$C_DIR/node-$V.ini"
  start_all
  wait_leader 30 >/dev/null || die "$P: no leader elected within 30s"
  log "== $P n=$n: node $V's data directory on a 48 MB tmpfs"

  acked=$T_DIR/acked-$P
  : > "$acked"
  local val
  val=$(head -c 900 /dev/zero | tr '\0' x)
  ( for i in $(seq 1 100000); do
      [ -e "$T_DIR/stop-$P" ] && break
      if ctl --timeout 8000 put "df-$i" "$val-$i" >/dev/null 2>&1; then echo "$i" >> "$acked"; fi
    done ) &
  loader=$!
  sleep 2
  # fill what is left of the file system
  dd if=/dev/zero of="$MNT/filler-$P" bs=64k 2>/dev/null
  log "$P: filled node $V's file system ($(df -h "$MNT" | awk 'NR == 2 {print $3 " used of " $2}'))"
  end=$((SECONDS + 60))
  while kill -0 "${T_PIDS[$V]}" 2>/dev/null && [ $SECONDS -lt $end ]; do sleep 0.3; done
  if kill -0 "${T_PIDS[$V]}" 2>/dev/null; then
    fail "$P: node $V still runs 60 s after its disk filled up"
    kill_node "$V" KILL
  else
    wait "${T_PIDS[$V]}"; rc=$?
    unset "T_PIDS[$V]"
    out=$(grep -E "ERROR" "$T_DIR/logs/node-$V.log" | tail -1)
    [ $rc -eq 1 ] && pass "$P: node $V stopped by itself when its disk filled up (exit 1)" \
      || fail "$P: node $V exited $rc when its disk filled up"
    echo "$out" | grep -q -i -E "space|full" && pass "$P: it said why: $out" \
      || fail "$P: its last error line does not name the full disk: '$out'"
  fi
  local before
  before=$(wc -l < "$acked")
  sleep 3
  [ "$(wc -l < "$acked")" -gt "$before" ] && pass "$P: the others go on acknowledging writes" \
    || fail "$P: no write acknowledged in the 3 s after node $V stopped"

  # restarted while the disk is still full: it recovers what it can or
  # stops again with a clear line -- it does not crash or hang
  start_node "$V"
  end=$((SECONDS + 30))
  while kill -0 "${T_PIDS[$V]}" 2>/dev/null && [ $SECONDS -lt $end ]; do sleep 0.3; done
  if kill -0 "${T_PIDS[$V]}" 2>/dev/null; then
    pass "$P: node $V restarted on the full disk and runs (nothing it needed to write yet)"
    kill_node "$V" KILL
  else
    wait "${T_PIDS[$V]}"; rc=$?
    unset "T_PIDS[$V]"
    out=$(tail -n 1 "$T_DIR/logs/node-$V.log")
    [ $rc -eq 1 ] && echo "$out" | grep -q -i -E "space|full" \
      && pass "$P: restarted on the full disk, node $V stops again with exit 1: $out" \
      || fail "$P: restarted on the full disk, node $V exited $rc: $out"
  fi

  rm -f "$MNT/filler-$P"
  start_node "$V"
  sleep 3
  touch "$T_DIR/stop-$P"
  wait "$loader"
  wait_converged 90 && pass "$P: node $V restarted after space was freed and caught up" \
    || fail "$P: no convergence after node $V's restart"
  # every acknowledged write, read back (linearizable reads; a sample past
  # the first hundred keeps this short under ASan)
  lost=0
  for i in $(awk 'NR <= 100 || NR % 10 == 0' "$acked"); do
    v=$(ctl --timeout 8000 get "df-$i" 2>/dev/null) && [ "$v" = "$val-$i" ] || lost=$((lost + 1))
  done
  [ "$lost" -eq 0 ] && pass "$P: every acknowledged write read back ($(wc -l < "$acked") acknowledged)" \
    || fail "$P: $lost acknowledged writes missing or wrong"
  for ((i = 0; i < n; i++)); do
    kill_node "$i" TERM; rc=$?
    [ $rc -eq 0 ] || fail "$P: node $i exited $rc on SIGTERM"
  done
  for ((i = 0; i < n; i++)); do
    local dir=$C_DIR/data/node-$i
    [ "$i" = "$V" ] && dir=$MNT/$P/node-$V
    out=$(ctl ledger verify "$dir" 2>&1) || fail "$P: node $i ledger: $out"
  done
  [ "$T_FAILS" -eq "$SC_FAILS0" ] && pass "$P: every ledger verifies" || dump_logs
  rm -rf "${MNT:?}/$P"
  mv "$T_DIR/logs" "$T_DIR/logs-$P"
  mv "$C_DIR" "$T_DIR/cluster-$P"
}

run_proto raft 3 2
T_BASE=$((T_BASE + 10))
run_proto pbft 4 3
finish
