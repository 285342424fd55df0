#!/bin/bash
# `qkdgate terminate` stops the retries of a gateway whose peer is missing, until `initiate`.
TEST_TAG=kt$$ . "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/keep_lib.sh"
netns_up
keep_hosts 1
keep_config west 'peer:1:start_action = "start"'
keep_config east 'peer:1'
keep_start west
for _ in $(seq 1 60); do
  gw_state west peer | grep -q '^CONNECTING attempt=[2-9]' && break
  sleep 0.25
done
gw_state west peer | grep -q '^CONNECTING attempt=[2-9]' || fail "west is not retrying"
out=$(qg west terminate peer) || fail "terminate refused: $out"
log "terminate: $out"
n0=$(grep -c 'gateway peer: attempt [0-9]* in' "$WORK/west/qkdgated.log")
sleep 1
[ -z "$(gw_sas west peer | python3 -c 'import json,sys; print(json.load(sys.stdin) or "")')" ] || fail "west still lists the gateway after terminate"
keep_start east
sleep $(( KEEP_STEP_MAX + KEEP_ATTEMPT ))
n1=$(grep -c 'gateway peer: attempt [0-9]* in' "$WORK/west/qkdgated.log")
[ "$n1" -eq "$n0" ] || fail "west went on retrying after terminate ($n0 -> $n1 retry lines)"
[ -z "$(established_spis east peer)" ] || fail "an IKE SA came up after terminate"
qg west initiate --wait peer || fail "initiate after terminate failed"
wait_ping 1 10 >/dev/null || fail "no ping after initiate"
echo "PASS: terminate stops the retries (none in $(( KEEP_STEP_MAX + KEEP_ATTEMPT )) s with the peer back), initiate brings the tunnel up"
