# The integration suite every protocol must pass, against real processes.
# Sourced with PROTO and N set (raft/paxos: 3 nodes, pbft: 4).
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
F=1   # both suites run the smallest cluster for f=1

mk_cluster "$PROTO" "$N"
# catch-up after compaction is exercised (PBFT: a state several chunks
# long by section 4, fetched in chunks)
compact_often "$PROTO" 200
start_all
L=$(wait_leader 30) || die "no leader/primary elected within 30s"
pass "cluster of $N $PROTO nodes elected node $L"

# ---- 1. writes, reads, cas, scan, del
ctl put greeting hello >/dev/null || fail "put failed"
v=$(ctl get greeting) && [ "$v" = "hello" ] && pass "get returns the value written" || fail "get returned '$v'"
ctl cas greeting hello world >/dev/null && pass "cas with the right old value succeeds" || fail "cas failed"
cur=$(ctl cas greeting hello again 2>/dev/null); rc=$?
[ $rc -eq 1 ] && [ "$cur" = "world" ] && pass "cas with a stale old value fails and shows the current value" \
  || fail "stale cas: rc=$rc cur='$cur'"
ctl put a1 x >/dev/null && ctl put a2 y >/dev/null && ctl put b1 z >/dev/null
s=$(ctl scan a b | tr '\t\n' ':;')
[ "$s" = "a1:x;a2:y;" ] && pass "scan returns keys in range in order" || fail "scan gave '$s'"
# a scan over more than one reply's 4 MiB of keys and values is read in
# pages (four ~1 MB values fill one): nothing in range is left out
head -c 1000000 /dev/zero | tr '\0' v > "$T_DIR/big"
for k in 0 1 2 3 4 5; do ctl put "big$k" --stdin < "$T_DIR/big" >/dev/null || fail "put big$k"; done
s=$(ctl scan big bih 2>"$T_DIR/scan.err" | cut -f1 | tr '\n' ' ')
[ "$s" = "big0 big1 big2 big3 big4 big5 " ] && [ ! -s "$T_DIR/scan.err" ] \
  && pass "a scan past the 4 MiB reply cap returns every key in range" \
  || fail "scan over 6 MB gave '$s', stderr '$(cat "$T_DIR/scan.err")'"
s=$(ctl scan big bih --limit 5 2>"$T_DIR/scan.err" | cut -f1 | tr '\n' ' ')
[ "$s" = "big0 big1 big2 big3 big4 " ] && grep -q 'stopped after 5 keys (--limit); more may follow' "$T_DIR/scan.err" \
  && pass "scan --limit 5 over two pages stops at 5 keys and says more may follow" \
  || fail "scan --limit 5 gave '$s', stderr '$(cat "$T_DIR/scan.err")'"
for k in 0 1 2 3 4 5; do ctl del "big$k" >/dev/null; done
# usage errors are one line on stderr and exit 2, before anything is sent
usage_err() {  # usage_err WHAT EXPECTED-TEXT ARGS...
  local what=$1 want=$2; shift 2
  local out rc; out=$(ctl "$@" 2>&1); rc=$?
  [ $rc -eq 2 ] && [ "$(echo "$out" | wc -l)" -eq 1 ] && echo "$out" | grep -q -- "$want" \
    && pass "synodctl refuses $what (exit 2): $out" || fail "synodctl $what: rc=$rc '$out'"
}
usage_err "an empty key" "empty" put "" v
usage_err "a scan whose FROM sorts after TO" "after" scan b a
usage_err "an option of another command" "--json does not apply to get, only to status" get greeting --json
usage_err "an option of another command given as --name=value" "--limit does not apply to get, only to scan" \
  get greeting --limit=5
usage_err "a value for an option that takes none" "--stale takes no value" get greeting --stale=1
# --name=value is --name value, for every option that takes a value
v=$("$BIN/synodctl" --cluster="$C_DIR/cluster.ini" --timeout=5000 --key="$C_DIR/keys/client-1.key" get greeting) \
  && [ "$v" = world ] && s=$(ctl scan a b --limit=1 | cut -f1) && [ "$s" = a1 ] \
  && pass "--cluster=, --timeout=, --key= and --limit= work as --name value" \
  || fail "--name=value: get gave '$v', scan --limit=1 gave '${s:-}'"
# the manifest's directory for the manifest: one line naming the file
out=$("$BIN/synodctl" --cluster "$C_DIR" get greeting 2>&1); rc=$?
[ $rc -eq 2 ] && [ "$out" = "synodctl: manifest $C_DIR is a directory; did you mean $C_DIR/cluster.ini?" ] \
  && pass "--cluster DIR names DIR/cluster.ini (exit 2)" || fail "--cluster DIR: rc=$rc '$out'"
# a stale cas says where the current value went, whatever stdout is
out=$(ctl cas greeting hello again 2>&1 >/dev/null); rc=$?
[ $rc -eq 1 ] && [ "$out" = "synodctl: cas: key 'greeting' holds another value (5 bytes, printed on stdout)" ] \
  && pass "a failed cas with stdout elsewhere says the value went to stdout" || fail "cas message: rc=$rc '$out'"
# status --json: every node object has reachable and connected
s=$(status_json)
[ "$(grep -c '"node": ' <<<"$s")" -eq "$N" ] && [ "$(grep -c '"reachable": true, "connected": true' <<<"$s")" -eq "$N" ] \
  && pass "status --json: each of the $N nodes says reachable and connected" || fail "status --json: $s"
# a run shorter than a second prints no progress line
out=$(ctl bench --requests 10 2>&1); rc=$?
secs=$(sed -n 's/^ops [0-9]* in \([0-9.]*\) s.*/\1/p' <<<"$out")
if [ $rc -eq 0 ] && awk -v s="${secs:-9}" 'BEGIN { exit !(s < 1) }'; then
  ! grep -q '^\[ *[0-9]*s\]' <<<"$out" && pass "a ${secs} s bench prints no progress line" \
    || fail "a ${secs} s bench printed a progress line: $out"
elif [ $rc -ne 0 ]; then
  fail "bench --requests 10: rc=$rc $out"
fi
# a manifest whose client addresses nobody listens on: bench stops when it
# says it stops (one deadline and a second in), transfer says unreachable
awk '/^client = tcp:\/\/127\.0\.0\.1:[0-9]+$/ { split($3, p, ":"); print "client = tcp://127.0.0.1:" p[3] + 150; next } { print }' \
  "$C_DIR/cluster.ini" > "$C_DIR/cluster-down.ini"
t0=$SECONDS
out=$("$BIN/synodctl" --cluster "$C_DIR/cluster-down.ini" --timeout 1000 bench --requests 10 2>&1); rc=$?
took=$((SECONDS - t0))
[ $rc -eq 1 ] && [ "$took" -le 4 ] && grep -q "bench: cluster unreachable: .* stopping" <<<"$out" \
  && ! sed -n '/stopping/,$p' <<<"$out" | grep -q '^\[' && ! grep -q "operations\? failed" <<<"$out" \
  && pass "bench on an unreachable cluster stops when it says so (${took} s, exit 1)" \
  || fail "bench, unreachable: rc=$rc in ${took} s: $out"
# a --duration shorter than the request deadline (5 s by default) ends at
# its duration with the same line, not at the first request's deadline
t0=$(date +%s%N)
out=$("$BIN/synodctl" --cluster "$C_DIR/cluster-down.ini" bench --clients 1 --duration 2 2>&1); rc=$?
took_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
[ $rc -eq 1 ] && [ "$took_ms" -lt 3500 ] && grep -q "bench: cluster unreachable: .* stopping" <<<"$out" \
  && ! grep -q "operations\? failed" <<<"$out" \
  && pass "bench --duration 2 on an unreachable cluster stops at 2 s and says so (${took_ms} ms, exit 1)" \
  || fail "bench --duration 2, unreachable: rc=$rc in ${took_ms} ms: $out"
out=$("$BIN/synodctl" --cluster "$C_DIR/cluster-down.ini" --timeout 1000 transfer 2>&1); rc=$?
[ $rc -eq 1 ] && grep -q "^synodctl: transfer: cluster unreachable: none of the $N nodes answered" <<<"$out" \
  && pass "transfer on an unreachable cluster says so (exit 1)" || fail "transfer, unreachable: rc=$rc $out"
ctl put -- --dashed v >/dev/null && [ "$(ctl get -- --dashed)" = v ] \
  && pass "after -- a key may start with --" || fail "a key starting with -- after --"
ctl del a1 >/dev/null && ! ctl get a1 >/dev/null 2>&1 && pass "deleted key is gone" || fail "del"

# ---- 2. cas race between clients: exactly one of K racing cas wins
ctl put counter 0 >/dev/null
cas_pids=()
for k in 0 1 2 3; do
  ( ctl --key "$C_DIR/keys/client-$k.key" cas counter 0 "won-by-$k" >/dev/null 2>&1; echo $? > "$T_DIR/cas-$k" ) &
  cas_pids+=($!)
done
wait "${cas_pids[@]}"
wins=$(cat "$T_DIR"/cas-* | grep -c '^0$')
[ "$wins" -eq 1 ] && pass "exactly one of 4 racing cas wins" || fail "$wins racing cas won"
winner=$(ctl get counter)
echo "$winner" | grep -q '^won-by-[0-3]$' && pass "the winner's value is stored ($winner)" || fail "counter='$winner'"
# three shell loops writing with the same (default) client key: synodctl
# takes its turn with the key (one identity is one sequential client), so
# no write fails as stale and every acknowledged one is stored
same_pids=()
for w in 1 2 3; do
  ( for i in $(seq 1 30); do ctl put "same-$w-$i" v >/dev/null 2>>"$T_DIR/same.err" && echo "same-$w-$i"; done \
      > "$T_DIR/same-$w" ) &
  same_pids+=($!)
done
wait "${same_pids[@]}"
n_ok=$(cat "$T_DIR"/same-* | wc -l) missing=0
for k in $(cat "$T_DIR"/same-*); do ctl get "$k" >/dev/null 2>&1 || missing=$((missing + 1)); done
[ "$n_ok" -eq 90 ] && [ "$missing" -eq 0 ] \
  && pass "90 writes from 3 parallel synodctl loops sharing a key: all acknowledged, all stored" \
  || fail "shared key: $n_ok of 90 acknowledged, $missing of those missing; errors: $(sort "$T_DIR/same.err" | uniq -c | head -3)"
# a key held for longer than a request's deadline: one clear line, exit 1
ctl bench --clients 1 --duration 3 >/dev/null 2>&1 &
bp=$!
sleep 1
out=$(ctl --timeout 500 put held v 2>&1); rc=$?
wait $bp
[ $rc -eq 1 ] && echo "$out" | grep -q "stayed in use by another process" \
  && pass "a put whose key a bench holds past its deadline says so (exit 1)" || fail "held key: rc=$rc '$out'"

# ---- 3. SIGKILL the leader under load: no acknowledged write lost
acked=$T_DIR/acked
: > "$acked"
( for i in $(seq 1 400); do
    if ctl --timeout 8000 put "load-$i" "v$i" >/dev/null 2>&1; then echo "$i" >> "$acked"; fi
  done ) &
loader=$!
sleep 2
L=$(leader)
[ -n "$L" ] || die "no leader before the kill"
log "SIGKILL leader node $L under load"
kill_node "$L" KILL
L2=$(wait_leader 30 "$L") && pass "new leader $L2 after killing $L" || fail "no new leader after killing $L"
wait $loader
n_acked=$(wc -l < "$acked")
[ "$n_acked" -gt 100 ] && pass "$n_acked of 400 writes acknowledged across the failover" || fail "only $n_acked writes acknowledged"
lost=0
for i in $(cat "$acked"); do
  v=$(ctl get "load-$i" 2>/dev/null) || { lost=$((lost + 1)); continue; }
  [ "$v" = "v$i" ] || lost=$((lost + 1))
done
[ "$lost" -eq 0 ] && pass "every acknowledged write survived the leader's SIGKILL" || fail "$lost acknowledged writes lost"

# ---- 4. restart and catch-up (after compaction: > snapshot_threshold entries)
start_node "$L"
wait_converged 60 && pass "restarted node $L caught up: same applied index, digest and ledger head" \
  || fail "restarted node did not converge"
snap=$(field "$L" snapshot_index)
[ "${snap:-0}" -gt 0 ] && pass "node $L holds a snapshot at index $snap (log compacted)" || fail "no snapshot on node $L"
if [ "$PROTO" = pbft ]; then
  # the others checkpointed and compacted while it was down: it had to
  # fetch their snapshot, more than one 1024-byte chunk of it
  inst=$(grep -o 'installed snapshot at index [0-9]* ([0-9]* bytes) by state transfer' \
           "$T_DIR/logs/node-$L.log" | tail -1)
  ibytes=$(sed -n 's/.*(\([0-9]*\) bytes).*/\1/p' <<<"$inst")
  [ "${ibytes:-0}" -gt 1024 ] && pass "node $L fetched a snapshot in chunks: $inst" \
    || fail "node $L installed no multi-chunk snapshot (log: '${inst:-none}')"
fi

# ---- 5. f nodes down: still serving; f+1 down: clear failure, then recovery
L=$(wait_leader 20)
down1=$(( (L + 1) % N ))
kill_node "$down1" KILL
ctl --timeout 10000 put f-down ok >/dev/null && pass "writes succeed with f=$F node down" || fail "write failed with f nodes down"
down2=$(( (L + 2) % N ))
kill_node "$down2" KILL
out=$(ctl --timeout 3000 put f1-down nope 2>&1); rc=$?
[ $rc -eq 1 ] && pass "with f+1 nodes down a write fails at its deadline (exit 1): $out" || fail "f+1 down: rc=$rc out=$out"
seen=
for _ in $(seq 1 30); do
  grep -q "only [0-9]* of $((N - 1)) peers connected for [0-9]* s, and a quorum needs" \
    "$T_DIR/logs/node-$L.log" && { seen=1; break; }
  sleep 0.5
done
[ -n "$seen" ] && pass "node $L, cut off from a quorum, says so in its log" \
  || fail "node $L logged nothing about its missing peers"
start_node "$down2"
ctl --timeout 20000 put f1-back yes >/dev/null && pass "writes succeed again once a node returns" || fail "no recovery after node returned"
start_node "$down1"
wait_converged 60 && pass "all nodes converged after the outage" || fail "no convergence after outage"

# ---- 5a. a node's disk died (docs/operations.md, section 7): stopped, its
# data directory replaced by an empty one, started again, it is caught up
# by the others -- Raft and Paxos leaders had it on record as holding all it
# once acknowledged, and must see that it holds nothing now
L=$(wait_leader 20)
X=$(( (L + 1) % N ))
kill_node "$X" TERM
if [ "$PROTO" != pbft ]; then
  # --rejoin belongs to a replaced disk only
  "$BIN/synod" --config "$C_DIR/node-$X.ini" --rejoin >"$T_DIR/rejoin-refused.out" 2>&1
  rc=$?
  [ "$rc" = 2 ] && grep -q "already holds node $X's $PROTO state; start it without --rejoin" "$T_DIR/rejoin-refused.out" \
    && pass "--rejoin on a data directory with state refused (exit 2)" \
    || fail "--rejoin on a used data directory: exit $rc, $(head -c 300 "$T_DIR/rejoin-refused.out")"
fi
NODE_ARGS[$X]=--rejoin   # PBFT: accepted, changes nothing
mv "$C_DIR/data/node-$X" "$C_DIR/data/node-$X.dead"
start_node "$X"
NODE_ARGS[$X]=
if [ "$PROTO" != pbft ]; then
  # the operator sees which node still rejoins (it votes for nobody yet):
  # its first answer comes well within its deaf period (at least 1 s)
  xline=
  for _ in $(seq 1 50); do
    xline=$(status_json | grep "\"node\": $X,")
    grep -q '"role"' <<<"$xline" && break
    sleep 0.1
  done
  grep -q '"role": "rejoining"' <<<"$xline" \
    && pass "synodctl status shows node $X as rejoining" \
    || fail "synodctl status does not show node $X rejoining: $xline"
fi
# with no writes at all: the leader's heartbeats (PBFT: the others' stable
# checkpoint) alone must bring it back
wait_converged 30 && pass "node $X on an empty disk caught up with no writes going on" \
  || fail "node $X on an empty disk did not catch up while the cluster was idle"
if [ "$PROTO" != pbft ]; then
  # and finishes rejoining: a Raft leader sends a follower that holds
  # everything its last entry again with the commit (resend_commit), an
  # idle Multi-Paxos leader proposes a no-op of its own ballot
  # (px_leader_tick; docs/operations.md, section 7)
  wait_log "$X" "rejoined: caught up with the leader" 30 && [ ! -e "$C_DIR/data/node-$X/rejoin" ] \
    && pass "node $X finished rejoining with no writes at all" \
    || fail "node $X did not finish rejoining in an idle cluster"
fi
for k in 1 2 3; do ctl put "new-disk-$k" "v$k" >/dev/null || fail "write $k after the disk replacement failed"; done
wait_converged 60 && pass "node $X on an empty disk caught up: same applied index, digest and ledger head" \
  || fail "node $X on an empty disk did not catch up"
if [ "$PROTO" != pbft ]; then
  wait_log "$X" "rejoined: caught up with the leader" 30 && [ ! -e "$C_DIR/data/node-$X/rejoin" ] \
    && pass "node $X rejoined: said so and removed its rejoin mark" \
    || fail "node $X did not finish rejoining (log or $C_DIR/data/node-$X/rejoin)"
  status_json | grep "\"node\": $X," | grep -q '"role": "follower"' \
    && pass "synodctl status shows node $X as a follower once it rejoined" \
    || fail "node $X rejoined, but status says: $(status_json | grep "\"node\": $X,")"
fi
rm -rf "$C_DIR/data/node-$X.dead"

# ---- 5b. a paused node (SIGSTOP: its connections stay up, it answers
# nothing): still serving. PBFT clients send to the primary and f backups
# first; those that picked the paused one widen after a few round trips
# and then leave it out (net/client.c).
# Both of bench's drivers: its event loop (the default) and the client
# library's threads (--threads: what an application on net/client.h does).
for drv in "" --threads; do
  L=$(wait_leader 20)
  paused=$(( (L + 1) % N ))
  kill -STOP "${T_PIDS[$paused]}"
  out=$(ctl --timeout 10000 bench $drv --clients 4 --duration 3 --value-size 100 --read-ratio 0 2>&1)
  kill -CONT "${T_PIDS[$paused]}"
  read -r b_ops b_err <<<"$(sed -n 's/^ops \([0-9]*\) in .*errors \([0-9]*\).*/\1 \2/p' <<<"$out")"
  [ "${b_ops:-0}" -gt 0 ] && [ "${b_err:-1}" -eq 0 ] \
    && pass "bench${drv:+ $drv}: with node $paused paused (SIGSTOP) 4 clients completed $b_ops writes, no errors" \
    || fail "bench${drv:+ $drv}, writes with node $paused paused: $out"
  wait_converged 60 && pass "paused node $paused caught up after SIGCONT" || fail "no convergence after SIGCONT"
done
# The leader or primary paused for 3 s in a 7 s bench: its clients hear
# nothing, move on (Raft, Multi-Paxos: the next node, whose hint names the
# new leader; PBFT: the broadcast, which starts the view change), and every
# request still completes within its 10 s deadline -- bench's own retries,
# exercised. Mixed reads: PBFT's read quorum has to do without the primary.
L=$(wait_leader 20)
ctl --timeout 10000 bench --clients 4 --duration 7 --value-size 100 --read-ratio 0.3 \
    > "$T_DIR/bench-paused-leader" 2>&1 &
bp=$!
sleep 2
kill -STOP "${T_PIDS[$L]}"
sleep 3
kill -CONT "${T_PIDS[$L]}"
wait $bp; rc=$?
out=$(cat "$T_DIR/bench-paused-leader")
read -r b_ops b_err <<<"$(sed -n 's/^ops \([0-9]*\) in .*errors \([0-9]*\).*/\1 \2/p' <<<"$out")"
[ $rc -eq 0 ] && [ "${b_ops:-0}" -gt 0 ] && [ "${b_err:-1}" -eq 0 ] \
  && pass "leader $L paused for 3 s in a 7 s bench: $b_ops operations, no errors" \
  || fail "bench across a paused leader $L: rc=$rc $out"
wait_converged 60 && pass "paused leader $L caught up after SIGCONT" || fail "no convergence after the leader's SIGCONT"

# ---- 6. bad input on both ports: rejected, counted, node keeps serving
head -c 5000 /dev/urandom > "$T_DIR/garbage"
peer_port=$((T_BASE + 0)); client_port=$((T_BASE + 100)); metrics_port=$((T_BASE + 200))
# raw TCP garbage into the NNG ports (SP handshake fails or frame rejected)
for p in $peer_port $client_port; do
  (exec 3<>/dev/tcp/127.0.0.1/$p && cat "$T_DIR/garbage" >&3; exec 3>&-) 2>/dev/null || true
done
# each connection takes a descriptor: the node raised its soft open-files
# limit from the 1,024 it was started with to its hard limit
if [ -r "/proc/${T_PIDS[0]}/limits" ]; then
  read -r soft hard < <(awk '/^Max open files/ { print $4, $5 }' "/proc/${T_PIDS[0]}/limits")
  if [ "$hard" = unlimited ] || [ "$hard" -gt 1024 ]; then
    [ "$soft" != 1024 ] && { [ "$soft" = "$hard" ] || [ "$soft" = 1048576 ]; } \
      && pass "node 0 raised its open-files limit from 1024 to $soft (hard $hard)" \
      || fail "node 0 open-files limit soft $soft hard $hard"
  fi
fi
# a client key that is not in the manifest
"$BIN/synod-keys" gen --out "$T_DIR/stranger.key" >/dev/null
out=$(ctl --key "$T_DIR/stranger.key" put x y 2>&1); rc=$?
[ $rc -eq 2 ] && echo "$out" | grep -qi "not" && pass "a client key not in the manifest is refused (exit 2): $out" \
  || fail "stranger key: rc=$rc out=$out"
# a client manifest with another cluster id: the nodes refuse its frames in
# replies signed for their own id, and the client names both ids at once
sed 's/^id *=.*/id = not-this-one/' "$C_DIR/cluster.ini" > "$C_DIR/cluster-otherid.ini"
for cmd in "put x y" "status"; do
  out=$("$BIN/synodctl" --cluster "$C_DIR/cluster-otherid.ini" --key "$C_DIR/keys/client-0.key" \
        --timeout 20000 $cmd 2>&1 >/dev/null); rc=$?
  [ $rc -eq 2 ] && grep -q "the nodes belong to cluster '$(sed -n 's/^id *= *//p' "$C_DIR/cluster.ini")', but .*cluster-otherid.ini says 'not-this-one'" <<<"$out" \
    && pass "a manifest with another cluster id: '$cmd' says so, exit 2: $out" \
    || fail "another cluster id, $cmd: rc=$rc out=$out"
done
# a client manifest naming the other kind of cluster (a crash-fault client
# would trust one PBFT replica's reply): the nodes refuse it, exit 2
if [ "$PROTO" = pbft ]; then
  sed 's/^protocol *=.*/protocol = raft/' "$C_DIR/cluster.ini" > "$C_DIR/cluster-otherkind.ini"
  want="the nodes run pbft, but .*cluster-otherkind.ini says raft"
else
  sed 's/^protocol *=.*/protocol = pbft/; s/^f *=.*/f = 0/' "$C_DIR/cluster.ini" > "$C_DIR/cluster-otherkind.ini"
  want="the nodes run a crash-fault protocol (raft or paxos), but .*cluster-otherkind.ini says pbft"
fi
out=$("$BIN/synodctl" --cluster "$C_DIR/cluster-otherkind.ini" --key "$C_DIR/keys/client-0.key" \
      --timeout 20000 put x y 2>&1 >/dev/null); rc=$?
[ $rc -eq 2 ] && grep -q "$want" <<<"$out" \
  && pass "a manifest naming the other kind of cluster is refused by the nodes, exit 2: $out" \
  || fail "manifest of the other kind: rc=$rc out=$out"
# a PBFT client manifest with a smaller f would believe too few matching
# replies: the replicas refuse its requests (their membership digest
# differs), count the refusals, and the client says so, exit 2
if [ "$PROTO" = pbft ]; then
  grep -q '^f *= *1\b' "$C_DIR/cluster.ini" || fail "the generated manifest has no 'f = 1' line to change"
  sed 's/^f *=.*/f = 0/' "$C_DIR/cluster.ini" > "$C_DIR/cluster-smallf.ini"
  out=$("$BIN/synodctl" --cluster "$C_DIR/cluster-smallf.ini" --key "$C_DIR/keys/client-0.key" \
        --timeout 20000 put x y 2>&1 >/dev/null); rc=$?
  [ $rc -eq 2 ] && grep -q "the replicas' manifest differs from .*cluster-smallf.ini (n=$N, f=0)" <<<"$out" \
    && pass "a PBFT manifest with a smaller f is refused by the replicas, exit 2: $out" \
    || fail "manifest with a smaller f: rc=$rc out=$out"
  refused=0
  command -v curl >/dev/null && for i in $(seq 0 $((N - 1))); do
    c=$(curl -s "http://127.0.0.1:$((metrics_port + i))/metrics" \
        | sed -n 's/^synod_rejected_total{reason="wrong-membership"} \([0-9]*\)$/\1/p')
    refused=$((refused + ${c:-0}))
  done
  ! command -v curl >/dev/null || { [ "$refused" -ge 1 ] && pass "the refusals are counted: synod_rejected_total{reason=\"wrong-membership\"} sums to $refused" \
    || fail "no wrong-membership rejection counted"; }
fi
ctl put after-garbage fine >/dev/null && [ "$(ctl get after-garbage)" = fine ] \
  && pass "cluster keeps serving after garbage frames" || fail "cluster broken after garbage"
if command -v curl >/dev/null; then
  m=$(curl -s "http://127.0.0.1:$metrics_port/metrics")
  echo "$m" | grep -q '^synod_applied_index ' && pass "metrics endpoint serves Prometheus text" || fail "no metrics"
  # every line whole: Prometheus refuses a scrape with one broken line
  bad=$(curl -s "http://127.0.0.1:$metrics_port/metrics" \
        | grep -vE '^(# (HELP|TYPE) [a-z_:][a-z0-9_:]* .+|[a-z_:][a-z0-9_:]*(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? [-+0-9.eE]+)$')
  [ -z "$bad" ] && [ "$(curl -s "http://127.0.0.1:$metrics_port/metrics" | tail -c 1 | od -An -c | tr -d ' ')" = '\n' ] \
    && pass "every metrics line is well-formed Prometheus text" || fail "malformed metrics lines: $(head -3 <<<"$bad")"
  nohelp=$(comm -13 <(sed -n 's/^# HELP \([a-z_:0-9]*\) .*/\1/p' <<<"$m" | sort -u) \
                    <(sed -n 's/^# TYPE \([a-z_:0-9]*\) .*/\1/p' <<<"$m" | sort -u))
  [ -z "$nohelp" ] && pass "every metric family has a # HELP line" || fail "families without # HELP: $nohelp"
  # what the node runs; alerts on a rejection reason find a series even at 0;
  # no series for the node itself among its peers
  ver=$("$BIN/synod" --version | cut -d' ' -f2)
  grep -qx "synod_build_info{version=\"$ver\",protocol=\"$PROTO\"} 1" <<<"$m" \
    && grep -q '^synod_rejected_total{reason="bad-sig"} [0-9]*$' <<<"$m" \
    && grep -q '^synod_rejected_total{reason="unknown-sender"} [0-9]*$' <<<"$m" \
    && ! grep -q '^synod_net_peer_\(sent\|dropped\)_total{peer="0"}' <<<"$m" \
    && pass "metrics: synod_build_info names $ver and $PROTO, rejection reasons are exported, no self series" \
    || fail "metrics: $(grep -E 'build_info|rejected_total|peer_(sent|dropped)_total' <<<"$m" | tr '\n' ' ')"
  h=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$metrics_port/health")
  [ "$h" = 200 ] && pass "health endpoint says 200" || fail "health said $h"
  # every node with a snapshot of its own says how large and how long
  snapped=0
  for i in $(seq 0 $((N - 1))); do
    m=$(curl -s "http://127.0.0.1:$((metrics_port + i))/metrics")
    cnt=$(sed -n 's/^synod_snapshots_total \([0-9]*\)$/\1/p' <<<"$m")
    [ "${cnt:-0}" -gt 0 ] || continue
    b=$(sed -n 's/^synod_snapshot_last_bytes \([0-9]*\)$/\1/p' <<<"$m")
    sec=$(sed -n 's/^synod_snapshot_seconds_total \([0-9.]*\)$/\1/p' <<<"$m")
    if [ "${b:-0}" -gt 0 ] && awk -v s="${sec:-0}" 'BEGIN { exit !(s > 0) }'; then
      snapped=$((snapped + 1))
    else
      fail "node $i took $cnt snapshots but reports bytes '${b:-}' seconds '${sec:-}'"
    fi
  done
  [ "$snapped" -gt 0 ] && pass "$snapped nodes report their snapshots' size and duration" \
    || fail "no node reports a snapshot in its metrics"
fi

# ---- 6a. synodctl transfer: an operator moves leadership without stopping
# anything (the key must be marked admin: synod-keys marks client-0,
# synodctl's default); a key not marked admin is refused, exit code 2
L=$(wait_leader 20) || die "no leader before the transfer"
out=$(ctl --timeout 15000 transfer 2>&1); rc=$?
to=$(sed -n 's/^leadership moved from node [0-9]* to node \([0-9]*\)$/\1/p' <<<"$out")
if [ $rc -eq 0 ] && [ -n "$to" ] && [ "$to" != "$L" ]; then
  pass "$PROTO: synodctl transfer moved leadership from node $L to node $to"
  [ "$PROTO" != pbft ] || [ "$to" = $(( (L + 1) % N )) ] \
    || fail "pbft: the next view's primary is node $(( (L + 1) % N )), not $to"
  l2=$(wait_leader 20) && [ "$l2" = "$to" ] && pass "node $to leads after the transfer" \
    || fail "after the transfer node '${l2:-}' leads, not $to"
else
  fail "$PROTO: synodctl transfer: rc=$rc: $out"
fi
out=$(ctl --key "$C_DIR/keys/client-1.key" transfer 2>&1); rc=$?
[ $rc -eq 2 ] && grep -q "not marked admin" <<<"$out" \
  && pass "a key not marked admin cannot move leadership (exit 2, one line)" \
  || fail "non-admin transfer: rc=$rc: $out"
# the nodes check for themselves: a manifest copy that calls client-1 admin
# gets its request sent, and refused by the leader
sed '/^\[client "client-1"\]/,/^$/ s/^public_key = .*/&\nadmin = true/' "$C_DIR/cluster.ini" \
  > "$C_DIR/cluster-forged.ini"
grep -A2 'client "client-1"' "$C_DIR/cluster-forged.ini" | grep -q "admin = true" \
  || die "could not write the forged manifest copy"
out=$("$BIN/synodctl" --cluster "$C_DIR/cluster-forged.ini" --key "$C_DIR/keys/client-1.key" \
  transfer 2>&1); rc=$?
[ $rc -eq 2 ] && grep -q "the leader refused this client key" <<<"$out" \
  && pass "the leader refuses a key its own manifest does not mark admin" \
  || fail "forged-admin transfer: rc=$rc: $out"
ctl --timeout 15000 put after-transfer yes >/dev/null && pass "writes go on after the transfer" \
  || fail "write after the transfer failed"

# ---- 6b. SIGTERM of the leader: it hands leadership to a peer before it
# stops -- Raft with TimeoutNow (thesis 3.10), Multi-Paxos with TAKEOVER,
# PBFT with the primary's own VIEW-CHANGE (docs/operations.md, "Upgrades")
L=$(wait_leader 20) || die "no leader before the graceful stop"
kill_node "$L" TERM; rc=$?
[ $rc -eq 0 ] && pass "leader $L exits 0 on SIGTERM" || fail "leader $L exited $rc on SIGTERM"
to=$(grep -o "leadership handed to node [0-9]*" "$T_DIR/logs/node-$L.log" | tail -1 | awk '{print $NF}')
if [ -n "$to" ] && [ "$to" != "$L" ]; then
  pass "$PROTO: the stopping leader $L handed leadership to node $to"
  if [ "$PROTO" = pbft ] && [ "$to" != $(( (L + 1) % N )) ]; then
    fail "pbft: the next view's primary is node $(( (L + 1) % N )), not $to"
  fi
  l2=$(wait_leader 20 "$L")
  [ "$l2" = "$to" ] && pass "node $to leads after the hand-off" || fail "after the hand-off node '$l2' leads, not $to"
else
  fail "$PROTO: the stopping leader $L did not log a hand-off: $(grep stopping "$T_DIR/logs/node-$L.log" | tail -3)"
fi
ctl --timeout 15000 put after-stop yes >/dev/null && pass "writes go on after the leader's graceful stop" \
  || fail "write after the leader's graceful stop failed"
start_node "$L"
wait_converged 60 && pass "the stopped leader restarts and catches up" || fail "node $L did not catch up after restart"

# ---- 7. a data directory serves one node: a node file pointed at node 0's
# directory while node 0 runs is refused by its lock (exit 1), and after
# node 0 stopped, by the identity the directory recorded (exit 2)
sed "s|^data_dir *=.*|data_dir = data/node-0|" "$C_DIR/node-1.ini" > "$C_DIR/node-1-on-0.ini"
out=$(timeout 20 "$BIN/synod" --config "$C_DIR/node-1-on-0.ini" 2>&1); rc=$?
[ $rc -eq 1 ] && grep -q "data directory .*/data/node-0 is in use by another synod process (pid ${T_PIDS[0]})" <<<"$out" \
  && pass "a second process on node 0's data directory is refused (exit 1): $out" \
  || fail "second process on node 0's data directory: rc=$rc out=$out"
alive 0 && pass "node 0 keeps running" || fail "node 0 died when a second process tried its data directory"
# a data directory the node's user may not use (root's, mode 0700, the node
# run as nobody) is a deployment error: exit 2, like one that cannot be
# made, so Restart=on-failure does not retry it for ever
# (under /tmp: $TMPROOT may be closed to other users)
P_DIR=$(mktemp -d "${TMPDIR:-/tmp}/synod-perm.XXXXXX")
chmod 755 "$P_DIR"
if [ "$(id -u)" -ne 0 ] || ! id nobody >/dev/null 2>&1 || ! command -v runuser >/dev/null; then
  log "SKIP: the data directory permission check needs root, a user nobody and runuser"
elif ! runuser -u nobody -- test -x "$BIN/synod" -a -r "$P_DIR"; then
  log "SKIP: user nobody cannot run $BIN/synod or read $P_DIR"
else
  cp "$C_DIR/cluster.ini" "$P_DIR/" && cp "$C_DIR/keys/node-1.key" "$P_DIR/node.key"
  chown nobody "$P_DIR/node.key" && chmod 600 "$P_DIR/node.key"
  mkdir -m 700 "$P_DIR/data"
  printf '[node]\nid = 1\nsecret_key = node.key\ndata_dir = data\ncluster = cluster.ini\n' \
    > "$P_DIR/node.ini"
  out=$(runuser -u nobody -- timeout 20 "$BIN/synod" --config "$P_DIR/node.ini" 2>&1); rc=$?
  [ $rc -eq 2 ] && [ "$(wc -l <<<"$out")" -eq 1 ] \
    && grep -q "cannot open .*/data/synod.lock: Permission denied; the data directory and its files must belong to the user synod runs as (uid $(id -u nobody))" <<<"$out" \
    && pass "a data directory owned by root, node run as nobody: one line, exit 2: $out" \
    || fail "data directory of another user: rc=$rc out=$out"
fi
rm -rf "$P_DIR"

# ---- 7b. nodes whose manifests disagree on the protocol: each side logs
# what it rejects and why (once per 10 s), instead of dropping in silence
if [ "$PROTO" = raft ]; then
  X=$((N - 1))
  kill_node "$X" TERM
  sed 's/^protocol *=.*/protocol = paxos/' "$C_DIR/cluster.ini" > "$C_DIR/cluster-paxos.ini"
  cp "$C_DIR/node-$X.ini" "$C_DIR/node-$X.ini.orig"
  sed -i 's/^cluster *=.*/cluster = cluster-paxos.ini/' "$C_DIR/node-$X.ini"
  mv "$C_DIR/data/node-$X" "$C_DIR/data/node-$X.raft"   # a fresh directory for the paxos run
  start_node "$X"
  seen=
  for _ in $(seq 1 60); do
    grep -q "rejected [0-9]* frames\? in .*a raft message from node [0-9]*, but this node runs paxos: do the nodes' manifests" \
      "$T_DIR/logs/node-$X.log" && grep -hq "a paxos message from node $X, but this node runs raft" \
      "$T_DIR"/logs/node-[0-9].log && { seen=1; break; }
    sleep 0.5
  done
  [ -n "$seen" ] && pass "a node given a paxos manifest in a raft cluster: both sides log the protocol mismatch" \
    || fail "no log line names the protocol mismatch: $(grep -h 'rejected' "$T_DIR"/logs/node-*.log | tail -2)"
  kill_node "$X" TERM
  mv "$C_DIR/node-$X.ini.orig" "$C_DIR/node-$X.ini"
  rm -rf "$C_DIR/data/node-$X" && mv "$C_DIR/data/node-$X.raft" "$C_DIR/data/node-$X"
  start_node "$X"
  wait_converged 60 && pass "with its own manifest again node $X catches up" || fail "node $X did not catch up"
fi

# ---- 8. ledger verifies on every node; clean shutdown exits 0
for ((i = 0; i < N; i++)); do
  sig=TERM
  [ "$i" -eq 0 ] && sig=HUP   # what a closed terminal sends
  kill_node "$i" $sig; rc=$?
  [ $rc -eq 0 ] && pass "node $i exits 0 on SIG$sig" || fail "node $i exited $rc on SIG$sig"
done
tail -n 3 "$T_DIR/logs/node-0.log" | grep -q "storage closed cleanly" \
  && pass "node 0 stopped by SIGHUP closed its storage cleanly" || fail "node 0's log after SIGHUP: $(tail -n 2 "$T_DIR/logs/node-0.log")"
for ((i = 0; i < N; i++)); do
  out=$(ctl ledger verify "$C_DIR/data/node-$i" 2>&1) && pass "node $i ledger verifies: $out" || fail "node $i ledger: $out"
done
# another cluster's manifest (same cluster id: synod-keys' default) is
# named as the problem, not reported as a tampered ledger
"$BIN/synod-keys" gen --out "$T_DIR/other.key" >/dev/null
other=$("$BIN/synod-keys" pub "$T_DIR/other.key")
awk -v k="$other" '/^\[node "0"\]/ { n0 = 1 } n0 && /^public_key/ { print "public_key = " k; n0 = 0; next } { print }' \
  "$C_DIR/cluster.ini" > "$C_DIR/cluster-other.ini"
out=$("$BIN/synodctl" --cluster "$C_DIR/cluster-other.ini" ledger verify "$C_DIR/data/node-0" 2>&1); rc=$?
[ $rc -eq 2 ] && grep -q "belongs to node 0 of another cluster (its node 0 key is not this manifest's)" <<<"$out" \
  && pass "ledger verify with another cluster's manifest says so (exit 2): $out" \
  || fail "ledger verify, other manifest: rc=$rc $out"
out=$(timeout 20 "$BIN/synod" --config "$C_DIR/node-1-on-0.ini" 2>&1); rc=$?
[ $rc -eq 2 ] && grep -q "belongs to node 0 of cluster .* not to node 1" <<<"$out" \
  && pass "node 1 on node 0's data directory is refused (exit 2): $out" \
  || fail "node 1 on node 0's data directory: rc=$rc out=$out"
finish
