#!/bin/bash
# Child SA rekey and IKE SA rekey (CREATE_CHILD_SA, RFC 7296 1.3) while a ping runs every 20 ms
# through the tunnel: every echo must come back, and the SPIs must have changed.
TEST_TAG=rk$$ . "$(dirname "$0")/lib.sh"
netns_up
# PFS on child rekeys (RFC 7296 1.3.1: KEi/KEr in CREATE_CHILD_SA)
export QKDGT_ESP=aes256gcm16-ecp521
write_config west 'start_action = "start"'
write_config east
start_gw east
start_gw west
wait_child west 20 || fail "no child SA on west within 20 s"
wait_child east 5 || fail "no child SA on east"
ping_tunnel 2 >/dev/null || fail "ping through the fresh tunnel failed"
child0=$(child_spis west); ike0=$(ike_spis west)
log "before: child $child0, IKE $ike0"
ip netns exec "$NS_W" ping -q -c 300 -i 0.02 -W 2 -I $HOST_W $HOST_E >"$WORK/ping.out" 2>&1 &
pingpid=$!
PIDS+=($pingpid)
sleep 1.5
qg west rekey peer || fail "rekey (child) refused"
sleep 1.5
qg east rekey peer || fail "rekey (child, from the responder) refused"
sleep 1.5
qg west rekey peer --ike || fail "rekey --ike refused"
wait $pingpid
cat "$WORK/ping.out"
child1=$(child_spis west); ike1=$(ike_spis west)
log "after:  child $child1, IKE $ike1"
[ -n "$child1" ] && [ "$child1" != "$child0" ] || fail "child SPIs did not change ($child0 -> $child1)"
[ -n "$ike1" ] && [ "$ike1" != "$ike0" ] || fail "IKE SPIs did not change ($ike0 -> $ike1)"
[ "$(child_spis east | wc -w)" -eq 1 ] || fail "east has $(child_spis east | wc -w) child SAs, expected 1 after rekeys"
grep -q ' 0% packet loss' "$WORK/ping.out" || fail "packets were lost during the rekeys"
ping_tunnel 2 >/dev/null || fail "ping through the rekeyed tunnel failed"
echo "PASS: child and IKE rekeys under traffic without loss"
