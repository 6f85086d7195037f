# shellcheck shell=bash
# The design's gateway test topology (shared/DESIGN.md "Test topology"), sourced:
#
#   [TAG-left : strongSwan charon, owns 10.1.0.1 (inner 10.1.0.0/24)]
#        out0 198.51.100.1/24  ==veth==  gw-out   (outer: IKE, ESP in UDP 4500)
#   [TAG-gw   : ipsecgw, DPDK net_af_packet on gw-out and gw-in]
#        gw-in                 ==veth==  in0 10.2.0.2/24   (plaintext)
#   [TAG-right: plain host 10.2.0.2, default route via 10.2.0.1]
#
# Modes of topo_create:
#   dpdk (default) the gw's veth ends carry NO kernel address and the gw ns does not
#         forward: 198.51.100.2 and 10.2.0.1 belong to ipsecgw alone. An AF_PACKET port
#         sees every frame the kernel sees; a kernel owning those addresses would answer
#         ARP, send port-unreachables for UDP 500/4500 and forward or reject traffic,
#         racing ipsecgw. ipsecgw answers ARP and ping for its own addresses (DESIGN.md).
#   kernel the gw ns routes with kernel addresses 198.51.100.2 and 10.2.0.1, plain routes
#         both ways (left: 10.2.0.0/24 via 198.51.100.2): checks the topology without
#         ipsecgw, or with a charon in the gw ns as a stand-in for ipsecgw.
# Offloads are off on every veth end (AF_PACKET must see full checksums, no GSO frames).
#
#   source scripts/lib/topology.sh         # also sources netns.sh and charon.sh
#   harness_init mytag
#   topo_create mytag                      # sets the TOPO_* variables below
#   topo_eal_args; ip netns exec "$TOPO_GW" ipsecgw run "${TOPO_EAL_ARGS[@]}" ...
#   topo_left_charon mytag                 # charon "left" in $TOPO_LEFT
#   topo_left_conn gw left CONN_PSK=... && charon_load left   # baseline topo-left.conn + changes
#   topo_destroy mytag                     # or leave it to harness_cleanup
#
# Functions: topo_create topo_destroy topo_vars topo_eal_args topo_static_neigh topo_left_charon topo_left_conn

[[ -n ${_HARNESS_TOPOLOGY_SH:-} ]] && return 0
_HARNESS_TOPOLOGY_SH=1
# shellcheck source=scripts/lib/charon.sh
source "$(dirname "${BASH_SOURCE[0]}")/charon.sh"

# topo_vars TAG: set the TOPO_* names and addresses (topo_create calls it).
topo_vars() {
    local tag=$1
    TOPO_LEFT=$tag-left TOPO_GW=$tag-gw TOPO_RIGHT=$tag-right
    TOPO_LEFT_IF=out0 TOPO_GW_OUT_IF=gw-out TOPO_GW_IN_IF=gw-in TOPO_RIGHT_IF=in0
    TOPO_LEFT_OUTER=198.51.100.1 TOPO_GW_OUTER=198.51.100.2 TOPO_OUTER_PLEN=24
    TOPO_LEFT_INNER=10.1.0.1 TOPO_LEFT_NET=10.1.0.0/24
    TOPO_GW_INNER=10.2.0.1 TOPO_RIGHT_HOST=10.2.0.2 TOPO_RIGHT_NET=10.2.0.0/24
    # Fixed, locally administered MACs (02:..., then the IPv4 address in hex) so ipsecgw
    # configs (static neighbours) and pcaps can name them.
    TOPO_LEFT_MAC=02:00:c6:33:64:01 TOPO_GW_OUT_MAC=02:00:c6:33:64:02
    TOPO_GW_IN_MAC=02:00:0a:02:00:01 TOPO_RIGHT_MAC=02:00:0a:02:00:02
    TOPO_MODE=${TOPO_MODE:-dpdk}
}

# topo_create TAG [dpdk|kernel]: build the three namespaces TAG-left, TAG-gw, TAG-right.
topo_create() {
    local tag=$1 mode=${2:-dpdk}
    [[ $mode == dpdk || $mode == kernel ]] || harness_die "topo_create: mode '$mode' is not dpdk or kernel"
    topo_vars "$tag"
    TOPO_MODE=$mode
    netns_add "$TOPO_LEFT"
    netns_add "$TOPO_GW"
    netns_add "$TOPO_RIGHT"
    local gw_out=- gw_in=-
    if [[ $mode == kernel ]]; then
        gw_out=$TOPO_GW_OUTER/$TOPO_OUTER_PLEN gw_in=$TOPO_GW_INNER/24
    fi
    netns_veth "$TOPO_LEFT" "$TOPO_LEFT_IF" "$TOPO_LEFT_OUTER/$TOPO_OUTER_PLEN" \
        "$TOPO_GW" "$TOPO_GW_OUT_IF" "$gw_out" "$TOPO_LEFT_MAC" "$TOPO_GW_OUT_MAC"
    netns_veth "$TOPO_GW" "$TOPO_GW_IN_IF" "$gw_in" \
        "$TOPO_RIGHT" "$TOPO_RIGHT_IF" "$TOPO_RIGHT_HOST/24" "$TOPO_GW_IN_MAC" "$TOPO_RIGHT_MAC"
    # charon must own an address inside its local traffic selector (STRONGSWAN.md).
    netns_local_addr "$TOPO_LEFT" "$TOPO_LEFT_INNER/24"
    ip -n "$TOPO_RIGHT" route add default via "$TOPO_GW_INNER" || harness_die "right default route failed"
    if [[ $mode == kernel ]]; then
        netns_forwarding "$TOPO_GW" 1
        netns_route "$TOPO_GW" "$TOPO_LEFT_NET" "$TOPO_LEFT_OUTER"
        netns_route "$TOPO_LEFT" "$TOPO_RIGHT_NET" "$TOPO_GW_OUTER" "$TOPO_LEFT_INNER"
    else
        netns_forwarding "$TOPO_GW" 0
    fi
}

# topo_destroy TAG: delete the three namespaces (and end what still runs in them).
# Charons started with topo_left_charon should be stopped first (charon_stop left).
topo_destroy() {
    local tag=$1
    netns_del "$tag-right"
    netns_del "$tag-gw"
    netns_del "$tag-left"
}

# topo_eal_args [FILE_PREFIX]: set TOPO_EAL_ARGS (array) to the EAL arguments for a DPDK
# process in the gw namespace on the two ports, as the team's test rules want them
# (--no-huge -m 1024 --no-pci, a unique --file-prefix, port 0 = gw-out, port 1 = gw-in),
# and remove DPDK's runtime dir /var/run/dpdk/PREFIX (12 MB on a tmpfs) at exit.
#   ip netns exec "$TOPO_GW" ipsecgw run "${TOPO_EAL_ARGS[@]}" ...
topo_eal_args() {
    TOPO_EAL_PREFIX=${1:-$TOPO_GW}
    # shellcheck disable=SC2034  # for the caller
    TOPO_EAL_ARGS=(--no-huge -m 1024 --no-pci --file-prefix "$TOPO_EAL_PREFIX"
        --vdev "net_af_packet0,iface=$TOPO_GW_OUT_IF" --vdev "net_af_packet1,iface=$TOPO_GW_IN_IF")
    harness_on_exit _topo_eal_rundir
}
_topo_eal_rundir() { [[ -n ${TOPO_EAL_PREFIX:-} ]] && rm -rf -- "/var/run/dpdk/$TOPO_EAL_PREFIX"; return 0; }

# topo_static_neigh: permanent neighbour entries for the gateway's addresses in the left
# (198.51.100.2 -> gw-out's MAC) and right (10.2.0.1 -> gw-in's MAC) namespaces, for a
# gateway that does not answer ARP (yet), or to keep ARP out of a capture.
topo_static_neigh() {
    ip -n "$TOPO_LEFT" neigh replace "$TOPO_GW_OUTER" lladdr "$TOPO_GW_OUT_MAC" dev "$TOPO_LEFT_IF" nud permanent ||
        harness_die "static neighbour in $TOPO_LEFT failed"
    ip -n "$TOPO_RIGHT" neigh replace "$TOPO_GW_INNER" lladdr "$TOPO_GW_IN_MAC" dev "$TOPO_RIGHT_IF" nud permanent ||
        harness_die "static neighbour in $TOPO_RIGHT failed"
}

# topo_left_charon [NAME] [EXTRA]: start charon NAME (default "left") in the left namespace.
topo_left_charon() { charon_start "${1:-left}" "$TOPO_LEFT" "${2:-}"; }

# topo_left_conn CONN [NAME] [CONN_X=VALUE...]: the left peer's connection towards the
# gateway from the baseline scripts/tests/strongswan_baseline/topo-left.conn (addresses,
# IDs left/gw, PSK, selectors 10.1.0.0/24 <-> 10.2.0.0/24), with the given changes.
TOPO_BASELINE_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../tests/strongswan_baseline" && pwd)
topo_left_conn() {
    local conn=$1 name=${2:-left}
    shift $(($# >= 2 ? 2 : 1))
    charon_conn_from "$name" "$conn" "$TOPO_BASELINE_DIR/topo-left.conn" "$@"
}

# topo_gw_ike_config FILE IKE_PROPOSAL ESP_PROPOSAL [EXTRA_TOML_LINE...]: ipsecgw's side of
# the same baseline (connection "left": IDs gw/left, the topology PSK in FILE's folder as
# gw.psk, selectors 10.2.0.0/24 <-> 10.1.0.0/24, start_action none) written to FILE.
topo_gw_ike_config() {
    local file=$1 ike=$2 esp=$3 line
    shift 3
    printf 'topology-psk' >"$(dirname "$file")/gw.psk"
    chmod 600 "$(dirname "$file")/gw.psk"
    {
        printf '[[connection]]\nname = "left"\n'
        printf 'local_addr = "%s"\nremote_addr = "%s"\n' "$TOPO_GW_OUTER" "$TOPO_LEFT_OUTER"
        printf 'local_id = "gw"\nremote_id = "left"\npsk = { file = "gw.psk" }\n'
        printf 'ike_proposals = ["%s"]\nesp_proposals = ["%s"]\n' "$ike" "$esp"
        printf 'local_ts = ["10.2.0.0/24"]\nremote_ts = ["10.1.0.0/24"]\nstart_action = "none"\n'
        for line in "$@"; do printf '%s\n' "$line"; done
    } >"$file"
}
