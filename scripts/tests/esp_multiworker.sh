#!/usr/bin/env bash
# ipsecgw run with two ESP worker lcores (issue 8 item 3), through DPDK net_pcap with two
# rx and two tx queues per port, scapy as the independent peer
# (scripts/tests/esp_multiworker/pcaps.py), once per [dpdk].sa_owner rule:
#   - ESP for two inbound SAs arrives on the outside port's queue 0 only. With
#     sa_owner = "spi" worker 0 owns SPI 0x1000 and worker 1 SPI 0x1001: worker 0 decrypts
#     its SA and hands the other SA's packets to worker 1 through the handoff ring. With
#     "first-receiver" (the default) worker 0, which receives both, owns both: no handoff;
#   - plaintext for both outbound SAs arrives on both queues of the inside port. With
#     [dpdk].encrypt = "owner" (the default) one worker encrypts each SA (by the same
#     rule: SPI 0x2000 worker 0 and 0x2001 worker 1 under "spi", the first sender under
#     "first-receiver") and the other hands it its plaintext; a third run with
#     "any-worker" has both workers encrypt for the same SAs at once.
# Checks: scapy opens every ESP frame we sent (sequence numbers 1..N per SA, each once;
# with "owner" each SA's ESP left on one worker's tx queue, in sequence-number order) and
# our decrypted frames are exactly what scapy sealed, each once; the exit report shows the
# handoff counters (ESP and plaintext) and the SAs' owners are the rule's and nothing was
# dropped; `show child-sa` names the same owners (with an idle IKE connection configured
# beside the static SAs).
# Three lcores share the machine's two CPUs (--lcores 0@0,1@1,2@1) without busy polling.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib/topology.sh # netns.sh, and topo_connection_toml for the idle connection

TAG=espmw
PY=/usr/bin/python3
COUNT=200 # ESP frames per inbound SA and plaintext frames per outbound SA
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
IPSECGW=${IPSECGW:-$CARGO_TARGET_DIR/release/ipsecgw}
[[ -x $IPSECGW ]] || cargo build --release -p ipsecgw >&2

harness_init "$TAG"
W=$HARNESS_DIR
"$PY" scripts/tests/esp_multiworker/pcaps.py make "$W" "$COUNT"
"$PY" -c 'from scapy.all import wrpcap; wrpcap("'"$W"'/empty.pcap", [])'
# run_rule RULE [ENCRYPT]: one gateway run with [dpdk].sa_owner = RULE and encrypt =
# ENCRYPT (default "owner"), and its checks.
run_rule() {
RULE=$1 ENCRYPT=${2:-owner}
RUN=$RULE-$ENCRYPT PREFIX=$TAG-$$-$RULE-$ENCRYPT

cat >"$W/gw.toml" <<TOML
[dpdk]
eal_args = ["--no-huge", "-m", "1024", "--no-pci", "--file-prefix", "$PREFIX", "--lcores", "0@0,1@1,2@1",
    "--vdev=net_pcap0,rx_pcap=$W/esp.pcap,rx_pcap=$W/empty.pcap,tx_pcap=$W/esp_out0.pcap,tx_pcap=$W/esp_out1.pcap",
    "--vdev=net_pcap1,rx_pcap=$W/plain0.pcap,rx_pcap=$W/plain1.pcap,tx_pcap=$W/plain_out0.pcap,tx_pcap=$W/plain_out1.pcap"]
mbufs = 16383
sa_owner = "$RULE"
encrypt = "$ENCRYPT"

[[port]]
name = "outside"
dpdk_port = 0
addresses = ["198.51.100.1/24"]
mac = "02:00:00:00:00:01"

[[port]]
name = "inside"
dpdk_port = 1
addresses = ["10.9.0.1/24"]
mac = "02:00:00:00:00:01"

[[route]]
destination = "10.2.0.0/16"
via = "10.9.0.254"
port = "inside"

[[static_sa]]
name = "a"
local = "198.51.100.1"
remote = "198.51.100.2"
algorithm = "aes128gcm16"
spi_in = 0x1000
spi_out = 0x2000
key_in = "40$(printf '01%.0s' {1..19})"
key_out = "41$(printf '01%.0s' {1..19})"
local_ts = ["10.2.0.0/24"]
remote_ts = ["10.1.0.0/24"]

[[static_sa]]
name = "b"
local = "198.51.100.1"
remote = "198.51.100.2"
algorithm = "aes128gcm16"
spi_in = 0x1001
spi_out = 0x2001
key_in = "50$(printf '02%.0s' {1..19})"
key_out = "51$(printf '02%.0s' {1..19})"
local_ts = ["10.2.1.0/24"]
remote_ts = ["10.1.1.0/24"]

# An idle IKE connection (never initiated, no such peer) beside the static SAs.
TOML
topo_connection_toml idle 198.51.100.1 198.51.100.3 idle aes128gcm16-prfsha256-ecp256 aes128gcm16-ecp256 \
    10.9.0.0/24 10.5.0.0/24 >>"$W/gw.toml"
_topo_gw_psk "$W"

harness_spawn "$W/gw-$RUN.log" "$IPSECGW" run --config "$W/gw.toml" \
    --neighbor 198.51.100.2=02:00:00:00:00:02 --neighbor 10.9.0.254=02:00:00:00:00:03 --socket "$W/gw-$RUN.sock"
PID=$HARNESS_LAST_PID
harness_wait_until 30 grep -qs "ESP worker" "$W/gw-$RUN.log" || harness_die "ipsecgw did not start: $(cat "$W/gw-$RUN.log")"
grep -q "2 worker lcore(s)" "$W/gw-$RUN.log" || harness_die "expected 2 worker lcores: $(cat "$W/gw-$RUN.log")"
# The pcaps are read once and 4 x $COUNT frames take milliseconds; a packet not processed
# after this pause fails the checks below.
sleep 2
# `show child-sa` names each inbound SA's worker as the exit report does (below).
"$IPSECGW" show child-sa --json --socket "$W/gw-$RUN.sock" >"$W/show-$RUN.json" || harness_die "show child-sa failed"
show_owners=$("$PY" -c 'import json, sys; print(" ".join(str(r["in_worker"]) for r in sorted(json.load(open(sys.argv[1])), key=lambda r: r["spi_in"])))' "$W/show-$RUN.json")
kill -TERM "$PID"
wait "$PID" || harness_die "ipsecgw failed: $(cat "$W/gw-$RUN.log")"
harness_log "exit report:"$'\n'"$(sed -n '/^port /,$p' "$W/gw-$RUN.log")"

grep -q "^drops: none" "$W/gw-$RUN.log" || harness_die "ipsecgw dropped packets: $(grep '^drops' "$W/gw-$RUN.log")"
# handoff worker W: sent S received R ring_full F plaintext P (P of S: outbound plaintext)
read -r _ _ _ _ s0 _ r0 _ f0 _ p0 < <(grep '^handoff worker 0:' "$W/gw-$RUN.log")
read -r _ _ _ _ s1 _ r1 _ f1 _ p1 < <(grep '^handoff worker 1:' "$W/gw-$RUN.log")
harness_log "$RULE/$ENCRYPT handoffs: w0 sent $s0 (plaintext $p0) received $r0, w1 sent $s1 (plaintext $p1) received $r1"
((s0 + s1 == r0 + r1 && f0 == 0 && f1 == 0)) || harness_die "$RULE/$ENCRYPT: handoffs lost: sent $s0 + $s1, received $r0 + $r1, ring full $f0 + $f1"
if [[ $ENCRYPT == owner && $RULE == spi ]]; then
    # Each worker received half of the other's SA's plaintext.
    ((p0 > 0 && p1 > 0)) || harness_die "spi/owner: both workers should hand plaintext over: $p0, $p1"
elif [[ $ENCRYPT == any-worker ]]; then
    ((p0 == 0 && p1 == 0)) || harness_die "any-worker: plaintext handed over: $p0, $p1"
fi
# ESP handed over: what was sent minus the plaintext.
e0=$((s0 - p0)) e1=$((s1 - p1))
if [[ $RULE == spi ]]; then
    ((e0 == COUNT)) || harness_die "worker 0 should hand SA b's $COUNT ESP packets to worker 1: $e0"
    e0=0 want_in=("$COUNT" "$COUNT")
else
    want_in=($((2 * COUNT)) 0)
fi
# The exit report's SA rows end with the owner of the inbound SA.
owners=$(awk '$2 == "0x1000" || $2 == "0x1001" { print $NF }' "$W/gw-$RUN.log" | paste -sd' ')
want_owners="0 1" && [[ $RULE == spi ]] || want_owners="0 0"
[[ $owners == "$want_owners" ]] || harness_die "$RULE: owners of SAs a and b in the exit report: '$owners', want '$want_owners'"
[[ $show_owners == "$want_owners" ]] || harness_die "$RULE: owners of SAs a and b in show child-sa: '$show_owners', want '$want_owners'"
((e0 == 0 && e1 == 0)) || harness_die "$RULE: unexpected ESP handoffs: w0 $e0, w1 $e1"
# worker W: outside rx A tx B, inside rx C tx D
for w in 0 1; do
    read -r _ _ _ _ orx _ otx _ _ irx _ itx < <(grep "^worker $w:" "$W/gw-$RUN.log" | tr -d ',')
    harness_log "worker $w: outside rx $orx tx $otx, inside rx $irx tx $itx"
    ((irx > 0)) || harness_die "worker $w received no plaintext"
    [[ $ENCRYPT == owner && $RULE == first-receiver ]] || ((otx > 0)) || harness_die "worker $w did not encrypt"
    tx_out[w]=$otx tx_in[w]=$itx
done
[[ ${tx_in[*]} == "${want_in[*]}" ]] || harness_die "$RULE: decrypted per worker ${tx_in[*]}, want ${want_in[*]}"
((tx_out[0] + tx_out[1] == 2 * COUNT)) || harness_die "ESP sent ${tx_out[*]}, want $((2 * COUNT)) in all"

ordered=() && [[ $ENCRYPT == owner ]] && ordered=(--ordered)
"$PY" scripts/tests/esp_multiworker/pcaps.py check "$W" "$COUNT" "$W/esp_out0.pcap" "$W/esp_out1.pcap" -- \
    "$W/plain_out0.pcap" "$W/plain_out1.pcap" "${ordered[@]}" >&2 || harness_die "scapy check"
}

harness_on_exit gw_cleanup
gw_cleanup() { rm -rf -- "/var/run/dpdk/$TAG-$$-"*; }
run_rule spi
run_rule first-receiver
run_rule first-receiver any-worker
echo "esp_multiworker: ok (2 workers: sa_owner spi hands SA b's $COUNT ESP packets to its owner, first-receiver keeps both inbound SAs on the worker that receives them; each outbound SA encrypted by one worker, in order, or by both with encrypt = any-worker; scapy agrees)"
