#!/usr/bin/env bash
# Runs the whole test suite: the debug build (ASan + UBSan) with every unit, KAT, integration,
# end-to-end and interop test, then short libFuzzer runs of every harness (clang build).
# Usage: scripts/test.sh [ctest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)

cmake --preset debug >/dev/null
cmake --build --preset debug -j "$jobs"
ctest --preset debug -j "$jobs" --timeout 600 "$@"

if [ -z "${QKD_SKIP_FUZZ:-}" ]; then
  scripts/fuzz.sh 20
fi
