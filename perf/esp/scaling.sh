#!/usr/bin/env bash
# Two worker cores against one, and against what the machine itself gives two cores.
#
#   perf/esp/scaling.sh [ROUNDS=3] [BINARY=target/release/ipsecgw]     (root; ALGS, SIZES, DIRS)
#
# Per algorithm, size and direction, alternating in each round (perf/run.sh's setup:
# static SA, net_pcap infinite_rx -> net_null, hugepages when available):
#   one    one gateway, one worker (lcore 1 on CPU 1);
#   two    one gateway, two workers (lcores 1 and 2 on CPUs 0 and 1, the main lcore beside
#          worker 1; one infinite rx queue each): encap sends the same plaintext to both,
#          all for one SA: with [dpdk].encrypt = "owner" (the default) one worker encrypts
#          it and the other hands it its plaintext, with ESP_ENCRYPT=any-worker both
#          encrypt (sequence numbers reserved per burst with one atomic add); decap gives
#          each worker ESP of its own SA, which it owns;
#   pair   two one-worker gateways at once, workers on CPUs 1 and 0: nothing shared in
#          software, so what they lose against `one` is the machine's (a VM's vCPUs on
#          sibling hyperthreads, shared caches and memory bandwidth, other tenants);
#   io     per size, dpdk-testpmd io forwarding of the plaintext on the same vdevs with one
#          core and with two (two rx queues, lcores as `two`): the vdevs' own cost of a
#          second queue (net_null keeps its queues' counters side by side, each burst's
#          atomic add on a line both cores write).
# Figures: best 0.25 s slice over the rounds of Mpps per CPU-second of the workers (for
# `pair` the two gateways' slices added and divided by their CPU time: their mean), and
# two / one, pair / one. `two` scales as well as the machine allows when two / one is
# close to pair / one.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-3} BIN=${2:-target/release/ipsecgw}
ALGS=${ALGS:-aes128gcm} SIZES=${SIZES:-64 1400} DIRS=${DIRS:-encap decap}
WINDOW=${WINDOW:-2} WARMUP=${WARMUP:-1}
source perf/esp/config.sh
source perf/esp/lib.sh
bench_setup scaling.sh "$BIN"
esp_pcaps "$W" "$ESP_SPI_IN" "$ESP_SPI_IN2"

# gw_start DIR ALG PREFIX LCORES IN...: a gateway with one worker and rx queue per IN
gw_start() {
    local win=1024 && [[ $1 == decap ]] && win=0
    esp_gw_exec "$BIN" "$1" "$2" $win "$W/gw-$3.toml" "$4" "${BENCH_MEM[@]}" --file-prefix "$3" -- "${@:5}"
}
# Best-slice figure of a CPU-second rate line "<wall> <per CPU-s> <best slice>".
best() { awk '{ print $3 }'; }

# io_start LCORES CORES IN...: dpdk-testpmd io forwarding, one rx queue per IN
io_start() {
    local lcores=$1 cores=$2 prefix=$3 rx="" f; shift 3
    for f in "$@"; do rx+="rx_pcap=$f,"; done
    exec dpdk-testpmd --lcores "$lcores" --no-pci "${BENCH_MEM[@]}" --file-prefix "$prefix" \
        --vdev="net_pcap0,${rx}infinite_rx=1" --vdev=net_null0,no-rx=1 \
        -- --forward-mode=io --nb-cores="$cores" --rxq="$cores" --txq="$cores" --burst=32 --total-num-mbufs=32768 --stats-period 60
}
command -v dpdk-testpmd >/dev/null || { apt-get update -qq && apt-get install -y -qq dpdk >&2; }

declare -A F
for ((r = 0; r < ROUNDS; r++)); do
    for size in $SIZES; do
        p=pe-sc-$$-$r-io in=$W/plain-$size.pcap
        F[$size,io1]+="$(bench_measure io1 "$p-1" io_start 0@0,1@1 1 "$p-1" "$in" | best) "
        F[$size,io2]+="$(THREADS=2 bench_measure io2 "$p-2" io_start 0@0,1@0,2@1 2 "$p-2" "$in" "$in" | best) "
    done
    for alg in $ALGS; do for size in $SIZES; do for dir in $DIRS; do
        if [[ $dir == encap ]]; then
            in1=$W/plain-$size.pcap in2=$W/plain-$size.pcap
        else
            in1=$W/esp-$alg-$size-$ESP_SPI_IN.pcap in2=$W/esp-$alg-$size-$ESP_SPI_IN2.pcap
        fi
        k=$alg,$size,$dir p=pe-sc-$$-$r
        F[$k,one]+="$(bench_measure one "$p-1" gw_start "$dir" "$alg" "$p-1" 0@0,1@1 "$in1" | best) "
        F[$k,two]+="$(THREADS=2 bench_measure two "$p-2" gw_start "$dir" "$alg" "$p-2" 0@0,1@0,2@1 "$in1" "$in2" | best) "
        # pair: the second gateway (worker on CPU 0) measured beside the first. Each has
        # one SA, so both get the first SA's traffic.
        bench_start pairb gw_start "$dir" "$alg" "$p-b" 0@1,1@0 "$in1"
        pb=$BENCH_PID
        bench_rate "$p-b" "$pb" >"$W/pair-b.rate" &
        mb=$!
        a=$(bench_measure paira "$p-a" gw_start "$dir" "$alg" "$p-a" 0@0,1@1 "$in1" | best)
        wait "$mb" && awk '$3 > 0 { ok = 1 } END { exit !ok }' "$W/pair-b.rate" ||
            { echo "scaling.sh: the pair's second gateway forwarded nothing: $(tail -3 "$W/pairb.log")" >&2; exit 1; }
        bench_stop "$pb" "$p-b"
        F[$k,pair]+="$(awk -v a="$a" '{ print (a + $3) / 2 }' "$W/pair-b.rate") "
    done; done; done
done
echo "ESP gateway, two workers against one, $ROUNDS rounds, $BENCH_MEMNOTE; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "  $BIN; [dpdk].encrypt = \"${ESP_ENCRYPT:-owner}\"; best ${SLICE:-0.25}s slice, Mpps per CPU-second of the workers"
printf '%-18s %-5s %-5s %8s %8s %8s %9s %10s\n' alg frame dir one two pair "two/one" "pair/one"
for size in $SIZES; do
    o=$(highest <<<"${F[$size,io1]}") t=$(highest <<<"${F[$size,io2]}")
    awk -v s="$size" -v o="$o" -v t="$t" 'BEGIN {
        printf "%-18s %-5s %-5s %8.2f %8.2f %8s %9.2f %10s\n", "testpmd io", s, "-", o / 1e6, t / 1e6, "-", (o > 0 ? t / o : 0), "-" }'
done
for alg in $ALGS; do for size in $SIZES; do for dir in $DIRS; do
    k=$alg,$size,$dir
    o=$(highest <<<"${F[$k,one]}") t=$(highest <<<"${F[$k,two]}") q=$(highest <<<"${F[$k,pair]}")
    awk -v a="$alg" -v s="$size" -v d="$dir" -v o="$o" -v t="$t" -v q="$q" 'BEGIN {
        printf "%-18s %-5s %-5s %8.2f %8.2f %8.2f %9.2f %10.2f\n", a, s, d, o / 1e6, t / 1e6, q / 1e6, (o > 0 ? t / o : 0), (o > 0 ? q / o : 0) }'
done; done; done
