#!/bin/bash
# IKE SA setup rate and CPU per SA (IKE_SA_INIT + IKE_AUTH with one CHILD SA; PSK,
# aes256gcm16-prfsha512-ecp521, ESP aes256gcm16), qkdgated against strongSwan 5.9.8 charon, same
# machine, same run, printed as ratios. Three runs in two network namespaces:
#   A  qkdgated -> charon     charon's responder CPU/SA (the reference); qkdgated initiator
#   B  qkdgated -> qkdgated   qkdgated's responder and initiator CPU/SA, rate
#   C  charon   -> charon     charon's initiator CPU/SA, rate (reference for B)
# usage: bench/ike/ike_rate.sh [QKDGATED] [QKDGATE] [COUNT=250] [PARALLEL=16]   (root; release build)
# CPU is read from /proc/PID/stat (utime + stime) of each daemon before and after each run.
# Every initiator gateway has its own identity (bench-N.west.bench.test, as the charon initiator
# in C); the qkdgated responder accepts them with one gateway, remote_id = "bench-*.west.bench.test".
# The qkdgated driver waits on the control socket ("initiate" with "wait"); QKD_POLL=0.02 selects
# the old polling driver instead (see README.md). COUNT <= 256: qkdgated's gateways per config.
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
QD=${1:-$root/build/release/bin/qkdgated}
QG=${2:-$root/build/release/bin/qkdgate}
COUNT=${3:-250}
PAR=${4:-16}
TEST_TAG=bn$$ QKDGT_LOG_LEVEL=warn . "$root/tests/netns/ike/lib.sh" "$QD" "$QG"
. "$root/tests/interop/ike/swan.sh"
require_env
require_swan
netns_up
# The responder's selectors (10.97.0.0/16, one /32 per SA) must be local addresses there:
# kernel-libipsec installs a route with a source address from local_ts for each CHILD SA.
for i in $(seq 0 $((COUNT - 1))); do echo "addr add 10.97.$((i / 250)).$((i % 250 + 1))/32 dev lo"; done | ip -n "$NS_E" -batch -
hz=$(getconf CLK_TCK)
PSK_HEX=${SWAN_PSK#0x}
cpu() { awk '{print $14+$15}' "/proc/$1/stat"; }
ms_per_sa() { python3 -c "import sys; print(round(($2-$1)*1000/$hz/max($3,1),3))"; }

# ---- configs ---------------------------------------------------------------------------------
qkd_initiator_conf() {  # N gateways bench-i on west, each its own /32 remote selector
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
ike_proposals = "aes256gcm16-prfsha512-ecp521"
esp_proposals = "aes256gcm16"
local_ts = ["$NET_W"]
remote_ts = ["10.97.$((i / 250)).$((i % 250 + 1))/32"]
dpd_interval = 0
EOT
    done; } > "$WORK/west/qkdgate.toml"
}
qkd_responder_conf() {
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
ike_proposals = "aes256gcm16-prfsha512-ecp521"
esp_proposals = "aes256gcm16"
local_ts = ["10.97.0.0/16"]
remote_ts = ["$NET_W"]
dpd_interval = 0
EOT
}
swan_conf() {  # swan_conf SIDE(west|east) DIR
  local side=$1 d=$2
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
  plugins { vici { socket = unix://$d/charon.vici } }
  filelog { t { path = $d/charon.log
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
  proposals = aes256gcm16-prfsha512-ecp521
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
    proposals = aes256gcm16-prfsha512-ecp521
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
start_charon() {  # start_charon SIDE
  local side=$1 ns d=$WORK/charon-$1; ns=$(ns_of "$side")
  swan_conf "$side" "$d"
  STRONGSWAN_CONF=$d/strongswan.conf ip netns exec "$ns" /usr/sbin/charon-systemd >"$d/stdout" 2>&1 </dev/null &
  PID[$side]=$!; PIDS+=($!)
  for _ in $(seq 1 100); do [ -S "$d/charon.vici" ] && break; sleep 0.1; done
  SWANCTL_DIR=$d/swanctl nsx "$ns" swanctl --load-all --uri "unix://$d/charon.vici" >/dev/null 2>&1 || fail "swanctl --load-all ($side)"
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

qkd_initiator_conf
qkd_responder_conf
log "A: qkdgated -> charon ($COUNT SAs, $PAR in flight)"
start_charon east; start_qkd west
A=$(run A qkd_drive); echo "$A"
stop_side west; stop_side east
log "B: qkdgated -> qkdgated"
start_qkd east; start_qkd west
B=$(run B qkd_drive); echo "$B"
stop_side west; stop_side east
log "C: charon -> charon"
start_charon east; start_charon west
C=$(run C swan_drive); echo "$C"
stop_side west; stop_side east

python3 - "$A" "$B" "$C" <<'PY'
import json, sys
a, b, c = (json.loads(x) for x in sys.argv[1:4])
def ratio(x, y): return round(x / y, 2) if y else float("nan")
print()
print("IKE SA setup (PSK, aes256gcm16-prfsha512-ecp521, one CHILD SA aes256gcm16), %d SAs, %d in flight" % (b["count"], b["parallel"]))
print("%-34s %10s %10s %12s %12s %6s" % ("run", "ok", "SAs/s", "resp ms/SA", "init ms/SA", "failed"))
for n, r in (("A qkdgated -> charon", a), ("B qkdgated -> qkdgated", b), ("C charon -> charon", c)):
    print("%-34s %10d %10.1f %12.3f %12.3f %6d" % (n, r["ok"], r["rate_per_s"], r["cpu_ms_per_sa_responder"], r["cpu_ms_per_sa_initiator"], r["failed"]))
resp = ratio(a["cpu_ms_per_sa_responder"], b["cpu_ms_per_sa_responder"])
init = ratio(c["cpu_ms_per_sa_initiator"], b["cpu_ms_per_sa_initiator"])
print()
print("responder SAs per CPU-second, qkdgated / charon: %.2fx  (target >= 1.5x)" % resp)
print("initiator SAs per CPU-second, qkdgated / charon: %.2fx" % init)
print("setup rate, qkdgated<->qkdgated / charon<->charon: %.2fx" % ratio(b["rate_per_s"], c["rate_per_s"]))
print(json.dumps({"responder_ratio": resp, "initiator_ratio": init, "rate_ratio": ratio(b["rate_per_s"], c["rate_per_s"])}))
PY
