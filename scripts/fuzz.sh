#!/usr/bin/env bash
# Fuzz every cloudimg parser for a bounded time and fail on any crash.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]     (default 15: 6 targets, ~90 s)
#
# Installs cargo-fuzz (from crates.io, --locked) if it is missing, builds
# the targets in fuzz/ with nightly (no sanitizer: the library's only
# unsafe code is the SHA-256 intrinsics module, which no parser reaches; debug assertions on, so arithmetic overflow is a crash),
# seeds each corpus with small images made by our own writers
# (fuzz/seedgen) and files from the shared corpus, then runs each target.
# Corpora live in target/fuzz-corpus/<target>/ (kept between runs);
# crashes are written to fuzz/artifacts/<target>/ and make the script fail.
# FUZZ_TARGETS="gpt vhd" limits the run to some targets.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SECS=${1:-15}
TARGETS=${FUZZ_TARGETS:-"gpt vhd vmdk tar gzip detect"}
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
for t in gpt vhd vmdk tar gzip detect; do mkdir -p "$OUT/$t"; done
cp "$SEEDS"/gpt/* "$OUT/gpt/"
cp "$SEEDS"/vhd/* "$OUT/vhd/"
cp "$SEEDS"/vmdk/* "$OUT/vmdk/"
cp "$SEEDS"/tar/* "$OUT/tar/"
cp "$SEEDS"/gzip/* "$SEEDS"/tar/* "$OUT/gzip/"
cp "$SEEDS"/*/* "$OUT/detect/"
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
else
    echo "fuzz.sh: no shared corpus at $CORPUS_SRC; seeding from our writers only"
fi

failed=()
for t in $TARGETS; do
    case $t in
        tar|vhd|gpt) max_len=300000 ;;
        *) max_len=70000 ;;
    esac
    echo "fuzz.sh: fuzzing $t for ${SECS}s"
    mkdir -p "fuzz/artifacts/$t"
    # -timeout: one input taking this long is a hang; -rss_limit_mb: an
    # input needing this much memory is an allocation bomb.
    if ! (cd fuzz && cargo +nightly fuzz run -s none -a "$t" "$OUT/$t" -- \
            -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 \
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
