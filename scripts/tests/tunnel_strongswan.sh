#!/usr/bin/env bash
# An IKEv2 tunnel between strongSwan and ipsecgw THROUGH the DPDK dataplane (issue 6):
# `ipsecgw run` with a [[connection]] in tss-gw (net_af_packet on gw-out 198.51.100.2 and
# gw-in 10.2.0.1, no kernel addresses there), charon with kernel-libipsec in tss-left
# (198.51.100.1, owns 10.1.0.1), a plain host in tss-right (10.2.0.2); topology.sh "dpdk".
#
# IKE is punted by the worker to the manager thread, the manager's datagrams leave through
# the worker (ARP resolved by it), the Child SAs go into the worker's SA tables.
# For aes128gcm16-prfsha256-ecp256 and aes256gcm16-prfsha384-x25519 (IKE; ESP the same
# cipher with the group as PFS), with charon initiating and with ipsecgw initiating:
#   - the CHILD_SA is INSTALLED at charon, ESP in UDP (encap=yes);
#   - 5/5 pings 10.1.0.1 -> 10.2.0.2 and a bounded UDP stream both ways arrive;
#   - the outer link carries only ARP and UDP 500/4500 (never the stream's plaintext
#     marker, never ICMP);
#   - `ipsecgw show child-sa` (control socket of `run`) shows the SA;
#   - over the whole suite, IKE was seen on 500 and on 4500 (non-ESP marker);
#   - SIGTERM to ipsecgw deletes the IKE SA at charon (DELETE sent before the workers stop).
# Then (first suite only) CHILD rekeys by either side and an IKE rekey by charon, each during
# a ping stream, lose nothing.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib/topology.sh

topo_gw_test tss

_gw_child_up() { [[ $(topo_gw_json child-sa 'len(v)' 2>/dev/null) -gt 0 ]]; }

suite() { # IKE_PROPOSAL ESP_PROPOSAL N
    local ike=$1 esp=$2 n=$3 enc
    harness_log "=== suite $ike / $esp ==="
    charon_conn_remove left gw 2>/dev/null || true
    topo_left_conn gw left CONN_IKE_PROPOSALS="$ike" CONN_ESP_PROPOSALS="$esp"
    charon_load left
    topo_gw_run_config "$HARNESS_DIR/gw.toml" "$ike" "$esp"
    topo_gw_start "$HARNESS_DIR/gw.toml" "$n"
    # The whole suite on the outer link: IKE goes through the worker on 500 and 4500.
    local wcap=$HARNESS_DIR/whole-$n.pcap wpid
    netns_capture_start "$TOPO_LEFT" "$TOPO_LEFT_IF" "$wcap"
    wpid=$HARNESS_LAST_PID

    # charon initiates, ipsecgw responds.
    charon_initiate left gw net || harness_die "charon could not initiate: $(tail -n 5 "$(charon_dir left)/initiate.out")
ipsecgw: $(tail -n 20 "$TOPO_GW_LOG")"
    charon_wait_child left gw net || harness_die "charon has no INSTALLED CHILD_SA"
    enc=$(charon_sa_get left gw net encap)
    [[ $enc == yes ]] || harness_die "charon's CHILD_SA is not UDP-encapsulated (encap=$enc)"
    harness_wait_until 5 _gw_child_up || harness_die "ipsecgw shows no Child SA: $(topo_gw show ike-sa 2>&1)"
    topo_check_traffic "charon initiator"
    topo_gw show child-sa >&2 || true

    if [[ $n == 1 ]]; then
        # Rekeys while a ping stream runs: nothing lost (make-before-break).
        topo_rekey_under_pings "CHILD rekey by charon" child charon_rekey left --child net
        topo_rekey_under_pings "CHILD rekey by ipsecgw" child topo_gw rekey left
        topo_rekey_under_pings "IKE rekey by charon" ike charon_rekey left --ike gw
    fi

    # ipsecgw initiates.
    charon_terminate left gw
    charon_wait_ike_gone left gw || harness_die "charon kept its IKE SA"
    topo_gw initiate left >&2 || harness_die "ipsecgw initiate failed: $(tail -n 20 "$TOPO_GW_LOG")"
    charon_wait_child left gw net 10 || harness_die "no CHILD_SA at charon after ipsecgw initiated:
$(tail -n 20 "$TOPO_GW_LOG")"
    harness_wait_until 5 _gw_child_up || harness_die "ipsecgw shows no Child SA after initiating"
    topo_check_traffic "ipsecgw initiator"
    topo_gw_stop
    # SIGTERM: ipsecgw deletes its IKE SA through the worker before the workers stop.
    charon_wait_ike_gone left gw 5 || harness_die "charon kept its IKE SA after ipsecgw stopped"
    harness_log "ipsecgw stopped: charon's IKE SA was deleted (DELETE sent through the dataplane)"
    netns_capture_stop "$wpid"
    local i500 i4500 other
    i500=$(capture_count "$wcap" "udp port 500")
    i4500=$(capture_count "$wcap" "udp port 4500 and udp[8:4] = 0")
    other=$(capture_count "$wcap" "not arp and not udp port 500 and not udp port 4500")
    ((i500 >= 4 && i4500 >= 4)) || harness_die "IKE on the outer link: $i500 on port 500, $i4500 on 4500 (want >= 4 each: two setups)"
    ((other == 0)) || harness_die "$other packets on the outer link that are neither ARP nor UDP 500/4500"
    harness_log "whole suite on the outer link: IKE $i500 on 500, $i4500 on 4500 (non-ESP marker), nothing else but ARP and ESP-in-UDP"
    charon_terminate_all left
}

suite aes128gcm16-prfsha256-ecp256 aes128gcm16-ecp256 1
suite aes256gcm16-prfsha384-x25519 aes256gcm16-x25519 2
harness_log "PASS"
