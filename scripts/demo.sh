#!/usr/bin/env bash
# Demo (issue 6): an IKEv2 tunnel between strongSwan (charon, kernel-libipsec) and ipsecgw
# running on DPDK net_af_packet ports, in three network namespaces (scripts/lib/topology.sh):
#
#   [demo-left: charon, 10.1.0.1] 198.51.100.1 ==veth== [demo-gw: ipsecgw] ==veth== [demo-right: 10.2.0.2]
#
# ipsecgw (examples/demo-tunnel.toml) initiates the tunnel itself; the demo pings and sends
# a UDP stream through it, shows what goes over the outer link, prints `ipsecgw show ...`
# and stops everything it started. Sets up what it needs (packages, release build).
# Run as root.
#   scripts/demo.sh            the tunnel demo (falls back to the forwarding demo if it fails)
#   scripts/demo.sh --forward  the plain forwarding demo (issue 4)
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $(id -u) == 0 ]] || { echo "demo.sh: run as root (namespaces, AF_PACKET)" >&2; exit 1; }

if [[ ${1:-} != --tunnel-inner ]]; then
    scripts/setup.sh
    echo "demo: cargo build --release -p ipsecgw"
    cargo build --release -p ipsecgw
    if [[ ${1:-} == --forward ]]; then
        DEMO=1 exec bash scripts/tests/forward_netns.sh
    fi
    if bash "$0" --tunnel-inner; then
        exit 0
    fi
    echo "demo: *** the tunnel demo FAILED (see the lines above); showing the forwarding demo instead ***" >&2
    DEMO=1 exec bash scripts/tests/forward_netns.sh
fi

# --- the tunnel demo (runs in its own bash so its exit trap cleans up before a fallback) ---
source scripts/lib/topology.sh
say() { echo "demo: $*"; }
show() { echo; echo "\$ ipsecgw show $*"; ip netns exec "$TOPO_GW" "$IPSECGW" show "$@" --socket "$SOCK"; }

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
IPSECGW=${IPSECGW:-$CARGO_TARGET_DIR/release/ipsecgw}
PSK=demo-psk-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
export IPSECGW_DEMO_PSK=$PSK

harness_init demo
say "building the topology (namespaces demo-left, demo-gw, demo-right)"
topo_create demo dpdk
harness_on_exit _demo_dpdk_cleanup
_demo_dpdk_cleanup() { rm -rf /var/run/dpdk/ipsecgw-demo; }

say "starting strongSwan's charon in $TOPO_LEFT (connection gw: 10.1.0.0/24 <-> 10.2.0.0/24)"
topo_left_charon left
topo_left_conn gw left CONN_PSK="$PSK"
charon_load left

CAP=$HARNESS_DIR/outer.pcap
netns_capture_start "$TOPO_LEFT" "$TOPO_LEFT_IF" "$CAP"
CAPPID=$HARNESS_LAST_PID

SOCK=$HARNESS_DIR/ipsecgw.sock
GWLOG=$HARNESS_DIR/ipsecgw.log
say "starting ipsecgw in $TOPO_GW: ipsecgw run --config examples/demo-tunnel.toml"
harness_spawn "$GWLOG" ip netns exec "$TOPO_GW" "$IPSECGW" run --config examples/demo-tunnel.toml --socket "$SOCK"
GWPID=$HARNESS_LAST_PID
harness_wait_until 30 grep -q "IKE manager on the punt path" "$GWLOG" || harness_die "ipsecgw did not start: $(tail -n 20 "$GWLOG")"

say "waiting for the tunnel (ipsecgw initiates: start_action = \"start\")"
charon_wait_child left gw net 15 || harness_die "no CHILD_SA at charon: $(tail -n 20 "$GWLOG")"
say "strongSwan: $(charon_sas left | grep '^CHILD' | grep -o 'state=[A-Z]* .*encap=[a-z]* spi-in=[0-9a-f]* spi-out=[0-9a-f]*' | head -n 1)"

replies=$(netns_ping "$TOPO_LEFT" "$TOPO_LEFT_INNER" "$TOPO_RIGHT_HOST" 10)
say "ping 10.1.0.1 (left, behind charon) -> 10.2.0.2 (right, behind ipsecgw): $replies/10 replies"
read -r got sent <<<"$(netns_udp_stream "$TOPO_RIGHT" "$TOPO_RIGHT_HOST" "$TOPO_LEFT" "$TOPO_LEFT_INNER" 1000 200)"
say "UDP stream right -> left through the tunnel: $got/$sent datagrams"
netns_capture_stop "$CAPPID"
say "outer link 198.51.100.0/24: $(capture_count "$CAP" "udp port 500") IKE on 500, $(capture_count "$CAP" "udp port 4500 and udp[8:4] = 0") IKE on 4500, $(capture_count "$CAP" "udp port 4500 and udp[8:4] != 0") ESP-in-UDP, $(capture_count "$CAP" "not arp and not udp port 500 and not udp port 4500") other (plaintext never: $(capture_contains "$CAP" "$HARNESS_UDP_MARKER" && echo SEEN || echo ok))"

show connections
show ike-sa
show child-sa
show stats
show drops

say "stopping ipsecgw (its exit report follows)"
harness_kill "$GWPID" 10
sed -n '/^port /,$p' "$GWLOG"
[[ $replies == 10 && $got == "$sent" ]] || harness_die "traffic through the tunnel was lost"
say "done: everything this demo created is removed on exit"
