#!/usr/bin/env bash
# Runs where the kernel has ESP (natively or inside shared/tools/kernel-vm): the xfrm backend of
# qkd::dp installs SAs and policies over netlink for two namespaces, ping goes through kernel ESP,
# and the userspace backend talks to the kernel's ESP (an independent implementation) both ways.
# Usage: xfrm_tunnel_guest.sh BIN_DIR
set -uo pipefail
tool=${1:?usage: xfrm_tunnel_guest.sh BIN_DIR}/qkd-esp-tunnel
A=qkdvm-a B=qkdvm-b
PASS=0 FAILN=0
tmp=$(mktemp -d)
pids=()
ok() { echo "ok: $*"; PASS=$((PASS + 1)); }
bad() { echo "FAIL: $*"; FAILN=$((FAILN + 1)); for f in "$tmp"/*.log; do echo "--- $f"; tail -5 "$f"; done; }
stop_ends() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  pids=()
}
cleanup() { stop_ends; ip netns del $A 2>/dev/null; ip netns del $B 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

modprobe tun 2>/dev/null || true
echo "kernel: $(uname -r)"
ip netns add $A; ip netns add $B
ip link add veth-a netns $A type veth peer name veth-b netns $B
for ns in $A $B; do ip -n $ns link set lo up; done
ip -n $A addr add 10.77.0.1/24 dev veth-a; ip -n $A link set veth-a up
ip -n $B addr add 10.77.0.2/24 dev veth-b; ip -n $B link set veth-b up
# Inner addresses for the xfrm ends live on dummy devices, routed via the peer (kernel ESP).
for ns in $A $B; do ip -n $ns link add inner type dummy; ip -n $ns link set inner up; done
ip -n $A addr add 10.88.1.1/24 dev inner
ip -n $B addr add 10.88.2.1/24 dev inner

KA=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1fa0a1a2a3
KB=202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3fb0b1b2b3

# start_end NS BACKEND LOCAL REMOTE LNET RNET SPI_OUT SPI_IN KEY_OUT KEY_IN LOG [extra...]
start_end() {
  local ns=$1 be=$2 lo=$3 ro=$4 ln=$5 rn=$6 so=$7 si=$8 ko=$9 ki=${10} log=${11}; shift 11
  local tunargs=()
  if [ "$be" = userspace ]; then
    # The userspace end carries its inner address on the TUN device instead of the dummy.
    ip -n "$ns" addr flush dev inner
    tunargs=(--tun qkdt0 --tun-address "$([ "$ns" = $A ] && echo 10.88.1.1 || echo 10.88.2.1)")
  fi
  ip netns exec "$ns" "$tool" --backend "$be" --local-outer "$lo" --remote-outer "$ro" --local-net "$ln" \
    --remote-net "$rn" --spi-out "$so" --spi-in "$si" --key-out "$ko" --key-in "$ki" "${tunargs[@]}" "$@" \
    >"$tmp/$log.log" 2>&1 &
  pids+=($!)
}
wait_ready() { for _ in $(seq 300); do grep -q ready "$tmp/$1.log" 2>/dev/null && return 0; sleep 0.1; done; return 1; }
reset_inner() {
  ip -n $A addr flush dev inner; ip -n $B addr flush dev inner
  ip -n $A addr add 10.88.1.1/24 dev inner; ip -n $B addr add 10.88.2.1/24 dev inner
}
xfrm_routes() {  # the xfrm ends route the remote inner net via the peer; policies do the rest
  ip -n $A route replace 10.88.2.0/24 via 10.77.0.2 src 10.88.1.1 2>/dev/null
  ip -n $B route replace 10.88.1.0/24 via 10.77.0.1 src 10.88.2.1 2>/dev/null
}
pk() { grep "\"sa\":\"$2\"" "$tmp/$1.log" | sed 's/.*"packets":\([0-9]*\).*/\1/'; }

run_pair() {  # NAME BACKEND_A BACKEND_B [extra...]
  local name=$1 ba=$2 bb=$3; shift 3
  reset_inner
  start_end $A "$ba" 10.77.0.1 10.77.0.2 10.88.1.0/24 10.88.2.0/24 0x1001 0x2001 $KA $KB a "$@"
  start_end $B "$bb" 10.77.0.2 10.77.0.1 10.88.2.0/24 10.88.1.0/24 0x2001 0x1001 $KB $KA b "$@"
  wait_ready a && wait_ready b || { bad "$name: ends did not start"; stop_ends; return; }
  [ "$ba" = xfrm ] && ip -n $A route replace 10.88.2.0/24 via 10.77.0.2 src 10.88.1.1
  [ "$bb" = xfrm ] && ip -n $B route replace 10.88.1.0/24 via 10.77.0.1 src 10.88.2.1
  if [ "$ba" = xfrm ]; then
    grep -q 'rfc4106(gcm(aes))' <<<"$(ip -n $A xfrm state)" && ok "$name: SA in A's kernel is rfc4106(gcm(aes))" \
      || bad "$name: no rfc4106 SA in A's kernel"
    [ "$(ip -n $A xfrm policy | grep -c '^src')" = 3 ] && ok "$name: out/in/fwd policies in A's kernel" \
      || bad "$name: expected 3 policies in A, got: $(ip -n $A xfrm policy | grep -c '^src')"
  fi
  if ip netns exec $A ping -c 5 -i 0.2 -W 3 -I 10.88.1.1 10.88.2.1 >"$tmp/ping.log" 2>&1; then
    ok "$name: ping 10.88.1.1 -> 10.88.2.1 ($ba <-> $bb)"
  else
    bad "$name: ping ($ba <-> $bb): $(grep -E 'loss|error' "$tmp/ping.log")"
  fi
  # 1 MiB over TCP from A to B, compared by SHA-256 (segmentation and coalescing on the
  # userspace end, kernel ESP on the other).
  ip netns exec $B python3 -c '
import socket,hashlib
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1); s.bind(("10.88.2.1",5201)); s.listen(1); s.settimeout(60)
c,_=s.accept(); h=hashlib.sha256()
while True:
    d=c.recv(65536)
    if not d: break
    h.update(d)
print(h.hexdigest())' >"$tmp/tcp_srv.log" 2>&1 &
  local srv=$!
  sleep 0.5
  ip netns exec $A python3 -c '
import socket,hashlib,time
d=bytes(range(256))*4096
for attempt in range(60):  # the server may still be starting (slow guest): refused -> retry
    try:
        s=socket.create_connection(("10.88.2.1",5201),timeout=60); break
    except ConnectionRefusedError:
        time.sleep(0.5)
s.sendall(d); s.close(); print(hashlib.sha256(d).hexdigest())' >"$tmp/tcp_cli.log" 2>&1
  wait $srv
  if [ -s "$tmp/tcp_cli.log" ] && cmp -s "$tmp/tcp_cli.log" "$tmp/tcp_srv.log"; then
    ok "$name: 1 MiB TCP transfer intact"
  else
    bad "$name: TCP transfer: $(cat "$tmp/tcp_cli.log" "$tmp/tcp_srv.log" | tail -2)"
  fi
  if [ "$ba" = xfrm ] && [ "${SOFT:-}" ]; then
    sleep 1
    grep -q '"expire":4097,"hard":false' "$tmp/a.log" && ok "$name: XFRM_MSG_EXPIRE (soft) delivered for SA 0x1001" \
      || bad "$name: no soft expire event for 0x1001"
  fi
  stop_ends
  local o i
  o=$(pk a out); i=$(pk b in)
  [ -n "$o" ] && [ -n "$i" ] && [ "$o" -ge 5 ] && [ "$i" -ge 5 ] && ok "$name: counters A out=$o B in=$i" || bad "$name: counters A out='$o' B in='$i'"
  if [ "$ba" = xfrm ]; then
    [ -z "$(ip -n $A xfrm state)" ] && [ -z "$(ip -n $A xfrm policy)" ] && ok "$name: SAs and policies removed (DELSA/DELPOLICY)" \
      || bad "$name: leftovers in A: $(ip -n $A xfrm state | head -3)"
  fi
}

run_pair "kernel-kernel" xfrm xfrm
run_pair "kernel-kernel ESN" xfrm xfrm --esn
SOFT=1 run_pair "kernel-kernel lifetime" xfrm xfrm --soft-packets 3
run_pair "userspace-kernel" userspace xfrm
run_pair "kernel-userspace ESN" xfrm userspace --esn
run_pair "userspace-kernel UDP encap" userspace xfrm --udp-encap 4500

# Rekey without a gap on kernel SAs during a ping.
reset_inner
start_end $A xfrm 10.77.0.1 10.77.0.2 10.88.1.0/24 10.88.2.0/24 0x1001 0x2001 $KA $KB a --linger-ms 500
start_end $B xfrm 10.77.0.2 10.77.0.1 10.88.2.0/24 10.88.1.0/24 0x2001 0x1001 $KB $KA b --linger-ms 500
if wait_ready a && wait_ready b; then
  xfrm_routes
  ip netns exec $A ping -c 40 -i 0.1 -W 3 -I 10.88.1.1 10.88.2.1 >"$tmp/ping_rekey.log" 2>&1 &
  pp=$!
  sleep 1.5
  kill -USR1 "${pids[0]}" "${pids[1]}"; sleep 0.5; kill -USR2 "${pids[0]}" "${pids[1]}"
  wait $pp
  if grep -q ' 0% packet loss' "$tmp/ping_rekey.log" && grep -q 'spi 0x00001101' <<<"$(ip -n $A xfrm state)"; then
    ok "kernel rekey: 0% loss, traffic on SA 0x1101"
  else
    bad "kernel rekey: $(grep loss "$tmp/ping_rekey.log"); states: $(ip -n $A xfrm state | grep spi | tr '\n' ' ')"
  fi
  sleep 1
  grep -q 'spi 0x00002001' <<<"$(ip -n $A xfrm state)" && bad "kernel rekey: old inbound SA 0x2001 still present after linger" \
    || ok "kernel rekey: old inbound SA removed after linger"
else
  bad "kernel rekey: ends did not start"
fi
stop_ends

echo "$PASS passed, $FAILN failed"
[ "$FAILN" = 0 ]
