#!/usr/bin/env bash
# Before/after: two (or more) ipsecgw builds measured alternately in the same run, so
# a change's effect is not confused with the shared machine's load changing.
#
#   perf/esp/ab.sh [ROUNDS=3] BINARY...        (root; ALGS, SIZES, DIRS narrow it)
#
# Same setup as perf/run.sh (static SA, net_pcap infinite_rx -> net_null, worker on
# lcore 1, hugepages when available); prints per binary, algorithm, size and direction
# the median over ROUNDS of Mpps per CPU-second of the worker, and its ratio to the
# first binary; then the best 0.25 s slice over all rounds (SLICE=0.25, telemetry_rate.py),
# which other tenants of a shared machine can only lower: the steadier figure when rounds
# swing. RAW=1 also prints every round's figure (to see a bimodal spread).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-3}; shift
(($# >= 1)) || { echo "usage: perf/esp/ab.sh [ROUNDS] BINARY..." >&2; exit 1; }
ALGS=${ALGS:-aes128gcm} SIZES=${SIZES:-64 1400} DIRS=${DIRS:-encap decap}
WINDOW=${WINDOW:-2} WARMUP=${WARMUP:-1}
PY=/usr/bin/python3
TOOL=perf/esp/esp_pcap.py
source perf/esp/config.sh
source perf/esp/lib.sh
[[ $(id -u) == 0 ]] || { echo "ab.sh: needs root" >&2; exit 1; }
bench_init
W=$BENCH_DIR
for size in $SIZES; do
    sa=(--size "$size") && [[ $size == imix ]] && sa=(--imix)
    "$PY" $TOOL plain "$W/plain-$size.pcap" "${sa[@]}" --count 64
    for alg in $ALGS; do
        "$PY" $TOOL esp "$W/esp-$alg-$size.pcap" --alg "$alg" --key "$(esp_key "$alg" 0)" --spi "$ESP_SPI_IN" "${sa[@]}" --count 64
    done
done
gw_start() { # BINARY DIR ALG WINDOW PREFIX IN
    local bin=$1 dir=$2 alg=$3 window=$4 prefix=$5 in=$6
    esp_config "$W/gw-$prefix.toml" "$dir" "$alg" 0 "$window" -l 0,1 --no-pci "${BENCH_MEM[@]}" --file-prefix "$prefix" \
        "--vdev=net_pcap0,rx_pcap=$in,infinite_rx=1" --vdev=net_null0,no-rx=1
    exec "$bin" run --config "$W/gw-$prefix.toml" --busy-poll "${ESP_NEIGHBORS[@]}"
}
declare -A R B
for ((r = 0; r < ROUNDS; r++)); do
    for alg in $ALGS; do for size in $SIZES; do for dir in $DIRS; do
        for ((b = 1; b <= $#; b++)); do
            bin=${!b} p=pe-ab-$$-$r-$b
            if [[ $dir == encap ]]; then in=$W/plain-$size.pcap win=1024; else in=$W/esp-$alg-$size.pcap win=0; fi
            read -r _ cpu best <<<"$(bench_measure ab "$p" gw_start "$bin" $dir "$alg" $win "$p" "$in")"
            R[$alg,$size,$dir,$b]+="$cpu "
            B[$alg,$size,$dir,$b]+="$best "
        done
    done; done; done
done
echo "ESP gateway A/B, $ROUNDS rounds alternating, $BENCH_MEMNOTE; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), load $(cut -d' ' -f1-3 /proc/loadavg)"
for ((b = 1; b <= $#; b++)); do echo "  [$b] ${!b}"; done
printf '%-18s %-5s %-5s' alg frame dir
for ((b = 1; b <= $#; b++)); do printf ' %10s' "[$b] Mpps/CPU"; done
for ((b = 2; b <= $#; b++)); do printf ' %8s' "[$b]/[1]"; done
for ((b = 1; b <= $#; b++)); do printf ' %10s' "[$b] best"; done
for ((b = 2; b <= $#; b++)); do printf ' %8s' "[$b]/[1]"; done
echo
# columns STAT ARRAY KEY N: STAT (median|highest) of each binary's figures ARRAY[KEY,b] in
# Mpps, then each over the first binary's
columns() {
    local stat=$1 key=$3 n=$4 b base
    local -n figs=$2
    base=$($stat <<<"${figs[$key,1]}")
    for ((b = 1; b <= n; b++)); do printf ' %10.2f' "$($stat <<<"${figs[$key,$b]}" | awk '{ print $1 / 1e6 }')"; done
    for ((b = 2; b <= n; b++)); do printf ' %8.2f' "$($stat <<<"${figs[$key,$b]}" | awk -v z="$base" '{ print (z > 0 ? $1 / z : 0) }')"; done
}
for alg in $ALGS; do for size in $SIZES; do for dir in $DIRS; do
    printf '%-18s %-5s %-5s' "$alg" "$size" "$dir"
    columns median R "$alg,$size,$dir" $#
    columns highest B "$alg,$size,$dir" $#
    echo
    if [[ -n ${RAW:-} ]]; then
        for ((b = 1; b <= $#; b++)); do
            echo "    [$b] rounds:$(tr ' ' '\n' <<<"${R[$alg,$size,$dir,$b]}" | grep . | awk '{ printf " %.2f", $1 / 1e6 }')," \
                "best slices:$(tr ' ' '\n' <<<"${B[$alg,$size,$dir,$b]}" | grep . | awk '{ printf " %.2f", $1 / 1e6 }')"
        done
    fi
done; done; done
