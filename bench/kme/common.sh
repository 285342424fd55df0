# Shared by bench/kme/run.sh and instr.sh (sourced; run from the repository root).

# kme_bench_build: builds qkd-kme and kme_bench (QKD_BUILD_DIR or the release preset); sets $bin.
kme_bench_build() {
  if [ -n "${QKD_BUILD_DIR:-}" ]; then
    cmake --build "$QKD_BUILD_DIR" --target qkd-kme kme_bench >/dev/null; bin=$QKD_BUILD_DIR/bin
  else
    cmake --preset release >/dev/null && cmake --build --preset release --target qkd-kme kme_bench >/dev/null; bin=build/release/bin
  fi
}

# kme_bench_prepare DIR THREADS: demo PKI and configs for KME_A and KME_B in DIR, set up for load
# (long reservation TTL, a large fast device buffer, THREADS event-loop threads per KME), and the
# DIR/demo.json the generator reads.
kme_bench_prepare() {
  local dir=$1 threads=$2
  "$bin/qkd-kme" demo "$dir" --prepare-only --log-level warn >/dev/null
  sed -i 's/^reservation_ttl = .*/reservation_ttl = 300/; s/^max_key_count = .*/max_key_count = 10000000/; s/^key_rate = .*/key_rate = 1e9/' "$dir"/kme_*.toml
  sed -i "s/^\[kme\]$/[kme]\nthreads = $threads/" "$dir"/kme_*.toml
  python3 - "$dir" <<'PY'
import json, sys, re, os
d = sys.argv[1]
def port(f):
    return re.search(r'listen = "127.0.0.1:(\d+)"', open(os.path.join(d, f)).read()).group(1)
json.dump({"ca": "pki/ca.pem", "kmes": [{"kme_id": "KME_A", "url": "https://127.0.0.1:" + port("kme_a.toml")},
                                        {"kme_id": "KME_B", "url": "https://127.0.0.1:" + port("kme_b.toml")}]},
          open(os.path.join(d, "demo.json"), "w"))
PY
}
