#!/usr/bin/env bash
# Self-test of the strongSwan namespace harness (scripts/lib/{netns,charon,topology}.sh),
# and the reference record of strongSwan's own mismatch diagnostics (docs/testing.md).
#
#  1. Two charons in two namespaces (outer 198.51.100.0/24, inner 10.1.0.1 and 10.3.0.1):
#     for aes128gcm16-prfsha256-ecp256 and aes256gcm16-prfsha384-x25519 (IKE and ESP) the
#     tunnel comes up with the algorithms strongSwan reports, ping and a bounded UDP stream
#     pass, a CHILD and an IKE rekey during a ping stream lose nothing, the outer link
#     carries only UDP 500/4500 (ESP in UDP, no plaintext marker), and a delete on one
#     side removes the SA on the other. A killed peer (no DELETE) restarts and reconnects.
#  2. Mismatch matrix, one change at a time from the working tunnel: what the initiator
#     and the responder print, asserted loosely (the patterns of shared/STRONGSWAN.md).
#     MISMATCH_TABLE_OUT=FILE saves the table (markdown) to FILE.
#  3. scripts/lib/topology.sh: the dpdk layout (gw ports without kernel addresses, static
#     neighbours, DPDK net_af_packet on both gw ports via testpmd) is built and torn down;
#     the kernel layout routes left -> right in plaintext, and with a charon in the gw
#     namespace standing in for ipsecgw a tunnel left <-> gw carries left -> right traffic.
# Needs root and the packages of scripts/setup.sh. Every wait is bounded.
set -euo pipefail
# HARNESS_XTRACE=1: trace with timestamps (bash ignores PS4 from the environment as root).
if [[ ${HARNESS_XTRACE:-0} == 1 ]]; then PS4='+ ${EPOCHREALTIME} '; set -x; fi
cd "$(dirname "$0")/../.."
# shellcheck source=scripts/lib/topology.sh
source scripts/lib/topology.sh

[[ $(id -u) == 0 ]] || { echo "strongswan_harness: needs root" >&2; exit 1; }
for c in swanctl tcpdump ip unshare "$CHARON_BIN" "$HARNESS_PYTHON"; do
    command -v "$c" >/dev/null || { echo "strongswan_harness: $c missing (run scripts/setup.sh)" >&2; exit 1; }
done

T=shh
harness_init "$T"
START=$EPOCHREALTIME
FAILS=0
ok() { echo "ok   $*"; }
info() { echo "info $*"; }
ms_since() { echo $(( (${EPOCHREALTIME/[.,]/} - ${1/[.,]/}) / 1000 )); }
bad() { echo "FAIL $*"; FAILS=$((FAILS + 1)); }
# expect OK_MSG FAIL_MSG CMD...: one result line from CMD's status; check MSG CMD...: same message.
expect() { local good=$1 fail=$2; shift 2; if "$@"; then ok "$good"; else bad "$fail"; fi; }
check() { local what=$1; shift; expect "$what" "$what" "$@"; }

# ------------------------------------------------------------------ two peers
A=$T-a B=$T-b
netns_add "$A"
netns_add "$B"
netns_veth "$A" out0 198.51.100.1/24 "$B" out0 198.51.100.2/24
netns_local_addr "$A" 10.1.0.1
netns_local_addr "$B" 10.3.0.1
charon_start a "$A"
charon_start b "$B"

# configure [a:CONN_X=VALUE | b:CONN_X=VALUE]...: connection "t" on both peers from the
# baselines (scripts/tests/strongswan_baseline/peer-{a,b}.conn) with the given changes.
BASE=scripts/tests/strongswan_baseline
configure() {
    local a=() b=() kv
    for kv; do
        case $kv in
            a:*) a+=("${kv#a:}") ;;
            b:*) b+=("${kv#b:}") ;;
            *) harness_die "configure: '$kv' is not a:CONN_X=V or b:CONN_X=V" ;;
        esac
    done
    charon_conn_from a t "$BASE/peer-a.conn" "${a[@]}" && charon_conn_from b t "$BASE/peer-b.conn" "${b[@]}" &&
        charon_load a && charon_load b
}

# _new_sa PEER IKE|CHILD KEY OLD: an established SA of "t" (CHILD: "net") whose KEY is not OLD.
_new_sa() {
    charon_sas "$1" | awk -v kind="$2" -v key="$3" -v old="$4" '
        $1 == kind && $2 == "t" && (kind == "IKE" ? / state=ESTABLISHED/ : / name=net .* state=INSTALLED/) && index($0, " " key "=" old " ") == 0 { found = 1 }
        END { exit !found }'
}

# tunnel_suite IKE_PROPOSAL KEYSIZE DH_GROUP DELETER: bring the tunnel up, send traffic,
# inspect the outer link, delete it from DELETER (a or b) and check the other side.
tunnel_suite() {
    local ike=$1 keysize=$2 dh=$3 deleter=$4 esp pcap cap
    esp=${ike/-prf*-/-}
    configure "a:CONN_IKE_PROPOSALS=$ike" "b:CONN_IKE_PROPOSALS=$ike" "a:CONN_ESP_PROPOSALS=$esp" "b:CONN_ESP_PROPOSALS=$esp" ||
        { bad "$ike: config load"; return; }
    pcap=$HARNESS_DIR/outer-${ike}.pcap
    netns_capture_start "$A" out0 "$pcap" || { bad "$ike: tcpdump"; return; }
    cap=$HARNESS_LAST_PID
    local t0=$EPOCHREALTIME
    if ! charon_initiate a t net 10; then
        bad "$ike: initiate: $(tail -n 3 "$(charon_dir a)/initiate.out" | tr '\n' ' ')"
        netns_capture_stop "$cap"; return
    fi
    check "$ike: CHILD_SA installed on both sides" charon_wait_child a t net 10
    charon_wait_child b t net 10 || bad "$ike: CHILD_SA not installed on b"
    info "$ike: swanctl --initiate to CHILD_SA installed on both: $(ms_since "$t0") ms"
    local side
    for side in a b; do
        expect "$ike: $side reports IKE AES_GCM_16 $keysize / $dh, ESP $keysize" \
            "$ike: $side SAs: $(charon_sas "$side" | tr '\n' ' ')" \
            test "$(charon_sa_get "$side" t encr-keysize)/$(charon_sa_get "$side" t dh-group)/$(charon_sa_get "$side" t net encr-keysize)" = "$keysize/$dh/$keysize"
    done
    local got
    got=$(netns_ping "$A" 10.1.0.1 10.3.0.1 5)
    expect "$ike: ping 5/5 through the tunnel" "$ike: ping $got/5" test "$got" = 5
    local r s
    read -r r s < <(netns_udp_stream "$A" 10.1.0.1 "$B" 10.3.0.1 500 200)
    expect "$ike: UDP stream $r/$s datagrams" "$ike: UDP stream $r/$s" test "$r" = "$s" -a "$r" -gt 0
    # Before the rekey: afterwards charon_sa_get reads the new CHILD_SA's counters.
    local pkts
    pkts=$(charon_sa_get a t net packets-out)
    expect "$ike: a's CHILD_SA counted $pkts packets out" "$ike: a packets-out=$pkts" test "${pkts:-0}" -ge 505
    # Rekey the CHILD_SA (from a) and the IKE SA (from b) by hand while 150 pings run.
    local ppid old_child old_ike
    old_child=$(charon_sa_get a t net spi-in)
    old_ike=$(charon_sa_get b t initiator-spi)
    netns_ping_start "$A" 10.1.0.1 10.3.0.1 150 0.01
    ppid=$HARNESS_LAST_PID
    charon_rekey a --child net || true
    check "$ike: CHILD_SA rekeyed (new SPI) during a ping stream" harness_wait_until 3 _new_sa a CHILD spi-in "$old_child"
    charon_rekey b --ike t || true
    check "$ike: IKE SA rekeyed (new SPIs) during a ping stream" harness_wait_until 3 _new_sa b IKE initiator-spi "$old_ike"
    read -r r s < <(netns_ping_wait "$ppid" 10)
    expect "$ike: no ping lost across both rekeys: $r/$s" "$ike: ping across rekeys: $r/$s" \
        test "$r" = "$s" -a "$r" -gt 0
    netns_capture_stop "$cap"
    local other esp_udp ike_udp
    other=$(capture_count "$pcap" 'not arp and not (udp port 500 or udp port 4500)')
    esp_udp=$(capture_count "$pcap" 'udp port 4500 and udp[8:4] != 0')
    ike_udp=$(capture_count "$pcap" '(udp port 500) or (udp port 4500 and udp[8:4] = 0)')
    expect "$ike: outer link: only UDP 500/4500 (+ARP)" \
        "$ike: outer link: $other packets that are not UDP 500/4500: $(tcpdump -nn -r "$pcap" -c 3 'not arp and not (udp port 500 or udp port 4500)' 2>/dev/null)" \
        test "$other" = 0
    expect "$ike: $esp_udp ESP-in-UDP 4500 packets, $ike_udp IKE packets" \
        "$ike: only $esp_udp ESP-in-UDP packets (expected >= 510)" test "$esp_udp" -ge 510
    if capture_contains "$pcap" "$HARNESS_UDP_MARKER"; then bad "$ike: plaintext marker on the outer link"
    else ok "$ike: no plaintext on the outer link"; fi
    other=a; [[ $deleter == a ]] && other=b
    charon_terminate "$deleter" t
    check "$ike: delete on $deleter removes the IKE SA on $other" charon_wait_ike_gone "$other" t 5
}

tunnel_suite aes128gcm16-prfsha256-ecp256 128 ECP_256 a
tunnel_suite aes256gcm16-prfsha384-x25519 256 CURVE_25519 b

# A peer that dies (SIGKILL, no DELETE) and comes back: the survivor keeps its stale SA
# until told otherwise; the restarted charon takes a new tunnel.
configure || bad "crash: config load"
tunnel_up() { charon_initiate a t net 10 && charon_wait_child b t net 10; }
tunnel_up || bad "crash: tunnel before the crash"
charon_crash b
check "crash: a still has the IKE SA of the killed peer (no DELETE was sent)" test "$(charon_sa_get a t state)" = ESTABLISHED
charon_start b "$B"
charon_load b
charon_terminate_all a
check "crash: tunnel up again with the restarted peer" tunnel_up
charon_terminate a t
info "phase 1 (two tunnels, crash/restart) done at $(ms_since "$START") ms"

# ------------------------------------------------------------------ mismatch matrix
TABLE=$HARNESS_DIR/mismatch.md
{
    echo "| case | change (a = initiator, b = responder) | strongSwan initiator sees | strongSwan responder logs |"
    echo "|---|---|---|---|"
} >"$TABLE"

# Lines worth recording, without time, thread and IKE SA name prefixes (log) or the
# "[IKE] " prefix (swanctl output). On the responder, the proposal and peer-config
# lookup lines are kept only when no "selected ..." line says the lookup succeeded.
INIT_RE='received [A-Z_]+ (notify error|error notify|notify,)|rekey (completed|failed)|peer didn.t accept|giving up|peer not responding|initiate (failed|completed)|failed to establish|IKE_SA .* established|CHILD_SA .* established'
RESP_RE='no matching peer config|MAC mismatched|no acceptable|unacceptable|no IKE config found|received proposals|configured proposals|selected proposal|DH group .* unacceptable|looking for peer configs matching|selected peer config|sending [A-Z_]+ notify|failed to establish|CHILD_SA .* established'
_strip() { sed -E -e 's/^[0-9:.]+ [0-9]+\[[A-Z]+\] (<[^>]*> )?//' -e 's/^\[[A-Z]+\] //' -e 's/^ +//' | { grep -E "$1" || true; }; }
_first() { awk '!seen[$0]++ && n++ < 8'; }
_failed_lookups() {
    awk '/^selected (proposal|peer config)/ { buf = ""; next }
         /^(received proposals|configured proposals|looking for peer configs)/ { buf = buf $0 "\n"; next }
         { printf "%s%s\n", buf, $0; buf = "" }
         END { printf "%s", buf }'
}
_cell() { sed -e 's/|/\\|/g' -e 's/`/'"'"'/g' | awk 'NR > 1 { printf "<br>" } { printf "`%s`", $0 }'; }

# mismatch NAME INIT_REGEX RESP_REGEX CHANGE...: one case of the matrix; CHANGE as for
# configure, also the "change" column of the table.
mismatch() {
    local name=$1 ire=$2 rre=$3 change; shift 3
    change=$(printf '%s, ' "$@" | sed -e 's/CONN_//g' -e 's/, $//')
    charon_terminate_all a >/dev/null
    charon_terminate_all b >/dev/null
    configure "$@" || { bad "mismatch $name: config load"; return; }
    local ma mb
    ma=$(charon_log_mark a)
    mb=$(charon_log_mark b)
    charon_initiate a t net 8 || true
    # MISMATCH_REKEY=1: the mismatch only shows at a CHILD rekey (PFS group).
    if [[ ${MISMATCH_REKEY:-0} == 1 ]]; then
        charon_wait_child a t net 3 || true
        charon_rekey a --child net || true
        charon_log_wait a "$ma" 'received [A-Z_]+ notify' 3 || true
    fi
    # The responder logs before it answers; the wait only covers log flushing (bounded).
    if [[ -n $rre ]]; then charon_log_wait b "$mb" "$rre" 3 || true; fi
    local ilines rlines
    ilines=$({ charon_log_since a "$ma"; cat "$(charon_dir a)/initiate.out"
               if [[ ${MISMATCH_REKEY:-0} == 1 ]]; then cat "$(charon_dir a)/rekey.out"; fi; } | _strip "$INIT_RE" | _first)
    rlines=$(charon_log_since b "$mb" | _strip "$RESP_RE" | _failed_lookups | _first)
    printf '| %s | %s | %s | %s |\n' "$name" "$change" "$(_cell <<<"$ilines")" "$(_cell <<<"${rlines:-(nothing)}")" >>"$TABLE"
    expect "mismatch $name: initiator shows /$ire/" "mismatch $name: initiator lacks /$ire/: $ilines" \
        grep -qE "$ire" <<<"$ilines"
    if [[ -n $rre ]]; then
        expect "mismatch $name: responder shows /$rre/" "mismatch $name: responder lacks /$rre/: $rlines" \
            grep -qE "$rre" <<<"$rlines"
    fi
}

V1=aes256-sha256-ecp256
mismatch "PSK" 'AUTHENTICATION_FAILED' 'MAC mismatched' a:CONN_PSK=wrong-psk
mismatch "initiator ID unknown to responder" 'AUTHENTICATION_FAILED' 'no matching peer config found' a:CONN_LOCAL_ID=left-x
mismatch "responder ID not the expected one" 'AUTHENTICATION_FAILED' 'no matching peer config found' a:CONN_REMOTE_ID=right-x
mismatch "IKE encryption/PRF" 'NO_PROPOSAL_CHOSEN' 'no acceptable ENCRYPTION_ALGORITHM' \
    a:CONN_IKE_PROPOSALS=aes256gcm16-prfsha384-ecp256
mismatch "IKE DH groups disjoint" 'NO_PROPOSAL_CHOSEN' 'no acceptable (KEY_EXCHANGE_METHOD|DIFFIE_HELLMAN_GROUP)' \
    a:CONN_IKE_PROPOSALS=aes128gcm16-prfsha256-x25519
mismatch "IKE DH overlap, wrong first guess" 'INVALID_KE_PAYLOAD|peer didn.t accept' 'unacceptable, requesting' \
    a:CONN_IKE_PROPOSALS=aes128gcm16-prfsha256-ecp256-x25519 b:CONN_IKE_PROPOSALS=aes128gcm16-prfsha256-x25519
check "mismatch IKE DH overlap: tunnel still comes up after the retry" charon_wait_child a t net 3
mismatch "ESP proposal" 'NO_PROPOSAL_CHOSEN' 'no acceptable' a:CONN_ESP_PROPOSALS=aes256gcm16-ecp256
check "mismatch ESP proposal: IKE SA stays up" test "$(charon_sa_get a t state)" = ESTABLISHED
MISMATCH_REKEY=1 mismatch "ESP PFS group (then CHILD rekey)" \
    'NO_PROPOSAL_CHOSEN' 'no acceptable (KEY_EXCHANGE_METHOD|DIFFIE_HELLMAN_GROUP)' b:CONN_ESP_PROPOSALS=aes128gcm16-x25519
mismatch "traffic selectors disjoint" 'TS_UNACCEPTABLE' 'unacceptable' a:CONN_REMOTE_TS=10.4.0.1/32
mismatch "IKEv1 initiator, IKEv2 responder" 'NO_PROPOSAL_CHOSEN' 'no IKE config found' \
    a:CONN_VERSION=1 a:CONN_IKE_PROPOSALS=$V1 b:CONN_IKE_PROPOSALS=$V1
mismatch "IKEv2 initiator, IKEv1 responder" 'NO_PROPOSAL_CHOSEN' 'no IKE config found' \
    b:CONN_VERSION=1 a:CONN_IKE_PROPOSALS=$V1 b:CONN_IKE_PROPOSALS=$V1
mismatch "responder silent" 'giving up after [0-9]+ retransmits' '' a:CONN_REMOTE_ADDRS=198.51.100.9
charon_terminate_all a >/dev/null
charon_terminate_all b >/dev/null
echo "---- strongSwan 5.9 mismatch diagnostics (reference for docs/testing.md)"
cat "$TABLE"
[[ -n ${MISMATCH_TABLE_OUT:-} ]] && cp "$TABLE" "$MISMATCH_TABLE_OUT"
charon_stop a b
info "phase 2 (mismatch matrix) done at $(ms_since "$START") ms"
netns_del "$A"
netns_del "$B"

# ------------------------------------------------------------------ topology
topo_create "$T"
gw_port_bare() { ! netns_has_ipv4 "$TOPO_GW" "$1" && [[ $(ip -n "$TOPO_GW" -br link show "$1") == *UP*"$2"* ]]; }
topo_gone() { ! ip netns list | grep -E "^$T-(left|gw|right)( |\$)" >/dev/null; }
check "topology dpdk: gw outer port up, MAC $TOPO_GW_OUT_MAC, no kernel IPv4" gw_port_bare "$TOPO_GW_OUT_IF" "$TOPO_GW_OUT_MAC"
check "topology dpdk: gw inner port up, MAC $TOPO_GW_IN_MAC, no kernel IPv4" gw_port_bare "$TOPO_GW_IN_IF" "$TOPO_GW_IN_MAC"
got=$(netns_ping "$TOPO_LEFT" "$TOPO_LEFT_OUTER" "$TOPO_GW_OUTER" 1)
expect "topology dpdk: nothing in the gw kernel answers for $TOPO_GW_OUTER" "topology dpdk: gw kernel answered" test "$got" = 0
topo_static_neigh
gw_neighbours() {
    [[ $(ip -n "$TOPO_LEFT" neigh show "$TOPO_GW_OUTER") == *"$TOPO_GW_OUT_MAC"*PERMANENT* &&
        $(ip -n "$TOPO_RIGHT" neigh show "$TOPO_GW_INNER") == *"$TOPO_GW_IN_MAC"*PERMANENT* ]]
}
check "topology dpdk: static neighbours for the gateway's addresses" gw_neighbours
# DPDK's own net_af_packet driver on the two gw ports, testpmd io forwarding (an L2
# bridge): the dpdk layout carries frames both ways in the gw ns before ipsecgw exists.
# Temporary addresses in one subnet on left and right, so a bridge is enough.
if command -v dpdk-testpmd >/dev/null; then
    netns_addr "$TOPO_LEFT" "$TOPO_LEFT_IF" 10.9.0.1/24
    netns_addr "$TOPO_RIGHT" "$TOPO_RIGHT_IF" 10.9.0.2/24
    topo_eal_args "$T-testpmd"
    mkfifo "$HARNESS_DIR/testpmd.in"
    exec 9<>"$HARNESS_DIR/testpmd.in"   # testpmd exits at EOF on stdin: keep a writer open
    t0=$EPOCHREALTIME
    HARNESS_STDIN=$HARNESS_DIR/testpmd.in harness_spawn "$HARNESS_DIR/testpmd.out" \
        ip netns exec "$TOPO_GW" dpdk-testpmd "${TOPO_EAL_ARGS[@]}" -l 0,1 \
        -- --forward-mode=io --total-num-mbufs=2048 --auto-start
    tp=$HARNESS_LAST_PID
    bridged() { [[ $(netns_ping "$TOPO_LEFT" 10.9.0.1 10.9.0.2 1) == 1 ]]; }
    # A reply proves both directions; the loss count that follows is information only:
    # testpmd's polling lcore competes with everything else on this 2-core machine.
    if harness_wait_until 30 bridged; then
        ok "topology dpdk: net_af_packet on gw-out/gw-in forwards both ways (testpmd, $(ms_since "$t0") ms to the first reply)"
        info "topology dpdk: then $(netns_ping "$TOPO_LEFT" 10.9.0.1 10.9.0.2 5)/5 pings through testpmd"
    else
        bad "topology dpdk: testpmd on net_af_packet never forwarded: $(grep -v '^EAL' "$HARNESS_DIR/testpmd.out" | tail -n 5)"
    fi
    harness_kill "$tp" 10 INT
    exec 9>&-
    _topo_eal_rundir
else
    info "dpdk-testpmd not installed: net_af_packet check of the dpdk layout skipped"
fi
topo_destroy "$T"
check "topology dpdk: destroyed" topo_gone

topo_create "$T" kernel
got=$(netns_ping "$TOPO_LEFT" "$TOPO_LEFT_INNER" "$TOPO_RIGHT_HOST" 3)
expect "topology kernel: left 10.1.0.1 -> right 10.2.0.2 routed by the gw ns ($got/3)" \
    "topology kernel: ping $got/3" test "$got" = 3
# A charon in the gw ns stands in for ipsecgw: traffic left -> right goes through the tunnel.
topo_left_charon left
charon_start gw "$TOPO_GW"
topo_left_conn gw left
charon_conn_from gw gw "$BASE/topo-gw.conn"
charon_load left && charon_load gw
pcap=$HARNESS_DIR/topo-outer.pcap
netns_capture_start "$TOPO_GW" "$TOPO_GW_OUT_IF" "$pcap"
cap=$HARNESS_LAST_PID
if charon_initiate left gw net 5 && charon_wait_child gw gw net 5; then
    got=$(netns_ping "$TOPO_LEFT" "$TOPO_LEFT_INNER" "$TOPO_RIGHT_HOST" 5)
    expect "topology kernel + charon in gw: left -> right through the tunnel ($got/5)" \
        "topology kernel + charon in gw: ping $got/5" test "$got" = 5
else
    bad "topology kernel + charon in gw: tunnel: $(tail -n 2 "$(charon_dir left)/initiate.out" | tr '\n' ' ')"
fi
netns_capture_stop "$cap"
n=$(capture_count "$pcap" 'icmp')
esp=$(capture_count "$pcap" 'udp port 4500 and udp[8:4] != 0')
expect "topology kernel + charon in gw: outer link had $esp ESP-in-UDP packets, no ICMP" \
    "topology kernel + charon in gw: outer link icmp=$n esp=$esp" test "$n" = 0 -a "$esp" -ge 10
charon_stop left gw
topo_destroy "$T"

echo "strongswan_harness: $FAILS failure(s), $(ms_since "$START") ms (load average: $(cut -d' ' -f1 /proc/loadavg))"
((FAILS == 0))
