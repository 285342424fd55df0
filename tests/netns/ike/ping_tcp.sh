#!/bin/bash
# Two qkdgated in two namespaces, userspace ESP over TUN: the initiator brings the tunnel up,
# a ping and a 20 MB TCP transfer (SHA-256 compared on both ends) go through it, and both
# daemons show the same SPIs and non-zero ESP counters.
TEST_TAG=pt$$ . "$(dirname "$0")/lib.sh"
netns_up
write_config west 'start_action = "start"'
write_config east
start_gw east
start_gw west
wait_child west 20 || fail "no child SA on west within 20 s"
wait_child east 5 || fail "no child SA on east"
qg west show ike-sa
qg west show child-sa
ike_w=$(ike_spis west); ike_e=$(ike_spis east)
[ -n "$ike_w" ] && [ "$ike_w" = "$ike_e" ] || fail "IKE SPIs differ: west '$ike_w' east '$ike_e'"
qg west show ike-sa --json | grep -q '"algorithm": "PSK/DH21/AES256-GCM16"' || fail "algorithm string is not PSK/DH21/AES256-GCM16"
ping_tunnel 3 || fail "ping through the tunnel failed"
tcp_transfer 20 || fail "20 MB TCP transfer through the tunnel did not arrive intact"
# ESP counters: west sent at least the 20 MB, east received them.
out_w=$(qg west show child-sa --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["bytes_out"])')
in_e=$(qg east show child-sa --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["bytes_in"])')
log "ESP bytes: west out $out_w, east in $in_e"
[ "$out_w" -ge 20000000 ] && [ "$in_e" -ge 20000000 ] || fail "ESP byte counters too small (west out $out_w, east in $in_e)"
echo "PASS: tunnel up, ping and 20 MB TCP transfer through it"
