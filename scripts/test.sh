#!/usr/bin/env bash
# The whole test suite: every crate's tests with every oracle required (a
# missing tool fails), then every fuzz target for FUZZ_SECONDS each. Ends
# with one summary line of the counts.
set -euo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
REQUIRE_ORACLES=1 cargo test --workspace --locked --release 2>&1 | tee "$log" || status=$?
passed=$(grep -Eo '^test result: .* ([0-9]+) passed' "$log" | grep -Eo '[0-9]+ passed' | awk '{s+=$1} END {print s+0}')
failed=$(grep -Eo '^test result: .* ([0-9]+) failed' "$log" | grep -Eo '[0-9]+ failed' | awk '{s+=$1} END {print s+0}')
if [ "$status" -eq 0 ]; then
  scripts/fuzz.sh "${FUZZ_SECONDS:-15}" || { status=$?; failed=$((failed + 1)); echo "fuzzing failed" >&2; }
fi
echo "tests: $passed passed, $failed failed"
exit "$status"
