#!/usr/bin/env bash
# Raft, 3 real nodes on loopback with every peer and client link over TLS
# (NNG tls+tcp, certificates made here with openssl): configuration errors,
# put/get through synodctl over TLS, a plain client shut out, mesh links
# that demand a node certificate, clean stop and ledger verify.
if ! command -v openssl >/dev/null 2>&1; then
  echo "SKIP: openssl not installed"
  exit 0
fi
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
N=3

mk_cluster raft "$N"
TLS=$C_DIR/tls
mkdir -p "$TLS"
chmod 700 "$TLS"

# ---- certificates: one CA, one certificate per node. The name checked is
# the host of the address (127.0.0.1); mbed TLS 2.x matches DNS names only,
# so the IP goes in as a DNS entry as well as an IP entry.
(
  cd "$TLS" || exit 1
  openssl ecparam -name prime256v1 -genkey -noout -out ca.key 2>/dev/null &&
  openssl req -x509 -new -key ca.key -sha256 -days 3650 -subj "/CN=synod test CA" \
      -out ca.pem 2>/dev/null || exit 1
  printf '%s\n' "subjectAltName=DNS:127.0.0.1,IP:127.0.0.1" "basicConstraints=CA:FALSE" \
      "keyUsage=digitalSignature" "extendedKeyUsage=serverAuth,clientAuth" > node.ext
  for ((i = 0; i < N; i++)); do
    openssl ecparam -name prime256v1 -genkey -noout -out "node-$i.key" 2>/dev/null &&
    openssl req -new -key "node-$i.key" -subj "/CN=node-$i" -out "node-$i.csr" 2>/dev/null &&
    openssl x509 -req -in "node-$i.csr" -CA ca.pem -CAkey ca.key -CAcreateserial \
        -days 3650 -sha256 -extfile node.ext -out "node-$i.crt" 2>/dev/null || exit 1
    cat "node-$i.crt" "node-$i.key" > "node-$i.pem"
    chmod 600 "node-$i.pem"
  done
) || die "openssl could not make the test certificates"
pass "openssl made a CA and $N node certificates"

# ---- switch the manifest and node files to TLS
cp "$C_DIR/cluster.ini" "$C_DIR/plain.ini"
sed -i -E 's#^(peer|client) = tcp://#\1 = tls+tcp://#' "$C_DIR/cluster.ini"
set_cluster_key tls_ca tls/ca.pem
for ((i = 0; i < N; i++)); do
  echo "tls_cert = tls/node-$i.pem" >> "$C_DIR/node-$i.ini"
done

# ---- configuration errors: one line, exit 2
grep -v '^tls_cert' "$C_DIR/node-0.ini" > "$C_DIR/node-notls.ini"
out=$("$BIN/synod" --config "$C_DIR/node-notls.ini" 2>&1); rc=$?
[ $rc -eq 2 ] && echo "$out" | grep -q "has no tls_cert" \
  && pass "a node file without tls_cert is refused (exit 2): $out" || fail "no tls_cert: rc=$rc out=$out"

sed '0,/client = tls+tcp:/s//client = tcp:/' "$C_DIR/cluster.ini" > "$C_DIR/mixed.ini"
out=$("$BIN/synodctl" --cluster "$C_DIR/mixed.ini" get x 2>&1); rc=$?
[ $rc -eq 2 ] && echo "$out" | grep -q 'node "0"\] client is tcp://.*all or nothing' \
  && pass "a manifest mixing tcp:// and tls+tcp:// is refused, naming the node (exit 2): $out" \
  || fail "mixed manifest: rc=$rc out=$out"

sed 's#^tls_ca = .*#tls_ca = tls/missing.pem#' "$C_DIR/cluster.ini" > "$C_DIR/noca.ini"
out=$("$BIN/synodctl" --cluster "$C_DIR/noca.ini" get x 2>&1); rc=$?
[ $rc -eq 2 ] && echo "$out" | grep -q "tls_ca file .*missing.pem does not exist" \
  && pass "a missing CA file is named (exit 2): $out" || fail "missing CA: rc=$rc out=$out"

chmod 644 "$TLS/node-1.pem"
out=$("$BIN/synod" --config "$C_DIR/node-1.ini" 2>&1); rc=$?
chmod 600 "$TLS/node-1.pem"
[ $rc -eq 2 ] && echo "$out" | grep -q "readable by others (mode 0644); run chmod 600" \
  && pass "a certificate+key file others can read is refused (exit 2)" || fail "0644 key: rc=$rc out=$out"

# PEM markers but no real certificate: the TLS engine refuses it at start
printf -- '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n' \
  > "$TLS/bogus.pem"
chmod 600 "$TLS/bogus.pem"
sed 's#^tls_cert = .*#tls_cert = tls/bogus.pem#' "$C_DIR/node-0.ini" > "$C_DIR/node-bogus.ini"
out=$(timeout 20 "$BIN/synod" --config "$C_DIR/node-bogus.ini" 2>&1); rc=$?
[ $rc -eq 2 ] && echo "$out" | grep -q "tls_cert .*bogus.pem: cannot load the certificate and private key" \
  && pass "a certificate the TLS engine cannot parse is refused at start (exit 2): $out" \
  || fail "bogus certificate: rc=$rc out=$out"

# ---- the cluster over TLS
start_all
L=$(wait_leader 30) || die "no leader elected over TLS within 30s"
pass "3 raft nodes over TLS elected node $L (status answered over TLS)"
ctl put greeting hello >/dev/null && pass "put over TLS" || fail "put over TLS failed"
v=$(ctl get greeting) && [ "$v" = hello ] && pass "get over TLS returns the value" || fail "get over TLS: '$v'"
for k in $(seq 1 20); do ctl put "k$k" "v$k" >/dev/null || fail "put k$k"; done
ctl cas greeting hello world >/dev/null && [ "$(ctl get greeting)" = world ] \
  && pass "cas over TLS" || fail "cas over TLS"
wait_converged 30 && pass "all nodes converged (mesh links up over TLS)" || fail "nodes did not converge over TLS"
peers=$(status_json | grep -o '"peers_connected": [0-9]*' | sed 's/.*: //' | sort -u | tr '\n' ' ')
[ "$peers" = "2 " ] && pass "every node has its 2 peer links up over TLS" || fail "peers_connected: $peers"

# ---- a plain client cannot talk to the TLS endpoints
sed -i '/^tls_ca/d' "$C_DIR/plain.ini"
out=$("$BIN/synodctl" --cluster "$C_DIR/plain.ini" --timeout 2000 get greeting 2>&1); rc=$?
[ $rc -eq 1 ] && pass "a plain tcp:// client gets no answer from the TLS ports (exit 1)" \
  || fail "plain client: rc=$rc out=$out"

# ---- what the ports present, seen by openssl (s_client output has NULs)
client_port=$((T_BASE + 100))
peer_port=$T_BASE
probe() { openssl s_client -connect "127.0.0.1:$1" -CAfile "$TLS/ca.pem" "${@:2}" </dev/null 2>&1 | tr -d '\0'; }
s=$(probe "$client_port" -verify_return_error)
echo "$s" | grep -q "Verify return code: 0 (ok)" && echo "$s" | grep -q "CN *= *node-0" \
  && echo "$s" | grep -q "No client certificate CA names sent" \
  && pass "client port 0 presents node-0's certificate (verified against the CA) and asks none of the client" \
  || fail "s_client on the client port: $(echo "$s" | tail -5 | tr '\n' ' ')"
s=$(probe "$peer_port")
echo "$s" | grep -q "Acceptable client certificate CA names" \
  && echo "$s" | grep -qiE "unexpected eof|alert|handshake failure" \
  && pass "peer port demands a node certificate and drops a dialer without one" \
  || fail "peer port without a certificate: $(echo "$s" | grep -iE 'error|alert|Verif' | tr '\n' ' ')"
s=$(probe "$peer_port" -cert "$TLS/node-1.crt" -key "$TLS/node-1.key")
echo "$s" | grep -q "Verify return code: 0 (ok)" && ! echo "$s" | grep -qiE "unexpected eof|alert" \
  && pass "peer port completes the handshake with a CA-signed node certificate" \
  || fail "peer port with a node certificate: $(echo "$s" | grep -iE 'error|alert|Verif' | tr '\n' ' ')"

# ---- the cluster still serves; clean stop; ledgers verify
ctl put after-probes fine >/dev/null && pass "cluster serves after the probes" || fail "put after probes"

# ---- a node whose certificate another CA signed: its peers refuse its
# links, and NNG says nothing about a failed handshake, so the node says
# which peers it never reached and names tls_ca
X=$(( (L + 1) % N ))
kill_node "$X" KILL
(
  cd "$TLS" || exit 1
  openssl ecparam -name prime256v1 -genkey -noout -out other-ca.key 2>/dev/null &&
  openssl req -x509 -new -key other-ca.key -sha256 -days 3650 -subj "/CN=another CA" \
      -out other-ca.pem 2>/dev/null &&
  openssl x509 -req -in "node-$X.csr" -CA other-ca.pem -CAkey other-ca.key -CAcreateserial \
      -days 3650 -sha256 -extfile node.ext -out "node-$X-other.crt" 2>/dev/null || exit 1
  cat "node-$X-other.crt" "node-$X.key" > "node-$X-other.pem"
  chmod 600 "node-$X-other.pem"
) || die "openssl could not make the other CA's certificate"
cp "$C_DIR/node-$X.ini" "$C_DIR/node-$X.ini.good"
sed -i "s#^tls_cert = .*#tls_cert = tls/node-$X-other.pem#" "$C_DIR/node-$X.ini"
start_node "$X"
wait_log "$X" "and that its certificate and ours are signed by the manifest's tls_ca" 30 && pass "node $X, with a certificate of another CA, names its unreached peers and tls_ca: $(grep -m1 'has not connected' "$T_DIR/logs/node-$X.log" | cut -c1-200)" \
  || fail "node $X logged nothing about peers it never reached"
kill_node "$X" KILL
mv "$C_DIR/node-$X.ini.good" "$C_DIR/node-$X.ini"
start_node "$X"
wait_converged 60 && pass "with its own certificate again node $X catches up" || fail "node $X did not catch up"
for ((i = 0; i < N; i++)); do
  kill_node "$i" TERM; rc=$?
  [ $rc -eq 0 ] && pass "node $i exits 0 on SIGTERM" || fail "node $i exited $rc on SIGTERM"
done
for ((i = 0; i < N; i++)); do
  out=$(ctl ledger verify "$C_DIR/data/node-$i" 2>&1) && pass "node $i ledger verifies: $out" \
    || fail "node $i ledger: $out"
done
finish
