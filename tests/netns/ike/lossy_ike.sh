#!/bin/bash
# Packet loss on the IKE path: every other IKE datagram is dropped in each direction (netfilter
# "statistic" nth match in the initiator's namespace; this kernel has no netem). Retransmissions
# (RFC 7296 2.1) must still bring the IKE SA and the child SA up.
TEST_TAG=ls$$ . "$(dirname "$0")/lib.sh"
netns_up
command -v iptables >/dev/null || skip "iptables not installed"
nsx "$NS_W" iptables -A OUTPUT -p udp --dport 500 -m statistic --mode nth --every 2 --packet 0 -j DROP 2>/dev/null \
  || skip "netfilter statistic match unavailable in this kernel"
nsx "$NS_W" iptables -A INPUT -p udp --sport 500 -m statistic --mode nth --every 2 --packet 0 -j DROP
write_config west
write_config east
start_gw east
start_gw west
qg west initiate peer || fail "initiate refused"
wait_child west 45 || fail "no child SA within 45 s with every other IKE datagram dropped"
nsx "$NS_W" iptables -L -v -n -x
dropped=$(nsx "$NS_W" iptables -L OUTPUT -v -n -x | awk '/DROP/ {print $1}')
dropped_in=$(nsx "$NS_W" iptables -L INPUT -v -n -x | awk '/DROP/ {print $1}')
log "dropped: $dropped outgoing, $dropped_in incoming IKE datagrams"
[ "$dropped" -ge 2 ] && [ "$dropped_in" -ge 1 ] || fail "the loss rules did not drop anything; test is void"
ping_tunnel 2 >/dev/null || fail "ping through the tunnel failed"
echo "PASS: IKE SA and child SA up despite every other IKE datagram lost"
