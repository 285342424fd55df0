#!/bin/bash
# Interop with libreswan 4.10 (Debian 12's package, unpacked to /opt/libreswan-4.10 because it
# conflicts with strongSwan's packages): IKE SA both ways with PSK + AES-GCM-256 + SHA2-512 +
# DH21. libreswan has no userspace ESP and this kernel has no ESP, so pluto cannot install its
# child SA; the check is the IKE SA (and that IKE_AUTH completed on both ends).
#   libreswan.sh QKDGATED QKDGATE we-initiate | they-initiate
TEST_TAG=ls${3:0:2}$$ . "$(dirname "$0")/../../netns/ike/lib.sh" "$1" "$2"
mode=${3:?we-initiate|they-initiate}
LSW_ROOT=${LSW_ROOT:-/opt/libreswan-4.10}
LSW_BIN=$LSW_ROOT/usr/libexec/ipsec
require_env
if [ ! -x "$LSW_BIN/pluto" ]; then
  "$(dirname "$0")/install-libreswan.sh" >/dev/null 2>&1 || true
fi
[ -x "$LSW_BIN/pluto" ] || skip "libreswan 4.10 not unpacked in $LSW_ROOT (tests/interop/ike/install-libreswan.sh failed: no apt access?)"
command -v certutil >/dev/null || skip "certutil missing (package libnss3-tools)"
netns_up
write_config west
d=$WORK/lsw
mkdir -p "$d/nss" "$d/ipsec.d"
certutil -N -d "sql:$d/nss" --empty-password
cat > "$d/ipsec.conf" <<EOT
config setup
	logfile=$d/pluto.log
	logappend=no
	logtime=yes
	plutodebug=none
	uniqueids=no
	dumpdir=$d

conn peer
	ikev2=insist
	authby=secret
	left=$IP_E
	leftid=@east.qkdgate.test
	leftsubnet=$NET_E
	right=$IP_W
	rightid=@west.qkdgate.test
	rightsubnet=$NET_W
	ike=aes_gcm256-sha2_512-dh21
	esp=aes_gcm256
	pfs=no
	auto=add
EOT
echo "@east.qkdgate.test @west.qkdgate.test : PSK 0x5f1c2e8d9a0b4c3d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5" > "$d/ipsec.secrets"
chmod 600 "$d/ipsec.secrets"
# pluto execs the compiled-in /usr/libexec/ipsec/addconn; it runs in a private mount namespace in
# which the unpacked libexec directory is bind-mounted there.
ip netns exec "$NS_E" unshare --mount --propagation private \
  sh -c 'mount --bind "$1/usr/libexec" /usr/libexec && shift && exec "$@"' sh "$LSW_ROOT" \
  "$LSW_BIN/pluto" --nofork --config "$d/ipsec.conf" --rundir "$d" --nssdir "$d/nss" --ipsecdir "$d/ipsec.d" \
  --secretsfile "$d/ipsec.secrets" --logfile "$d/pluto.log" --dumpdir "$d" --no-dnssec --use-xfrm >"$d/pluto.stdout" 2>&1 </dev/null &
PIDS+=($!)
for _ in $(seq 1 100); do [ -S "$d/pluto.ctl" ] && break; sleep 0.1; done
[ -S "$d/pluto.ctl" ] || { cat "$d/pluto.stdout" "$d/pluto.log"; fail "pluto did not come up"; }
whk() { nsx "$NS_E" "$LSW_BIN/whack" --ctlsocket "$d/pluto.ctl" "$@"; }
whk --listen >/dev/null
nsx "$NS_E" "$LSW_BIN/addconn" --ctlsocket "$d/pluto.ctl" --config "$d/ipsec.conf" --autoall >/dev/null || fail "addconn failed"
whk --rereadsecrets
start_gw west
trap 'rc=$?; [ $rc -ne 0 ] && [ $rc -ne 77 ] && { echo "---- pluto log"; tail -30 "$d/pluto.log"; }; cleanup' EXIT
if [ "$mode" = we-initiate ]; then
  qg west initiate peer || fail "initiate refused"
  for _ in $(seq 1 150); do grep -q 'established IKE SA' "$d/pluto.log" && break; sleep 0.1; done
  grep -q 'established IKE SA' "$d/pluto.log" || fail "pluto did not establish the IKE SA"
else
  timeout 15 ip netns exec "$NS_E" "$LSW_BIN/whack" --ctlsocket "$d/pluto.ctl" --name peer --initiate > "$d/whack.out" 2>&1 &
  for _ in $(seq 1 150); do grep -q 'established IKE SA' "$d/pluto.log" && break; sleep 0.1; done
  grep -q 'established IKE SA' "$d/pluto.log" || fail "pluto did not establish the IKE SA as initiator"
fi
grep -E 'established IKE SA|AES_GCM|DH21|CHILD|ERROR' "$d/pluto.log" | head -8
# qkdgated completed IKE_AUTH as well (its log records the IKE SA coming up).
for _ in $(seq 1 50); do grep -q 'IKE SA .* up' "$WORK/west/qkdgated.log" && break; sleep 0.1; done
grep -q 'IKE SA .* up' "$WORK/west/qkdgated.log" || fail "qkdgated did not log its IKE SA as up"
grep 'IKE SA' "$WORK/west/qkdgated.log" | head -3
echo "PASS: libreswan interop ($mode): IKE SA established on both ends"
