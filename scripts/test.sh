#!/usr/bin/env bash
# The whole test suite (what CI runs through .ci/run): installs what it needs, runs the
# Rust unit/integration tests, then every scripts/tests/*.sh (namespaces, strongSwan,
# scapy, fuzz). Run as root on Debian 12. Exit code != 0 when anything fails.
#   scripts/test.sh                 everything
#   scripts/test.sh --only NAME     just scripts/tests/NAME.sh (after the build)
#   scripts/test.sh --no-cargo-test skip `cargo test`
set -euo pipefail
cd "$(dirname "$0")/.."
only="" run_cargo_test=1
while (($#)); do
    case $1 in
        --only) only=$2; shift 2 ;;
        --no-cargo-test) run_cargo_test=0; shift ;;
        *) echo "test.sh: unknown argument $1 (use --only NAME or --no-cargo-test)" >&2; exit 2 ;;
    esac
done
[[ $(id -u) == 0 ]] || { echo "test.sh: run as root (namespaces, DPDK, apt)" >&2; exit 1; }
scripts/setup.sh

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
SECONDS=0
step() { printf '\n=== [%4ds] %s\n' "$SECONDS" "$*"; }

step "cargo build --release -p ipsecgw (the binary the shell tests run)"
cargo build --release -p ipsecgw
export IPSECGW=$CARGO_TARGET_DIR/release/ipsecgw

if ((run_cargo_test)) && [[ -z $only ]]; then
    step "cargo test --workspace --profile ci"
    cargo test --workspace --profile ci
fi

# Each test's output also goes to a log, so a failure's last lines are repeated at the
# end, where a CI log that keeps only its tail still shows them.
logs=$(mktemp -d /tmp/ipsecgw-test-logs.XXXXXX)
failed=()
for t in scripts/tests/*.sh; do
    name=$(basename "$t" .sh)
    [[ -z $only || $only == "$name" ]] || continue
    step "$t"
    start=$SECONDS
    if bash "$t" 2>&1 | tee "$logs/$name.log"; then
        echo "--- $name: passed in $((SECONDS - start)) s"
    else
        echo "--- $name: FAILED after $((SECONDS - start)) s"
        failed+=("$name")
    fi
done

step "done"
if ((${#failed[@]})); then
    for name in "${failed[@]}"; do
        echo
        echo "=== last 60 lines of $name (whole output: $logs/$name.log)"
        tail -n 60 "$logs/$name.log"
    done
    echo
    echo "test.sh: FAILED: ${failed[*]}"
    exit 1
fi
rm -rf "$logs"
echo "test.sh: all passed"
