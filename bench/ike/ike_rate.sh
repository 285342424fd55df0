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
. "$here/rate_lib.sh"
require_env
require_swan
bench_netns_up
P=aes256gcm16-prfsha512-ecp521

qkd_initiator_conf $P
qkd_responder_conf $P
log "A: qkdgated -> charon ($COUNT SAs, $PAR in flight)"
start_charon east $P; start_qkd west
A=$(run A qkd_drive); echo "$A"
stop_side west; stop_side east
log "B: qkdgated -> qkdgated"
start_qkd east; start_qkd west
B=$(run B qkd_drive); echo "$B"
stop_side west; stop_side east
log "C: charon -> charon"
start_charon east $P; start_charon west $P
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
