#!/bin/bash
# Tunnels that stay up against strongSwan 5.9.8 (issue 18): either end is killed with SIGKILL (no
# DELETE) and started again; the tunnel comes back by itself and ping passes.
#   restart.sh QKDGATED QKDGATE swan-restarts | qkdgated-restarts
#   swan-restarts      qkdgated west initiates (start_action = "start", dpd_interval 2 s, fast
#                      retransmissions); charon east is killed and restarted: west's DPD fails
#                      and it re-initiates (dpd_action = "restart", the default)
#   qkdgated-restarts  charon east initiates with dpd_delay = 2s and dpd_action = restart;
#                      qkdgated west (responder) is killed and restarted: charon's DPD fails and
#                      charon re-initiates
TEST_TAG=rs${3:0:2}$$ . "$(dirname "$0")/../../netns/ike/lib.sh" "$1" "$2"
. "$(dirname "$0")/swan.sh"
mode=${3:?swan-restarts|qkdgated-restarts}
require_env
require_swan
netns_up
trap 'rc=$?; [ $rc -ne 0 ] && [ $rc -ne 77 ] && swan_log_tail; cleanup' EXIT
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
# wait_ping SECONDS START_MS: until a ping passes; prints the seconds since START_MS
wait_ping() {
  local end=$(( $2 + $1 * 1000 )) d
  while [ "$(now_ms)" -le "$end" ]; do
    if nsx "$NS_W" ping -c1 -W1 -I $HOST_W $HOST_E >/dev/null 2>&1; then
      d=$(( $(now_ms) - $2 )); printf '%d.%d\n' $((d / 1000)) $(((d % 1000) / 100)); return 0
    fi
    sleep 0.2
  done
  return 1
}
restart_west() {
  kill -9 "$WEST_PID"; wait "$WEST_PID" 2>/dev/null
  rm -f "$WORK/west/ctl.sock"
  cat "$WORK/west/qkdgated.log" >> "$WORK/west/qkdgated.old.log"
  start_gw west; WEST_PID=${PIDS[-1]}
}
restart_swan() {
  kill -9 "$SWAN_PID"; wait "$SWAN_PID" 2>/dev/null
  rm -f "$WORK/swan/charon.vici"
  start_swan
}

if [ "$mode" = swan-restarts ]; then
  write_config west 'start_action = "start"' 'dpd_interval = 2' 'retry_delay_max = 4'
  # Fast failure detection: retransmissions at 0, 0.5, 1.4, 3.0 s, failing at 5.9 s.
  sed -i 's/^tun_name = .*/&\nretransmit_timeout = 0.5\nretransmit_tries = 3/' "$WORK/west/qkdgate.toml"
  start_swan
  start_gw west; WEST_PID=${PIDS[-1]}
  wait_child west 20 || fail "no child SA on qkdgated within 20 s"
  for _ in $(seq 1 30); do nsx "$NS_E" ip route show table 220 | grep -q "$NET_W" && break; sleep 0.1; done
  wait_ping 10 "$(now_ms)" >/dev/null || fail "no ping through the tunnel"
  restart_swan
  t0=$(now_ms)
  bound=$(( 2 + 6 + 4 + 6 ))
  took=$(wait_ping $bound "$t0") || fail "ping did not pass within $bound s of charon's restart"
  grep -q "failed .*peer did not answer" "$WORK/west/qkdgated.log" || fail "qkdgated did not notice the dead peer"
else
  # strongSwan: DPD every 2 s, re-initiate when it fails; retransmissions at 0, 1, 2.4, 4.4 s, failing at 7.1 s.
  SWAN_CONN_EXTRA='dpd_delay = 2s' SWAN_CHILD_EXTRA='dpd_action = restart' SWAN_EXTRA='retransmit_tries = 3'
  export SWAN_CONN_EXTRA SWAN_CHILD_EXTRA SWAN_EXTRA
  write_config west
  start_swan
  start_gw west; WEST_PID=${PIDS[-1]}
  swan_establish they-initiate
  for _ in $(seq 1 30); do nsx "$NS_E" ip route show table 220 | grep -q "$NET_W" && break; sleep 0.1; done
  wait_ping 10 "$(now_ms)" >/dev/null || fail "no ping through the tunnel"
  restart_west
  t0=$(now_ms)
  bound=$(( 2 + 8 + 10 ))
  took=$(wait_ping $bound "$t0") || fail "ping did not pass within $bound s of qkdgated's restart"
fi
swc --list-sas | grep -E 'ESTABLISHED|INSTALLED'
log "$mode: ping passes again $took s after the restart"
echo "PASS: strongSwan interop, $mode: the tunnel came back by itself after $took s"
