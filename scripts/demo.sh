#!/usr/bin/env bash
# Demo (issue 4 stage): ipsecgw forwarding between two network namespaces over DPDK
# net_af_packet, a ping and a UDP stream through it, counters on exit. Sets up what it
# needs (packages, release build) and removes everything it created. Run as root.
# A later issue turns this into an IPsec tunnel against strongSwan.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $(id -u) == 0 ]] || { echo "demo.sh: run as root (namespaces, AF_PACKET)" >&2; exit 1; }
scripts/setup.sh
echo "demo: cargo build --release -p ipsecgw"
cargo build --release -p ipsecgw
DEMO=1 exec bash scripts/tests/forward_netns.sh
