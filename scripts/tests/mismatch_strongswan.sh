#!/usr/bin/env bash
# Mismatch diagnosis against strongSwan (issue 7 items 1 and 2): `ipsecgw ike` (kernel UDP
# sockets) in msm-gw (198.51.100.2) and charon (kernel-libipsec) in msm-left (198.51.100.1),
# topology "kernel" mode. One change at a time from the working tunnel of topo-left.conn,
# each case in both roles (charon initiates: ipsecgw is the responder; ipsecgw initiates
# through `ipsecgw initiate`). For each, the test asserts the exact reason code ipsecgw
# reports in `ipsecgw show connections --json` (last_failure.reason) and its DIAGNOSIS log
# line (reason=… field=…), plus one value that must be on that line (what we received,
# or what we sent). A fresh ipsecgw per run, so every last failure is this run's.
#
# Cases: PSK, IKE proposal (encryption+PRF), ESP proposal, DH group, traffic selectors,
# peer ID, IKEv1 peer (strongSwan version = 1 with aes256-sha256-ecp256).
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib/topology.sh

TAG=msm

harness_init "$TAG"
topo_ipsecgw # $IPSECGW as given (scripts/test.sh), else a release build
START=$SECONDS
topo_create "$TAG" kernel
topo_left_charon
GWLOG=$HARNESS_DIR/ipsecgw.log
SOCK=$HARNESS_DIR/gw.sock
GWPID=

METRICS=127.0.0.1:19469
gw_start() { # [EXTRA ipsecgw ike ARGS...]
    topo_gw_ike_config "$HARNESS_DIR/gw.toml" aes128gcm16-prfsha256-ecp256 aes128gcm16-ecp256
    : >"$GWLOG"
    harness_spawn "$GWLOG" ip netns exec "$TOPO_GW" "$IPSECGW" ike --config "$HARNESS_DIR/gw.toml" --socket "$SOCK" --metrics-listen "$METRICS" "$@"
    GWPID=$HARNESS_LAST_PID
    harness_wait_until 10 test -S "$SOCK" || harness_die "ipsecgw ike did not start: $(cat "$GWLOG")"
    [[ $(stat -c %a "$SOCK") == 600 ]] || harness_die "control socket mode is $(stat -c %a "$SOCK"), not 600"
}

gw_stop() {
    [[ -n $GWPID ]] || return 0
    harness_kill "$GWPID" 5
    GWPID=
}

# gw_reason: last_failure.reason of connection "left" (or of the "-" row: failures no
# connection could be named for), from `show connections --json`.
gw_reason() {
    "$IPSECGW" show connections --json --socket "$SOCK" 2>/dev/null | /usr/bin/python3 -c '
import json, sys
rows = json.load(sys.stdin)
for name in ("left", "-"):
    for r in rows:
        if r["name"] == name and r["last_failure"]:
            print(r["last_failure"]["reason"]); sys.exit(0)
'
}
_gw_has_reason() { [[ -n $(gw_reason) ]]; }

# gw_metrics: the Prometheus page (the exporter listens on loopback inside the gw namespace).
gw_metrics() {
    ip netns exec "$TOPO_GW" /usr/bin/python3 -c '
import sys, urllib.request
sys.stdout.write(urllib.request.urlopen("http://'"$METRICS"'/metrics", timeout=5).read().decode())'
}

# check ROLE CASE REASON FIELD VALUE: the reason in show --json and the log's DIAGNOSIS line.
check() {
    local role=$1 case=$2 reason=$3 field=$4 value=$5 got line
    harness_wait_until 10 _gw_has_reason || harness_die "$case/$role: no failure reported; log: $(tail -n 20 "$GWLOG")"
    got=$(gw_reason)
    [[ $got == "$reason" ]] || harness_die "$case/$role: reason '$got', expected '$reason'; log: $(grep -E 'FAILURE|DIAGNOSIS' "$GWLOG")"
    line=$(grep -F "DIAGNOSIS:" "$GWLOG" | tail -n 1)
    [[ $line == *"($role) reason=$reason field=$field:"* ]] || harness_die "$case/$role: DIAGNOSIS line lacks '($role) reason=$reason field=$field': $line"
    [[ $line == *"$value"* ]] || harness_die "$case/$role: DIAGNOSIS line lacks '$value': $line"
    # (charon retransmits an IKEv1 message that got no IKEv1 answer: each copy counts.)
    gw_metrics | grep -Ex "ipsecgw_negotiation_failures_total\{reason=\"$reason\"\} [1-9][0-9]*" >/dev/null ||
        harness_die "$case/$role: metrics count no '$reason' failure: $(gw_metrics | grep negotiation_failures)"
    harness_log "$case / ipsecgw $role: ${line#*DIAGNOSIS: }"
}

# run_case CASE "CONN_X=V..." RESP_REASON RESP_FIELD RESP_VALUE INIT_REASON INIT_FIELD INIT_VALUE
run_case() {
    local case=$1 changes=$2
    # shellcheck disable=SC2086
    topo_left_conn gw left $changes
    charon_load left

    gw_start
    charon_initiate left gw net 5 || true
    check responder "$case" "$3" "$4" "$5"
    gw_stop
    charon_terminate_all left

    gw_start
    "$IPSECGW" initiate left --socket "$SOCK" >/dev/null || harness_die "$case: ipsecgw initiate failed"
    check initiator "$case" "$6" "$7" "$8"
    gw_stop
    charon_terminate_all left
}

# A working tunnel first, so every failure below is the one change.
topo_left_conn gw left
charon_load left
gw_start --log-format json
charon_initiate left gw net 5 || harness_die "baseline tunnel failed: $(tail -n 20 "$GWLOG")"
charon_wait_child left gw net || harness_die "baseline: no CHILD_SA"
_child_metric() { gw_metrics | grep -Fx 'ipsecgw_child_sas{connection="left"} 1' >/dev/null; }
harness_wait_until 5 _child_metric || harness_die "metrics: no Child SA counted: $(gw_metrics | grep _sas)"
gw_metrics | grep -Fx 'ipsecgw_ike_sas{connection="left",state="established"} 1' >/dev/null || harness_die "metrics: IKE SA not established"
# --log-format json: every line one JSON object, the SA events among them.
/usr/bin/python3 - "$GWLOG" <<'PY' || harness_die "JSON log: $(head -n 5 "$GWLOG")"
import json, sys
objs = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
other = [l for l in open(sys.argv[1]) if l.strip() and not l.startswith("{") and not l.startswith("ipsecgw: ")]
assert not other, other
assert any("CHILD SA up: connection=left" in o.get("message", "") for o in objs), objs
PY
[[ $("$IPSECGW" show connections --json --socket "$SOCK" | /usr/bin/python3 -c 'import json,sys; print([r["state"] for r in json.load(sys.stdin) if r["name"]=="left"][0])') == up ]] ||
    harness_die "baseline: show connections does not say up"
"$IPSECGW" show child-sa --socket "$SOCK" | grep -E "^left +[0-9a-f]{16}" >/dev/null || harness_die "show child-sa has no row"
gw_stop
charon_terminate_all left
harness_log "baseline tunnel up: show connections says up, metrics count the SAs, JSON log lines parse"

run_case psk "CONN_PSK=wrong-psk" \
    psk PSK "AUTH from left" \
    auth_failed "PSK/ID" "PSK or identity — check both; ours were IDi=gw, asked IDr=left"
run_case ike-proposal "CONN_IKE_PROPOSALS=aes256gcm16-prfsha384-ecp256" \
    ike_proposal "ENCR+PRF" "ENCR received aes256gcm16 vs configured aes128gcm16" \
    ike_proposal "IKE SA" "NO_PROPOSAL_CHOSEN to our IKE proposals [aes128gcm16-prfsha256-ecp256]"
run_case esp-proposal "CONN_ESP_PROPOSALS=aes256gcm16-ecp256" \
    esp_proposal ENCR "ENCR received aes256gcm16 vs configured aes128gcm16" \
    esp_proposal "ESP SA" "NO_PROPOSAL_CHOSEN to our ESP proposals"
run_case dh-group "CONN_IKE_PROPOSALS=aes128gcm16-prfsha256-x25519" \
    dh_group KE "KE received" \
    ike_proposal "IKE SA" "key exchange (DH) group"
run_case traffic-selectors "CONN_REMOTE_TS=10.4.0.0/24" \
    traffic_selectors TS "offered TSi=10.1.0.0/24 TSr=10.4.0.0/24, we allow remote_ts=10.1.0.0/24 local_ts=10.2.0.0/24" \
    traffic_selectors TS "TS_UNACCEPTABLE to our selectors TSi=10.2.0.0/24 TSr=10.1.0.0/24"
run_case peer-id "CONN_LOCAL_ID=left-x" \
    peer_id IDi "identified as IDi=left-x, we expect remote_id=left" \
    auth_failed "PSK/ID" "ours were IDi=gw, asked IDr=left"
run_case ikev1 "CONN_VERSION=1 CONN_IKE_PROPOSALS=aes256-sha256-ecp256" \
    ike_version version "sent IKEv1" \
    ike_proposal "IKE SA" "IKEv1"

harness_log "PASS: 7 mismatches x 2 roles in $((SECONDS - START)) s"
