#!/usr/bin/env bash
# Tunnel monitoring with fail-over (issue 7 item 3) and `ipsecgw test tunnel` (item 2),
# `ipsecgw run` through DPDK (net_af_packet on veths), against two strongSwan peers:
#
#   [mf-right 10.2.0.2] --gw-in-- [mf-gw: ipsecgw] --gw-out---- [mf-left: charon "primary" 198.51.100.1, owns 10.1.0.1] --+
#                                   10.2.0.1        --gw-out2--- [mf-bak:  charon "backup"  203.0.113.1, owns 10.1.0.2]  --+-- [mf-host 10.1.0.10]
#
# Both tunnels protect 10.2.0.0/24 <-> 10.1.0.0/24 and are up at once; both peers route
# to the same protected host 10.1.0.10 (mf-host, one link to each). ipsecgw monitors
# "primary" (probes 10.2.0.1 -> 10.1.0.1 every 200 ms, threshold 3, fail-over to
# "backup") and "backup" (10.2.0.1 -> 10.1.0.2, wait-recover).
#
# A bounded UDP stream (1400 datagrams, one every 10 ms) runs 10.2.0.2 -> 10.1.0.10. The
# primary then stops forwarding (blackhole rules in mf-left: its IKE keeps working, its
# ESP is still decrypted, but nothing it decrypts reaches the host or comes back) and is
# restored 5 s later. Asserted:
#   - the monitor logs up -> degraded -> down and the fail-over, then recovering -> up and
#     the fail-back; `show connections` shows the state and which SA carries the traffic;
#   - the host's link from the backup receives the stream while the primary is broken and
#     the primary's link again after the restore; charon's CHILD_SA packet counters agree;
#   - the packets lost in each switch (sent - received in each window) are printed; the
#     fail-over loses at most (threshold + 2) x interval of the stream, the fail-back
#     (both tunnels working) at most 5 datagrams;
#   - `ipsecgw test tunnel` succeeds on the healthy tunnels and names the failure ("no
#     reply") on the broken one;
#   - wait-recover: the backup's path broken, ipsecgw re-negotiates it (charon sees a new
#     IKE SA), and its monitor is up again once the path is restored.
#
# ipsecgw runs two ESP workers (af_packet qpairs=2, sa_owner = "spi"). Worker 0 sends what
# the control plane sends (IKE, probes); charon rekeys the primary's CHILD_SA until worker
# 1 encrypts for it, so every primary probe crosses a handoff ring to its encrypting worker
# (asserted from the exit report's handoff counters).
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib/topology.sh

TAG=mf

INTERVAL_MS=200 THRESHOLD=3
STREAM_N=1400 STREAM_GAP_MS=10
# Worker 0's plaintext handoffs at least: half the primary's probes while the stream runs.
PROBES_MIN=$((STREAM_N * STREAM_GAP_MS / INTERVAL_MS / 2))
BAK=$TAG-bak HOST=$TAG-host
BAK_OUTER=203.0.113.1 GW_OUTER2=203.0.113.2 BAK_INNER=10.1.0.2 HOST_ADDR=10.1.0.10

harness_init "$TAG"
topo_ipsecgw
topo_create "$TAG" dpdk
# The backup peer on the gateway's third port, and the protected host behind both peers.
netns_add "$BAK"
netns_veth "$BAK" bk0 "$BAK_OUTER/24" "$TOPO_GW" gw-out2 - 02:00:cb:00:71:01 02:00:cb:00:71:02
netns_local_addr "$BAK" "$BAK_INNER/24"
netns_add "$HOST"
# The host receives the stream on either link: no reverse-path filtering.
ip netns exec "$HOST" sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
netns_local_addr "$HOST" "$HOST_ADDR/32"
netns_veth "$TOPO_LEFT" lh0 10.3.1.1/30 "$HOST" hl0 10.3.1.2/30
netns_veth "$BAK" bh0 10.3.2.1/30 "$HOST" hb0 10.3.2.2/30
netns_route "$TOPO_LEFT" "$HOST_ADDR/32" 10.3.1.2
netns_route "$BAK" "$HOST_ADDR/32" 10.3.2.2
ip -n "$HOST" route add default via 10.3.1.1
netns_forwarding "$TOPO_LEFT" 1
netns_forwarding "$BAK" 1

topo_left_charon left
charon_start bak "$BAK"
topo_left_conn gw left
topo_left_conn gw bak CONN_LOCAL_ADDRS="$BAK_OUTER" CONN_REMOTE_ADDRS="$GW_OUTER2" CONN_LOCAL_ID=bak
charon_load left
charon_load bak

_topo_gw_psk "$HARNESS_DIR"
gw_connection() { # NAME LOCAL REMOTE REMOTE_ID MONITOR
    echo
    topo_connection_toml "$1" "$2" "$3" "$4" aes128gcm16-prfsha256-ecp256 aes128gcm16-ecp256 \
        "$TOPO_RIGHT_NET" "$TOPO_LEFT_NET" "monitor = { $5 }"
}
{
    printf '[dpdk]\nmbufs = 32767\nsa_owner = "spi"\n'
    printf '\n[[port]]\nname = "outside"\ndpdk_port = 0\naddresses = ["%s/24"]\n' "$TOPO_GW_OUTER"
    printf '\n[[port]]\nname = "inside"\ndpdk_port = 1\naddresses = ["%s/24"]\n' "$TOPO_GW_INNER"
    printf '\n[[port]]\nname = "outside2"\ndpdk_port = 2\naddresses = ["%s/24"]\n' "$GW_OUTER2"
    probe="source = \"$TOPO_GW_INNER\", interval = \"${INTERVAL_MS}ms\", threshold = $THRESHOLD"
    gw_connection primary "$TOPO_GW_OUTER" "$TOPO_LEFT_OUTER" left \
        "address = \"$TOPO_LEFT_INNER\", $probe, action = \"fail-over\", backup = \"backup\""
    gw_connection backup "$GW_OUTER2" "$BAK_OUTER" bak "address = \"$BAK_INNER\", $probe, action = \"wait-recover\""
} >"$HARNESS_DIR/gw.toml"
"$IPSECGW" check-config "$HARNESS_DIR/gw.toml" >&2 || harness_die "the test's config does not validate"

# Port 2 (gw-out2) after topo_gw_start's two ports; three lcores on the two CPUs (main,
# worker 0, worker 1), two queue pairs per port.
TOPO_AF_PACKET_OPTS=,qpairs=2
topo_gw_start "$HARNESS_DIR/gw.toml" failover --vdev net_af_packet2,iface=gw-out2$TOPO_AF_PACKET_OPTS --lcores 0@0,1@1,2@1
harness_on_exit topo_gw_stop
gw() { topo_gw "$@"; }
grep -q "2 worker lcore(s)" "$TOPO_GW_LOG" || harness_die "expected 2 worker lcores: $(head -n 20 "$TOPO_GW_LOG")"

charon_initiate left gw net || harness_die "primary tunnel: $(cat "$(charon_dir left)/initiate.out")"
charon_initiate bak gw net || harness_die "backup tunnel: $(cat "$(charon_dir bak)/initiate.out")"

# active_sa CONN FIELD: FIELD of connection CONN's active CHILD_SA in `show child-sa --json`.
active_sa() { topo_gw_json child-sa "next((r.get('$2') for r in v if r['connection'] == '$1' and r['active']), '-')"; }
_spi_out_changed() { local now; now=$(active_sa primary spi_out); [[ $now != - && $now != "$1" ]]; }
# Worker 1 (not worker 0, which sends the probes) must encrypt for the primary: the SPI
# rule gives it an odd outbound SPI, which charon picks at random; rekey until it does.
for ((try = 1; ; try++)); do
    owner=$(active_sa primary out_worker)
    [[ $owner == 1 ]] && break
    ((try <= 16)) || harness_die "the primary's outbound SA still on worker $owner after 16 rekeys: $(gw show child-sa)"
    spi=$(active_sa primary spi_out)
    charon_rekey left --child net || harness_die "charon rekey: $(cat "$(charon_dir left)/rekey.out")"
    harness_wait_until 10 _spi_out_changed "$spi" || harness_die "no rekeyed primary SA at ipsecgw: $(gw show child-sa)"
done
harness_log "primary's outbound SA $(active_sa primary spi_out) encrypted by worker 1 (after $((try - 1)) rekeys); the backup's by worker $(active_sa backup out_worker)"

# monitor NAME FIELD: a field of connection NAME's monitor in `show connections --json`.
monitor() { topo_gw_json connections "next(((r.get('monitor') or {}).get('$2', '-') for r in v if r['name'] == '$1'), '-')"; }
_monitor_is() { [[ $(monitor "$1" "$2") == "$3" ]]; }
harness_wait_until 10 _monitor_is primary state up || harness_die "primary monitor not up: $(gw show connections)
$(tail -n 20 "$TOPO_GW_LOG")"
harness_wait_until 10 _monitor_is backup state up || harness_die "backup monitor not up: $(gw show connections)"
[[ $(monitor primary carried_by) == primary ]] || harness_die "primary's traffic not on its own SA: $(gw show connections)"
gw show connections >&2

# test tunnel on healthy tunnels: every probe answered, exit 0.
for c in primary backup; do
    out=$(gw test tunnel "$c") || harness_die "test tunnel $c on a healthy tunnel failed: $out"
    grep -q "sent 3, received 3" <<<"$out" || harness_die "test tunnel $c: $out"
done
harness_log "test tunnel primary/backup on healthy tunnels: 3/3 each"

# sa_in NAME: packets charon NAME's CHILD_SA received (ESP decrypted).
sa_in() { charon_sa_get "$1" gw net packets-in; }
snapshot() { echo "$(sa_in left) $(sa_in bak)"; }
ifindex() { ip -n "$HOST" -j link show "$1" | "$HARNESS_PYTHON" -c 'import json, sys; print(json.load(sys.stdin)[0]["ifindex"])'; }

# The stream: a receiver on the host logs every sequence number and the link it came in
# on (IP_PKTINFO: from the primary or from the backup), the sender paces on an absolute schedule (datagram i at t0 + i x gap) and writes t0, so a wall-clock time maps
# to the sequence number sent then.
RECV_OUT=$HARNESS_DIR/received.txt T0_FILE=$HARNESS_DIR/t0.txt
harness_spawn "$HARNESS_DIR/receiver.log" ip netns exec "$HOST" "$HARNESS_PYTHON" -c '
import socket, struct, sys
IP_PKTINFO = 8  # linux/in.h; struct in_pktinfo starts with the receiving ifindex
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
s.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
s.bind((sys.argv[1], 5001))
s.settimeout(3.0)
open(sys.argv[3] + ".ready", "w").close()
seen = {}
while len(seen) < int(sys.argv[2]):
    try:
        data, anc, _, _ = s.recvmsg(2048, 64)
    except socket.timeout:
        break
    ifindex = next((struct.unpack("i", d[:4])[0] for lvl, typ, d in anc if typ == IP_PKTINFO), 0)
    if data.startswith(b"MF"):
        seen.setdefault(int(data[2:10]), ifindex)
with open(sys.argv[3], "w") as f:
    f.write("".join("%d %d\n" % kv for kv in sorted(seen.items())))
' "$HOST_ADDR" "$STREAM_N" "$RECV_OUT"
RECV_PID=$HARNESS_LAST_PID
harness_wait_until 5 test -e "$RECV_OUT.ready" || harness_die "stream receiver did not start"
harness_spawn "$HARNESS_DIR/sender.log" ip netns exec "$TOPO_RIGHT" "$HARNESS_PYTHON" -c '
import socket, sys, time
n, gap = int(sys.argv[2]), int(sys.argv[3]) / 1000.0
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[4], 0))
t0 = time.time()
open(sys.argv[5], "w").write("%.6f\n" % t0)
for i in range(n):
    delay = t0 + i * gap - time.time()
    if delay > 0:
        time.sleep(delay)
    s.sendto(b"MF%08d" % i + b"x" * 100, (sys.argv[1], 5001))
' "$HOST_ADDR" "$STREAM_N" "$STREAM_GAP_MS" "$TOPO_RIGHT_HOST" "$T0_FILE"
SEND_PID=$HARNESS_LAST_PID
harness_wait_until 5 test -s "$T0_FILE" || harness_die "stream sender did not start"

sleep 3
read -r left_a bak_a <<<"$(snapshot)"
T1=$(date +%s.%N)
harness_log "breaking the primary: blackhole rules in $TOPO_LEFT (IKE untouched)"
ip -n "$TOPO_LEFT" rule add priority 100 to "$TOPO_RIGHT_NET" blackhole
ip -n "$TOPO_LEFT" rule add priority 101 to "$HOST_ADDR/32" blackhole
ip -n "$TOPO_LEFT" rule show >&2
harness_wait_until 5 grep -q "moving its traffic to 'backup'" "$TOPO_GW_LOG" ||
    harness_die "no fail-over within 5 s: $(gw show connections)
$(grep ipsecgw::monitor "$TOPO_GW_LOG" | tail -n 10)"
[[ $(monitor primary failed_over) == True && $(monitor primary carried_by) == backup ]] ||
    harness_die "show connections after the fail-over: $(gw show connections)"
gw show connections >&2
if out=$(gw test tunnel primary); then
    harness_die "test tunnel primary succeeded on the broken tunnel: $out"
fi
grep -q "FAILED: no reply" <<<"$out" || harness_die "test tunnel primary on the broken tunnel does not say what failed: $out"
harness_log "test tunnel primary (broken): $(tail -n 1 <<<"$out" | cut -c1-100)..."
out=$(gw test tunnel backup) || harness_die "test tunnel backup while the primary is broken: $out"
harness_log "test tunnel backup (healthy): $(tail -n 1 <<<"$out")"
sleep "$("$HARNESS_PYTHON" -c "import sys, time; print(max(0.0, float(sys.argv[1]) + 5 - time.time()))" "$T1")"

T2=$(date +%s.%N)
read -r left_b bak_b <<<"$(snapshot)"
harness_log "restoring the primary"
ip -n "$TOPO_LEFT" rule del priority 101
ip -n "$TOPO_LEFT" rule del priority 100
harness_wait_until 5 grep -q "moving its traffic back from 'backup'" "$TOPO_GW_LOG" ||
    harness_die "no fail-back within 5 s: $(gw show connections)
$(grep ipsecgw::monitor "$TOPO_GW_LOG" | tail -n 10)"
[[ $(monitor primary failed_over) == False && $(monitor primary carried_by) == primary ]] ||
    harness_die "show connections after the fail-back: $(gw show connections)"
out=$(gw test tunnel primary) || harness_die "test tunnel primary after the restore: $out"

harness_wait_until 30 _harness_gone "$SEND_PID" || harness_die "stream sender still running"
harness_wait_until 10 _harness_gone "$RECV_PID" || true
[[ -s $RECV_OUT ]] || harness_die "stream receiver wrote nothing: $(cat "$HARNESS_DIR/receiver.log")"
read -r left_c bak_c <<<"$(snapshot)"

# Every state change is an event in the log (fields: connection, from, to, counts).
events=$(sed -n "s/.*tunnel monitor 'primary': \([a-z]*\) -> \([a-z]*\) (.*/\1->\2/p" "$TOPO_GW_LOG" | tr '\n' ' ')
harness_log "primary monitor events: $events"
[[ $events == *"up->degraded degraded->down"*"down->recovering"*"recovering->up"* ]] ||
    harness_die "monitor state changes not logged as expected: $events"

# Per window (before the break; fail-over: break to restore; fail-back: restore to the end;
# boundaries moved back by MARGIN datagrams for those in flight while the rules changed):
# datagrams lost (sent - received), and received through the primary / the backup; and
# the path of the whole stream as runs (P primary, B backup, L lost), in order.
MARGIN=25
read -r lost0 sent0 prim0 bak0 lost1 sent1 prim1 bak1 lost2 sent2 prim2 bak2 runs <<<"$("$HARNESS_PYTHON" -c '
import itertools, math, sys
t0 = float(open(sys.argv[1]).read())
got = dict(map(int, l.split()) for l in open(sys.argv[2]) if l.strip())
n, gap, margin, hl, hb = int(sys.argv[3]), int(sys.argv[4]) / 1000.0, int(sys.argv[7]), int(sys.argv[8]), int(sys.argv[9])
cut = lambda t: max(0, min(n, math.ceil((float(t) - t0) / gap) - margin))
s1, s2 = cut(sys.argv[5]), cut(sys.argv[6])
for r in (range(0, s1), range(s1, s2), range(s2, n)):
    via = [got.get(i) for i in r]
    print(via.count(None), len(r), via.count(hl), via.count(hb), end=" ")
name = {hl: "P", hb: "B", None: "L"}
print(",".join("%s%d" % (name.get(k, "?"), len(list(g))) for k, g in itertools.groupby(got.get(i) for i in range(n))))' \
    "$T0_FILE" "$RECV_OUT" "$STREAM_N" "$STREAM_GAP_MS" "$T1" "$T2" "$MARGIN" "$(ifindex hl0)" "$(ifindex hb0)")"
harness_log "stream path (P primary, B backup, L lost, in order): $runs"
harness_log "before the break: $sent0 sent, $lost0 lost, $prim0 via the primary, $bak0 via the backup"
harness_log "fail-over window: $sent1 sent, $lost1 lost ($((lost1 * STREAM_GAP_MS)) ms of traffic), $prim1 via the primary, $bak1 via the backup"
harness_log "fail-back window: $sent2 sent, $lost2 lost, $prim2 via the primary, $bak2 via the backup"
harness_log "charon CHILD_SA packets-in: primary +$((left_b - left_a)) / backup +$((bak_b - bak_a)) while broken, +$((left_c - left_b)) / +$((bak_c - bak_b)) after the restore"
echo "monitor_failover: packets lost in the fail-over: $lost1, in the fail-back: $lost2 (stream every ${STREAM_GAP_MS} ms; monitor every ${INTERVAL_MS} ms, threshold $THRESHOLD)"

((lost0 == 0 && bak0 == 0)) || harness_die "before the break: $lost0 lost, $bak0 through the backup (want 0, 0)"
max1=$(((THRESHOLD + 2) * INTERVAL_MS / STREAM_GAP_MS))
((lost1 > 0 && lost1 <= max1)) || harness_die "fail-over lost $lost1 datagrams (want 1..$max1)"
((lost2 <= 5)) || harness_die "fail-back lost $lost2 datagrams (want <= 5: both tunnels work then)"
# The stream went primary, (lost while the monitor counted), backup, (maybe a few lost),
# primary: one switch each way, the first inside the fail-over window, the second after
# the restore (the monitor waits for threshold replies).
[[ $runs =~ ^P[0-9]+,L[0-9]+,B[0-9]+,(L[0-9]+,)?P[0-9]+$ ]] || harness_die "the stream's path is not primary, backup, primary: $runs"
((bak1 > 0 && bak1 == sent1 - lost1 - prim1 && bak2 > 0 && prim2 > bak2)) ||
    harness_die "paths per window do not match the switches: fail-over window $prim1/$bak1, fail-back window $prim2/$bak2 (primary/backup)"
# The peers' SA counters agree: the backup's CHILD_SA decrypted the stream while broken.
((bak_b - bak_a >= bak1 && left_c - left_b >= prim2)) ||
    harness_die "charon SA counters do not match the paths (backup +$((bak_b - bak_a)), primary +$((left_c - left_b)))"

# wait-recover (the backup's monitor): its path broken, the IKE SA is re-negotiated
# (terminate + initiate by ipsecgw: charon sees a new IKE SA); restored, the monitor is up again.
bak_ike() { echo "$(charon_sa_get bak gw initiator-spi)$(charon_sa_get bak gw responder-spi)"; }
_bak_ike_new() { local now; now=$(bak_ike); [[ -n $now && $now != "$1" ]]; }
before=$(bak_ike)
ip -n "$BAK" rule add priority 100 to "$TOPO_RIGHT_NET" blackhole
harness_wait_until 5 grep -q "tunnel monitor 'backup': [0-9]* probes lost in a row: re-negotiating" "$TOPO_GW_LOG" ||
    harness_die "wait-recover: no re-negotiation of the broken backup: $(gw show connections)"
harness_wait_until 5 _bak_ike_new "$before" || harness_die "wait-recover: charon's IKE SA did not change ($before)"
ip -n "$BAK" rule del priority 100
harness_wait_until 10 _monitor_is backup state up || harness_die "wait-recover: backup monitor not up after the restore: $(gw show connections)"
harness_log "wait-recover: backup re-negotiated (charon IKE SA $before -> $(bak_ike)), monitor up again after the restore"

topo_gw_stop 10
# Worker 0 handed the primary's probes (and what else it received for worker 1's SAs) over
# as plaintext; a probe it could not hand over would be a drop.
# handoff worker W: sent S received R ring_full F plaintext P (as esp_multiworker.sh reads it)
ring_full=- plain=-
read -r _ _ _ _ _ _ _ _ ring_full _ plain < <(grep '^handoff worker 0:' "$TOPO_GW_LOG") || true
[[ $ring_full == 0 && $plain =~ ^[0-9]+$ ]] && ((plain >= PROBES_MIN)) ||
    harness_die "worker 0's handoffs: ring_full $ring_full, plaintext $plain (want 0 and >= $PROBES_MIN): $(grep -E "handoff|^drops" "$TOPO_GW_LOG")"
harness_log "worker 0 handed $plain plaintext packets to worker 1 (the primary's probes among them), ring_full 0"
harness_log "PASS: fail-over and fail-back, wait-recover re-negotiation, test tunnel verdicts (two workers)"
