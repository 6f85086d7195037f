#!/usr/bin/env bash
# Builds the ipsecgw container image without any image registry and with the
# build itself offline (`podman build --network none`):
#
#   1. base image  localhost/debian-bookworm-base: `debootstrap --variant=minbase
#      bookworm` from this machine's Debian mirror, then `podman import`. Built once,
#      skipped while the image exists.
#   2. .deb files  the build stage's packages (Rust >= 1.87 from bookworm-security,
#      libdpdk-dev, clang, ...) and the run stage's runtime libraries, resolved by apt
#      *against the pristine base* (in a chroot of it) so the set is complete, and
#      copied into build/container/debs/{build,run}. The Dockerfile installs them with
#      `apt-get install /debs/*.deb`, which needs no network.
#   3. crates      `cargo vendor` into build/container/vendor; the build stage points
#      cargo at it (source replacement) and builds with --frozen.
#   4. image       `podman build --network none` of the Dockerfile at the repo root.
#
# build/ is gitignored and excluded from the build context except the debs and the
# vendor directory. Re-running reuses the base image, the apt cache and the vendor dir.
#
# Usage: scripts/build-image.sh            (as root; installs podman + debootstrap if missing)
#        scripts/build-image.sh --podman-options   print the podman options that work here:
#            line 1 global (e.g. --runtime runc), line 2 for run/build (e.g. --ulimit ...)
# Env:   IPSECGW_IMAGE        image tag to build     (localhost/ipsecgw:latest)
#        IPSECGW_BASE_IMAGE   base image tag          (localhost/debian-bookworm-base)
#        IPSECGW_REBUILD_BASE=1  debootstrap the base again even if the image exists
#        DEBIAN_MIRROR / DEBIAN_SECURITY_MIRROR  (default: what /etc/apt uses, else deb.debian.org)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
IMAGE=${IPSECGW_IMAGE:-localhost/ipsecgw:latest}
BASE_IMAGE=${IPSECGW_BASE_IMAGE:-localhost/debian-bookworm-base}
CACHE=$ROOT/build/container   # the Dockerfile mounts build/container/{debs,vendor} from here
SUITE=bookworm

log() { echo "build-image: $*" >&2; }
die() { echo "build-image: error: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (debootstrap, chroot and rootful podman need it)"

# ---------------------------------------------------------------- tools
need=()
command -v podman >/dev/null || need+=(podman)
command -v debootstrap >/dev/null || need+=(debootstrap)
if ((${#need[@]})); then
    log "installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=600 "${need[@]}"
fi
command -v cargo >/dev/null || die "cargo not found on the host (needed for 'cargo vendor'): install Rust first"

# The Debian mirror this machine already uses (deb822 .sources or one-line .list).
detect_mirror() { # $1 = path suffix: debian | debian-security
    local f files=()
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] && files+=("$f")
    done
    ((${#files[@]})) || return 0
    { grep -hoE "https?://[^ ]+/$1/?( |$)" "${files[@]}" || true; } | head -n1 | tr -d ' ' | sed 's#/$##'
}
MIRROR=${DEBIAN_MIRROR:-$(detect_mirror debian)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR:-$(detect_mirror debian-security)}
SECURITY_MIRROR=${SECURITY_MIRROR:-http://deb.debian.org/debian-security}

APTROOT=$CACHE/aptroot     # debootstrap tree: the base image's content, then apt's download chroot
mkdir -p "$CACHE"

write_sources() { # the base image (and the download chroot) get all three bookworm suites
    cat >"$1/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb $SECURITY_MIRROR $SUITE-security main
EOF
}

strip_docs() { # $1 = a fresh debootstrap tree (never the host: refuses "" and "/")
    local r=$1
    case "$r" in ""|/) die "strip_docs: refusing root '$r'";; esac
    { [ -f "$r/etc/debian_version" ] && [ -d "$r/var/lib/dpkg" ]; } || die "strip_docs: $r is not a debootstrap tree"
    # Keep the images small: no docs (but the copyright files), man pages or translations,
    # neither now nor in what the stages install later (dpkg path-exclude).
    printf '%s\n' 'path-exclude=/usr/share/doc/*' 'path-include=/usr/share/doc/*/copyright' \
        'path-exclude=/usr/share/man/*' 'path-exclude=/usr/share/info/*' \
        'path-exclude=/usr/share/locale/*' 'path-include=/usr/share/locale/locale.alias' \
        'path-exclude=/usr/share/lintian/*' >"$r/etc/dpkg/dpkg.cfg.d/01-ipsecgw-nodoc"
    find "$r/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
    find "$r/usr/share/doc" -mindepth 1 -type d -empty -delete
    local d
    for d in man info lintian; do
        [ -d "$r/usr/share/$d" ] && find "$r/usr/share/$d" -mindepth 1 -delete
    done
    [ -d "$r/usr/share/locale" ] && find "$r/usr/share/locale" -mindepth 1 ! -name locale.alias -delete
    return 0
}

# podman's defaults cannot start a container on some hosts (RUN steps are containers
# too): crun refuses a cgroup v1 + v2 "hybrid" host ("cgroups in hybrid mode not
# supported, drop all controllers from cgroupv2"), and crun/runc fail to *raise*
# RLIMIT_NOFILE/RLIMIT_NPROC where the host withholds CAP_SYS_RESOURCE ("setrlimit
# RLIMIT_NOFILE: Operation not permitted"). probe_podman sets RUNTIME (global podman
# options) and LIMITS (run/build options) to the first set a trivial container starts
# with; `--podman-options` prints them for scripts/tests/container_image.sh.
try_run() { podman "$@" run --rm --network none "${LIMITS[@]}" "$BASE_IMAGE" true >/dev/null 2>"$CACHE/podman-probe.err"; }
probe_podman() {
    RUNTIME=()
    LIMITS=()
    try_run && return 0
    LIMITS=(--ulimit "nofile=$(ulimit -Sn):$(ulimit -Sn)" --ulimit nproc=4096:4096)
    try_run && return 0
    if ! command -v runc >/dev/null; then
        log "installing runc (crun could not start a container: $(tail -n1 "$CACHE/podman-probe.err"))"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=600 runc
    fi
    RUNTIME=(--runtime runc)
    try_run "${RUNTIME[@]}" ||
        die "podman cannot start a container here, even with runc and ${LIMITS[*]}: $(tail -n1 "$CACHE/podman-probe.err")"
}
if [ "${1:-}" = --podman-options ]; then
    podman image exists "$BASE_IMAGE" || die "no $BASE_IMAGE yet: run scripts/build-image.sh first"
    probe_podman
    printf '%s\n' "${RUNTIME[*]}" "${LIMITS[*]}"
    exit 0
fi

# ---------------------------------------------------------------- 1. base image
if [ "${IPSECGW_REBUILD_BASE:-0}" = 1 ] && podman image exists "$BASE_IMAGE"; then
    log "IPSECGW_REBUILD_BASE=1: removing $BASE_IMAGE"
    podman rmi "$BASE_IMAGE" >/dev/null
fi
if podman image exists "$BASE_IMAGE"; then
    log "base image $BASE_IMAGE exists, reusing it"
    if [ ! -x "$APTROOT/usr/bin/apt-get" ]; then
        # The chroot for apt must match the base image exactly: take it from the image.
        log "extracting $BASE_IMAGE into $APTROOT for apt"
        rm -rf "$APTROOT"; mkdir -p "$APTROOT"
        cid=$(podman create "$BASE_IMAGE" /bin/true)
        podman export "$cid" | tar -C "$APTROOT" -xf -
        podman rm "$cid" >/dev/null
    fi
else
    log "debootstrap $SUITE from $MIRROR into $APTROOT (a few minutes)"
    rm -rf "$APTROOT"
    debootstrap --variant=minbase "$SUITE" "$APTROOT" "$MIRROR"
    write_sources "$APTROOT"
    strip_docs "$APTROOT"
    # ... and free of state that belongs to the build host.
    chroot "$APTROOT" apt-get clean
    rm -rf "$APTROOT"/var/lib/apt/lists/* "$APTROOT"/var/log/*.log "$APTROOT"/var/cache/debconf/*-old
    log "importing $APTROOT as $BASE_IMAGE"
    tar -C "$APTROOT" --numeric-owner -cf - . | podman import \
        --change 'CMD ["/bin/bash"]' --change 'ENV LANG=C.UTF-8' \
        --message "debootstrap --variant=minbase $SUITE $MIRROR" - "$BASE_IMAGE" >/dev/null
fi

# ---------------------------------------------------------------- 2. .deb files
# Package sets: single source of truth is the Dockerfile's ARG lines.
dockerfile_arg() { sed -n "s/^ARG $1=\"\(.*\)\"$/\1/p" "$ROOT/Dockerfile"; }
BUILD_PACKAGES=$(dockerfile_arg BUILD_PACKAGES)
RUN_PACKAGES=$(dockerfile_arg RUN_PACKAGES)
{ [ -n "$BUILD_PACKAGES" ] && [ -n "$RUN_PACKAGES" ]; } || die "could not read BUILD_PACKAGES/RUN_PACKAGES from Dockerfile"

cp -L /etc/resolv.conf "$APTROOT/etc/resolv.conf"
write_sources "$APTROOT"
log "apt-get update in the download chroot"
chroot "$APTROOT" apt-get update -qq
# "dpdk-runtime" in RUN_PACKAGES: every librte-* that libdpdk-dev depends on (the
# libraries pkg-config links and the PMD plugins EAL loads from the driver dir), the
# same expansion the Dockerfile's install-packages does when it runs with network.
RTE_PACKAGES=$(chroot "$APTROOT" apt-cache depends libdpdk-dev | sed -n 's/^ *Depends: \(librte-[^ ]*\)$/\1/p' | sort -u | tr '\n' ' ')
[ -n "$RTE_PACKAGES" ] || die "apt-cache depends libdpdk-dev listed no librte-* packages"

fetch_debs() { # $1 = set name, rest = packages; leaves exactly the needed .debs in $CACHE/debs/$1
    local set=$1; shift
    local arch_dir=/var/cache/ipsecgw-debs/$set out=$CACHE/debs/$set
    mkdir -p "$APTROOT$arch_dir/partial"
    # Resolve against the pristine base (nothing is installed in the chroot), download
    # into a per-set apt archive (kept, so re-runs download only what changed) ...
    chroot "$APTROOT" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --download-only \
        --no-install-recommends -o Dir::Cache::archives="$arch_dir" "$@" >/dev/null
    # ... and copy exactly the files of this resolution (older versions stay behind).
    rm -rf "$out"; mkdir -p "$out"
    chroot "$APTROOT" apt-get install -s --no-install-recommends "$@" |
        sed -n 's/^Inst \([^ ]*\) (\([^ ]*\) .*\[\([^]]*\)\].*/\1 \2 \3/p' |
        while read -r pkg ver arch; do
            f="${pkg}_${ver//:/%3a}_${arch}.deb"
            [ -f "$APTROOT$arch_dir/$f" ] || die "apt resolved $f but it is not in $arch_dir"
            ln "$APTROOT$arch_dir/$f" "$out/$f" 2>/dev/null || cp "$APTROOT$arch_dir/$f" "$out/$f"
        done
    log "$set stage: $(find "$out" -name '*.deb' | wc -l) .deb files, $(du -sh "$out" | cut -f1)"
}
# shellcheck disable=SC2086 # word splitting of the package lists is intended
fetch_debs build $BUILD_PACKAGES
# shellcheck disable=SC2086
fetch_debs run ${RUN_PACKAGES//dpdk-runtime/$RTE_PACKAGES}

# ---------------------------------------------------------------- 3. crates
log "cargo vendor into $CACHE/vendor"
cargo vendor --quiet --manifest-path "$ROOT/Cargo.toml" "$CACHE/vendor" >/dev/null

# ---------------------------------------------------------------- 4. image
probe_podman
log "podman options: ${RUNTIME[*]:-(default runtime)} ${LIMITS[*]:-(default limits)}"

# buildah reuses a cached RUN layer although its bind mount's content changed: give it
# the content's hash as a build arg (see the Dockerfile). Source: what .dockerignore lets in.
files_id() { { xargs -0 -r sha256sum 2>/dev/null || true; } | sha256sum | cut -c1-16; }
SOURCE_ID=$(cd "$ROOT" && find . \( -type d \( -name .git -o -name 'target*' \) -o -path ./build \) -prune \
    -o -type f -print0 | sort -z | files_id)
log "podman build --network none -t $IMAGE"
podman build --network none --pull=never "${RUNTIME[@]}" "${LIMITS[@]}" \
    --build-arg BASE="$BASE_IMAGE" --build-arg SOURCE_ID="$SOURCE_ID" \
    --build-arg DEBS_ID="$(find "$CACHE/debs" -name '*.deb' -print0 | sort -z | files_id)" \
    -t "$IMAGE" -f "$ROOT/Dockerfile" "$ROOT"
size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
log "built $IMAGE ($((size / 1000000)) MB)"
log "run:  podman ${RUNTIME[*]} run --rm ${LIMITS[*]} $IMAGE --help"
