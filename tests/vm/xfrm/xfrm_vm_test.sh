#!/usr/bin/env bash
# The xfrm backend end to end: natively when this kernel has ESP, else inside the VM of
# shared/tools/kernel-vm when QKD_KERNEL_VM names its run-in-vm.sh, else skipped (77).
# Usage: xfrm_vm_test.sh BIN_DIR
set -uo pipefail
bin=$(cd "${1:?usage: xfrm_vm_test.sh BIN_DIR}" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root"; exit 77; }
if "$bin/qkd-esp-tunnel" --probe; then
  exec "$here/xfrm_tunnel_guest.sh" "$bin"
fi
if [ -z "${QKD_KERNEL_VM:-}" ]; then
  echo "SKIP: this kernel has no ESP/GCM and QKD_KERNEL_VM (path to kernel-vm/run-in-vm.sh) is not set"
  exit 77
fi
[ -x "$QKD_KERNEL_VM" ] || [ -f "$QKD_KERNEL_VM" ] || { echo "SKIP: QKD_KERNEL_VM=$QKD_KERNEL_VM not found"; exit 77; }
# The guest sees the host's root read-only but has its own empty /tmp, and a checkout or build
# tree may live under /tmp (CI clones there): copy the guest script and the tool into the one
# folder shared with the guest.
share=$(mktemp -d)
trap 'rm -rf "$share"' EXIT
mkdir -p "$share/bin"
cp "$here/xfrm_tunnel_guest.sh" "$share/"
cp "$bin/qkd-esp-tunnel" "$share/bin/"
bash "$QKD_KERNEL_VM" --share "$share" --timeout "${QKD_KERNEL_VM_TIMEOUT:-420}" -- "$share/xfrm_tunnel_guest.sh" "$share/bin"
rc=$?
[ $rc = 125 ] && { echo "SKIP: the VM harness failed before the test ran (exit 125)"; exit 77; }
exit $rc
