# strongSwan 6.1 (Debian "forky" root built by build-root.sh) as the east peer of a qkdgated west,
# in the namespaces of tests/netns/ike/lib.sh. Source after lib.sh; it brings in
# tests/interop/ike/swan.sh (the same connection template for 5.9.8 and 6.1) with SWAN_IMPL=ss6.
# Recipe from shared/tools/ike-peers-pq/start-peer.sh: charon-systemd chrooted into the root, in a
# private mount namespace with /proc, /dev (TUN for kernel-libipsec), /sys, a private tmpfs /run
# and $WORK/swan bound to /run/pq, inside the east network namespace.
SS6_ROOT=${PQ_ROOT:-/var/cache/pq-peers/forky}
SWAN_IMPL=ss6
SWAN_CDIR=/run/pq
. "$(dirname "${BASH_SOURCE[0]}")/../ike/swan.sh"

require_ss6() {
  [ -x "$SS6_ROOT/usr/sbin/charon-systemd" ] && [ -f "$SS6_ROOT/pq-peers-versions.txt" ] \
    || skip "no strongSwan 6.1 root at $SS6_ROOT: tests/interop/ike_pq/build-root.sh builds it (scripts/test.sh runs it)"
  [ -f "$SS6_ROOT/usr/lib/ipsec/plugins/libstrongswan-kernel-libipsec.so" ] \
    || skip "the root at $SS6_ROOT has no kernel-libipsec plugin (libcharon-extra-plugins)"
  command -v nsenter >/dev/null && command -v unshare >/dev/null || skip "nsenter/unshare missing (util-linux)"
}

# Version of the running peer, e.g. "strongSwan 6.1.0"
swan_version() { grep -m1 -o 'strongSwan [0-9][^,)]*' "$WORK/swan/charon.log"; }

# ss6_launch NAMESPACE DIR: charon-systemd from the root in NAMESPACE, seeing DIR as /run/pq (DIR
# holds strongswan.conf and swanctl/); waits for its vici socket; sets SS6_PID (also in PIDS).
ss6_launch() {
  local ns=$1 d=$2
  # Every step execs, so $! ends up being charon's PID (swc enters its namespaces by it).
  ip netns exec "$ns" unshare --mount --propagation private /bin/sh -ec '
    r=$1 d=$2
    mount -t proc proc "$r/proc"
    mount --rbind /dev "$r/dev"
    mount --rbind /sys "$r/sys"
    mount -t tmpfs -o mode=755 tmpfs "$r/run"
    mkdir -p "$r/run/pq"
    mount --bind "$d" "$r/run/pq"
    exec chroot "$r" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin STRONGSWAN_CONF=/run/pq/strongswan.conf /usr/sbin/charon-systemd' \
    sh "$SS6_ROOT" "$d" >"$d/charon.stdout" 2>&1 </dev/null &
  SS6_PID=$!
  PIDS+=($!)
  for _ in $(seq 1 100); do [ -S "$d/charon.vici" ] && break; kill -0 "$SS6_PID" 2>/dev/null || break; sleep 0.1; done
  [ -S "$d/charon.vici" ] || { cat "$d/charon.stdout" "$d/charon.log"; fail "strongSwan 6 charon ($ns) did not come up"; }
}

# ss6_swanctl PID COMMAND [options]: the root's swanctl against the charon with that PID
ss6_swanctl() {
  local pid=$1 cmd=$2; shift 2
  nsenter --target "$pid" --mount --net --root --wd -- \
    env SWANCTL_DIR=/run/pq/swanctl /usr/sbin/swanctl "$cmd" --uri unix:///run/pq/charon.vici "$@"
}

start_swan6() {
  write_swan
  : > "$WORK/swan/charon.log"
  ss6_launch "$NS_E" "$WORK/swan"
  SWAN_PID=$SS6_PID
  swc --load-all >"$WORK/swan/load.out" 2>&1 || { cat "$WORK/swan/load.out"; fail "swanctl --load-all failed"; }
  log "peer: $(swan_version) from $SS6_ROOT, pid $SWAN_PID"
}
