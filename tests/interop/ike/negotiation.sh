#!/bin/bash
# Negotiation regression tests against a real strongSwan (issue 15's defects), qkdgated west
# initiating, strongSwan east responding, PSK; each ends with the SAs of both ends compared and a
# ping through the tunnel (qkdgated userspace ESP <-> strongSwan kernel-libipsec, ESP in UDP).
#   negotiation.sh QKDGATED QKDGATE SCENARIO [ss5|ss6]   (ss5 = the host's 5.9.8, ss6 = 6.1 root)
#   ike-second  we offer "aes256gcm16-prfsha512-ecp521,aes128gcm16-prfsha256-ecp521", strongSwan
#               allows only the second: its IKE_SA_INIT answer carries proposal number 2
#               (RFC 7296 3.3.1 keeps the number), which we must accept
#   ke-second   we offer "...-ecp521,...-ecp384", strongSwan allows only ECP-384: it answers
#               INVALID_KE_PAYLOAD (RFC 7296 1.2), we retry with an ECP-384 KE, and it picks #2
#   esp-second  esp_proposals "aes256gcm16,aes128gcm16", strongSwan allows only aes128gcm16: it
#               picks our ESP proposal 2 in IKE_AUTH; the child SA we install must be the one it
#               holds (same SPIs, AES-GCM-128, ping through)
#   ts33        33 local selectors (the config allows 64): strongSwan narrows each within its
#               10.98.0.0/16 and echoes all 33 in TSi (RFC 7296 2.9)
#   ts33-they   the same selectors, strongSwan initiating: we narrow its 10.98.0.0/16 into 33 TSr
TEST_TAG=ng${3:0:3}$$ . "$(dirname "$0")/../../netns/ike/lib.sh" "$1" "$2"
sc=${3:?scenario: ike-second ke-second esp-second ts33 ts33-they}
impl=${4:-ss5}
if [ "$impl" = ss6 ]; then . "$(dirname "$0")/../ike_pq/ss6.sh"; else . "$(dirname "$0")/swan.sh"; fi
require_env
if [ "$impl" = ss6 ]; then require_ss6; else require_swan; fi
netns_up
mode=we-initiate
ts33_list() {  # 10.98.1.0/24 (behind west, holds HOST_W) and 32 more /24 inside 10.98.0.0/16
  printf '"%s"' "$NET_W"; for i in $(seq 64 95); do printf ', "10.98.%d.0/24"' "$i"; done
}
case $sc in
  ike-second)
    write_config west
    sed -i 's|^ike_proposals = .*|ike_proposals = "aes256gcm16-prfsha512-ecp521,aes128gcm16-prfsha256-ecp521"|' "$WORK/west/qkdgate.toml"
    SWAN_IKE=aes128gcm16-prfsha256-ecp521
    swan_re='AES_GCM_16-128/PRF_HMAC_SHA2_256/ECP_521' ours_re='DH21/AES128-GCM16';;
  ke-second)
    write_config west
    sed -i 's|^ike_proposals = .*|ike_proposals = "aes256gcm16-prfsha512-ecp521,aes256gcm16-prfsha512-ecp384"|' "$WORK/west/qkdgate.toml"
    SWAN_IKE=aes256gcm16-prfsha512-ecp384
    swan_re='AES_GCM_16-256/PRF_HMAC_SHA2_512/ECP_384' ours_re='DH20/AES256-GCM16';;
  esp-second)
    QKDGT_ESP="aes256gcm16,aes128gcm16" write_config west
    SWAN_ESP=aes128gcm16
    swan_re='ESP:AES_GCM_16-128' ours_re='AES_?128';;
  ts33|ts33-they)
    write_config west
    sed -i "s|^local_ts = .*|local_ts = [$(ts33_list)]|" "$WORK/west/qkdgate.toml"
    SWAN_RTS=10.98.0.0/16
    [ $sc = ts33-they ] && mode=they-initiate
    swan_re='AES_GCM_16-256/PRF_HMAC_SHA2_512/ECP_521' ours_re='DH21/AES256-GCM16';;
  *) fail "unknown scenario $sc";;
esac
SWAN_CFGLOG=2 start_swan
start_gw west
trap 'rc=$?; [ $rc -ne 0 ] && [ $rc -ne 77 ] && swan_log_tail; cleanup' EXIT
log "scenario $sc, peer $( [ "$impl" = ss6 ] && swan_version || echo 'strongSwan 5.9.8 (host)'), qkdgated ${mode}s"
swan_establish $mode
swc --list-sas
qg west show ike-sa
qg west show child-sa
swan_expect_sa 'ESTABLISHED' "no established IKE SA"
swan_expect_sa 'INSTALLED' "no installed CHILD SA"
swan_expect_sa "$swan_re" "expected $swan_re"
case $sc in
  ike-second|ke-second)
    alg=$(our_json ike-sa 's[0]["algorithm"]')
    echo "$alg" | grep -qE "$ours_re" || fail "qkdgated's IKE SA is $alg, expected $ours_re";;
  esp-second)
    alg=$(our_json child-sa 's[0]["algorithm"]')
    echo "$alg" | grep -qiE "$ours_re" || fail "qkdgated's child SA is $alg, expected $ours_re";;
esac
if [ $sc = ke-second ]; then
  grep -qE 'INVALID_KE_PAYLOAD|requesting ECP_384' "$WORK/swan/charon.log" \
    || fail "strongSwan did not ask for ECP_384 with INVALID_KE_PAYLOAD (the test would not cover the retry)"
  grep -E 'INVALID_KE_PAYLOAD|requesting ECP_384' "$WORK/swan/charon.log" | head -2
fi
if [[ $sc == ts33* ]]; then
  n_swan=$(awk '$1=="remote" && $2 ~ /^[0-9]/ {print NF-1}' "$WORK/swan/sas.out" | head -1)
  n_ours=$(our_json child-sa 'len(s[0]["local_ts"])')
  [ "$n_swan" = 33 ] && [ "$n_ours" = 33 ] \
    || fail "expected 33 selectors on both ends, strongSwan has $n_swan remote, qkdgated $n_ours local"
  log "33 selectors on both ends"
fi
swan_check_spis
swan_ping
echo "PASS: negotiation $sc against $impl: IKE SA + child SA agreed on both ends, ping through"
