#!/usr/bin/env bash
# The AEAD's cost per packet of several builds, side by side: RUNS interleaved
# `aead_table` runs of each binary, and per size the lowest seal/32 and open/32 ns (other
# tenants of a shared VM only ever slow a run down; perf/README.md, "AEAD backends").
#
#   perf/esp/aead_min.sh RUNS SIZES BIN...     e.g. perf/esp/aead_min.sh 5 64,512,1392 \
#                                                    /tmp/aead_table-old target/release/aead_table
#   env: ALG=aes128gcm (aes256gcm, chacha20poly1305), BACKEND=aesni (ipsec-mb, ring, auto, ...),
#        MS=100 (aead_table --ms), SETS=N (aead_table --sets: N bursts of buffers in turn)
# Prints: binary, bytes, lowest seal/32 ns, lowest open/32 ns.
set -euo pipefail
runs=${1:?RUNS} sizes=${2:?SIZES}
shift 2
[[ $# -gt 0 ]] || { echo "aead_min.sh: name at least one aead_table binary" >&2; exit 1; }
alg=${ALG:-aes128gcm} backend=${BACKEND:-aesni} ms=${MS:-100}
for _ in $(seq "$runs"); do
    for b in "$@"; do
        # Rows of the first table only (its rows have 11 fields: seal/32 is $6, open/32 $8).
        "$b" --ms "$ms" --alg "$alg" --backend "$backend" --sizes "$sizes" ${SETS:+--sets "$SETS"} 2>&1 |
            awk -F'|' -v b="$b" -v alg="$alg" 'NF > 10 && $2 ~ alg { gsub(/ /, "", $3); print b, $3, $6 + 0, $8 + 0 }'
    done
done | awk '{ k = $1 " " $2; if (!(k in s) || $3 < s[k]) s[k] = $3; if (!(k in o) || $4 < o[k]) o[k] = $4 }
            END { for (k in s) print k, s[k], o[k] }' | sort -k2,2n -s
