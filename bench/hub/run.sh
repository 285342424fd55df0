#!/bin/bash
# A hub with many IKE SAs: one qkdgated responder (one gateway, remote_id "spoke-*.hub.test") and
# SPOKES initiator daemons with PER gateways each (start_action = "start": the daemons bring them up
# and keep them up by themselves). Measures on the hub: time until every SA is up, memory per IKE
# SA (VmRSS with all SAs minus VmRSS before the first, / count), idle CPU (utime + stime over IDLE
# seconds with every SA up, DPD every 30 s on), and the wall time and hub CPU of `qkdgate show
# ike-sa` (all pages; --json; filtered to one SA and to one spoke daemon) and `show child-sa`.
# Reference in the same run: the filtered listing that returns one SA, so the cost per listed SA is
# (all - one) / (count - 1).
#   sudo bench/hub/run.sh [QKDGATED] [QKDGATE] [SPOKES=4] [PER=250] [IDLE=60]
# Release build (build/release/bin by default). Needs root (network namespaces, TUN). Not a ctest.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
QD=${1:-$root/build/release/bin/qkdgated}
QG=${2:-$root/build/release/bin/qkdgate}
SPOKES=${3:-4}
PER=${4:-250}
IDLE=${5:-60}
COUNT=$((SPOKES * PER))
TAG=hb$$
WORK=$(mktemp -d /tmp/qkdhub-$TAG.XXXXXX)
HUB=qkdhub-$TAG-h
PIDS=()
hz=$(getconf CLK_TCK)

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
fail() { log "FAIL: $*"; for f in "$WORK"/*/qkdgated.log; do echo "---- $f"; tail -20 "$f"; done; exit 1; }
nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${PIDS[@]}"; do for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done; kill -9 "$pid" 2>/dev/null; done
  ip netns del "$HUB" 2>/dev/null
  for k in $(seq 1 "$SPOKES"); do ip netns del "qkdhub-$TAG-$k" 2>/dev/null; done
  [ -n "${KEEP_WORK:-}" ] && echo "kept $WORK" >&2 || rm -rf "$WORK"
}
trap cleanup EXIT
[ "$(id -u)" -eq 0 ] || { echo "run as root (namespaces, TUN, UDP 500)"; exit 1; }
[ -x "$QD" ] && [ -x "$QG" ] || { echo "no $QD / $QG: build the release preset first"; exit 1; }
[ "$PER" -le 256 ] || { echo "PER <= 256 (gateways per config)"; exit 1; }
# Spoke k's selectors are 10.(100+k).x.y/32, inside the hub's remote_ts 10.96.0.0/12 and clear of
# the outer 10.99.0.0/24 and the hub's LAN 10.98.0.0/24 (a selector route over an outer address
# would swallow the IKE traffic).
[ "$SPOKES" -le 11 ] || { echo "SPOKES <= 11"; exit 1; }
cpu() { awk '{print $14+$15}' "/proc/$1/stat"; }
rss_kb() { awk '/^VmRSS/{print $2}' "/proc/$1/status"; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
hubq() { nsx "$HUB" "$QG" -s "$WORK/hub/ctl.sock" "$@"; }

# ---- topology: a bridge in the hub namespace, one veth per spoke daemon
ip netns add "$HUB"
nsx "$HUB" ip link set lo up
nsx "$HUB" ip link add br0 type bridge
nsx "$HUB" ip addr add 10.99.0.1/24 dev br0
nsx "$HUB" ip link set br0 up
nsx "$HUB" ip addr add 10.98.0.1/32 dev lo
for k in $(seq 1 "$SPOKES"); do
  ns=qkdhub-$TAG-$k
  ip netns add "$ns"; nsx "$ns" ip link set lo up
  ip link add gw0 netns "$ns" type veth peer name "p$k" netns "$HUB"
  nsx "$HUB" ip link set "p$k" master br0; nsx "$HUB" ip link set "p$k" up
  nsx "$ns" ip addr add "10.99.0.$((k + 1))/24" dev gw0; nsx "$ns" ip link set gw0 up
done
for k in $(seq 1 "$SPOKES"); do
  for _ in $(seq 1 20); do nsx "qkdhub-$TAG-$k" ping -c1 -W1 10.99.0.1 >/dev/null 2>&1 && break; sleep 0.25; done
done

# ---- configs
psk=0x5f1c2e8d9a0b4c3d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5
mkdir -p "$WORK/hub"
(umask 077; echo $psk > "$WORK/hub/psk")
cat > "$WORK/hub/qkdgate.toml" <<EOT
[daemon]
control_socket = "$WORK/hub/ctl.sock"
log_level = "${HUB_LOG:-warn}"
dataplane = "userspace"
[[gateway]]
name = "spokes"
local_address = "10.99.0.1"
remote_address = "0.0.0.0"
local_id = "hub.hub.test"
remote_id = "spoke-*.hub.test"
psk_file = "$WORK/hub/psk"
local_ts = ["10.98.0.0/24"]
remote_ts = ["10.96.0.0/12"]
EOT
for k in $(seq 1 "$SPOKES"); do
  d=$WORK/s$k; mkdir -p "$d"; (umask 077; echo $psk > "$d/psk")
  { printf '[daemon]\ncontrol_socket = "%s"\nlog_level = "%s"\ndataplane = "userspace"\n' "$d/ctl.sock" "${SPOKE_LOG:-warn}"
    for i in $(seq 0 $((PER - 1))); do
      printf '[[gateway]]\nname = "s-%d"\nlocal_address = "10.99.0.%d"\nremote_address = "10.99.0.1"\n' "$i" $((k + 1))
      printf 'local_id = "spoke-%d-%d.hub.test"\nremote_id = "hub.hub.test"\npsk_file = "%s"\n' "$k" "$i" "$d/psk"
      printf 'local_ts = ["10.%d.%d.%d/32"]\nremote_ts = ["10.98.0.0/24"]\nstart_action = "start"\ndpd_interval = %s\n' $((100 + k)) $((i / 250)) $((i % 250 + 1)) "${SPOKE_DPD:-30}"
    done; } > "$d/qkdgate.toml"
done

start() {  # start NS DIR
  rm -f "$2/ctl.sock"
  ip netns exec "$1" "$QD" -c "$2/qkdgate.toml" --foreground >"$2/qkdgated.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 100); do [ -S "$2/ctl.sock" ] && return 0; sleep 0.1; done
  fail "qkdgated did not start ($2)"
}
count_up() { hubq show ike-sa --json 2>/dev/null | python3 -c 'import json,sys; print(sum(1 for s in json.load(sys.stdin) if s["state"]=="ESTABLISHED" and s["child_sas"]>0))'; }

start "$HUB" "$WORK/hub"; hub=${PIDS[-1]}
sleep 1
rss0=$(rss_kb "$hub")
t0=$(now_ms)
for k in $(seq 1 "$SPOKES"); do start "qkdhub-$TAG-$k" "$WORK/s$k"; done
up=0
while [ $(( $(now_ms) - t0 )) -lt 300000 ]; do
  up=$(count_up); [ "$up" -ge "$COUNT" ] && break; sleep 2
done
t_up=$(( $(now_ms) - t0 ))
[ "$up" -ge "$COUNT" ] || fail "only $up of $COUNT IKE SAs up after 300 s"
log "$COUNT IKE SAs up after $((t_up / 1000)) s"
sleep 5
rss1=$(rss_kb "$hub")

# ---- idle
c0=$(cpu "$hub"); s0=0; for p in "${PIDS[@]:1}"; do s0=$((s0 + $(cpu "$p"))); done
sleep "$IDLE"
c1=$(cpu "$hub"); s1=0; for p in "${PIDS[@]:1}"; do s1=$((s1 + $(cpu "$p"))); done
[ "$(count_up)" -ge "$COUNT" ] || fail "SAs went down while idle"

# ---- listing: median wall time of 5 runs, hub CPU of those 5
timed() {  # timed ARGS...: "median_ms hub_cpu_ms_per_run rows"
  local ts=() c0 c1 t rows
  c0=$(cpu "$hub")
  for _ in 1 2 3 4 5; do
    t=$(now_ms); hubq "$@" > "$WORK/out.txt" || fail "qkdgate $* failed"; ts+=($(( $(now_ms) - t )))
  done
  c1=$(cpu "$hub")
  rows=$(wc -l < "$WORK/out.txt")
  printf '%s %s %s\n' "$(printf '%s\n' "${ts[@]}" | sort -n | sed -n 3p)" $(( (c1 - c0) * 1000 / hz / 5 )) "$rows"
}
read -r l_all l_all_cpu l_all_rows < <(timed show ike-sa)
read -r l_json l_json_cpu _ < <(timed show ike-sa --json)
read -r l_one l_one_cpu l_one_rows < <(timed show ike-sa --peer spoke-1-7.hub.test)
read -r l_spoke l_spoke_cpu l_spoke_rows < <(timed show ike-sa --peer 'spoke-2-*')
read -r l_child l_child_cpu l_child_rows < <(timed show child-sa)
[ "$l_all_rows" -eq $((COUNT + 1)) ] && [ "$l_one_rows" -eq 2 ] && [ "$l_spoke_rows" -eq $((PER + 1)) ] &&
  [ "$l_child_rows" -eq $((COUNT + 1)) ] ||
  fail "unexpected row counts: all $l_all_rows, one $l_one_rows, one spoke $l_spoke_rows, child $l_child_rows (header line included)"

python3 - <<PY
import json
hz = $hz
r = {
  "ike_sas": $COUNT, "spoke_daemons": $SPOKES, "seconds_until_all_up": round($t_up / 1000, 1),
  "hub_rss_kib_before": $rss0, "hub_rss_kib_after": $rss1,
  "hub_kib_per_ike_sa": round(($rss1 - $rss0) / $COUNT, 2),
  "hub_idle_cpu_percent": round(($c1 - $c0) * 100 / hz / $IDLE, 2),
  "spokes_idle_cpu_percent": round(($s1 - $s0) * 100 / hz / $IDLE, 2),
  "idle_seconds": $IDLE,
  "show_ike_sa_ms": $l_all, "show_ike_sa_hub_cpu_ms": $l_all_cpu,
  "show_ike_sa_json_ms": $l_json, "show_ike_sa_json_hub_cpu_ms": $l_json_cpu,
  "show_ike_sa_one_peer_ms": $l_one, "show_ike_sa_one_peer_hub_cpu_ms": $l_one_cpu,
  "show_ike_sa_one_spoke_ms": $l_spoke, "show_child_sa_ms": $l_child, "show_child_sa_hub_cpu_ms": $l_child_cpu,
}
r["show_ike_sa_us_per_listed_sa"] = round(($l_all - $l_one) * 1000 / ($COUNT - 1), 1)
r["ratio_all_to_one"] = round($l_all / max($l_one, 1), 1)
print(json.dumps(r, indent=1))
PY
