#!/bin/bash
# Where qkdgated's CPU per IKE SA goes: run B of ike_rate.sh (qkdgated -> qkdgated, COUNT SAs,
# PARALLEL in flight) with `perf record` (cpu-clock, DWARF call graphs) attached to one daemon
# for the drive only, then print perf's flat and caller-inclusive profiles.
#   usage: bench/ike/profile_daemon.sh [QKDGATED] [QKDGATE] [COUNT=250] [PARALLEL=16] [responder|initiator] [PROPOSAL]
#   env:   PERF_FREQ (default 4000 Hz), OUT (default /tmp/qkdgate-profile): perf.data and reports
# Needs root and perf (linux-perf); a release build (RelWithDebInfo: symbols, -O2).
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
QD=${1:-$root/build/release/bin/qkdgated}
QG=${2:-$root/build/release/bin/qkdgate}
COUNT=${3:-250}
PAR=${4:-16}
WHO=${5:-responder}
P=${6:-aes256gcm16-prfsha512-ecp521}
OUT=${OUT:-/tmp/qkdgate-profile}
. "$here/rate_lib.sh"
require_env
command -v perf >/dev/null || skip "perf not installed (package linux-perf)"
bench_netns_up
mkdir -p "$OUT"
qkd_initiator_conf "$P"
qkd_responder_conf "$P"
start_qkd east; start_qkd west
side=east; [ "$WHO" = initiator ] && side=west
perf record -e cpu-clock -F "${PERF_FREQ:-4000}" --call-graph dwarf,32768 -p "${PID[$side]}" -o "$OUT/perf.data" \
  >"$OUT/perf-record.log" 2>&1 &
perf_pid=$!
sleep 1   # perf attaches
res=$(run B qkd_drive) || fail "drive failed"
echo "$res"
kill -INT "$perf_pid"; wait "$perf_pid"
stop_side west; stop_side east
cat "$OUT/perf-record.log" >&2
tidy() { grep -v '^$' | grep -v '^#' | sed -e 's/ \{3,\}-  *-  *$//' -e 's/ *$//' | cut -c1-180; }
perf report -i "$OUT/perf.data" --no-children --stdio --sort dso --percent-limit 0.5 -g none 2>/dev/null | tidy > "$OUT/dso.txt"
perf report -i "$OUT/perf.data" --no-children --stdio --sort symbol --percent-limit 0.7 -g none 2>/dev/null | tidy > "$OUT/flat.txt"
perf report -i "$OUT/perf.data" --children --stdio --sort symbol --percent-limit 2 -g none 2>/dev/null | tidy > "$OUT/inclusive.txt"
ms=$(echo "$res" | python3 -c "import json,sys; print(json.load(sys.stdin)['cpu_ms_per_sa_$WHO'])")
perf script -i "$OUT/perf.data" -F ip,sym 2>/dev/null | python3 "$here/perf_buckets.py" "$ms" > "$OUT/buckets.txt"
echo "== $WHO ($P), $COUNT SAs, $PAR in flight, $ms ms CPU per SA: by library"; head -8 "$OUT/dso.txt"
echo "== where it goes (bench/ike/perf_buckets.py)"; cat "$OUT/buckets.txt"
echo "== inclusive (self + callees), qkd frames and named OpenSSL entry points"
grep -E 'qkd::|EVP_|EC_|ECDH|install|send' "$OUT/inclusive.txt" | head -40
echo "perf data and reports in $OUT (flat.txt, inclusive.txt, buckets.txt; perf report -i $OUT/perf.data for call graphs)"
