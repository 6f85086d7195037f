#!/usr/bin/env bash
# Bounded coverage-guided fuzzing of the IKEv2 parser and responder
# (controlplane/fuzz): 30 s per target (IKEV2_FUZZ_SECS), seeded with messages
# the in-memory tests produce. Any crash fails the test. Needs cargo-fuzz and a
# nightly toolchain; a machine without them (rustup cannot download toolchains
# here) gets a loud SKIP rather than a failure. The first build takes ~10 min.
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "ikev2_fuzz: SKIP: cargo-fuzz or the nightly toolchain is missing on this machine" >&2
    exit 0
fi
SECS="${IKEV2_FUZZ_SECS:-30}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
WORK=$(mktemp -d /tmp/ikev2_fuzz.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
cd controlplane
for t in ikev2_parse ikev2_responder; do
    mkdir -p "$WORK/$t"
    cp fuzz/seeds/* "$WORK/$t/" 2>/dev/null || true
    echo "=== fuzz $t for ${SECS}s"
    cargo +nightly fuzz run -O "$t" "$WORK/$t" -- -max_total_time="$SECS" -max_len=4096 \
        -artifact_prefix="$WORK/" 2>&1 | tail -3
done
echo "ikev2_fuzz: no crashes"
