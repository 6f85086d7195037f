#!/usr/bin/env bash
# Installs everything ipsecgw needs to build, test and demo on Debian 12. Idempotent.
set -euo pipefail
PKGS=(dpdk libdpdk-dev clang libclang-dev pkg-config build-essential libipsec-mb-dev
      strongswan-swanctl strongswan-charon charon-systemd libcharon-extra-plugins
      libstrongswan-standard-plugins libstrongswan-extra-plugins tcpdump python3-scapy
      python3-cryptography iproute2 iputils-ping ethtool lua5.4 dpdk-dev valgrind)
# libstrongswan-standard-plugins holds charon's openssl and gcm plugins (the test
# peer's SHA-1/SHA-2 hashers and AES-GCM): only a Recommends of strongswan-charon,
# which --no-install-recommends leaves out. ethtool turns off veth checksum offload
# (scripts/lib/netns.sh): with it on, UDP leaves the kernel with a partial checksum
# that nothing past the DPDK port completes, and the receiver drops it.
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
    echo "setup: installing ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
command -v cargo >/dev/null || { echo "setup: cargo not found: install Rust (rustup) first" >&2; exit 1; }
