# IKE SA setup benchmark pieces shared by ike_rate.sh (vs strongSwan 5.9.8) and ike_pq_rate.sh (vs
# strongSwan 6.1, several proposals). Source after setting here, root, QD, QG, COUNT, PAR.
# Two namespaces (tests/netns/ike/lib.sh); every initiator gateway has its own identity
# (bench-N.west.bench.test) and /32 remote selector, the responder one gateway for all of them.
# CPU is utime + stime of each daemon from /proc/PID/stat around the drive.
TEST_TAG=bn$$ QKDGT_LOG_LEVEL=warn . "$root/tests/netns/ike/lib.sh" "$QD" "$QG"
. "$root/tests/interop/ike_pq/ss6.sh"   # brings swan.sh (5.9.8) and the 6.1 launcher
hz=$(getconf CLK_TCK)
PSK_HEX=${SWAN_PSK#0x}
cpu() { awk '{print $14+$15}' "/proc/$1/stat"; }

bench_netns_up() {
  netns_up
  # The responder's selectors (10.97.0.0/16, one /32 per SA) must be local addresses there:
  # kernel-libipsec installs a route with a source address from local_ts for each CHILD SA.
  for i in $(seq 0 $((COUNT - 1))); do echo "addr add 10.97.$((i / 250)).$((i % 250 + 1))/32 dev lo"; done | ip -n "$NS_E" -batch -
}

# ---- configs ---------------------------------------------------------------------------------
qkd_initiator_conf() {  # qkd_initiator_conf IKE_PROPOSAL: COUNT gateways bench-i on west
  mkdir -p "$WORK/west"
  (umask 077; echo "$SWAN_PSK" > "$WORK/west/psk")
  { echo "[daemon]"; echo "control_socket = \"$WORK/west/ctl.sock\""; echo "log_level = \"${BENCH_LOG:-warn}\""; echo 'dataplane = "userspace"'
    for i in $(seq 0 $((COUNT - 1))); do
      cat <<EOT
[[gateway]]
name = "bench-$i"
local_address = "$IP_W"
remote_address = "$IP_E"
local_id = "bench-$i.west.bench.test"
remote_id = "east.bench.test"
psk_file = "$WORK/west/psk"
ike_proposals = "$1"
esp_proposals = "aes256gcm16"
local_ts = ["$NET_W"]
remote_ts = ["10.97.$((i / 250)).$((i % 250 + 1))/32"]
dpd_interval = 0
EOT
    done; } > "$WORK/west/qkdgate.toml"
}
qkd_responder_conf() {  # qkd_responder_conf IKE_PROPOSAL
  mkdir -p "$WORK/east"
  (umask 077; echo "$SWAN_PSK" > "$WORK/east/psk")
  cat > "$WORK/east/qkdgate.toml" <<EOT
[daemon]
control_socket = "$WORK/east/ctl.sock"
log_level = "${BENCH_LOG:-warn}"
dataplane = "userspace"
[[gateway]]
name = "bench"
local_address = "$IP_E"
remote_address = "$IP_W"
local_id = "east.bench.test"
remote_id = "bench-*.west.bench.test"
psk_file = "$WORK/east/psk"
ike_proposals = "$1"
esp_proposals = "aes256gcm16"
local_ts = ["10.97.0.0/16"]
remote_ts = ["$NET_W"]
dpd_interval = 0
EOT
}
# qkd_supports IKE_PROPOSAL: does this qkdgated accept the proposal string? (writes the responder config)
qkd_supports() { qkd_responder_conf "$1"; "$QD" -c "$WORK/east/qkdgate.toml" --check >"$WORK/check.out" 2>&1; }
swan_conf() {  # swan_conf SIDE(west|east) DIR IKE_PROPOSAL [DIR_AS_SEEN_BY_CHARON]
  local side=$1 d=$2 prop=$3 c=${4:-$2}
  mkdir -p "$d/swanctl"
  cat > "$d/strongswan.conf" <<EOT
charon {
  load = random nonce openssl pem pkcs1 pkcs8 x509 pubkey revocation constraints kdf gmp curve25519 hmac gcm aes sha1 sha2 kernel-libipsec kernel-netlink socket-default updown vici
  install_routes = no
  dos_protection = no
  block_threshold = 1000000
  cookie_threshold = 1000000
  cookie_threshold_ip = 1000000
  init_limit_half_open = 0
  ikesa_table_size = 4096
  ikesa_table_segments = 16
  threads = 64
  plugins { vici { socket = unix://$c/charon.vici } }
  filelog { t { path = $c/charon.log
                default = ${BENCH_SWANLOG:-0}
                ike = ${BENCH_SWANLOG:-0} } }
  syslog { daemon { default = -1 } }
}
charon-systemd { journal { default = -1 } }
EOT
  if [ "$side" = east ]; then
    cat > "$d/swanctl/swanctl.conf" <<EOT
connections { bench { version = 2
  local_addrs = $IP_E
  remote_addrs = $IP_W
  proposals = $prop
  encap = yes
  unique = never
  dpd_delay = 0
  local { auth = psk
          id = east.bench.test }
  remote { auth = psk
           id = %any }
  children { bench { local_ts = 10.97.0.0/16
                     remote_ts = $NET_W
                     esp_proposals = aes256gcm16 } } } }
secrets { ike-bench { secret = $SWAN_PSK } }
EOT
  else
    { echo "connections {"
      for i in $(seq 0 $((COUNT - 1))); do
        cat <<EOT
  bench-$i { version = 2
    local_addrs = $IP_W
    remote_addrs = $IP_E
    proposals = $prop
    encap = yes
    dpd_delay = 0
    local { auth = psk
            id = bench-$i.west.bench.test }
    remote { auth = psk
             id = east.bench.test }
    children { bench-$i { local_ts = $NET_W
                          remote_ts = 10.97.$((i / 250)).$((i % 250 + 1))/32
                          esp_proposals = aes256gcm16 } } }
EOT
      done
      echo "}"
      echo "secrets { ike-bench { secret = $SWAN_PSK } }"; } > "$d/swanctl/swanctl.conf"
  fi
}

# ---- daemons -----------------------------------------------------------------------------------
declare -A PID
start_qkd() {  # start_qkd SIDE
  local side=$1 ns; ns=$(ns_of "$side")
  rm -f "$WORK/$side/ctl.sock"
  ip netns exec "$ns" "$QD" -c "$WORK/$side/qkdgate.toml" --foreground >"$WORK/$side/qkdgated.log" 2>&1 &
  PID[$side]=$!; PIDS+=($!)
  for _ in $(seq 1 100); do [ -S "$WORK/$side/ctl.sock" ] && return 0; sleep 0.1; done
  cat "$WORK/$side/qkdgated.log"; fail "qkdgated ($side) did not start"
}
start_charon() {  # start_charon SIDE IKE_PROPOSAL [ss5|ss6]
  local side=$1 prop=$2 impl=${3:-ss5} ns d=$WORK/charon-$1; ns=$(ns_of "$side")
  rm -rf "$d"
  if [ "$impl" = ss6 ]; then
    swan_conf "$side" "$d" "$prop" /run/pq
    ss6_launch "$ns" "$d"
    PID[$side]=$SS6_PID
    ss6_swanctl "$SS6_PID" --load-all >/dev/null 2>&1 || fail "swanctl --load-all ($side, strongSwan 6.1)"
  else
    swan_conf "$side" "$d" "$prop"
    STRONGSWAN_CONF=$d/strongswan.conf ip netns exec "$ns" /usr/sbin/charon-systemd >"$d/stdout" 2>&1 </dev/null &
    PID[$side]=$!; PIDS+=($!)
    for _ in $(seq 1 100); do [ -S "$d/charon.vici" ] && break; sleep 0.1; done
    SWANCTL_DIR=$d/swanctl nsx "$ns" swanctl --load-all --uri "unix://$d/charon.vici" >/dev/null 2>&1 || fail "swanctl --load-all ($side)"
  fi
}
stop_side() { kill "${PID[$1]}" 2>/dev/null; for _ in $(seq 1 50); do kill -0 "${PID[$1]}" 2>/dev/null || break; sleep 0.1; done; kill -9 "${PID[$1]}" 2>/dev/null; }

# run NAME DRIVER...: prints a JSON line with rate and CPU per SA of both daemons
run() {
  local name=$1; shift
  local w0 e0 w1 e1 res
  w0=$(cpu "${PID[west]}"); e0=$(cpu "${PID[east]}")
  res=$("$@") || fail "driver failed in run $name"
  w1=$(cpu "${PID[west]}"); e1=$(cpu "${PID[east]}")
  python3 - "$res" "$name" <<PY
import json, sys
r = json.loads(sys.argv[1]); ok = max(r["ok"], 1)
r["run"] = sys.argv[2]
r["cpu_ms_per_sa_initiator"] = round(($w1 - $w0) * 1000 / $hz / ok, 3)
r["cpu_ms_per_sa_responder"] = round(($e1 - $e0) * 1000 / $hz / ok, 3)
print(json.dumps(r))
PY
}
qkd_drive() { nsx "$NS_W" python3 "$here/qkdgate_bench.py" "$WORK/west/ctl.sock" bench "$COUNT" "$PAR" ${QKD_POLL:+--poll "$QKD_POLL"}; }
swan_drive() { nsx "$NS_W" python3 "$here/vici_bench.py" "$WORK/charon-west/charon.vici" bench "$COUNT" "$PAR"; }
