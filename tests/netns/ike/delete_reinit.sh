#!/bin/bash
# INFORMATIONAL DELETE (RFC 7296 1.4.1) and re-initiation: after `terminate` both daemons drop
# the IKE and child SAs and the tunnel stops passing traffic; `initiate` (with --wait) brings it back.
TEST_TAG=dr$$ . "$(dirname "$0")/lib.sh"
netns_up
write_config west
write_config east
start_gw east
start_gw west
qg west show ike-sa | grep -q 'no IKE SAs' || fail "an IKE SA exists before initiate"
qg west initiate peer || fail "initiate refused"
wait_child west 20 || fail "no child SA on west within 20 s"
ping_tunnel 2 >/dev/null || fail "ping through the tunnel failed"
qg west terminate peer || fail "terminate refused"
for _ in $(seq 1 50); do [ -z "$(child_spis east)" ] && [ -z "$(child_spis west)" ] && break; sleep 0.1; done
[ -z "$(child_spis west)" ] || fail "west still has child SAs after terminate"
[ -z "$(child_spis east)" ] || fail "east still has child SAs after the DELETE"
[ -z "$(ike_spis east)" ] || fail "east still has an established IKE SA after the DELETE"
if ping_tunnel 1 >/dev/null 2>&1; then fail "ping still passes after the DELETE"; fi
# --wait: the CLI returns once the IKE SA is up, so it is there without any polling.
qg east initiate --wait peer || fail "initiate --wait (now from east) failed"
[ -n "$(ike_spis east)" ] || fail "initiate --wait returned before east had an established IKE SA"
wait_child west 20 || fail "no child SA after re-initiation"
ping_tunnel 2 >/dev/null || fail "ping through the re-initiated tunnel failed"
echo "PASS: DELETE tears down both sides, re-initiation (reverse direction) works"
