#!/usr/bin/env bash
# KME benchmark: qkd-kme (two KMEs, persistence on) against nginx serving a static JSON body of
# the same size over the same mutual-TLS set-up, measured by the same load generator in one run.
# Usage: bench/kme/run.sh [CONNS] [SECONDS]     (builds the release preset first)
# Env: QKD_BUILD_DIR (use this build tree), QKD_KME_THREADS (event-loop threads per KME, default 1),
#      QKD_BENCH_THREADS (generator threads, default 2), QKD_BENCH_ROUNDS (default 3),
#      QKD_BENCH_PIN=0 (do not pin; by default KME_A's event loop runs on CPU 0 and KME_B's on CPU 1 through
#      [kme] cpu_affinity, and nginx's two workers likewise through worker_cpu_affinity),
#      QKD_BENCH_TMP=DIR (where the state goes, default /tmp),
#      QKD_BENCH_SYNC=full (both KMEs with [kme] state_sync = "full": every commit fsynced),
#      QKD_BENCH_PACED_ONLY=PAIRS_PER_S (only a paced KME phase at that rate, for profiling the tail),
#      QKD_BENCH_DUMP=FILE (with PACED_ONLY: each pair's start time and both latencies),
#      QKD_BENCH_PERF=FILE (perf profile of both KMEs; QKD_BENCH_PERF_CG for perf's call-graph
#      option, default -g), QKD_BENCH_STRACE=PREFIX (system call counts per KME; slows them down)
set -euo pipefail
cd "$(dirname "$0")/../.."
conns=${1:-16}; secs=${2:-5}
. bench/kme/common.sh
kme_bench_build
dir=$(mktemp -d "${QKD_BENCH_TMP:-/tmp}/qkd-kme-bench-XXXXXX")
# One event-loop thread per KME (QKD_KME_THREADS to change): the two KMEs share the two cores, as
# nginx's two worker processes do.
kme_bench_prepare "$dir" "${QKD_KME_THREADS:-1}"
# Each server's event loops on their own CPU (KME_A on 0, KME_B on 1; nginx's workers on 0 and 1),
# as an operator of a latency-sensitive server on a small machine would set it: unpinned, the
# scheduler moves the single-threaded KMEs between the two CPUs and the tail at half load grows by
# a third to a half (README, session 5). QKD_BENCH_PIN=0 lets both float.
pin=${QKD_BENCH_PIN:-1}; [ "$pin" = 0 ] && pin=
if [ -n "$pin" ]; then
  sed -i 's/^\[kme\]$/[kme]\ncpu_affinity = [0]/' "$dir/kme_a.toml"
  sed -i 's/^\[kme\]$/[kme]\ncpu_affinity = [1]/' "$dir/kme_b.toml"
fi
if [ -n "${QKD_BENCH_SYNC:-}" ]; then
  sed -i "s/^\[kme\]\$/[kme]\nstate_sync = \"$QKD_BENCH_SYNC\"/" "$dir/kme_a.toml" "$dir/kme_b.toml"
fi
# Both servers (the KMEs and nginx alike) run at nice -10 so the load generator's threads on the
# same two cores do not preempt them; on a real deployment the load comes from other machines.
nice -n -10 "$bin/qkd-kme" serve -c "$dir/kme_a.toml" 2>"$dir/a.log" & pa=$!
nice -n -10 "$bin/qkd-kme" serve -c "$dir/kme_b.toml" 2>"$dir/b.log" & pb=$!
ngport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$dir/nginx"
cat >"$dir/nginx/nginx.conf" <<NGX
user root;
worker_processes 2;
${pin:+worker_cpu_affinity 01 10;}
pid $dir/nginx/nginx.pid;
error_log $dir/nginx/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  default_type application/json;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$ngport ssl;
    ssl_protocols TLSv1.3;
    ssl_certificate $dir/pki/kme_a.pem;
    ssl_certificate_key $dir/pki/kme_a.key;
    ssl_client_certificate $dir/pki/ca.pem;
    ssl_verify_client on;
    root $dir;
    location = /static.json { }
  }
}
NGX
cleanup() { kill $pa $pb 2>/dev/null || true; [ -f "$dir/nginx/nginx.pid" ] && kill "$(cat "$dir/nginx/nginx.pid")" 2>/dev/null || true; }
trap cleanup EXIT
sleep 0.5
echo '{}' > "$dir/static.json"
nice -n -10 nginx -c "$dir/nginx/nginx.conf"
# QKD_BENCH_PERF=FILE: also record a CPU profile (perf, cpu-clock) of both KMEs during the KME phase.
if [ -n "${QKD_BENCH_STRACE:-}" ]; then  # syscall counts per KME (slows them down)
  (sleep 1.5; timeout 3 strace -c -f -p "$pa" -o "$QKD_BENCH_STRACE.a" & timeout 3 strace -c -f -p "$pb" -o "$QKD_BENCH_STRACE.b"; wait) &
fi
if [ -n "${QKD_BENCH_PERF:-}" ]; then
  (sleep 1.5; perf record -q -F 1999 -e cpu-clock ${QKD_BENCH_PERF_CG:--g} -o "$QKD_BENCH_PERF" -p "$pa,$pb" -- sleep "$secs" >/dev/null 2>&1) &
fi
export QKD_BENCH_KME_PIDS="$pa,$pb"
QKD_BENCH_NGINX_PIDS=$(pgrep -d, -P "$(cat "$dir/nginx/nginx.pid")" || true)
export QKD_BENCH_NGINX_PIDS
rc=0
"$bin/kme_bench" "$dir" "$ngport" "$conns" "$secs" || rc=$?
# How KME_A answered Get key: from prefetched reservations, or with a reservation round trip.
mport=$(sed -n 's/^metrics_listen = "127.0.0.1:\([0-9]*\)"/\1/p' "$dir/kme_a.toml")
curl -s "http://127.0.0.1:$mport/metrics" | awk '
  /^qkd_kme_keys_served_total.*master/ {m=$2} /^qkd_kme_keys_served_from_prefetch_total/ {p=$2}
  /^qkd_kme_keys_burned_total/ {b=$2} /^qkd_kme_keys_prefetched_total/ {f=$2}
  END {printf "  KME_A: %d master keys, %d from prefetch (%.2f%%), %d prefetched, %d burned\n", m, p, m ? 100*p/m : 0, f, b}'
# Time inside each KME (request parsed -> response ready, all phases): the share of the tail that
# is the server's own work, as opposed to scheduling and the network stack.
for k in a b; do
  mp=$(sed -n 's/^metrics_listen = "127.0.0.1:\([0-9]*\)"/\1/p' "$dir/kme_$k.toml")
  curl -s "http://127.0.0.1:$mp/metrics" | awk -v kme="KME_${k^^}" '
    /^qkd_kme_db_commits_total/ { commits = $2 } /^qkd_kme_db_synced_commits_total/ { synced = $2 } /^qkd_kme_db_pages_written_total/ { pages = $2 } /^qkd_kme_db_wal_restarts_total/ { restarts = $2 }
    /^qkd_kme_request_seconds_bucket/ && /endpoint="(enc_keys|dec_keys|kme_reserve)"/ {
      match($0, /endpoint="[a-z_]*"/); e = substr($0, RSTART + 10, RLENGTH - 11)
      match($0, /le="[^"]*"/); le = substr($0, RSTART + 4, RLENGTH - 5)
      n[e, le] = $2; if (le == "+Inf") tot[e] = $2 }
    END { for (e in tot) if (tot[e] > 0)
      printf "  %s %s: %d requests, in-server time <= 0.25 ms %.3f%%, <= 0.5 ms %.3f%%, <= 1 ms %.3f%%, <= 2 ms %.3f%%\n", kme, e, tot[e],
        100*n[e,"0.00025"]/tot[e], 100*n[e,"0.0005"]/tot[e], 100*n[e,"0.001"]/tot[e], 100*n[e,"0.002"]/tot[e]
      printf "  %s: %d state-database commits (%d fsynced), %d pages written, WAL restarted %d times after a catch-up checkpoint\n", kme, commits, synced, pages, restarts }'
done
exit $rc
