#!/usr/bin/env bash
# Instructions per packet of the ESP worker (perf/run.sh's gateway and traffic), counted
# by valgrind's callgrind: deterministic, so it can compare builds whose difference is
# too small for the timing harness on a noisy machine (perf/README.md, "Instructions per
# packet (callgrind)").
#
#   perf/esp/insns.sh DIR SIZE [BIN...]
#       DIR encap|decap, SIZE the plaintext frame size (64, 512, 1400, ...)
#       BIN  worker_insns binaries (perf/src/bin/worker_insns.rs) built from the commits
#            to compare; none: build this tree's (cargo build --release -p perf --bin
#            worker_insns, under nice) and use it. With two, prints both and B/A.
#   env: BURSTS=100 (bursts of 32 frames), ALG=aes128gcm, TOP=15 (functions listed),
#        ESP_UDP=1 / ESP_V6=1 (the tunnel's outer header, as in perf/esp/config.sh; read by
#        worker_insns, so a binary older than them measures raw ESP over IPv4 whatever they say),
#        ESP_TUNNELS=N (N tunnels taking the 64 flows in turn, as in config.sh; likewise
#        ignored by a binary older than it, which measures one tunnel),
#        KEEP=DIR (keep the callgrind.out files, for callgrind_annotate --auto=yes),
#        INSNS_LOCK=/tmp/ipsecgw-perf.lock (taken around each valgrind run so it never
#        runs during a timing run; "none" to skip: do not wrap this script in flock on
#        the same file, it would wait for itself),
#        GW=1: count the real gateway instead (below); BIN are then ipsecgw binaries
#        (none: this tree's target/release/ipsecgw, built if missing), SECS=8.
#
# GW=1 runs `ipsecgw run --busy-poll` under callgrind exactly as perf/run.sh does
# (static SA, net_pcap infinite_rx -> net_null, DPDK mbufs, --no-huge) for SECS
# seconds of its worker loop, and divides the instructions of the worker thread's
# loop (ipsecgw::worker::run: rx burst, processing, tx burst) by the packets the SA
# counted at exit. This is the path perf/run.sh times, with the mbuf's Packet impl
# and the DPDK I/O (the column "DPDK"); worker_insns runs the worker on heap
# packets, where inlining differs. Its checks are worker_insns' (none here). Root;
# ~20 s per binary (valgrind runs the gateway ~100x slower; the packets vary from
# run to run, the count per packet by ~0.1%).
#
# Time: ~5-10 s per binary at BURSTS=100 on the 2-core EPYC (valgrind starts ~1 s, the
# setup and the checks run under it too, the measured loop ~50x slower than native),
# plus the wait for the lock and, without BIN, the build (~1 min after a dataplane change).
#
# Counted: only perf::worker_traffic::measured_bursts (valgrind --collect-atstart=no
# --toggle-collect), i.e. the worker's quiescent point and Worker::process per burst, on
# frames copied before it: not the setup, the copies or the checks. Divided by the
# packets (BURSTS x 32). One-time work inside the loop (the first burst) is spread over
# BURSTS bursts: ~0.1 instructions per packet at 100.
# Columns: total; aead = libIPSec_MB + ring + aesni-gcm; libc = memcpy/memset called by our code;
# ours = total - aead (our crates, the Rust library code inlined into them, and libc).
# Under valgrind the CPU looks like a Haswell (AVX2, AES-NI, PCLMULQDQ, no VAES, no
# AVX-512), so the AEAD libraries take that path, whatever the host: their counts are
# for that code, comparable between builds but not the native path's.
set -euo pipefail
# Binaries named relative to the caller's directory stay valid after the cd below.
args=()
for a in "$@"; do if [[ -e $a ]]; then args+=("$(realpath "$a")"); else args+=("$a"); fi; done
set -- "${args[@]}"
cd "$(dirname "$0")/../.."

usage() { echo "usage: [GW=1] perf/esp/insns.sh encap|decap SIZE [BIN...]" >&2; exit 2; }
(($# >= 2)) || usage
dir=$1 size=$2; shift 2
[[ $dir == encap || $dir == decap ]] || usage
[[ $size =~ ^[0-9]+$ ]] || usage
BURSTS=${BURSTS:-100} ALG=${ALG:-aes128gcm} TOP=${TOP:-15}
lock=${INSNS_LOCK:-/tmp/ipsecgw-perf.lock}

if ! command -v valgrind >/dev/null; then
    echo "insns.sh: installing valgrind" >&2
    apt-get update -qq && apt-get install -y -qq valgrind >/dev/null
fi

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
bins=("$@")
if [[ ${GW:-0} == 1 ]]; then
    [[ $(id -u) == 0 ]] || { echo "insns.sh: GW=1 needs root (DPDK)" >&2; exit 1; }
    ((${#bins[@]} > 0)) || bins=("$CARGO_TARGET_DIR/release/ipsecgw")
    [[ -x ${bins[0]} ]] || nice cargo build --release -q -p ipsecgw
    toggle='ipsecgw::worker::run'
    # No hugepages: valgrind and hugetlbfs mappings do not mix well, and the counts
    # do not depend on the page size.
    BENCH_PAGES=0
    source perf/esp/config.sh
    source perf/esp/lib.sh
    bench_init
    work=$BENCH_DIR
    SIZES=$size ALGS=$ALG esp_pcaps "$work" "$ESP_SPI_IN"
else
    if ((${#bins[@]} == 0)); then
        nice cargo build --release -q -p perf --bin worker_insns
        bins=("$CARGO_TARGET_DIR/release/worker_insns")
    fi
    toggle='perf::worker_traffic::measured_bursts'
    work=$(mktemp -d /tmp/ipsecgw-insns.XXXXXX)
    trap 'rm -rf "$work"' EXIT
fi
((${#bins[@]} <= 2)) || { echo "insns.sh: at most two binaries" >&2; exit 2; }

# The gateway under callgrind for SECS seconds of forwarding (GW=1): prints the
# packets its SA(s) counted (out_pkts for encap, in_pkts for decap).
gw_run() {
    local i=$1 bin=$2 out=$3 log=$work/run.$i.log vg=$work/vg.$i in window=1024 pid col
    # esp_gw_exec execs its BIN with ipsecgw's arguments: this wrapper puts valgrind
    # in front. --fair-sched: a SIGINT reaches the main thread within seconds.
    printf '#!/bin/sh\nexec valgrind --tool=callgrind --fair-sched=yes --collect-atstart=no --toggle-collect=%s --callgrind-out-file=%s %s "$@"\n' \
        "$toggle" "$out" "$bin" >"$vg"
    chmod +x "$vg"
    if [[ $dir == encap ]]; then
        in=$work/plain-$size.pcap col=6
    else
        in=$work/esp-$ALG-$size-$ESP_SPI_IN.pcap window=0 col=3 # the looped pcap repeats sequence numbers
    fi
    (esp_gw_exec "$vg" "$dir" "$ALG" "$window" "$work/gw.$i.toml" 0@0,1@1 "${BENCH_MEM[@]}" --file-prefix "insns-$$-$i" -- "$in") \
        </dev/null >"$log" 2>&1 &
    pid=$!
    # This runs in $(...): the EXIT trap's BENCH_PIDS does not see $pid, so every
    # way out stops it here.
    if ! bench_wait_log "$log" "ESP worker" "$pid" 600 >&2; then
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        rm -rf -- "/var/run/dpdk/insns-$$-$i"
        return 1
    fi
    sleep "${SECS:-8}"
    kill -INT "$pid"
    wait "$pid" || true
    rm -rf -- "/var/run/dpdk/insns-$$-$i"
    # The per-SA table at exit: "sa spi_in in_pkts in_bytes in_drops out_pkts ...".
    awk -v c="$col" '$1 == "sa" && $2 == "spi_in" { t = 1; next } t && NF < 8 { t = 0 } t { n += $c } END { print n + 0 }' "$log"
}

outs=() packets=()
for i in "${!bins[@]}"; do
    bin=${bins[$i]}
    [[ -x $bin ]] || { echo "insns.sh: $bin is not an executable" >&2; exit 2; }
    out=$work/callgrind.$i.out
    name=A; ((i == 0)) || name=B
    if [[ ${GW:-0} == 1 ]]; then
        if [[ $lock != none ]]; then exec 9>"$lock" && flock 9; fi
        n=$(gw_run "$i" "$bin" "$out") || { cat "$work/run.$i.log" >&2; echo "insns.sh: $bin $dir $size failed" >&2; exit 1; }
        if [[ $lock != none ]]; then flock -u 9; fi
        ((n > 0)) || { tail -20 "$work/run.$i.log" >&2; echo "insns.sh: $bin counted no packets" >&2; exit 1; }
        packets+=("$n")
        echo "# $name = $bin: the gateway (net_pcap infinite_rx -> net_null, mbufs), $dir $ALG $size B, $n packets in ${SECS:-8} s under valgrind"
    else
        run=(valgrind --tool=callgrind --collect-atstart=no --toggle-collect="$toggle"
            --callgrind-out-file="$out" "$bin" "$dir" "$size" "$BURSTS" "$ALG")
        if [[ $lock != none ]]; then run=(flock "$lock" "${run[@]}"); fi
        if ! "${run[@]}" >"$work/run.$i.log" 2>&1; then
            cat "$work/run.$i.log" >&2
            echo "insns.sh: $bin $dir $size failed (its check or valgrind)" >&2
            exit 1
        fi
        packets+=($((BURSTS * 32)))
        echo "# $name = $bin: $(sed -n 's/^worker_insns: //p' "$work/run.$i.log")"
    fi
    outs+=("$out")
    if [[ -n ${KEEP:-} ]]; then mkdir -p "$KEEP" && cp "$out" "$KEEP/callgrind.$dir.$size.$(basename "$bin").out"; fi
done

python3 perf/esp/callgrind_sum.py "$(IFS=,; echo "${packets[*]}")" "$TOP" "${outs[@]}" >"$work/sum"
# Guard against a toggle that matched nothing (a renamed function): no count at all.
if ! awk '$1 == "total0" && $2 > 0 { ok = 1 } END { exit !ok }' "$work/sum"; then
    echo "insns.sh: nothing counted: is $toggle still a function of its own?" >&2
    exit 1
fi

if [[ ${GW:-0} == 1 ]]; then
    echo "# instructions per packet, $dir $ALG $size B, the gateway's worker loop (valgrind callgrind, Ir)"
else
    echo "# instructions per packet, $dir $ALG $size B, $BURSTS bursts x 32 frames (valgrind callgrind, Ir)"
fi
awk -v n="${#outs[@]}" -v a="$(basename "${bins[0]}")" -v b="$(basename "${bins[1]:-}")" '
    /^(total|aead|dpdk|libc|ours)[01] / { k = substr($1, 1, length($1) - 1); v[k, substr($1, length($1))] = $2; next }
    /^fn / { f[++nf] = $0; next }
    END {
        split("total aead dpdk libc ours", keys, " ")
        label["total"] = "total"; label["aead"] = "AEAD (ipsec-mb, ring, aesni)"
        label["dpdk"] = "DPDK (librte_*, ld.so TLS)"
        label["libc"] = "  libc (memcpy, memset)"; label["ours"] = "ours (total - AEAD - DPDK)"
        v["ours", 0] += v["libc", 0]; v["ours", 1] += v["libc", 1]
        if (n == 1) printf "| %-32s | %10s |\n|---|---:|\n", "", a
        else printf "| %-32s | %10s | %10s | B/A |\n|---|---:|---:|---:|\n", "", "A " a, "B " b
        for (i = 1; i <= 5; i++) {
            if (keys[i] == "dpdk" && v["dpdk", 0] == 0 && v["dpdk", 1] == 0) continue
            k = keys[i]
            if (n == 1) printf "| %-32s | %10.1f |\n", label[k], v[k, 0]
            else printf "| %-32s | %10.1f | %10.1f | %.4f |\n", label[k], v[k, 0], v[k, 1], v[k, 0] ? v[k, 1] / v[k, 0] : 0
        }
        printf "\n# top functions, self instructions per packet\n"
        for (i = 1; i <= nf; i++) {
            split(f[i], w, " ")
            name = f[i]; sub(/^fn [^ ]+ /, "", name)
            if (n == 1) printf "%10.1f  %s\n", w[2], name
            else { sub(/^[^ ]+ /, "", name); printf "%10.1f %10.1f  %s\n", w[2], w[3], name }
        }
    }' "$work/sum"
