# Helpers of the keep-up / reload tests (keep_*.sh): several gateways between west and east,
# fast failure detection, daemon restarts. Source after lib.sh.
# Gateway with index I: west selector 10.80.I.1/32 <-> east selector 10.81.I.1/32, identities
# NAME.west.test / NAME.east.test, so each has its own IKE SA, child SA and policies.
# Failure detection is shortened for the tests: dpd_interval 2 s; retransmissions at 0, 0.5,
# 1.4, 3.0 s, failing at 5.9 s (retransmit_timeout 0.5, base 1.8, tries 3); back-off 1, 2, 4 s.
KEEP_DPD=2
KEEP_ATTEMPT=6      # seconds until an unanswered attempt fails
KEEP_GAP=3          # the longest wait between two retransmissions
KEEP_STEP_MAX=4     # retry_delay_max
declare -A GWPID=()

# keep_config SIDE SPEC... ; SPEC = "NAME:INDEX[:EXTRA LINES, \n-separated]"
keep_config() {
  local side=$1; shift
  local la ra me them spec name idx extra lts rts
  if [ "$side" = west ]; then la=$IP_W; ra=$IP_E; me=west; them=east; else la=$IP_E; ra=$IP_W; me=east; them=west; fi
  mkdir -p "$WORK/$side"
  (umask 077; echo "0x5f1c2e8d9a0b4c3d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5" > "$WORK/$side/psk")
  {
    printf '[daemon]\ncontrol_socket = "%s"\nlog_level = "%s"\ndataplane = "userspace"\ntun_name = "qkd0"\n' \
      "$WORK/$side/ctl.sock" "${QKDGT_LOG_LEVEL:-info}"
    printf 'retransmit_timeout = 0.5\nretransmit_base = 1.8\nretransmit_tries = 3\n\n'
    for spec in "$@"; do
      name=${spec%%:*}; idx=${spec#*:}; extra=
      case $idx in *:*) extra=${idx#*:}; idx=${idx%%:*};; esac
      if [ "$side" = west ]; then lts=10.80.$idx.1/32; rts=10.81.$idx.1/32; else lts=10.81.$idx.1/32; rts=10.80.$idx.1/32; fi
      printf '[[gateway]]\nname = "%s"\nlocal_address = "%s"\nremote_address = "%s"\n' "$name" "$la" "$ra"
      printf 'local_id = "%s.%s.test"\nremote_id = "%s.%s.test"\npsk_file = "%s"\n' "$name" "$me" "$name" "$them" "$WORK/$side/psk"
      printf 'local_ts = ["%s"]\nremote_ts = ["%s"]\ndpd_interval = %s\nretry_delay = 1\nretry_delay_max = %s\n' \
        "$lts" "$rts" "$KEEP_DPD" "$KEEP_STEP_MAX"
      printf '%b\n\n' "$extra"
    done
  } > "$WORK/$side/qkdgate.toml.new"
  mv "$WORK/$side/qkdgate.toml.new" "$WORK/$side/qkdgate.toml"
}

# keep_hosts N: the selector addresses of gateways 1..N on lo of both namespaces
keep_hosts() {
  local i
  for i in $(seq 1 "$1"); do
    nsx "$NS_W" ip addr add 10.80.$i.1/32 dev lo
    nsx "$NS_E" ip addr add 10.81.$i.1/32 dev lo
  done
}

# keep_start SIDE / keep_kill SIDE (kill -9: no DELETE, as a crash or a power cut)
keep_start() {
  rm -f "$WORK/$1/ctl.sock"
  [ -f "$WORK/$1/qkdgated.log" ] && cat "$WORK/$1/qkdgated.log" >> "$WORK/$1/qkdgated.old.log"
  gw_start "$1" "$(ns_of "$1")"
  GWPID[$1]=${PIDS[-1]}
}
keep_kill() { kill -9 "${GWPID[$1]}"; wait "${GWPID[$1]}" 2>/dev/null; }

# ping_gw INDEX COUNT [INTERVAL]: through gateway INDEX's child SA
ping_gw() { nsx "$NS_W" ping -c "$2" -i "${3:-0.2}" -W 1 -I 10.80.$1.1 10.81.$1.1; }

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
# secs_since MS: seconds (1 decimal) since the now_ms value MS
secs_since() { local d=$(( $(now_ms) - $1 )); printf '%d.%d\n' $((d / 1000)) $(((d % 1000) / 100)); }

# wait_ping INDEX SECONDS [START_MS]: until one ping passes; prints the seconds since START_MS
# (default: now) it took
wait_ping() {
  local start=${3:-$(now_ms)} end
  end=$(( start + $2 * 1000 ))
  while [ "$(now_ms)" -le "$end" ]; do
    if ping_gw "$1" 1 >/dev/null 2>&1; then secs_since "$start"; return 0; fi
  done
  return 1
}

# gw_sas SIDE GATEWAY: the show ike-sa --json rows of one gateway
gw_sas() { qg "$1" show ike-sa "$2" --json; }
# gw_state SIDE GATEWAY: "ESTABLISHED spi_i/spi_r" lines, "CONNECTING attempt=N next=... err=..." lines
gw_state() {
  gw_sas "$1" "$2" | python3 -c '
import json, sys
for sa in json.load(sys.stdin):
    if sa["state"] == "ESTABLISHED":
        print("ESTABLISHED", sa["spi_i"] + "/" + sa["spi_r"])
    else:
        print(sa["state"], "attempt=%s" % sa.get("attempt"), "next=%s" % sa.get("next_try"), "err=%s" % sa.get("last_error"))'
}
established_spis() { gw_state "$1" "$2" | awk '$1=="ESTABLISHED"{print $2}' | sort | tr '\n' ' '; }

# wait_established SIDE GATEWAY SECONDS
wait_established() {
  local end=$(( $(date +%s) + $3 ))
  while [ "$(date +%s)" -le "$end" ]; do
    [ -n "$(established_spis "$1" "$2")" ] && return 0
    sleep 0.2
  done
  return 1
}
