#!/usr/bin/env bash
# Life cycle of a strongSwan <-> ipsecgw tunnel THROUGH the DPDK dataplane (issue 6), with
# chacha20poly1305 for IKE and ESP (chacha20poly1305-prfsha256-x25519, ESP with x25519 PFS).
# `ipsecgw run` in til-gw (net_af_packet on gw-out / gw-in), charon with kernel-libipsec in
# til-left, a plain host in til-right (topology.sh "dpdk").
#   1. charon initiates: charon reports CHACHA20_POLY1305 for the IKE SA and the CHILD_SA;
#      ping + a bounded UDP stream both ways pass, only ESP-in-UDP on the outer link.
#   2. IKE SA rekey initiated by ipsecgw (`ipsecgw rekey --ike`) during 150 pings: none lost,
#      charon's IKE SA has new SPIs and ipsecgw's one IKE SA is that new one.
#   3. delete by charon (swanctl --terminate --ike): `ipsecgw show ike-sa/child-sa --json`
#      become empty; pings right -> left are dropped and counted as no_policy;
#      ESP with the deleted SA's SPI (scapy) is counted as sa_deleted (a tombstoned SPI).
#   4. ipsecgw initiates, then `ipsecgw terminate left`: charon has no SA left
#      (swanctl --list-sas empty) and neither has ipsecgw.
#   5. `ipsecgw run -l 0` (one lcore: the worker polls on the main lcore) stopped with
#      SIGTERM still sends the IKE DELETE: charon's IKE SA goes away.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib/topology.sh

IKE=chacha20poly1305-prfsha256-x25519 ESP=chacha20poly1305-x25519
topo_gw_test til
topo_left_conn gw left CONN_IKE_PROPOSALS="$IKE" CONN_ESP_PROPOSALS="$ESP"
charon_load left
topo_gw_run_config "$HARNESS_DIR/gw.toml" "$IKE" "$ESP"

gw_count() { topo_gw_json "$1" 'len(v)'; }
_gw_has_none() { [[ $(gw_count ike-sa) == 0 && $(gw_count child-sa) == 0 ]]; }
_gw_child_up() { [[ $(gw_count child-sa) -gt 0 ]]; }
_charon_no_sas() { [[ -z $(charon_sas left) ]]; }
_drops_reach() { (($(topo_gw_drop "$1") >= $2)); }

# ESP in UDP 4500 from the left peer's address with SPI (decimal), as a stale peer would send.
send_stale_esp() {
    ip netns exec "$TOPO_LEFT" "$HARNESS_PYTHON" - "$TOPO_LEFT_OUTER" "$TOPO_GW_OUTER" "$1" <<'PY'
import struct, sys
from scapy.all import IP, UDP, Raw, send
src, dst, spi = sys.argv[1], sys.argv[2], int(sys.argv[3])
esp = struct.pack("!II", spi, 1000) + bytes(48)   # SPI, sequence number, IV + ciphertext + ICV
send(IP(src=src, dst=dst) / UDP(sport=4500, dport=4500) / Raw(esp), count=3, verbose=False)
PY
}

# --- 1. chacha20poly1305, charon initiates ------------------------------------------------
topo_gw_start "$HARNESS_DIR/gw.toml" multi
charon_initiate left gw net || harness_die "charon could not initiate: $(tail -n 5 "$(charon_dir left)/initiate.out")
ipsecgw: $(tail -n 20 "$TOPO_GW_LOG")"
charon_wait_child left gw net || harness_die "charon has no INSTALLED CHILD_SA"
for what in "gw encr-alg" "gw net encr-alg"; do
    # shellcheck disable=SC2086  # IKE [CHILD] KEY
    alg=$(charon_sa_get left $what)
    [[ $alg == CHACHA20_POLY1305 ]] || harness_die "charon's $what is '$alg', want CHACHA20_POLY1305"
done
[[ $(charon_sa_get left gw net encap) == yes ]] || harness_die "charon's CHILD_SA is not UDP-encapsulated"
harness_wait_until 5 _gw_child_up || harness_die "ipsecgw shows no Child SA: $(topo_gw show ike-sa 2>&1)"
topo_check_traffic "chacha20poly1305 (IKE and ESP), charon initiator"

# --- 2. IKE rekey by ipsecgw under traffic ---------------------------------------------------
topo_rekey_under_pings "IKE rekey by ipsecgw" ike topo_gw rekey --ike left
ours=$(topo_gw_json ike-sa '" ".join(s["id"].lower().removeprefix("0x") for s in v if s["established"])')
theirs=$(charon_sa_get left gw initiator-spi)/$(charon_sa_get left gw responder-spi)
[[ -n $ours && $ours != *" "* && $theirs == *"$ours"* ]] ||
    harness_die "after our IKE rekey ipsecgw has IKE SA(s) '$ours', charon has $theirs"
[[ $(charon_ike_names left | wc -l) == 1 ]] || harness_die "charon still has more than one IKE SA: $(charon_sas left)"
harness_log "IKE rekey by ipsecgw: both sides on IKE SA $theirs (ours $ours)"

# --- 3. delete by charon ------------------------------------------------------------------------
spi_in=$(topo_gw_json child-sa 'int(v[-1]["spi_in"], 16)')
charon_terminate left gw || harness_die "swanctl --terminate failed: $(tail -n 5 "$(charon_dir left)/swanctl.out")"
charon_wait_ike_gone left gw || harness_die "charon kept its IKE SA"
harness_wait_until 5 _gw_has_none ||
    harness_die "ipsecgw kept SAs after charon's delete: $(topo_gw show ike-sa 2>&1) $(topo_gw show child-sa 2>&1)"
# Nothing protects right -> left any more: the pings are dropped, under a named reason.
declare -A before=()
for r in no_policy sa_deleted; do before[$r]=$(topo_gw_drop "$r"); done
got=$(netns_ping "$TOPO_RIGHT" "$TOPO_RIGHT_HOST" "$TOPO_LEFT_INNER" 5)
[[ $got == 0 ]] || harness_die "$got/5 pings right -> left answered after the delete"
send_stale_esp "$spi_in"
harness_wait_until 3 _drops_reach sa_deleted "$((before[sa_deleted] + 3))" ||
    harness_die "ESP with the deleted inbound SPI $(printf 0x%08x "$spi_in") not counted as sa_deleted: $(topo_gw show drops 2>&1)"
plain=$(($(topo_gw_drop no_policy) - before[no_policy]))
((plain >= 5)) || harness_die "5 pings right -> left without an SA: $plain counted as no_policy: $(topo_gw show drops 2>&1)"
harness_log "delete by charon: ipsecgw has no IKE/Child SA; $plain plaintext packets dropped as no_policy, stale ESP (SPI $(printf 0x%08x "$spi_in")) as sa_deleted"

# --- 4. ipsecgw initiates, then deletes -------------------------------------------------------
topo_gw initiate left >&2 || harness_die "ipsecgw initiate failed: $(tail -n 20 "$TOPO_GW_LOG")"
charon_wait_child left gw net 10 || harness_die "no CHILD_SA at charon after ipsecgw initiated"
[[ $(netns_ping "$TOPO_LEFT" "$TOPO_LEFT_INNER" "$TOPO_RIGHT_HOST" 3) == 3 ]] || harness_die "no ping after ipsecgw initiated"
topo_gw terminate left >&2 || harness_die "ipsecgw terminate failed"
harness_wait_until 5 _charon_no_sas || harness_die "charon kept SAs after ipsecgw's delete: $(charon_sas left)"
harness_wait_until 5 _gw_has_none || harness_die "ipsecgw kept SAs after its own delete: $(topo_gw show ike-sa 2>&1)"
harness_log "delete by ipsecgw: swanctl --list-sas is empty, so is ipsecgw's"
topo_gw_stop

# --- 5. one lcore: SIGTERM still sends the DELETE -------------------------------------------------
topo_gw_start "$HARNESS_DIR/gw.toml" single -l 0
grep -q "on the main lcore" "$TOPO_GW_LOG" || harness_die "ipsecgw -l 0 does not poll on the main lcore: $(head -n 20 "$TOPO_GW_LOG")"
charon_initiate left gw net || harness_die "charon could not initiate (-l 0)"
charon_wait_child left gw net || harness_die "charon has no INSTALLED CHILD_SA (-l 0)"
[[ $(netns_ping "$TOPO_LEFT" "$TOPO_LEFT_INNER" "$TOPO_RIGHT_HOST" 3) == 3 ]] || harness_die "no ping through ipsecgw -l 0"
topo_gw_stop
charon_wait_ike_gone left gw 5 || harness_die "ipsecgw -l 0 stopped by SIGTERM did not delete charon's IKE SA: $(charon_sas left)"
harness_log "ipsecgw -l 0 stopped: charon's IKE SA was deleted"
harness_log "PASS"
