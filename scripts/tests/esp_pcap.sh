#!/usr/bin/env bash
# ipsecgw's ESP against scapy through DPDK net_pcap (issue 8), for AES-128-GCM,
# AES-256-GCM and ChaCha20-Poly1305, raw ESP and ESP in UDP 4500, over an IPv4 outer
# link (and, for AES-128-GCM, an IPv6 one, ESP_V6=1 in perf/esp/config.sh, and four
# tunnels sharing the flows, ESP_TUNNELS=4):
#   encap: plaintext frames (scapy) -> ipsecgw static SA -> ESP frames that scapy
#          decrypts to the input packets (TTL - 1);
#   decap: ESP frames sealed by scapy -> ipsecgw -> exactly the packets scapy sealed.
# Sizes: 64-byte frames and IMIX (64/576/1400). Helpers: perf/esp/esp_pcap.py, perf/esp/config.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib/netns.sh
source perf/esp/config.sh
unset ESP_TUNNELS # one SA unless the four-tunnel runs below say otherwise

TAG=esppcap
PY=/usr/bin/python3
TOOL=perf/esp/esp_pcap.py
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
IPSECGW=${IPSECGW:-$CARGO_TARGET_DIR/release/ipsecgw}
[[ -x $IPSECGW ]] || cargo build --release -p ipsecgw >&2

harness_init "$TAG"
W=$HARNESS_DIR
"$PY" -c 'from scapy.all import wrpcap; wrpcap("'"$W"'/empty.pcap", [])'

# gw DIR ALG UDP IN_PCAP OUT_PCAP: one ipsecgw run over the pcap, stopped by SIGTERM.
gw() {
    local dir=$1 alg=$2 udp=$3 in=$4 out=$5 prefix=$TAG-$$-$RANDOM
    esp_config "$W/gw.toml" "$dir" "$alg" "$udp" 1024 --no-huge -m 512 --no-pci --file-prefix "$prefix" -l 0 \
        "--vdev=net_pcap0,rx_pcap=$in,tx_pcap=$W/tx0.pcap" "--vdev=net_pcap1,rx_pcap=$W/empty.pcap,tx_pcap=$out"
    harness_spawn "$W/gw.log" "$IPSECGW" run --config "$W/gw.toml" "${ESP_NEIGHBORS[@]}"
    local pid=$HARNESS_LAST_PID
    harness_wait_until 20 grep -q "ESP worker" "$W/gw.log" || harness_die "ipsecgw did not start: $(cat "$W/gw.log")"
    sleep 1 # 64 packets take microseconds; the pcap is read once
    kill -TERM "$pid"
    wait "$pid" || harness_die "ipsecgw failed: $(cat "$W/gw.log")"
    rm -rf -- "/var/run/dpdk/$prefix"
    grep -q "drops: none" "$W/gw.log" || harness_die "ipsecgw dropped packets: $(grep -A3 '^sa ' "$W/gw.log")"
    # The start-up output names the AEAD code Backend::Auto runs for each algorithm here.
    grep -qE '^ipsecgw: AEAD backends \(auto; intel-ipsec-mb path [a-z0-9-]+\): aes128gcm16 [a-z].*; aes256gcm16 [a-z].*; chacha20poly1305 ((chacha-avx512 <[0-9]+ B( in bursts of [0-9]+\+)?, )?(ring|ipsec-mb)( above)?)$' "$W/gw.log" ||
        harness_die "no AEAD backend line: $(grep 'AEAD' "$W/gw.log")"
}

# both_ways ALG SIZE: plaintext through encap, opened by scapy; scapy's ESP through
# decap, compared; for the outer link and tunnels config.sh's ESP_* say.
both_ways() {
    local alg=$1 size=$2 sz=(--size 64) outer tunnels what="$1 udp=$ESP_UDP v6=$ESP_V6 tunnels=${ESP_TUNNELS:-1} $2"
    [[ $size == imix ]] && sz=(--imix)
    mapfile -t outer < <(esp_pcap_outer)
    mapfile -t tunnels < <(esp_pcap_tunnels)
    "$PY" $TOOL plain "$W/plain.pcap" "${sz[@]}" --count 48
    gw encap "$alg" "$ESP_UDP" "$W/plain.pcap" "$W/esp_out.pcap"
    "$PY" $TOOL check-encap "$W/plain.pcap" "$W/esp_out.pcap" --alg "$alg" --key "$(esp_key "$alg" 1)" \
        --spi "$ESP_SPI_OUT" "${outer[@]}" "${tunnels[@]}" >&2 || harness_die "encap $what"
    "$PY" $TOOL esp "$W/esp_in.pcap" --alg "$alg" --key "$(esp_key "$alg" 0)" --spi "$ESP_SPI_IN" "${outer[@]}" "${tunnels[@]}" "${sz[@]}" --count 48
    gw decap "$alg" "$ESP_UDP" "$W/esp_in.pcap" "$W/plain_out.pcap"
    "$PY" $TOOL check-decap "$W/plain.pcap" "$W/plain_out.pcap" "${tunnels[@]}" >&2 || harness_die "decap $what"
    n=$((n + 2))
}

n=0
for ESP_V6 in 0 1; do
for alg in aes128gcm aes256gcm chacha20poly1305; do
    [[ $ESP_V6 == 1 && $alg != aes128gcm ]] && continue
    for ESP_UDP in 0 1; do
        for size in 64 imix; do both_ways "$alg" "$size"; done
    done
done
done
ESP_V6=0 ESP_UDP=0

# Four tunnels taking the flows in turn (perf/esp/config.sh's ESP_TUNNELS, the setup of
# perf/esp/tunnels.sh): each SA its own SPIs, keys and sequence numbers, whatever order
# the gateway interleaves them in.
export ESP_TUNNELS=4
for size in 64 imix; do both_ways aes128gcm "$size"; done
unset ESP_TUNNELS

# The pktgen pcaps (perf/pktgen/pcaps, made by perf/pktgen/make_pcaps.sh) through the same
# gateway configs: what pktgen would send is what ipsecgw handles correctly.
for size in 64 512 1400 imix; do
    gw encap aes128gcm 0 "$PWD/perf/pktgen/pcaps/plain-$size.pcap" "$W/esp_out.pcap"
    "$PY" $TOOL check-encap perf/pktgen/pcaps/plain-$size.pcap "$W/esp_out.pcap" --alg aes128gcm \
        --key "$(esp_key aes128gcm 1)" --spi "$ESP_SPI_OUT" >&2 || harness_die "pktgen pcap plain-$size"
    gw decap aes128gcm 0 "$PWD/perf/pktgen/pcaps/esp-aes128gcm-$size.pcap" "$W/plain_out.pcap"
    "$PY" $TOOL check-decap perf/pktgen/pcaps/plain-$size.pcap "$W/plain_out.pcap" >&2 || harness_die "pktgen pcap esp-aes128gcm-$size"
    n=$((n + 2))
done
echo "esp_pcap: ok ($n runs: scapy opens our ESP and we open scapy's, 3 AEADs x raw/UDP x 64 B/IMIX over IPv4, AES-128-GCM over IPv6 and over four tunnels, and the pktgen pcaps)"
