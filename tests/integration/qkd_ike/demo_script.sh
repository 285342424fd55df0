#!/bin/bash
# packaging/qkd-demo.sh as a new user runs it: up (two sites, each with its KME and its qkdgated),
# the COMBINED tunnel on both sides with the same QKD key_ID and a ping through it; then down.
# Own namespace names and run folder, so a running demo of the user is not touched.
# Usage: demo_script.sh BINDIR    (exit 77 = skipped, reason printed)
bin=${1:?folder of qkdgated, qkdgate and qkd-kme}
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root (network namespaces, TUN, UDP 500)"; exit 77; }
ip netns add "qkdd-probe-$$" 2>/dev/null || { echo "SKIP: cannot create network namespaces here"; exit 77; }
ip netns del "qkdd-probe-$$"
command -v openssl >/dev/null || { echo "SKIP: openssl (the command) is needed for the PSK"; exit 77; }
export QKD_DEMO_NS=qkdd$$ QKD_DEMO_RUN=/tmp/qkd-demo-test-$$
demo=$(cd "$(dirname "$0")/../../.." && pwd)/packaging/qkd-demo.sh
trap 'bash "$demo" down >/dev/null 2>&1' EXIT
out=$(bash "$demo" up "$bin" 2>&1); rc=$?
echo "$out"
[ $rc -eq 0 ] || { echo "FAIL: qkd-demo.sh up exited $rc"; tail -20 "$QKD_DEMO_RUN"/site-*/qkdgated.log 2>/dev/null; exit 1; }
echo "$out" | grep -q ' 0% packet loss' || { echo "FAIL: the ping through the tunnel lost packets"; exit 1; }
n=$(echo "$out" | grep -c 'ESTABLISHED.*PSK/DH21+MLKEM768+QKD/AES256-GCM16/COMBINED')
[ "$n" -eq 2 ] || { echo "FAIL: expected COMBINED on both sites, got $n lines"; exit 1; }
ids=$(echo "$out" | sed -n 's/.*QKD key_ID \([0-9a-f-]*\) .*/\1/p' | sort -u)
[ "$(echo "$ids" | wc -l)" -eq 1 ] && [ -n "$ids" ] || { echo "FAIL: the sites show different (or no) key_IDs: $ids"; exit 1; }
bash "$demo" down | grep -q "QKD demo removed" || { echo "FAIL: down"; exit 1; }
ip netns list | grep -q "qkdd$$" && { echo "FAIL: namespaces left after down"; exit 1; }
echo "PASS: qkd-demo.sh up: COMBINED on both sites, same key_ID $ids, ping through; down removes everything"
