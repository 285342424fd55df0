#!/bin/bash
# Records the key schedule of strongSwan 6.1 <-> 6.1 (PQ_IKELOG=4: every derived key in the log)
# for the known-answer vectors in this folder: one IKE SA with aes256gcm16-prfsha512-ecp521-
# ke1_mlkem768 (IKE_SA_INIT with ECP-521, one IKE_INTERMEDIATE with ML-KEM-768, IKE_AUTH with
# PSK), then an IKE SA rekey (CREATE_CHILD_SA with ECP-521 + IKE_FOLLOWUP_KE with ML-KEM-768).
# Both charons run from the root of tests/interop/ike_pq/build-root.sh in two namespaces.
#   capture-strongswan61.sh OUTDIR [IKE_PROPOSAL]   (default aes256gcm16-prfsha512-ecp521-ke1_mlkem768)
#     -> OUTDIR/west.log (the initiator's key log), east.log, list-sas-*.txt, provenance.txt
# The CHILD SA is rekeyed first (PFS: the same key exchanges as the IKE proposal), then the IKE SA.
# Then: extract_vectors.py OUTDIR... > strongswan61_addke.json   (needs root; not a ctest test)
set -u
out=${1:?usage: capture-strongswan61.sh OUTDIR [IKE_PROPOSAL]}
PROP=${2:-aes256gcm16-prfsha512-ecp521-ke1_mlkem768}
ESP=aes256gcm16-${PROP#aes256gcm16-prfsha512-}
here=$(cd "$(dirname "$0")" && pwd)
TEST_TAG=kat$$ . "$here/../../netns/ike/lib.sh" /bin/true /bin/true
. "$here/../../interop/ike_pq/ss6.sh"
require_env
require_ss6
netns_up
mkdir -p "$out"
conf() {  # conf SIDE LOCAL REMOTE LID RID LNET RNET
  local d=$WORK/$1
  mkdir -p "$d/swanctl"
  cat > "$d/strongswan.conf" <<EOT
charon {
  load = random nonce openssl pem pkcs1 pkcs8 x509 pubkey revocation constraints kdf gmp curve25519 hmac gcm aes sha1 sha2 kernel-libipsec kernel-netlink socket-default updown vici
  install_routes = yes
  plugins { vici { socket = unix:///run/pq/charon.vici } }
  filelog { k { path = /run/pq/charon.log
                time_format = %H:%M:%S
                default = ${KAT_LOG:-1}
                ike = 4
                enc = ${KAT_ENCLOG:-1}
                chd = 4
                flush_line = yes } }
  syslog { daemon { default = -1 } }
}
charon-systemd { journal { default = -1 } }
EOT
  cat > "$d/swanctl/swanctl.conf" <<EOT
connections { kat { version = 2
  local_addrs = $2
  remote_addrs = $3
  proposals = $PROP
  encap = yes
  dpd_delay = 0
  local { auth = psk
          id = $4 }
  remote { auth = psk
           id = $5 }
  children { kat { local_ts = $6
                   remote_ts = $7
                   esp_proposals = $ESP
                   start_action = none } } } }
secrets { ike-kat { id-w = west.kat.test
                    id-e = east.kat.test
                    secret = "${KAT_PSK:-qkdgate-kat-psk-not-secret-0123456789}" } }
EOT
}
conf west $IP_W $IP_E west.kat.test east.kat.test $NET_W $NET_E
conf east $IP_E $IP_W east.kat.test west.kat.test $NET_E $NET_W
ss6_launch "$NS_E" "$WORK/east"; E=$SS6_PID
ss6_launch "$NS_W" "$WORK/west"; W=$SS6_PID
ss6_swanctl $E --load-all >/dev/null || fail "load-all east"
ss6_swanctl $W --load-all >/dev/null || fail "load-all west"
ss6_swanctl $W --initiate --child kat --timeout 20 > "$WORK/initiate.out" 2>&1 || { cat "$WORK/initiate.out"; fail "initiate"; }
ss6_swanctl $W --list-sas > "$out/list-sas-1.txt"
# CHILD SA rekey with PFS: CREATE_CHILD_SA (ECP-521) + IKE_FOLLOWUP_KE (ML-KEM-768)
ss6_swanctl $W --rekey --child kat > "$WORK/rekey-child.out" 2>&1 || { cat "$WORK/rekey-child.out"; fail "rekey child"; }
for _ in $(seq 1 100); do grep -q 'CHILD_SA kat{2} established' "$WORK/east/charon.log" && break; sleep 0.1; done
sleep 0.3
ss6_swanctl $W --rekey --ike kat > "$WORK/rekey.out" 2>&1 || { cat "$WORK/rekey.out"; fail "rekey"; }
# --rekey is asynchronous: wait until the old IKE SA is gone on both sides
for _ in $(seq 1 100); do grep -q 'IKE_SA kat\[1\] state change: DELETING => DESTROYING' "$WORK/east/charon.log" && break; sleep 0.1; done
ss6_swanctl $W --list-sas > "$out/list-sas-2.txt"
cat "$out/list-sas-2.txt"
cp "$WORK/west/charon.log" "$out/west.log"
cp "$WORK/east/charon.log" "$out/east.log"
{ echo "proposal $PROP, esp_proposals $ESP (PFS on the CHILD SA rekey), PSK, charon filelog ike = 4, chd = 4"
  echo "command: tests/kat/ike/capture-strongswan61.sh OUTDIR $PROP (strongSwan 6.1 <-> 6.1 in two network namespaces)"
  echo "captured $(date -u +%FT%TZ)"; grep -v '^#' "$SS6_ROOT/pq-peers-versions.txt" | grep -E '^(debian_version|charon-systemd|libstrongswan |openssl|libssl)'; } > "$out/provenance.txt"
echo "logs in $out"
