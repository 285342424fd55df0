#!/bin/bash
# The two-site QKD demo on one machine (issue 16): two network namespaces, one per site, each with
# its own KME (qkd-kme, config and test PKI from `qkd-kme demo --prepare-only`) and its own
# qkdgated (the site's SAE). The KMEs share an emulated QKD link over the sites' link; the IKE SA
# between the gateways is keyed from ECDH P-521 + ML-KEM-768 + a QKD key:
#   aes256gcm16-prfsha512-ecp521-ke1_mlkem768-ke2_qkd  ->  PSK/DH21+MLKEM768+QKD/AES256-GCM16/COMBINED
# Site A initiates: it gets a key from KME_A (ETSI 014 Get key) and sends only its key_ID; site B
# fetches the same key from KME_B by that ID. The IKE SA and the child SA are rekeyed about every
# 60 s, each time with a fresh QKD key (watch the key_ID change). Nothing leaves the machine.
#   sudo packaging/qkd-demo.sh up [BINDIR]     (default BINDIR: build/release/bin)
#   sudo packaging/qkd-demo.sh watch           (show ike-sa on both sides every 10 s, Ctrl-C stops watching)
#   sudo packaging/qkd-demo.sh down
#   site A: namespace qkd-site-a, outer 10.97.0.1, LAN 10.96.1.1 (10.96.1.0/24), KME_A on 127.0.0.1 and 10.97.0.1
#   site B: namespace qkd-site-b, outer 10.97.0.2, LAN 10.96.2.1 (10.96.2.0/24), KME_B on 127.0.0.1 and 10.97.0.2
# Configs, PKI, logs and control sockets: /run/qkdgate-qkd-demo/ (QKD_DEMO_RUN); namespace names
# start with QKD_DEMO_NS (default qkd-site).
set -euo pipefail
cmd=${1:-up}
default_bin=$(cd "$(dirname "$0")/.." && pwd)/build/release/bin
bin=${2:-$default_bin}
run=${QKD_DEMO_RUN:-/run/qkdgate-qkd-demo}
ns_a=${QKD_DEMO_NS:-qkd-site}-a
ns_b=${QKD_DEMO_NS:-qkd-site}-b
ike_proposals="aes256gcm16-prfsha512-ecp521-ke1_mlkem768-ke2_qkd"
esp_proposals="aes256gcm16-ecp521-ke1_mlkem768-ke2_qkd"   # child rekeys: PFS with ECDH + ML-KEM + a QKD key

gate() { local s=$1; shift; ip netns exec "$([ "$s" = a ] && echo "$ns_a" || echo "$ns_b")" "$bin/qkdgate" -c "$run/site-$s/qkdgate.toml" "$@"; }

down() {
  for f in "$run"/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done
  sleep 1
  ip netns del "$ns_a" 2>/dev/null || true
  ip netns del "$ns_b" 2>/dev/null || true
  rm -rf "$run"
}

show() {
  for s in a b; do
    echo "== site $s (SAE_$(echo $s | tr a-z A-Z)): qkdgate show ike-sa"
    gate $s show ike-sa
    gate $s show ike-sa --json | python3 -c '
import json, sys
for sa in json.load(sys.stdin):
    q = sa.get("qkd")
    if q: print("   QKD key_ID %s  age %s s  KME round trip %s ms  QKD keys used %s" % (q["key_id"], q["key_age_s"], q["kme_rtt_ms"], q["keys_used"]))'
  done
}

case $cmd in
  down) down; echo "QKD demo removed"; exit 0 ;;
  watch) while true; do date -u +%T; show; echo; sleep 10; done ;;
  up) ;;
  *) echo "usage: $0 up [BINDIR] | watch | down"; exit 2 ;;
esac
[ "$(id -u)" -eq 0 ] || { echo "run as root (namespaces, TUN, UDP 500)"; exit 1; }
for b in qkdgated qkdgate qkd-kme; do [ -x "$bin/$b" ] || { echo "no $bin/$b: build first (scripts/setup.sh)"; exit 1; }; done
down
mkdir -p "$run"
ip netns add "$ns_a"
ip netns add "$ns_b"
ip link add gw0 netns "$ns_a" type veth peer name gw0 netns "$ns_b"
ip -n "$ns_a" addr add 10.97.0.1/24 dev gw0
ip -n "$ns_b" addr add 10.97.0.2/24 dev gw0
for ns in "$ns_a" "$ns_b"; do ip -n "$ns" link set lo up; ip -n "$ns" link set gw0 up; done
ip -n "$ns_a" addr add 10.96.1.1/32 dev lo
ip -n "$ns_b" addr add 10.96.2.1/32 dev lo

# The KMEs: PKI, link seed and configs from qkd-kme; each listens in its own site and reaches the
# other over the sites' link (a peer KME is identified by its certificate's KME ID).
k=$run/kme
"$bin/qkd-kme" demo "$k" --prepare-only --log-level warn >/dev/null
pa=$(sed -n 's/^listen = "127.0.0.1:\([0-9]*\)"/\1/p' "$k/kme_a.toml")
pb=$(sed -n 's/^listen = "127.0.0.1:\([0-9]*\)"/\1/p' "$k/kme_b.toml")
sed -i "s|^listen = \"127.0.0.1:$pa\"|listen = \"0.0.0.0:$pa\"|; s|url = \"https://127.0.0.1:$pb\"|url = \"https://10.97.0.2:$pb\"|" "$k/kme_a.toml"
sed -i "s|^listen = \"127.0.0.1:$pb\"|listen = \"0.0.0.0:$pb\"|; s|url = \"https://127.0.0.1:$pa\"|url = \"https://10.97.0.1:$pa\"|" "$k/kme_b.toml"
for s in a b; do
  ns=$([ $s = a ] && echo "$ns_a" || echo "$ns_b")
  ip netns exec "$ns" "$bin/qkd-kme" serve -c "$k/kme_$s.toml" >>"$run/kme_$s.log" 2>&1 &
  echo $! >"$run/kme_$s.pid"
done

# The gateways: a qkd section (profile, the peer's SAE ID, mode = require: no QKD key, no SA) and
# the site's [[qkd_profile]] as qkd-kme wrote it, with absolute paths.
(umask 077; openssl rand -hex 32 | sed 's/^/0x/' >"$run/psk")
conf() {  # conf SITE LOCAL REMOTE LOCAL_ID REMOTE_ID LOCAL_NET REMOTE_NET START PEER_SAE PROFILE
  mkdir -p "$run/site-$1"
  cat >"$run/site-$1/qkdgate.toml" <<EOT
[daemon]
control_socket = "$run/site-$1/qkdgated.sock"
dataplane = "userspace"
tun_name = "qkd0"

[[gateway]]
name = "site-$( [ "$1" = a ] && echo b || echo a )"
local_address = "$2"
remote_address = "$3"
local_id = "$4"
remote_id = "$5"
psk_file = "$run/psk"
ike_proposals = "$ike_proposals"
esp_proposals = "$esp_proposals"
local_ts = ["$6"]
remote_ts = ["$7"]
start_action = "$8"
# Short lifetimes to watch the QKD key change: rekeys start 240 s before the end of life, so
# about every 60 s (minus a little jitter).
ike_lifetime = 300
ike_rekey_margin = 240
child_lifetime = 300
child_rekey_margin = 240
qkd = { profile = "${10}", peer_sae_id = "$9", key_size = 256, timeout = 5, mode = "require" }

EOT
  sed "s|\"\.\./pki/|\"$k/pki/|g" "$k/site-$1/qkdgate.toml" | sed -n '/^\[\[qkd_profile\]\]/,$p' >>"$run/site-$1/qkdgate.toml"
}
conf a 10.97.0.1 10.97.0.2 site-a.example site-b.example 10.96.1.0/24 10.96.2.0/24 start SAE_B kme-a
conf b 10.97.0.2 10.97.0.1 site-b.example site-a.example 10.96.2.0/24 10.96.1.0/24 none SAE_A kme-b
for s in b a; do
  for _ in $(seq 1 100); do
    ip netns exec "$([ $s = a ] && echo "$ns_a" || echo "$ns_b")" bash -c "exec 3<>/dev/tcp/127.0.0.1/$([ $s = a ] && echo $pa || echo $pb)" 2>/dev/null && break
    sleep 0.1
  done
  ip netns exec "$([ $s = a ] && echo "$ns_a" || echo "$ns_b")" "$bin/qkdgated" -c "$run/site-$s/qkdgate.toml" \
    --log-file "$run/site-$s/qkdgated.log" --pid-file "$run/qkdgated_$s.pid"
done
up=0
for _ in $(seq 1 150); do
  if gate a show child-sa 2>/dev/null | grep -q AES; then up=1; break; fi
  sleep 0.1
done
[ $up = 1 ] || { echo "the tunnel did not come up; logs: $run/site-a/qkdgated.log $run/site-b/qkdgated.log"; tail -5 "$run/site-a/qkdgated.log"; exit 1; }
echo "== ping from site A's LAN address to site B's, through the QKD-keyed tunnel"
ip netns exec "$ns_a" ping -c3 -i 0.3 -I 10.96.1.1 10.96.2.1
echo
show
cat <<EOT

The tunnel stays up (both KMEs and both daemons run in the background) and is rekeyed about every
60 s with a fresh QKD key. Watch the key_ID change:   $0 watch
Stop everything:                                        $0 down
Logs: $run/site-{a,b}/qkdgated.log, $run/kme_{a,b}.log
EOT
