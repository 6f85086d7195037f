#!/usr/bin/env bash
# IPv6 through a strongSwan <-> ipsecgw tunnel on the DPDK dataplane (issue 6): topology.sh
# "dpdk" with TOPO_IPV6=1 (left 2001:db8:100::1 and owns fd00:1::1; right fd00:2::2 behind
# the gateway's fd00:2::1; ipsecgw answers ND for its addresses, the gw ns has no IPv6 stack).
# For each of
#   v6in4  traffic selectors fd00:1::/64 <-> fd00:2::/64 over the IPv4 outer link,
#   v6in6  the same over an IPv6 outer link (IKE and ESP-in-UDP between 2001:db8:100::1/::2),
#   v4in6  10.1.0.0/24 <-> 10.2.0.0/24 over the IPv6 outer link,
# charon initiates: its CHILD_SA carries the expected selectors; ping and a bounded UDP
# stream both ways pass, the outer link carries only ESP in UDP, IKE and ND (topo_check_traffic);
# then charon deletes and ipsecgw initiates: pings pass again; SIGTERM deletes charon's IKE SA.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib/topology.sh

IKE=aes128gcm16-prfsha256-ecp256 ESP=aes128gcm16-ecp256
TOPO_IPV6=1
topo_gw_test ti6

suite() { # INNER_FAMILY OUTER_FAMILY NAME
    local inner=$1 outer=$2 name=$3 lts rts src dst
    harness_log "=== $name: IPv$inner selectors over an IPv$outer outer link ==="
    topo_families "$inner" "$outer"
    charon_conn_remove left gw
    topo_left_conn gw left CONN_IKE_PROPOSALS="$IKE" CONN_ESP_PROPOSALS="$ESP"
    charon_load left
    topo_gw_run_config "$HARNESS_DIR/gw-$name.toml" "$IKE" "$ESP"
    topo_gw_start "$HARNESS_DIR/gw-$name.toml" "$name"

    charon_initiate left gw net || harness_die "$name: charon could not initiate: $(tail -n 5 "$(charon_dir left)/initiate.out")
ipsecgw: $(tail -n 20 "$TOPO_GW_LOG")"
    charon_wait_child left gw net || harness_die "$name: charon has no INSTALLED CHILD_SA"
    lts=$(charon_sa_get left gw net local-ts) rts=$(charon_sa_get left gw net remote-ts)
    [[ $lts == "$TOPO_TS_LEFT" && $rts == "$TOPO_TS_GW" ]] ||
        harness_die "$name: charon's CHILD_SA has $lts === $rts, want $TOPO_TS_LEFT === $TOPO_TS_GW"
    [[ $(charon_sa_get left gw remote-host) == "$TOPO_IKE_GW" ]] ||
        harness_die "$name: charon's IKE SA is with $(charon_sa_get left gw remote-host), want $TOPO_IKE_GW"
    topo_check_traffic "$name charon initiator" "$inner"

    charon_terminate left gw
    charon_wait_ike_gone left gw || harness_die "$name: charon kept its IKE SA"
    topo_gw initiate left >&2 || harness_die "$name: ipsecgw initiate failed: $(tail -n 20 "$TOPO_GW_LOG")"
    charon_wait_child left gw net 10 || harness_die "$name: no CHILD_SA at charon after ipsecgw initiated:
$(tail -n 20 "$TOPO_GW_LOG")"
    if [[ $inner == 6 ]]; then src=$TOPO_LEFT_INNER6 dst=$TOPO_RIGHT_HOST6; else src=$TOPO_LEFT_INNER dst=$TOPO_RIGHT_HOST; fi
    [[ $(netns_ping "$TOPO_LEFT" "$src" "$dst" 3) == 3 ]] || harness_die "$name: no ping $src -> $dst after ipsecgw initiated"
    harness_log "$name ipsecgw initiator: 3/3 pings $src -> $dst"
    topo_gw_stop
    charon_wait_ike_gone left gw 5 || harness_die "$name: charon kept its IKE SA after ipsecgw stopped"
}

suite 6 4 v6in4
suite 6 6 v6in6
suite 4 6 v4in6
harness_log "PASS"
