#!/usr/bin/env bash
# X25519MLKEM768 interop on 127.0.0.1 between our TLS stack (pqtls_peer: OpenSSL 3.0 + our
# provider) and Node.js: Node 24 (OpenSSL 3.5, built-in group) and Debian's Node 20 (OpenSSL 3.0).
#   run_interop.sh <pqtls_peer> <case>
# Cases: node24-client, node24-server, node20-client, node20-client-pqonly, node20-server,
#        node20-server-pqonly. Exit 77 (ctest SKIP_RETURN_CODE) with a reason if a Node is missing.
set -uo pipefail

peer="$1"
case_name="$2"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
work="$(mktemp -d)"
server_pid=""
cleanup() {
  [[ -n "$server_pid" ]] && kill "$server_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*"; echo "--- server output:"; cat "$work/server.out" 2>/dev/null; exit 1; }

case "$case_name" in
  node24-*)
    node="$("$repo/scripts/get-node24.sh" 2>"$work/get-node.err")" ||
      skip "Node.js 24 unavailable (scripts/get-node24.sh: $(tail -1 "$work/get-node.err"))" ;;
  node20-*)
    node="$(command -v node)" || skip "Debian nodejs not installed"
    major="$("$node" -p 'process.versions.node.split(".")[0]')"
    ossl="$("$node" -p 'process.versions.openssl')"
    [[ "$ossl" == 3.0.* ]] || skip "system node $major has OpenSSL $ossl, not 3.0 (need a peer without the hybrid group)" ;;
  *) echo "unknown case $case_name"; exit 64 ;;
esac
echo "node: $node ($("$node" -p 'process.version + " OpenSSL " + process.versions.openssl'))"

# Starts a server in the background and waits for its "PORT n" line.
start_server() {
  "$@" >"$work/server.out" 2>&1 &
  server_pid=$!
  for _ in $(seq 100); do
    port="$(sed -n 's/^PORT \([0-9]*\)$/\1/p' "$work/server.out")"
    [[ -n "$port" ]] && return 0
    kill -0 "$server_pid" 2>/dev/null || fail "server exited early"
    sleep 0.1
  done
  fail "server did not print its port"
}

wait_server() { wait "$server_pid"; server_rc=$?; server_pid=""; }

node_cert() {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost -days 1 \
    -keyout "$work/key.pem" -out "$work/cert.pem" >/dev/null 2>&1 || fail "openssl req failed"
}

case "$case_name" in
  node24-client)  # our server (default groups), Node 24 client offering only X25519MLKEM768
    start_server "$peer" server
    out="$("$node" "$here/node_peer.js" client "$port" X25519MLKEM768)"; rc=$?
    wait_server
    echo "client: $out"; cat "$work/server.out"
    [[ $rc -eq 0 ]] || fail "node client failed"
    grep -qx "GROUP X25519MLKEM768" "$work/server.out" || fail "server did not negotiate X25519MLKEM768"
    grep -q "^REPLY pong ping X25519MLKEM768" <<<"$out" || fail "no application data round trip"
    ;;
  node24-server)  # Node 24 server with only X25519MLKEM768, our client (default groups)
    node_cert
    start_server "$node" "$here/node_peer.js" server "$work/key.pem" "$work/cert.pem" X25519MLKEM768
    out="$("$peer" client --port "$port")"; rc=$?
    wait_server
    echo "client: $out"; cat "$work/server.out"
    [[ $rc -eq 0 ]] || fail "our client failed"
    grep -qx "GROUP X25519MLKEM768" <<<"$out" || fail "client did not negotiate X25519MLKEM768"
    grep -q "^REPLY pong ping node" <<<"$out" || fail "no application data round trip"
    ;;
  node20-client)  # our server (default groups) accepts Node 20 with X25519
    start_server "$peer" server
    out="$("$node" "$here/node_peer.js" client "$port" X25519:P-256)"; rc=$?
    wait_server
    echo "client: $out"; cat "$work/server.out"
    [[ $rc -eq 0 ]] || fail "node 20 client failed"
    grep -qx "GROUP X25519" "$work/server.out" || fail "server did not fall back to X25519"
    ;;
  node20-client-pqonly)  # our pq_only server refuses Node 20
    start_server "$peer" server --pq-only
    out="$("$node" "$here/node_peer.js" client "$port" X25519:P-256)"; rc=$?
    wait_server
    echo "client: $out"; cat "$work/server.out"
    [[ $rc -ne 0 ]] || fail "node 20 client connected to a pq_only server"
    grep -q "^HANDSHAKE_FAILED" "$work/server.out" || fail "server did not report a failed handshake"
    ;;
  node20-server)  # our client (default groups) falls back to X25519 with a Node 20 server
    node_cert
    start_server "$node" "$here/node_peer.js" server "$work/key.pem" "$work/cert.pem" X25519:P-256
    out="$("$peer" client --port "$port")"; rc=$?
    wait_server
    echo "client: $out"; cat "$work/server.out"
    [[ $rc -eq 0 ]] || fail "our client failed against node 20"
    grep -qx "GROUP X25519" <<<"$out" || fail "client did not fall back to X25519"
    ;;
  node20-server-pqonly)  # our pq_only client refuses a Node 20 server
    node_cert
    start_server "$node" "$here/node_peer.js" server "$work/key.pem" "$work/cert.pem" X25519:P-256
    out="$("$peer" client --port "$port" --pq-only)"; rc=$?
    wait_server
    echo "client: $out"; cat "$work/server.out"
    [[ $rc -eq 2 ]] || fail "pq_only client did not fail the handshake (rc $rc)"
    ;;
esac
echo "PASS $case_name"
