#!/usr/bin/env bash
# DPDK's examples/ipsec-secgw (22.11) as the baseline of the issue-8 benchmark, on the same
# vdevs and core as ipsecgw (perf/README.md "DPDK ipsec-secgw baseline"):
#
#   net_pcap0,rx_pcap=IN,infinite_rx=1 --> ipsec-secgw, 1 lcore, cpu-crypto --> net_null0,no-rx=1
#
# One tunnel-mode SA (SPI 7, 198.51.100.1 <-> 198.51.100.2, inner 10.1.0.0/16 -> 10.2.0.0/16),
# replay window 0 (ipsec-secgw's default: anti-replay off, so a looped pcap of ESP frames
# with sequence numbers 1..64 is accepted forever). Before timing, one finite run into
# net_pcap tx_pcap is checked by scapy (perf/secgw/pcap.py). The rate is port 1's opackets
# from DPDK telemetry over WINDOW s after WARMUP s (perf/forward/telemetry_rate.py).
#
#   perf/secgw/run.sh --dir outbound|inbound --size BYTES|imix [--alg aes128gcm|aes256gcm|chacha20poly1305]
#                     [--window S=3] [--warmup S=1] [--rounds N=1] [--slice S=0.25] [--lcore N=1]
#                     [--cryptodev VDEV] [--huge-dir MOUNT | --no-huge] [--no-check] [--keep DIR]
#
# prints on stdout one line per call:
#   secgw DIR SIZE MPPS Mpps CPU_MPPS Mpps/CPU-s ALG CRYPTODEV best-Ss-slice BEST_MPPS Mpps/CPU-s
# (MPPS: best wall rate over the rounds; CPU_MPPS: median of packets per CPU-second of the
# worker thread; BEST_MPPS: the best SLICE-second slice of any round, per CPU-second,
# the figure least touched by other tenants of the machine: telemetry_rate.py). SIZE is the plaintext frame (Ethernet, no FCS): the input frame outbound,
# the inner/output frame inbound; "imix" = 7:4:1 of 64/570/1400 B (perf/secgw/pcap.py).
# Everything else goes to stderr. Root needed (DPDK, hugepages, apt-get for the first build).
#
# --huge-dir MOUNT: use the caller's hugetlbfs mount (no pages reserved here); by default
# 512 x 2 MiB pages are added on a private mount and given back at exit; --no-huge runs with
# --no-huge -m 1024 (25-30 % slower at 64 B). --keep DIR keeps the pcaps and config there
# (in.pcap: input, out.pcap: output of the check run, secgw.cfg: the rules, sa.txt: the SA).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3
DIR="" SIZE="" ALG=aes128gcm WINDOW=3 WARMUP=1 ROUNDS=1 SLICE=0.25 LCORE=1 CRYPTODEV="" HUGE_DIR="" NO_HUGE=0 CHECK=1 KEEP=""
PAGES=512

usage() { sed -n '12,16p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
while (($#)); do
    case $1 in
    --dir) DIR=$2; shift ;;
    --size) SIZE=$2; shift ;;
    --alg) ALG=$2; shift ;;
    --window) WINDOW=$2; shift ;;
    --warmup) WARMUP=$2; shift ;;
    --rounds) ROUNDS=$2; shift ;;
    --slice) SLICE=$2; shift ;;
    --lcore) LCORE=$2; shift ;;
    --cryptodev) CRYPTODEV=$2; shift ;;
    --huge-dir) HUGE_DIR=$2; shift ;;
    --no-huge) NO_HUGE=1 ;;
    --no-check) CHECK=0 ;;
    --keep) KEEP=$2; shift ;;
    -h | --help) usage ;;
    *) echo "secgw/run.sh: unknown argument $1" >&2; usage ;;
    esac
    shift
done
[[ $DIR == outbound || $DIR == inbound ]] || usage
[[ $SIZE == imix ]] || { [[ $SIZE =~ ^[0-9]+$ ]] && ((SIZE >= 64 && SIZE <= 1400)); } ||
    { echo "secgw/run.sh: --size 64..1400 or imix" >&2; exit 2; }
[[ $(id -u) == 0 ]] || { echo "secgw/run.sh: needs root (DPDK, hugepages)" >&2; exit 1; }

# Keys are key || 4-byte salt (RFC 4106 section 8.1, RFC 7634 section 2), as ipsec-secgw
# takes them. The chacha20_poly1305 PMD's cpu-crypto path dropped every packet in 22.11
# here, so ChaCha20-Poly1305 runs on aesni_mb (which serves all three algorithms).
case $ALG in
aes128gcm) SGW_ALG=aes-128-gcm KEYLEN=20 CRYPTODEV=${CRYPTODEV:-crypto_aesni_gcm0} ;;
aes256gcm) SGW_ALG=aes-256-gcm KEYLEN=36 CRYPTODEV=${CRYPTODEV:-crypto_aesni_gcm0} ;;
chacha20poly1305) SGW_ALG=chacha20-poly1305 KEYLEN=36 CRYPTODEV=${CRYPTODEV:-crypto_aesni_mb0} ;;
*) echo "secgw/run.sh: --alg aes128gcm|aes256gcm|chacha20poly1305" >&2; exit 2 ;;
esac
KEY=$(for ((i = 0; i < KEYLEN; i++)); do printf '%02x' $((0x11 * (i % 15 + 1) & 0xff)); done)

BIN=$("$HERE/build.sh")

WORK=$(mktemp -d /tmp/perf-secgw.XXXXXX)
PIDS=() PREFIXES=()
source "$HERE/../lib/hugepages.sh"
cleanup() {
    local p
    for p in "${PIDS[@]}"; do [[ -n $p ]] && stop "$p"; done
    for p in "${PREFIXES[@]}"; do rm -rf -- "/var/run/dpdk/$p"; done
    huge_release
    if [[ -n $KEEP ]] && mkdir -p "$KEEP"; then
        cp -- "$WORK"/in.pcap "$WORK"/secgw.cfg "$WORK"/sa.txt "$WORK"/out.pcap "$KEEP"/ 2>/dev/null || true
    fi
    rm -rf -- "$WORK"
}
# stop PID: SIGINT (ipsec-secgw closes its ports, flushing tx_pcap), SIGKILL after 10 s.
stop() {
    local pid=$1 i
    kill -INT "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
trap cleanup EXIT

if ((NO_HUGE)); then
    MEM=(--no-huge -m 1024) MEMNOTE="--no-huge"
elif [[ -n $HUGE_DIR ]]; then
    MEM=(--huge-dir "$HUGE_DIR" -m 512) MEMNOTE="hugepages on $HUGE_DIR"
else
    huge_reserve "$WORK" "$PAGES"
    MEM=("${HUGE_MEM[@]}") MEMNOTE=$HUGE_MEMNOTE
fi

# SA/SP/RT rules (perf/secgw/secgw.cfg.in). Outbound: plaintext on port 0 matches the SP, is sealed and routed on its
# outer destination to port 1. Inbound: ESP on port 0 (unprotected, -u 0x1) is opened, the
# inner packet checked against the inbound SP and routed on its destination to port 1.
# Each direction configures only its own SA: ipsec-secgw sets up an SA's crypto session
# on the lcores that poll a port of that direction, so a reverse SA without one fails.
KEYC=$(sed 's/../&:/g; s/:$//' <<<"$KEY")
if [[ $DIR == outbound ]]; then
    WAY=out TUNSRC=198.51.100.1 TUNDST=198.51.100.2 ROUTE=198.51.100.2/32 PORTS=(-p 0x3)
else
    WAY=in TUNSRC=198.51.100.2 TUNDST=198.51.100.1 ROUTE=10.2.0.0/16 PORTS=(-p 0x3 -u 0x1)
fi
sed -e "s|@WAY@|$WAY|g; s|@ALG@|$SGW_ALG|; s|@KEY@|$KEYC|; s|@TUNSRC@|$TUNSRC|; s|@TUNDST@|$TUNDST|; s|@ROUTE@|$ROUTE|" \
    -e "/^#/d" "$HERE/secgw.cfg.in" >"$WORK/secgw.cfg"
echo "spi 7 alg $ALG key||salt $KEY tunnel 198.51.100.1 <-> 198.51.100.2 inner 10.1.0.0/16 -> 10.2.0.0/16" >"$WORK/sa.txt"
N=$("$PY" "$HERE/pcap.py" gen "$DIR" "$SIZE" "$ALG" "$KEY" "$WORK/in.pcap")

# secgw NAME PORT1_VDEV [PCAP_ARGS]: start ipsec-secgw in the background; sets PID, PREFIX.
# One lcore (-l LCORE): it is the main lcore and runs the only poll loop, (0,0,LCORE); a
# second, idle main lcore would make the example want a TX queue per lcore on net_pcap.
secgw() {
    local name=$1 out=$2 rx=$3
    PREFIX=pf-sgw-$$-$name
    PREFIXES+=("$PREFIX")
    # nice -n -10: the machine is shared; perf/forward/run.sh gives its forwarders the same.
    nice -n -10 "$BIN" -l "$LCORE" --no-pci "${MEM[@]}" --file-prefix "$PREFIX" \
        --vdev "net_pcap0,$rx" --vdev "$out" --vdev "$CRYPTODEV" -- \
        "${PORTS[@]}" -l -f "$WORK/secgw.cfg" --config "(0,0,$LCORE)" </dev/null >"$WORK/$name.log" 2>&1 &
    PID=$!
    PIDS+=("$PID")
}
fail() { echo "secgw/run.sh: $1" >&2; grep -v '^EAL: \|^$' "$WORK/$2.log" | tail -15 >&2; exit 1; }
forget() { stop "$PID"; PIDS=(); rm -rf -- "/var/run/dpdk/$PREFIX"; }

if ((CHECK)); then
    secgw check "net_pcap1,tx_pcap=$WORK/out.pcap" "rx_pcap=$WORK/in.pcap"
    "$PY" "$HERE/pcap.py" wait "/var/run/dpdk/$PREFIX" 1 "$N" 20 || fail "check run did not forward $N packets" check
    forget
    "$PY" "$HERE/pcap.py" check "$DIR" "$SIZE" "$ALG" "$KEY" "$WORK/in.pcap" "$WORK/out.pcap" >&2 ||
        fail "check failed" check
fi

walls=() cpus=() bests=()
for ((r = 0; r < ROUNDS; r++)); do
    secgw "rate$r" net_null0,no-rx=1 "rx_pcap=$WORK/in.pcap,infinite_rx=1"
    read -r wall cpu bslice < <("$PY" "$HERE/../forward/telemetry_rate.py" "/var/run/dpdk/$PREFIX" 1 "$WARMUP" "$WINDOW" "$PID" "$SLICE") ||
        fail "ipsec-secgw did not run" "rate$r"
    kill -0 "$PID" 2>/dev/null || fail "ipsec-secgw exited during the window" "rate$r"
    forget
    walls+=("$wall") cpus+=("$cpu") bests+=("$bslice")
done
echo "secgw/run.sh: $DIR $SIZE B $ALG on $CRYPTODEV, lcore $LCORE, $MEMNOTE, window ${WINDOW}s x $ROUNDS," \
    "wall pps ${walls[*]}, pps/CPU-s ${cpus[*]}, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
best=$(printf '%s\n' "${walls[@]}" | sort -n | tail -1)
median=$(printf '%s\n' "${cpus[@]}" | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }')
bslice=$(printf '%s\n' "${bests[@]}" | sort -n | tail -1)
awk -v d="$DIR" -v s="$SIZE" -v w="$best" -v c="$median" -v a="$ALG" -v cd="$CRYPTODEV" -v b="$bslice" -v sl="$SLICE" \
    'BEGIN { printf "secgw %s %s %.2f Mpps %.2f Mpps/CPU-s %s %s best-%ss-slice %.2f Mpps/CPU-s\n", d, s, w / 1e6, c / 1e6, a, cd, sl, b / 1e6 }'
