#!/usr/bin/env bash
# Where the ESP worker's time goes: run `ipsecgw run --busy-poll` exactly as perf/run.sh
# does (static SA, net_pcap infinite_rx -> net_null, worker on lcore 1) and sample the
# worker thread with `perf record -e cpu-clock` (a software timer: works in VMs without
# hardware counters). Prints the flat profile (self time per symbol) and, with
# CALLERS=1, the call graph.
#
#   perf/esp/profile.sh DIR ALG SIZE [SECONDS=5]     (root; DIR encap|decap, SIZE 64..1400|imix)
#   e.g. perf/esp/profile.sh encap aes128gcm 1400
#   KEEP=/tmp/x.data keeps the samples (perf annotate -i /tmp/x.data SYMBOL)
#   ESP_UDP=1 ESP in UDP 4500 (perf/esp/config.sh)
#   ALLOCS=1 also counts malloc/calloc/realloc/posix_memalign/aligned_alloc calls of the worker
#
# Needs linux-perf (`apt-get install -y linux-perf`) and a release build with symbols
# (the workspace's release profile keeps debug = 1).
set -euo pipefail
cd "$(dirname "$0")/../.."
DIR=${1:?encap|decap} ALG=${2:?aes128gcm|aes256gcm|chacha20poly1305} SIZE=${3:?64|512|1400|imix} SECS=${4:-5}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
IPSECGW=${IPSECGW:-$CARGO_TARGET_DIR/release/ipsecgw}
source perf/esp/config.sh
source perf/esp/lib.sh
[[ $(id -u) == 0 ]] || { echo "profile.sh: needs root" >&2; exit 1; }
command -v perf >/dev/null || { echo "profile.sh: install linux-perf first" >&2; exit 1; }
[[ -x $IPSECGW ]] || { echo "profile.sh: no $IPSECGW (cargo build --release -p ipsecgw)" >&2; exit 1; }

bench_init
W=$BENCH_DIR
SIZES=$SIZE ALGS=$ALG esp_pcaps "$W" "$ESP_SPI_IN"
if [[ $DIR == encap ]]; then
    in=$W/plain-$SIZE.pcap window=1024
else
    in=$W/esp-$ALG-$SIZE-$ESP_SPI_IN.pcap window=0 # the looped pcap repeats sequence numbers
fi
prefix=pe-prof-$$
# The worker on lcore 1 (CPU 1); esp_gw_exec execs ipsecgw in the subshell, so $! is its pid.
(esp_gw_exec "$IPSECGW" "$DIR" "$ALG" "$window" "$W/gw.toml" 0@0,1@1 "${BENCH_MEM[@]}" --file-prefix "$prefix" -- "$in") \
    </dev/null >"$W/gw.log" 2>&1 &
pid=$!
BENCH_PIDS+=("$pid")
bench_wait_log "$W/gw.log" "ESP worker" "$pid"
sleep 1
# The busy-polling worker is the thread that gains the most CPU time over half a second.
ticks() { for t in /proc/"$pid"/task/*; do echo "${t##*/} $(awk '{ print $14 + $15 }' "$t/stat" 2>/dev/null)"; done; }
before=$(ticks); sleep 0.5
tid=$(join <(sort <<<"$before") <(ticks | sort) | awk '$3 - $2 >= best { best = $3 - $2; tid = $1 } END { print tid }')
[[ -n $tid ]] || { echo "profile.sh: no threads in $pid" >&2; exit 1; }
perf record -q -e cpu-clock -F 4999 -g -t "$tid" -o "$W/perf.data" -- sleep "$SECS" 2>/dev/null
if [[ ${ALLOCS:-0} == 1 ]]; then
    # The worker must not allocate (DESIGN.md): count libc allocator calls on its thread
    # with uprobes (added here, removed again below; existing ones are left alone).
    libc=$(ldd "$IPSECGW" | awk '$1 ~ /^libc\.so/ { print $3 }')
    added=() events=()
    for fn in malloc calloc realloc posix_memalign aligned_alloc; do
        if ! perf probe -l 2>/dev/null | grep -q "probe_libc:$fn "; then
            perf probe -q -x "$libc" --add "$fn" 2>/dev/null && added+=("probe_libc:$fn")
        fi
        perf probe -l 2>/dev/null | grep -q "probe_libc:$fn " && events+=("probe_libc:$fn")
    done
    ev=$(IFS=,; echo "${events[*]}")
    echo "== allocator calls on the worker thread in ${SECS}s of forwarding ($ev):"
    perf stat -x, -e "$ev" -t "$tid" -- sleep "$SECS" 2>&1 | awk -F, '{ printf "   %-28s %s\n", $3, $1 }'
    for e in "${added[@]}"; do perf probe -q -d "$e" 2>/dev/null || true; done
fi
kill -INT "$pid"
wait "$pid" || true
BENCH_PIDS=()
rm -rf -- "/var/run/dpdk/$prefix"
echo "== $DIR $ALG $SIZE B: self time per symbol (worker thread, ${SECS}s)"
perf report -i "$W/perf.data" --no-children --sort symbol --stdio -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -${TOPN:-45} || true
perf report -i "$W/perf.data" --no-children --sort dso --stdio -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -12 || true
if [[ -n ${KEEP:-} ]]; then cp "$W/perf.data" "$KEEP"; echo "perf data kept in $KEEP"; fi
if [[ ${CALLERS:-0} == 1 ]]; then
    perf report -i "$W/perf.data" --children --sort symbol --stdio -g caller,0.5,callee --percent-limit 2 2>/dev/null | head -200 || true
fi
