#!/usr/bin/env bash
# The whole test suite: setup, unit + integration tests, namespace tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --workspace --release --all-targets
cargo test --workspace --release
for t in scripts/tests/*.sh; do
    [ -e "$t" ] || continue
    echo "=== $t"
    bash "$t"
done
echo "test.sh: all passed"
