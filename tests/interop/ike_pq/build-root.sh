#!/bin/bash
# Builds (or reuses) the Debian "forky" root that the strongSwan 6.1 interop tests run their peer
# from: debootstrap --variant=minbase from the host's Debian mirror, then strongSwan 6.1 + OpenSSL
# 3.6 (ML-KEM through strongSwan's openssl plugin) installed inside it. About 75 s the first time,
# instant afterwards. Called by scripts/test.sh before ctest (a test command, not the product's
# set-up); the tests in this folder skip (77) while the root is missing.
# Adapted from shared/tools/ike-peers-pq/setup.sh (same cache location and layout, so a root built
# by either is reused by the other): Debian 13's strongSwan 6.0.1 has no ML-KEM, hence testing.
#   usage: build-root.sh [--rebuild]
#   env:   PQ_ROOT (default /var/cache/pq-peers/forky), PQ_MIRROR (default: the host's Debian
#          mirror from its apt sources)
# Exit: 0 = the root is ready, 77 = it cannot be built here (reason printed), 1 = build failed.
set -u
ROOT=${PQ_ROOT:-/var/cache/pq-peers/forky}
CACHE=$(dirname "$ROOT")
rebuild=0
[ "${1:-}" = --rebuild ] && rebuild=1
log() { printf '[%s] build-root: %s\n' "$(date +%T)" "$*" >&2; }
skip() { echo "SKIP: strongSwan 6.1 root not built: $*"; exit 77; }
die() { log "ERROR: $*"; exit 1; }

ready() { [ -f "$ROOT/pq-peers-versions.txt" ] && [ -x "$ROOT/usr/sbin/charon-systemd" ]; }
if ready && [ $rebuild = 0 ]; then
  log "reusing $ROOT ($(grep -m1 '^charon-systemd' "$ROOT/pq-peers-versions.txt"))"
  exit 0
fi
[ "$(id -u)" = 0 ] || skip "needs root (debootstrap, chroot)"
export DEBIAN_FRONTEND=noninteractive
if ! command -v debootstrap >/dev/null; then
  # A test tool, installed by the test command (scripts/setup.sh does not need it).
  log "apt-get install debootstrap"
  command -v apt-get >/dev/null || skip "debootstrap missing and no apt-get"
  ls /var/lib/apt/lists/*Packages* >/dev/null 2>&1 || apt-get update -q >/dev/null 2>&1
  apt-get install -y -q --no-install-recommends debootstrap >/dev/null 2>&1 \
    || skip "debootstrap missing and apt-get install debootstrap failed (no package mirror?)"
fi
[ -f /usr/share/debootstrap/scripts/sid ] || skip "this debootstrap has no script for Debian testing (sid)"

mirror=${PQ_MIRROR:-}
if [ -z "$mirror" ]; then
  # The first Debian archive URI of the host's apt sources (deb822 or one-line style), not -security.
  mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
    grep -oE '(URIs:|^deb)[[:space:]]+(\[[^]]*\][[:space:]]+)?[a-z]+://[^[:space:]]+' | awk '{print $NF}' |
    grep -E '/debian/?$' | grep -v security | head -1)
  [ -n "$mirror" ] || skip "no Debian archive in the host's apt sources (set PQ_MIRROR)"
fi

PKGS="charon-systemd strongswan-swanctl libstrongswan-standard-plugins libstrongswan-extra-plugins
      libcharon-extra-plugins openssl iproute2 iputils-ping procps"

# run a command chrooted into $1 with /proc mounted, in a private mount namespace
in_chroot() {
  local r=$1; shift
  unshare --mount --propagation private /bin/sh -ec 'r=$1; shift; mount -t proc proc "$r/proc"; exec chroot "$r" "$@"' sh "$r" "$@"
}

mkdir -p "$CACHE" || die "cannot create $CACHE"
exec 9>"$CACHE/.lock"
flock 9   # one build at a time (another engineer's or the shared setup.sh)
if ready && [ $rebuild = 0 ]; then log "reusing $ROOT (built meanwhile)"; exit 0; fi
name=$(basename "$ROOT") tmp=$ROOT.tmp
rm -rf "$tmp"
log "debootstrap --variant=minbase forky from $mirror (~30 s)"
# Bounded: an unreachable mirror must not stall the test command.
if ! timeout 900 debootstrap --variant=minbase forky "$tmp" "$mirror" /usr/share/debootstrap/scripts/sid \
    > "$CACHE/$name.debootstrap.log" 2>&1; then
  tail -5 "$CACHE/$name.debootstrap.log" >&2
  rm -rf "$tmp"
  # No mirror reachable or no "forky" suite on it: the peer cannot exist on this machine.
  skip "debootstrap forky from $mirror failed (see $CACHE/$name.debootstrap.log)"
fi
cp /etc/resolv.conf "$tmp/etc/resolv.conf" 2>/dev/null || true
echo "deb $mirror forky main" > "$tmp/etc/apt/sources.list"
if ! in_chroot "$tmp" timeout 300 apt-get update -q > "$CACHE/$name.apt.log" 2>&1 || grep -q 'is expired' "$CACHE/$name.apt.log"; then
  # a frozen mirror snapshot: its Release file is past Valid-Until
  log "the mirror's Release file is expired (snapshot): Check-Valid-Until=false in the root only"
  echo 'Acquire::Check-Valid-Until "false";' > "$tmp/etc/apt/apt.conf.d/99pq-peers-snapshot"
  in_chroot "$tmp" timeout 300 apt-get update -q >> "$CACHE/$name.apt.log" 2>&1 || die "apt-get update in the root failed"
fi
log "apt-get install strongSwan 6 + OpenSSL in the root (~30 s)"
in_chroot "$tmp" timeout 900 env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $PKGS \
  >> "$CACHE/$name.apt.log" 2>&1 || die "apt-get install in the root failed, see $CACHE/$name.apt.log"
in_chroot "$tmp" apt-get clean
{
  echo "# pq-peers root '$name': debootstrap --variant=minbase forky, mirror $mirror, built $(date -u +%FT%TZ) by qkdgate tests/interop/ike_pq/build-root.sh"
  echo "debian_version $(cat "$tmp/etc/debian_version")"
  in_chroot "$tmp" dpkg-query -W -f='${Package} ${Version}\n' charon-systemd strongswan-swanctl strongswan-libcharon \
    libstrongswan libstrongswan-standard-plugins libstrongswan-extra-plugins libcharon-extra-plugins \
    openssl libssl3t64 libc6
} > "$tmp/pq-peers-versions.txt"
rm -rf "$ROOT"; mv "$tmp" "$ROOT"
log "ready at $ROOT ($(du -sxh "$ROOT" | cut -f1))"
cat "$ROOT/pq-peers-versions.txt"
