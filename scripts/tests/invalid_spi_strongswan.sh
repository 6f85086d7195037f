#!/usr/bin/env bash
# SA mismatch (issue 7 item 4) against strongSwan, through the DPDK dataplane:
# `ipsecgw run` with a [[connection]] in is-gw (topology.sh "dpdk"), charon in is-left
# brings the tunnel up, then scapy in is-left sends ESP-in-UDP (RFC 3948) to the gateway:
#   1. 200 packets in 2 s on a bogus SPI: every one is dropped as `no_sa`, the manager
#      counts 200 for (198.51.100.1, SPI) (`show stats --json`), and answers with
#      INVALID_SPI notifies (RFC 7296 §3.10.1) at its rate limit (one per peer per
#      second): counted on the wire (INFORMATIONAL requests from the gateway on 4500) and
#      in charon's log ("parsed INFORMATIONAL request ... N(INVAL_SPI)");
#   2. charon rekeys the CHILD_SA: once the gateway removed the old inbound SA, 20 packets
#      on its SPI are dropped as `sa_deleted`;
#   3. charon deletes the CHILD_SA (swanctl --terminate --child): 50 packets on the SPI
#      the gateway received on are dropped as `sa_deleted`, not as `no_sa`, and are not
#      reported as unknown (no row for that SPI, no INVALID_SPI for it).
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib/topology.sh

BOGUS_SPI=0xdeadbeef
FLOOD=200       # packets on the bogus SPI ...
FLOOD_SECS=2    # ... spread over this many seconds
STALE=50        # packets on the deleted SA's SPI

topo_gw_test is
"$HARNESS_PYTHON" -c 'import scapy' 2>/dev/null || harness_die "scapy missing: apt-get install python3-scapy"
topo_left_conn gw left
charon_load left
topo_gw_run_config "$HARNESS_DIR/gw.toml" aes128gcm16-prfsha256-ecp256 aes128gcm16-ecp256
topo_gw_start "$HARNESS_DIR/gw.toml" 1

# unknown_spi PEER SPI FIELD: FIELD (packets, notifies) of the manager's row for
# (PEER, SPI) in `show stats --json`, or "none".
unknown_spi() {
    topo_gw_json stats "next((r['$3'] for r in v.get('unknown_spis', []) if r['peer'] == '$1' and int(r['spi'], 16) == $2), 'none')"
}

# send_esp SPI COUNT SECONDS: COUNT ESP-in-UDP packets on SPI (sequence 1.., 32 octets of
# junk "ciphertext") from left's 4500 to the gateway's 4500, spread over SECONDS; prints
# how long the sending took, in whole seconds rounded up.
send_esp() {
    ip netns exec "$TOPO_LEFT" "$HARNESS_PYTHON" - "$TOPO_LEFT_OUTER" "$TOPO_GW_OUTER" "$@" <<'PY'
import sys, time
import math
from scapy.all import IP, UDP, Raw, L3RawSocket, send, conf
conf.verb = 0
conf.L3socket = L3RawSocket  # the kernel routes and resolves the gateway's MAC
src, dst, spi, count, secs = sys.argv[1], sys.argv[2], int(sys.argv[3], 16), int(sys.argv[4]), float(sys.argv[5])
pkts = [IP(src=src, dst=dst) / UDP(sport=4500, dport=4500) /
        Raw(spi.to_bytes(4, "big") + (i + 1).to_bytes(4, "big") + bytes([0xa5]) * 32)
        for i in range(count)]
t0 = time.monotonic()
send(pkts, inter=secs / count)
print(math.ceil(time.monotonic() - t0))
PY
}

# invalid_spi_requests PCAP: INFORMATIONAL requests (exchange 37, response flag clear)
# from the gateway on UDP 4500 after the non-ESP marker (IKE header at UDP offset 12).
invalid_spi_requests() {
    capture_count "$1" "src host $TOPO_GW_OUTER and udp src port 4500 and udp[8:4] = 0 and udp[30] = 37 and udp[31] & 0x20 = 0"
}

charon_initiate left gw net || harness_die "charon could not initiate: $(tail -n 5 "$(charon_dir left)/initiate.out")
ipsecgw: $(tail -n 20 "$TOPO_GW_LOG")"
charon_wait_child left gw net || harness_die "charon has no INSTALLED CHILD_SA"
[[ $(netns_ping "$TOPO_LEFT" "$TOPO_LEFT_INNER" "$TOPO_RIGHT_HOST" 3) == 3 ]] || harness_die "no ping through the tunnel"
# The gateway receives on charon's outbound SPI.
GW_SPI_IN=0x$(charon_sa_get left gw net spi-out)
harness_log "tunnel up; the gateway receives on SPI $GW_SPI_IN"
no_sa0=$(topo_gw_drop no_sa)

# --- 1. unknown SPI: counted per (peer, SPI), INVALID_SPI at the rate limit ---
cap=$HARNESS_DIR/flood.pcap
netns_capture_start "$TOPO_LEFT" "$TOPO_LEFT_IF" "$cap" udp port 4500
cpid=$HARNESS_LAST_PID
mark=$(charon_log_mark left)
secs=$(send_esp "$BOGUS_SPI" "$FLOOD" "$FLOOD_SECS")
_counted() { [[ $(unknown_spi "$TOPO_LEFT_OUTER" "$BOGUS_SPI" packets) == "$FLOOD" ]]; }
harness_wait_until 5 _counted || harness_die "the manager counts $(unknown_spi "$TOPO_LEFT_OUTER" "$BOGUS_SPI" packets) packets for ($TOPO_LEFT_OUTER, $BOGUS_SPI), want $FLOOD
$(topo_gw show stats 2>&1 | tail -n 20)"
sleep 1.2 # a notify the rate limit held at the end of the flood is not sent late; let any in flight land
netns_capture_stop "$cpid"
no_sa=$(($(topo_gw_drop no_sa) - no_sa0))
((no_sa == FLOOD)) || harness_die "no_sa drops grew by $no_sa, want $FLOOD"
sent=$(invalid_spi_requests "$cap")
notifies=$(unknown_spi "$TOPO_LEFT_OUTER" "$BOGUS_SPI" notifies)
# One per peer per second: a flood of SECS seconds gets at most SECS + 1.
((sent >= 1 && sent <= secs + 1)) || harness_die "$sent INVALID_SPI INFORMATIONALs on the wire for $FLOOD packets in ${secs} s (want 1..$((secs + 1)))"
[[ $notifies == "$sent" ]] || harness_die "the manager says $notifies notifies, the wire shows $sent"
charon_log_wait left "$mark" 'parsed INFORMATIONAL request [0-9]+ \[ N\(INVAL_SPI\) \]' 3 ||
    harness_die "charon logged no INFORMATIONAL with INVALID_SPI: $(charon_log_since left "$mark" | tail -n 10)"
seen=$(charon_log_since left "$mark" | grep -cE 'parsed INFORMATIONAL request [0-9]+ \[ N\(INVAL_SPI\) \]' || true)
((seen == sent)) || harness_die "charon parsed $seen INVALID_SPI INFORMATIONALs, $sent were sent"
charon_wait_child left gw net 1 || harness_die "charon lost its CHILD_SA over the INVALID_SPI notifies"
harness_log "unknown SPI: $FLOOD packets in ${secs} s -> no_sa +$no_sa, manager row ($TOPO_LEFT_OUTER, $BOGUS_SPI) = $FLOOD packets, $sent INVALID_SPI INFORMATIONALs (wire = manager = charon's log)"
topo_gw show stats | grep -E "^$TOPO_LEFT_OUTER +$BOGUS_SPI +$FLOOD +$sent " >/dev/null ||
    harness_die "show stats has no row '$TOPO_LEFT_OUTER $BOGUS_SPI $FLOOD $sent': $(topo_gw show stats 2>&1 | tail -n 5)"

# _gw_has_spi SPI: the gateway shows a Child SA with SPI.
_gw_has_spi() { grep -qi "$(printf '%08x' "$1")" <<<"$(topo_gw show child-sa 2>/dev/null)"; }
_gw_no_spi() { ! _gw_has_spi "$1"; }

# --- 2. the old SA of a rekey, once removed: named as deleted ---
charon_rekey left --child net || harness_die "swanctl --rekey --child failed: $(cat "$(charon_dir left)/rekey.out")"
_rekeyed() { local s; s=$(charon_sa_get left gw net spi-out); [[ -n $s && 0x$s != "$GW_SPI_IN" ]] && _gw_has_spi "0x$s"; }
harness_wait_until 5 _rekeyed || harness_die "no new CHILD_SA after the rekey: $(charon_sas left)"
OLD_SPI=$GW_SPI_IN GW_SPI_IN=0x$(charon_sa_get left gw net spi-out)
harness_wait_until 10 _gw_no_spi "$OLD_SPI" || harness_die "the gateway kept the rekeyed SA $OLD_SPI: $(topo_gw show child-sa 2>&1)"
deleted0=$(topo_gw_drop sa_deleted) no_sa0=$(topo_gw_drop no_sa)
send_esp "$OLD_SPI" 20 0.2 >/dev/null
_old_counted() { (($(topo_gw_drop sa_deleted) - deleted0 == 20)); }
harness_wait_until 5 _old_counted || harness_die "ESP on the rekeyed SA's SPI: sa_deleted grew by $(($(topo_gw_drop sa_deleted) - deleted0)), want 20"
((($(topo_gw_drop no_sa) - no_sa0) == 0)) || harness_die "ESP on the rekeyed SA's SPI was counted as no_sa"
[[ $(netns_ping "$TOPO_LEFT" "$TOPO_LEFT_INNER" "$TOPO_RIGHT_HOST" 3) == 3 ]] || harness_die "no ping through the rekeyed tunnel"
harness_log "rekey: the old SA $OLD_SPI removed by the gateway, 20 packets on it -> sa_deleted +20; the new SA $GW_SPI_IN carries pings"

# --- 3. deleted SA: named as such, not reported as unknown ---
charon_swanctl left --terminate --child net --timeout 5 >>"$(charon_dir left)/swanctl.out" 2>&1 ||
    harness_die "swanctl --terminate --child failed: $(tail -n 3 "$(charon_dir left)/swanctl.out")"
harness_wait_until 5 _gw_no_spi "$GW_SPI_IN" || harness_die "the gateway kept the Child SA after charon deleted it: $(topo_gw show child-sa 2>&1)"
deleted0=$(topo_gw_drop sa_deleted) no_sa0=$(topo_gw_drop no_sa)
cap=$HARNESS_DIR/stale.pcap
netns_capture_start "$TOPO_LEFT" "$TOPO_LEFT_IF" "$cap" udp port 4500
cpid=$HARNESS_LAST_PID
send_esp "$GW_SPI_IN" "$STALE" 0.5 >/dev/null
_stale_counted() { (($(topo_gw_drop sa_deleted) - deleted0 == STALE)); }
harness_wait_until 5 _stale_counted || harness_die "sa_deleted grew by $(($(topo_gw_drop sa_deleted) - deleted0)), want $STALE
$(topo_gw show drops 2>&1)"
sleep 1.2
netns_capture_stop "$cpid"
((($(topo_gw_drop no_sa) - no_sa0) == 0)) || harness_die "ESP for the deleted SA was counted as no_sa"
row=$(unknown_spi "$TOPO_LEFT_OUTER" "$GW_SPI_IN" packets)
[[ $row == none ]] || harness_die "the deleted SA's SPI was reported as unknown ($row packets)"
sent=$(invalid_spi_requests "$cap")
((sent == 0)) || harness_die "$sent INVALID_SPI INFORMATIONALs for the deleted SA's SPI"
harness_log "deleted SA: $STALE packets on $GW_SPI_IN -> sa_deleted +$STALE, no_sa +0, not reported, no INVALID_SPI"
topo_gw_stop 10
harness_log "PASS"
