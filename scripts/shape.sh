#!/usr/bin/env bash
# The code's shape, measured with the tools everyone has (issue 12): no
# non-test Rust source file over MAX_LINES lines, and at most MAX_LONG
# functions that clippy's `too_many_lines` (over 100 lines) reports.
# Test files are those under a crate's tests/, fuzz targets, and files
# named tests.rs. Prints what is over and exits 1 when a limit is passed.
set -euo pipefail
cd "$(dirname "$0")/.."
MAX_LINES=${MAX_LINES:-900}
MAX_LONG=${MAX_LONG:-8}
status=0
while read -r n f; do
  [ "$f" = total ] && continue
  if [ "$n" -gt "$MAX_LINES" ]; then
    echo "shape: $f has $n lines (at most $MAX_LINES)" >&2
    status=1
  fi
done < <(find crates -name '*.rs' -path '*/src/*' ! -name tests.rs -print0 | xargs -0 wc -l)
long=$(cargo clippy --release --workspace --locked -- -W clippy::too_many_lines 2>&1 |
  grep -A3 'too many lines' | grep -Eo -- '--> [^ ]+' | sed 's/^--> //' | sort -u || true)
count=$(printf '%s' "$long" | grep -c . || true)
if [ "$count" -gt "$MAX_LONG" ]; then
  echo "shape: $count functions over 100 lines (at most $MAX_LONG):" >&2
  printf '  %s\n' $long >&2
  status=1
fi
echo "shape: files at most $MAX_LINES lines: $([ $status -eq 0 ] && echo ok || echo see above); $count long functions (at most $MAX_LONG)"
exit "$status"
