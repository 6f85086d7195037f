#!/usr/bin/env bash
# Forwarding rate of ipsecgw on one worker core vs dpdk-testpmd --forward-mode=io, on the
# same vdevs in the same run (issue 4 benchmark; perf/README.md "Forwarding (issue 4)").
#
#   net_pcap0,rx_pcap=F,infinite_rx=1  -->  forwarder on lcore 1  -->  net_null0,no-rx=1
#
# Rates are read from DPDK telemetry (/ethdev/stats of the net_null port) over a window
# after a warm-up, alternating testpmd and ipsecgw ROUNDS times per frame size; the table
# shows the best wall-clock round of each, and packets per CPU-second the forwarding
# thread actually got (median round; robust when the machine is shared), with ratios. Uses 2 MiB hugepages on a private hugetlbfs
# mount (pages added and removed again) when it can, else --no-huge (and says so).
#
#   perf/forward/run.sh [WINDOW_S=3] [ROUNDS=3]        (as root)
set -euo pipefail
cd "$(dirname "$0")/../.."
WINDOW=${1:-3} ROUNDS=${2:-3} WARMUP=1 PAGES=512
PY=/usr/bin/python3
HERE=perf/forward
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
IPSECGW=${IPSECGW:-$CARGO_TARGET_DIR/release/ipsecgw}

[[ $(id -u) == 0 ]] || { echo "run.sh: needs root (hugepages, DPDK)" >&2; exit 1; }
if ! command -v dpdk-testpmd >/dev/null; then
    echo "run.sh: installing dpdk-dev (dpdk-testpmd)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dpdk-dev >/dev/null
fi
[[ -x $IPSECGW ]] || cargo build --release -p ipsecgw >&2

WORK=$(mktemp -d /tmp/perf-forward.XXXXXX)
PIDS=()
source perf/lib/hugepages.sh
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill -INT "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    huge_release
    rm -rf -- "$WORK"
}
trap cleanup EXIT
huge_reserve "$WORK" "$PAGES"
MEM=("${HUGE_MEM[@]}") MEMNOTE=$HUGE_MEMNOTE

# Input pcaps: 64 distinct Ethernet/IPv4/UDP frames per size (frame length without FCS).
"$PY" - "$WORK" <<'PYEOF'
import sys
from scapy.all import Ether, IP, UDP, Raw, wrpcap
for size in (64, 1400):
    pkts = []
    for i in range(64):
        p = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src="198.51.100.1", dst="198.51.100.2") / UDP(sport=1024 + i, dport=9)
        pkts.append(p / Raw(b"\x00" * (size - len(p))))
    wrpcap(f"{sys.argv[1]}/in{size}.pcap", pkts)
PYEOF

# measure NAME PREFIX CMD...: start CMD, read the rate of port 1 (net_null), stop CMD.
measure() {
    local name=$1 prefix=$2; shift 2
    # nice -n -10: the machine is shared (parallel builds); both forwarders get the same.
    nice -n -10 "$@" </dev/null >"$WORK/$name.log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    local rate
    rate=$("$PY" $HERE/telemetry_rate.py "/var/run/dpdk/$prefix" 1 "$WARMUP" "$WINDOW" "$pid") || {
        echo "run.sh: $name did not run:" >&2; tail -5 "$WORK/$name.log" >&2; exit 1; }
    kill -INT "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    PIDS=("${PIDS[@]/$pid}")
    rm -rf -- "/var/run/dpdk/$prefix" # testpmd leaves its runtime dir behind
    echo "$rate"
}

best() { tr ' ' '\n' | sort -n | tail -1; }
median() { tr ' ' '\n' | grep . | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
declare -A RESULT
for size in 64 1400; do
    vdevs=(--vdev="net_pcap0,rx_pcap=$WORK/in$size.pcap,infinite_rx=1" --vdev=net_null0,no-rx=1)
    tp=() gw=() tpc=() gwc=()
    for ((r = 0; r < ROUNDS; r++)); do
        p=pf-tp-$$-$size-$r
        read -r out cpu < <(measure testpmd "$p" dpdk-testpmd -l 0,1 --no-pci "${MEM[@]}" --file-prefix "$p" "${vdevs[@]}" \
            -- --forward-mode=io --nb-cores=1 --rxq=1 --txq=1 --burst=32 --total-num-mbufs=16384 --stats-period 60)
        tp+=("$out") tpc+=("$cpu")
        p=pf-gw-$$-$size-$r
        cat >"$WORK/gw.toml" <<TOML
[dpdk]
eal_args = []
[[port]]
name = "in"
dpdk_port = 0
[[port]]
name = "out"
dpdk_port = 1
[forward]
pairs = [["in", "out"]]
TOML
        read -r out cpu < <(measure ipsecgw "$p" "$IPSECGW" run --config "$WORK/gw.toml" --busy-poll -- -l 0,1 --no-pci "${MEM[@]}" --file-prefix "$p" "${vdevs[@]}")
        gw+=("$out") gwc+=("$cpu")
    done
    RESULT[$size,all]="$(printf '%s ' "${tp[@]}") | $(printf '%s ' "${gw[@]}")"
    RESULT[$size,tp]=$(echo "${tp[@]}" | best)
    RESULT[$size,gw]=$(echo "${gw[@]}" | best)
    RESULT[$size,tpc]=$(echo "${tpc[@]}" | median)
    RESULT[$size,gwc]=$(echo "${gwc[@]}" | median)
done

echo
echo "Forwarding, 1 worker lcore, net_pcap infinite_rx -> net_null, $MEMNOTE"
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores, window ${WINDOW}s x $ROUNDS rounds, load average $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-8s %14s %14s %7s | %18s %18s %7s\n' frame "testpmd Mpps" "ipsecgw Mpps" ratio "testpmd Mpps/CPU-s" "ipsecgw Mpps/CPU-s" ratio
for size in 64 1400; do
    t=${RESULT[$size,tp]} g=${RESULT[$size,gw]} tc=${RESULT[$size,tpc]} gc=${RESULT[$size,gwc]}
    awk -v s="$size" -v t="$t" -v g="$g" -v tc="$tc" -v gc="$gc" 'BEGIN {
        printf "%-8s %14.2f %14.2f %7.3f | %18.2f %18.2f %7.3f\n", s " B", t / 1e6, g / 1e6, (t > 0 ? g / t : 0), tc / 1e6, gc / 1e6, (tc > 0 ? gc / tc : 0) }'
done
echo "(wall: best round; per CPU-second of the forwarding thread: median round)"
for size in 64 1400; do echo "rounds $size B, wall Mpps, testpmd | ipsecgw: ${RESULT[$size,all]}"; done |
    awk '{ out = ""; for (i = 1; i <= NF; i++) out = out ($i ~ /^[0-9]+$/ && $i > 100000 ? sprintf("%.2f", $i / 1e6) : $i) " "; print out }'
