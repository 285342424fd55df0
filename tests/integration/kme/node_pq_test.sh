#!/usr/bin/env bash
# qkd-kme with Node.js clients (issue 4 interop):
# - Node 24 (OpenSSL 3.5) offering only X25519MLKEM768 reaches the KME: the hybrid group is negotiated
#   (it is the only group offered, so a completed handshake proves it);
# - Node 20 (Debian, OpenSSL 3.0, no hybrid group) is refused by a KME with pq_only = true and
#   falls back to X25519 with the default group list.
# Exit 77 (skip) with the reason when Node 24 cannot be installed.
set -uo pipefail
BIN=$1
here="$(cd "$(dirname "$0")" && pwd)"; repo="$(cd "$here/../../.." && pwd)"
node24="$("$repo/scripts/get-node24.sh" 2>/dev/null)" || { echo "SKIP: Node.js 24 unavailable (scripts/get-node24.sh failed)"; exit 77; }
node20="$(command -v node)" || { echo "SKIP: Debian nodejs missing"; exit 77; }
dir=$(mktemp -d /tmp/qkd-kme-node-XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; rm -rf "$dir"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; cat "$dir"/*.log 2>/dev/null | tail -20; exit 1; }

"$BIN" demo "$dir" --prepare-only --log-level warn >/dev/null || fail "demo --prepare-only"
port_a=$(sed -n 's/^listen = "127.0.0.1:\([0-9]*\)"/\1/p' "$dir/kme_a.toml")
"$BIN" serve -c "$dir/kme_a.toml" 2>"$dir/a.log" & pids+=($!)
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port_a) 2>/dev/null && break; sleep 0.1; done
url="https://127.0.0.1:$port_a/api/v1/keys/SAE_B/status"
sae=("$dir/pki/ca.pem" "$dir/pki/sae_a.pem" "$dir/pki/sae_a.key")

out=$("$node24" "$here/node_sae.js" "$url" "${sae[@]}" X25519MLKEM768)
echo "node24 (X25519MLKEM768 only): $out"
[[ "$out" == "STATUS 200 "*'"source_KME_ID":"KME_A"'* ]] || fail "Node 24 with X25519MLKEM768 only did not get a status"
out=$("$node20" "$here/node_sae.js" "$url" "${sae[@]}" X25519)
echo "node20 (X25519), default groups: $out"
[[ "$out" == "STATUS 200 "* ]] || fail "Node 20 should fall back to X25519 without pq_only"

kill "${pids[0]}"; wait "${pids[0]}" 2>/dev/null; pids=()
sed -i 's/^tls_groups = .*/tls_groups = ["X25519MLKEM768"]\npq_only = true/' "$dir/kme_a.toml"
"$BIN" serve -c "$dir/kme_a.toml" 2>"$dir/a2.log" & pids+=($!)
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port_a) 2>/dev/null && break; sleep 0.1; done
out=$("$node20" "$here/node_sae.js" "$url" "${sae[@]}" X25519:P-256)
echo "node20 (X25519:P-256), pq_only KME: $out"
[[ "$out" == TLS_FAILED* ]] || fail "pq_only KME accepted a client without a hybrid group"
out=$("$node24" "$here/node_sae.js" "$url" "${sae[@]}" X25519MLKEM768:X25519)
echo "node24, pq_only KME: $out"
[[ "$out" == "STATUS 200 "* ]] || fail "pq_only KME refused Node 24 with the hybrid group"
echo PASS
