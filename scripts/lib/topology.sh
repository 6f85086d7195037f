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
# TOPO_IPV6=1 before topo_create adds IPv6 to left and right (the gw ns keeps IPv6 off:
# DPDK's AF_PACKET ports see v6 frames anyway, and a kernel stack there would send ND/MLD):
#   left out0 2001:db8:100::1/64, owns fd00:1::1 (inner fd00:1::/64); right in0 fd00:2::2/64,
#   default route via fd00:2::1; the gateway's 2001:db8:100::2 and fd00:2::1 are ipsecgw's.
# topo_families INNER OUTER picks the family of the tunnel's selectors and of its outer link.
#
#   source scripts/lib/topology.sh         # also sources netns.sh and charon.sh
#   harness_init mytag
#   topo_create mytag                      # sets the TOPO_* variables below
#   topo_eal_args; ip netns exec "$TOPO_GW" ipsecgw run "${TOPO_EAL_ARGS[@]}" ...
#   topo_left_charon mytag                 # charon "left" in $TOPO_LEFT
#   topo_left_conn gw left CONN_PSK=... && charon_load left   # baseline topo-left.conn + changes
#   topo_destroy mytag                     # or leave it to harness_cleanup
#
# Functions: topo_create topo_destroy topo_vars topo_families topo_eal_args topo_static_neigh
#   topo_left_charon topo_left_conn topo_gw_ike_config topo_connection_toml topo_gw_connection_toml
#   topo_gw_test topo_ipsecgw
#   topo_gw_ports_toml topo_gw_run_config topo_gw_start topo_gw_stop topo_gw topo_gw_json
#   topo_gw_drop topo_check_traffic topo_charon_spi_in topo_charon_ike_spis topo_rekey_under_pings
#   topo_chain4 topo_chain4_start (two ipsecgw with static SAs, no charon)

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
    # IPv6 (TOPO_IPV6=1): documentation prefix outside (RFC 3849), ULAs inside (RFC 4193).
    TOPO_LEFT_OUTER6=2001:db8:100::1 TOPO_GW_OUTER6=2001:db8:100::2 TOPO_OUTER_PLEN6=64
    TOPO_LEFT_INNER6=fd00:1::1 TOPO_LEFT_NET6=fd00:1::/64
    TOPO_GW_INNER6=fd00:2::1 TOPO_RIGHT_HOST6=fd00:2::2 TOPO_RIGHT_NET6=fd00:2::/64
    TOPO_MODE=${TOPO_MODE:-dpdk}
    topo_families 4 4
}

# topo_families INNER OUTER: the address family (4 or 6) of the tunnel's traffic selectors
# (TOPO_TS_LEFT, TOPO_TS_GW: left's and the gateway's local nets) and of the IKE/ESP link
# (TOPO_IKE_LEFT, TOPO_IKE_GW; TOPO_BPF_ESP, TOPO_BPF_IKE capture filters), used by
# topo_left_conn, topo_gw_connection_toml and topo_check_traffic.
topo_families() {
    local inner=${1:-4} outer=${2:-4}
    [[ $inner =~ ^[46]$ && $outer =~ ^[46]$ ]] || harness_die "topo_families: '$inner' '$outer' are not 4 or 6"
    if [[ $inner == 6 ]]; then
        TOPO_TS_LEFT=$TOPO_LEFT_NET6 TOPO_TS_GW=$TOPO_RIGHT_NET6
    else
        TOPO_TS_LEFT=$TOPO_LEFT_NET TOPO_TS_GW=$TOPO_RIGHT_NET
    fi
    # BPF filters for ESP in UDP 4500 (non-zero SPI) and IKE (500, or 4500 with the non-ESP
    # marker, RFC 3948 §2.2): libpcap cannot index udp[] over IPv6, so ip6[40 + 8 ...].
    if [[ $outer == 6 ]]; then
        TOPO_IKE_LEFT=$TOPO_LEFT_OUTER6 TOPO_IKE_GW=$TOPO_GW_OUTER6
        TOPO_BPF_ESP='ip6 and udp port 4500 and ip6[48:4] != 0'
        TOPO_BPF_IKE='ip6 and (udp port 500 or (udp port 4500 and ip6[48:4] = 0))'
    else
        TOPO_IKE_LEFT=$TOPO_LEFT_OUTER TOPO_IKE_GW=$TOPO_GW_OUTER
        TOPO_BPF_ESP='udp port 4500 and udp[8:4] != 0'
        TOPO_BPF_IKE='udp port 500 or (udp port 4500 and udp[8:4] = 0)'
    fi
}

# topo_create TAG [dpdk|kernel]: build the three namespaces TAG-left, TAG-gw, TAG-right.
topo_create() {
    local tag=$1 mode=${2:-dpdk}
    [[ $mode == dpdk || $mode == kernel ]] || harness_die "topo_create: mode '$mode' is not dpdk or kernel"
    topo_vars "$tag"
    TOPO_MODE=$mode
    local v6=${TOPO_IPV6:-0}
    NETNS_IPV6=$v6 netns_add "$TOPO_LEFT"
    NETNS_IPV6=0 netns_add "$TOPO_GW"
    NETNS_IPV6=$v6 netns_add "$TOPO_RIGHT"
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
    if [[ $v6 == 1 ]]; then
        [[ $mode == dpdk ]] || harness_die "topo_create: TOPO_IPV6=1 is for the dpdk mode only"
        # nodad: usable at once (no 1-2 s of duplicate address detection).
        ip -n "$TOPO_LEFT" addr add "$TOPO_LEFT_OUTER6/$TOPO_OUTER_PLEN6" dev "$TOPO_LEFT_IF" nodad ||
            harness_die "IPv6 address on $TOPO_LEFT failed"
        netns_local_addr "$TOPO_LEFT" "$TOPO_LEFT_INNER6/64"
        ip -n "$TOPO_RIGHT" addr add "$TOPO_RIGHT_HOST6/64" dev "$TOPO_RIGHT_IF" nodad ||
            harness_die "IPv6 address on $TOPO_RIGHT failed"
        ip -n "$TOPO_RIGHT" -6 route add default via "$TOPO_GW_INNER6" || harness_die "right IPv6 default route failed"
    fi
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
# TOPO_AF_PACKET_OPTS (e.g. ",qpairs=2") is appended to both vdevs' arguments.
#   ip netns exec "$TOPO_GW" ipsecgw run "${TOPO_EAL_ARGS[@]}" ...
topo_eal_args() {
    TOPO_EAL_PREFIX=${1:-$TOPO_GW}
    local opts=${TOPO_AF_PACKET_OPTS:-}
    # shellcheck disable=SC2034  # for the caller
    TOPO_EAL_ARGS=(--no-huge -m 1024 --no-pci --file-prefix "$TOPO_EAL_PREFIX"
        --vdev "net_af_packet0,iface=$TOPO_GW_OUT_IF$opts" --vdev "net_af_packet1,iface=$TOPO_GW_IN_IF$opts")
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
# gateway from the baseline scripts/tests/strongswan_baseline/topo-left.conn (IDs left/gw,
# PSK, selectors 10.1.0.0/24 <-> 10.2.0.0/24), addresses and selectors of topo_families,
# with the given changes.
TOPO_BASELINE_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../tests/strongswan_baseline" && pwd)
topo_left_conn() {
    local conn=$1 name=${2:-left}
    shift $(($# >= 2 ? 2 : 1))
    charon_conn_from "$name" "$conn" "$TOPO_BASELINE_DIR/topo-left.conn" \
        CONN_LOCAL_ADDRS="$TOPO_IKE_LEFT" CONN_REMOTE_ADDRS="$TOPO_IKE_GW" \
        CONN_LOCAL_TS="$TOPO_TS_LEFT" CONN_REMOTE_TS="$TOPO_TS_GW" "$@"
}

# topo_gw_ike_config FILE IKE_PROPOSAL ESP_PROPOSAL [EXTRA_TOML_LINE...]: ipsecgw's side of
# the same baseline (topo_gw_connection_toml) written to FILE, the PSK next to it.
topo_gw_ike_config() {
    local file=$1; shift
    _topo_gw_psk "$(dirname "$file")"
    topo_gw_connection_toml "$@" >"$file"
}
_topo_gw_psk() {
    printf 'topology-psk' >"$1/gw.psk"
    chmod 600 "$1/gw.psk"
}

# topo_connection_toml NAME LOCAL_ADDR REMOTE_ADDR REMOTE_ID IKE_PROPOSAL ESP_PROPOSAL LOCAL_TS
# REMOTE_TS [EXTRA_TOML_LINE...]: on stdout, an ipsecgw [[connection]] with local_id "gw", the
# PSK file gw.psk (_topo_gw_psk), start_action none, and the extra lines.
topo_connection_toml() {
    printf '[[connection]]\nname = "%s"\n' "$1"
    printf 'local_addr = "%s"\nremote_addr = "%s"\n' "$2" "$3"
    printf 'local_id = "gw"\nremote_id = "%s"\npsk = { file = "gw.psk" }\n' "$4"
    printf 'ike_proposals = ["%s"]\nesp_proposals = ["%s"]\n' "$5" "$6"
    printf 'local_ts = ["%s"]\nremote_ts = ["%s"]\nstart_action = "none"\n' "$7" "$8"
    shift 8
    local line
    for line in "$@"; do printf '%s\n' "$line"; done
}

# topo_gw_connection_toml IKE_PROPOSAL ESP_PROPOSAL [EXTRA_TOML_LINE...]: on stdout, the
# [[connection]] "left" (IDs gw/left, PSK file gw.psk, addresses and selectors of
# topo_families, start_action none) and the extra lines.
topo_gw_connection_toml() {
    topo_connection_toml left "$TOPO_IKE_GW" "$TOPO_IKE_LEFT" left "$1" "$2" "$TOPO_TS_GW" "$TOPO_TS_LEFT" "${@:3}"
}

# ---------------------------------------------------------------- ipsecgw run in the gw namespace
# The DPDK gateway between the left charon and the right host (topo_create ... dpdk):
#   topo_gw_test mytag                             # harness_init, IPSECGW, topology, charon left
#   topo_gw_run_config "$HARNESS_DIR/gw.toml" aes128gcm16-prfsha256-ecp256 aes128gcm16-ecp256
#   topo_gw_start "$HARNESS_DIR/gw.toml" 1         # TOPO_GW_PID, TOPO_GW_LOG, TOPO_GW_SOCK
#   topo_gw initiate left; topo_gw_json child-sa; topo_check_traffic "ipsecgw initiator"
#   topo_gw_stop
# (The functions below work on charon "left", its IKE SA "gw" and CHILD_SA "net".)

# topo_gw_test TAG: the start of a test of `ipsecgw run` between charon and the right host:
# harness_init TAG, topo_ipsecgw, topo_create TAG dpdk (TOPO_IPV6 as set), charon "left".
topo_gw_test() {
    harness_init "$1"
    topo_ipsecgw
    topo_create "$1" dpdk
    topo_left_charon left
}

# topo_ipsecgw: set IPSECGW, the ipsecgw binary to test: $IPSECGW when given (scripts/test.sh
# passes its release build), else `cargo build --release -p ipsecgw` in $CARGO_TARGET_DIR
# (default ./target; a no-op when up to date). After harness_init.
topo_ipsecgw() {
    if [[ -n ${IPSECGW:-} ]]; then
        [[ -x $IPSECGW ]] || harness_die "IPSECGW=$IPSECGW is not an executable file"
        return 0
    fi
    export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
    harness_log "building ipsecgw (release)"
    cargo build -q --release -p ipsecgw >&2 || harness_die "cargo build --release -p ipsecgw failed"
    IPSECGW=$CARGO_TARGET_DIR/release/ipsecgw
}

# topo_gw_ports_toml OUTSIDE_ADDRS INSIDE_ADDRS [EAL_ARG...]: on stdout, the [dpdk] section
# (mbufs; eal_args when EAL_ARGs are given) and the [[port]]s "outside" (DPDK port 0) and
# "inside" (DPDK port 1) of an `ipsecgw run` config. ADDRS: ADDR/LEN[,ADDR/LEN...].
topo_gw_ports_toml() {
    local outside inside
    IFS=, read -ra outside <<<"$1"
    IFS=, read -ra inside <<<"$2"
    shift 2
    printf '[dpdk]\n'
    (($#)) && printf 'eal_args = [%s]\n' "$(_topo_toml_strings "$@")"
    printf 'mbufs = 8191\n'
    printf '\n[[port]]\nname = "outside"\ndpdk_port = 0\naddresses = [%s]\n' "$(_topo_toml_strings "${outside[@]}")"
    printf '\n[[port]]\nname = "inside"\ndpdk_port = 1\naddresses = [%s]\n\n' "$(_topo_toml_strings "${inside[@]}")"
}
_topo_toml_strings() { local out='' a; for a; do out+="${out:+, }\"$a\""; done; printf '%s' "$out"; }

# topo_gw_run_config FILE IKE_PROPOSAL ESP_PROPOSAL [EXTRA_TOML_LINE...]: a whole `ipsecgw
# run` config in FILE: the ports with the gateway's addresses (the IPv6 ones too when
# TOPO_IPV6=1), then topo_gw_connection_toml; the PSK next to it.
topo_gw_run_config() {
    local file=$1 out_addrs=$TOPO_GW_OUTER/$TOPO_OUTER_PLEN in_addrs=$TOPO_GW_INNER/24
    shift
    if [[ ${TOPO_IPV6:-0} == 1 ]]; then
        out_addrs+=",$TOPO_GW_OUTER6/$TOPO_OUTER_PLEN6" in_addrs+=",$TOPO_GW_INNER6/64"
    fi
    _topo_gw_psk "$(dirname "$file")"
    { topo_gw_ports_toml "$out_addrs" "$in_addrs"; topo_gw_connection_toml "$@"; } >"$file"
}

# topo_gw_start CONFIG NAME [EAL_ARG...]: `ipsecgw run --config CONFIG` in the gw namespace on
# the two ports (topo_eal_args, file prefix TAG-NAME-PID; EAL_ARGs after them, e.g. -l 0).
# Output in TOPO_GW_LOG, control socket TOPO_GW_SOCK, PID in TOPO_GW_PID. Waits (bounded)
# until the IKE manager runs and the socket exists.
topo_gw_start() {
    local config=$1 name=$2
    shift 2
    [[ -z ${TOPO_GW_PID:-} ]] || harness_die "topo_gw_start: ipsecgw already runs (pid $TOPO_GW_PID)"
    TOPO_GW_LOG=$HARNESS_DIR/ipsecgw-$name.log TOPO_GW_SOCK=$HARNESS_DIR/ipsecgw.sock
    rm -f "$TOPO_GW_SOCK"
    topo_eal_args "$HARNESS_TAG-$name-$$"
    harness_spawn "$TOPO_GW_LOG" ip netns exec "$TOPO_GW" "$IPSECGW" run --config "$config" \
        --socket "$TOPO_GW_SOCK" -- "${TOPO_EAL_ARGS[@]}" "$@"
    TOPO_GW_PID=$HARNESS_LAST_PID
    harness_wait_until 30 _topo_gw_started || true
    grep -q "IKE manager on the punt path" "$TOPO_GW_LOG" ||
        harness_die "ipsecgw run did not start: $(tail -n 20 "$TOPO_GW_LOG")"
    harness_wait_until 10 test -S "$TOPO_GW_SOCK" || harness_die "no control socket: $(tail -n 20 "$TOPO_GW_LOG")"
}
_topo_gw_started() { _harness_gone "$TOPO_GW_PID" || grep -q "IKE manager on the punt path" "$TOPO_GW_LOG"; }

# topo_gw_stop [GRACE_S]: SIGTERM to ipsecgw (KILL after GRACE_S, default 10), logs its exit
# report (punt path, drops), removes its DPDK runtime dir.
topo_gw_stop() {
    [[ -n ${TOPO_GW_PID:-} ]] || return 0
    harness_kill "$TOPO_GW_PID" "${1:-10}"
    TOPO_GW_PID=
    _topo_eal_rundir
    harness_log "ipsecgw exit report: $({ grep -E "IKE punt path|^drops:" "$TOPO_GW_LOG" || true; } | tr '\n' ' ')"
}

# topo_gw ARGS...: the ipsecgw CLI against the running gateway's control socket.
topo_gw() { ip netns exec "$TOPO_GW" "$IPSECGW" "$@" --socket "$TOPO_GW_SOCK"; }

# topo_gw_json WHAT [PYTHON_EXPR]: `ipsecgw show WHAT --json`; with PYTHON_EXPR, that
# expression of the parsed answer `v` (e.g. 'len(v)') instead.
topo_gw_json() {
    local out
    out=$(topo_gw show "$1" --json) || return 1
    if (($# < 2)); then printf '%s\n' "$out"; return 0; fi
    "$HARNESS_PYTHON" -c 'import json, sys; v = json.loads(sys.argv[1]); print(eval(sys.argv[2]))' "$out" "$2"
}

# topo_gw_drop REASON: packets the dataplane dropped for REASON (`show drops`), e.g. no_policy.
topo_gw_drop() {
    topo_gw_json drops "sum(d['packets'] for d in (v['drops'] if isinstance(v, dict) else v) if d['reason'] == '$1')"
}

# topo_check_traffic WHAT [4|6]: through the tunnel (the family of the inner addresses,
# default 4): 5/5 pings left -> right and a bounded UDP stream each way (300 x 200 B) all
# arrive; on the outer link at least 610 ESP-in-UDP packets and nothing but ARP, IPv6
# neighbour discovery/multicast and UDP 500/4500 (never ICMP echo, never the stream's
# plaintext marker).
topo_check_traffic() {
    local what=$1 fam=${2:-4} got n cap pid ike esp other lsrc rdst
    local not_plain='not arp and not udp port 500 and not udp port 4500'
    if [[ $fam == 6 ]]; then lsrc=$TOPO_LEFT_INNER6 rdst=$TOPO_RIGHT_HOST6; else lsrc=$TOPO_LEFT_INNER rdst=$TOPO_RIGHT_HOST; fi
    if [[ ${TOPO_IPV6:-0} == 1 ]]; then
        # ND (ICMPv6 133-137, RFC 4861), link-local and multicast (MLD, RS) are link chatter.
        not_plain+=' and not ip6 multicast and not (ip6 src net fe80::/10) and not (icmp6 and ip6[40] >= 133 and ip6[40] <= 137)'
    fi
    cap=$HARNESS_DIR/outer-$RANDOM.pcap
    netns_capture_start "$TOPO_LEFT" "$TOPO_LEFT_IF" "$cap"
    pid=$HARNESS_LAST_PID
    got=$(netns_ping "$TOPO_LEFT" "$lsrc" "$rdst" 5)
    [[ $got == 5 ]] || harness_die "$what: ping $lsrc -> $rdst through the tunnel: $got/5 replies
$(tail -n 20 "$TOPO_GW_LOG")"
    read -r got n <<<"$(netns_udp_stream "$TOPO_LEFT" "$lsrc" "$TOPO_RIGHT" "$rdst" 300 200)"
    [[ $got == "$n" ]] || harness_die "$what: UDP stream $lsrc -> $rdst: $got/$n"
    read -r got n <<<"$(netns_udp_stream "$TOPO_RIGHT" "$rdst" "$TOPO_LEFT" "$lsrc" 300 200)"
    [[ $got == "$n" ]] || harness_die "$what: UDP stream $rdst -> $lsrc: $got/$n"
    netns_capture_stop "$pid"
    ike=$(capture_count "$cap" "$TOPO_BPF_IKE")
    esp=$(capture_count "$cap" "$TOPO_BPF_ESP")
    other=$(capture_count "$cap" "$not_plain")
    ((esp >= 610)) || harness_die "$what: only $esp ESP-in-UDP packets on the outer link (want >= 610)"
    ((other == 0)) || harness_die "$what: $other packets on the outer link that are not ARP/ND nor UDP 500/4500:
$(tcpdump -nn -r "$cap" "$not_plain" 2>/dev/null | head -n 5)"
    ! capture_contains "$cap" "$HARNESS_UDP_MARKER" || harness_die "$what: plaintext marker seen on the outer link"
    harness_log "$what: 5/5 pings, 300/300 UDP each way; outer link: $esp ESP-in-UDP, $ike IKE, nothing else but link chatter"
}

# topo_charon_spi_in: charon's inbound SPI of its INSTALLED CHILD_SA net (a rekeyed one
# lingers as DELETED for a while).
topo_charon_spi_in() {
    charon_sas left | awk '$1 == "CHILD" && / name=net / && / state=INSTALLED / {
        for (i = 4; i <= NF; i++) if (index($i, "spi-in=") == 1) print substr($i, 8) }' | tail -n 1
}

# topo_charon_ike_spis: charon's IKE SA gw's SPIs (initiator's then responder's).
topo_charon_ike_spis() { echo "$(charon_sa_get left gw initiator-spi)$(charon_sa_get left gw responder-spi)"; }

# topo_rekey_under_pings WHAT child|ike CMD...: CMD rekeys while 150 pings (10 ms apart)
# cross the tunnel left -> right: all answered, charon's SA (INSTALLED CHILD_SA, or IKE SA)
# really changed, and the tunnel still carries pings afterwards.
topo_rekey_under_pings() {
    local what=$1 kind=$2 ppid before got sent now
    shift 2
    if [[ $kind == child ]]; then before=$(topo_charon_spi_in); else before=$(topo_charon_ike_spis); fi
    netns_ping_start "$TOPO_LEFT" "$TOPO_LEFT_INNER" "$TOPO_RIGHT_HOST" 150 0.01
    ppid=$HARNESS_LAST_PID
    "$@" >&2 || harness_die "$what: '$*' failed"
    read -r got sent <<<"$(netns_ping_wait "$ppid" 20)"
    [[ $got == "$sent" && $sent -gt 0 ]] || harness_die "$what under a ping stream: $got/$sent
$(tail -n 20 "$TOPO_GW_LOG")"
    if [[ $kind == child ]]; then now=$(topo_charon_spi_in); else now=$(topo_charon_ike_spis); fi
    [[ -n $now && $now != "$before" ]] || harness_die "$what: charon's SA did not change ($before): $(charon_sas left)"
    [[ $(netns_ping "$TOPO_LEFT" "$TOPO_LEFT_INNER" "$TOPO_RIGHT_HOST" 3) == 3 ]] || harness_die "$what: no ping after the rekey"
    harness_log "$what during 150 pings: $got/$sent answered"
}

# The static-SA chain (no charon): host — gw1 — gw2 — host, two ipsecgw instances.
# topo_chain4 TAG: harness_init TAG, topo_ipsecgw, then namespaces H1 G1 G2 H2 (TAG-h1 …)
# and veths h1 (10.1.0.2/24) — g1in, g1out — g2out, g2in — h2 (10.2.0.2/24); the gateway
# ends carry no kernel address (they are ipsecgw's). Sets TAG H1 G1 G2 H2 and W (the
# harness dir, where topo_chain4_start expects gw1.toml and gw2.toml).
topo_chain4() {
    TAG=$1 H1=$1-h1 G1=$1-g1 G2=$1-g2 H2=$1-h2
    harness_init "$TAG"
    topo_ipsecgw
    W=$HARNESS_DIR
    netns_add "$H1"; netns_add "$G1"; netns_add "$G2"; netns_add "$H2"
    netns_veth "$H1" h1 10.1.0.2/24 "$G1" g1in -
    netns_veth "$G1" g1out - "$G2" g2out -
    netns_veth "$G2" g2in - "$H2" h2 10.2.0.2/24
}

# topo_chain4_start TIMEOUT_S: ipsecgw run with $W/gw1.toml in G1 and $W/gw2.toml in G2
# (control sockets $W/gw1.sock and $W/gw2.sock)
# (logs $W/gw1.log, $W/gw2.log; PIDs P1, P2), until both logged their ESP worker.
topo_chain4_start() {
    harness_spawn "$W/gw1.log" ip netns exec "$G1" "$IPSECGW" run --config "$W/gw1.toml" --socket "$W/gw1.sock"
    P1=$HARNESS_LAST_PID
    harness_spawn "$W/gw2.log" ip netns exec "$G2" "$IPSECGW" run --config "$W/gw2.toml" --socket "$W/gw2.sock"
    P2=$HARNESS_LAST_PID
    local l
    for l in gw1 gw2; do
        harness_wait_until "$1" grep -qs "ESP worker" "$W/$l.log" || harness_die "$l did not start: $(cat "$W/$l.log")"
    done
}
