#!/usr/bin/env bash
# ipsecgw forwards between two namespaces over DPDK net_af_packet (issue 4):
#
#   [fwdns-a 198.51.100.1/24] a0 ==veth== gw0 [fwdns-gw: ipsecgw] gw1 ==veth== b0 [fwdns-b 198.51.100.2/24]
#
# The gw namespace has no addresses and does not route, so every reply proves a frame went
# through ipsecgw both ways (L2 forwarding: both hosts are in one subnet). Checks: no ping
# before ipsecgw runs; ping and a UDP stream through it; SIGTERM ends it with exit 0 and
# per-port counters that saw the traffic. DEMO=1 prints what happens (scripts/demo.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib/netns.sh

TAG=fwdns
A=$TAG-a GW=$TAG-gw B=$TAG-b
say() { if [[ ${DEMO:-0} == 1 ]]; then echo "demo: $*"; else harness_log "$*"; fi; }

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
IPSECGW=${IPSECGW:-$CARGO_TARGET_DIR/release/ipsecgw}
if [[ ! -x $IPSECGW ]]; then
    say "building ipsecgw (release)"
    cargo build --release -p ipsecgw >&2
fi

harness_init "$TAG"
netns_add "$A"; netns_add "$GW"; netns_add "$B"
netns_veth "$A" a0 198.51.100.1/24 "$GW" gw0 -
netns_veth "$GW" gw1 - "$B" b0 198.51.100.2/24
netns_forwarding "$GW" 0

before=$(netns_ping "$A" 198.51.100.1 198.51.100.2 2)
[[ $before == 0 ]] || harness_die "ping works without ipsecgw ($before replies): the test would prove nothing"

# Main lcore + one worker (net_af_packet has one queue pair), on two CPUs when there are.
if (($(nproc) >= 2)); then LCORES='"-l", "0,1"'; else LCORES='"--lcores", "0@0,1@0"'; fi
cat >"$HARNESS_DIR/gw.toml" <<TOML
[dpdk]
eal_args = ["--no-huge", "-m", "512", "--no-pci", "--file-prefix", "$TAG-$$", $LCORES,
            "--vdev=net_af_packet0,iface=gw0", "--vdev=net_af_packet1,iface=gw1"]

[[port]]
name = "a-side"
dpdk_port = 0

[[port]]
name = "b-side"
dpdk_port = 1

[forward]
pairs = [["a-side", "b-side"]]
TOML

say "starting ipsecgw in $GW"
harness_spawn "$HARNESS_DIR/gw.log" ip netns exec "$GW" "$IPSECGW" run --config "$HARNESS_DIR/gw.toml"
GWPID=$HARNESS_LAST_PID
harness_wait_until 20 grep -q "forwarding a-side<->b-side" "$HARNESS_DIR/gw.log" ||
    harness_die "ipsecgw did not start: $(cat "$HARNESS_DIR/gw.log")"

replies=$(netns_ping "$A" 198.51.100.1 198.51.100.2 10)
say "ping 198.51.100.1 -> 198.51.100.2 through ipsecgw: $replies/10 replies"
# The first request may wait for ARP (also forwarded); every other one must come back.
((replies >= 9)) || harness_die "only $replies/10 ping replies through ipsecgw"

read -r got sent < <(netns_udp_stream "$A" 198.51.100.1 "$B" 198.51.100.2 1000 1200)
say "UDP 1000 x 1200 B through ipsecgw: $got/$sent received"
((got >= sent * 99 / 100)) || harness_die "UDP stream lost too much: $got/$sent"

kill -TERM "$GWPID"
rc=0
wait "$GWPID" || rc=$?
[[ ${DEMO:-0} == 1 ]] && cat "$HARNESS_DIR/gw.log"
((rc == 0)) || harness_die "ipsecgw exited with $rc after SIGTERM: $(cat "$HARNESS_DIR/gw.log")"
# Counter rows: name rx_pkts tx_pkts ...: the UDP stream went in at a-side and out at
# b-side, the pings both ways.
read -r _ a_rx a_tx _ < <(grep "^a-side " "$HARNESS_DIR/gw.log") || harness_die "no counters for a-side"
read -r _ b_rx b_tx _ < <(grep "^b-side " "$HARNESS_DIR/gw.log") || harness_die "no counters for b-side"
((a_rx >= got + 9 && b_tx >= got + 9 && b_rx >= 9 && a_tx >= 9)) ||
    harness_die "counters too low: a-side rx $a_rx tx $a_tx, b-side rx $b_rx tx $b_tx"
say "ipsecgw stopped cleanly on SIGTERM; counters above"
echo "forward_netns: ok ($replies/10 pings, $got/$sent UDP through ipsecgw)"
