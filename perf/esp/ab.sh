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
# WORKERS="1 2" also measures each with two worker lcores (lcores 1 and 2 on CPUs 0 and 1,
# the main lcore beside worker 1; net_pcap with one infinite rx queue per worker): encap
# sends the same plaintext to both, so both encrypt for one SA; decap gives each worker
# ESP of its own SA (a second SPI), which it owns. Its figures are Mpps per CPU-second of
# the two worker threads together, so ideal scaling keeps them at the one-worker figure.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-3}; shift
(($# >= 1)) || { echo "usage: perf/esp/ab.sh [ROUNDS] BINARY..." >&2; exit 1; }
ALGS=${ALGS:-aes128gcm} SIZES=${SIZES:-64 1400} DIRS=${DIRS:-encap decap} WORKERS=${WORKERS:-1}
WINDOW=${WINDOW:-2} WARMUP=${WARMUP:-1}
source perf/esp/config.sh
source perf/esp/lib.sh
[[ $(id -u) == 0 ]] || { echo "ab.sh: needs root" >&2; exit 1; }
bench_init
W=$BENCH_DIR
spis=("$ESP_SPI_IN") && [[ " $WORKERS " == *" 2 "* ]] && spis+=("$ESP_SPI_IN2")
esp_pcaps "$W" "${spis[@]}"
gw_start() { # BINARY DIR ALG WINDOW PREFIX WORKERS IN...: one worker and rx queue per IN
    local lcores=0@0,1@1 && (($6 == 2)) && lcores=0@0,1@0,2@1
    esp_gw_exec "$1" "$2" "$3" "$4" "$W/gw-$5.toml" $lcores "${BENCH_MEM[@]}" --file-prefix "$5" -- "${@:7}"
}
declare -A R B
for ((r = 0; r < ROUNDS; r++)); do
    for alg in $ALGS; do for size in $SIZES; do for dir in $DIRS; do for w in $WORKERS; do
        for ((b = 1; b <= $#; b++)); do
            bin=${!b} p=pe-ab-$$-$r-$b
            if [[ $dir == encap ]]; then
                in=("$W/plain-$size.pcap") win=1024
                ((w == 1)) || in+=("$W/plain-$size.pcap")
            else
                in=("$W/esp-$alg-$size-$ESP_SPI_IN.pcap") win=0
                ((w == 1)) || in+=("$W/esp-$alg-$size-$ESP_SPI_IN2.pcap")
            fi
            read -r _ cpu best <<<"$(THREADS=$w bench_measure ab "$p" gw_start "$bin" $dir "$alg" $win "$p" "$w" "${in[@]}")"
            R[$alg,$size,$dir$w,$b]+="$cpu "
            B[$alg,$size,$dir$w,$b]+="$best "
        done
    done; done; done; done
done
echo "ESP gateway A/B, $ROUNDS rounds alternating, $BENCH_MEMNOTE; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), load $(cut -d' ' -f1-3 /proc/loadavg)"
for ((b = 1; b <= $#; b++)); do echo "  [$b] ${!b}"; done
printf '%-18s %-5s %-7s' alg frame dir
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
for alg in $ALGS; do for size in $SIZES; do for dir in $DIRS; do for w in $WORKERS; do
    label=$dir && ((w == 1)) || label+=" x$w"
    printf '%-18s %-5s %-7s' "$alg" "$size" "$label"
    columns median R "$alg,$size,$dir$w" $#
    columns highest B "$alg,$size,$dir$w" $#
    echo
    if [[ -n ${RAW:-} ]]; then
        for ((b = 1; b <= $#; b++)); do
            echo "    [$b] rounds:$(tr ' ' '\n' <<<"${R[$alg,$size,$dir$w,$b]}" | grep . | awk '{ printf " %.2f", $1 / 1e6 }')," \
                "best slices:$(tr ' ' '\n' <<<"${B[$alg,$size,$dir$w,$b]}" | grep . | awk '{ printf " %.2f", $1 / 1e6 }')"
        done
    fi
done; done; done; done
