#!/bin/bash
# qkdgated's Prometheus endpoint, scraped with curl: two qkdgated in network namespaces, west with
# [daemon] metrics_port, east without (off by default). Checks the IKE/child SA gauges, the
# exchange counters and the ESP byte counters after a ping, that only GET /metrics is served, and
# that the endpoint listens on loopback only.
# Usage: metrics_scrape.sh QKDGATED QKDGATE    (exit 77 = skipped, reason printed)
TEST_TAG=ms$$ . "$(dirname "$0")/../../netns/ike/lib.sh"
command -v curl >/dev/null || skip "curl not installed"
PORT=9469
netns_up
write_config west 'start_action = "start"'
write_config east
sed -i "s/^tun_name = .*/&\nmetrics_port = $PORT/" "$WORK/west/qkdgate.toml"
start_gw east
start_gw west
wait_child west 20 || fail "no child SA on west within 20 s"
ping_tunnel 3 || fail "ping through the tunnel failed"

scrape() { nsx "$NS_W" curl -sS --max-time 5 "$@"; }
scrape -D "$WORK/headers" -o "$WORK/metrics" "http://127.0.0.1:$PORT/metrics" || fail "curl could not scrape west's /metrics"
cat "$WORK/metrics"
grep -q '^HTTP/1.1 200' "$WORK/headers" || fail "expected HTTP 200: $(head -1 "$WORK/headers")"
grep -qi '^content-type: text/plain; version=0.0.4' "$WORK/headers" || fail "expected the Prometheus text content type"
m() { grep -F "$1" "$WORK/metrics" | awk '{print $NF}'; }
[ "$(m 'qkdgate_ike_sas{gateway="peer",state="established"}')" = 1 ] || fail "expected 1 established IKE SA"
[ "$(m 'qkdgate_child_sas{gateway="peer"}')" = 1 ] || fail "expected 1 child SA"
[ "$(m 'qkdgate_exchanges_total{kind="ike_sa",result="up"}')" = 1 ] || fail "expected 1 IKE SA up"
[ "$(m 'qkdgate_exchanges_total{kind="child_sa",result="up"}')" -ge 1 ] || fail "expected a child SA up"
out=$(m 'qkdgate_esp_bytes_total{gateway="peer",direction="out"}')
pk=$(m 'qkdgate_esp_packets_total{gateway="peer",direction="in"}')
[ -n "$out" ] && [ "$out" -gt 0 ] || fail "ESP bytes out should be > 0 after a ping, got '$out'"
[ -n "$pk" ] && [ "$pk" -ge 3 ] || fail "ESP packets in should be >= 3 after 3 pings, got '$pk'"
grep -q '^# TYPE qkdgate_qkd_kme_rtt_seconds histogram' "$WORK/metrics" || fail "KME latency histogram not declared"
# Every sample line is NAME{labels} VALUE or NAME VALUE with a numeric value.
bad=$(grep -v '^#' "$WORK/metrics" | grep -Ev '^[a-z_]+(\{[^}]*\})? [0-9.e+-]+$' || true)
[ -z "$bad" ] || fail "malformed sample lines: $bad"

code=$(scrape -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/other")
[ "$code" = 404 ] || fail "GET /other: expected 404, got $code"
code=$(scrape -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$PORT/metrics")
[ "$code" = 405 ] || fail "POST /metrics: expected 405, got $code"
# Loopback only: not reachable on the gateway's own address, from east.
if nsx "$NS_E" curl -s --max-time 3 -o /dev/null "http://$IP_W:$PORT/metrics"; then fail "metrics reachable on $IP_W"; fi
# Off by default: east has no endpoint.
if nsx "$NS_E" curl -s --max-time 3 -o /dev/null "http://127.0.0.1:$PORT/metrics"; then fail "east serves metrics without metrics_port"; fi
echo "PASS: metrics scraped with curl (IKE/child SAs, exchanges, ESP bytes), 404/405, loopback only, off by default"
