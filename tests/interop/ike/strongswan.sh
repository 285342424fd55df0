#!/bin/bash
# Interop with strongSwan 5.9.8 (Debian 12): PSK + aes256gcm16-prfsha512-ecp521, ESP aes256gcm16,
# ESP in UDP (kernel-libipsec on the strongSwan side, userspace ESP on ours), ping through it.
#   strongswan.sh QKDGATED QKDGATE we-initiate | they-initiate
TEST_TAG=ss${3:0:2}$$ . "$(dirname "$0")/../../netns/ike/lib.sh" "$1" "$2"
. "$(dirname "$0")/swan.sh"
mode=${3:?we-initiate|they-initiate}
require_env
require_swan
netns_up
write_config west
start_swan
start_gw west
trap 'rc=$?; [ $rc -ne 0 ] && [ $rc -ne 77 ] && swan_log_tail; cleanup' EXIT
if [ "$mode" = we-initiate ]; then
  qg west initiate peer || fail "initiate refused"
  wait_child west 20 || { swan_log_tail; fail "no child SA on qkdgated within 20 s"; }
else
  swc --initiate --child net --timeout 20 || { swan_log_tail; fail "swanctl --initiate failed"; }
  wait_child west 5 || fail "qkdgated shows no child SA after strongSwan's initiate"
fi
swc --list-sas
qg west show ike-sa
qg west show child-sa
swc --list-sas | grep -q 'ESTABLISHED' || fail "strongSwan shows no established IKE SA"
swc --list-sas | grep -q 'INSTALLED' || fail "strongSwan shows no installed CHILD SA"
swc --list-sas | grep -q 'AES_GCM_16-256/PRF_HMAC_SHA2_512/ECP_521' || fail "strongSwan did not negotiate AES_GCM_16-256/PRF_HMAC_SHA2_512/ECP_521"
# The two sides agree on the SPIs (strongSwan prints them as spi_i_spi_r in hex).
ike_w=$(ike_spis west | tr -d '/')
swc --list-sas | grep -q "${ike_w:0:16}" || fail "IKE SPIs of qkdgated ($ike_w) not found in strongSwan's list"
# Wait for kernel-libipsec's route (table 220) before pinging.
for _ in $(seq 1 30); do nsx "$NS_E" ip route show table 220 | grep -q "$NET_W" && break; sleep 0.1; done
ping_tunnel 3 || fail "ping through the tunnel (qkdgated userspace ESP <-> strongSwan kernel-libipsec) failed"
swc --list-sas | grep -E ' (in|out) '
echo "PASS: strongSwan interop ($mode): IKE SA, CHILD SA, ping through the tunnel"
