#!/usr/bin/env bash
# Trap policies in `ipsecgw run` (issues 6 and 7): start_action = "trap" and DPD action
# hold, against strongSwan (charon, kernel-libipsec, responder only) in tr-left, a plain
# host in tr-right (topology.sh "dpdk").
#   a. start_action trap: no IKE at all until the right host pings the left inner address;
#      the first ping(s) are dropped as `held` (show drops), the trap's note makes ipsecgw
#      initiate, charon gets its CHILD_SA and later pings pass.
#   b. dpd = { interval = 2s, action = hold }: charon killed (no DELETE) -> ipsecgw's
#      liveness check fails within 3 intervals and logs "dpd action hold"; new pings are
#      dropped as `held` (the policies trap again) and nothing passes; charon back -> the
#      next pings re-negotiate (ipsecgw initiates) and traffic passes.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib/topology.sh

INTERVAL=2
topo_gw_test tr
topo_left_conn gw left
charon_load left
topo_gw_run_config "$HARNESS_DIR/gw.toml" aes128gcm16-prfsha256-ecp256 aes128gcm16-ecp256 \
    "dpd = { interval = \"${INTERVAL}s\", timeout = \"${INTERVAL}s\", action = \"hold\" }"
sed -i 's/^start_action = "none"$/start_action = "trap"/' "$HARNESS_DIR/gw.toml"
grep -q '^start_action = "trap"$' "$HARNESS_DIR/gw.toml" || harness_die "could not set start_action = trap in gw.toml"

now_ms() { date +%s%3N; }
ping_right() { netns_ping "$TOPO_RIGHT" "$TOPO_RIGHT_HOST" "$TOPO_LEFT_INNER" "${1:-1}"; }
gw_sas() { topo_gw_json ike-sa 'len(v)'; }
_held_reach() { (($(topo_gw_drop held) >= $1)); }
_hold_logged() { grep -q "dpd action hold" "$TOPO_GW_LOG"; }
# One ping at a time until one is answered (each unanswered one hits the trap again).
_ping_passes() { [[ $(ping_right 1) == 1 ]]; }

# --- a. start_action trap -----------------------------------------------------------------------
topo_gw_start "$HARNESS_DIR/gw.toml" trap
sleep 1
[[ $(gw_sas) == 0 && -z $(charon_sas left) ]] || harness_die "trap: an IKE SA exists before any packet: $(topo_gw show ike-sa 2>&1)"
[[ $(topo_gw_drop held) == 0 ]] || harness_die "trap: held drops before any packet"
t0=$(now_ms)
got=$(ping_right 1)
[[ $got == 0 ]] || harness_die "trap: the first ping passed, want it held"
held=$(topo_gw_drop held)
((held >= 1)) || harness_die "trap: the first ping is not counted as held: $(topo_gw show drops 2>&1)"
grep -q "packet hit its trap policy" "$TOPO_GW_LOG" || harness_die "trap: no acquire logged: $(tail -n 20 "$TOPO_GW_LOG")"
charon_wait_child left gw net 10 || harness_die "trap: no CHILD_SA after the first packet: $(tail -n 20 "$TOPO_GW_LOG")"
harness_log "trap: first ping held ($held held), tunnel up $(($(now_ms) - t0)) ms after it (initiated by ipsecgw)"
got=$(ping_right 5)
[[ $got == 5 ]] || harness_die "trap: $got/5 pings through the tunnel after it came up"
harness_log "trap: 5/5 pings right -> left through the tunnel"

# --- b. DPD hold ----------------------------------------------------------------------------------
t0=$(now_ms)
charon_crash left
harness_wait_until $((3 * INTERVAL + 2)) _hold_logged || harness_die "hold: no DPD hold within $((3 * INTERVAL + 2)) s: $(tail -n 20 "$TOPO_GW_LOG")"
detect=$(($(now_ms) - t0))
((detect <= 3 * INTERVAL * 1000)) || harness_die "hold: DPD took $detect ms, more than 3 intervals ($((3 * INTERVAL)) s)"
harness_log "hold: peer killed, DPD hold after $detect ms: $(grep -m1 "dpd action hold" "$TOPO_GW_LOG" | sed 's/.*connection/connection/')"
held=$(topo_gw_drop held)
got=$(ping_right 3)
[[ $got == 0 ]] || harness_die "hold: $got/3 pings answered with the peer dead"
harness_wait_until 3 _held_reach $((held + 3)) || harness_die "hold: pings not counted as held ($held before, $(topo_gw_drop held) now)"
harness_log "hold: 3 pings with the peer dead: held $held -> $(topo_gw_drop held)"
# Peer back; its link up once its config is loaded (an earlier answer would be a refusal).
ip -n "$TOPO_LEFT" link set "$TOPO_LEFT_IF" down
charon_start left "$TOPO_LEFT"
charon_load left
ip -n "$TOPO_LEFT" link set "$TOPO_LEFT_IF" up
t0=$(now_ms)
harness_wait_until 20 _ping_passes || harness_die "hold: no ping passed after the peer came back: $(tail -n 20 "$TOPO_GW_LOG")"
charon_wait_child left gw net 5 || harness_die "hold: charon has no CHILD_SA"
harness_log "hold: peer back, the pings re-negotiated: first answered after $(($(now_ms) - t0)) ms"
got=$(ping_right 5)
[[ $got == 5 ]] || harness_die "hold: $got/5 pings after re-negotiation"
topo_gw_stop
harness_log "PASS"
