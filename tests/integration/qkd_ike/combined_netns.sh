#!/bin/bash
# QKD in IKEv2 end to end over real mTLS (issue 16): each site has its own KME, as in production:
# KME_A and SAE_A (qkdgated west) in one network namespace, KME_B and SAE_B (qkdgated east) in the
# other, the KMEs syncing key IDs over the same link (config and PKI from `qkd-kme demo
# --prepare-only`). Proposals "aes256gcm16-prfsha512-ecp521-ke1_mlkem768-ke2_qkd", mode = require.
# Checks: PSK/DH21+MLKEM768+QKD/AES256-GCM16/COMBINED on both sides with the same key_ID, a ping
# through, child rekeys and IKE rekeys (both sides, a fresh QKD key each) with traffic flowing
# (0 lost), every key_ID fetched once per KME, a new IKE SA takes a new key_ID; with KME_B down
# rekeys fail and the old SAs carry the traffic on, a new IKE SA fails with the reason, no SA comes
# up without QKD, the failures show in the Prometheus metrics; KME_B back: the tunnel comes back.
# Usage: combined_netns.sh QKDGATED QKDGATE QKD_KME     (exit 77 = skipped, reason printed)
KME_BIN=${3:?path to qkd-kme}
TEST_TAG=qc$$ . "$(dirname "$0")/../../netns/ike/lib.sh"
IKE="aes256gcm16-prfsha512-ecp521-ke1_mlkem768-ke2_qkd"
ALG="PSK/DH21+MLKEM768+QKD/AES256-GCM16/COMBINED"
ESP="aes256gcm16-ecp521-ke1_mlkem768-ke2_qkd"   # child rekeys with PFS: a fresh QKD key each
netns_up
[ -x "$KME_BIN" ] || skip "qkd-kme not built"
D=$WORK/demo
"$KME_BIN" demo "$D" --prepare-only --log-level warn >/dev/null || fail "qkd-kme demo --prepare-only failed"
pa=$(sed -n 's/^listen = "127.0.0.1:\([0-9]*\)"/\1/p' "$D/kme_a.toml")
pb=$(sed -n 's/^listen = "127.0.0.1:\([0-9]*\)"/\1/p' "$D/kme_b.toml")
# Each KME listens in its own site's namespace; they reach each other over the veth (the peer is
# identified by its certificate's KME ID, not by the address).
sed -i "s|^listen = \"127.0.0.1:$pa\"|listen = \"0.0.0.0:$pa\"|; s|url = \"https://127.0.0.1:$pb\"|url = \"https://$IP_E:$pb\"|" "$D/kme_a.toml"
sed -i "s|^listen = \"127.0.0.1:$pb\"|listen = \"0.0.0.0:$pb\"|; s|url = \"https://127.0.0.1:$pa\"|url = \"https://$IP_W:$pa\"|" "$D/kme_b.toml"
start_kme() {  # start_kme a|b
  local k=$1 ns port
  [ "$k" = a ] && { ns=$NS_W; port=$pa; } || { ns=$NS_E; port=$pb; }
  ip netns exec "$ns" "$KME_BIN" serve -c "$D/kme_$k.toml" >>"$WORK/kme_$k.log" 2>&1 &
  PIDS+=($!)
  eval "KME_PID_$k=$!"
  for _ in $(seq 1 100); do nsx "$ns" bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null && return 0; sleep 0.1; done
  fail "KME_$k did not listen on $port"
}
start_kme a
start_kme b
# The demo's site profiles with absolute paths, appended to each gateway's config.
profile() { sed "s|\"\.\./pki/|\"$D/pki/|g" "$D/site-$1/qkdgate.toml" | sed -n '/^\[\[qkd_profile\]\]/,$p'; }
write_config west 'start_action = "start"' 'qkd = { profile = "kme-a", peer_sae_id = "SAE_B", mode = "require" }'
write_config east 'qkd = { profile = "kme-b", peer_sae_id = "SAE_A", mode = "require" }'
sed -i "s/^tun_name = .*/&\nmetrics_port = 9469/" "$WORK/west/qkdgate.toml"
for s in west east; do
  sed -i "s|^ike_proposals = .*|ike_proposals = \"$IKE\"|; s|^esp_proposals = .*|esp_proposals = \"$ESP\"|" "$WORK/$s/qkdgate.toml"
done
profile a >>"$WORK/west/qkdgate.toml"
profile b >>"$WORK/east/qkdgate.toml"
start_gw east
start_gw west
wait_child west 20 || fail "no child SA on west within 20 s"
wait_child east 5 || fail "no child SA on east"
qg west show ike-sa
qg east show ike-sa
sa_field() { qg "$1" show ike-sa --json | python3 -c "import json,sys; s=[x for x in json.load(sys.stdin) if x['state'].upper()=='ESTABLISHED']; print(eval('s[0]'+sys.argv[1]) if s else '')" "$2"; }
for s in west east; do
  [ "$(sa_field $s '["algorithm"]')" = "$ALG" ] || fail "$s: algorithm is '$(sa_field $s '["algorithm"]')', expected $ALG"
done
kid_w=$(sa_field west '["qkd"]["key_id"]'); kid_e=$(sa_field east '["qkd"]["key_id"]')
log "QKD key_ID west $kid_w east $kid_e, KME RTT west $(sa_field west '["qkd"]["kme_rtt_ms"]') ms east $(sa_field east '["qkd"]["kme_rtt_ms"]') ms"
[[ "$kid_w" =~ ^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$ ]] || fail "west key_ID '$kid_w' is not a UUID"
[ "$kid_w" = "$kid_e" ] || fail "the two sides use different key_IDs"
[ "$(sa_field west '["qkd"]["keys_used"]')" = 1 ] || fail "west: keys_used should be 1"
[ "$(sa_field west '["qkd"]["kme_rtt_ms"]')" != None ] || fail "west: no KME round-trip time"
ping_tunnel 3 || fail "ping through the QKD tunnel failed"
grep -q "QKD key $kid_w from profile \"kme-a\" as master" "$WORK/west/qkdgated.log" || fail "west log lacks the master fetch of $kid_w"
grep -q "QKD key $kid_w from profile \"kme-b\" as slave" "$WORK/east/qkdgated.log" || fail "east log lacks the slave fetch of $kid_w"

# Child rekeys with PFS (CREATE_CHILD_SA + IKE_FOLLOWUP_KE: ML-KEM, then a fresh QKD key) with a
# ping every 20 ms.
nsx "$NS_W" ping -c 150 -i 0.02 -W 1 -I $HOST_W $HOST_E >"$WORK/ping.out" 2>&1 &
pp=$!
for i in 1 2 3; do sleep 0.6; qg west rekey peer >/dev/null || fail "child rekey $i refused"; done
wait $pp
grep -q ' 0% packet loss' "$WORK/ping.out" || fail "packets lost during child rekeys: $(grep loss "$WORK/ping.out")"
calg=$(qg west show child-sa --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["algorithm"])')
[ "$calg" = "AES256-GCM16/DH21+MLKEM768+QKD" ] || fail "child SA algorithm '$calg', expected AES256-GCM16/DH21+MLKEM768+QKD"

# IKE SA rekeys from both sides (CREATE_CHILD_SA + IKE_FOLLOWUP_KE per ADDKE, RFC 9370 2.2.4),
# each taking a fresh QKD key (the rekey's initiator is the master SAE), with a ping every 20 ms.
nsx "$NS_W" ping -c 250 -i 0.02 -W 1 -I $HOST_W $HOST_E >"$WORK/ping2.out" 2>&1 &
pp=$!
for i in 1 2 3 4; do
  sleep 0.8
  if [ $((i % 2)) = 1 ]; then qg west rekey peer --ike >/dev/null || fail "IKE rekey $i (west) refused"
  else qg east rekey peer --ike >/dev/null || fail "IKE rekey $i (east) refused"; fi
done
wait $pp
sleep 0.5
grep -q ' 0% packet loss' "$WORK/ping2.out" || fail "packets lost during IKE rekeys: $(grep loss "$WORK/ping2.out")"
[ "$(sa_field west '["algorithm"]')" = "$ALG" ] || fail "after IKE rekeys west shows '$(sa_field west '["algorithm"]')'"
[ "$(sa_field west '["qkd"]["keys_used"]')" = 5 ] || fail "west: keys_used $(sa_field west '["qkd"]["keys_used"]'), expected 5 after 4 IKE rekeys"
[ "$(sa_field west '["qkd"]["key_id"]')" = "$(sa_field east '["qkd"]["key_id"]')" ] || fail "after IKE rekeys the sides differ in key_ID"
ping_tunnel 2 >/dev/null || fail "ping after IKE rekeys failed"

# A new IKE SA takes a new QKD key (never the same key_ID twice).
qg west terminate peer >/dev/null
sleep 0.5
qg west initiate peer --wait >/dev/null 2>&1 || true
wait_child west 20 || fail "no child SA after re-initiating"
kid2=$(sa_field west '["qkd"]["key_id"]')
[ -n "$kid2" ] && [ "$kid2" != "$kid_w" ] || fail "the new IKE SA reuses key_ID $kid_w (or has none: '$kid2')"
[ "$(sa_field east '["qkd"]["key_id"]')" = "$kid2" ] || fail "east does not use the new key_ID $kid2"

# Every key_ID was fetched exactly twice in all: once as master, once as slave (one per KME).
python3 - "$WORK/west/qkdgated.log" "$WORK/east/qkdgated.log" <<'PY' || fail "key_ID accounting"
import re, sys, collections
seen = collections.defaultdict(list)
for f in sys.argv[1:]:
    for m in re.finditer(r'QKD key ([0-9a-f-]{36}) from profile "(kme-[ab])" as (master|slave)', open(f).read()):
        seen[m.group(1)].append((m.group(2), m.group(3)))
bad = {k: v for k, v in seen.items() if sorted(r for _, r in v) != ["master", "slave"] or len({p for p, _ in v}) != 2}
print(f"{len(seen)} QKD keys, each fetched once as master and once as slave, one on each KME" if not bad else f"bad: {bad}")
sys.exit(1 if bad or len(seen) < 9 else 0)  # 1 + 3 child rekeys + 4 IKE rekeys + 1 new IKE SA
PY

# show qkd: the profile's key counters from the running daemon (master on west, slave on east).
nsx "$NS_W" "$QKDGATE" -c "$WORK/west/qkdgate.toml" show qkd | grep "QKD keys" || fail "show qkd has no key counters"
cnt() { nsx "$(ns_of "$1")" "$QKDGATE" -c "$WORK/$1/qkdgate.toml" show qkd --json | python3 -c "import json,sys; c=json.load(sys.stdin)['profiles'][0]['counters']; print(c['keys_master'] + c['keys_slave'])"; }
[ "$(cnt west)" -ge 9 ] && [ "$(cnt east)" -ge 9 ] || fail "show qkd counts $(cnt west) keys on west, $(cnt east) on east; expected >= 9 each"

# KME_B down (mode = require): the tunnel in place lives on (its keys are set), a new IKE SA gets
# no QKD key and does not come up. KME_A cannot reserve the key on KME_B and answers 503, so the
# initiator's round fails: the reason (with the KME's ETSI message) is in west's log and show ike-sa.
kill "$KME_PID_b"; wait "$KME_PID_b" 2>/dev/null
ping_tunnel 2 >/dev/null || fail "the existing tunnel must live on while KME_B is down"
# An IKE rekey and a PFS child rekey now get no QKD key: neither replaces its SA; the old ones
# (with their QKD keys) carry the traffic on.
kid_before=$(sa_field west '["qkd"]["key_id"]')
cspi_before=$(child_spis west)
qg west rekey peer --ike >/dev/null || fail "rekey --ike refused"
sleep 3
qg west rekey peer >/dev/null || fail "rekey refused"
sleep 3
[ "$(sa_field west '["qkd"]["key_id"]')" = "$kid_before" ] || fail "the IKE SA changed without a QKD key"
[ "$(child_spis west)" = "$cspi_before" ] || fail "the child SA was replaced without a QKD key"
n=$(grep -c 'QKD key from profile "kme-a" (kme_refused).*no SA or rekey without a QKD key' "$WORK/west/qkdgated.log")
[ "$n" -ge 2 ] || fail "west logs $n failed QKD fetches for the two rekeys, expected 2"
ping_tunnel 2 >/dev/null || fail "the old SAs must carry traffic after failed rekeys"
# Prometheus: the QKD keys and the KME failures, per profile.
m=$(nsx "$NS_W" curl -s --max-time 5 "http://127.0.0.1:9469/metrics") || fail "no metrics from west"
echo "$m" | grep -E '^qkdgate_qkd_(keys|failures)_total\{profile="kme-a",(role="master"|kind="kme_refused")\}'
[ "$(echo "$m" | sed -n 's/^qkdgate_qkd_keys_total{profile="kme-a",role="master"} //p')" -ge 5 ] || fail "metrics: too few master keys"
[ "$(echo "$m" | sed -n 's/^qkdgate_qkd_failures_total{profile="kme-a",kind="kme_refused"} //p')" -ge 2 ] || fail "metrics: KME failures not counted"
qg west terminate peer >/dev/null
sleep 0.5
qg west initiate peer >/dev/null 2>&1 || true
sleep 4
grep -q 'IKE_INTERMEDIATE round 2 (ADDKE2 QKD): no QKD key: QKD key from profile "kme-a"' "$WORK/west/qkdgated.log" ||
  fail "west does not log why the IKE SA failed"
grep -q 'peer KME KME_B did not confirm the key reservation' "$WORK/west/qkdgated.log" || fail "west's log lacks the KME's ETSI message"
n=$(qg west show ike-sa --json | python3 -c 'import json,sys; print(sum(1 for x in json.load(sys.stdin) if x["state"].upper()=="ESTABLISHED"))')
[ "$n" = 0 ] || fail "an IKE SA came up without a QKD key while KME_B was down"
if ping_tunnel 1 >/dev/null 2>&1; then fail "traffic flows without a QKD-keyed SA"; fi
qg west show ike-sa
# KME_B back: the permanent tunnel comes up again by itself, with a fresh QKD key.
start_kme b
qg west initiate peer >/dev/null 2>&1 || true
wait_child west 40 || fail "no tunnel within 40 s after KME_B came back"
kid3=$(sa_field west '["qkd"]["key_id"]')
[ -n "$kid3" ] && [ "$kid3" != "$kid2" ] || fail "after KME_B came back: key_ID '$kid3'"
ping_tunnel 2 >/dev/null || fail "ping after KME_B came back failed"
echo "PASS: COMBINED both sides (same key_ID), ping, child rekeys and IKE rekeys (fresh QKD key each) 0 lost, every key_ID once per KME, new key_ID per IKE SA, KME_B down -> rekeys and new SAs fail, old SAs live (require), metrics; KME_B back -> tunnel back"
