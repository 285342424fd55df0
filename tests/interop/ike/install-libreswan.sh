#!/bin/bash
# libreswan 4.10 from Debian 12, unpacked (not installed: its package conflicts with strongSwan's)
# into /opt/libreswan-4.10. Its shared-library dependencies are ordinary packages listed in
# scripts/test-packages.txt. Idempotent; needs root and apt access.
set -euo pipefail
root=${LSW_ROOT:-/opt/libreswan-4.10}
[ -x "$root/usr/libexec/ipsec/pluto" ] && exit 0
tmp=$(mktemp -d)
chmod 755 "$tmp"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && apt-get download -q libreswan)
mkdir -p "$root"
dpkg -x "$tmp"/libreswan_*.deb "$root"
"$root/usr/libexec/ipsec/pluto" --version 2>&1 | head -1
