#!/usr/bin/env bash
# Installs every Debian package qkdgate needs (scripts/packages.txt) and builds the release binaries
# into build/release/bin. It installs only what the product needs to build and run: test peers and
# reference servers are installed by the test command (scripts/test-setup.sh), and nothing that runs
# on the machine is stopped, started or enabled here.
# Usage: scripts/setup.sh [--deps-only]   (as root, or with sudo available)
#   --deps-only: install the packages, do not build (CI: the test command builds)
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
if [ "${1:-}" = "--deps-only" ]; then
  echo "setup: dependencies installed"
  exit 0
fi

cmake --preset release >/dev/null
cmake --build --preset release
echo "setup: binaries in build/release/bin"
