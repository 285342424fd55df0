#!/usr/bin/env bash
# Builds the libFuzzer harnesses with clang and runs each for SECONDS (default 20).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-20}
cmake --preset fuzz >/dev/null
targets=$(find tests/fuzz -name '*_fuzz.cpp' -printf '%f\n' 2>/dev/null | sed 's/\.cpp$//' | sort)
if [ -z "$targets" ]; then echo "fuzz: no harnesses"; exit 0; fi
cmake --build --preset fuzz -j "$(nproc)" --target $targets
for t in $targets; do
  corpus=tests/fuzz/corpus/${t%_fuzz}
  work=$(mktemp -d)
  [ -d "$corpus" ] && cp -r "$corpus"/. "$work"/
  echo "fuzz: $t for ${secs}s"
  build/fuzz/bin/$t -max_total_time="$secs" -max_len=65536 -print_final_stats=1 "$work" 2>&1 | tail -3
  rm -rf "$work"
done
