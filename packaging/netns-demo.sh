#!/bin/bash
# A tunnel between two network namespaces with two qkdgated (userspace ESP over TUN), for trying
# qkdgate on one machine. Nothing leaves the machine: every address lives inside the namespaces.
#   sudo packaging/netns-demo.sh up [BINDIR]     (default BINDIR: build/release/bin)
#   sudo packaging/netns-demo.sh down
#   sudo packaging/netns-demo.sh crash west|east   (kill -9 one daemon: no DELETE, as a power cut)
#   sudo packaging/netns-demo.sh start west|east [BINDIR]   (start it again; the tunnel comes back by itself)
#   west: qkd-west, outer 10.99.0.1, LAN address 10.98.1.1 (subnet 10.98.1.0/24)
#   east: qkd-east, outer 10.99.0.2, LAN address 10.98.2.1 (subnet 10.98.2.0/24)
# Configs, PSK, logs and control sockets: /run/qkdgate-demo/{west,east}/
# The IKE SA is hybrid by default: ECP-521 in IKE_SA_INIT, then ML-KEM-768 in an IKE_INTERMEDIATE
# exchange (RFC 9242/9370), shown as PSK/DH21+MLKEM768/AES256-GCM16; child SA rekeys use PFS with
# both (AES256-GCM16/DH21+MLKEM768). Other proposals (QKD_DEMO_ESP_PROPOSALS likewise):
#   QKD_DEMO_IKE_PROPOSALS="aes256gcm16-prfsha512-ecp521" packaging/netns-demo.sh up     (classical)
#   QKD_DEMO_IKE_PROPOSALS="aes256gcm16-prfsha512-mlkem768" packaging/netns-demo.sh up   (ML-KEM alone)
set -euo pipefail
cmd=${1:-up}
default_bin=$(cd "$(dirname "$0")/.." && pwd)/build/release/bin
bin=${2:-$default_bin}
run=/run/qkdgate-demo
ike_proposals=${QKD_DEMO_IKE_PROPOSALS:-aes256gcm16-prfsha512-ecp521-ke1_mlkem768}
# Child SA rekeys with PFS: ECP-521 in CREATE_CHILD_SA, ML-KEM-768 in an IKE_FOLLOWUP_KE.
esp_proposals=${QKD_DEMO_ESP_PROPOSALS:-aes256gcm16-ecp521-ke1_mlkem768}

down() {
  for side in west east; do
    if [ -f "$run/$side/qkdgated.pid" ]; then kill "$(cat "$run/$side/qkdgated.pid")" 2>/dev/null || true; fi
  done
  sleep 1
  ip netns del qkd-west 2>/dev/null || true
  ip netns del qkd-east 2>/dev/null || true
  rm -rf "$run"
}

start_side() {
  ip netns exec qkd-$1 "$bin/qkdgated" -c "$run/$1/qkdgate.toml" --log-file "$run/$1/qkdgated.log" \
    --pid-file "$run/$1/qkdgated.pid"
}

if [ "$cmd" = down ]; then down; echo "demo removed"; exit 0; fi
if [ "$cmd" = crash ] || [ "$cmd" = start ]; then
  side=${2:?west or east}
  case $side in west|east) ;; *) echo "west or east, not $side"; exit 1;; esac
  [ -f "$run/$side/qkdgate.toml" ] || { echo "no demo set up: run $0 up first"; exit 1; }
  if [ "$cmd" = crash ]; then
    kill -9 "$(cat "$run/$side/qkdgated.pid")" && rm -f "$run/$side/qkdgated.pid" && echo "qkdgated $side killed (SIGKILL)"
  else
    bin=${3:-$default_bin}
    start_side "$side" && echo "qkdgated $side started"
  fi
  exit 0
fi
[ "$(id -u)" -eq 0 ] || { echo "run as root (namespaces, TUN, UDP 500)"; exit 1; }
[ -x "$bin/qkdgated" ] || { echo "no $bin/qkdgated: build first (scripts/setup.sh)"; exit 1; }
down
ip netns add qkd-west
ip netns add qkd-east
ip link add gw0 netns qkd-west type veth peer name gw0 netns qkd-east
ip -n qkd-west addr add 10.99.0.1/24 dev gw0
ip -n qkd-east addr add 10.99.0.2/24 dev gw0
for ns in qkd-west qkd-east; do ip -n $ns link set lo up; ip -n $ns link set gw0 up; done
ip -n qkd-west addr add 10.98.1.1/32 dev lo
ip -n qkd-east addr add 10.98.2.1/32 dev lo

mkdir -p "$run/west" "$run/east"
(umask 077; openssl rand -hex 32 | sed 's/^/0x/' > "$run/west/psk"; cp "$run/west/psk" "$run/east/psk")
conf() {  # conf SIDE LOCAL REMOTE LOCAL_ID REMOTE_ID LOCAL_NET REMOTE_NET START
  cat > "$run/$1/qkdgate.toml" <<EOT
[daemon]
control_socket = "$run/$1/qkdgated.sock"
dataplane = "userspace"
retransmit_tries = 3

[[gateway]]
name = "$( [ "$1" = west ] && echo east || echo west )"
local_address = "$2"
remote_address = "$3"
local_id = "$4"
remote_id = "$5"
psk_file = "$run/$1/psk"
ike_proposals = "$ike_proposals"
esp_proposals = "$esp_proposals"
local_ts = ["$6"]
remote_ts = ["$7"]
start_action = "$8"
# A crashed peer is noticed after 10 s of silence plus the unanswered retransmissions (about
# 12 s with retransmit_tries = 3); then west initiates again at once, and backs off (1 s doubling
# to retry_delay_max) while east stays away. dpd_action = "restart" and close_action = "start"
# are the defaults.
dpd_interval = 10
EOT
}
conf west 10.99.0.1 10.99.0.2 west.example east.example 10.98.1.0/24 10.98.2.0/24 start
conf east 10.99.0.2 10.99.0.1 east.example west.example 10.98.2.0/24 10.98.1.0/24 none
for side in east west; do start_side $side; done
for _ in $(seq 1 100); do
  ip netns exec qkd-west "$bin/qkdgate" -c "$run/west/qkdgate.toml" show child-sa 2>/dev/null | grep -q AES && break
  sleep 0.1
done
ip netns exec qkd-west "$bin/qkdgate" -c "$run/west/qkdgate.toml" show ike-sa
echo
echo "tunnel up. try:  ip netns exec qkd-west ping -c3 -I 10.98.1.1 10.98.2.1"
echo "crash a side and start it again ($0 crash east; $0 start east): the tunnel comes back by itself"
