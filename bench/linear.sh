#!/usr/bin/env bash
# Time every parser's adversarial inputs (crates/disk/tests/linear.rs) at
# growing scales and print, per input, the seconds and the ratio of each
# scale's time to the first one's: linear time shows as ratios close to
# the scale ratios (4, 16). For the README; nothing here is asserted (the
# test asserts counted work, never times).
#
#   bench/linear.sh [SCALES]        (default 2,8,32: 16 to 256 MiB disks)
set -euo pipefail
cd "$(dirname "$0")/.."
SCALES=${1:-2,8,32}
LOG=$(mktemp)
trap 'rm -f "$LOG"' EXIT
LINEAR_SCALES=$SCALES nice -n 5 cargo test --release --locked -p cloudimg-disk --test linear \
    -- --nocapture --test-threads=1 > "$LOG" 2>&1 || { tail -40 "$LOG" >&2; exit 1; }
grep -o 'LINEAR .*' "$LOG" | python3 -c '
import re, sys
rows = {}
for line in sys.stdin:
    m = re.match(r"LINEAR (.*) scale (\d+): file (\d+) bytes, read (\d+) bytes in (\d+) calls, peak \+(\d+) KiB, ([\d.]+) s", line)
    if m:
        name, k, size, rd, calls, peak, secs = m.groups()
        rows.setdefault(name, []).append((int(k), int(size), int(rd), int(peak), float(secs)))
print("%-48s %5s %9s %9s %9s %8s %10s" % ("input", "scale", "file MiB", "read MiB", "peak MiB", "seconds", "time ratio"))
for name, rs in rows.items():
    t0 = rs[0][4]
    for k, size, rd, peak, secs in rs:
        ratio = f"{secs / t0:.1f}" if t0 > 0.002 else "-"
        print(f"{name:48} {k:>5} {size/2**20:>9.1f} {rd/2**20:>9.1f} {peak/1024:>9.1f} {secs:>8.3f} {ratio:>10}")
'
