#!/usr/bin/env bash
# Fetch, patch and build DPDK's examples/ipsec-secgw against the installed libdpdk (22.11,
# Debian), as the baseline of the issue-8 benchmark (perf/README.md "DPDK ipsec-secgw
# baseline"). Idempotent: later calls only print the binary path. DPDK's code stays in
# the cache dir, never in this repository.
#
#   perf/secgw/build.sh            (as root: apt-get)  -> prints the binary path on stdout
#
# SECGW_CACHE (default /var/cache/ipsecgw-secgw) holds the source package and the build.
set -euo pipefail
CACHE=${SECGW_CACHE:-/var/cache/ipsecgw-secgw}
log() { echo "secgw/build.sh: $*" >&2; }

[[ $(id -u) == 0 ]] || { log "needs root (apt-get)"; exit 1; }
if ! { command -v pkg-config >/dev/null && pkg-config --exists libdpdk; }; then
    log "installing libdpdk-dev"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libdpdk-dev pkg-config >/dev/null
fi
# The source must be the version of the installed library the example links against.
VERSION=$(dpkg-query -W -f='${Version}' libdpdk-dev)
UPSTREAM=${VERSION%%-*}
SRC=$CACHE/dpdk-$UPSTREAM
APP=$SRC/examples/ipsec-secgw
BIN=$APP/build/ipsec-secgw
STAMP=$APP/build/.ipsecgw-built-$VERSION

if [[ -x $BIN && -e $STAMP ]]; then
    echo "$BIN"
    exit 0
fi

mkdir -p "$CACHE"
if [[ ! -f $APP/ipsec-secgw.c ]]; then
    # deb-src for the same mirrors/suites as the configured deb lines (deb822 or one-line).
    LIST=/etc/apt/sources.list.d/ipsecgw-secgw-src
    if ! grep -rqs '^\(Types:.*deb-src\|deb-src \)' /etc/apt/sources.list /etc/apt/sources.list.d/; then
        if [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
            sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources >"$LIST.sources"
        else
            grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list |
                sed 's/^deb /deb-src /' >"$LIST.list"
        fi
        log "added deb-src lines ($LIST.*), apt-get update"
        apt-get update -qq >&2
    fi
    command -v dpkg-source >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dpkg-dev >/dev/null
    log "apt-get source dpdk=$VERSION into $CACHE"
    (cd "$CACHE" && apt-get source -qq "dpdk=$VERSION") >&2
fi
[[ -f $APP/ipsec-secgw.c ]] || { log "no $APP/ipsec-secgw.c after apt-get source"; exit 1; }

# net_pcap (and net_null) offer no RX checksum offload, and the example requests
# RTE_ETH_RX_OFFLOAD_CHECKSUM (IPv4+UDP+TCP) unconditionally in its port_conf, so port
# setup fails on vdevs; the request is dropped (packets then carry "checksum unknown").
sed -i 's/^\(\t\t\.offloads = \)RTE_ETH_RX_OFFLOAD_CHECKSUM,/\10, \/* ipsecgw perf: no RX csum offload on vdevs *\//' \
    "$APP/ipsec-secgw.c"
grep -q 'ipsecgw perf: no RX csum offload' "$APP/ipsec-secgw.c" || { log "patch did not apply"; exit 1; }

log "building $APP (make, pkg-config libdpdk $(pkg-config --modversion libdpdk))"
make -s -C "$APP" -j"$(nproc)" >&2
touch "$STAMP"
echo "$BIN"
