#!/usr/bin/env bash
# Instructions per key pair in each KME, counted by callgrind: a figure that does not drift with
# this machine's speed (bench/kme/run.sh's timings drift by tens of percent within seconds), for
# comparing code changes. User-space instructions only; system calls and the kernel's network
# stack are not counted.
# Usage: bench/kme/instr.sh [PAIRS_PER_S] [SECONDS]   (defaults 200 and 12; the release build)
# Env: QKD_BUILD_DIR (build tree to use; default build/release), QKD_INSTR_KEEP=1 (keep the
#      callgrind files for callgrind_annotate; their directory is printed)
set -euo pipefail
cd "$(dirname "$0")/../.."
rate=${1:-200}; secs=${2:-12}
command -v valgrind >/dev/null || { echo "instr.sh: needs valgrind (apt install valgrind)" >&2; exit 2; }
. bench/kme/common.sh
kme_bench_build
dir=$(mktemp -d /tmp/qkd-kme-instr-XXXXXX)
pa=; pb=
cleanup() { kill $pa $pb 2>/dev/null || true; [ -n "${QKD_INSTR_KEEP:-}" ] || rm -rf "$dir"; }
trap cleanup EXIT
kme_bench_prepare "$dir" 1
valgrind --tool=callgrind --callgrind-out-file="$dir/cg.a" "$bin/qkd-kme" serve -c "$dir/kme_a.toml" 2>"$dir/a.log" & pa=$!
valgrind --tool=callgrind --callgrind-out-file="$dir/cg.b" "$bin/qkd-kme" serve -c "$dir/kme_b.toml" 2>"$dir/b.log" & pb=$!
# Under valgrind the KMEs start slowly: wait until both answer (any HTTP status) on their ports.
for k in a b; do
  port=$(sed -n 's/^listen = "127.0.0.1:\([0-9]*\)"/\1/p' "$dir/kme_$k.toml")
  for _ in $(seq 1 120); do curl -sk -o /dev/null "https://127.0.0.1:$port/" && break || sleep 0.5; done
done
mcount() {  # master keys served by KME_A so far (metrics endpoint)
  local mp; mp=$(sed -n 's/^metrics_listen = "127.0.0.1:\([0-9]*\)"/\1/p' "$dir/kme_a.toml")
  curl -s "http://127.0.0.1:$mp/metrics" | awk '/^qkd_kme_keys_served_total.*master/ {print $2}'
}
# Counters are zeroed once the generator's warm-up is over, and dumped when it ends; the pairs in
# between are counted by KME_A's metrics.
(sleep 4; callgrind_control -z "$pa" >/dev/null 2>&1; callgrind_control -z "$pb" >/dev/null 2>&1; mcount >"$dir/m0") &
zeroer=$!
QKD_BENCH_THREADS=1 QKD_BENCH_PACED_ONLY=$rate "$bin/kme_bench" "$dir" 1 16 "$secs" >/dev/null
wait $zeroer
callgrind_control -d "$pa" >/dev/null 2>&1; callgrind_control -d "$pb" >/dev/null 2>&1
pairs=$(( $(mcount) - $(cat "$dir/m0") ))
ia=$(grep -m1 '^summary:' "$dir/cg.a.1" | awk '{print $2}'); ib=$(grep -m1 '^summary:' "$dir/cg.b.1" | awk '{print $2}')
awk -v p="$pairs" -v a="$ia" -v b="$ib" 'BEGIN {
  printf "instructions per pair (%d pairs): KME_A (Get key) %.1fk, KME_B (Get key with key IDs, refills) %.1fk, both %.1fk\n", p, a/p/1000, b/p/1000, (a+b)/p/1000 }'
[ -n "${QKD_INSTR_KEEP:-}" ] && echo "callgrind files: $dir/cg.a.1 $dir/cg.b.1"
exit 0
