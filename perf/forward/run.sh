#!/usr/bin/env bash
# Forwarding rate of ipsecgw on one worker core vs dpdk-testpmd --forward-mode=io, on the
# same vdevs in the same run (issue 4 benchmark; perf/README.md "Forwarding (issue 4)").
#
#   net_pcap0,rx_pcap=F,infinite_rx=1  -->  forwarder on lcore 1  -->  net_null0,no-rx=1
#
# Rates are read from DPDK telemetry (/ethdev/stats of the net_null port) over a window
# after a warm-up, alternating testpmd and ipsecgw ROUNDS times per frame size; the table
# shows the best round of each and the ratio. Uses 2 MiB hugepages on a private hugetlbfs
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
HUGE_MNT="" ADDED=0 PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill -INT "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    if [[ -n $HUGE_MNT ]]; then umount "$HUGE_MNT" 2>/dev/null || true; fi
    if ((ADDED > 0)); then
        local now; now=$(cat /proc/sys/vm/nr_hugepages)
        echo $((now > ADDED ? now - ADDED : 0)) >/proc/sys/vm/nr_hugepages || true
    fi
    rm -rf -- "$WORK"
}
trap cleanup EXIT

MEM=(--no-huge -m 1024) MEMNOTE="--no-huge (hugepages unavailable: rates ~25-30% lower at 64 B)"
before=$(cat /proc/sys/vm/nr_hugepages)
if echo $((before + PAGES)) >/proc/sys/vm/nr_hugepages 2>/dev/null; then
    ADDED=$(($(cat /proc/sys/vm/nr_hugepages) - before))
    mkdir -p "$WORK/huge"
    if ((ADDED >= 256)) && mount -t hugetlbfs -o pagesize=2M none "$WORK/huge" 2>/dev/null; then
        HUGE_MNT=$WORK/huge
        MEM=(--huge-dir "$HUGE_MNT" -m 512) MEMNOTE="2 MiB hugepages ($ADDED reserved on a private hugetlbfs mount)"
    fi
fi

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
    rate=$("$PY" $HERE/telemetry_rate.py "/var/run/dpdk/$prefix" 1 "$WARMUP" "$WINDOW") || {
        echo "run.sh: $name did not run:" >&2; tail -5 "$WORK/$name.log" >&2; exit 1; }
    kill -INT "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    PIDS=("${PIDS[@]/$pid}")
    rm -rf -- "/var/run/dpdk/$prefix" # testpmd leaves its runtime dir behind
    echo "$rate"
}

best() { tr ' ' '\n' | sort -n | tail -1; }
declare -A RESULT
for size in 64 1400; do
    vdevs=(--vdev="net_pcap0,rx_pcap=$WORK/in$size.pcap,infinite_rx=1" --vdev=net_null0,no-rx=1)
    tp=() gw=()
    for ((r = 0; r < ROUNDS; r++)); do
        p=pf-tp-$$-$size-$r
        read -r out in < <(measure testpmd "$p" dpdk-testpmd -l 0,1 --no-pci "${MEM[@]}" --file-prefix "$p" "${vdevs[@]}" \
            -- --forward-mode=io --nb-cores=1 --rxq=1 --txq=1 --burst=32 --total-num-mbufs=16384 --stats-period 60)
        tp+=("$out")
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
        read -r out in < <(measure ipsecgw "$p" "$IPSECGW" run --config "$WORK/gw.toml" --busy-poll -- -l 0,1 --no-pci "${MEM[@]}" --file-prefix "$p" "${vdevs[@]}")
        gw+=("$out")
    done
    RESULT[$size,all]="$(printf '%s ' "${tp[@]}") | $(printf '%s ' "${gw[@]}")"
    RESULT[$size,tp]=$(echo "${tp[@]}" | best)
    RESULT[$size,gw]=$(echo "${gw[@]}" | best)
done

echo
echo "Forwarding, 1 worker lcore, net_pcap infinite_rx -> net_null, $MEMNOTE"
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores, window ${WINDOW}s x $ROUNDS rounds (best), load average $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-8s %16s %16s %8s   %s\n' frame "testpmd io Mpps" "ipsecgw Mpps" ratio "all rounds testpmd | ipsecgw (Mpps)"
for size in 64 1400; do
    t=${RESULT[$size,tp]} g=${RESULT[$size,gw]}
    awk -v s="$size" -v t="$t" -v g="$g" -v all="${RESULT[$size,all]}" 'BEGIN {
        n = split(all, a, " "); rounds = ""
        for (i = 1; i <= n; i++) rounds = rounds (a[i] == "|" ? "|" : sprintf("%.2f", a[i] / 1e6)) " "
        printf "%-8s %16.2f %16.2f %8.3f   %s\n", s " B", t / 1e6, g / 1e6, (t > 0 ? g / t : 0), rounds }'
done
