#!/usr/bin/env bash
# End to end, as a new user would do it: start `qkd-kme demo DIR`, then with the gateway CLI get a
# key on site A (master, KME_A) and fetch the same key by its key_ID on site B (slave, KME_B), in
# the POST and the GET forms; the key bytes must be identical. Also: a key is delivered only once.
# Usage: demo_e2e.sh QKD_KME_BIN QKDGATE_BIN     (exit 77 = skipped)
set -euo pipefail
kme=$1
gate=$2
command -v python3 >/dev/null || { echo "SKIP: python3 is needed to read the JSON output"; exit 77; }

dir=$(mktemp -d /tmp/qkd-sae-demo-XXXXXX)
pid=""
cleanup() {
  if [[ -n "$pid" ]]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$dir"
}
trap cleanup EXIT

"$kme" demo "$dir/demo" --quiet >"$dir/demo.log" 2>&1 &
pid=$!
for _ in $(seq 1 200); do
  [[ -f "$dir/demo/demo.json" ]] && break
  if ! kill -0 "$pid" 2>/dev/null; then echo "FAIL: qkd-kme demo exited:"; cat "$dir/demo.log"; exit 1; fi
  sleep 0.1
done
[[ -f "$dir/demo/demo.json" ]] || { echo "FAIL: no demo.json after 20 s"; cat "$dir/demo.log"; exit 1; }

A=("$gate" -c "$dir/demo/site-a/qkdgate.toml")
B=("$gate" -c "$dir/demo/site-b/qkdgate.toml")
field() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval("d"+sys.argv[2]))' "$@"; }

echo "== qkdgate show qkd (site A)"
"${A[@]}" show qkd
echo "== qkdgate test qkd connectivity kme-a --peer-sae-id SAE_B"
"${A[@]}" test qkd connectivity kme-a --peer-sae-id SAE_B
"${A[@]}" test qkd connectivity kme-a --peer-sae-id SAE_B --json >"$dir/conn.json"
[[ $(field "$dir/conn.json" '["status"]["source_KME_ID"]') == KME_A ]] || { echo "FAIL: source_KME_ID"; exit 1; }
[[ $(field "$dir/conn.json" '["status"]["target_KME_ID"]') == KME_B ]] || { echo "FAIL: target_KME_ID"; exit 1; }

for form in "" "--get"; do
  echo "== get-key ${form:-(POST)} on site A, get-key-with-id on site B"
  "${A[@]}" test qkd get-key --profile kme-a --peer-sae-id SAE_B --show-key --json $form >"$dir/a.json"
  id=$(field "$dir/a.json" '["keys"][0]["key_ID"]')
  "${B[@]}" test qkd get-key-with-id --profile kme-b --peer-sae-id SAE_A --show-key --json $form "$id" >"$dir/b.json"
  ka=$(field "$dir/a.json" '["keys"][0]["key"]')
  kb=$(field "$dir/b.json" '["keys"][0]["key"]')
  [[ $(field "$dir/b.json" '["keys"][0]["key_ID"]') == "$id" ]] || { echo "FAIL: key_ID differs"; exit 1; }
  if [[ -z "$ka" || "$ka" != "$kb" ]]; then echo "FAIL: site A and site B keys differ for key_ID $id"; exit 1; fi
  echo "   key_ID $id: same 256-bit key on both sites"
done

echo "== three 512-bit keys at once, fetched together on site B"
"${A[@]}" test qkd get-key --profile kme-a --peer-sae-id SAE_B --number 3 --size 512 --show-key --json >"$dir/a3.json"
ids=$(python3 -c 'import json,sys; print(" ".join(k["key_ID"] for k in json.load(open(sys.argv[1]))["keys"]))' "$dir/a3.json")
# shellcheck disable=SC2086
"${B[@]}" test qkd get-key-with-id --profile kme-b --peer-sae-id SAE_A --size 512 --show-key --json $ids >"$dir/b3.json"
python3 - "$dir/a3.json" "$dir/b3.json" <<'PY'
import json, sys
a = {k["key_ID"]: k["key"] for k in json.load(open(sys.argv[1]))["keys"]}
b = {k["key_ID"]: k["key"] for k in json.load(open(sys.argv[2]))["keys"]}
assert len(a) == 3 and a == b, "keys differ between the sites"
assert all(len(v) == 88 for v in a.values()), "expected 512-bit keys (88 Base64 characters)"
print("   3 keys identical on both sites")
PY

echo "== the text form hides the key"
"${A[@]}" test qkd get-key --profile kme-a --peer-sae-id SAE_B | tee "$dir/hidden.txt"
grep -q "(hidden)" "$dir/hidden.txt" || { echo "FAIL: key not hidden"; exit 1; }

echo "== a key is delivered once: a second get-key-with-id fails with the ETSI error"
set +e
"${B[@]}" test qkd get-key-with-id --profile kme-b --peer-sae-id SAE_A --json "$id" >"$dir/again.json"
rc=$?
set -e
cat "$dir/again.json"
[[ $rc -eq 1 ]] || { echo "FAIL: expected exit code 1, got $rc"; exit 1; }
[[ $(field "$dir/again.json" '["error"]["http_status"]') == 400 ]] || { echo "FAIL: expected HTTP 400"; exit 1; }
echo "PASS"
