# ipsecgw container image: a build stage with the -dev packages and a Rust toolchain,
# and a run stage with only the runtime libraries and the `ipsecgw` binary.
#
# Here (no image registry, build offline):  scripts/build-image.sh
#   It makes BASE with debootstrap, puts the stage's .deb files in build/container/debs/
#   and the crates in build/container/vendor/, then runs `podman build --network none`.
# With a registry and network instead:
#   mkdir -p build/container/debs/build build/container/debs/run build/container/vendor
#   docker build --build-arg BASE=debian:bookworm -t ipsecgw .
#   (empty debs/ and vendor/ dirs mean: apt-get and cargo download what they need)
# Running it (hugepages, capabilities): see "## Container" in README.md.

# Debian 12: its DPDK 22.11 is what dpdk-sys is generated against.
ARG BASE=localhost/debian-bookworm-base

# install-packages DIR PACKAGE...: one installer for both stages. Offline, DIR holds the
# stage's complete .deb set (scripts/build-image.sh resolved it against this base) and
# apt-get installs those files; with DIR empty, apt-get fetches PACKAGEs from the network.
# "dpdk-runtime" stands for every librte-* package libdpdk-dev depends on.
FROM ${BASE} AS apt-base
RUN printf '%s\n' '#!/bin/sh' 'set -eu; export DEBIAN_FRONTEND=noninteractive; dir=$1; shift' \
      'if ls "$dir"/*.deb >/dev/null 2>&1; then apt-get install -y --no-install-recommends "$dir"/*.deb' \
      'else' \
      '  apt-get update; pkgs=' \
      '  for p in "$@"; do case $p in' \
      '    dpdk-runtime) pkgs="$pkgs $(apt-cache depends libdpdk-dev | sed -n "s/^ *Depends: \(librte-[^ ]*\)$/\1/p")";;' \
      '    *) pkgs="$pkgs $p";; esac; done' \
      '  apt-get install -y --no-install-recommends $pkgs' \
      'fi' \
      'apt-get clean; rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log' \
      > /usr/local/sbin/install-packages \
 && chmod 0755 /usr/local/sbin/install-packages

FROM apt-base AS build
# Rust >= 1.87 (rust-version of the workspace): rustc-web/cargo-web from bookworm-security
# (1.96; /usr/bin/rustc and /usr/bin/cargo). bindgen needs libclang; dpdk-sys finds DPDK
# with pkg-config; ca-certificates for cargo when it downloads (the network path).
# scripts/build-image.sh reads this line: keep it one line.
ARG BUILD_PACKAGES="rustc-web cargo-web libdpdk-dev libipsec-mb-dev clang libclang-dev pkg-config ca-certificates"
# podman/buildah (1.28) reuse a cached RUN layer even when the content of its bind mount
# changed; these ids (hashes build-image.sh computes of the .deb set and of the source)
# are part of the cache key instead. Empty with docker, which hashes mounts itself.
ARG DEBS_ID=
RUN --mount=type=bind,source=build/container/debs/build,target=/debs \
    install-packages /debs $BUILD_PACKAGES && rustc --version && cargo --version

# The source is bind-mounted (read-only, not copied into a layer); cargo writes only to
# CARGO_TARGET_DIR, a cache mount kept between builds (incremental rebuilds of a changed
# tree). Vendored crates (if present) replace crates.io and the build runs --frozen: no
# network, and Cargo.lock must be up to date.
ENV CARGO_HOME=/usr/local/cargo CARGO_TARGET_DIR=/target
ARG SOURCE_ID=
RUN --mount=type=bind,target=/src \
    --mount=type=cache,target=/target,id=ipsecgw-target \
    set -eu; cd /src; \
    vendor=/src/build/container/vendor; \
    if [ -n "$(ls -A "$vendor" 2>/dev/null)" ]; then \
        mkdir -p "$CARGO_HOME"; \
        printf '[source.crates-io]\nreplace-with = "vendored"\n[source.vendored]\ndirectory = "%s"\n' \
            "$vendor" > "$CARGO_HOME/config.toml"; \
        lock=--frozen; \
    else \
        lock=--locked; \
    fi; \
    cargo build --release $lock -p ipsecgw --bin ipsecgw; \
    install -D -m 0755 "$CARGO_TARGET_DIR/release/ipsecgw" /out/ipsecgw

FROM apt-base AS run
# Runtime only: the DPDK libraries ("dpdk-runtime": the libraries the binary links plus
# the PMD plugins EAL loads from its driver dir, so net_af_packet, net_pcap, vfio-pci
# NICs... all work), intel-ipsec-mb, iproute2. scripts/build-image.sh reads this line:
# keep it one line.
ARG RUN_PACKAGES="dpdk-runtime libipsec-mb1 iproute2"
ARG DEBS_ID=
RUN --mount=type=bind,source=build/container/debs/run,target=/debs \
    install-packages /debs $RUN_PACKAGES && rm /usr/local/sbin/install-packages

COPY --from=build /out/ipsecgw /usr/local/bin/ipsecgw
# Fail the build, not the first run, if a shared library is missing or the binary
# cannot start.
RUN set -eu; \
    if ldd /usr/local/bin/ipsecgw | grep 'not found'; then exit 1; fi; \
    ipsecgw --help >/dev/null

LABEL org.opencontainers.image.title="ipsecgw" \
      org.opencontainers.image.description="DPDK IPsec gateway (ESP dataplane + IKEv2)" \
      org.opencontainers.image.licenses="Apache-2.0"
# Configuration is mounted here (ipsecgw run --config /etc/ipsecgw/ipsecgw.toml).
WORKDIR /etc/ipsecgw
ENTRYPOINT ["ipsecgw"]
CMD ["--help"]
