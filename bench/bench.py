#!/usr/bin/env python3
"""Benchmark `cloudimg package` against the stock-tool pipeline, in one run.

For each fixture it runs, on the same machine and in the same invocation:

* stock (gzip): cp --sparse=always, truncate to the GiB, sgdisk -e,
  tar --format=oldgnu -Sczf, qemu-img convert -O vpc (fixed, force_size),
  qemu-img convert -O vmdk (streamOptimized), cp --sparse=always (raw);
* stock (pigz): the same with pigz in place of gzip;
* cloudimg package (self-verification included).

It prints wall time, CPU time and peak RSS of each side, the ratios
stock/cloudimg, each output's size with its ratio to the stock output's,
and writes everything as JSON (bench/results/*.json by default).

Fixtures: (a) the 256 MiB demo image (`cloudimg image build`, or a GPT
image made with sgdisk when that command is not available); (b) a 10 GiB
GPT image with 1 GiB of data, half random, half text-like, the rest holes;
(c) a 4 GiB image that is all data.

Usage: bench/bench.py [--fixtures a,b,c] [--work DIR] [--runs N] [--json FILE]
"""

import argparse
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLOUDIMG = os.path.join(ROOT, "target", "release", "cloudimg")
MIB = 1 << 20
GIB = 1 << 30

# Each measured command runs inside this wrapper, a fresh process, so that
# RUSAGE_CHILDREN covers exactly that command and its descendants.
WRAPPER = r"""
import resource, subprocess, sys, time, json
t = time.monotonic()
r = subprocess.run(["/bin/bash", "-c", sys.argv[1]])
wall = time.monotonic() - t
u = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"rc": r.returncode, "wall": wall, "cpu": u.ru_utime + u.ru_stime,
                  "user": u.ru_utime, "sys": u.ru_stime, "maxrss_kib": u.ru_maxrss}))
"""


def measure(script):
    out = subprocess.run([sys.executable, "-c", WRAPPER, script], capture_output=True, text=True)
    lines = out.stdout.strip().splitlines()
    if not lines:
        raise SystemExit(f"benchmark wrapper failed: {out.stderr}")
    m = json.loads(lines[-1])
    if m["rc"] != 0:
        raise SystemExit(f"command failed ({m['rc']}): {script}\n{out.stderr}")
    return m


def text_like(rng, n):
    """Text with the statistics of prose or source code: words drawn with
    a Zipf distribution from a vocabulary of 4000 made-up words, separated
    by spaces, punctuation and indented line breaks. (A tiny vocabulary
    makes deflate unrealistically slow and text unrealistically
    compressible.)"""
    letters = b"etaoinshrdlcumwfgypbvkjxqz_"
    vocab = []
    for i in range(4000):
        k = 2 + int(rng.expovariate(1 / 5))
        vocab.append(bytes(rng.choice(letters[:20 + i % 7]) for _ in range(k)))
    cum, total = [], 0.0
    for r in range(len(vocab)):
        total += 1 / (r + 1)
        cum.append(total)
    seps = [b" "] * 12 + [b", ", b". ", b"(", b") ", b" = ", b"; ", b": ",
                          b"\n", b"\n    ", b"\n        ", b"\n            "]
    out, size = [], 0
    while size < n:
        k = 65536
        words = rng.choices(vocab, cum_weights=cum, k=k)
        gaps = rng.choices(seps, k=k)
        chunk = b"".join(w + g for w, g in zip(words, gaps))
        out.append(chunk)
        size += len(chunk)
    return b"".join(out)[:n]


def gpt(path, size):
    with open(path, "wb") as f:
        f.truncate(size)
    subprocess.run(["sgdisk", "-U", "11111111-2222-4333-8444-555555555555",
                    "-n", "1:2048:+1M", "-t", "1:ef02", "-n", "2:0:+128M", "-t", "2:ef00",
                    "-n", "3:0:0", "-t", "3:8300", path], check=True, capture_output=True)


_TEXT_POOL = {}


def text_piece(rng, seed, n):
    """n bytes of text-like data: a slice of a 16 MiB pool generated once
    per seed, at a random offset (deflate sees 32 KiB at a time, so slices
    compress like fresh text; generating it fresh would take minutes)."""
    pool = _TEXT_POOL.get(seed)
    if pool is None:
        pool = _TEXT_POOL[seed] = text_like(random.Random(seed), 16 * MIB + n)
    at = rng.randrange(0, len(pool) - n)
    return pool[at:at + n]


def fill(path, data_bytes, seed, start):
    """Write data_bytes of data from `start`: half random, half text-like,
    in 4 MiB pieces spread over the disk."""
    rng = random.Random(seed)
    size = os.path.getsize(path)
    piece = 4 * MIB
    n = data_bytes // piece
    span = size - start - 64 * MIB
    step = max(piece, (span // n) // MIB * MIB)
    with open(path, "r+b") as f:
        for i in range(n):
            off = start + i * step
            f.seek(off)
            f.write(rng.randbytes(piece) if i % 2 == 0 else text_piece(rng, seed, piece))


def fixture(name, work):
    path = os.path.join(work, f"fixture-{name}.raw")
    if os.path.exists(path):
        return path
    print(f"building fixture ({name}) ...", file=sys.stderr)
    if name == "a":
        r = subprocess.run([CLOUDIMG, "image", "build", "-o", path], capture_output=True)
        if r.returncode != 0:
            gpt(path, 256 * MIB)
            fill(path, 16 * MIB, 1, 2 * MIB)
    elif name == "b":
        gpt(path, 10 * GIB)
        fill(path, GIB, 2, 2 * MIB)
    elif name == "c":
        rng = random.Random(3)
        with open(path, "wb") as f:
            for i in range(4 * GIB // (4 * MIB)):
                f.write(rng.randbytes(4 * MIB) if i % 2 == 0 else text_piece(rng, 3, 4 * MIB))
        subprocess.run(["sgdisk", "-o", "-n", "1:2048:0", path], check=True, capture_output=True)
    return path


def stock_script(img, out, compressor):
    size = os.path.getsize(img)
    grown = -(-size // GIB) * GIB
    tar = "tar --format=oldgnu -Sczf" if compressor == "gzip" else "tar --format=oldgnu -S -I pigz -cf"
    return f"""set -e
rm -rf {out}; mkdir -p {out}
cp --sparse=always {img} {out}/disk.raw
truncate -s {grown} {out}/disk.raw
sgdisk -e {out}/disk.raw >/dev/null
(cd {out} && {tar} disk.raw.tar.gz disk.raw && rm disk.raw)
cp --sparse=always {img} {out}/capos-aws.raw
qemu-img convert -f raw -O vpc -o subformat=fixed,force_size {img} {out}/capos-aws.vhd
qemu-img convert -f raw -O vmdk -o subformat=streamOptimized {img} {out}/capos-aws.vmdk
"""


def cloudimg_script(img, out):
    return f"set -e; rm -rf {out}; {CLOUDIMG} package {img} -o {out} -q >/dev/null"


OUTPUTS = ["disk.raw.tar.gz", "capos-aws.raw", "capos-aws.vhd", "capos-aws.vmdk"]


def sizes(out):
    return {f: os.path.getsize(os.path.join(out, f)) for f in OUTPUTS}


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]


def run_fixture(name, work, runs):
    img = fixture(name, work)
    sides = {
        "stock-gzip": lambda o: stock_script(img, o, "gzip"),
        "stock-pigz": lambda o: stock_script(img, o, "pigz"),
        "cloudimg": lambda o: cloudimg_script(img, o),
    }
    load = os.getloadavg()[0]
    if load > 0.5:
        print(f"warning: load average {load:.2f} before fixture ({name}): other work shares the machine, "
              "and the parallel side suffers more from it", file=sys.stderr)
    result = {"fixture": name, "image_size": os.path.getsize(img), "load_before": load, "sides": {}}
    for side, script in sides.items():
        out = os.path.join(work, f"out-{name}-{side}")
        ms = []
        for _ in range(runs):
            # Each side starts with no dirty pages of the previous one left to
            # write back (cloudimg fsyncs its artifacts; the stock tools do
            # not, so their writeback would otherwise land in the next run).
            subprocess.run(["sync"], check=True)
            ms.append(measure(script(out)))
        result["sides"][side] = {
            "wall_s": median([m["wall"] for m in ms]),
            "cpu_s": median([m["cpu"] for m in ms]),
            "peak_rss_mib": max(m["maxrss_kib"] for m in ms) / 1024,
            "runs": ms,
            "outputs": sizes(out),
        }
        shutil.rmtree(out)
    c = result["sides"]["cloudimg"]
    for side in ("stock-gzip", "stock-pigz"):
        s = result["sides"][side]
        result[f"speedup_vs_{side}"] = s["wall_s"] / c["wall_s"]
        result[f"size_ratio_vs_{side}"] = {f: c["outputs"][f] / s["outputs"][f] for f in OUTPUTS}
    return result


def report(r):
    print(f"\nfixture ({r['fixture']}): {r['image_size'] / GIB:.2f} GiB image")
    print(f"  {'side':<12} {'wall s':>8} {'cpu s':>8} {'peak RSS MiB':>13}   " + "  ".join(f"{f:>16}" for f in OUTPUTS))
    for side, s in r["sides"].items():
        print(f"  {side:<12} {s['wall_s']:8.2f} {s['cpu_s']:8.2f} {s['peak_rss_mib']:13.1f}   "
              + "  ".join(f"{s['outputs'][f]:>16}" for f in OUTPUTS))
    for side in ("stock-gzip", "stock-pigz"):
        ratios = "  ".join(f"{r[f'size_ratio_vs_{side}'][f]:>16.4f}" for f in OUTPUTS)
        print(f"  {side}/cloudimg wall: {r[f'speedup_vs_{side}']:.2f}x    cloudimg/{side} size: {ratios}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fixtures", default="a,b,c")
    ap.add_argument("--work", default=os.path.join(ROOT, "target", "bench"))
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if not os.path.exists(CLOUDIMG):
        raise SystemExit(f"{CLOUDIMG} is missing: run `make build` first")
    os.makedirs(args.work, exist_ok=True)
    results = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "commit": subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                                 capture_output=True, text=True).stdout.strip(),
        "fixtures": [],
    }
    for name in args.fixtures.split(","):
        r = run_fixture(name.strip(), args.work, args.runs)
        report(r)
        results["fixtures"].append(r)
    path = args.json or os.path.join(ROOT, "bench", "results", time.strftime("%Y%m%d-%H%M%S.json"))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(results, f, indent=2)
    print(f"\nresults: {path}")


if __name__ == "__main__":
    main()
