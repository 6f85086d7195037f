#!/usr/bin/env bash
# ESP interop with scapy's independent implementation (scapy.layers.ipsec):
# AES-GCM-128/256 and ChaCha20-Poly1305, tunnel mode, inner/outer IPv4/IPv6,
# raw ESP and UDP 4500, with and without ESN. Packets we seal must open in scapy
# and equal scapy's bytes for the same inputs; scapy's packets must open with our
# decap; tampered ones must be refused. See scripts/tests/esp_scapy/check.py.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=/usr/bin/python3
if ! "$PY" -c 'import scapy.layers.ipsec, cryptography' 2>/dev/null; then
    echo "esp_scapy: python3-scapy / python3-cryptography missing (scripts/setup.sh installs them)" >&2
    exit 1
fi
cargo build -q -p dataplane --release --example esp_scapy_tool
TOOL="${CARGO_TARGET_DIR:-target}/release/examples/esp_scapy_tool"
"$PY" scripts/tests/esp_scapy/check.py "$TOOL"
