#!/usr/bin/env bash
# PBFT, 4 real nodes on loopback, one of them a Byzantine replica
# (synod --byzantine, test builds only). With f = 1 faulty replica of
# n = 4 the service must stay safe and live: clients get correct results,
# the three correct replicas agree on the state and the ledger, and the
# misbehaviour is visible to the operator as evidence in `synodctl status`.
#
# Scenarios:
#  a. equivocating primary (node 0 leads view 0 and sends different batches
#     for one sequence number): requests still commit (0, 1, 3 are a
#     quorum), the correct replicas agree.
#  b. wrong-digest backup (node 3 prepares and commits wrong digests):
#     no evidence (each vote alone is consistent), but the correct replicas
#     name it in status (dissent_from), in their logs and a metric.
#  c. silent primary (node 0 sends nothing): the correct replicas change
#     view and carry on without it.
#  d. flooding backup (node 3 sends validly signed, conflicting votes):
#     the conflicts are recorded as evidence, visible in synodctl status.
#  e. bad-sig backup (node 3's statements do not verify): named in status
#     (bad_signature_from), logs and a metric.
# In every scenario no correct replica names a correct one as faulty.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

# Every synodctl call runs under a watchdog: a client that does not exit
# (seen: hanging in nng_close after its operation finished) is killed,
# recorded, and fails the test instead of stalling it until ctest's timeout.
CTL_WATCHDOG_S=35   # longer than any --timeout used here (20 s) plus margin
ctl() {
  local rc
  timeout -s KILL "$CTL_WATCHDOG_S" "$BIN/synodctl" --cluster "$C_DIR/cluster.ini" "$@"; rc=$?
  if [ $rc -eq 137 ]; then
    echo "synodctl $*" >> "$T_DIR/ctl-hangs"
    echo "synodctl did not exit within ${CTL_WATCHDOG_S}s, killed: synodctl $*" >&2
  fi
  return $rc
}

N=4
BASE0=$T_BASE
SCEN=0

# status line of one node from a status snapshot held in $1
node_line() { echo "$1" | grep "\"node\": $2,"; }
# value of field NAME in one status line
jfield() { echo "$1" | sed -E "s/.*\"$2\": \"?([^,\"}]*)\"?.*/\1/"; }

# wait_correct_converged TIMEOUT_S NODES...: the listed nodes are reachable
# and report the same applied index, state digest and ledger head, with
# applied index above 0. Leaves the last snapshot in $CONV_STATUS.
wait_correct_converged() {
  local end=$((SECONDS + $1)); shift
  local s i line a d h ok
  while [ $SECONDS -lt $end ]; do
    s=$(status_json); ok=1
    a=""; d=""; h=""
    for i in "$@"; do
      line=$(node_line "$s" "$i")
      echo "$line" | grep -q '"reachable": true' || { ok=0; break; }
      a="$a $(jfield "$line" applied_index)"
      d="$d $(jfield "$line" state_digest)"
      h="$h $(jfield "$line" ledger_head)"
    done
    if [ $ok -eq 1 ] && [ "$(echo $a | tr ' ' '\n' | sort -u | wc -l)" -eq 1 ] \
       && [ "$(echo $d | tr ' ' '\n' | sort -u | wc -l)" -eq 1 ] \
       && [ "$(echo $h | tr ' ' '\n' | sort -u | wc -l)" -eq 1 ] \
       && [ "$(echo $a | cut -d' ' -f1)" -gt 0 ]; then
      CONV_STATUS=$s
      return 0
    fi
    sleep 0.5
  done
  CONV_STATUS=$s
  return 1
}

# start_scenario NAME BYZ_NODE BEHAVIOUR: a fresh cluster of 4 with one
# Byzantine replica
start_scenario() {
  SC_NAME=$1; BYZ=$2; BEHAVIOUR=$3
  SC_FAILS0=$T_FAILS
  T_BASE=$((BASE0 + SCEN * 10)); SCEN=$((SCEN + 1))
  NODE_ARGS=()
  NODE_ARGS[$BYZ]="--byzantine $BEHAVIOUR"
  mk_cluster pbft $N
  if "$BIN/synod" --config "$C_DIR/node-0.ini" --byzantine no-such-behaviour 2>&1 | grep -q "only in test builds"; then
    echo "SKIP: $BIN/synod is not a test build (configure with -DSYNOD_TESTING=ON)"
    exit 0
  fi
  CORRECT=()
  for ((i = 0; i < N; i++)); do [ "$i" -eq "$BYZ" ] || CORRECT+=("$i"); done
  log "== scenario $SC_NAME: node $BYZ runs --byzantine $BEHAVIOUR; correct: ${CORRECT[*]}"
  start_all
  local end=$((SECONDS + 30))
  while [ $SECONDS -lt $end ]; do
    [ "$(status_json | grep -c '"reachable": true')" -eq "$N" ] && break
    sleep 0.3
  done
  [ "$(status_json | grep -c '"reachable": true')" -eq "$N" ] || die "$SC_NAME: not all $N nodes answered status within 30s"
  grep -q "Byzantine replica ($BEHAVIOUR)" "$T_DIR/logs/node-$BYZ.log" \
    && pass "$SC_NAME: node $BYZ announces it runs as a Byzantine replica ($BEHAVIOUR)" \
    || fail "$SC_NAME: node $BYZ does not log that it is Byzantine"
}

# client_round_trips TAG: put/get/cas/del with the values checked
client_round_trips() {
  local tag=$1 to=20000 v='' cur rc bad=0
  ctl --timeout $to put "$tag-k" "v1-$tag" >/dev/null && pass "$SC_NAME: put acknowledged" || fail "$SC_NAME: put failed"
  v=$(ctl --timeout $to get "$tag-k") && [ "$v" = "v1-$tag" ] \
    && pass "$SC_NAME: get returns the value written" || fail "$SC_NAME: get returned '$v'"
  ctl --timeout $to cas "$tag-k" "v1-$tag" "v2-$tag" >/dev/null \
    && pass "$SC_NAME: cas with the right old value succeeds" || fail "$SC_NAME: cas failed"
  cur=$(ctl --timeout $to cas "$tag-k" "v1-$tag" "v3-$tag" 2>/dev/null); rc=$?
  [ $rc -eq 1 ] && [ "$cur" = "v2-$tag" ] \
    && pass "$SC_NAME: stale cas fails and shows the current value" || fail "$SC_NAME: stale cas rc=$rc cur='$cur'"
  v=$(ctl --timeout $to get "$tag-k") && [ "$v" = "v2-$tag" ] \
    && pass "$SC_NAME: get sees the cas result" || fail "$SC_NAME: get after cas returned '$v'"
  for j in $(seq 1 12); do
    ctl --timeout $to put "$tag-$j" "val-$j" >/dev/null || { bad=$((bad + 1)); break; }
  done
  for j in $(seq 1 12); do
    [ $bad -eq 0 ] || break
    v=$(ctl --timeout $to get "$tag-$j") && [ "$v" = "val-$j" ] || bad=$((bad + 1))
  done
  [ $bad -eq 0 ] && pass "$SC_NAME: 12 more puts each read back with the value written" \
    || fail "$SC_NAME: a further put or get failed or returned a wrong value (value '$v')"
  ctl --timeout $to del "$tag-1" >/dev/null && ! ctl --timeout $to get "$tag-1" >/dev/null 2>&1 \
    && pass "$SC_NAME: deleted key is gone" || fail "$SC_NAME: del"
  # racing cas from 4 client identities: exactly one wins
  ctl --timeout $to put "$tag-race" 0 >/dev/null
  local pids=() k wins winner
  rm -f "$T_DIR"/race-*
  for k in 0 1 2 3; do
    ( ctl --timeout $to --key "$C_DIR/keys/client-$k.key" cas "$tag-race" 0 "won-by-$k" >/dev/null 2>&1
      echo $? > "$T_DIR/race-$k" ) &
    pids+=($!)
  done
  wait "${pids[@]}"
  wins=$(cat "$T_DIR"/race-* | grep -c '^0$')
  winner=$(ctl --timeout $to get "$tag-race")
  [ "$wins" -eq 1 ] && echo "$winner" | grep -q '^won-by-[0-3]$' && [ "$(cat "$T_DIR/race-${winner#won-by-}")" = 0 ] \
    && pass "$SC_NAME: exactly one of 4 racing cas wins and its value is stored ($winner)" \
    || fail "$SC_NAME: racing cas: $wins winners, stored '$winner'"
  local s
  s=$(ctl --timeout $to scan "$tag-" "$tag-~" | wc -l)
  [ "$s" -eq 13 ] && pass "$SC_NAME: scan returns the 13 live keys" || fail "$SC_NAME: scan returned $s keys, want 13"
}

# check_converged: the correct replicas agree (the Byzantine one may not)
check_converged() {
  if wait_correct_converged 60 "${CORRECT[@]}"; then
    local a
    a=$(jfield "$(node_line "$CONV_STATUS" "${CORRECT[0]}")" applied_index)
    pass "$SC_NAME: correct replicas ${CORRECT[*]} agree: applied index $a, same state digest and ledger head"
  else
    fail "$SC_NAME: correct replicas did not converge within 60s; last status:"
    echo "$CONV_STATUS"
  fi
}

# max evidence count over the correct replicas
correct_evidence() {
  local s i e max=0
  s=$(status_json)
  for i in "${CORRECT[@]}"; do
    e=$(jfield "$(node_line "$s" "$i")" evidence)
    [[ "$e" =~ ^[0-9]+$ ]] && [ "$e" -gt "$max" ] && max=$e
  done
  echo "$max"
}

# wait_evidence TIMEOUT_S: some correct replica reports evidence > 0
wait_evidence() {
  local end=$((SECONDS + $1)) e
  while [ $SECONDS -lt $end ]; do
    e=$(correct_evidence)
    [ "$e" -gt 0 ] && { echo "$e"; return 0; }
    sleep 0.5
  done
  echo 0
  return 1
}

# named_by FIELD: how many correct replicas name node $BYZ in status
# field FIELD (evidence_from, bad_signature_from, dissent_from)
named_by() {
  local s i n=0
  s=$(status_json)
  for i in "${CORRECT[@]}"; do
    [ "$(jfield "$(node_line "$s" "$i")" "$1")" = "$BYZ" ] && n=$((n + 1))
  done
  echo "$n"
}

# assert_named FIELD WHAT: within 20 s some correct replica names node
# $BYZ in synodctl status field FIELD
assert_named() {
  local end=$((SECONDS + 20)) n=0
  while [ $SECONDS -lt $end ]; do
    n=$(named_by "$1")
    [ "$n" -gt 0 ] && break
    sleep 0.5
  done
  [ "$n" -gt 0 ] && pass "$SC_NAME: $n correct replica(s) name node $BYZ in synodctl status ($1: $2)" \
    || fail "$SC_NAME: no correct replica names node $BYZ in synodctl status field $1"
}

# stop_scenario: SIGTERM everyone, verify the correct replicas' ledgers
stop_scenario() {
  local i rc out
  no_false_accusation "$SC_NAME: " "$BYZ" "${CORRECT[@]}"
  for ((i = 0; i < N; i++)); do
    kill_node "$i" TERM; rc=$?
    [ $rc -eq 0 ] && pass "$SC_NAME: node $i exits 0 on SIGTERM" || fail "$SC_NAME: node $i exited $rc on SIGTERM"
  done
  for i in "${CORRECT[@]}"; do
    out=$(ctl ledger verify "$C_DIR/data/node-$i" 2>&1) \
      && pass "$SC_NAME: node $i ledger verifies: $out" || fail "$SC_NAME: node $i ledger: $out"
  done
  [ "$T_FAILS" -eq "$SC_FAILS0" ] || dump_logs
  mv "$T_DIR/logs" "$T_DIR/logs-$SC_NAME"
  mv "$C_DIR" "$T_DIR/cluster-$SC_NAME"
}

# assert_view_change: every correct replica left view 0 and they agree on
# one primary other than the Byzantine node
assert_view_change() {
  local s i line views="" leaders="" vmin lu
  s=$(status_json)
  for i in "${CORRECT[@]}"; do
    line=$(node_line "$s" "$i")
    views="$views $(jfield "$line" term)"
    leaders="$leaders $(jfield "$line" leader)"
  done
  vmin=$(echo $views | tr ' ' '\n' | sort -n | head -1)
  lu=$(echo $leaders | tr ' ' '\n' | sort -u)
  if [[ "$vmin" =~ ^[0-9]+$ ]] && [ "$vmin" -ge 1 ] && [ "$(echo "$lu" | wc -l)" -eq 1 ] && [ "$lu" != "$BYZ" ]; then
    pass "$SC_NAME: correct replicas changed view (views:$views) and follow primary $lu"
    grep -q "role primary view [1-9][0-9]* leader $lu" "$T_DIR/logs/node-$lu.log" \
      && pass "$SC_NAME: node $lu logs that it became primary" || fail "$SC_NAME: node $lu never logged becoming primary"
  else
    fail "$SC_NAME: no agreed view change away from node $BYZ (views:$views leaders:$leaders)"
  fi
}

# max_metric SERIES: the largest value of the counter SERIES (a name, or a
# name with its labels as exported) on the correct replicas (0 when none
# exports it)
max_metric() {
  local i m max=0
  for i in "${CORRECT[@]}"; do
    m=$(curl -s "http://127.0.0.1:$((T_BASE + 200 + i))/metrics" | sed -n "s/^$1 \\([0-9]*\\)\$/\\1/p")
    [ "${m:-0}" -gt "$max" ] && max=$m
  done
  echo "$max"
}

# assert_metric NAME: some correct replica exports counter NAME above 0
# (skipped without curl, as the metrics checks of cluster_suite.sh are)
assert_metric() {
  local v
  command -v curl >/dev/null || return 0
  v=$(max_metric "$1")
  [ "$v" -gt 0 ] && pass "$SC_NAME: $1 is $v on a correct replica" \
    || fail "$SC_NAME: $1 is 0 on every correct replica"
}

# assert_evidence: some correct replica reports misbehaviour evidence in
# synodctl status, logs it, and exports it as a metric
assert_evidence() {
  local ev ev_nodes i
  if ev=$(wait_evidence 20); then
    pass "$SC_NAME: a correct replica reports misbehaviour evidence in synodctl status (max $ev)"
  else
    fail "$SC_NAME: no correct replica reports evidence"
  fi
  ev_nodes=$(grep -l "misbehaviour evidence recorded against node $BYZ " $(for i in "${CORRECT[@]}"; do echo "$T_DIR/logs/node-$i.log"; done) 2>/dev/null | wc -l)
  [ "$ev_nodes" -ge 1 ] && pass "$SC_NAME: $ev_nodes correct replica(s) log the evidence, naming node $BYZ" \
    || fail "$SC_NAME: no evidence against node $BYZ in the correct replicas' logs: $(grep -h 'evidence recorded' "$T_DIR"/logs/node-*.log | head -2)"
  assert_metric synod_evidence_total
}

# ---------------------------------------------------------------- a.
# Node 0, primary of view 0, sends odd backups the real batch and even
# ones an empty batch under the same sequence number. The primary and the
# odd backups (0, 1, 3) are a quorum, so requests still commit; backup 2
# holds two validly signed, conflicting statements from the primary and
# catches up on the real batch. It records evidence only if it happens to
# see both pre-prepares (a retransmission under load), so evidence is
# asserted in scenario d instead.
start_scenario equivocate 0 equivocate
client_round_trips eq
check_converged
log "equivocate: evidence on correct replicas: max $(correct_evidence) (recorded only when a replica happens to see both pre-prepares, e.g. in a retransmission)"
s=$(status_json)
log "equivocate: views of the correct replicas:$(for i in "${CORRECT[@]}"; do printf ' %s' "$(jfield "$(node_line "$s" "$i")" term)"; done) (the equivocation alone need not force a view change: 0, 1, 3 are a quorum)"
stop_scenario

# ---------------------------------------------------------------- b.
# Node 3 prepares and commits wrong digests: 0, 1, 2 are a quorum without
# it; nothing it says may be counted towards a certificate.
start_scenario wrong-digest 3 wrong-digest
client_round_trips wd
check_converged
log "wrong-digest: evidence on correct replicas: max $(correct_evidence)"
# its votes leave no evidence (each alone is consistent), but every one
# disagrees with the pre-prepare the others accepted: they name it
assert_named dissent_from "votes against the pre-prepare it accepted"
# node 0, the primary, knows the one pre-prepare it signed: it names node 3
# alone; a backup names node 3 or the primary
wait_log 0 "the last from node 3 against this node's own pre-prepare: node 3 is faulty" 20 \
  && pass "wrong-digest: the primary, node 0, logs that node 3 is faulty (votes against its pre-prepares)" \
  || fail "wrong-digest: the primary logged nothing about node 3's votes"
wait_log 1 "the last from node 3 in a view whose primary is node 0: one of the two" 20 \
  && pass "wrong-digest: backup 1 logs node 3's votes against the primary's pre-prepares" \
  || fail "wrong-digest: backup 1 logged nothing about node 3's votes"
assert_metric synod_engine_dissenting_votes_total
assert_metric 'synod_accused_total{node="3",kind="dissent"}'
stop_scenario

# ---------------------------------------------------------------- c.
# Node 0, primary of view 0, says nothing at all: the backups' request
# timers expire, they change view to a correct primary and serve clients.
start_scenario silent-primary 0 silent
client_round_trips sp
assert_view_change
check_converged
stop_scenario

# ---------------------------------------------------------------- d.
# Node 3 floods well-formed, validly signed votes for random digests:
# two of its votes for one slot conflict, which is evidence.
start_scenario flood 3 flood
client_round_trips fl
check_converged
assert_evidence
assert_named evidence_from "two conflicting statements it signed"
assert_metric 'synod_accused_total{node="3",kind="evidence"}'
stop_scenario

# ---------------------------------------------------------------- e.
# Node 3 signs its statements badly (its envelopes verify): nothing it
# says counts, it leaves no evidence, and the correct replicas name it
# in their logs and count its messages.
start_scenario bad-sig 3 bad-sig
client_round_trips bs
check_converged
wait_log "${CORRECT[0]}" "the last from node 3: that node is faulty" 20 \
  && pass "bad-sig: correct replica ${CORRECT[0]} names node 3 for statements that do not verify" \
  || fail "bad-sig: correct replica ${CORRECT[0]} logged nothing about node 3's bad statements"
assert_metric synod_engine_bad_signatures_total
assert_metric 'synod_accused_total{node="3",kind="bad-sig"}'
assert_named bad_signature_from "statements that do not verify"
stop_scenario

if [ -s "$T_DIR/ctl-hangs" ]; then
  fail "synodctl hung (killed after ${CTL_WATCHDOG_S}s) $(wc -l < "$T_DIR/ctl-hangs") time(s): $(tr '\n' ';' < "$T_DIR/ctl-hangs")"
else
  pass "every synodctl call exited by itself"
fi
finish
