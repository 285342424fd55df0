#!/usr/bin/env bash
# The SAE client (qkdgate test qkd connectivity) against a KME stand-in on Node.js 24 / OpenSSL 3.5
# that accepts only X25519MLKEM768: the handshake completes and the CLI reports that group.
# Exit 77 (skip) with the reason when Node 24 cannot be installed.
set -uo pipefail
KME=$1 QKDGATE=$2
here="$(cd "$(dirname "$0")" && pwd)"; repo="$(cd "$here/../../.." && pwd)"
node24="$("$repo/scripts/get-node24.sh" 2>/dev/null)" || { echo "SKIP: Node.js 24 unavailable (scripts/get-node24.sh failed)"; exit 77; }
dir=$(mktemp -d /tmp/qkd-sae-node-XXXXXX); pid=""
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; rm -rf "$dir"' EXIT
"$KME" demo "$dir" --prepare-only --log-level warn >/dev/null || { echo "FAIL: demo --prepare-only"; exit 1; }
"$node24" "$here/node_kme.js" "$dir/pki/kme_a.key" "$dir/pki/kme_a.pem" "$dir/pki/ca.pem" X25519MLKEM768 >"$dir/node.out" 2>&1 &
pid=$!
for _ in $(seq 100); do port=$(sed -n 's/^PORT \([0-9]*\)$/\1/p' "$dir/node.out"); [ -n "$port" ] && break; sleep 0.1; done
[ -n "${port:-}" ] || { echo "FAIL: node KME did not start"; cat "$dir/node.out"; exit 1; }
# the demo's site-a profile, pointed at the Node KME
sed -i "s|^kme_url = .*|kme_url = \"https://127.0.0.1:$port\"|" "$dir/site-a/qkdgate.toml"
out=$("$QKDGATE" -c "$dir/site-a/qkdgate.toml" test qkd connectivity kme-a --peer-sae-id SAE_B --json); rc=$?
echo "$out"
[ $rc -eq 0 ] || { echo "FAIL: connectivity exit code $rc"; exit 1; }
python3 - "$out" <<'PY' || exit 1
import json, sys
j = json.loads(sys.argv[1])
def find(o, k):
    if isinstance(o, dict):
        for kk, v in o.items():
            if kk == k: return v
            r = find(v, k)
            if r is not None: return r
    return None
g, st = find(j, "group"), find(j, "stored_key_count")
assert g == "X25519MLKEM768", f"group {g!r}"
assert st == 7, f"stored_key_count {st!r}"
print("PASS: SAE client negotiated", g, "with Node 24")
PY
