#!/usr/bin/env bash
# Installs what the tests and benchmarks need on top of the product's own packages (run by
# scripts/test.sh; idempotent, quick when everything is there). As root, or with sudo.
#   - Debian packages of scripts/test-packages.txt. Reference peers that come with a service
#     (nginx, strongSwan) are installed WITHOUT starting it (a temporary policy-rc.d), and a unit
#     that this installation enabled is disabled again: the tests start their own instances in
#     network namespaces, and nothing may take UDP 500/4500 or port 80 from the machine's own
#     services at the next boot. Nothing already running is stopped.
#   - Node.js 24 (OpenSSL 3.5) from the npm registry, libreswan 4.10 unpacked into /opt.
# A tool that cannot be installed only makes the tests that need it skip, with the reason.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
mapfile -t pkgs < <(grep -vE '^\s*(#|$)' scripts/test-packages.txt)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# The wanted-by links of enabled units, sorted.
enabled_units() { find /etc/systemd/system -path '*.wants/*' \( -name '*.service' -o -name '*.socket' \) 2>/dev/null | sort; }
if [ ${#missing[@]} -gt 0 ]; then
  mapfile -t enabled_before < <(enabled_units)
  echo "test-setup: installing ${missing[*]}"
  policy=/usr/sbin/policy-rc.d
  restore_policy() { :; }
  if [ ! -e "$policy" ]; then
    # invoke-rc.d asks this script before starting a service; 101 = "not allowed".
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
    $SUDO chmod 755 "$policy"
    restore_policy() { $SUDO rm -f "$policy"; }
  fi
  trap restore_policy EXIT
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq || true
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
  restore_policy
  trap - EXIT
  # Units that the maintainer scripts of the packages installed just now (or their dependencies)
  # enabled: disabled again (deb-systemd-helper works with or without a running systemd).
  comm -13 <(printf '%s\n' "${enabled_before[@]}") <(enabled_units) | while read -r link; do
    u=$(basename "$link")
    $SUDO deb-systemd-helper disable "$u" >/dev/null 2>&1 || true
    [ -L "$link" ] && $SUDO rm -f "$link"
    echo "test-setup: $u came with a test peer; left disabled and not started"
  done
fi
# npm (for Node.js 24 below): Debian's package only when no npm is on the PATH. A NodeSource nodejs
# bundles npm and conflicts with Debian's npm package; that combination must not fail the set-up.
if ! command -v npm >/dev/null 2>&1; then
  echo "test-setup: installing npm"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends npm \
    || echo "test-setup: Debian's npm could not be installed (PQ TLS interop tests will be skipped)"
fi
# Node.js 24 (OpenSSL 3.5) for the post-quantum TLS interop tests; failure only makes them skip.
scripts/get-node24.sh >/dev/null 2>&1 || echo "test-setup: Node.js 24 not installed (PQ TLS interop tests will be skipped)"
echo "test-setup: test dependencies installed"
