#!/usr/bin/env bash
# The whole test suite: the lint gate (rustfmt, clippy with every warning
# an error), every crate's tests with every oracle required (a missing tool
# fails), then every fuzz target for FUZZ_SECONDS each. Ends with one
# summary line of the counts.
set -euo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo fmt --all -- --check
# clippy in the release profile shares build scripts and proc macros with
# the tests below (the dev profile would build them a second time).
cargo clippy --release --workspace --all-targets --locked -- -D warnings
REQUIRE_ORACLES=1 cargo test --workspace --locked --release 2>&1 | tee "$log" || status=$?
passed=$(grep -Eo '^test result: .* ([0-9]+) passed' "$log" | grep -Eo '[0-9]+ passed' | awk '{s+=$1} END {print s+0}')
failed=$(grep -Eo '^test result: .* ([0-9]+) failed' "$log" | grep -Eo '[0-9]+ failed' | awk '{s+=$1} END {print s+0}')
if [ "$status" -eq 0 ]; then
  scripts/fuzz.sh "${FUZZ_SECONDS:-15}" || { status=$?; failed=$((failed + 1)); echo "fuzzing failed" >&2; }
fi
echo "tests: $passed passed, $failed failed"
exit "$status"
