# strongSwan 5.9.8 (charon-systemd + swanctl) as the east peer of a qkdgated west, in the
# namespaces of tests/netns/ike/lib.sh. Source after lib.sh. Recipe adapted from
# shared/tools/ike-peers: charon-systemd (writes no pid file, so instances do not collide), own
# strongswan.conf via STRONGSWAN_CONF, own vici socket, kernel-libipsec for userspace ESP (this
# kernel has no ESP), which always UDP-encapsulates ESP (encap = yes).
# The connection is parameterized for the negotiation tests (defaults = the plain interop test):
#   SWAN_IKE (IKE proposals), SWAN_ESP (ESP proposals), SWAN_LTS / SWAN_RTS (strongSwan's
#   local/remote selectors, comma-separated), SWAN_CONN_EXTRA / SWAN_CHILD_EXTRA (more lines).
# SWAN_IMPL=ss6 runs strongSwan 6.1 from the Debian root of tests/interop/ike_pq (see ss6.sh there);
# the daemon then sees $WORK/swan as /run/pq (SWAN_CDIR).
SWAN_PSK="0x5f1c2e8d9a0b4c3d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5"  # = gw_common.sh gw_write_config

require_swan() {
  command -v charon-systemd >/dev/null || [ -x /usr/sbin/charon-systemd ] || skip "strongSwan not installed (charon-systemd, package charon-systemd)"
  command -v swanctl >/dev/null || skip "swanctl not installed (package strongswan-swanctl)"
  ls /usr/lib/ipsec/plugins/libstrongswan-kernel-libipsec.so >/dev/null 2>&1 \
    || skip "strongSwan kernel-libipsec plugin missing (package libcharon-extra-plugins)"
}

# write_swan SIDE_NS_NAME  (east): strongswan.conf + swanctl.conf under $WORK/swan
write_swan() {
  local d=$WORK/swan c=${SWAN_CDIR:-$WORK/swan}
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
    vici { socket = unix://$c/charon.vici }
  }
  filelog {
    t { path = $c/charon.log
        time_format = %H:%M:%S
        default = 1
        ike = ${SWAN_IKELOG:-2}
        cfg = ${SWAN_CFGLOG:-1}
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
    proposals = ${SWAN_IKE:-aes256gcm16-prfsha512-ecp521}
    encap = yes
    dpd_delay = 0
    ${SWAN_CONN_EXTRA:-}
    local { auth = psk
            id = east.qkdgate.test }
    remote { auth = psk
             id = west.qkdgate.test }
    children {
      net { local_ts = ${SWAN_LTS:-$NET_E}
            remote_ts = ${SWAN_RTS:-$NET_W}
            esp_proposals = ${SWAN_ESP:-aes256gcm16}
            mode = tunnel
            start_action = none
            ${SWAN_CHILD_EXTRA:-} }
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

# swc COMMAND [options]: swanctl against our charon (--uri must follow the command); strongSwan 6
# runs chrooted in its own mount namespace, so its own swanctl runs there (nsenter --root).
swc() {
  local cmd=$1; shift
  if [ "${SWAN_IMPL:-ss5}" = ss6 ]; then
    ss6_swanctl "$SWAN_PID" "$cmd" "$@"
  else
    SWANCTL_DIR="$WORK/swan/swanctl" nsx "$NS_E" swanctl "$cmd" --uri "unix://$WORK/swan/charon.vici" "$@"
  fi
}

start_swan() {
  if [ "${SWAN_IMPL:-ss5}" = ss6 ]; then start_swan6; return; fi
  write_swan
  STRONGSWAN_CONF=$WORK/swan/strongswan.conf ip netns exec "$NS_E" /usr/sbin/charon-systemd >"$WORK/swan/charon.stdout" 2>&1 </dev/null &
  SWAN_PID=$!
  PIDS+=($!)
  for _ in $(seq 1 100); do [ -S "$WORK/swan/charon.vici" ] && break; sleep 0.1; done
  [ -S "$WORK/swan/charon.vici" ] || { cat "$WORK/swan/charon.stdout" "$WORK/swan/charon.log"; fail "charon did not come up"; }
  swc --load-all >"$WORK/swan/load.out" 2>&1 || { cat "$WORK/swan/load.out"; fail "swanctl --load-all failed"; }
}

swan_log_tail() { echo "---- charon log (tail)"; tail -40 "$WORK/swan/charon.log"; }

# ---- checks shared by the interop tests ----------------------------------------------------------
# swan_establish we-initiate|they-initiate [CHILD]: until qkdgated shows a child SA
swan_establish() {
  if [ "$1" = we-initiate ]; then
    qg west initiate peer || fail "initiate refused"
    wait_child west 20 || { swan_log_tail; fail "no child SA on qkdgated within 20 s"; }
  else
    swc --initiate --child "${2:-net}" --timeout 20 >"$WORK/swan/initiate.out" 2>&1 \
      || { tail -20 "$WORK/swan/initiate.out"; swan_log_tail; fail "swanctl --initiate failed"; }
    wait_child west 5 || fail "qkdgated shows no child SA after strongSwan's initiate"
  fi
}

# swan_expect_sa REGEX WHAT: strongSwan's list-sas must match (extended regex)
swan_expect_sa() {
  swc --list-sas >"$WORK/swan/sas.out" 2>&1
  grep -qE -- "$1" "$WORK/swan/sas.out" || { cat "$WORK/swan/sas.out"; swan_log_tail; fail "strongSwan's list-sas: $2 (no match for '$1')"; }
}

# swan_spis_agree: the IKE SPIs and the child SA SPIs of both ends are the same SAs (only strongSwan's
# INSTALLED child SAs count). strongSwan prints "in  SPI" for its inbound SA (= our outbound) and
# "out SPI" for its outbound (= our inbound). Sets SPI_DIFF to what differs; status 0 when equal.
swan_spis_agree() {
  local ike ours theirs s
  swc --list-sas >"$WORK/swan/sas.out" 2>&1
  ike=$(ike_spis west | tr -d '/')
  [ -n "$ike" ] || { SPI_DIFF="qkdgated has no established IKE SA"; return 1; }
  for s in $ike; do grep -q "${s:0:16}" "$WORK/swan/sas.out" || { SPI_DIFF="IKE SA $s of qkdgated not in strongSwan's list"; return 1; }; done
  theirs=$(awk '/reqid/ {st = ($0 ~ /INSTALLED/)} {gsub(/[^0-9a-f]/, "", $2)} st && $1=="in"{i=$2} st && $1=="out"{print $2"/"i}' \
             "$WORK/swan/sas.out" | sort | tr '\n' ' ' | sed 's/ $//')
  ours=$(child_spis west)
  [ "$ours" = "$theirs" ] || { SPI_DIFF="child SAs differ: qkdgated has $ours (in/out), strongSwan holds $theirs (its out/in)"; return 1; }
  SPI_DIFF=
  log "SAs agree: IKE $ike, child $ours"
}
# swan_check_spis [SECONDS]: as swan_spis_agree, waiting up to SECONDS (default 0) for a rekey to settle
swan_check_spis() {
  local end=$(( $(date +%s) + ${1:-0} ))
  until swan_spis_agree; do
    [ "$(date +%s)" -lt "$end" ] || { cat "$WORK/swan/sas.out"; fail "$SPI_DIFF"; }
    sleep 0.2
  done
}

# swan_ping: ping through the tunnel once kernel-libipsec's route (table 220) is there
swan_ping() {
  local net=${1:-$NET_W}
  for _ in $(seq 1 30); do nsx "$NS_E" ip route show table 220 | grep -q "${net%/*}" && break; sleep 0.1; done
  ping_tunnel 3 || { swan_log_tail; fail "ping through the tunnel (qkdgated userspace ESP <-> strongSwan kernel-libipsec) failed"; }
}

# our_json ike-sa|child-sa EXPR: a Python expression over the list `s` of our SAs
our_json() {
  qg west show "$1" --json | python3 -c "import json,sys; s=json.load(sys.stdin); print($2)"
}
