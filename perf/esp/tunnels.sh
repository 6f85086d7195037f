#!/usr/bin/env bash
# One worker, many tunnels: what a burst spread over several SAs costs against the same
# traffic on one SA.
#
#   perf/esp/tunnels.sh [ROUNDS=3] [BINARY=target/release/ipsecgw]     (root; ALGS, SIZES, DIRS,
#                                                                       TUNNELS="1 4 16 64")
#
# perf/run.sh's setup (static SAs, net_pcap infinite_rx -> net_null, worker on lcore 1),
# with perf/esp/config.sh's ESP_TUNNELS=N for each N of TUNNELS: the pcap's 64 flows
# belong to N tunnels in turn (flow j to tunnel j % N, each tunnel its own SPIs and keys),
# so a 32-packet burst carries packets of min(N, 32) SAs, consecutive packets of different
# ones: the hub of many spokes, where one SA per burst is the benchmark's special case.
# Alternating the N in each round; figures: best 0.25 s slice over the rounds of Mpps per
# CPU-second of the worker, and each over the first N's (N = 1 by default: the same 64
# /32 selectors on one SA, so the SPD is the same size).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-3} BIN=${2:-target/release/ipsecgw}
ALGS=${ALGS:-aes128gcm} SIZES=${SIZES:-64 1400} DIRS=${DIRS:-encap decap} TUNNELS=${TUNNELS:-1 4 16 64}
WINDOW=${WINDOW:-2} WARMUP=${WARMUP:-1}
source perf/esp/config.sh
source perf/esp/lib.sh
bench_setup tunnels.sh "$BIN"
for n in $TUNNELS; do
    mkdir -p "$W/t$n"
    ESP_TUNNELS=$n esp_pcaps "$W/t$n" "$ESP_SPI_IN"
done

# gw_start N DIR ALG PREFIX IN: a gateway of N tunnels with one worker
gw_start() {
    local win=1024 && [[ $2 == decap ]] && win=0 # the looped pcap repeats sequence numbers
    ESP_TUNNELS=$1 esp_gw_exec "$BIN" "$2" "$3" $win "$W/gw-$4.toml" 0@0,1@1 "${BENCH_MEM[@]}" --file-prefix "$4" -- "$5"
}

declare -A F
for ((r = 0; r < ROUNDS; r++)); do
    for alg in $ALGS; do for size in $SIZES; do for dir in $DIRS; do for n in $TUNNELS; do
        if [[ $dir == encap ]]; then in=$W/t$n/plain-$size.pcap; else in=$W/t$n/esp-$alg-$size-$ESP_SPI_IN.pcap; fi
        p=pe-tun-$$-$r-$n
        F[$alg,$size,$dir,$n]+="$(bench_measure "tun$n" "$p" gw_start "$n" "$dir" "$alg" "$p" "$in" | awk '{ print $3 }') "
    done; done; done; done
done
echo "ESP gateway, one worker, N tunnels taking the flows in turn, $ROUNDS rounds, $BENCH_MEMNOTE; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "  $BIN; best ${SLICE:-0.25}s slice, Mpps per CPU-second of the worker (x the first N's figure)"
printf '%-18s %-5s %-5s' alg frame dir
for n in $TUNNELS; do printf ' %15s' "N=$n"; done
echo
for alg in $ALGS; do for size in $SIZES; do for dir in $DIRS; do
    printf '%-18s %-5s %-5s' "$alg" "$size" "$dir"
    base=$(highest <<<"${F[$alg,$size,$dir,${TUNNELS%% *}]}")
    for n in $TUNNELS; do
        awk -v f="$(highest <<<"${F[$alg,$size,$dir,$n]}")" -v b="$base" 'BEGIN { printf " %7.2f (%4.2f)", f / 1e6, (b > 0 ? f / b : 0) }'
    done
    echo
done; done; done
