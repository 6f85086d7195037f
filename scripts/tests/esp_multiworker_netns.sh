#!/usr/bin/env bash
# Two ESP workers on net_af_packet (qpairs=2: the kernel spreads frames over the two
# sockets by its flow hash, which takes ESP's SPI as the "ports") between namespaces,
# issue 8 item 3:
#
#   [mwn-h1 10.1.0.2 10.1.1.2] ==veth== [mwn-g1: ipsecgw, 2 workers] ==veth== [mwn-g2: ipsecgw, 1 worker] ==veth== [mwn-h2 10.2.0.2 10.2.1.2]
#
# Two static SA pairs between the gateways: a (10.1.0.0/24 <-> 10.2.0.0/24, gw1 receives on
# SPI 0x1000) and b (10.1.1.0/24 <-> 10.2.1.0/24, SPI 0x1001). gw1 runs the default
# [dpdk].sa_owner = "first-receiver": each inbound SA is owned by the worker whose queue
# the kernel's fanout hash puts its ESP on (which one depends on the hash key, random per
# boot), so the SA's packets reach their owner directly; esp_multiworker.sh covers the
# handoff ring ("spi" rule). Ping and a bounded UDP stream pass both ways on both tunnels
# with every next hop resolved by ARP (a worker copies neighbour replies to the others);
# gw1's exit report shows handoffs for at most 5% of its inbound ESP (frames the kernel
# rolls over to the other socket when one is full), sent = received, and no drops.
# Three lcores on the 2 CPUs (--lcores 0@0,1@1,2@1), idle back-off on.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib/topology.sh # topo_ipsecgw, topo_gw_ports_toml

topo_chain4 mwn
netns_addr "$H1" h1 10.1.1.2/24
netns_addr "$H2" h2 10.2.1.2/24
netns_route "$H1" 10.2.0.0/16 10.1.0.1
netns_route "$H2" 10.1.0.0/16 10.2.0.1

KA=4d2d5a0aa7e1b8c9d0e1f2a3b4c5d6e7f8091a2b KB=5e3e6b1bb8f2c9dae1f2a3b4c5d6e7f8091a2b3c
KA2=6f4f7c2cc903dae1f2a3b4c5d6e7f8091a2b3c4d KB2=70508d3ddb14ebf2a3b4c5d6e7f8091a2b3c4d5e
# sa NAME LOCAL REMOTE SPI_IN SPI_OUT KEY_IN KEY_OUT LOCAL_TS REMOTE_TS
sa() {
    printf '[[static_sa]]\nname = "%s"\nlocal = "%s"\nremote = "%s"\nalgorithm = "aes128gcm16"\n' "$1" "$2" "$3"
    printf 'spi_in = %s\nspi_out = %s\nkey_in = "%s"\nkey_out = "%s"\nlocal_ts = ["%s"]\nremote_ts = ["%s"]\n\n' "${@:4}"
}
{
    topo_gw_ports_toml 198.51.100.1/24 10.1.0.1/24,10.1.1.1/24 --no-huge -m 1024 --no-pci --file-prefix "$TAG-g1-$$" \
        --lcores 0@0,1@1,2@1 --vdev=net_af_packet0,iface=g1out,qpairs=2 --vdev=net_af_packet1,iface=g1in,qpairs=2
    sa a 198.51.100.1 198.51.100.2 0x1000 0x2000 $KA $KA2 10.1.0.0/24 10.2.0.0/24
    sa b 198.51.100.1 198.51.100.2 0x1001 0x2001 $KB $KB2 10.1.1.0/24 10.2.1.0/24
} >"$W/gw1.toml"
sed -i 's/^mbufs = .*/mbufs = 16383/' "$W/gw1.toml"
{
    topo_gw_ports_toml 198.51.100.2/24 10.2.0.1/24,10.2.1.1/24 --no-huge -m 512 --no-pci --file-prefix "$TAG-g2-$$" -l 1 \
        --vdev=net_af_packet0,iface=g2out --vdev=net_af_packet1,iface=g2in
    sa a 198.51.100.2 198.51.100.1 0x2000 0x1000 $KA2 $KA 10.2.0.0/24 10.1.0.0/24
    sa b 198.51.100.2 198.51.100.1 0x2001 0x1001 $KB2 $KB 10.2.1.0/24 10.1.1.0/24
} >"$W/gw2.toml"
harness_on_exit mwn_cleanup
mwn_cleanup() { rm -rf -- "/var/run/dpdk/$TAG-g1-$$" "/var/run/dpdk/$TAG-g2-$$"; }

# No --neighbor: every worker resolves its next hops by ARP, whichever queue the reply
# lands on (a worker copies neighbour replies to the others, gateway/src/worker.rs).
topo_chain4_start 30
grep -q "2 worker lcore(s)" "$W/gw1.log" || harness_die "gw1 should run 2 workers: $(cat "$W/gw1.log")"

for t in 0 1; do
    replies=$(netns_ping "$H1" 10.1.$t.2 10.2.$t.2 10)
    harness_log "tunnel $t: ping 10.1.$t.2 -> 10.2.$t.2: $replies/10"
    ((replies >= 8)) || harness_die "tunnel $t: only $replies/10 pings: $(tail -5 "$W/gw1.log" "$W/gw2.log")"
    read -r got sent < <(netns_udp_stream "$H1" 10.1.$t.2 "$H2" 10.2.$t.2 300 200)
    harness_log "tunnel $t: UDP h1 -> h2 $got/$sent"
    ((got >= sent * 99 / 100)) || harness_die "tunnel $t: UDP h1 -> h2 lost too much: $got/$sent"
    read -r got sent < <(netns_udp_stream "$H2" 10.2.$t.2 "$H1" 10.1.$t.2 300 200)
    harness_log "tunnel $t: UDP h2 -> h1 $got/$sent"
    ((got >= sent * 99 / 100)) || harness_die "tunnel $t: UDP h2 -> h1 lost too much: $got/$sent"
done

harness_kill "$P1" 10
harness_kill "$P2" 10
harness_log "gw1 exit report:"$'\n'"$(sed -n '/^port /,$p' "$W/gw1.log")"
grep -q "^drops: none" "$W/gw1.log" || harness_die "gw1 dropped packets: $(grep '^drops' "$W/gw1.log")"
# handoff worker W: sent S received R ring_full F plaintext P (P of S: outbound plaintext
# for the worker that encrypts for its SA, [dpdk].encrypt = "owner")
read -r _ _ _ _ s0 _ r0 _ _ _ p0 < <(grep '^handoff worker 0:' "$W/gw1.log")
read -r _ _ _ _ s1 _ r1 _ _ _ p1 < <(grep '^handoff worker 1:' "$W/gw1.log")
((s0 == r1 && s1 == r0)) || harness_die "handoffs sent/received differ: w0 $s0/$r0, w1 $s1/$r1"
e0=$((s0 - p0)) e1=$((s1 - p1))
read -r in_a < <(awk '$1 == "a" { print $3 }' "$W/gw1.log")
read -r in_b < <(awk '$1 == "b" { print $3 }' "$W/gw1.log")
for w in 0 1; do
    read -r _ _ _ _ _ _ _ _ _ _ _ itx < <(grep "^worker $w:" "$W/gw1.log" | tr -d ',')
    harness_log "gw1 worker $w: inside tx $itx"
done
harness_log "gw1: SA a in $in_a, SA b in $in_b, ESP handoffs w0->w1 $e0, w1->w0 $e1, plaintext handoffs $p0, $p1"
(((e0 + e1) * 20 <= in_a + in_b)) ||
    harness_die "first-receiver owners: $((e0 + e1)) ESP handoffs for $((in_a + in_b)) inbound ESP packets (want at most 5%)"
echo "esp_multiworker_netns: ok (2 workers on af_packet qpairs=2: ping and UDP both ways on both SAs, each owned by the worker that receives it; $((e0 + e1)) ESP handoffs for $((in_a + in_b)) inbound ESP, $((p0 + p1)) plaintext handoffs to the SAs' encrypting workers)"
