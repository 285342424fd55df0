#!/bin/bash
# A permanent tunnel survives its peer crashing: west (start_action = "start") and east
# (responder); east is killed with SIGKILL (no DELETE) and started again at once: west notices
# by DPD (dpd_interval + an unanswered exchange), re-initiates at once and ping passes again
# within DPD + one back-off step. Then the same with west killed and restarted: it initiates as it
# starts (INITIAL_CONTACT clears east's stale SA).
TEST_TAG=kr$$ . "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/keep_lib.sh"
netns_up
keep_hosts 1
keep_config west 'peer:1:start_action = "start"'
keep_config east 'peer:1'
keep_start east
keep_start west
wait_established west peer 15 || fail "no IKE SA within 15 s"
wait_ping 1 10 >/dev/null || fail "no ping through the tunnel"

keep_kill east
keep_start east
t0=$(now_ms)
bound=$(( KEEP_DPD + KEEP_ATTEMPT + KEEP_STEP_MAX + 4 ))
took=$(wait_ping 1 $bound "$t0") || fail "ping did not pass within $bound s of east's restart"
log "east killed and restarted: ping passes again after $took s (bound: DPD $KEEP_DPD + attempt $KEEP_ATTEMPT + step $KEEP_STEP_MAX + 4 s)"
grep -q "IKE SA .* failed .*peer did not answer" "$WORK/west/qkdgated.log" || fail "west did not log the failed DPD"
grep -Eq "gateway peer: attempt [0-9]+ in [0-9.]+ s" "$WORK/west/qkdgated.log" || fail "west did not log its re-initiation"

keep_kill west
keep_start west
t0=$(now_ms)
took2=$(wait_ping 1 10 "$t0") || fail "ping did not pass within 10 s of west's restart"
log "west killed and restarted: ping passes again after $took2 s"
echo "PASS: tunnel back by itself after a SIGKILL + restart of the responder ($took s) and of the initiator ($took2 s)"
