#!/bin/bash
# Interop with strongSwan 6.1 (Debian "forky" root, see build-root.sh and ss6.sh) and, for the
# legacy cases, the host's strongSwan 5.9.8: qkdgated west, charon east, PSK. Every scenario that
# should come up ends with both ends' SAs compared (algorithms, IKE and child SPIs) and a ping
# through the tunnel (our userspace ESP <-> its kernel-libipsec, ESP in UDP/4500); every scenario
# that should fail checks that it fails cleanly (NO_PROPOSAL_CHOSEN, no SA on either end, our
# daemon still answering).
#   interop.sh QKDGATED QKDGATE SCENARIO-we|SCENARIO-they   (-we: qkdgated initiates)
#   classic      aes256gcm16-prfsha512-ecp521 both
#   pq           ecp521-ke1_mlkem768 (IKE_SA_INIT ECP-521, one IKE_INTERMEDIATE ML-KEM-768)
#   pq2          x25519-ke1_mlkem768-ke2_mlkem1024 (two IKE_INTERMEDIATE)
#   mlkem        mlkem768 alone (in IKE_SA_INIT)
#   rekey        pq, ESP with PFS ecp521-ke1_mlkem768; the OTHER side then rekeys the IKE SA and
#                the child SA (CREATE_CHILD_SA + IKE_FOLLOWUP_KE), checked and pinged after each
#   ke1none      we allow ecp521-ke1_mlkem768-ke1_none, the peer offers no ADDKE: classical SA
#   require      we require ke1_mlkem768, the peer offers no ADDKE: NO_PROPOSAL_CHOSEN
#   mismatch     classical, no common proposal (aes128gcm16-prfsha256-ecp256 on the peer): NO_PROPOSAL_CHOSEN
#   ss5-require  strongSwan 5.9.8 (no RFC 9370) vs our required ML-KEM: NO_PROPOSAL_CHOSEN
#   ss5-optional strongSwan 5.9.8 vs ours "ecp521-ke1_mlkem768,ecp521": classical SA
# Exit 77 (skipped, reason printed) without root, namespaces or the peer.
sc=${3:?scenario}
TEST_TAG=pq$(echo "$sc" | tr -dc 'a-z0-9' | cut -c1-8)$$ . "$(dirname "$0")/../../netns/ike/lib.sh" "$1" "$2"
case $sc in
  ss5-*) . "$(dirname "$0")/../ike/swan.sh";;
  *) . "$(dirname "$0")/ss6.sh";;
esac
require_env
case $sc in ss5-*) require_swan;; *) require_ss6;; esac
netns_up
mode=we-initiate
[[ $sc == *-they ]] && mode=they-initiate
base=${sc%-we}; base=${base%-they}
C=aes256gcm16-prfsha512
ours_ike=$C-ecp521 ours_esp=aes256gcm16 SWAN_IKE=$C-ecp521 SWAN_ESP=aes256gcm16 expect=up rekey=0
swan_re='AES_GCM_16-256/PRF_HMAC_SHA2_512/ECP_521' ours_re='PSK/DH21/AES256-GCM16'
case $base in
  classic) ;;
  pq) ours_ike=$C-ecp521-ke1_mlkem768 SWAN_IKE=$ours_ike
      swan_re+='/KE1_ML_KEM_768' ours_re='PSK/DH21\+MLKEM768/AES256-GCM16';;
  pq2) ours_ike=$C-x25519-ke1_mlkem768-ke2_mlkem1024 SWAN_IKE=$ours_ike
       swan_re='AES_GCM_16-256/PRF_HMAC_SHA2_512/CURVE_25519/KE1_ML_KEM_768/KE2_ML_KEM_1024'
       ours_re='PSK/(DH31|X25519|CURVE25519)\+MLKEM768\+MLKEM1024/AES256-GCM16';;
  mlkem) ours_ike=$C-mlkem768 SWAN_IKE=$ours_ike
         swan_re='AES_GCM_16-256/PRF_HMAC_SHA2_512/ML_KEM_768' ours_re='PSK/MLKEM768/AES256-GCM16';;
  rekey) ours_ike=$C-ecp521-ke1_mlkem768 SWAN_IKE=$ours_ike ours_esp=aes256gcm16-ecp521-ke1_mlkem768 SWAN_ESP=$ours_esp rekey=1
         swan_re+='/KE1_ML_KEM_768' ours_re='PSK/DH21\+MLKEM768/AES256-GCM16';;
  ke1none) ours_ike=$C-ecp521-ke1_mlkem768-ke1_none;;
  require) ours_ike=$C-ecp521-ke1_mlkem768 expect=nopc;;
  mismatch) SWAN_IKE=aes128gcm16-prfsha256-ecp256 expect=nopc;;
  ss5-require) ours_ike=$C-ecp521-ke1_mlkem768 expect=nopc;;
  ss5-optional) ours_ike=$C-ecp521-ke1_mlkem768,$C-ecp521;;
  *) fail "unknown scenario $sc";;
esac
write_config west
sed -i -e "s|^ike_proposals = .*|ike_proposals = \"$ours_ike\"|" -e "s|^esp_proposals = .*|esp_proposals = \"$ours_esp\"|" "$WORK/west/qkdgate.toml"
SWAN_CFGLOG=2 start_swan
start_gw west
trap 'rc=$?; [ $rc -ne 0 ] && [ $rc -ne 77 ] && swan_log_tail; cleanup' EXIT
peer=$( [[ $sc == ss5-* ]] && echo "strongSwan 5.9.8 (host)" || swan_version)
log "scenario $sc: qkdgated $ours_ike / $ours_esp, $peer $SWAN_IKE / $SWAN_ESP; qkdgated ${mode}s"

if [ $expect = nopc ]; then
  # Fails cleanly: NO_PROPOSAL_CHOSEN, said by the responder and seen by the initiator, no SA left.
  if [ $mode = we-initiate ]; then
    qg west initiate peer || fail "initiate refused"
  else
    swc --initiate --child net --timeout 10 >"$WORK/swan/initiate.out" 2>&1 && fail "strongSwan's initiate succeeded"
  fi
  # we initiate: strongSwan answers N(NO_PROP) and our log says why the SA failed; they initiate:
  # strongSwan receives NO_PROPOSAL_CHOSEN from us (our responder keeps no state for it).
  if [ $mode = we-initiate ]; then
    for _ in $(seq 1 50); do grep -qi 'no_proposal_chosen' "$WORK/west/qkdgated.log" && break; sleep 0.2; done
    grep -E 'N\(NO_PROP\)|no acceptable|received proposals|configured proposals' "$WORK/swan/charon.log" | head -4
    grep -iE 'no_proposal_chosen' "$WORK/west/qkdgated.log" | head -2
    grep -q 'N(NO_PROP)' "$WORK/swan/charon.log" || fail "strongSwan did not answer NO_PROPOSAL_CHOSEN"
    grep -qi 'no_proposal_chosen' "$WORK/west/qkdgated.log" || fail "qkdgated's log does not say the peer answered NO_PROPOSAL_CHOSEN"
  else
    grep -E 'NO_PROPOSAL_CHOSEN|N\(NO_PROP\)' "$WORK/swan/charon.log" | head -3
    grep -q 'received NO_PROPOSAL_CHOSEN notify error' "$WORK/swan/charon.log" || fail "strongSwan did not receive NO_PROPOSAL_CHOSEN from qkdgated"
  fi
  # No established SA; a gateway that initiates may show its next attempt (state CONNECTING, a note
  # with the reason), which is how qkdgated keeps a tunnel up.
  qg west show ike-sa
  [ -z "$(ike_spis west)" ] || fail "qkdgated holds an established IKE SA"
  swc --list-sas | grep -q ESTABLISHED && fail "strongSwan shows an established IKE SA"
  echo "PASS: $sc: NO_PROPOSAL_CHOSEN on both ends, no SA, qkdgated still answering"
  exit 0
fi

check_up() {  # check_up WHAT: both ends hold the same SAs with the expected algorithms; ping
  swc --list-sas
  qg west show ike-sa
  qg west show child-sa
  swan_expect_sa 'ESTABLISHED' "no established IKE SA ($1)"
  swan_expect_sa 'INSTALLED' "no installed CHILD SA ($1)"
  swan_expect_sa "^ +${swan_re}\$" "IKE SA algorithms ($1)"
  local alg; alg=$(our_json ike-sa 's[0]["algorithm"]')
  echo "$alg" | grep -qxE "$ours_re" || fail "qkdgated shows its IKE SA as '$alg', expected '$ours_re' ($1)"
  swan_check_spis 5
  swan_ping
  log "$1: IKE SA $alg, child SA, ping through"
}
swan_establish $mode
check_up "after $mode"
if [ $rekey = 1 ]; then
  child_re='ESP:AES_GCM_16-256/ECP_521/KE1_ML_KEM_768'
  old_ike=$(ike_spis west)
  if [ $mode = we-initiate ]; then swc --rekey --ike peer >/dev/null || fail "strongSwan's IKE rekey refused"
  else qg west rekey peer --ike || fail "qkdgated's IKE rekey refused"; fi
  for _ in $(seq 1 50); do n=$(ike_spis west); [ -n "$n" ] && [ "$n" != "$old_ike" ] && [ "$(echo "$n" | wc -w)" = 1 ] && break; sleep 0.2; done
  [ "$(ike_spis west)" != "$old_ike" ] || fail "the IKE SA was not rekeyed (still $old_ike)"
  grep -q 'IKE_FOLLOWUP_KE' "$WORK/swan/charon.log" || fail "strongSwan's log shows no IKE_FOLLOWUP_KE for the IKE rekey"
  check_up "after the IKE rekey (IKE_FOLLOWUP_KE)"
  old_child=$(child_spis west)
  if [ $mode = we-initiate ]; then swc --rekey --child net >/dev/null || fail "strongSwan's child rekey refused"
  else qg west rekey peer || fail "qkdgated's child rekey refused"; fi
  for _ in $(seq 1 50); do n=$(child_spis west); [ -n "$n" ] && [ "$n" != "$old_child" ] && [ "$(echo "$n" | wc -w)" = 1 ] && break; sleep 0.2; done
  [ "$(child_spis west)" != "$old_child" ] || fail "the child SA was not rekeyed (still $old_child)"
  swan_expect_sa "INSTALLED, TUNNEL-in-UDP, ${child_re}\$" "rekeyed child SA with PFS ECP-521 + ML-KEM-768"
  alg=$(our_json child-sa 's[0]["algorithm"]')
  [ "$alg" = 'AES256-GCM16/DH21+MLKEM768' ] || fail "qkdgated shows the rekeyed child SA as '$alg', expected AES256-GCM16/DH21+MLKEM768"
  check_up "after the child rekey with PFS (IKE_FOLLOWUP_KE)"
fi
echo "PASS: $sc against $peer"
