#!/bin/bash
# One responder gateway, several peers: a hub qkdgated has ONE [[gateway]] with remote_id
# "*.peers.test", remote_address 0.0.0.0 and remote_ts 10.98.0.0/16; two initiators r1 and r2
# (local_id r1.peers.test / r2.peers.test, same PSK) each propose only their own /24 as TSi, so
# the hub narrows it per peer. Both come up (initiate --wait); the hub shows two IKE SAs with the
# two peer IDs and two child SAs with the two narrowed selectors; pings from both LANs to the
# hub's LAN run at the same time and each peer's child SA counts its own packets; after r1
# terminates, r2's tunnel still passes traffic.
# Topology (all inside namespaces created here, deleted on exit):
#   ns hub: bridge br0 10.99.0.1/24, LAN 10.98.0.1/32 on lo
#   ns r1:  veth 10.99.0.2/24 (bridged in hub), LAN 10.98.1.1/32 on lo
#   ns r2:  veth 10.99.0.3/24 (bridged in hub), LAN 10.98.2.1/32 on lo
# Exit code 77 = skipped (ctest SKIP_RETURN_CODE), with the reason printed.
set -u
QKDGATED=${1:?path to qkdgated}
QKDGATE=${2:?path to qkdgate}
TAG=mp$$
SIDES=(hub r1 r2)
declare -A NS=([hub]=qkdgt-$TAG-h [r1]=qkdgt-$TAG-1 [r2]=qkdgt-$TAG-2)
declare -A OUTER=([hub]=10.99.0.1 [r1]=10.99.0.2 [r2]=10.99.0.3)
declare -A LAN=([hub]=10.98.0.1 [r1]=10.98.1.1 [r2]=10.98.2.1)
declare -A NET=([hub]=10.98.0.0/24 [r1]=10.98.1.0/24 [r2]=10.98.2.0/24)
WORK=$(mktemp -d /tmp/qkdgt-$TAG.XXXXXX)
PIDS=()

log() { printf '[%s] %s\n' "$(date +%T.%N | cut -c1-12)" "$*" >&2; }
skip() { echo "SKIP: $*"; exit 77; }
fail() {
  log "FAIL: $*"
  for s in "${SIDES[@]}"; do
    [ -f "$WORK/$s/qkdgated.log" ] && { echo "---- $s qkdgated log (tail)"; tail -40 "$WORK/$s/qkdgated.log"; }
  done
  exit 1
}
nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

cleanup() {
  local pid ns
  for s in "${SIDES[@]}"; do
    for pid in $(ip netns pids "${NS[$s]}" 2>/dev/null); do PIDS+=("$pid"); done
  done
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null
  done
  for s in "${SIDES[@]}"; do ip netns del "${NS[$s]}" 2>/dev/null; done
  if [ -n "${KEEP_WORK:-}" ]; then echo "work directory kept: $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

[ "$(id -u)" -eq 0 ] || skip "needs root (network namespaces, TUN, UDP 500)"
command -v ip >/dev/null || skip "iproute2 (ip) not installed"
[ -c /dev/net/tun ] || skip "/dev/net/tun missing"
ip netns add "qkdgt-probe-$$" 2>/dev/null || skip "cannot create network namespaces here"
ip netns del "qkdgt-probe-$$"
[ -x "$QKDGATED" ] || skip "qkdgated not built ($QKDGATED)"

# ---- topology
for s in "${SIDES[@]}"; do
  ip netns add "${NS[$s]}" || fail "cannot create namespace ${NS[$s]}"
  nsx "${NS[$s]}" ip link set lo up
  nsx "${NS[$s]}" sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
  nsx "${NS[$s]}" ip addr add "${LAN[$s]}/32" dev lo
done
nsx "${NS[hub]}" ip link add br0 type bridge || fail "cannot create the bridge"
for s in r1 r2; do
  ip link add gw0 netns "${NS[$s]}" type veth peer name "p$s" netns "${NS[hub]}" || fail "cannot create the veth pair for $s"
  nsx "${NS[hub]}" ip link set "p$s" master br0
  nsx "${NS[hub]}" ip link set "p$s" up
  nsx "${NS[$s]}" ip addr add "${OUTER[$s]}/24" dev gw0
  nsx "${NS[$s]}" ip link set gw0 up
done
nsx "${NS[hub]}" ip addr add "${OUTER[hub]}/24" dev br0
nsx "${NS[hub]}" ip link set br0 up
for s in r1 r2; do
  ok=
  for _ in $(seq 1 20); do nsx "${NS[$s]}" ping -c1 -W1 "${OUTER[hub]}" >/dev/null 2>&1 && { ok=1; break; }; sleep 0.25; done
  [ -n "$ok" ] || fail "outer link $s -> hub does not work"
done

# ---- configuration: one PSK for the whole trust domain (gw_common.sh)
. "$(dirname "$0")/gw_common.sh"
gw_write_config hub "${OUTER[hub]}" 0.0.0.0 hub.peers.test '"*.peers.test"' "${NET[hub]}" 10.98.0.0/16
gw_write_config r1 "${OUTER[r1]}" "${OUTER[hub]}" r1.peers.test '"hub.peers.test"' "${NET[r1]}" "${NET[hub]}"
gw_write_config r2 "${OUTER[r2]}" "${OUTER[hub]}" r2.peers.test '"hub.peers.test"' "${NET[r2]}" "${NET[hub]}"
start_gw() { gw_start "$1" "${NS[$1]}"; }
qg() { local side=$1; shift; nsx "${NS[$side]}" "$QKDGATE" -s "$WORK/$side/ctl.sock" "$@"; }

# hub_ike_ids: the remote_id of every established IKE SA on the hub, sorted, space separated
hub_ike_ids() {
  qg hub show ike-sa --json | python3 -c 'import json,sys
print(" ".join(sorted(s["remote_id"] for s in json.load(sys.stdin) if s["state"].upper()=="ESTABLISHED")))'
}
# hub_children: "remote_ts packets_in packets_out" per child SA of the hub, one a line
hub_children() {
  qg hub show child-sa --json | python3 -c 'import json,sys
for c in json.load(sys.stdin): print(",".join(c["remote_ts"]), c["packets_in"] or 0, c["packets_out"] or 0)'
}
# pkts SNAPSHOT NET DIR: packets (in|out) of the child SA whose remote_ts is NET in a hub_children
# snapshot (empty when none)
pkts() { awk -v n="$2" -v d="$3" '$1==n {print (d=="in" ? $2 : $3)}' <<<"$1"; }
ping_from() {  # ping_from SIDE COUNT
  nsx "${NS[$1]}" ping -c "$2" -i 0.2 -W 2 -I "${LAN[$1]}" "${LAN[hub]}"
}

start_gw hub
start_gw r1
start_gw r2

# ---- both initiators up, at the same time
qg r1 initiate --wait peer >"$WORK/init-r1.out" 2>&1 &
i1=$!
qg r2 initiate --wait peer >"$WORK/init-r2.out" 2>&1 &
i2=$!
wait $i1 || { cat "$WORK/init-r1.out"; fail "r1: initiate --wait failed"; }
wait $i2 || { cat "$WORK/init-r2.out"; fail "r2: initiate --wait failed"; }

qg hub show ike-sa
qg hub show child-sa
ids=$(hub_ike_ids)
[ "$ids" = "r1.peers.test r2.peers.test" ] || fail "hub IKE SAs: peer IDs '$ids', want 'r1.peers.test r2.peers.test'"
n_ike=$(qg hub show ike-sa --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
[ "$n_ike" = 2 ] || fail "hub has $n_ike IKE SAs, want 2"
gws=$(qg hub show ike-sa --json | python3 -c 'import json,sys; print(" ".join(sorted({s["gateway"] for s in json.load(sys.stdin)})))')
[ "$gws" = peer ] || fail "hub IKE SAs on gateways '$gws', want only 'peer'"
n_child=$(hub_children | wc -l)
[ "$n_child" = 2 ] || fail "hub has $n_child child SAs, want 2"
nets=$(hub_children | awk '{print $1}' | sort | tr '\n' ' ')
[ "$nets" = "${NET[r1]} ${NET[r2]} " ] || fail "hub child SA remote_ts '$nets', want '${NET[r1]} ${NET[r2]}' (narrowed per peer)"

# ---- traffic from both LANs at once; each peer's SA counts it
snap=$(hub_children)
b1_in=$(pkts "$snap" "${NET[r1]}" in); b1_out=$(pkts "$snap" "${NET[r1]}" out)
b2_in=$(pkts "$snap" "${NET[r2]}" in); b2_out=$(pkts "$snap" "${NET[r2]}" out)
COUNT=10
ping_from r1 $COUNT >"$WORK/ping-r1.out" 2>&1 &
p1=$!
ping_from r2 $COUNT >"$WORK/ping-r2.out" 2>&1 &
p2=$!
PIDS+=($p1 $p2)
wait $p1; rc1=$?
wait $p2; rc2=$?
[ $rc1 -eq 0 ] || { cat "$WORK/ping-r1.out"; fail "ping r1 LAN -> hub LAN failed (run in parallel with r2)"; }
[ $rc2 -eq 0 ] || { cat "$WORK/ping-r2.out"; fail "ping r2 LAN -> hub LAN failed (run in parallel with r1)"; }
log "r1: $(grep 'packets transmitted' "$WORK/ping-r1.out")"
log "r2: $(grep 'packets transmitted' "$WORK/ping-r2.out")"
snap=$(hub_children)
a1_in=$(pkts "$snap" "${NET[r1]}" in); a1_out=$(pkts "$snap" "${NET[r1]}" out)
a2_in=$(pkts "$snap" "${NET[r2]}" in); a2_out=$(pkts "$snap" "${NET[r2]}" out)
log "hub child SA packets: r1 in $b1_in->$a1_in out $b1_out->$a1_out; r2 in $b2_in->$a2_in out $b2_out->$a2_out"
# Each pinger got all its replies, so each SA carried at least COUNT packets each way.
[ $((a1_in - b1_in)) -ge $COUNT ] && [ $((a1_out - b1_out)) -ge $COUNT ] ||
  fail "r1's child SA on the hub did not count r1's pings (in $b1_in->$a1_in, out $b1_out->$a1_out)"
[ $((a2_in - b2_in)) -ge $COUNT ] && [ $((a2_out - b2_out)) -ge $COUNT ] ||
  fail "r2's child SA on the hub did not count r2's pings (in $b2_in->$a2_in, out $b2_out->$a2_out)"

# ---- r1 goes away; r2's tunnel stays
qg r1 terminate peer || fail "r1: terminate refused"
gone=
for _ in $(seq 1 50); do
  [ "$(hub_ike_ids)" = r2.peers.test ] && [ "$(hub_children | wc -l)" = 1 ] && { gone=1; break; }
  sleep 0.2
done
qg hub show ike-sa
qg hub show child-sa
[ -n "$gone" ] || fail "after r1's terminate the hub does not hold exactly r2's IKE SA and child SA (IDs '$(hub_ike_ids)')"
[ "$(hub_children | awk '{print $1}')" = "${NET[r2]}" ] || fail "the child SA left on the hub is not r2's"
b2_in=$(pkts "$(hub_children)" "${NET[r2]}" in)
ping_from r2 3 >"$WORK/ping-r2b.out" 2>&1 || { cat "$WORK/ping-r2b.out"; fail "ping r2 LAN -> hub LAN failed after r1 terminated"; }
a2_in=$(pkts "$(hub_children)" "${NET[r2]}" in)
[ $((a2_in - b2_in)) -ge 3 ] || fail "r2's child SA did not count the pings after r1 terminated ($b2_in->$a2_in)"
if ping_from r1 1 >/dev/null 2>&1; then fail "r1's LAN still reaches the hub after r1 terminated"; fi
echo "PASS: two peers of one wildcard gateway, parallel pings through both child SAs, r2 survives r1's terminate"
