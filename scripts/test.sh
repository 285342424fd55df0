#!/usr/bin/env bash
# Runs the whole test suite: the debug build (ASan + UBSan) with every unit, KAT, integration,
# end-to-end and interop test, then short libFuzzer runs of every harness (clang build).
# Usage: scripts/test.sh [ctest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)

# What the tests need on top of the product (test peers, reference servers, Node.js 24).
scripts/test-setup.sh

# The xfrm (kernel ESP) end-to-end test runs in the QEMU VM of shared/tools/kernel-vm when it is
# there (this machine's kernel has no ESP); QKD_KERNEL_VM names its run-in-vm.sh.
if [ -z "${QKD_KERNEL_VM:-}" ]; then
  for cand in "${KERNEL_VM_DIR:-}/run-in-vm.sh" ../shared/tools/kernel-vm/run-in-vm.sh /work/shared/tools/kernel-vm/run-in-vm.sh; do
    if [ -f "$cand" ]; then
      if bash "$(dirname "$cand")/setup.sh" >/dev/null 2>&1; then export QKD_KERNEL_VM=$(realpath "$cand"); fi
      break
    fi
  done
fi
echo "test: QKD_KERNEL_VM=${QKD_KERNEL_VM:-<unset: the xfrm VM test will be skipped>}"
# strongSwan 6.1 peer root for tests/interop/ike_pq (debootstrap, ~75 s once, then cached); the tests skip without it.
bash tests/interop/ike_pq/build-root.sh || echo "test: no strongSwan 6.1 root (see above): the interop_ike_pq tests will be skipped"

cmake --preset debug >/dev/null
cmake --build --preset debug -j "$jobs"
ctest --preset debug -j "$jobs" --timeout 600 "$@"

if [ -z "${QKD_SKIP_FUZZ:-}" ]; then
  scripts/fuzz.sh 20
fi
