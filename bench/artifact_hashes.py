#!/usr/bin/env python3
"""SHA-256 of every artifact of `cloudimg package --all`, on the demo image
and on the benchmark's fixtures, to show that a refactoring changes no byte.

Fixtures come from bench/bench.py (the same code, so the same bytes): (a)
the demo image (`cloudimg image build`; unlike bench.py there is no sgdisk
fallback, whose bytes would differ), (c) the 4 GiB image that is all data,
and (b) the 10 GiB image with 1 GiB of data when asked for. SOURCE_DATE_EPOCH
is fixed, so timestamps and seeded GUIDs are too, and so are the GUIDs of
the fixtures' GPTs (bench.py lets sgdisk pick random ones). Each fixture's image and
artifacts live under --work (target/ by default) and are removed once hashed.

Prints one `sha256  fixture-X/file` line per artifact, sorted, after the
input's own `sha256  fixture-X.raw` (so a changed input is told apart from
a changed packager). With --check
FILE it compares them with FILE (a previous run's output) instead, prints
the differences and exits 1 if there is any.

Usage: bench/artifact_hashes.py [--fixtures a,c] [--work DIR] [--check FILE]
                                [--cloudimg PATH]
"""

import argparse
import hashlib
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (fixture code shared with the benchmark)

# The binary under test (--cloudimg; bench.py's by default).
CLOUDIMG = bench.CLOUDIMG

# Any fixed value will do; this one is 2023-11-14T22:13:20Z.
SOURCE_DATE_EPOCH = "1700000000"


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def image(name, work):
    """The fixture's image, built as bench.py builds it, with its GPT's
    GUIDs fixed (sgdisk -o and -n pick random ones)."""
    path = os.path.join(work, f"fixture-{name}.raw")
    if os.path.exists(path):
        os.remove(path)
    if name == "a":
        subprocess.run([CLOUDIMG, "image", "build", "-o", path], check=True,
                       stdout=subprocess.DEVNULL)
        return path
    bench.fixture(name, work)
    parts = 3 if name == "b" else 1
    guids = [a for i in range(1, parts + 1) for a in ("-u", f"{i}:11111111-2222-4333-8444-{i:012d}")]
    subprocess.run(["sgdisk", "-U", "11111111-2222-4333-8444-555555555555", *guids, path],
                   check=True, capture_output=True)
    return path


def hashes(name, work):
    img = image(name, work)
    out = os.path.join(work, f"fixture-{name}")
    shutil.rmtree(out, ignore_errors=True)
    try:
        subprocess.run([CLOUDIMG, "package", img, "--all", "-o", out, "-q"], check=True,
                       stdout=subprocess.DEVNULL)
        lines = [f"{sha256(img)}  {os.path.relpath(img, work)}"]
        for root, _, files in os.walk(out):
            for f in files:
                path = os.path.join(root, f)
                lines.append(f"{sha256(path)}  {os.path.relpath(path, work)}")
        return sorted(lines, key=lambda line: line.split("  ", 1)[1])
    finally:
        shutil.rmtree(out, ignore_errors=True)
        os.remove(img)


def fixture_of(line):
    """`fixture-a` of `HASH  fixture-a/capos.qcow2` or `HASH  fixture-a.raw`."""
    return line.split("  ", 1)[1].split("/", 1)[0].removesuffix(".raw")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fixtures", default="a,c")
    ap.add_argument("--work", default=os.path.join(bench.ROOT, "target", "artifact-hashes"))
    ap.add_argument("--check", metavar="FILE", default=None)
    ap.add_argument("--cloudimg", default=bench.CLOUDIMG, help="the binary to run")
    args = ap.parse_args()
    global CLOUDIMG
    CLOUDIMG = os.path.abspath(args.cloudimg)
    if not os.path.exists(CLOUDIMG):
        raise SystemExit(f"{CLOUDIMG} is missing: run `make build` first")
    os.environ["SOURCE_DATE_EPOCH"] = SOURCE_DATE_EPOCH
    os.makedirs(args.work, exist_ok=True)
    lines = []
    for name in args.fixtures.split(","):
        print(f"packaging fixture ({name.strip()}) ...", file=sys.stderr)
        lines += hashes(name.strip(), args.work)
    if args.check is None:
        print("\n".join(lines))
        return
    with open(args.check) as f:
        want = [line for line in f.read().splitlines() if line and not line.startswith("#")]
    fixtures = {fixture_of(line) for line in lines}
    want = [line for line in want if fixture_of(line) in fixtures]
    missing = sorted(set(want) - set(lines))
    extra = sorted(set(lines) - set(want))
    for line in missing:
        print(f"- {line}")
    for line in extra:
        print(f"+ {line}")
    if missing or extra:
        raise SystemExit(f"artifact hashes differ from {args.check}")
    print(f"artifact hashes match {args.check} ({len(lines)} artifacts)")


if __name__ == "__main__":
    main()
