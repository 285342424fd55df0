#!/bin/bash
# Live reload (`qkdgate reload`, SIGHUP). West has gateways keep, gone and change; the new config
# drops gone, changes change (ike_lifetime) and adds new. keep must not notice: same IKE SA, and a
# 20 pps ping through it during the reload loses no packet. gone's SA is deleted on both sides,
# change gets a new IKE SA, new comes up. Then a broken config (by the CLI and by SIGHUP) is
# refused and changes nothing.
TEST_TAG=kd$$ . "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/keep_lib.sh"
netns_up
keep_hosts 4
S='start_action = "start"'
keep_config west "keep:1:$S" "gone:2:$S" "change:3:$S"
keep_config east keep:1 gone:2 change:3 new:4
keep_start east
keep_start west
for g in keep gone change; do wait_established west $g 15 || fail "$g not up"; done
for i in 1 2 3; do wait_ping $i 10 >/dev/null || fail "no ping through gateway $i"; done
keep_before=$(established_spis west keep)
change_before=$(established_spis west change)

# 200 pings at 20 pps through keep (10 s), the reload in the middle.
ping_gw 1 200 0.05 > "$WORK/ping.txt" 2>&1 &
pinger=$!
sleep 3
keep_config west "keep:1:$S" "change:3:$S\nike_lifetime = \"2h\"" "new:4:$S"
out=$(qg west reload) || fail "reload refused: $out"
log "reload: $out"
echo "$out" | grep -q '1 added, 1 removed, 1 changed, 0 retuned, 1 unchanged' || fail "unexpected reload summary: $out"
wait_established west new 15 || fail "the added gateway did not come up"
wait_established west change 15 || fail "the changed gateway did not come back"
[ "$(established_spis west change)" != "$change_before" ] || fail "the changed gateway kept its IKE SA"
for _ in $(seq 1 25); do [ -z "$(gw_state east gone)" ] && break; sleep 0.2; done
[ -z "$(gw_state east gone)" ] || fail "east still has the removed gateway's IKE SA (no DELETE?)"
[ -z "$(gw_state west gone)" ] || fail "west still lists the removed gateway"
wait_ping 4 10 >/dev/null || fail "no ping through the added gateway"
wait_ping 3 10 >/dev/null || fail "no ping through the changed gateway"
wait $pinger
cat "$WORK/ping.txt" | tail -3
grep -q '200 packets transmitted, 200 received' "$WORK/ping.txt" || fail "the untouched gateway lost packets during the reload"
[ "$(established_spis west keep)" = "$keep_before" ] || fail "the untouched gateway's IKE SA changed"

# A broken config: refused, by the CLI and by SIGHUP; nothing changes.
cp "$WORK/west/qkdgate.toml" "$WORK/good.toml"
all_before=$(qg west show ike-sa --json | python3 -c 'import json,sys; print(sorted(s["spi_i"] for s in json.load(sys.stdin)))')
printf '[[gateway]]\nname = "broken"\nlocal_address = "10.99.0.1"\n' >> "$WORK/west/qkdgate.toml"
if out=$(qg west reload 2>&1); then fail "a broken config was accepted: $out"; fi
log "broken config: $out"
echo "$out" | grep -q 'reload refused, the running config stays: .*remote_address' || fail "the refusal does not say what is wrong: $out"
kill -HUP "${GWPID[west]}"
sleep 1
kill -0 "${GWPID[west]}" || fail "SIGHUP with a broken config stopped the daemon"
[ "$(grep -c 'reload of .* refused' "$WORK/west/qkdgated.log")" -ge 2 ] || fail "the SIGHUP refusal is not in the log"
all_after=$(qg west show ike-sa --json | python3 -c 'import json,sys; print(sorted(s["spi_i"] for s in json.load(sys.stdin)))')
[ "$all_before" = "$all_after" ] || fail "the IKE SAs changed after a refused reload ($all_before -> $all_after)"
cp "$WORK/good.toml" "$WORK/west/qkdgate.toml"
kill -HUP "${GWPID[west]}"
for _ in $(seq 1 20); do grep -q '0 added, 0 removed, 0 changed, 0 retuned, 3 unchanged' "$WORK/west/qkdgated.log" && break; sleep 0.1; done
grep -q '0 added, 0 removed, 0 changed, 0 retuned, 3 unchanged' "$WORK/west/qkdgated.log" || fail "SIGHUP with the good config did not reload"
wait_ping 1 5 >/dev/null || fail "no ping through keep at the end"
echo "PASS: reload: added, removed, changed re-established, untouched gateway lost 0 of 200 packets; broken config refused"
