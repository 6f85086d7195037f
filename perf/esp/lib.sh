# shellcheck shell=bash
# Benchmark plumbing for perf/run.sh: a work dir, 2 MiB hugepages on a private
# hugetlbfs mount (pages added now and removed again at exit), and rate measurement
# through DPDK telemetry (perf/forward/telemetry_rate.py).
#
#   bench_init                      BENCH_DIR, BENCH_MEM (EAL memory args), BENCH_MEMNOTE
#   bench_setup NAME BIN            a benchmark script's start: root or exit, BIN built if it is
#                                   missing (cargo build --release -p ipsecgw), bench_init; W=BENCH_DIR
#   bench_measure NAME PREFIX CMD…  start CMD, print "<pps wall> <per CPU-s> <best SLICE-s slice per
#                                   CPU-s>" of port 1 (telemetry_rate.py; SLICE=0.25), stop it
#   bench_start NAME CMD…           start CMD in the background (log BENCH_DIR/NAME.log, higher
#                                   priority); its PID in BENCH_PID
#   bench_rate PREFIX PID           bench_measure's line for the running PID with runtime PREFIX
#   bench_stop PID PREFIX           stop it (SIGINT) and remove its runtime dir
#   bench_wait_log LOG TEXT PID [T] wait until LOG contains TEXT (fails if PID dies, or
#                                   after T tenths of a second: 200)
#   median, highest                 of the numbers on stdin (blank- or newline-separated;
#                                   nothing printed for none)
BENCH_PAGES=${BENCH_PAGES:-512}
BENCH_RATE=${BENCH_RATE:-perf/forward/telemetry_rate.py}
BENCH_PIDS=()
source "$(dirname "${BASH_SOURCE[0]}")/../lib/hugepages.sh"

_bench_cleanup() {
    local p
    for p in "${BENCH_PIDS[@]}"; do
        [[ -n $p ]] || continue
        kill -INT "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    huge_release
    [[ -n ${BENCH_DIR:-} ]] && rm -rf -- "$BENCH_DIR"
}

bench_init() {
    BENCH_DIR=$(mktemp -d /tmp/perf-esp.XXXXXX)
    trap _bench_cleanup EXIT
    huge_reserve "$BENCH_DIR" "$BENCH_PAGES"
    BENCH_MEM=("${HUGE_MEM[@]}") BENCH_MEMNOTE=$HUGE_MEMNOTE BENCH_HUGE=$HUGE_MNT
}

bench_setup() {
    [[ $(id -u) == 0 ]] || { echo "$1: needs root" >&2; exit 1; }
    [[ -x $2 ]] || cargo build --release -p ipsecgw >&2
    bench_init
    W=$BENCH_DIR
}

bench_wait_log() {
    local i
    for ((i = 0; i < ${4:-200}; i++)); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        kill -0 "$3" 2>/dev/null || { echo "bench: process exited: $(tail -5 "$1")" >&2; return 1; }
        sleep 0.1
    done
    echo "bench: timeout waiting for '$2' in $1" >&2
    return 1
}

bench_start() {
    local name=$1; shift
    "$@" </dev/null >"$BENCH_DIR/$name.log" 2>&1 &
    BENCH_PID=$!
    BENCH_PIDS+=("$BENCH_PID")
    # The machine is shared: the measured process gets a higher priority.
    renice -n -10 -p "$BENCH_PID" >/dev/null 2>&1 || true
}

bench_rate() {
    /usr/bin/python3 "$BENCH_RATE" "/var/run/dpdk/$1" 1 "${WARMUP:-1}" "${WINDOW:-2}" "$2" "${SLICE:-0.25}"
}

bench_stop() {
    kill -INT "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
    BENCH_PIDS=("${BENCH_PIDS[@]/$1/}")
    rm -rf -- "/var/run/dpdk/$2"
}

bench_measure() {
    local name=$1 prefix=$2 pid rate; shift 2
    bench_start "$name" "$@"
    pid=$BENCH_PID
    rate=$(bench_rate "$prefix" "$pid") || {
        echo "bench: $name did not run:" >&2; tail -5 "$BENCH_DIR/$name.log" >&2; return 1; }
    bench_stop "$pid" "$prefix"
    echo "$rate"
}

# (awk 'NF', not grep .: no input is a valid empty answer, and grep's status 1 would end
# a `set -eo pipefail` caller, as it did run.sh's IMIX rows, which have no ipsec-secgw figure)
median() { tr ' ' '\n' | awk 'NF' | sort -g | awk '{ v[NR] = $1 } END { if (NR) print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
highest() { tr ' ' '\n' | awk 'NF' | sort -g | tail -1; }
