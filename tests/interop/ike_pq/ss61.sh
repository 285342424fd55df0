#!/bin/bash
# Interop with strongSwan 6.1 (Debian "forky" root, see build-root.sh and ss6.sh): qkdgated west,
# charon east, PSK, both directions; every scenario ends with both ends' SAs compared (algorithms,
# SPIs) and a ping through the tunnel (our userspace ESP <-> its kernel-libipsec, ESP in UDP/4500).
#   ss61.sh QKDGATED QKDGATE SCENARIO
#   classic-we | classic-they   aes256gcm16-prfsha512-ecp521, ESP aes256gcm16; we / they initiate
# Exit 77 (skipped, reason printed) without root, namespaces or the strongSwan 6.1 root.
TEST_TAG=s6${3:0:4}${3: -2}$$ . "$(dirname "$0")/../../netns/ike/lib.sh" "$1" "$2"
. "$(dirname "$0")/ss6.sh"
sc=${3:?scenario}
require_env
require_ss6
netns_up
case $sc in
  classic-we|classic-they)
    write_config west
    SWAN_IKE=aes256gcm16-prfsha512-ecp521 SWAN_ESP=aes256gcm16
    swan_ike_re='AES_GCM_16-256/PRF_HMAC_SHA2_512/ECP_521$' ours_alg='PSK/DH21/AES256-GCM16';;
  *) fail "unknown scenario $sc";;
esac
mode=we-initiate
[[ $sc == *-they ]] && mode=they-initiate
start_swan
start_gw west
trap 'rc=$?; [ $rc -ne 0 ] && [ $rc -ne 77 ] && swan_log_tail; cleanup' EXIT
log "scenario $sc: $(swan_version) ($(grep -m1 '^openssl ' "$SS6_ROOT/pq-peers-versions.txt")), qkdgated ${mode}s"
swan_establish $mode
swc --list-sas
qg west show ike-sa
qg west show child-sa
swan_expect_sa 'ESTABLISHED' "no established IKE SA"
swan_expect_sa 'INSTALLED' "no installed CHILD SA"
# The IKE SA line under the connection name, e.g. "  AES_GCM_16-256/PRF_HMAC_SHA2_512/ECP_521"
swan_expect_sa "^ +${swan_ike_re}" "IKE SA algorithms"
alg=$(our_json ike-sa 's[0]["algorithm"]')
[ "$alg" = "$ours_alg" ] || fail "qkdgated shows its IKE SA as '$alg', expected '$ours_alg'"
swan_check_spis
swan_ping
echo "PASS: strongSwan 6.1 interop $sc: IKE SA $alg, child SA, ping through"
