#!/usr/bin/env bash
# Dead peer detection (issue 7 item 3, RFC 7296 §2.4 liveness) against strongSwan:
# `ipsecgw ike` in dpd-gw with dpd = { interval = 2s, timeout = 2s, action = restart },
# charon (kernel-libipsec, no DPD of its own) in dpd-left initiates the tunnel. Then:
#  1. charon is killed (SIGKILL: no DELETE): ipsecgw's liveness checks go unanswered and
#     it takes the IKE SA down (reason peer-unreachable) within 3 intervals (6 s) of the
#     kill; the test prints the measured time;
#  2. action restart: ipsecgw keeps re-initiating while the peer is away;
#  3. charon comes back (same config, its link up once the config is loaded): ipsecgw's next IKE_SA_INIT is answered and the
#     tunnel is up again on both sides (charon: INSTALLED CHILD_SA; ipsecgw: show
#     connections says up).
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib/topology.sh

TAG=dpd
INTERVAL=2

harness_init "$TAG"
topo_ipsecgw # $IPSECGW as given (scripts/test.sh), else a release build
topo_create "$TAG" kernel
topo_left_charon
topo_left_conn gw left
charon_load left
GWLOG=$HARNESS_DIR/ipsecgw.log
SOCK=$HARNESS_DIR/gw.sock
topo_gw_ike_config "$HARNESS_DIR/gw.toml" aes128gcm16-prfsha256-ecp256 aes128gcm16-ecp256 \
    "dpd = { interval = \"${INTERVAL}s\", timeout = \"${INTERVAL}s\", action = \"restart\" }"
harness_spawn "$GWLOG" ip netns exec "$TOPO_GW" "$IPSECGW" ike --config "$HARNESS_DIR/gw.toml" --socket "$SOCK"
GWPID=$HARNESS_LAST_PID
harness_wait_until 10 test -S "$SOCK" || harness_die "ipsecgw ike did not start: $(cat "$GWLOG")"

gw_state() {
    "$IPSECGW" show connections --json --socket "$SOCK" 2>/dev/null |
        /usr/bin/python3 -c 'import json,sys; print([r["state"] for r in json.load(sys.stdin) if r["name"]=="left"][0])'
}
_gw_up() { [[ $(gw_state) == up ]]; }
_gw_down_logged() { grep -E "IKE SA down: connection=left .*reason=peer-unreachable" "$GWLOG" >/dev/null; }
now_ms() { date +%s%3N; }

charon_initiate left gw net 5 || harness_die "tunnel setup failed: $(tail -n 20 "$GWLOG")"
charon_wait_child left gw net || harness_die "no CHILD_SA"
harness_wait_until 5 _gw_up || harness_die "ipsecgw does not say up: $(gw_state)"
harness_log "tunnel up"

# 1. Peer killed.
t0=$(now_ms)
charon_crash left
harness_wait_until $((3 * INTERVAL + 2)) _gw_down_logged || harness_die "no DPD within $((3 * INTERVAL + 2)) s: $(tail -n 20 "$GWLOG")"
t1=$(now_ms)
detect=$((t1 - t0))
[[ $detect -le $((3 * INTERVAL * 1000)) ]] || harness_die "DPD took $detect ms, more than 3 intervals ($((3 * INTERVAL)) s)"
grep -E "FAILURE: .*INFORMATIONAL .*no response after 3 retransmits" "$GWLOG" >/dev/null ||
    harness_die "the liveness failure line is missing: $(grep FAILURE "$GWLOG")"
harness_log "peer killed: DPD took the IKE SA down after $detect ms (interval ${INTERVAL} s, limit $((3 * INTERVAL)) s)"

# 2. Restart: IKE_SA_INIT again while the peer is away (each attempt fails with no response).
_reinit() { [[ $(grep -c "DIAGNOSIS: .*reason=no_response" "$GWLOG") -ge 2 ]]; }
harness_wait_until 10 _reinit || harness_die "no re-initiation after DPD: $(tail -n 10 "$GWLOG")"
harness_log "action restart: re-initiating ($(grep -c 'reason=no_response' "$GWLOG") unanswered attempts so far)"

# 3. Peer back. Its link stays down until its connection is loaded: a charon that
# answers before that refuses with NO_PROPOSAL_CHOSEN ("no IKE config found"), which
# ends the restart loop (a refusal is not a dead peer).
ip -n "$TOPO_LEFT" link set "$TOPO_LEFT_IF" down
charon_start left "$TOPO_LEFT"
charon_load left
t2=$(now_ms)
ip -n "$TOPO_LEFT" link set "$TOPO_LEFT_IF" up
charon_wait_child left gw net 15 || harness_die "tunnel not re-established after the peer came back: $(tail -n 20 "$GWLOG")"
harness_wait_until 5 _gw_up || harness_die "ipsecgw does not say up again: $(gw_state)"
harness_log "peer back: tunnel up again after $(($(now_ms) - t2)) ms (initiated by ipsecgw)"

# 4. Action hold in `ipsecgw ike` (no dataplane, so no trap policies to install; the
# trap side is scripts/tests/trap_strongswan.sh with `ipsecgw run`): after DPD the IKE SA
# goes down, the engine says "dpd action hold" and ipsecgw does NOT re-initiate (unlike
# restart); the peer's own initiation brings the tunnel back.
harness_kill "$GWPID"
rm -f "$SOCK"
topo_gw_ike_config "$HARNESS_DIR/gw-hold.toml" aes128gcm16-prfsha256-ecp256 aes128gcm16-ecp256 \
    "dpd = { interval = \"${INTERVAL}s\", timeout = \"${INTERVAL}s\", action = \"hold\" }"
GWLOG=$HARNESS_DIR/ipsecgw-hold.log
harness_spawn "$GWLOG" ip netns exec "$TOPO_GW" "$IPSECGW" ike --config "$HARNESS_DIR/gw-hold.toml" --socket "$SOCK"
GWPID=$HARNESS_LAST_PID
harness_wait_until 10 test -S "$SOCK" || harness_die "ipsecgw ike (hold) did not start: $(cat "$GWLOG")"
charon_terminate_all left
charon_initiate left gw net 5 || harness_die "hold: tunnel setup failed: $(tail -n 20 "$GWLOG")"
charon_wait_child left gw net || harness_die "hold: no CHILD_SA"
harness_wait_until 5 _gw_up || harness_die "hold: ipsecgw does not say up: $(gw_state)"
t0=$(now_ms)
charon_crash left
harness_wait_until $((3 * INTERVAL + 2)) _gw_down_logged || harness_die "hold: no DPD within $((3 * INTERVAL + 2)) s: $(tail -n 20 "$GWLOG")"
detect=$(($(now_ms) - t0))
[[ $detect -le $((3 * INTERVAL * 1000)) ]] || harness_die "hold: DPD took $detect ms, more than 3 intervals"
grep -q "dpd action hold" "$GWLOG" || harness_die "hold: no 'dpd action hold' event logged: $(tail -n 20 "$GWLOG")"
harness_log "hold: DPD took the IKE SA down after $detect ms"
# No re-initiation: over two more intervals, no IKE_SA_INIT attempt fails for lack of an answer.
sleep_until=$(($(now_ms) + 2 * INTERVAL * 1000))
harness_wait_until $((2 * INTERVAL + 1)) test "$(now_ms)" -ge "$sleep_until" || true
attempts=$(grep -c "DIAGNOSIS: .*reason=no_response" "$GWLOG" || true)
[[ $attempts -le 1 ]] || harness_die "hold: ipsecgw re-initiated $attempts times (restart behaviour)"
[[ $(gw_state) == down ]] || harness_die "hold: state $(gw_state), expected down"
charon_start left "$TOPO_LEFT"
charon_load left
charon_initiate left gw net 10 || harness_die "hold: peer's initiation failed: $(tail -n 20 "$GWLOG")"
charon_wait_child left gw net || harness_die "hold: no CHILD_SA after the peer came back"
harness_wait_until 5 _gw_up || harness_die "hold: ipsecgw does not say up again: $(gw_state)"
harness_log "hold: no re-initiation by ipsecgw while the peer was away; the peer's initiation brought the tunnel up"
harness_log "PASS"
