#!/usr/bin/env bash
# Network chaos between real processes, with a linearizability check: for
# Raft (3 nodes), Multi-Paxos (3) and PBFT (4), each node in its own network
# namespace behind a veth link (netns_lib.sh), synod-chaos runs concurrent
# clients from the bridge's namespace (put / get / cas / del on five keys,
# every call's interval recorded) while a nemesis, every one to four
# seconds, cuts the leader's link or another node's, impairs every link
# (netem delay with jitter, so messages reorder, and loss), cuts the
# leader's link and then SIGKILLs it, or SIGKILLs any node, and heals
# between faults. The history must be linearizable -- a cut-off leader
# that still answered a read, or acknowledged a write the majority never
# saw, fails it -- and afterwards every node must converge and every
# ledger verify.
#
# CHAOS_SECONDS (default 30 per protocol), CHAOS_SEED as in chaos_suite.sh.
# Needs root (network namespaces); prints SKIP and exits 0 otherwise.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

NS_N=4
# shellcheck source=netns_lib.sh
source "$(dirname "$0")/netns_lib.sh"

SECS=${CHAOS_SECONDS:-30}
SEED=${CHAOS_SEED:-$(( $(date +%s) % 100000 ))}
RANDOM=$SEED
CLIENTS=5

run_proto() {
  local P=$1 i r L crc actions=0
  N=$2
  SC_FAILS0=$T_FAILS
  mk_ns_cluster "$P" "$N" --clients "$CLIENTS"
  compact_often "$P" 64
  start_all
  L=$(wait_leader 30) || die "$P: no leader elected within 30s"
  log "== $P n=$N in namespaces: $CLIENTS clients for ${SECS}s, CHAOS_SEED=$SEED, links impaired by $IMPAIR"

  local optime=2000
  [ "$P" = pbft ] && optime=4000   # quorum read first, then ordered (chaos_suite.sh)
  timeout -s KILL $((SECS + 120)) ip netns exec "$NSP-br" "$BIN/synod-chaos" \
      --cluster "$C_DIR/cluster.ini" --keys "$C_DIR/keys" --clients "$CLIENTS" \
      --duration "$SECS" --keyspace 5 --timeout "$optime" --seed "$SEED" --min-ok $((SECS * 3)) \
      >"$T_DIR/chaos-$P.out" 2>&1 &
  local chaos=$! cut=() dead=() impaired= walled= t_end=$((SECONDS + SECS)) who
  # wall I: node I and its peers cannot reach each other (blackhole routes
  # both ways), but clients still reach every node: a leader cut off from
  # its followers and still asked by clients
  wall() {
    local j
    for ((j = 0; j < N; j++)); do
      [ "$j" = "$1" ] && continue
      ip -n "$NSP-$1" route add blackhole "$NET.$((j + 1))/32"
      ip -n "$NSP-$j" route add blackhole "$NET.$(($1 + 1))/32"
    done
    walled=$1
  }
  unwall() {
    local j
    for ((j = 0; j < N; j++)); do
      [ "$j" = "$1" ] && continue
      ip -n "$NSP-$1" route del blackhole "$NET.$((j + 1))/32" 2>/dev/null
      ip -n "$NSP-$j" route del blackhole "$NET.$(($1 + 1))/32" 2>/dev/null
    done
  }
  heal() {
    for i in "${cut[@]}"; do ip -n "$NSP-$i" link set eth0 up; done
    [ -n "$walled" ] && unwall "$walled"
    [ -n "$impaired" ] && impair_off
    for i in "${dead[@]}"; do start_node "$i"; done
    cut=() dead=() impaired= walled=
  }
  sleep 2
  while kill -0 "$chaos" 2>/dev/null && [ $SECONDS -lt $t_end ]; do
    reap_dead "$P: "
    r=$((RANDOM % 100))
    if [ ${#cut[@]} -gt 0 ] || [ ${#dead[@]} -gt 0 ] || [ -n "$impaired$walled" ]; then
      heal; log "$P nemesis: healed"
    else
      L=$(leader) who="the leader"
      [ -z "$L" ] && L=$((RANDOM % N)) who="node (no leader known)"
      [ -z "${T_PIDS[$L]:-}" ] && start_node "$L"   # reaped above: back first
      if [ $r -lt 20 ]; then
        ip -n "$NSP-$L" link set eth0 down; cut=("$L"); log "$P nemesis: cut $who $L off"
      elif [ $r -lt 40 ]; then
        wall "$L"; log "$P nemesis: walled $who $L off from its peers (clients still reach it)"
      elif [ $r -lt 55 ]; then
        i=$((RANDOM % N)); ip -n "$NSP-$i" link set eth0 down; cut=("$i"); log "$P nemesis: cut node $i off"
      elif [ $r -lt 70 ]; then
        if [ $IMPAIR = netem ]; then impair_on delay 10ms 10ms loss 5%; else impair_on; fi
        impaired=1; log "$P nemesis: every link impaired"
      elif [ $r -lt 85 ]; then
        wall "$L"
        sleep "0.$((2 + RANDOM % 8))"
        crash "$L" "$P: "; dead=("$L")
        log "$P nemesis: walled $who $L off from its peers, then SIGKILLed it"
      else
        i=$((RANDOM % N)); crash "$i" "$P: "; dead=("$i"); log "$P nemesis: SIGKILLed node $i"
      fi
      actions=$((actions + 1))
    fi
    sleep "$((1 + RANDOM % 3)).$((RANDOM % 10))"
  done
  reap_dead "$P: "
  heal
  for ((i = 0; i < N; i++)); do [ -z "${T_PIDS[$i]:-}" ] && start_node "$i"; done
  wait "$chaos"; crc=$?
  sed 's/^/  synod-chaos: /' "$T_DIR/chaos-$P.out"
  local want=$((SECS / 10 > 2 ? SECS / 10 : 2))
  [ "$actions" -ge "$want" ] && pass "$P: the nemesis struck $actions times during the workload" \
    || fail "$P: the nemesis struck only $actions times (at least $want wanted)"
  chaos_verdict "$P: " "$crc"
  wait_converged 90 && pass "$P: every node converged after the chaos (applied index, state digest, ledger head)" \
    || fail "$P: the nodes did not converge after the chaos"
  stop_verify "$P: "
  [ "$T_FAILS" -eq "$SC_FAILS0" ] || dump_logs
  mv "$T_DIR/logs" "$T_DIR/logs-$P"
  mv "$C_DIR" "$T_DIR/cluster-$P"
}

run_proto raft 3
T_BASE=$((T_BASE + 10))
run_proto paxos 3
T_BASE=$((T_BASE + 10))
run_proto pbft 4

if [ -s "$T_DIR/ctl-hangs" ]; then
  fail "synodctl hung (killed after ${CTL_WATCHDOG_S}s) $(wc -l < "$T_DIR/ctl-hangs") time(s): $(tr '\n' ';' < "$T_DIR/ctl-hangs")"
fi
finish
