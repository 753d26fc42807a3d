#!/usr/bin/env bash
# Fuzz every cloudimg parser for a bounded time and fail on any crash.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]     (default 15: 12 targets, ~3 min)
#
# Installs cargo-fuzz (from crates.io, --locked) if it is missing, builds
# the targets in fuzz/ with nightly (no sanitizer: the library's only
# unsafe code is the SHA-256 intrinsics module, which no parser reaches;
# debug assertions on, so arithmetic overflow is a crash),
# seeds each corpus with small images made by our own writers
# (fuzz/seedgen) and files from the shared corpus, then runs each target.
# Corpora live in target/fuzz-corpus/<target>/ (kept between runs);
# crashes are written to fuzz/artifacts/<target>/ and make the script fail.
# FUZZ_TARGETS="gpt vhd" limits the run to some targets.
#
# The differential target compares cloudimg's reading of mutants with
# qemu-img's and GNU tar's (crates/disk/tests/differential.rs's seeds,
# mutators and judgement): it needs qemu-img, GNU tar and timeout, and
# under CI (or REQUIRE_ORACLES=1) fails when one is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SECS=${1:-15}
# The reproducers of bugs the targets found are kept in fuzz/artifacts/
# (fuzz/README.md says what each was); libFuzzer replays none by itself,
# so the script runs each against its target first.
TARGETS=${FUZZ_TARGETS:-"gpt vhd vmdk tar gzip detect qcow2 vhdx ova check deflate differential"}
CORPUS_SRC=${CLOUDIMG_CORPUS:-$ROOT/../shared/corpus}
OUT=$ROOT/target/fuzz-corpus

if ! rustup toolchain list | grep -q '^nightly'; then
    echo "fuzz.sh: the nightly toolchain is needed (rustup toolchain install nightly)" >&2
    exit 1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

echo "fuzz.sh: building the targets"
(cd fuzz && cargo +nightly fuzz build -s none -a)
(cd fuzz && cargo build --release --locked -p cloudimg-fuzz-seedgen)

echo "fuzz.sh: seeding corpora"
SEEDS=$(mktemp -d)
trap 'rm -rf "$SEEDS"' EXIT
fuzz/target/release/cloudimg-fuzz-seedgen "$SEEDS"
ALL_TARGETS="gpt vhd vmdk tar gzip detect qcow2 vhdx ova check deflate differential"
for t in $ALL_TARGETS; do mkdir -p "$OUT/$t"; done
cp "$SEEDS"/gpt/* "$OUT/gpt/"
cp "$SEEDS"/vhd/* "$OUT/vhd/"
cp "$SEEDS"/vmdk/* "$OUT/vmdk/"
cp "$SEEDS"/tar/* "$OUT/tar/"
cp "$SEEDS"/gzip/* "$SEEDS"/tar/* "$OUT/gzip/"
for t in qcow2 vhdx ova check deflate; do cp "$SEEDS/$t"/* "$OUT/$t/"; done
cp "$SEEDS"/*/* "$OUT/detect/"
# differential: byte 0 picks a seed, byte 1 a mutator, bytes 2..10 the
# mutation number; one input per seed and mutator to start from.
for s in $(seq 0 15); do
    for m in $(seq 0 11); do
        printf "\\x$(printf %02x "$s")\\x$(printf %02x "$m")\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00" \
            > "$OUT/differential/s$s-m$m"
    done
done
if [ -d "$CORPUS_SRC" ]; then
    c=$CORPUS_SRC
    cp "$c"/gpt-rs/gpt-disk.img "$OUT/gpt/" 2>/dev/null || true
    xz -dc "$c"/util-linux/gpt.img.xz > "$OUT/gpt/util-linux-gpt.img" 2>/dev/null || true
    for f in hyperv2012r2-dynamic.vhd afl5.img; do
        bzip2 -dc "$c/qemu/sample_images/$f.bz2" > "$OUT/vhd/qemu-$f" 2>/dev/null || true
    done
    bzip2 -dc "$c"/qemu/sample_images/afl9.vmdk.bz2 > "$OUT/vmdk/qemu-afl9.vmdk" 2>/dev/null || true
    cp "$c"/vmdk-rs/streamOptimized.vmdk "$OUT/vmdk/vmdk-rs-streamOptimized.vmdk" 2>/dev/null || true
    cp "$c"/dfvfs/ext2.vmdk "$OUT/vmdk/dfvfs-ext2.vmdk" 2>/dev/null || true
    for f in "$c"/golang-go/archive-tar/*.tar "$c"/tar-rs/*.tar "$c"/cpython/*.tar; do
        [ -f "$f" ] && cp "$f" "$OUT/tar/$(basename "$(dirname "$f")")-$(basename "$f")"
    done
    for f in "$c"/flate2-rs/*.gz "$c"/dfvfs/*.gz; do
        [ -f "$f" ] && cp "$f" "$OUT/gzip/$(basename "$(dirname "$f")")-$(basename "$f")"
    done
    cp "$OUT"/vhd/qemu-* "$OUT"/vmdk/qemu-* "$OUT/detect/" 2>/dev/null || true
    # QCOW2: the dfvfs image as it is (it starts with the magic, so the
    # target takes it raw) and page-encoded. VHDX: the qemu images are
    # 30 and 100 MiB (66 MiB of it data blocks): page-encoded, keeping
    # the structures in the first 140 kB of records (data blocks read as zeros).
    seedgen=fuzz/target/release/cloudimg-fuzz-seedgen
    if [ -f "$c"/dfvfs/ext2.qcow2 ]; then
        cp "$c"/dfvfs/ext2.qcow2 "$OUT/qcow2/dfvfs-ext2.qcow2"
        "$seedgen" --encode "$c"/dfvfs/ext2.qcow2 "$OUT/qcow2/dfvfs-ext2.pages"
    fi
    for f in "$c"/qemu/sample_images/*.vhdx.bz2; do
        [ -f "$f" ] || continue
        b=$(basename "$f" .vhdx.bz2)
        bzip2 -dc "$f" > "$SEEDS/$b.vhdx"
        "$seedgen" --encode "$SEEDS/$b.vhdx" "$OUT/vhdx/qemu-$b.pages" 140000
        rm -f "$SEEDS/$b.vhdx"
    done
else
    echo "fuzz.sh: no shared corpus at $CORPUS_SRC; seeding from our writers only"
fi

failed=()
for t in $TARGETS; do
    case $t in
        tar|vhd|gpt) max_len=300000 ;;
        qcow2) max_len=600000 ;;
        vhdx) max_len=150000 ;;
        differential) max_len=10 ;;
        *) max_len=70000 ;;
    esac
    # One differential input runs cloudimg (in a child limited to 60 s)
    # and qemu-img or GNU tar: allow it that long.
    timeout=10
    [ "$t" = differential ] && timeout=150
    mkdir -p "fuzz/artifacts/$t"
    repro=(fuzz/artifacts/"$t"/*)
    if [ -e "${repro[0]}" ]; then
        echo "fuzz.sh: replaying ${#repro[@]} reproducer(s) of $t"
        if ! (cd fuzz && cargo +nightly fuzz run -s none -a "$t" "${repro[@]/#fuzz\//}" \
                > "$ROOT/target/fuzz-$t-replay.log" 2>&1); then
            echo "fuzz.sh: $t fails on a kept reproducer; its log:" >&2
            tail -40 "$ROOT/target/fuzz-$t-replay.log" >&2
            failed+=("$t")
            continue
        fi
    fi
    echo "fuzz.sh: fuzzing $t for ${SECS}s"
    # -timeout: one input taking this long is a hang; -rss_limit_mb: an
    # input needing this much memory is an allocation bomb.
    if ! (cd fuzz && cargo +nightly fuzz run -s none -a "$t" "$OUT/$t" -- \
            -max_total_time="$SECS" -timeout="$timeout" -rss_limit_mb=2048 \
            -max_len="$max_len" -print_final_stats=1 \
            > "$ROOT/target/fuzz-$t.log" 2>&1); then
        echo "fuzz.sh: $t FAILED; its log:" >&2
        tail -40 "$ROOT/target/fuzz-$t.log" >&2
        failed+=("$t")
    else
        grep -E '^stat::number_of_executed_runs|^Done' "$ROOT/target/fuzz-$t.log" | tr '\n' ' ' || true
        echo
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz.sh: crashes in: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
echo "fuzz.sh: all targets ran ${SECS}s without a crash"
