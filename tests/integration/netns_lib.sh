# Network namespaces for integration tests; sourced after lib.sh with NS_N
# set: namespaces $NSP-0 .. $NSP-(NS_N-1), one per node, each joined by a
# veth link to a bridge in $NSP-br, where clients run (ctl, ctl_ns). All
# addresses (10.x) exist only inside the namespaces; nothing is routed
# anywhere else. Needs root; prints SKIP and exits 0 otherwise.
#
# Gives: nsx NS CMD..., impair_on [NETEM ARGS] / impair_off (netem, or link
# flapping where the kernel has no netem: $IMPAIR), start_node I (in its
# namespace), ctl_ns NS ... / ctl ... (synodctl under a watchdog; hangs are
# listed in $T_DIR/ctl-hangs), mk_ns_cluster PROTO N [synod-keys args].
# shellcheck shell=bash
if [ "$(id -u)" -ne 0 ]; then echo "SKIP: network namespaces need root"; exit 0; fi
command -v ip >/dev/null || { echo "SKIP: iproute2 (ip) not installed"; exit 0; }

NSP="syn-$$"                 # namespaces $NSP-br, $NSP-0 .. $NSP-$((NS_N - 1))
NET="10.213.$(( $$ % 250 ))" # a /24 private to these namespaces
NS_MADE=()
FLAPPER=""

ns_cleanup() {
  local ns
  for ns in "${NS_MADE[@]}"; do ip netns del "$ns" 2>/dev/null; done
}
# stop the flapper before lib.sh's cleanup waits for every child
trap '[ -n "$FLAPPER" ] && kill "$FLAPPER" 2>/dev/null; cleanup; ns_cleanup' EXIT

# namespaces a killed run of a test left behind (its shell is gone)
for ns in $(ip netns list 2>/dev/null | awk '$1 ~ /^syn-[0-9]+-/ {print $1}'); do
  owner=${ns#syn-}; owner=${owner%%-*}
  kill -0 "$owner" 2>/dev/null || ip netns del "$ns" 2>/dev/null
done
if ! ip netns add "$NSP-br" 2>"$T_DIR/netns.err"; then
  echo "SKIP: cannot create a network namespace: $(cat "$T_DIR/netns.err")"
  exit 0
fi
NS_MADE+=("$NSP-br")

# ---------------------------------------------------------------- topology
nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
ip -n "$NSP-br" link set lo up
ip -n "$NSP-br" link add br0 type bridge || die "cannot create a bridge in $NSP-br"
ip -n "$NSP-br" addr add "$NET.254/24" dev br0
ip -n "$NSP-br" link set br0 up
for ((i = 0; i < NS_N; i++)); do
  ip netns add "$NSP-$i" || die "ip netns add $NSP-$i failed"
  NS_MADE+=("$NSP-$i")
  ip -n "$NSP-$i" link set lo up
  ip -n "$NSP-$i" link add eth0 type veth peer name veth$i netns "$NSP-br" || die "cannot create veth for node $i"
  ip -n "$NSP-br" link set veth$i master br0
  ip -n "$NSP-br" link set veth$i up
  ip -n "$NSP-$i" addr add "$NET.$((i + 1))/24" dev eth0
  ip -n "$NSP-$i" link set eth0 up
done
log "namespaces: $NSP-br (bridge, client at $NET.254), $NSP-0..$((NS_N - 1)) (nodes at $NET.1..$NS_N)"

# wait until the bridge ports forward (they start in the listening state)
end=$((SECONDS + 20))
until [ $SECONDS -ge $end ]; do
  up=0
  for ((i = 0; i < NS_N; i++)); do
    st=$(ip -n "$NSP-br" -d link show veth$i | grep -o 'state [a-z]*' | tail -1)
    [ "$st" = "state forwarding" ] && up=$((up + 1))
  done
  [ $up -eq $NS_N ] && break
  sleep 0.2
done

# links: netem if the kernel has it, else flapping
IMPAIR=netem
if ! nsx "$NSP-0" tc qdisc add dev eth0 root netem delay 20ms loss 5% 2>"$T_DIR/tc.err"; then
  IMPAIR=flap
  log "NOTE: netem unavailable here ($(head -1 "$T_DIR/tc.err")); impairing links by flapping them instead"
else
  nsx "$NSP-0" tc qdisc del dev eth0 root
fi

# impair_on [NETEM ARGS...]: every link impaired (default: delay 20ms
# loss 5%); impair_off: back to clean links
impair_on() {
  local i args=("$@")
  [ ${#args[@]} -eq 0 ] && args=(delay 20ms loss 5%)
  if [ $IMPAIR = netem ]; then
    for ((i = 0; i < NS_N; i++)); do
      nsx "$NSP-$i" tc qdisc add dev eth0 root netem "${args[@]}" || fail "tc netem on node $i"
    done
  else
    # each link down for 100 ms at random, about once a second per node
    ( while :; do
        i=$((RANDOM % ${C_N:-NS_N}))   # the nodes of the cluster running now
        ip -n "$NSP-$i" link set eth0 down; sleep 0.1; ip -n "$NSP-$i" link set eth0 up
        sleep 0.$((RANDOM % 7 + 2))
      done ) &
    FLAPPER=$!
  fi
}
impair_off() {
  local i
  if [ $IMPAIR = netem ]; then
    for ((i = 0; i < NS_N; i++)); do nsx "$NSP-$i" tc qdisc del dev eth0 root 2>/dev/null; done
  else
    [ -n "$FLAPPER" ] && { kill "$FLAPPER" 2>/dev/null; wait "$FLAPPER" 2>/dev/null; }
    FLAPPER=""
    for ((i = 0; i < NS_N; i++)); do ip -n "$NSP-$i" link set eth0 up; done
  fi
}

# ---------------------------------------------------------------- helpers
# nodes run in their namespaces; clients in the bridge's (or a node's)
start_node() {
  local i=$1
  ip netns exec "$NSP-$i" "$BIN/synod" --config "$C_DIR/node-$i.ini" ${NODE_ARGS[$i]:-} \
    >>"$T_DIR/logs/node-$i.log" 2>&1 &
  T_PIDS[$i]=$!
}

# Every synodctl call runs under a watchdog: a client that does not exit is
# killed, recorded, and fails the test instead of stalling it.
CTL_WATCHDOG_S=40
ctl_ns() {
  local ns=$1 rc; shift
  timeout -s KILL "$CTL_WATCHDOG_S" ip netns exec "$ns" "$BIN/synodctl" --cluster "$C_DIR/cluster.ini" "$@"; rc=$?
  if [ $rc -eq 137 ]; then
    echo "synodctl (in $ns) $*" >> "$T_DIR/ctl-hangs"
    echo "synodctl did not exit within ${CTL_WATCHDOG_S}s, killed: synodctl $*" >&2
  fi
  return $rc
}
ctl() { ctl_ns "$NSP-br" "$@"; }

# mk_ns_cluster PROTO N [synod-keys args...]: manifest with node i's
# endpoints on its namespace address (synod-keys --host takes one host for
# every node)
mk_ns_cluster() {
  local p=$1 n=$2
  shift 2
  mk_cluster "$p" "$n" "$@"
  awk -v net="$NET" '
    /^\[node "[0-9]+"\]/ { match($0, /[0-9]+/); node = substr($0, RSTART, RLENGTH) }
    /^\[/ && !/^\[node "/ { node = "" }
    node != "" && /^(peer|client|metrics) *=/ { sub(/127\.0\.0\.1/, net "." (node + 1)) }
    { print }' "$C_DIR/cluster.ini" > "$C_DIR/cluster.ini.new" && mv "$C_DIR/cluster.ini.new" "$C_DIR/cluster.ini"
  [ "$(grep -c "$NET\.[1-9]:" "$C_DIR/cluster.ini")" -eq $((3 * n)) ] || die "could not rewrite the node addresses in cluster.ini"
}
