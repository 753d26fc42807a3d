#!/usr/bin/env bash
# The whole test suite: the lint gate (rustfmt, clippy with every warning
# an error) and the shape gate (scripts/shape.sh: no source file over 900
# lines, at most 8 functions over 100), every crate's tests with every
# oracle required (a missing tool fails), the artifact hashes of the demo
# image against bench/results/artifact-hashes.txt (no output byte changed),
# then every fuzz target for FUZZ_SECONDS each. Ends with one summary line
# of the counts.
set -euo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo fmt --all -- --check
# clippy in the release profile shares build scripts and proc macros with
# the tests below (the dev profile would build them a second time).
cargo clippy --release --workspace --all-targets --locked -- -D warnings
scripts/shape.sh
REQUIRE_ORACLES=1 cargo test --workspace --locked --release --no-fail-fast 2>&1 | tee "$log" || status=$?
passed=$(grep -Eo '^test result: .* ([0-9]+) passed' "$log" | grep -Eo '[0-9]+ passed' | awk '{s+=$1} END {print s+0}')
failed=$(grep -Eo '^test result: .* ([0-9]+) failed' "$log" | grep -Eo '[0-9]+ failed' | awk '{s+=$1} END {print s+0}')
if [ "$status" -eq 0 ]; then
  bench/artifact_hashes.py --fixtures "${HASH_FIXTURES:-a}" --check bench/results/artifact-hashes.txt \
    || { status=$?; failed=$((failed + 1)); echo "artifact hashes changed" >&2; }
fi
if [ "$status" -eq 0 ]; then
  scripts/fuzz.sh "${FUZZ_SECONDS:-15}" || { status=$?; failed=$((failed + 1)); echo "fuzzing failed" >&2; }
fi
echo "tests: $passed passed, $failed failed"
exit "$status"
