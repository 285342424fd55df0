#!/usr/bin/env bash
# Trusted-node relay benchmark (issue 17): key pairs through one relay (KME_A - KME_R - KME_C) beside
# the direct pair (KME_A - KME_B), same machine, same generator, alternating rounds of one run.
# Usage: bench/kme/relay.sh [CONNS] [SECONDS]   (builds the release preset first; QKD_BUILD_DIR to
# use another build tree). Every KME: one event-loop thread, prefetch off (each Get key crosses its
# path), a fast large emulated buffer, persistence on (SQLite WAL).
set -euo pipefail
cd "$(dirname "$0")/../.."
conns=${1:-16}; secs=${2:-4}
. bench/kme/common.sh
if [ -n "${QKD_BUILD_DIR:-}" ]; then
  cmake --build "$QKD_BUILD_DIR" --target qkd-kme relay_bench >/dev/null; bin=$QKD_BUILD_DIR/bin
else
  cmake --preset release >/dev/null && cmake --build --preset release --target qkd-kme relay_bench >/dev/null; bin=build/release/bin
fi
dir=$(mktemp -d "${QKD_BENCH_TMP:-/tmp}/qkd-kme-relay-bench-XXXXXX")
kme_bench_prepare "$dir/direct" 1   # the pair, as bench/kme/run.sh sets it up
"$bin/qkd-kme" demo "$dir/relay" --relay --prepare-only --log-level warn >/dev/null
sed -i 's/^reservation_ttl = .*/reservation_ttl = 300/; s/^max_key_count = .*/max_key_count = 10000000/; s/^key_rate = .*/key_rate = 1e9/' "$dir"/relay/kme_*.toml
sed -i 's/^\[kme\]$/[kme]\nthreads = 1/' "$dir"/relay/kme_*.toml
sed -i 's/^prefetch_keys = .*/prefetch_keys = 0/' "$dir"/direct/kme_*.toml
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
for f in "$dir"/direct/kme_a.toml "$dir"/direct/kme_b.toml "$dir"/relay/kme_a.toml "$dir"/relay/kme_r.toml "$dir"/relay/kme_c.toml; do
  nice -n -10 "$bin/qkd-kme" serve -c "$f" 2>"$f.log" & pids+=($!)
done
python3 - "$dir/relay" <<'PY'
import json, os, re, sys
d = sys.argv[1]
kmes = []
for name in ("kme_a", "kme_r", "kme_c"):
    t = open(os.path.join(d, name + ".toml")).read()
    kmes.append({"kme_id": re.search(r'(?m)^id = "(\w+)"', t).group(1),
                 "url": "https://127.0.0.1:" + re.search(r'(?m)^listen = "127\.0\.0\.1:(\d+)"', t).group(1)})
json.dump({"ca": "pki/ca.pem", "kmes": kmes}, open(os.path.join(d, "demo.json"), "w"))
PY
sleep 1
"$bin/relay_bench" "$dir/direct" "$dir/relay" "$conns" "$secs"
