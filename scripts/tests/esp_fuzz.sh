#!/usr/bin/env bash
# Short, bounded coverage-guided fuzzing of inbound ESP decap and the wire parsers
# (dataplane/fuzz, libFuzzer through cargo-fuzz on stable with --sanitizer none).
# ESP_FUZZ_SECONDS per target (default 20). Longer runs: see perf/README.md
# ("ESP encap/decap (issue 5)" -> Fuzzing).
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib/fuzz.sh
SECS="${ESP_FUZZ_SECONDS:-20}"
fuzz_ensure_cargo_fuzz esp_fuzz
# The fuzz crate is its own workspace; keep its build out of the main target dir.
unset CARGO_TARGET_DIR
cd dataplane
for t in decap decap_authentic wire; do
    fuzz_run esp_fuzz "$t" "$SECS"
done
echo "esp_fuzz: all targets ran ${SECS}s without failures"
