#!/usr/bin/env bash
# NAT keepalives end to end (RFC 3948 §2.3, RFC 7296 §2.23; issue 6): `ipsecgw ike` (the IKE
# manager on kernel UDP sockets) behind a source NAT, strongSwan's charon on the other side:
#
#   [nk-gw   : ipsecgw ike, 198.51.100.2]  default via 198.51.100.1
#        eth0 ==veth== in0 198.51.100.1
#   [nk-nat  : forwards, nftables (or iptables) SNAT 198.51.100.0/24 -> 203.0.113.1 on out0]
#        out0 203.0.113.1 ==veth== eth0 203.0.113.2
#   [nk-peer : charon + kernel-libipsec, owns 10.1.0.1]
#
# ipsecgw initiates with nat_keepalive = "2s". Asserted:
#   1. charon logs "remote host is behind NAT" (our NAT_DETECTION_SOURCE_IP did not match
#      what it saw, since the NAT rewrote our address) and sees us at the NAT's address;
#   2. ipsecgw says nat=both (we are behind a NAT; charon fakes one too, STRONGSWAN.md);
#   3. ESP is UDP-encapsulated on both sides (charon encap=yes, ours encap=udp);
#   4. on charon's link, 1-byte UDP datagrams 0xFF (no non-ESP marker) arrive from the
#      NAT's address to port 4500 (bounded wait for 3), and charon, which is not behind a
#      NAT, sends none back.
# The gaps between the keepalives are printed, not asserted (no timed assertions).
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib/topology.sh

TAG=nk
harness_init "$TAG"
topo_ipsecgw
if ! command -v nft >/dev/null && ! command -v iptables >/dev/null; then
    harness_log "installing nftables (for the NAT namespace)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q nftables >/dev/null 2>&1 ||
        harness_die "neither nft nor iptables, and 'apt-get install nftables' failed"
fi

GW=$TAG-gw NAT=$TAG-nat PEER=$TAG-peer
GW_ADDR=198.51.100.2 NAT_IN=198.51.100.1 NAT_OUT=203.0.113.1 PEER_ADDR=203.0.113.2
netns_add "$GW"
netns_add "$NAT"
netns_add "$PEER"
netns_veth "$GW" eth0 "$GW_ADDR/24" "$NAT" in0 "$NAT_IN/24"
netns_veth "$NAT" out0 "$NAT_OUT/24" "$PEER" eth0 "$PEER_ADDR/24"
ip -n "$GW" route add default via "$NAT_IN" || harness_die "default route in $GW failed"
netns_forwarding "$NAT" 1
# The NAT: rules live in the namespace and go away with it.
if command -v nft >/dev/null; then
    ip netns exec "$NAT" nft -f - <<EOF || harness_die "nft SNAT rule in $NAT failed"
table ip ${TAG}_nat {
    chain post {
        type nat hook postrouting priority srcnat;
        oifname "out0" ip saddr 198.51.100.0/24 snat to $NAT_OUT
    }
}
EOF
else
    ip netns exec "$NAT" iptables -t nat -A POSTROUTING -o out0 -s 198.51.100.0/24 -j SNAT --to-source "$NAT_OUT" ||
        harness_die "iptables SNAT rule in $NAT failed"
fi
# charon must own an address inside its local traffic selector (STRONGSWAN.md).
netns_local_addr "$PEER" 10.1.0.1/24

# charon: the baseline "left" side, answering whoever comes (we arrive as the NAT's address).
charon_start peer "$PEER" || harness_die "charon did not start"
charon_conn_from peer gw "$TOPO_BASELINE_DIR/topo-left.conn" CONN_LOCAL_ADDRS="$PEER_ADDR" CONN_REMOTE_ADDRS=%any
charon_load peer || harness_die "charon could not load its connection"

# ipsecgw: the baseline gateway side (topology.sh), towards charon's real address.
topo_vars "$TAG"
TOPO_IKE_GW=$GW_ADDR TOPO_IKE_LEFT=$PEER_ADDR
topo_gw_ike_config "$HARNESS_DIR/gw.toml" aes128gcm16-prfsha256-ecp256 aes128gcm16-ecp256 'nat_keepalive = "2s"'
GWLOG=$HARNESS_DIR/ipsecgw.log
FIFO=$HARNESS_DIR/commands
mkfifo "$FIFO"
harness_spawn "$GWLOG" ip netns exec "$GW" "$IPSECGW" ike --config "$HARNESS_DIR/gw.toml" --commands "$FIFO"
GWPID=$HARNESS_LAST_PID
harness_wait_until 10 grep -q "IKE manager running" "$GWLOG" || harness_die "ipsecgw ike did not start: $(cat "$GWLOG")"

CAP=$HARNESS_DIR/peer.pcap
netns_capture_start "$PEER" eth0 "$CAP" udp || harness_die "tcpdump did not start"
CAPPID=$HARNESS_LAST_PID

mark=$(charon_log_mark peer)
# shellcheck disable=SC2016  # $1 is expanded by the inner sh
timeout 5 sh -c 'printf "initiate left\n" >"$1"' _ "$FIFO" || harness_die "ipsecgw did not read the initiate command"
harness_wait_until 10 grep -qE "CHILD SA up: connection=left .*encap=udp" "$GWLOG" ||
    harness_die "no UDP-encapsulated Child SA on our side: $(tail -n 20 "$GWLOG")"
charon_wait_child peer gw net || harness_die "charon has no INSTALLED CHILD_SA: $(tail -n 20 "$(charon_log peer)")"

# 1. charon saw the NAT in front of us.
# (grep on a here-string: `log | grep -q` fails under pipefail when grep exits early)
grep -q "remote host is behind NAT" <<<"$(charon_log_since peer "$mark")" ||
    harness_die "charon did not detect our NAT: $(charon_log_since peer "$mark" | grep -i nat || true)"
[[ $(charon_sa_get peer gw remote-host) == "$NAT_OUT" ]] ||
    harness_die "charon sees us at $(charon_sa_get peer gw remote-host), not at the NAT's $NAT_OUT"
# 2. we know we are behind it.
grep -qE "IKE SA up: connection=left .*nat=both" "$GWLOG" ||
    harness_die "ipsecgw did not conclude it is behind a NAT: $(grep 'IKE SA up' "$GWLOG" || true)"
# 3. ESP in UDP on charon's side too.
[[ $(charon_sa_get peer gw net encap) == yes ]] ||
    harness_die "charon's CHILD_SA is not UDP-encapsulated: $(charon_sas peer)"
harness_log "tunnel up through the NAT: charon sees us at $NAT_OUT, both sides encapsulate ESP in UDP 4500"

# 4. keepalives: UDP length 9 = 8-byte header + one octet, to port 4500, from the NAT.
KA="src host $NAT_OUT and udp dst port 4500 and udp[4:2] = 9"
_enough() { (($(capture_count "$CAP" "$KA") >= 3)); }
harness_wait_until 15 _enough || harness_die "fewer than 3 NAT keepalives in 15 s: $(capture_count "$CAP" "$KA")"
netns_capture_stop "$CAPPID"
n=$(capture_count "$CAP" "$KA")
ff=$(capture_count "$CAP" "$KA and udp[8] = 0xff")
((n == ff)) || harness_die "$((n - ff)) of $n one-byte datagrams are not 0xFF"
back=$(capture_count "$CAP" "src host $PEER_ADDR and udp[4:2] = 9")
((back == 0)) || harness_die "charon (not behind a NAT) sent $back keepalives"
marker=$(capture_count "$CAP" "src host $NAT_OUT and udp dst port 4500 and udp[4:2] = 13 and udp[8:4] = 0 and udp[12] = 0xff")
((marker == 0)) || harness_die "$marker keepalives carry a non-ESP marker"
gaps=$(tcpdump -nn -tt -r "$CAP" "$KA" 2>/dev/null | awk '{ if (p) printf "%.2fs ", $1 - p; p = $1 }')
harness_log "keepalives seen by charon: $n, all exactly 0xFF, none from charon; gaps: $gaps(interval 2 s)"

harness_kill "$GWPID" 5
echo "nat_keepalive: ok ($n one-octet 0xFF keepalives from behind the NAT, charon detected the NAT, ESP in UDP)"
