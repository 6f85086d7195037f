#!/usr/bin/env bash
# Regenerate perf/pktgen/pcaps (committed): plaintext frames 10.1.0.x -> 10.2.0.x for an
# encapsulating gateway, and the same frames ESP-sealed by scapy (AES-128-GCM, SPI
# 0x1001, key from perf/esp/config.sh esp_key aes128gcm 0) for a decapsulating one.
# Sizes 64, 512, 1400 B and IMIX (7:4:1 of 64/576/1400 B), 32 frames each; pktgen
# loops them. The gateway config for these pcaps: perf/esp/config.sh (esp_config).
set -euo pipefail
cd "$(dirname "$0")/../.."
source perf/esp/config.sh
OUT=perf/pktgen/pcaps
mkdir -p "$OUT"
for size in 64 512 1400 imix; do
    sz=(--size "$size") && [[ $size == imix ]] && sz=(--imix)
    /usr/bin/python3 perf/esp/esp_pcap.py plain "$OUT/plain-$size.pcap" "${sz[@]}" --count 32
    /usr/bin/python3 perf/esp/esp_pcap.py esp "$OUT/esp-aes128gcm-$size.pcap" --alg aes128gcm \
        --key "$(esp_key aes128gcm 0)" --spi "$ESP_SPI_IN" "${sz[@]}" --count 32
done
ls -l "$OUT"
