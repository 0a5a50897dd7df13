#!/usr/bin/env bash
# A node whose disk fills up, for Raft (3 nodes) and PBFT (4): its data
# directory sits on a small tmpfs of its own; under a write load the test
# fills that file system. The node must stop by itself with one line
# naming the storage failure (exit 1), never acknowledge what it could not
# store, and the others go on serving; restarted on the still-full disk it
# stops again the same way (or runs, if it has nothing to write yet), but
# does not crash or hang. Once space is freed the node restarts from its
# data directory and catches up; the acknowledged writes read back (the
# first hundred and every tenth after); every ledger verifies.
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
LOADER=
trap '[ -n "$LOADER" ] && kill "$LOADER" 2>/dev/null
      for i in "${!T_PIDS[@]}"; do kill -9 "${T_PIDS[$i]}" 2>/dev/null; done
      wait 2>/dev/null; umount "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null; cleanup' EXIT

# expect_stop I TIMEOUT_S WHAT [ran]: node I must exit 1 within TIMEOUT_S,
# its last log line naming the full disk. With "ran", a node still running
# then (nothing to write yet) passes too, and is killed.
expect_stop() {
  local i=$1 t=$2 what=$3 end=$((SECONDS + $2)) rc out
  while kill -0 "${T_PIDS[$i]}" 2>/dev/null && [ $SECONDS -lt $end ]; do sleep 0.3; done
  if kill -0 "${T_PIDS[$i]}" 2>/dev/null; then
    if [ "${4:-}" = ran ] && status_json | grep "\"node\": $i," | grep -q '"reachable": true'; then
      pass "$what: no, it runs and answers (nothing it needed to write yet)"
    else
      fail "$what: no, it still runs ${t}s later"
    fi
    kill_node "$i" KILL
    return
  fi
  wait "${T_PIDS[$i]}"; rc=$?
  unset "T_PIDS[$i]"
  out=$(tail -n 1 "$T_DIR/logs/node-$i.log")
  [ $rc -eq 1 ] && echo "$out" | grep -q -i -E "space|full" && pass "$what (exit 1): $out" \
    || fail "$what: exit $rc, last line: $out"
}

run_proto() {
  local P=$1 n=$2 V=$3 acked loader i lost v
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
  loader=$! LOADER=$!
  sleep 2
  # fill what is left of the file system
  dd if=/dev/zero of="$MNT/filler-$P" bs=64k 2>/dev/null
  log "$P: filled node $V's file system ($(df -h "$MNT" | awk 'NR == 2 {print $3 " used of " $2}'))"
  expect_stop "$V" 60 "$P: node $V stopped by itself when its disk filled up"
  local before end
  before=$(wc -l < "$acked") end=$((SECONDS + 20))
  while [ "$(wc -l < "$acked")" -le "$before" ] && [ $SECONDS -lt $end ]; do sleep 0.3; done
  [ "$(wc -l < "$acked")" -gt "$before" ] && pass "$P: the others go on acknowledging writes" \
    || fail "$P: no write acknowledged in the 20 s after node $V stopped"

  # restarted while the disk is still full: it recovers what it can or
  # stops again with a clear line -- it does not crash or hang
  start_node "$V"
  expect_stop "$V" 30 "$P: restarted on the full disk, node $V stops again" ran
  rm -f "$MNT/filler-$P"
  start_node "$V"
  sleep 3
  touch "$T_DIR/stop-$P"
  wait "$loader"; LOADER=
  wait_converged 90 && pass "$P: node $V restarted after space was freed and caught up" \
    || fail "$P: no convergence after node $V's restart"
  # every acknowledged write, read back (linearizable reads; a sample past
  # the first hundred keeps this short under ASan)
  local sample
  sample=$(awk 'NR <= 100 || NR % 10 == 0' "$acked")
  lost=0
  for i in $sample; do
    v=$(ctl --timeout 8000 get "df-$i" 2>/dev/null) && [ "$v" = "$val-$i" ] || lost=$((lost + 1))
  done
  [ "$lost" -eq 0 ] && pass "$P: $(echo "$sample" | wc -w) of the $(wc -l < "$acked") acknowledged writes read back, all of them right" \
    || fail "$P: $lost acknowledged writes missing or wrong"
  DATA_DIR=([$V]="$MNT/$P/node-$V")
  stop_verify "$P: "
  [ "$T_FAILS" -eq "$SC_FAILS0" ] || dump_logs
  DATA_DIR=()
  rm -rf "${MNT:?}/$P"
  mv "$T_DIR/logs" "$T_DIR/logs-$P"
  mv "$C_DIR" "$T_DIR/cluster-$P"
}

run_proto raft 3 2
T_BASE=$((T_BASE + 10))
run_proto pbft 4 3
finish
