# Sourced by the bounded fuzz tests (scripts/tests/*_fuzz.sh): cargo-fuzz on the stable
# toolchain with --sanitizer none (libFuzzer's coverage instrumentation needs no nightly).

# fuzz_ensure_cargo_fuzz TAG: installs cargo-fuzz from crates.io when missing; exits 0
# with a loud SKIP only when it cannot be installed.
fuzz_ensure_cargo_fuzz() {
    cargo fuzz --version >/dev/null 2>&1 && return 0
    echo "$1: cargo-fuzz missing, installing (cargo install --locked cargo-fuzz)"
    cargo install --locked cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz || {
        echo "$1: SKIPPED: cargo-fuzz could not be installed (no crates.io access?)" >&2
        exit 0
    }
}

# fuzz_run TAG TARGET SECS [CORPUS_DIR...]: run from inside the crate that has fuzz/.
# A build error or a failing input makes cargo fuzz exit non-zero: the test fails.
fuzz_run() {
    local tag=$1 target=$2 secs=$3 log
    shift 3
    log=$(mktemp)
    echo "$tag: $target for ${secs}s"
    if ! cargo fuzz run --sanitizer none -O "$target" "$@" -- -max_total_time="$secs" -max_len=4096 >"$log" 2>&1; then
        tail -n 30 "$log" >&2
        rm -f "$log"
        echo "$tag: $target failed (build error or failing input, see above)" >&2
        return 1
    fi
    grep -E "^Done|ERROR|panicked|SUMMARY" "$log" || true
    rm -f "$log"
}
