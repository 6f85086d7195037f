#!/usr/bin/env bash
# Two ipsecgw instances with mirrored static SAs between four namespaces (issue 8):
#
#   [ssa-h1 10.1.0.2] h1 ==veth== g1in [ssa-g1: ipsecgw gw1] g1out ==veth== g2out [ssa-g2: ipsecgw gw2] g2in ==veth== h2 [ssa-h2 10.2.0.2]
#                                 10.1.0.1                198.51.100.1 .. 198.51.100.2                    10.2.0.1
#
# The gateway namespaces have no kernel addresses: ipsecgw answers ARP and routes
# itself (net_af_packet on the veth ends). For raw ESP and for ESP in UDP 4500:
# ping and a bounded UDP stream h1 -> h2 pass; tcpdump on the gw1-gw2 link sees only
# ESP (or UDP 4500) and ARP, never the plaintext marker; `ipsecgw show child-sa` on
# the control socket (static SAs only, no IKE connection); per-SA counters on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib/topology.sh    # topo_ipsecgw, topo_gw_ports_toml (not its topology)

topo_chain4 ssa
netns_route "$H1" 10.2.0.0/24 10.1.0.1
netns_route "$H2" 10.1.0.0/24 10.2.0.1

# One lcore per gateway (the main lcore polls): the two instances share the machine.
config() { # FILE NAME OUT_IF IN_IF OUT_ADDR IN_ADDR PEER LTS RTS SPI_IN SPI_OUT KEY_IN KEY_OUT ENCAP
    topo_gw_ports_toml "$5/24" "$6/24" --no-huge -m 512 --no-pci --file-prefix "$TAG-$2-$$" -l 0 \
        "--vdev=net_af_packet0,iface=$3" "--vdev=net_af_packet1,iface=$4" >"$1"
    cat >>"$1" <<TOML
[[static_sa]]
name = "to-peer"
local = "$5"
remote = "$7"
encap = "${14}"
algorithm = "aes128gcm16"
spi_in = ${10}
spi_out = ${11}
key_in = "${12}"
key_out = "${13}"
local_ts = ["$8"]
remote_ts = ["$9"]
TOML
}

K12=0632f33ea49d3e8d9b75106b28ddd54fa7321822 K21=9e2f4566b470b8067795ca75aa15c705817550ae
for encap in esp udp; do
    config "$W/gw1.toml" gw1 g1out g1in 198.51.100.1 10.1.0.1 198.51.100.2 10.1.0.0/24 10.2.0.0/24 0x1001 0x2002 $K21 $K12 $encap
    config "$W/gw2.toml" gw2 g2out g2in 198.51.100.2 10.2.0.1 198.51.100.1 10.2.0.0/24 10.1.0.0/24 0x2002 0x1001 $K12 $K21 $encap
    topo_chain4_start 20
    # net_af_packet sends bypassing the qdisc, so a capture sees only what arrives on
    # its end of the veth: capture both ends (gw2->gw1 on g1out, gw1->gw2 on g2out).
    netns_capture_start "$G1" g1out "$W/link1-$encap.pcap"
    CAP1=$HARNESS_LAST_PID
    netns_capture_start "$G2" g2out "$W/link2-$encap.pcap"
    CAP2=$HARNESS_LAST_PID

    replies=$(netns_ping "$H1" 10.1.0.2 10.2.0.2 10)
    harness_log "$encap: ping 10.1.0.2 -> 10.2.0.2 through two ipsecgw: $replies/10"
    # The first request may wait for ARP on three links; the rest must come back.
    ((replies >= 8)) || harness_die "$encap: only $replies/10 pings through the tunnel: $(tail -5 "$W/gw1.log" "$W/gw2.log")"
    read -r got sent < <(netns_udp_stream "$H1" 10.1.0.2 "$H2" 10.2.0.2 500 1000)
    harness_log "$encap: UDP 500 x 1000 B: $got/$sent"
    ((got >= sent * 99 / 100)) || harness_die "$encap: UDP stream lost too much: $got/$sent"

    netns_capture_stop "$CAP1"
    netns_capture_stop "$CAP2"
    filter=$([[ $encap == esp ]] && echo 'ip proto 50' || echo 'udp port 4500')
    esp=0 other=0
    for f in "$W/link1-$encap.pcap" "$W/link2-$encap.pcap"; do
        esp=$((esp + $(capture_count "$f" "$filter")))
        other=$((other + $(capture_count "$f" "not arp and not ($filter)")))
        ! capture_contains "$f" "$HARNESS_UDP_MARKER" || harness_die "$encap: plaintext marker seen on the outer link"
        ((other == 0)) || harness_die "$encap: non-ESP packets on the link: $(tcpdump -nn -r "$f" "not arp and not ($filter)" 2>/dev/null | head -3)"
    done
    harness_log "$encap: gw1-gw2 link: $esp ESP packets, $other others (ARP not counted)"
    ((esp >= got + replies * 2)) || harness_die "$encap: only $esp ESP packets on the link"

    # With static SAs only (no [[connection]]) the control socket still answers: the
    # SA's row, with the packets gw1 just sealed.
    "$IPSECGW" show child-sa --json --socket "$W/gw1.sock" >"$W/show-$encap.json" || harness_die "$encap: show child-sa on gw1 failed"
    /usr/bin/python3 - "$W/show-$encap.json" "$got" <<'PY' || harness_die "$encap: show child-sa: $(cat "$W/show-$encap.json")"
import json, sys
rows = [r for r in json.load(open(sys.argv[1])) if r["connection"] == "to-peer"]
assert len(rows) == 1 and rows[0]["ike_sa"] == "static" and rows[0]["spi_out"] == "0x00002002", rows
assert rows[0]["out_packets"] >= int(sys.argv[2]), rows
PY

    kill -TERM "$P1" "$P2"
    wait "$P1" || harness_die "gw1 exit: $(cat "$W/gw1.log")"
    wait "$P2" || harness_die "gw2 exit: $(cat "$W/gw2.log")"
    rm -rf -- "/var/run/dpdk/$TAG-gw1-$$" "/var/run/dpdk/$TAG-gw2-$$"
    # SA row: name spi_in in_pkts in_bytes in_drops out_pkts out_bytes out_drops owner
    read -r _ _ in1 _ _ out1 _ < <(grep "^to-peer " "$W/gw1.log") || harness_die "no SA counters from gw1: $(cat "$W/gw1.log")"
    read -r _ _ in2 _ _ out2 _ < <(grep "^to-peer " "$W/gw2.log") || harness_die "no SA counters from gw2"
    harness_log "$encap: gw1 SA in $in1 out $out1, gw2 SA in $in2 out $out2; $(grep '^drops:' "$W/gw1.log")"
    ((out1 >= got + replies && in2 >= got + replies && out2 >= replies && in1 >= replies)) ||
        harness_die "$encap: SA counters too low: gw1 in $in1 out $out1, gw2 in $in2 out $out2"
done
echo "static_sa_netns: ok (raw ESP and UDP 4500: ping + UDP through two ipsecgw, only ESP on the outer link)"
