#!/usr/bin/env bash
# Installs every Debian package qkdgate needs and builds the release binaries into build/release/bin.
# Usage: scripts/setup.sh [--deps-only]   (as root, or with sudo available)
#   --deps-only: install the packages and test tools, do not build (CI: the test command builds)
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
mapfile -t pkgs < <(grep -vE '^\s*(#|$)' scripts/packages.txt)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq || true
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# npm (for Node.js 24 below): Debian's package only when no npm is on the PATH. A NodeSource nodejs
# bundles npm and conflicts with Debian's npm package; that combination must not fail the set-up.
if ! command -v npm >/dev/null 2>&1; then
  echo "setup: installing npm"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends npm \
    || echo "setup: Debian's npm could not be installed (PQ TLS interop tests will be skipped)"
fi
# nginx is used as a reference server by tests and benchmarks only; do not leave Debian's default
# site running on port 80.
if command -v systemctl >/dev/null 2>&1; then $SUDO systemctl disable --now nginx >/dev/null 2>&1 || true; fi
$SUDO pkill -x nginx 2>/dev/null || true

# Test tools that do not come as Debian packages: Node.js 24 (OpenSSL 3.5) from the npm registry
# for the post-quantum TLS interop tests. Failure only makes those tests skip with the reason.
scripts/get-node24.sh >/dev/null 2>&1 || echo "setup: Node.js 24 not installed (PQ TLS interop tests will be skipped)"

if [ "${1:-}" = "--deps-only" ]; then
  echo "setup: dependencies installed"
  exit 0
fi

cmake --preset release >/dev/null
cmake --build --preset release
echo "setup: binaries in build/release/bin"
