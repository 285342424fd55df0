#!/usr/bin/env bash
# Userspace ESP throughput (DESIGN.md 8), all in one run on this machine:
#   1. reference: `openssl speed -evp aes-256-gcm` at 1400-byte blocks (one core, raw AEAD)
#   2. plain veth TCP between two namespaces (no tunnel: the ceiling of the path)
#   3. qkdgate userspace ESP tunnel (qkd-esp-tunnel, AES-256-GCM-16, raw ESP or UDP/4500)
#   4. strongSwan 5.9.8 kernel-libipsec tunnel (userspace ESP in UDP/4500, PSK, AES-256-GCM-16),
#      driven by a private copy of shared/tools/ike-peers/throughput.sh in namespaces of its own,
#      when charon-systemd + libstrongswan-standard-plugins are installed (QKD_BENCH_NO_STRONGSWAN=1
#      skips it). strongSwan always UDP-encapsulates: compare with QKD_BENCH_ENCAP=udp too.
# and prints ratios against 1, 3 and 4. TCP with iperf3, SECONDS per run (default 8).
# Usage: esp_throughput.sh BIN_DIR [SECONDS] [STREAMS]     (root; a release build of BIN_DIR)
# Env: QKD_BENCH_MTU (TUN MTU, default 1400), QKD_BENCH_ENCAP=udp (RFC 3948 instead of raw ESP),
#      IKE_PEERS_DIR (default /work/shared/tools/ike-peers).
set -uo pipefail
bin=$(cd "${1:?usage: esp_throughput.sh BIN_DIR [SECONDS] [STREAMS]}" && pwd)
secs=${2:-8}
streams=${3:-1}
mtu=${QKD_BENCH_MTU:-1400}
[ "$(id -u)" = 0 ] || { echo "needs root"; exit 1; }
command -v iperf3 >/dev/null || { echo "needs iperf3 (apt-get install iperf3)"; exit 1; }
sfx=$$
A=qkdbench-a-$sfx B=qkdbench-b-$sfx
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  ip netns del "$A" 2>/dev/null; ip netns del "$B" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

gbit() { python3 -c "import json,sys; e=json.load(open(sys.argv[1]))['end']; print('%.3f' % (e['sum_received']['bits_per_second']/1e9)); print('retransmits', e['sum_sent'].get('retransmits'), file=sys.stderr)" "$1"; }
iperf_run() {  # ns_server ns_client server_addr client_bind out.json
  ip netns exec "$1" iperf3 -s -1 -B "$3" >/dev/null 2>&1 &
  local s=$!
  sleep 0.5
  ip netns exec "$2" timeout $((secs + 20)) iperf3 -c "$3" -B "$4" -t "$secs" -P "$streams" -J >"$5" 2>/dev/null
  wait $s 2>/dev/null
}

# 1. raw AES-256-GCM on one core at 1400-byte blocks
aes=$(openssl speed -evp aes-256-gcm -bytes 1400 -seconds 3 2>/dev/null | awk '/^AES-256-GCM/ {print $2}' | tr -d k)
aes_gbit=$(python3 -c "print('%.3f' % (float('$aes') * 1000 * 8 / 1e9))")
echo "openssl speed -evp aes-256-gcm @1400 B: ${aes_gbit} Gbit/s (one core)"

# 2. + 3. namespaces with a veth pair; inner addresses on the TUN devices of qkd-esp-tunnel
ip netns add "$A"; ip netns add "$B"
ip link add va-$sfx netns "$A" type veth peer name vb-$sfx netns "$B"
ip -n "$A" addr add 10.77.0.1/24 dev va-$sfx; ip -n "$A" link set va-$sfx up; ip -n "$A" link set lo up
ip -n "$B" addr add 10.77.0.2/24 dev vb-$sfx; ip -n "$B" link set vb-$sfx up; ip -n "$B" link set lo up
outer_mtu=$((mtu + 100)); [ $outer_mtu -lt 1500 ] && outer_mtu=1500
ip -n "$A" link set va-$sfx mtu $outer_mtu; ip -n "$B" link set vb-$sfx mtu $outer_mtu

iperf_run "$B" "$A" 10.77.0.2 10.77.0.1 "$tmp/plain.json"
plain=$(gbit "$tmp/plain.json")
echo "plain veth TCP (no tunnel): ${plain} Gbit/s"

K1=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1fa0a1a2a3
K2=202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3fb0b1b2b3
extra=()
[ "${QKD_BENCH_ENCAP:-}" = udp ] && extra=(--udp-encap 4500)
ip netns exec "$A" "$bin/qkd-esp-tunnel" --local-outer 10.77.0.1 --remote-outer 10.77.0.2 --local-net 10.88.1.0/24 \
  --remote-net 10.88.2.0/24 --spi-out 0x1001 --spi-in 0x2001 --key-out $K1 --key-in $K2 --tun qkdb0 \
  --tun-address 10.88.1.1 --mtu "$mtu" "${extra[@]}" >"$tmp/a.log" 2>&1 &
pids+=($!)
ip netns exec "$B" "$bin/qkd-esp-tunnel" --local-outer 10.77.0.2 --remote-outer 10.77.0.1 --local-net 10.88.2.0/24 \
  --remote-net 10.88.1.0/24 --spi-out 0x2001 --spi-in 0x1001 --key-out $K2 --key-in $K1 --tun qkdb0 \
  --tun-address 10.88.2.1 --mtu "$mtu" "${extra[@]}" >"$tmp/b.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do grep -q ready "$tmp/a.log" && grep -q ready "$tmp/b.log" && break; sleep 0.1; done
ip netns exec "$A" ping -c 1 -W 2 -I 10.88.1.1 10.88.2.1 >/dev/null || { echo "tunnel does not pass ping"; cat "$tmp"/*.log; exit 1; }
t0=$(awk '{s += $14 + $15} END {print s}' /proc/${pids[0]}/stat /proc/${pids[1]}/stat)
iperf_run "$B" "$A" 10.88.2.1 10.88.1.1 "$tmp/qkd.json"
t1=$(awk '{s += $14 + $15} END {print s}' /proc/${pids[0]}/stat /proc/${pids[1]}/stat)
qkd=$(gbit "$tmp/qkd.json")
cpu=$(( (t1 - t0) * 100 / $(getconf CLK_TCK) / secs ))
echo "qkdgate userspace ESP TCP (AES-256-GCM-16, ${extra[*]:-raw ESP}, TUN MTU $mtu): ${qkd} Gbit/s, tunnel processes ${cpu}% of one core"
kill "${pids[@]}"; wait "${pids[@]}" 2>/dev/null; pids=()

# 4. strongSwan kernel-libipsec, same machine, same run
ss=""
peers=${IKE_PEERS_DIR:-/work/shared/tools/ike-peers}
if [ -z "${QKD_BENCH_NO_STRONGSWAN:-}" ] && [ ! -f /usr/lib/ipsec/plugins/libstrongswan-openssl.so ]; then
  echo "strongSwan comparison skipped: needs charon-systemd and libstrongswan-standard-plugins (openssl, gcm)"
elif [ -z "${QKD_BENCH_NO_STRONGSWAN:-}" ] && [ -x /usr/sbin/charon-systemd ] && [ -f "$peers/throughput.sh" ]; then
  cp -r "$peers" "$tmp/ike-peers"
  export NS_W=qkdbench-w-$sfx NS_E=qkdbench-e-$sfx RUN=$tmp/ikebl IKEBL_KERNEL=libipsec
  mkdir -p "$RUN"
  # The recipe's strongswan.conf files name /run/ikebl; point them at our private RUN directory.
  sed -i "s#/run/ikebl#$RUN#g" "$tmp"/ike-peers/strongswan/*/strongswan.conf
  (cd "$tmp/ike-peers" && ./throughput.sh "$secs" "$streams") >"$tmp/ss.log" 2>&1
  (cd "$tmp/ike-peers" && ./netns-down.sh) >/dev/null 2>&1
  ss=$(python3 -c "
import json,sys
for l in open(sys.argv[1]):
    l=l.strip()
    if l.startswith('{') and 'tunnel-esp' in l: print('%.3f' % (json.loads(l)['recv_Mbit_s']/1000))" "$tmp/ss.log")
  if [ -n "$ss" ]; then echo "strongSwan 5.9.8 kernel-libipsec TCP: ${ss} Gbit/s"; else echo "strongSwan run failed:"; tail -5 "$tmp/ss.log"; fi
fi

echo "--- ratios"
python3 - "$qkd" "$aes_gbit" "$plain" "$ss" <<'PY'
import sys
q, aes, plain, ss = float(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
print(f"qkdgate ESP / openssl AES-256-GCM@1400: {q/aes:.2f}")
print(f"qkdgate ESP / plain veth:               {q/plain:.2f}")
if ss: print(f"qkdgate ESP / strongSwan libipsec:      {q/float(ss):.2f}   (target >= 2.0)")
print(f"qkdgate ESP absolute:                   {q:.3f} Gbit/s (target >= 1.0)")
PY
