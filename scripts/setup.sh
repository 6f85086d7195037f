#!/usr/bin/env bash
# Installs everything ipsecgw needs to build, test and demo on Debian 12. Idempotent.
set -euo pipefail
PKGS=(dpdk libdpdk-dev clang libclang-dev pkg-config build-essential libipsec-mb-dev
      strongswan-swanctl strongswan-charon charon-systemd libcharon-extra-plugins
      libstrongswan-extra-plugins tcpdump python3-scapy python3-cryptography iproute2
      iputils-ping lua5.4 dpdk-dev valgrind)
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
