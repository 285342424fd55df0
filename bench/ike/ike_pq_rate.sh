#!/bin/bash
# IKE SA setup CPU per SA, qkdgated against strongSwan 6.1 (Debian forky root, see
# tests/interop/ike_pq/build-root.sh), classical and post-quantum proposals, same machine, same run:
#   ecp521                 aes256gcm16-prfsha512-ecp521               IKE_SA_INIT + IKE_AUTH
#   ecp521-ke1_mlkem768    + one IKE_INTERMEDIATE with ML-KEM-768     (RFC 9242 / RFC 9370)
#   x25519-ke1_mlkem768    X25519 in IKE_SA_INIT, then ML-KEM-768
# PSK, one CHILD SA (aes256gcm16) per IKE SA. Per proposal and repetition, three runs:
#   A  qkdgated -> charon 6.1    charon's responder CPU/SA (the reference for ours)
#   B  qkdgated -> qkdgated      our responder and initiator CPU/SA
#   C  charon   -> charon 6.1    charon's initiator CPU/SA (the reference for ours), its responder
# A and B are left out (and said so) for a proposal this qkdgated does not accept yet.
# usage: bench/ike/ike_pq_rate.sh [QKDGATED] [QKDGATE] [COUNT=250] [PARALLEL=16] [REPEAT=3]
#        env PROPOSALS="ecp521 ecp521-ke1_mlkem768 x25519-ke1_mlkem768"   (root; release build)
# Prints one JSON line per run, then medians per proposal and the ratios against the targets:
# ours >= 1.6x strongSwan 6.1's SAs per responder CPU-second, hybrid <= 1.3x our classical SA.
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
QD=${1:-$root/build/release/bin/qkdgated}
QG=${2:-$root/build/release/bin/qkdgate}
COUNT=${3:-250}
PAR=${4:-16}
REPEAT=${5:-3}
PROPOSALS=${PROPOSALS:-ecp521 ecp521-ke1_mlkem768 x25519-ke1_mlkem768}
. "$here/rate_lib.sh"
require_env
require_ss6
bench_netns_up
out=$WORK/runs.jsonl
: > "$out"
busy() { awk '/^cpu /{print $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8}' /proc/stat; }
# record PROPOSAL RUN DRIVER: one run, tagged, with the share of host CPU used by anything else
record() {
  local p=$1 name=$2 line b0 t0 b1 t1 alg=-; shift 2
  read -r b0 t0 < <(busy)
  line=$(run "$name" "$@")
  read -r b1 t1 < <(busy)
  # What the qkdgated end negotiated (a run that silently left out an exchange must not count).
  if [ "$name" != C ]; then
    alg=$(qg west show ike-sa --json 2>/dev/null | python3 -c 'import json,sys; s=json.load(sys.stdin); print(sorted({x["algorithm"] for x in s if x["state"].upper()=="ESTABLISHED"}))')
  fi
  python3 - "$line" "$p" "$b0" "$t0" "$b1" "$t1" "$hz" "$alg" <<'PY' | tee -a "$out"
import json, sys
r = json.loads(sys.argv[1]); p = sys.argv[2]; b0, t0, b1, t1, hz = map(float, sys.argv[3:8])
r["proposal"] = p
r["qkdgated_algorithms"] = sys.argv[8]
own = (r["cpu_ms_per_sa_initiator"] + r["cpu_ms_per_sa_responder"]) * max(r["ok"], 1) / 1000 * hz + r.get("client_cpu_s", 0) * hz
r["other_cpu_pct"] = round(100 * ((b1 - b0) - own) / max(1, t1 - t0), 1)
print(json.dumps(r))
PY
}
for rep in $(seq 1 "$REPEAT"); do
  for short in $PROPOSALS; do
    P=aes256gcm16-prfsha512-$short
    if qkd_supports "$P"; then
      qkd_initiator_conf "$P"
      log "[$rep/$REPEAT] $short A: qkdgated -> charon 6.1 ($COUNT SAs, $PAR in flight)"
      start_charon east "$P" ss6; start_qkd west
      record "$short" A qkd_drive
      stop_side west; stop_side east
      log "[$rep/$REPEAT] $short B: qkdgated -> qkdgated"
      start_qkd east; start_qkd west
      record "$short" B qkd_drive
      stop_side west; stop_side east
    else
      log "[$rep/$REPEAT] $short: qkdgated refuses '$P' ($(head -1 "$WORK/check.out")): runs A and B left out"
    fi
    log "[$rep/$REPEAT] $short C: charon 6.1 -> charon 6.1"
    start_charon east "$P" ss6; start_charon west "$P" ss6
    record "$short" C swan_drive
    stop_side west; stop_side east
  done
done
python3 - "$out" "$PROPOSALS" "$(grep -m1 '^charon-systemd' "$SS6_ROOT/pq-peers-versions.txt")" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
props = sys.argv[2].split()
def valid(r):
    """every SA up, and qkdgated really ran the ML-KEM exchange the proposal asks for"""
    return r["ok"] == r["count"] and (r["run"] == "C" or "mlkem" not in r["proposal"] or "MLKEM" in r.get("qkdgated_algorithms", ""))
def med(p, run, key):
    v = [r[key] for r in rows if r["proposal"] == p and r["run"] == run and valid(r)]
    return statistics.median(v) if v else None
def fmt(x, f="%.3f"): return f % x if x is not None else "-"
def ratio(x, y): return x / y if x is not None and y else None
n = max(len([r for r in rows if r["proposal"] == p and r["run"] == "C"]) for p in props)
print()
print("IKE SA setup, PSK, one CHILD SA aes256gcm16; %d SAs, %d in flight; medians of %d repetitions; %s"
      % (rows[0]["count"], rows[0]["parallel"], n, sys.argv[3]))
print("%-22s %-26s %6s %8s %11s %11s %7s %7s  %s" % ("proposal", "run", "ok", "SAs/s", "resp ms/SA", "init ms/SA", "p50 ms", "other%", "qkdgated negotiated"))
names = {"A": "A qkdgated -> charon 6.1", "B": "B qkdgated -> qkdgated", "C": "C charon 6.1 -> 6.1"}
for p in props:
    for run in "ABC":
        sel = [r for r in rows if r["proposal"] == p and r["run"] == run]
        if not sel:
            print("%-22s %-26s %6s" % (p, names[run], "n/a")); continue
        if not any(valid(r) for r in sel):
            print("%-22s %-26s  not counted: %d/%d SAs up, qkdgated negotiated %s" % (p, names[run], min(r["ok"] for r in sel),
                  sel[0]["count"], sel[0].get("qkdgated_algorithms", "-"))); continue
        p50 = [r["lat_ms"]["p50"] for r in sel if r["lat_ms"]["p50"] is not None]
        print("%-22s %-26s %6s %8.1f %11s %11s %7s %7.1f  %s" % (p, names[run], "%d/%d" % (min(r["ok"] for r in sel), sel[0]["count"]),
              statistics.median(r["rate_per_s"] for r in sel), fmt(med(p, run, "cpu_ms_per_sa_responder")),
              fmt(med(p, run, "cpu_ms_per_sa_initiator")), fmt(statistics.median(p50) if p50 else None, "%.1f"),
              statistics.median(r["other_cpu_pct"] for r in sel), sel[0].get("qkdgated_algorithms", "-")))
print()
summary = {}
base = props[0]
for p in props:
    resp = ratio(med(p, "A", "cpu_ms_per_sa_responder"), med(p, "B", "cpu_ms_per_sa_responder"))
    init = ratio(med(p, "C", "cpu_ms_per_sa_initiator"), med(p, "B", "cpu_ms_per_sa_initiator"))
    hyb = ratio(med(p, "B", "cpu_ms_per_sa_responder"), med(base, "B", "cpu_ms_per_sa_responder"))
    hyb_ss = ratio(med(p, "C", "cpu_ms_per_sa_responder"), med(base, "C", "cpu_ms_per_sa_responder"))
    summary[p] = {"responder_ratio": resp and round(resp, 2), "initiator_ratio": init and round(init, 2),
                  "our_cost_vs_%s" % base: hyb and round(hyb, 2), "strongswan_cost_vs_%s" % base: hyb_ss and round(hyb_ss, 2)}
    print("%-22s responder SAs/CPU-s ours / 6.1: %s (target >= 1.6)   initiator: %s   our responder CPU vs %s: %s%s   6.1's: %s"
          % (p, fmt(resp, "%.2fx"), fmt(init, "%.2fx"), base, fmt(hyb, "%.2fx"), " (target <= 1.3)" if p != base else "",
             fmt(hyb_ss, "%.2fx")))
print(json.dumps(summary))
PY
