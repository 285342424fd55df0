# Pieces shared by the netns tests' own topologies (lib.sh and multi_peer.sh). Source it after
# setting WORK, QKDGATED and PIDS, and defining fail().

# gw_write_config SIDE LOCAL_ADDR REMOTE_ADDR LOCAL_ID REMOTE_ID_TOML LOCAL_TS REMOTE_TS [extra gateway lines...]
# Writes $WORK/SIDE/qkdgate.toml (one gateway "peer", userspace data plane) and the shared test PSK.
# REMOTE_ID_TOML is a TOML value: '"east.qkdgate.test"' or '"*.peers.test"' or '["a", "b"]'.
gw_write_config() {
  local side=$1 la=$2 ra=$3 lid=$4 rid=$5 lts=$6 rts=$7
  shift 7
  mkdir -p "$WORK/$side"
  (umask 077; echo "0x5f1c2e8d9a0b4c3d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5" > "$WORK/$side/psk")
  cat > "$WORK/$side/qkdgate.toml" <<EOT
[daemon]
control_socket = "$WORK/$side/ctl.sock"
log_level = "${QKDGT_LOG_LEVEL:-info}"
dataplane = "userspace"
tun_name = "qkd0"

[[gateway]]
name = "peer"
local_address = "$la"
remote_address = "$ra"
local_id = "$lid"
remote_id = $rid
psk_file = "$WORK/$side/psk"
ike_proposals = "aes256gcm16-prfsha512-ecp521"
esp_proposals = "${QKDGT_ESP:-aes256gcm16}"
local_ts = ["$lts"]
remote_ts = ["$rts"]
$(printf '%s\n' "$@")
EOT
}

# gw_start SIDE NAMESPACE: qkdgated with $WORK/SIDE/qkdgate.toml in NAMESPACE; waits for its control socket.
gw_start() {
  local side=$1 ns=$2
  # Not through `nsx`: `ip netns exec` execs the daemon, so $! is the daemon itself.
  ip netns exec "$ns" "$QKDGATED" -c "$WORK/$side/qkdgate.toml" --foreground >"$WORK/$side/qkdgated.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 100); do [ -S "$WORK/$side/ctl.sock" ] && return 0; kill -0 "${PIDS[-1]}" 2>/dev/null || break; sleep 0.1; done
  fail "qkdgated ($side) did not open its control socket"
}
