#!/usr/bin/env bash
# IKEv2 control-plane interop with strongSwan (issue 6): `ipsecgw ike` (the IKE manager on
# kernel UDP sockets, Child SAs logged instead of installed) in iki-gw (198.51.100.2), charon
# with kernel-libipsec in iki-left (198.51.100.1), topology "kernel" mode.
#
# For aes128gcm16-prfsha256-ecp256 and aes256gcm16-prfsha384-x25519 (IKE; ESP the same
# cipher with the group as PFS):
#   1. charon initiates, ipsecgw responds: IKE SA + first CHILD_SA up on both sides, with the
#      same IKE SPI and the same Child SPIs crosswise (our spi_in = charon's spi-out ...);
#      charon's NAT-T quirk handled (it fakes a NAT: IKE moves to 4500, ESP in UDP: both
#      sides say encap);
#   2. CHILD rekey by charon, by ipsecgw; IKE rekey by charon, by ipsecgw: after each, both
#      sides' active SPIs agree (ours from the `list` command, charon's INSTALLED CHILD_SA);
#   3. delete by charon: ipsecgw's IKE SA goes down (DeletedByPeer);
#   4. ipsecgw initiates: same SPI checks; delete by ipsecgw: charon's IKE SA goes away.
# Then a PSK mismatch, ipsecgw as responder and as initiator: our log has one FAILURE line
# naming the cause on each role.
#
# Not tested here: ESP traffic through the tunnel. It needs the DPDK ESP worker (next wave);
# this test is the control plane alone.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib/topology.sh

TAG=iki
harness_init "$TAG"
topo_ipsecgw
topo_create "$TAG" kernel
topo_left_charon
GWLOG=$HARNESS_DIR/ipsecgw.log
FIFO=$HARNESS_DIR/commands
mkfifo "$FIFO"
GWPID=

# --- ipsecgw helpers ---------------------------------------------------------------------

gw_start() { # IKE_PROPOSAL ESP_PROPOSAL
    topo_gw_ike_config "$HARNESS_DIR/gw.toml" "$1" "$2"
    : >"$GWLOG"
    harness_spawn "$GWLOG" ip netns exec "$TOPO_GW" "$IPSECGW" ike --config "$HARNESS_DIR/gw.toml" --commands "$FIFO"
    GWPID=$HARNESS_LAST_PID
    harness_wait_until 10 grep -q "IKE manager running" "$GWLOG" || harness_die "ipsecgw ike did not start: $(cat "$GWLOG")"
}

gw_stop() {
    [[ -n $GWPID ]] || return 0
    harness_kill "$GWPID" 5
    GWPID=
}

gw_mark() { wc -l <"$GWLOG"; }
gw_since() { tail -n "+$(($1 + 1))" "$GWLOG"; }
_gw_has() { gw_since "$1" | grep -E -- "$2" >/dev/null; }
gw_wait() { # MARK REGEX [TIMEOUT]
    harness_wait_until "${3:-10}" _gw_has "$1" "$2" || harness_die "ipsecgw never logged /$2/; its log since the mark:
$(gw_since "$1" | tail -n 30)"
}
# gw_cmd LINE: one command through the FIFO (bounded: the reader reopens it after each one).
gw_cmd() { timeout 5 sh -c 'printf "%s\n" "$1" >"$2"' _ "$1" "$FIFO" || harness_die "ipsecgw did not read command '$1'"; }

# gw_active: "IKESPI SPI_IN SPI_OUT" of our one established IKE SA and its active child
# (lowercase hex, no 0x), from the `list` command's answer.
gw_active() {
    local m line
    m=$(gw_mark)
    gw_cmd list
    gw_wait "$m" "command 'list':" 5
    line=$(gw_since "$m" | grep "command 'list':" | tail -n 1)
    awk '{
        ike = ""; n = 0
        for (i = 1; i <= NF; i++) {
            if ($i ~ /^\[ike_sa=/) { v = $i; sub(/^\[ike_sa=/, "", v); ike = v }
            if ($i ~ /^established=true/) est = 1
            if ($i ~ /^spi_in=/) { si = $i; sub(/^spi_in=0x/, "", si) }
            if ($i ~ /^spi_out=/) { so = $i; sub(/^spi_out=0x/, "", so) }
            if ($i ~ /^active=true/ && est) { print ike, si, so; exit }
        }
    }' <<<"$line"
}

# --- charon helpers ----------------------------------------------------------------------

# charon_active: "IKE_SPI_I IKE_SPI_R SPI_IN SPI_OUT ENCAP" of charon's IKE SA gw and its
# INSTALLED CHILD_SA net.
charon_active() {
    charon_sas left | awk '
        $1 == "IKE" && $2 == "gw" { for (i = 3; i <= NF; i++) { split($i, kv, "="); ike[kv[1]] = kv[2] } }
        $1 == "CHILD" && $2 == "gw" {
            delete c; for (i = 4; i <= NF; i++) { split($i, kv, "="); c[kv[1]] = kv[2] }
            if (c["name"] == "net" && c["state"] == "INSTALLED") { si = c["spi-in"]; so = c["spi-out"]; en = c["encap"] }
        }
        END { if (si != "") print ike["initiator-spi"], ike["responder-spi"], si, so, en }'
}

# check_agree WHAT: both sides name the same IKE SA and the same Child SPIs crosswise.
check_agree() {
    local what=$1 ours theirs ike si so ci cr csi cso cenc
    ours=$(gw_active)
    theirs=$(charon_active)
    read -r ike si so <<<"$ours" || true
    read -r ci cr csi cso cenc <<<"$theirs" || true
    [[ -n ${ike:-} && -n ${ci:-} ]] || harness_die "$what: no established SA (ipsecgw: '$ours', charon: '$theirs')"
    [[ $ike == "$ci" || $ike == "$cr" ]] ||
        harness_die "$what: IKE SPI differs: ours $ike, charon's $ci/$cr"
    [[ $si == "$cso" && $so == "$csi" ]] ||
        harness_die "$what: Child SPIs differ: ours in $si out $so, charon's in $csi out $cso"
    [[ $cenc == yes ]] || harness_die "$what: charon's CHILD_SA is not UDP-encapsulated (encap=$cenc)"
    harness_log "$what: agree: IKE $ci/$cr, Child ours in $si out $so = charon's in $csi out $cso (encap)"
}

# wait_charon_rekeyed OLD_SPI_IN: charon's installed CHILD_SA has another inbound SPI.
_charon_child_changed() { local s; s=$(charon_active | awk '{ print $3 }'); [[ -n $s && $s != "$1" ]]; }
_charon_ike_changed() { local s; s=$(charon_active | awk '{ print $1 $2 }'); [[ -n $s && $s != "$1" ]]; }

# rekey_check WHAT child|ike CMD...: CMD rekeys; ipsecgw logs the new SA up (rekey_of) and
# the old one down (Rekeyed), charon's active SA changed, and both sides agree on the SPIs.
rekey_check() {
    local what=$1 kind=$2 before m up changed
    shift 2
    if [[ $kind == child ]]; then
        before=$(charon_active | awk '{ print $3 }') up="CHILD SA up: .* rekey_of=[0-9]" changed=_charon_child_changed
    else
        before=$(charon_active | awk '{ print $1 $2 }') up="IKE SA up: .* rekey_of=[0-9a-f]{16}" changed=_charon_ike_changed
    fi
    m=$(gw_mark)
    "$@"
    gw_wait "$m" "$up"
    harness_wait_until 5 "$changed" "$before" || harness_die "$what: charon's SA did not change"
    gw_wait "$m" "${kind^^} SA down: .*reason=Rekeyed"
    check_agree "$what"
}

# --- the tests ---------------------------------------------------------------------------

suite() { # IKE_PROPOSAL ESP_PROPOSAL
    local ike=$1 esp=$2 m before
    harness_log "=== suite $ike / $esp ==="
    charon_conn_remove left gw 2>/dev/null || true
    topo_left_conn gw left CONN_IKE_PROPOSALS="$ike" CONN_ESP_PROPOSALS="$esp"
    charon_load left
    gw_start "$ike" "$esp"

    # 1. charon initiates, we respond.
    m=$(gw_mark)
    charon_initiate left gw net || harness_die "charon could not initiate: $(cat "$(charon_dir left)/initiate.out")"
    charon_wait_child left gw net || harness_die "charon has no INSTALLED CHILD_SA"
    gw_wait "$m" "CHILD SA up: connection=left .* encap=udp"
    gw_since "$m" | grep -E "IKE SA up: connection=left .*role=Responder" >/dev/null ||
        harness_die "no responder IKE SA up line: $(gw_since "$m" | tail -n 20)"
    gw_since "$m" | grep -E "SA installed: connection=left .*directions=Both" >/dev/null ||
        harness_die "the Child SA was not handed to the SA sink"
    if grep -Ei "[0-9a-f]{32}" "$GWLOG" >/dev/null; then
        harness_die "something that looks like key material is in our log"
    fi
    check_agree "responder setup"

    # 2. rekeys by either side.
    rekey_check "CHILD rekey by charon" child charon_rekey left --child net
    rekey_check "CHILD rekey by ipsecgw" child gw_cmd "rekey-child left"
    rekey_check "IKE rekey by charon" ike charon_rekey left --ike gw
    rekey_check "IKE rekey by ipsecgw" ike gw_cmd "rekey-ike left"

    # 3. delete by charon.
    m=$(gw_mark)
    charon_terminate left gw
    gw_wait "$m" "IKE SA down: connection=left .*reason=DeletedByPeer"
    charon_wait_ike_gone left gw || harness_die "charon kept its IKE SA"
    harness_log "delete by charon: ipsecgw's IKE SA went down"

    # 4. we initiate.
    m=$(gw_mark)
    gw_cmd "initiate left"
    gw_wait "$m" "CHILD SA up: connection=left .* encap=udp"
    gw_since "$m" | grep -E "IKE SA up: connection=left .*role=Initiator .*nat=remote" >/dev/null ||
        harness_die "no initiator IKE SA up line with the faked NAT seen: $(gw_since "$m" | grep 'IKE SA up' || true)"
    charon_wait_child left gw net || harness_die "charon did not install the CHILD_SA we initiated"
    check_agree "initiator setup"
    [[ $(charon_sa_get left gw dh-group) == *"$(dh_name "$ike")"* ]] ||
        harness_die "charon reports DH group $(charon_sa_get left gw dh-group), expected $(dh_name "$ike")"

    # delete by us.
    m=$(gw_mark)
    gw_cmd "terminate left"
    gw_wait "$m" "IKE SA down: connection=left .*reason=DeletedLocally"
    charon_wait_ike_gone left gw || harness_die "charon kept its IKE SA after our delete"
    harness_log "delete by ipsecgw: charon's IKE SA went away"
    gw_stop
}

dh_name() { case $1 in *ecp256*) echo ECP_256 ;; *x25519*) echo CURVE_25519 ;; *) echo "?" ;; esac; }

mismatch() {
    local m line
    harness_log "=== PSK mismatch ==="
    charon_conn_remove left gw 2>/dev/null || true
    topo_left_conn gw left CONN_PSK=wrong-psk
    charon_load left
    gw_start aes128gcm16-prfsha256-ecp256 aes128gcm16-ecp256
    # We respond.
    m=$(gw_mark)
    charon_initiate left gw net 5 && harness_die "charon established a tunnel with a wrong PSK"
    gw_wait "$m" "FAILURE: .*IKE_AUTH failed \(Responder"
    line=$(gw_since "$m" | grep "FAILURE:" | head -n 1)
    [[ $line == *"pre-shared keys differ"* ]] || harness_die "responder failure line does not name the PSK: $line"
    harness_log "responder says: ${line#*FAILURE: }"
    # We initiate.
    m=$(gw_mark)
    gw_cmd "initiate left"
    gw_wait "$m" "FAILURE: .*IKE_AUTH failed \(Initiator"
    line=$(gw_since "$m" | grep "FAILURE:" | head -n 1)
    [[ $line == *"pre-shared key"* ]] || harness_die "initiator failure line does not name the PSK: $line"
    harness_log "initiator says: ${line#*FAILURE: }"
    m=$(gw_mark)
    gw_cmd status
    gw_wait "$m" "command 'status': .*last_failure=connection 'left' IKE_AUTH failed"
    gw_stop
}

suite aes128gcm16-prfsha256-ecp256 aes128gcm16-ecp256
suite aes256gcm16-prfsha384-x25519 aes256gcm16-x25519
mismatch
echo "ike_interop: ok (2 suites: setup both roles, CHILD/IKE rekey by either side, delete by either side; PSK mismatch reported on both roles)"
