#!/bin/bash
# The peer deletes the IKE SA (INFORMATIONAL DELETE, RFC 7296 1.4.1): with close_action = "start"
# west initiates again at once, with close_action = "none" it leaves the gateway down.
TEST_TAG=kc$$ . "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/keep_lib.sh"
netns_up
keep_hosts 2
keep_config west 'cs:1:start_action = "start"\nclose_action = "start"' 'cn:2:start_action = "start"\nclose_action = "none"'
keep_config east 'cs:1' 'cn:2'
keep_start east
keep_start west
wait_established west cs 15 && wait_established west cn 15 || fail "both gateways should be up"
before=$(established_spis west cs)
qg east terminate cs >/dev/null || fail "terminate cs on east refused"
t0=$(now_ms)
took=$(wait_ping 1 10 "$t0") || fail "cs: no ping within 10 s of the peer's DELETE"
after=$(established_spis west cs)
[ -n "$after" ] && [ "$after" != "$before" ] || fail "cs: expected a new IKE SA (before: $before, after: $after)"
log "close_action = start: new IKE SA $after, ping after $took s"
qg east terminate cn >/dev/null || fail "terminate cn on east refused"
sleep $(( KEEP_STEP_MAX + 2 ))
[ -z "$(gw_state west cn)" ] || { gw_state west cn; fail "cn: west re-initiated or lists it despite close_action = none"; }
[ -z "$(gw_state east cn)" ] || fail "cn: east has an IKE SA again"
grep -q 'gateway cn: left down (close_action = "none")' "$WORK/west/qkdgated.log" || fail "west did not log why cn stays down"
if ping_gw 2 1 >/dev/null 2>&1; then fail "cn: ping passes although it should be down"; fi
echo "PASS: peer DELETE: close_action = start re-initiates ($took s), close_action = none leaves it down"
