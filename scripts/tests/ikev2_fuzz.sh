#!/usr/bin/env bash
# Bounded coverage-guided fuzzing of the IKEv2 parser and responder
# (controlplane/fuzz): 30 s per target (IKEV2_FUZZ_SECS), seeded with messages
# the in-memory tests produce. Any crash or build error fails the test.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib/fuzz.sh
SECS="${IKEV2_FUZZ_SECS:-30}"
fuzz_ensure_cargo_fuzz ikev2_fuzz
unset CARGO_TARGET_DIR
WORK=$(mktemp -d /tmp/ikev2_fuzz.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
cd controlplane
for t in ikev2_parse ikev2_responder; do
    mkdir -p "$WORK/$t"
    cp fuzz/seeds/* "$WORK/$t/" 2>/dev/null || true
    fuzz_run ikev2_fuzz "$t" "$SECS" "$WORK/$t"
done
echo "ikev2_fuzz: no crashes"
