#!/bin/bash
# Issue 16 benchmark: IKE SA setup rate, latency and responder CPU per SA with the QKD round
# (aes256gcm16-prfsha512-ecp521-ke1_mlkem768-ke2_qkd, two `qkd-kme demo` KMEs in the loop, one per
# namespace as in tests/integration/qkd_ike/combined_netns.sh) against the same proposal without
# QKD (...-ke1_mlkem768), alternating in the same run, ROUNDS times each (run-to-run spread).
# Then checks every key_ID of every QKD run was delivered exactly once as master (KME_A, west) and
# once as slave (KME_B, east), from the gateways' info logs.
# usage: bench/qkd/run.sh [QKDGATED] [QKDGATE] [QKD_KME] [COUNT=250] [PARALLEL=16] [ROUNDS=2]
# (root; release build). COUNT <= 256 (qkdgated's gateways per config); the key accounting covers
# COUNT * ROUNDS QKD tunnels through the one KME pair.
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
QD=${1:-$root/build/release/bin/qkdgated}
QG=${2:-$root/build/release/bin/qkdgate}
KME_BIN=${3:-$root/build/release/bin/qkd-kme}
COUNT=${4:-250}
PAR=${5:-16}
ROUNDS=${6:-2}
export BENCH_LOG=info   # the per-key log line is the key_ID accounting; same level in both runs
ike_here=$root/bench/ike
here=$ike_here   # rate_lib's qkd_drive finds qkdgate_bench.py in $here
. "$ike_here/rate_lib.sh"
require_env
[ -x "$KME_BIN" ] || skip "qkd-kme not built: $KME_BIN"
bench_netns_up
P=aes256gcm16-prfsha512-ecp521-ke1_mlkem768
PQ=$P-ke2_qkd

D=$WORK/demo
"$KME_BIN" demo "$D" --prepare-only --log-level warn >/dev/null || fail "qkd-kme demo --prepare-only failed"
pa=$(sed -n 's/^listen = "127.0.0.1:\([0-9]*\)"/\1/p' "$D/kme_a.toml")
pb=$(sed -n 's/^listen = "127.0.0.1:\([0-9]*\)"/\1/p' "$D/kme_b.toml")
sed -i "s|^listen = \"127.0.0.1:$pa\"|listen = \"0.0.0.0:$pa\"|; s|url = \"https://127.0.0.1:$pb\"|url = \"https://$IP_E:$pb\"|" "$D/kme_a.toml"
sed -i "s|^listen = \"127.0.0.1:$pb\"|listen = \"0.0.0.0:$pb\"|; s|url = \"https://127.0.0.1:$pa\"|url = \"https://$IP_W:$pa\"|" "$D/kme_b.toml"
start_kme() {  # start_kme a|b
  local k=$1 ns port
  [ "$k" = a ] && { ns=$NS_W; port=$pa; } || { ns=$NS_E; port=$pb; }
  ip netns exec "$ns" "$KME_BIN" serve -c "$D/kme_$k.toml" >>"$WORK/kme_$k.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 100); do nsx "$ns" bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null && return 0; sleep 0.1; done
  fail "KME_$k did not listen on $port"
}
start_kme a
start_kme b
profile() { sed "s|\"\.\./pki/|\"$D/pki/|g" "$D/site-$1/qkdgate.toml" | sed -n '/^\[\[qkd_profile\]\]/,$p'; }

configs() {  # configs qkd|plain
  if [ "$1" = qkd ]; then
    qkd_initiator_conf "$PQ"; qkd_responder_conf "$PQ"
    sed -i 's/^dpd_interval = 0$/&\nqkd = { profile = "kme-a", peer_sae_id = "SAE_B", mode = "require" }/' "$WORK/west/qkdgate.toml"
    sed -i 's/^dpd_interval = 0$/&\nqkd = { profile = "kme-b", peer_sae_id = "SAE_A", mode = "require" }/' "$WORK/east/qkdgate.toml"
    profile a >>"$WORK/west/qkdgate.toml"; profile b >>"$WORK/east/qkdgate.toml"
  else
    qkd_initiator_conf "$P"; qkd_responder_conf "$P"
  fi
}
mkdir -p "$WORK/logs"
results=()
for r in $(seq 1 "$ROUNDS"); do
  for kind in plain qkd; do
    configs $kind
    start_qkd east; start_qkd west
    log "round $r: $kind ($COUNT SAs, $PAR in flight)"
    res=$(run "$kind" qkd_drive); echo "$res"
    results+=("$res")
    stop_side west; stop_side east
    cp "$WORK/west/qkdgated.log" "$WORK/logs/west-$kind-$r.log"; cp "$WORK/east/qkdgated.log" "$WORK/logs/east-$kind-$r.log"
  done
done

python3 - "$WORK/logs" "$COUNT" "$PAR" "${results[@]}" <<'PY'
import json, re, sys, glob, collections, statistics as st
logs, count, par = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
runs = [json.loads(x) for x in sys.argv[4:]]
plain = [r for r in runs if r["run"] == "plain"]; qkd = [r for r in runs if r["run"] == "qkd"]
def spread(v): return "%.3f (%s)" % (st.mean(v), " ".join("%.3f" % x for x in v))
print("\nIKE SA setup, PSK, one CHILD SA, %d SAs per run, %d in flight, %d rounds (qkdgated <-> qkdgated)" % (count, par, len(qkd)))
print("%-6s %4s %7s %9s %12s %12s %9s %9s" % ("run", "ok", "failed", "SAs/s", "resp ms/SA", "init ms/SA", "p50 ms", "p90 ms"))
for r in runs:
    print("%-6s %4d %7d %9.1f %12.3f %12.3f %9.1f %9.1f" % (r["run"], r["ok"], r["failed"], r["rate_per_s"],
          r["cpu_ms_per_sa_responder"], r["cpu_ms_per_sa_initiator"], r["lat_ms"]["p50"], r["lat_ms"]["p90"]))
def m(rs, f): return st.mean(f(r) for r in rs)
rate = m(qkd, lambda r: r["rate_per_s"]) / m(plain, lambda r: r["rate_per_s"])
resp_d = m(qkd, lambda r: r["cpu_ms_per_sa_responder"]) - m(plain, lambda r: r["cpu_ms_per_sa_responder"])
init_d = m(qkd, lambda r: r["cpu_ms_per_sa_initiator"]) - m(plain, lambda r: r["cpu_ms_per_sa_initiator"])
p50_d = m(qkd, lambda r: r["lat_ms"]["p50"]) - m(plain, lambda r: r["lat_ms"]["p50"])
# KME round trips as the gateways measured them (the log line of each key: "KME x.y ms").
rtt = {"master": [], "slave": []}
seen = collections.defaultdict(list)
pat = re.compile(r'QKD key ([0-9a-f-]{36}) from profile "(kme-[ab])" as (master|slave) \(\d+ bits, KME ([0-9.]+) ms\)')
for f in sorted(glob.glob(logs + "/*-qkd-*.log")):
    for k, prof, role, ms in pat.findall(open(f).read()):
        seen[k].append((prof, role)); rtt[role].append(float(ms))
bad = {k: v for k, v in seen.items() if sorted(v) != [("kme-a", "master"), ("kme-b", "slave")]}
ok_qkd = sum(r["ok"] for r in qkd)
print()
print("QKD / no-QKD: SAs/s %.2fx; responder CPU/SA %s vs %s ms (+%.3f ms/SA, target <= 0.2); initiator +%.3f ms/SA" % (
    rate, spread([r["cpu_ms_per_sa_responder"] for r in qkd]), spread([r["cpu_ms_per_sa_responder"] for r in plain]), resp_d, init_d))
print("QKD / no-QKD: responder CPU/SA ratio %.2fx; p50 setup latency +%.1f ms" % (
    m(qkd, lambda r: r["cpu_ms_per_sa_responder"]) / m(plain, lambda r: r["cpu_ms_per_sa_responder"]), p50_d))
if rtt["master"]:
    print("KME round trip seen by the gateways: master (Get key, incl. KME_A->KME_B reservation) p50 %.1f ms, slave (Get key with key IDs) p50 %.1f ms; latency target: +p50 <= one master round trip -> %s" % (
        st.median(rtt["master"]), st.median(rtt["slave"]), "met" if p50_d <= st.median(rtt["master"]) else "NOT met"))
print("key_IDs: %d distinct, %d delivered exactly once to master and once to slave, %d bad; %d QKD IKE SAs established" % (
    len(seen), len(seen) - len(bad), len(bad), ok_qkd))
if bad: print("bad sample:", list(bad.items())[:3])
print(json.dumps({"rate_ratio": round(rate, 3), "resp_cpu_delta_ms": round(resp_d, 3), "init_cpu_delta_ms": round(init_d, 3),
                  "p50_latency_delta_ms": round(p50_d, 2), "keys": len(seen), "bad_keys": len(bad), "qkd_sas": ok_qkd}))
sys.exit(1 if bad or len(seen) != ok_qkd else 0)
PY
