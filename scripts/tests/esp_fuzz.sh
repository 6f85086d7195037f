#!/usr/bin/env bash
# Short, bounded coverage-guided fuzzing of inbound ESP decap and the wire parsers
# (dataplane/fuzz, libFuzzer through cargo-fuzz on stable with --sanitizer none).
# ESP_FUZZ_SECONDS per target (default 20). Longer runs: see perf/README.md
# ("ESP encap/decap (issue 5)" -> Fuzzing).
set -euo pipefail
cd "$(dirname "$0")/../../dataplane/fuzz"
SECS="${ESP_FUZZ_SECONDS:-20}"
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "esp_fuzz: cargo-fuzz missing, installing (cargo install cargo-fuzz)"
    if ! cargo install --locked cargo-fuzz >/dev/null 2>&1 && ! cargo install cargo-fuzz; then
        echo "esp_fuzz: SKIPPED: cargo-fuzz could not be installed (no crates.io access?)" >&2
        exit 0
    fi
fi
# The fuzz crate is its own workspace; keep its build out of the main target dir.
unset CARGO_TARGET_DIR
for t in decap decap_authentic wire; do
    echo "esp_fuzz: $t for ${SECS}s"
    # A build failure or a crash makes cargo fuzz exit non-zero: that fails the test.
    log="$(mktemp)"
    if ! cargo +stable fuzz run --sanitizer none -O "$t" -- -max_total_time="$SECS" -max_len=4096 >"$log" 2>&1; then
        tail -n 30 "$log" >&2
        rm -f "$log"
        echo "esp_fuzz: $t failed (build error or failing input, see above)" >&2
        exit 1
    fi
    grep -E "^Done|ERROR|panicked|SUMMARY" "$log" || true
    rm -f "$log"
    # libFuzzer leaves crash-* files in artifacts/ when it finds something.
    if compgen -G "artifacts/$t/crash-*" >/dev/null || compgen -G "artifacts/$t/oom-*" >/dev/null; then
        echo "esp_fuzz: $t found a failing input: dataplane/fuzz/artifacts/$t/" >&2
        exit 1
    fi
done
echo "esp_fuzz: all targets ran ${SECS}s without failures"
