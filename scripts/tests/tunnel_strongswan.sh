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

TAG=tss
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
IPSECGW=${IPSECGW:-$CARGO_TARGET_DIR/debug/ipsecgw}
if [[ -z ${IPSECGW_PREBUILT:-} && ! -x $IPSECGW ]]; then
    harness_log "building ipsecgw (debug)"
    cargo build -q -p ipsecgw >&2
fi

harness_init "$TAG"
topo_create "$TAG" dpdk
topo_left_charon left
GWLOG=$HARNESS_DIR/ipsecgw.log
SOCK=$HARNESS_DIR/ipsecgw.sock
GWPID=

gw_start() { # IKE_PROPOSAL ESP_PROPOSAL N
    printf 'topology-psk' >"$HARNESS_DIR/gw.psk"
    chmod 600 "$HARNESS_DIR/gw.psk"
    cat >"$HARNESS_DIR/gw.toml" <<TOML
[dpdk]
mbufs = 8191

[[port]]
name = "outside"
dpdk_port = 0
addresses = ["$TOPO_GW_OUTER/24"]

[[port]]
name = "inside"
dpdk_port = 1
addresses = ["$TOPO_GW_INNER/24"]

[[connection]]
name = "left"
local_addr = "$TOPO_GW_OUTER"
remote_addr = "$TOPO_LEFT_OUTER"
local_id = "gw"
remote_id = "left"
psk = { file = "gw.psk" }
ike_proposals = ["$1"]
esp_proposals = ["$2"]
local_ts = ["$TOPO_RIGHT_NET"]
remote_ts = ["$TOPO_LEFT_NET"]
start_action = "none"
TOML
    topo_eal_args "$TAG-$3-$$"
    : >"$GWLOG"
    harness_spawn "$GWLOG" ip netns exec "$TOPO_GW" "$IPSECGW" run --config "$HARNESS_DIR/gw.toml" \
        --socket "$SOCK" -- "${TOPO_EAL_ARGS[@]}"
    GWPID=$HARNESS_LAST_PID
    harness_wait_until 30 grep -q "IKE manager on the punt path" "$GWLOG" ||
        harness_die "ipsecgw run did not start: $(tail -n 20 "$GWLOG")"
    harness_wait_until 10 test -S "$SOCK" || harness_die "no control socket: $(tail -n 20 "$GWLOG")"
}

gw_stop() {
    [[ -n $GWPID ]] || return 0
    harness_kill "$GWPID" 10
    GWPID=
    harness_log "ipsecgw exit report: $(grep -E "IKE punt path|^drops:" "$GWLOG" | tr '\n' ' ')"
}

gw() { ip netns exec "$TOPO_GW" "$IPSECGW" "$@" --socket "$SOCK"; }

# installed_spi_in: charon's inbound SPI of its INSTALLED CHILD_SA net (a rekeyed one
# lingers as DELETED for a while).
installed_spi_in() {
    charon_sas left | awk '$1 == "CHILD" && / name=net / && / state=INSTALLED / {
        for (i = 4; i <= NF; i++) if (index($i, "spi-in=") == 1) print substr($i, 8) }' | tail -n 1
}

_gw_child_up() { gw show child-sa 2>/dev/null | grep -q .; }

check_traffic() { # WHAT
    local what=$1 got cap pid n ike esp other
    cap=$HARNESS_DIR/outer-$RANDOM.pcap
    netns_capture_start "$TOPO_LEFT" "$TOPO_LEFT_IF" "$cap"
    pid=$HARNESS_LAST_PID
    got=$(netns_ping "$TOPO_LEFT" "$TOPO_LEFT_INNER" "$TOPO_RIGHT_HOST" 5)
    [[ $got == 5 ]] || harness_die "$what: ping left -> right through the tunnel: $got/5 replies
$(tail -n 20 "$GWLOG")"
    read -r got n <<<"$(netns_udp_stream "$TOPO_LEFT" "$TOPO_LEFT_INNER" "$TOPO_RIGHT" "$TOPO_RIGHT_HOST" 300 200)"
    [[ $got == "$n" ]] || harness_die "$what: UDP stream left -> right: $got/$n"
    read -r got n <<<"$(netns_udp_stream "$TOPO_RIGHT" "$TOPO_RIGHT_HOST" "$TOPO_LEFT" "$TOPO_LEFT_INNER" 300 200)"
    [[ $got == "$n" ]] || harness_die "$what: UDP stream right -> left: $got/$n"
    netns_capture_stop "$pid"
    ike=$(capture_count "$cap" "udp port 500 or (udp port 4500 and udp[8:4] = 0)")
    esp=$(capture_count "$cap" "udp port 4500 and udp[8:4] != 0")
    other=$(capture_count "$cap" "not arp and not udp port 500 and not udp port 4500")
    ((esp >= 610)) || harness_die "$what: only $esp ESP-in-UDP packets on the outer link (want >= 610)"
    ((other == 0)) || harness_die "$what: $other packets on the outer link that are neither ARP nor UDP 500/4500"
    ! capture_contains "$cap" "$HARNESS_UDP_MARKER" || harness_die "$what: plaintext marker seen on the outer link"
    harness_log "$what: 5/5 pings, 300/300 UDP each way; outer link: $esp ESP-in-UDP, $ike IKE, nothing else but ARP"
}

# ike_spis: charon's IKE SA SPIs (initiator+responder).
ike_spis() { echo "$(charon_sa_get left gw initiator-spi)$(charon_sa_get left gw responder-spi)"; }

# rekey_under_pings WHAT child|ike CMD...: CMD rekeys during 150 pings at 10 ms; all answered
# and the SA (charon's INSTALLED CHILD_SA or its IKE SA) really changed.
rekey_under_pings() {
    local what=$1 kind=$2 ppid before got sent now; shift 2
    if [[ $kind == child ]]; then before=$(installed_spi_in); else before=$(ike_spis); fi
    netns_ping_start "$TOPO_LEFT" "$TOPO_LEFT_INNER" "$TOPO_RIGHT_HOST" 150 0.01
    ppid=$HARNESS_LAST_PID
    "$@" >&2 || harness_die "$what: '$*' failed"
    read -r got sent <<<"$(netns_ping_wait "$ppid" 20)"
    [[ $got == "$sent" && $sent -gt 0 ]] || harness_die "$what under a ping stream: $got/$sent
$(tail -n 20 "$GWLOG")"
    if [[ $kind == child ]]; then now=$(installed_spi_in); else now=$(ike_spis); fi
    [[ -n $now && $now != "$before" ]] || harness_die "$what: charon's SA did not change ($before): $(charon_sas left)"
    # The tunnel still carries traffic on the new SA.
    [[ $(netns_ping "$TOPO_LEFT" "$TOPO_LEFT_INNER" "$TOPO_RIGHT_HOST" 3) == 3 ]] || harness_die "$what: no ping after the rekey"
    harness_log "$what during 150 pings: $got/$sent answered"
}

suite() { # IKE_PROPOSAL ESP_PROPOSAL N
    local ike=$1 esp=$2 n=$3 enc
    harness_log "=== suite $ike / $esp ==="
    charon_conn_remove left gw 2>/dev/null || true
    topo_left_conn gw left CONN_IKE_PROPOSALS="$ike" CONN_ESP_PROPOSALS="$esp"
    charon_load left
    gw_start "$ike" "$esp" "$n"
    # The whole suite on the outer link: IKE goes through the worker on 500 and 4500.
    local wcap=$HARNESS_DIR/whole-$n.pcap wpid
    netns_capture_start "$TOPO_LEFT" "$TOPO_LEFT_IF" "$wcap"
    wpid=$HARNESS_LAST_PID

    # charon initiates, ipsecgw responds.
    charon_initiate left gw net || harness_die "charon could not initiate: $(tail -n 5 "$(charon_dir left)/initiate.out")
ipsecgw: $(tail -n 20 "$GWLOG")"
    charon_wait_child left gw net || harness_die "charon has no INSTALLED CHILD_SA"
    enc=$(charon_sa_get left gw net encap)
    [[ $enc == yes ]] || harness_die "charon's CHILD_SA is not UDP-encapsulated (encap=$enc)"
    harness_wait_until 5 _gw_child_up || harness_die "ipsecgw shows no Child SA: $(gw show ike-sa 2>&1)"
    check_traffic "charon initiator"
    gw show child-sa >&2 || true

    if [[ $n == 1 ]]; then
        # Rekeys while a ping stream runs: nothing lost (make-before-break).
        rekey_under_pings "CHILD rekey by charon" child charon_rekey left --child net
        rekey_under_pings "CHILD rekey by ipsecgw" child gw rekey left
        rekey_under_pings "IKE rekey by charon" ike charon_rekey left --ike gw
    fi

    # ipsecgw initiates.
    charon_terminate left gw
    charon_wait_ike_gone left gw || harness_die "charon kept its IKE SA"
    gw initiate left >&2 || harness_die "ipsecgw initiate failed: $(tail -n 20 "$GWLOG")"
    charon_wait_child left gw net 10 || harness_die "no CHILD_SA at charon after ipsecgw initiated:
$(tail -n 20 "$GWLOG")"
    harness_wait_until 5 _gw_child_up || harness_die "ipsecgw shows no Child SA after initiating"
    check_traffic "ipsecgw initiator"
    gw_stop
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
