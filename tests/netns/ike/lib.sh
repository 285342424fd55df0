# Shared helpers for the qkdgated end-to-end tests in network namespaces. Source it.
#   usage in a test:  . "$(dirname "$0")/lib.sh" QKDGATED QKDGATE ; netns_up ; start_gw west ; ...
# Topology (all inside namespaces created here, deleted on exit):
#   ns west: veth 10.99.0.1/24, "LAN" address 10.98.1.1/32 on lo     (gateway west)
#   ns east: veth 10.99.0.2/24, "LAN" address 10.98.2.1/32 on lo     (gateway east)
#   tunnel: 10.98.1.0/24 <-> 10.98.2.0/24, userspace ESP over a TUN device in each namespace
# Exit code 77 = skipped (ctest SKIP_RETURN_CODE), with the reason printed.
set -u
QKDGATED=${1:?path to qkdgated}
QKDGATE=${2:?path to qkdgate}
TAG=${TEST_TAG:-t$$}
NS_W=qkdgt-$TAG-w
NS_E=qkdgt-$TAG-e
IP_W=10.99.0.1
IP_E=10.99.0.2
HOST_W=10.98.1.1
HOST_E=10.98.2.1
NET_W=10.98.1.0/24
NET_E=10.98.2.0/24
WORK=$(mktemp -d /tmp/qkdgt-$TAG.XXXXXX)
PIDS=()

log() { printf '[%s] %s\n' "$(date +%T.%N | cut -c1-12)" "$*" >&2; }
skip() { echo "SKIP: $*"; exit 77; }
fail() {
  log "FAIL: $*"
  for s in west east; do
    [ -f "$WORK/$s/qkdgated.log" ] && { echo "---- $s qkdgated log (tail)"; tail -40 "$WORK/$s/qkdgated.log"; }
  done
  exit 1
}
nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
ns_of() { case $1 in west) echo "$NS_W";; east) echo "$NS_E";; esac; }

require_env() {
  [ "$(id -u)" -eq 0 ] || skip "needs root (network namespaces, TUN, UDP 500)"
  command -v ip >/dev/null || skip "iproute2 (ip) not installed"
  [ -c /dev/net/tun ] || skip "/dev/net/tun missing"
  ip netns add "qkdgt-probe-$$" 2>/dev/null || skip "cannot create network namespaces here"
  ip netns del "qkdgt-probe-$$"
  [ -x "$QKDGATED" ] || skip "qkdgated not built ($QKDGATED)"
}

cleanup() {
  local pid
  # Everything still running inside our own namespaces (by PID), then what we recorded.
  for ns in "$NS_W" "$NS_E"; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do PIDS+=("$pid"); done
  done
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null
  done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null
  done
  ip netns del "$NS_W" 2>/dev/null
  ip netns del "$NS_E" 2>/dev/null
  if [ -n "${KEEP_WORK:-}" ]; then echo "work directory kept: $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

netns_up() {
  require_env
  ip netns add "$NS_W" && ip netns add "$NS_E" || fail "cannot create namespaces"
  ip link add gw0 netns "$NS_W" type veth peer name gw0 netns "$NS_E" || fail "cannot create the veth pair"
  local vw=gw0 ve=gw0
  nsx "$NS_W" ip addr add $IP_W/24 dev "$vw"
  nsx "$NS_E" ip addr add $IP_E/24 dev "$ve"
  for ns in "$NS_W" "$NS_E"; do
    nsx "$ns" ip link set lo up
    nsx "$ns" sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
  done
  nsx "$NS_W" ip link set "$vw" up
  nsx "$NS_E" ip link set "$ve" up
  nsx "$NS_W" ip addr add $HOST_W/32 dev lo
  nsx "$NS_E" ip addr add $HOST_E/32 dev lo
  nsx "$NS_W" ping -c1 -W2 $IP_E >/dev/null || fail "veth link west -> east does not work"
}

. "$(dirname "${BASH_SOURCE[0]}")/gw_common.sh"

# write_config SIDE [extra gateway lines...]
write_config() {
  local side=$1; shift
  if [ "$side" = west ]; then
    gw_write_config west "$IP_W" "$IP_E" west.qkdgate.test '"east.qkdgate.test"' "$NET_W" "$NET_E" "$@"
  else
    gw_write_config east "$IP_E" "$IP_W" east.qkdgate.test '"west.qkdgate.test"' "$NET_E" "$NET_W" "$@"
  fi
}

start_gw() {
  local side=$1
  [ -f "$WORK/$side/qkdgate.toml" ] || write_config "$side"
  gw_start "$side" "$(ns_of "$side")"
}

# qg SIDE ARGS...: the CLI against one side's daemon
qg() { local side=$1; shift; nsx "$(ns_of "$side")" "$QKDGATE" -s "$WORK/$side/ctl.sock" "$@"; }

# wait_child SIDE [SECONDS]: until the side shows an established IKE SA with a child SA
wait_child() {
  local side=$1 secs=${2:-20} end
  end=$(( $(date +%s) + secs ))
  while [ "$(date +%s)" -lt "$end" ]; do
    if qg "$side" show child-sa --json 2>/dev/null | python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin) else 1)' 2>/dev/null; then
      return 0
    fi
    sleep 0.2
  done
  return 1
}

# child_spis SIDE: "spi_in/spi_out" of every child SA, sorted, space separated
child_spis() { qg "$1" show child-sa --json | python3 -c 'import json,sys; print(" ".join(sorted(c["spi_in"]+"/"+c["spi_out"] for c in json.load(sys.stdin))))'; }
ike_spis() { qg "$1" show ike-sa --json | python3 -c 'import json,sys; print(" ".join(sorted(c["spi_i"]+"/"+c["spi_r"] for c in json.load(sys.stdin) if c["state"].upper()=="ESTABLISHED")))'; }

ping_tunnel() {  # ping_tunnel COUNT [INTERVAL]
  nsx "$NS_W" ping -c "${1:-3}" -i "${2:-0.2}" -W 2 -I $HOST_W $HOST_E
}

# tcp_transfer MEGABYTES: sends random bytes west -> east through the tunnel, compares SHA-256
tcp_transfer() {
  local mb=$1
  ip netns exec "$NS_E" python3 "$(dirname "${BASH_SOURCE[0]}")/tcp_sink.py" $HOST_E 5201 >"$WORK/sink.out" 2>&1 &
  local sink=$!
  PIDS+=($sink)
  sleep 0.3
  nsx "$NS_W" python3 "$(dirname "${BASH_SOURCE[0]}")/tcp_source.py" $HOST_W $HOST_E 5201 "$mb" >"$WORK/source.out" 2>&1 || { cat "$WORK/source.out"; return 1; }
  wait $sink
  log "source: $(cat "$WORK/source.out")"
  log "sink:   $(cat "$WORK/sink.out")"
  [ "$(awk '{print $1, $2}' "$WORK/source.out")" = "$(awk '{print $1, $2}' "$WORK/sink.out")" ]
}
