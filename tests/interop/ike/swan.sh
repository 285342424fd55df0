# strongSwan 5.9.8 (charon-systemd + swanctl) as the east peer of a qkdgated west, in the
# namespaces of tests/netns/ike/lib.sh. Source after lib.sh. Recipe adapted from
# shared/tools/ike-peers: charon-systemd (writes no pid file, so instances do not collide), own
# strongswan.conf via STRONGSWAN_CONF, own vici socket, kernel-libipsec for userspace ESP (this
# kernel has no ESP), which always UDP-encapsulates ESP (encap = yes).
SWAN_PSK="0x5f1c2e8d9a0b4c3d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5"  # = gw_common.sh gw_write_config

require_swan() {
  command -v charon-systemd >/dev/null || [ -x /usr/sbin/charon-systemd ] || skip "strongSwan not installed (charon-systemd, package charon-systemd)"
  command -v swanctl >/dev/null || skip "swanctl not installed (package strongswan-swanctl)"
  ls /usr/lib/ipsec/plugins/libstrongswan-kernel-libipsec.so >/dev/null 2>&1 \
    || skip "strongSwan kernel-libipsec plugin missing (package libcharon-extra-plugins)"
}

# write_swan SIDE_NS_NAME  (east): strongswan.conf + swanctl.conf under $WORK/swan
write_swan() {
  local d=$WORK/swan
  mkdir -p "$d/swanctl"
  cat > "$d/strongswan.conf" <<EOT
charon {
  load = random nonce openssl pem pkcs1 pkcs8 x509 pubkey revocation constraints kdf gmp curve25519 hmac gcm aes sha1 sha2 kernel-libipsec kernel-netlink socket-default updown vici
  port = 500
  port_nat_t = 4500
  install_routes = yes
  retransmit_timeout = 1.0
  retransmit_base = 1.4
  ${SWAN_EXTRA:-}
  plugins {
    vici { socket = unix://$d/charon.vici }
  }
  filelog {
    t { path = $d/charon.log
        time_format = %H:%M:%S
        default = 1
        ike = ${SWAN_IKELOG:-2}
        flush_line = yes }
  }
  syslog { daemon { default = -1 } }
}
charon-systemd { journal { default = -1 } }
EOT
  cat > "$d/swanctl/swanctl.conf" <<EOT
connections {
  peer {
    version = 2
    local_addrs = $IP_E
    remote_addrs = $IP_W
    proposals = aes256gcm16-prfsha512-ecp521
    encap = yes
    dpd_delay = 0
    local { auth = psk
            id = east.qkdgate.test }
    remote { auth = psk
             id = west.qkdgate.test }
    children {
      net { local_ts = $NET_E
            remote_ts = $NET_W
            esp_proposals = aes256gcm16
            mode = tunnel
            start_action = none }
    }
  }
}
secrets {
  ike-peer { id-w = west.qkdgate.test
             id-e = east.qkdgate.test
             secret = $SWAN_PSK }
}
EOT
}

swc() { local cmd=$1; shift; SWANCTL_DIR="$WORK/swan/swanctl" nsx "$NS_E" swanctl "$cmd" --uri "unix://$WORK/swan/charon.vici" "$@"; }

start_swan() {
  write_swan
  STRONGSWAN_CONF=$WORK/swan/strongswan.conf ip netns exec "$NS_E" /usr/sbin/charon-systemd >"$WORK/swan/charon.stdout" 2>&1 </dev/null &
  PIDS+=($!)
  for _ in $(seq 1 100); do [ -S "$WORK/swan/charon.vici" ] && break; sleep 0.1; done
  [ -S "$WORK/swan/charon.vici" ] || { cat "$WORK/swan/charon.stdout" "$WORK/swan/charon.log"; fail "charon did not come up"; }
  swc --load-all >"$WORK/swan/load.out" 2>&1 || { cat "$WORK/swan/load.out"; fail "swanctl --load-all failed"; }
}

swan_log_tail() { echo "---- charon log (tail)"; tail -40 "$WORK/swan/charon.log"; }
