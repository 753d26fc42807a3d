//! Dynamic VHDX writer/verifier/reader against qemu-img and corpus VHDXs.

mod common;

use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use cloudimg_disk::formats::vhdx::{self, wire, writer::VhdxLayout};
use cloudimg_disk::formats::{Format, WriteOptions};
use cloudimg_disk::io::{sha256_disk, sha256_file, DiskDigest, RawFile};
use cloudimg_disk::layout::Guid;
use cloudimg_disk::{ExtentKind, VirtualDisk};
use common::{require_tool, run, Rng};

const OPTS: WriteOptions = WriteOptions {
    mtime: 1_700_000_000,
    seed: [7; 32],
};

/// A sparse raw disk of `size` bytes with a GPT and seeded random data
/// runs separated by holes, plus a few long runs so that some blocks are
/// wholly zero and some wholly data.
fn make_input(path: &Path, size: u64, seed: u64) {
    let f = common::gpt_file(path, size, seed);
    let mut rng = Rng::new(seed);
    let mut off = 1 << 20;
    // Data for the first ~third of the disk, then nothing but one sector
    // near the end.
    while off + 65536 < size / 3 {
        let mut buf = vec![0u8; 4096 * (1 + rng.next_u64() as usize % 8)];
        rng.fill(&mut buf);
        f.write_all_at(&buf, off).unwrap();
        off += 256 * 1024 + (rng.next_u64() % 64) * 4096;
    }
    f.write_all_at(&[0x5a; 512], size - 64 * 1024).unwrap();
}

fn write_vhdx(input: &Path, out: &Path, opts: &WriteOptions) {
    let disk = RawFile::open(input).unwrap();
    let f = File::create(out).unwrap();
    vhdx::write_dynamic(&disk, &f, opts).unwrap();
}

struct Case {
    dir: tempfile::TempDir,
    input: PathBuf,
    out: PathBuf,
}

fn case(size: u64, seed: u64) -> Case {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.raw");
    let out = dir.path().join("out.vhdx");
    make_input(&input, size, seed);
    write_vhdx(&input, &out, &OPTS);
    Case { dir, input, out }
}

// A multiple of 512 that is neither MiB- nor block-aligned.
const ODD_SIZE: u64 = 21 * (1 << 20) + 1536;

fn data_bytes(e: Vec<cloudimg_disk::Extent>) -> u64 {
    e.iter()
        .filter(|e| e.kind == ExtentKind::Data)
        .map(|e| e.len)
        .sum()
}

#[test]
fn round_trip_verifies() {
    for (size, seed) in [(ODD_SIZE, 1), (64 << 20, 2)] {
        let c = case(size, seed);
        let report = cloudimg_disk::verify::verify_file(
            &File::open(&c.out).unwrap(),
            cloudimg_disk::formats::Format::Vhdx,
        )
        .unwrap();
        assert_eq!(report.findings, vec![], "size {size}");
        assert_eq!(report.format, Format::Vhdx);
        assert_eq!(report.virtual_size, Some(size));
        assert_eq!(report.virtual_sha256, Some(sha256_file(&c.input).unwrap()));
        assert_eq!(report.details["creator"], "cloudimg");
        assert_eq!(report.details["block_size"], 8 << 20);
        assert_eq!(report.details["logical_sector_size"], 512);
        assert_eq!(report.details["physical_sector_size"], 4096);
        assert_eq!(report.details["current_header"], 2);
        assert_eq!(report.details["log_guid"], Guid::ZERO.to_string());
        // Verifying against the input itself.
        let input = RawFile::open(&c.input).unwrap();
        let sha = sha256_disk(&input).unwrap();
        let dg = DiskDigest::comparing(&input, sha).unwrap();
        let r = cloudimg_disk::verify::verify_file_with(
            &File::open(&c.out).unwrap(),
            cloudimg_disk::formats::Format::Vhdx,
            cloudimg_disk::verify::VerifyOptions {
                digest: dg,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(r.virtual_sha256, Some(sha));
        // Reader: same bytes; zero blocks are zero extents.
        let d = vhdx::open(File::open(&c.out).unwrap()).unwrap();
        assert_eq!(d.size(), size);
        assert_eq!(sha256_disk(&d).unwrap(), sha);
        let present = report.details["blocks_present"].as_u64().unwrap();
        assert_eq!(data_bytes(d.extents().unwrap()), {
            let bs = 8u64 << 20;
            // Every present block is whole except a short last one.
            let last = size.div_ceil(bs) - 1;
            let last_present = d
                .extents()
                .unwrap()
                .iter()
                .any(|e| e.kind == ExtentKind::Data && e.end() == size);
            present * bs
                - if last_present {
                    (last + 1) * bs - size
                } else {
                    0
                }
        });
        // Data is 1 MiB-aligned and the file is sparse.
        let len = std::fs::metadata(&c.out).unwrap().len();
        assert_eq!(len % (1 << 20), 0);
        let blocks = std::fs::metadata(&c.out).unwrap().blocks() * 512;
        assert!(blocks < len, "output is not sparse: {blocks} of {len}");
    }
}

#[test]
fn output_is_reproducible_and_seeded() {
    let c = case(ODD_SIZE, 5);
    let again = c.dir.path().join("again.vhdx");
    write_vhdx(&c.input, &again, &OPTS);
    assert_eq!(
        std::fs::read(&c.out).unwrap(),
        std::fs::read(&again).unwrap()
    );
    let other = c.dir.path().join("other.vhdx");
    let opts = WriteOptions {
        seed: [8; 32],
        ..OPTS
    };
    write_vhdx(&c.input, &other, &opts);
    let (a, b) = (
        std::fs::read(&c.out).unwrap(),
        std::fs::read(&other).unwrap(),
    );
    assert_ne!(a, b);
    // Only header GUIDs/checksums and the page 83 GUID differ.
    let r1 = cloudimg_disk::verify::verify_file(
        &File::open(&c.out).unwrap(),
        cloudimg_disk::formats::Format::Vhdx,
    )
    .unwrap();
    let r2 = cloudimg_disk::verify::verify_file(
        &File::open(&other).unwrap(),
        cloudimg_disk::formats::Format::Vhdx,
    )
    .unwrap();
    assert_ne!(r1.details["page83"], r2.details["page83"]);
    assert_ne!(r1.details["data_write_guid"], r2.details["data_write_guid"]);
    assert_eq!(r1.virtual_sha256, r2.virtual_sha256);
    assert_eq!(a.len(), b.len());
}

#[test]
fn qemu_checks_reads_and_compares() {
    if !require_tool("qemu-img") {
        return;
    }
    for (size, seed) in [(ODD_SIZE, 3), (40 << 20, 4)] {
        let c = case(size, seed);
        let check = run(Command::new("qemu-img")
            .args(["check", "-f", "vhdx"])
            .arg(&c.out));
        assert!(check.contains("No errors were found"), "{check}");
        let info = run(Command::new("qemu-img")
            .args(["info", "-f", "vhdx", "--output=json"])
            .arg(&c.out));
        let v: serde_json::Value = serde_json::from_str(&info).unwrap();
        assert_eq!(v["format"], "vhdx");
        assert_eq!(v["virtual-size"], size);
        assert_eq!(v["cluster-size"], 8 << 20);
        run(Command::new("qemu-img")
            .args(["compare", "-f", "raw", "-F", "vhdx"])
            .arg(&c.input)
            .arg(&c.out));
        // Size against qemu's own conversion of the same input.
        let q = c.dir.path().join("qemu.vhdx");
        common::qemu_convert_raw(&c.input, "vhdx", &["-o", "subformat=dynamic"], &q);
        let ours = std::fs::metadata(&c.out).unwrap().len();
        let theirs = std::fs::metadata(&q).unwrap().len();
        let ratio = ours as f64 / theirs as f64;
        eprintln!("size {size}: ours {ours} bytes, qemu-img {theirs} bytes, ratio {ratio:.3}");
        // qemu leaves 5 MiB after the metadata; we do not.
        assert!(
            ours <= theirs && ours + (5 << 20) >= theirs,
            "ours {ours}, qemu {theirs}"
        );
        // Both hold the same blocks.
        let rq = cloudimg_disk::verify::verify_file(
            &File::open(&q).unwrap(),
            cloudimg_disk::formats::Format::Vhdx,
        )
        .unwrap();
        let ro = cloudimg_disk::verify::verify_file(
            &File::open(&c.out).unwrap(),
            cloudimg_disk::formats::Format::Vhdx,
        )
        .unwrap();
        assert_eq!(rq.findings, vec![]);
        assert_eq!(rq.details["blocks_present"], ro.details["blocks_present"]);
        assert_eq!(rq.virtual_sha256, ro.virtual_sha256);
    }
}

#[test]
fn four_k_sectors_and_other_block_sizes_round_trip() {
    let c = case(ODD_SIZE - 1536 + 4096, 6);
    for (bs, ls) in [(1u32 << 20, 4096u32), (2 << 20, 512), (256 << 20, 4096)] {
        let out = c.dir.path().join(format!("l{bs}-{ls}.vhdx"));
        let layout = VhdxLayout {
            block_size: bs,
            logical_sector_size: ls,
            physical_sector_size: 4096,
        };
        let disk = RawFile::open(&c.input).unwrap();
        vhdx::writer::write_dynamic_with(&disk, &File::create(&out).unwrap(), &OPTS, &layout)
            .unwrap();
        let r = cloudimg_disk::verify::verify_file(
            &File::open(&out).unwrap(),
            cloudimg_disk::formats::Format::Vhdx,
        )
        .unwrap();
        assert_eq!(r.findings, vec![], "{bs} {ls}");
        assert_eq!(r.virtual_sha256, Some(sha256_file(&c.input).unwrap()));
        assert_eq!(
            r.details["chunk_ratio"],
            (1u64 << 23) * ls as u64 / bs as u64
        );
        // qemu 7.2 opens only 512-byte logical sectors ("Operation not
        // supported" otherwise).
        if ls == 512 && require_tool("qemu-img") {
            let check = run(Command::new("qemu-img")
                .args(["check", "-f", "vhdx"])
                .arg(&out));
            assert!(check.contains("No errors were found"), "{check}");
            run(Command::new("qemu-img")
                .args(["compare", "-f", "raw", "-F", "vhdx"])
                .arg(&c.input)
                .arg(&out));
        }
    }
}

#[test]
fn reads_images_made_by_qemu() {
    if !require_tool("qemu-img") {
        return;
    }
    let c = case(ODD_SIZE, 7);
    let sha = sha256_file(&c.input).unwrap();
    for (name, opts, bs) in [
        ("dyn", "subformat=dynamic", 8u64 << 20),
        ("fixed", "subformat=fixed", 8 << 20),
        ("bs1m", "block_size=1M", 1 << 20),
    ] {
        let q = c.dir.path().join(format!("{name}.vhdx"));
        run(Command::new("qemu-img")
            .args(["convert", "-f", "raw", "-O", "vhdx", "-o", opts])
            .arg(&c.input)
            .arg(&q));
        let d = vhdx::open(File::open(&q).unwrap()).unwrap();
        assert_eq!(d.size(), ODD_SIZE, "{name}");
        assert_eq!(sha256_disk(&d).unwrap(), sha, "{name}");
        let r = cloudimg_disk::verify::verify_file(
            &File::open(&q).unwrap(),
            cloudimg_disk::formats::Format::Vhdx,
        )
        .unwrap();
        assert_eq!(r.findings, vec![], "{name}");
        assert_eq!(r.virtual_sha256, Some(sha), "{name}");
        assert_eq!(r.details["block_size"], bs, "{name}");
        assert_eq!(r.details["leave_blocks_allocated"], name == "fixed");
        assert!(r.details["creator"].as_str().unwrap().starts_with("QEMU v"));
    }
}

fn bunzip(rel: &str, dir: &Path) -> Option<PathBuf> {
    let src = common::corpus(rel)?;
    if !require_tool("bzip2") {
        return None;
    }
    let out = dir.join(Path::new(rel).file_stem().unwrap());
    let data = Command::new("bzip2").arg("-dc").arg(&src).output().unwrap();
    assert!(data.status.success());
    std::fs::write(&out, data.stdout).unwrap();
    Some(out)
}

/// SHA-256 of `n` bytes of `b`.
fn read_range(d: &dyn VirtualDisk, offset: u64, n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    d.read_at(&mut v, offset).unwrap();
    v
}

#[test]
fn hyperv_corpus_image_decodes() {
    let dir = tempfile::tempdir().unwrap();
    let Some(p) = bunzip("qemu/sample_images/iotest-dynamic-1G.vhdx.bz2", dir.path()) else {
        return;
    };
    assert_eq!(std::fs::metadata(&p).unwrap().len(), 104857600);
    let r = cloudimg_disk::verify::verify_file(
        &File::open(&p).unwrap(),
        cloudimg_disk::formats::Format::Vhdx,
    )
    .unwrap();
    let container: Vec<_> = r
        .findings
        .iter()
        .filter(|f| f.layer == cloudimg_disk::verify::Layer::Container)
        .collect();
    assert_eq!(container, Vec::<&cloudimg_disk::verify::Finding>::new());
    assert_eq!(r.details["creator"], "Microsoft Windows 6.2.9200.16384");
    assert_eq!(
        r.details["header_sequence_numbers"],
        serde_json::json!([14, 15])
    );
    assert_eq!(r.details["current_header"], 2);
    assert_eq!(r.details["log_guid"], Guid::ZERO.to_string());
    assert_eq!(r.details["block_size"], 33554432);
    assert_eq!(r.details["logical_sector_size"], 512);
    assert_eq!(r.details["physical_sector_size"], 4096);
    assert_eq!(r.virtual_size, Some(1073741824));
    assert_eq!(
        r.virtual_sha256.unwrap().to_string(),
        "d3d112d8dab7fd360609f7d5a7b769904b7a2a7d7b6b8c535f65a23293c05478"
    );
    let d = vhdx::open(File::open(&p).unwrap()).unwrap();
    assert!(read_range(&*d, 34603008 - 4096, 4096)
        .iter()
        .all(|&b| b == 0xa5));
    assert!(read_range(&*d, 34603008, 4096).iter().all(|&b| b == 0x96));
    assert!(read_range(&*d, 69206016, 4096).iter().all(|&b| b == 0));
}

/// The content the corpus README gives for the dirty-log image after
/// replay: 18 MiB of 0xA5, then zeros up to 10 GiB, as a sparse raw file.
fn dirty_log_expected(dir: &Path) -> RawFile {
    let p = dir.join("expected.raw");
    let f = File::create(&p).unwrap();
    f.set_len(10 << 30).unwrap();
    f.write_all_at(&vec![0xa5; 0x1200000], 0).unwrap();
    RawFile::open(&p).unwrap()
}

#[test]
fn dirty_log_is_replayed_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let Some(p) = bunzip(
        "qemu/sample_images/iotest-dirtylog-10G-4M.vhdx.bz2",
        dir.path(),
    ) else {
        return;
    };
    let before = std::fs::read(&p).unwrap();
    // Compare with the expected content rather than hash 10 GiB (see
    // dirty_log_sha256_matches_the_corpus for the full hash).
    let expected = dirty_log_expected(dir.path());
    let marker = cloudimg_disk::io::Sha256Hex([0xab; 32]);
    let dg = DiskDigest::comparing(&expected, marker).unwrap();
    let r = cloudimg_disk::verify::verify_file_with(
        &File::open(&p).unwrap(),
        cloudimg_disk::formats::Format::Vhdx,
        cloudimg_disk::verify::VerifyOptions {
            digest: dg,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(r.virtual_sha256, Some(marker), "decoded content differs");
    assert_eq!(r.details["creator"], "QEMU v1.6.50");
    assert_eq!(
        r.details["log_guid"],
        "C82755BC-427F-1245-B72C-DA70AAABE031"
    );
    assert_eq!(r.details["log_offset"], 1 << 20);
    assert_eq!(r.details["log_length"], 1 << 20);
    // Every entry's tail names itself (qemu writes and flushes one entry
    // at a time), so only the head, sequence 7, is active; it holds the
    // final BAT page.
    assert_eq!(r.details["log_entries_replayed"], 1);
    assert_eq!(r.details["block_size"], 1048576);
    assert_eq!(r.details["blocks_present"], 18);
    assert_eq!(r.virtual_size, Some(10737418240));
    // The pending log is the only finding.
    assert_eq!(r.findings.len(), 1, "{:?}", r.findings);
    assert_eq!(
        r.findings[0].message,
        "the log (GUID C82755BC-427F-1245-B72C-DA70AAABE031) was never replayed into the file: its active entries (sequence 7 to 7) were applied in memory"
    );
    let d = vhdx::open(File::open(&p).unwrap()).unwrap();
    assert!(read_range(&*d, 0x1200000 - 512, 512)
        .iter()
        .all(|&b| b == 0xa5));
    assert!(read_range(&*d, 0x1200000, 512).iter().all(|&b| b == 0));
    assert_eq!(
        data_bytes(d.extents().unwrap()),
        0x1200000,
        "18 present 1 MiB blocks"
    );
    // Read-only: the file is untouched.
    assert_eq!(std::fs::read(&p).unwrap(), before);
}

/// The corpus README's SHA-256 of the replayed image: hashes 10 GiB
/// (about 15 s), so it runs with `--ignored`.
#[test]
#[ignore = "hashes 10 GiB (about 15 s): run with --ignored"]
fn dirty_log_sha256_matches_the_corpus() {
    let dir = tempfile::tempdir().unwrap();
    let Some(p) = bunzip(
        "qemu/sample_images/iotest-dirtylog-10G-4M.vhdx.bz2",
        dir.path(),
    ) else {
        return;
    };
    let r = cloudimg_disk::verify::verify_file(
        &File::open(&p).unwrap(),
        cloudimg_disk::formats::Format::Vhdx,
    )
    .unwrap();
    assert_eq!(
        r.virtual_sha256.unwrap().to_string(),
        "179cefe8b0587f123393eedf2aa7aa8d25798591178e6bc3950a09762f38f96f"
    );
}

#[test]
fn ten_gib_sparse_disk_writes_its_data_blocks_only_and_checks_clean() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("big.raw");
    let size = 10u64 << 30;
    make_sparse_big(&input, size);
    let out = dir.path().join("big.vhdx");
    let t = Instant::now();
    write_vhdx(&input, &out, &OPTS);
    let took = t.elapsed();
    eprintln!("writing a 10 GiB sparse disk took {took:?}");
    let len = std::fs::metadata(&out).unwrap().len();
    // Three blocks of 16 MiB hold data.
    assert_eq!(len, (4 << 20) + 3 * (16 << 20));
    // Compared with the input (hashing 10 GiB would take most of a minute).
    let raw = RawFile::open(&input).unwrap();
    let marker = cloudimg_disk::io::Sha256Hex([0xcd; 32]);
    let dg = DiskDigest::comparing(&raw, marker).unwrap();
    let r = cloudimg_disk::verify::verify_file_with(
        &File::open(&out).unwrap(),
        cloudimg_disk::formats::Format::Vhdx,
        cloudimg_disk::verify::VerifyOptions {
            digest: dg,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(r.findings, vec![]);
    assert_eq!(r.details["block_size"], 16 << 20);
    assert_eq!(r.details["blocks_present"], 3);
    assert_eq!(r.virtual_sha256, Some(marker), "decoded content differs");
    if require_tool("qemu-img") {
        let check = run(Command::new("qemu-img")
            .args(["check", "-f", "vhdx"])
            .arg(&out));
        assert!(check.contains("No errors were found"), "{check}");
        let info = run(Command::new("qemu-img")
            .args(["info", "-f", "vhdx", "--output=json"])
            .arg(&out));
        let v: serde_json::Value = serde_json::from_str(&info).unwrap();
        assert_eq!(v["virtual-size"], size);
    }
}

fn make_sparse_big(path: &Path, size: u64) {
    let f = File::create(path).unwrap();
    f.set_len(size).unwrap();
    f.write_all_at(&[1; 4096], 0).unwrap();
    f.write_all_at(&[2; 4096], 5 << 30).unwrap();
    f.write_all_at(&[3; 512], size - 512).unwrap();
}

// ---- bad input ----

/// A small valid VHDX to damage, and its bytes.
fn sample(dir: &Path) -> (PathBuf, Vec<u8>) {
    let input = dir.join("in.raw");
    make_input(&input, ODD_SIZE, 9);
    let out = dir.join("good.vhdx");
    write_vhdx(&input, &out, &OPTS);
    let b = std::fs::read(&out).unwrap();
    (out, b)
}

fn damaged(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn open_err(p: &Path) -> String {
    match vhdx::open(File::open(p).unwrap()) {
        Ok(_) => panic!("{} opened", p.display()),
        Err(e) => e.to_string(),
    }
}

fn put_header(b: &mut [u8], i: usize, f: impl FnOnce(&mut wire::VhdxHeader)) {
    let o = wire::HEADER_OFFSETS[i] as usize;
    let mut h = wire::VhdxHeader::parse(b[o..o + 4096].try_into().unwrap());
    f(&mut h);
    b[o..o + 4096].copy_from_slice(&h.to_bytes());
}

#[test]
fn truncated_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_, b) = sample(dir.path());
    let p = damaged(dir.path(), "short.vhdx", &b[..100_000]);
    assert_eq!(
        open_err(&p),
        "file of 100000 bytes is too short for the VHDX header section (327680 bytes)"
    );
    let r = cloudimg_disk::verify::verify_file(
        &File::open(&p).unwrap(),
        cloudimg_disk::formats::Format::Vhdx,
    )
    .unwrap();
    assert_eq!(r.findings.len(), 1);
    // Cut inside the data: the BAT points past the end.
    let cut = b.len() - (4 << 20);
    let p = damaged(dir.path(), "cut.vhdx", &b[..cut]);
    let e = open_err(&p);
    assert!(e.contains("runs past the end of the"), "{e}");
    let r = cloudimg_disk::verify::verify_file(
        &File::open(&p).unwrap(),
        cloudimg_disk::formats::Format::Vhdx,
    )
    .unwrap();
    assert!(!r.findings.is_empty());
    assert_eq!(r.virtual_sha256, None);
    // Not a VHDX at all.
    let p = damaged(dir.path(), "zero.vhdx", &[0u8; 4096]);
    assert_eq!(
        open_err(&p),
        "not a VHDX: no \"vhdxfile\" signature at offset 0"
    );
    assert!(cloudimg_disk::verify::verify_file(
        &File::open(&p).unwrap(),
        cloudimg_disk::formats::Format::Vhdx
    )
    .is_err());
}

#[test]
fn bad_header_checksums_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (_, good) = sample(dir.path());
    // One bad header: the other is used and the damage reported.
    let mut b = good.clone();
    b[wire::HEADER_OFFSETS[1] as usize + 200] ^= 1;
    let p = damaged(dir.path(), "one.vhdx", &b);
    assert!(vhdx::open(File::open(&p).unwrap()).is_ok());
    let r = cloudimg_disk::verify::verify_file(
        &File::open(&p).unwrap(),
        cloudimg_disk::formats::Format::Vhdx,
    )
    .unwrap();
    assert_eq!(r.findings.len(), 1, "{:?}", r.findings);
    assert!(r.findings[0]
        .message
        .starts_with("header 2: checksum mismatch (expected "));
    assert_eq!(r.findings[0].offset, Some(131072));
    assert_eq!(r.details["current_header"], 1);
    assert!(r.virtual_sha256.is_some());
    // Both bad: refused.
    b[wire::HEADER_OFFSETS[0] as usize + 200] ^= 1;
    let p = damaged(dir.path(), "both.vhdx", &b);
    assert_eq!(
        open_err(&p),
        "no valid VHDX header: both headers fail their checks (at byte 65536)"
    );
    let r = cloudimg_disk::verify::verify_file(
        &File::open(&p).unwrap(),
        cloudimg_disk::formats::Format::Vhdx,
    )
    .unwrap();
    assert_eq!(r.findings.len(), 3, "{:?}", r.findings);
    assert_eq!(r.virtual_sha256, None);
}

#[test]
fn bat_offset_past_eof_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (_, mut b) = sample(dir.path());
    let bat = 2 << 20;
    let e = u64::from_le_bytes(b[bat..bat + 8].try_into().unwrap());
    assert_eq!(e & 7, 6, "block 0 holds the GPT");
    let far = wire::bat_entry(6, 1 << 40);
    b[bat..bat + 8].copy_from_slice(&far.to_le_bytes());
    // Block 1 overlapping block 2.
    let e2 = u64::from_le_bytes(b[bat + 16..bat + 24].try_into().unwrap());
    b[bat + 8..bat + 16].copy_from_slice(&e2.to_le_bytes());
    let p = damaged(dir.path(), "far.vhdx", &b);
    let len = b.len();
    assert_eq!(
        open_err(&p),
        format!("BAT entry 0: block 0 at file offset 1099511627776 runs past the end of the {len}-byte file (at byte 2097152)")
    );
    let r = cloudimg_disk::verify::verify_file(
        &File::open(&p).unwrap(),
        cloudimg_disk::formats::Format::Vhdx,
    )
    .unwrap();
    assert_eq!(r.findings.len(), 1, "{:?}", r.findings);
    // With block 0 fixed, the overlap is found.
    b[bat..bat + 8].copy_from_slice(&e.to_le_bytes());
    let p = damaged(dir.path(), "overlap.vhdx", &b);
    let r = cloudimg_disk::verify::verify_file(
        &File::open(&p).unwrap(),
        cloudimg_disk::formats::Format::Vhdx,
    )
    .unwrap();
    assert_eq!(r.findings.len(), 1, "{:?}", r.findings);
    assert!(
        r.findings[0].message.contains("overlaps block"),
        "{:?}",
        r.findings
    );
}

/// Whether qemu-img opens `p` as a VHDX.
fn qemu_opens(p: &Path) -> bool {
    Command::new("qemu-img")
        .args(["info", "-f", "vhdx"])
        .arg(p)
        .output()
        .unwrap()
        .status
        .success()
}

#[test]
fn what_qemu_refuses_at_open_is_refused() {
    // Issue 13: each of these was decoded by cloudimg while qemu-img
    // refused it (block/vhdx.c vhdx_open, block/vhdx-log.c
    // vhdx_parse_log).
    let dir = tempfile::tempdir().unwrap();
    let (_, good) = sample(dir.path());
    let qemu = require_tool("qemu-img");
    let mut cases: Vec<(&str, Vec<u8>, String)> = Vec::new();
    // An empty log (GUID 0) at an offset that is not 1 MiB-aligned.
    let mut b = good.clone();
    put_header(&mut b, 1, |h| h.log_offset = (1 << 20) + 4096);
    cases.push((
        "log-offset",
        b,
        "the log offset 1052672 is not 1 MiB-aligned after the header section (at byte 131144)"
            .into(),
    ));
    // The first region table broken (its checksum no longer matches),
    // the second intact: qemu reads only the first.
    let mut b = good.clone();
    b[(192 << 10) + 100] ^= 1;
    cases.push((
        "region-table",
        b,
        "the first region table fails its checks (see above) (at byte 196608)".into(),
    ));
    // Block 0 placed over the BAT region (at 2 MiB).
    let mut b = good.clone();
    let bat = 2 << 20;
    b[bat..bat + 8].copy_from_slice(&wire::bat_entry(6, 2 << 20).to_le_bytes());
    cases.push((
        "block-over-bat",
        b,
        format!(
            "BAT entry 0: block 0 at file offset 2097152 overlaps region {} (at byte 2097152)",
            wire::BAT_GUID
        ),
    ));
    let g = damaged(dir.path(), "good.vhdx", &good);
    assert!(vhdx::open(File::open(&g).unwrap()).is_ok());
    assert!(
        !qemu || qemu_opens(&g),
        "qemu-img refuses the unmutated file"
    );
    for (name, bytes, want) in cases {
        let p = damaged(dir.path(), &format!("{name}.vhdx"), &bytes);
        assert_eq!(open_err(&p), want, "{name}");
        if qemu {
            assert!(!qemu_opens(&p), "qemu-img opens {name}");
        }
    }
}

/// Patch a metadata item (by index in our writer's order) in place.
fn patch_item(b: &mut [u8], item: usize, bytes: &[u8]) {
    let mo = 3 << 20;
    let e = mo + 32 + 32 * item;
    let off = u32::from_le_bytes(b[e + 16..e + 20].try_into().unwrap()) as usize;
    b[mo + off..mo + off + bytes.len()].copy_from_slice(bytes);
}

#[test]
fn absurd_block_size_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_, mut b) = sample(dir.path());
    patch_item(&mut b, 0, &(3u32 << 30).to_le_bytes());
    let p = damaged(dir.path(), "bs.vhdx", &b);
    assert_eq!(
        open_err(&p),
        "block size 3221225472 is not a power of two between 1 MiB and 256 MiB (at byte 3145728)"
    );
    let r = cloudimg_disk::verify::verify_file(
        &File::open(&p).unwrap(),
        cloudimg_disk::formats::Format::Vhdx,
    )
    .unwrap();
    assert_eq!(r.findings.len(), 1);
    // A huge virtual size with a BAT too small for it.
    let (_, mut b) = sample(dir.path());
    patch_item(&mut b, 1, &(64u64 << 40).to_le_bytes());
    let p = damaged(dir.path(), "vs.vhdx", &b);
    assert_eq!(
        open_err(&p),
        "BAT region of 1048576 bytes is too small for the 8404991 entries the disk needs (at byte 2097152)"
    );
}

#[test]
fn parent_is_refused_and_stray_locator_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (_, good) = sample(dir.path());
    let mut b = good.clone();
    let bs = 8u32 << 20;
    let mut fp = bs.to_le_bytes().to_vec();
    fp.extend_from_slice(&wire::PARAMS_HAS_PARENT.to_le_bytes());
    patch_item(&mut b, 0, &fp);
    let p = damaged(dir.path(), "parent.vhdx", &b);
    assert_eq!(
        open_err(&p),
        "differencing VHDX (the file parameters say it has a parent) is not supported (at byte 3145728)"
    );
    let r = cloudimg_disk::verify::verify_file(
        &File::open(&p).unwrap(),
        cloudimg_disk::formats::Format::Vhdx,
    )
    .unwrap();
    assert_eq!(r.findings.len(), 1);
    // A parent locator item without the flag: a finding, still readable.
    let mut b = good.clone();
    let mo = 3 << 20;
    let e = mo + 32 + 32 * 5;
    b[mo + 10..mo + 12].copy_from_slice(&6u16.to_le_bytes());
    b[e..e + 16].copy_from_slice(&wire::PARENT_LOCATOR_GUID.0);
    b[e + 16..e + 20].copy_from_slice(&(128u32 << 10).to_le_bytes());
    b[e + 20..e + 24].copy_from_slice(&64u32.to_le_bytes());
    b[e + 24..e + 28].copy_from_slice(&wire::META_IS_REQUIRED.to_le_bytes());
    let p = damaged(dir.path(), "locator.vhdx", &b);
    assert!(vhdx::open(File::open(&p).unwrap()).is_ok());
    let r = cloudimg_disk::verify::verify_file(
        &File::open(&p).unwrap(),
        cloudimg_disk::formats::Format::Vhdx,
    )
    .unwrap();
    assert_eq!(r.findings.len(), 1, "{:?}", r.findings);
    assert_eq!(
        r.findings[0].message,
        "metadata lists a parent locator but the file parameters do not say the disk has a parent"
    );
}

#[test]
fn bad_log_region_is_refused_when_it_must_be_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let (_, mut b) = sample(dir.path());
    // A log GUID with an empty log: nothing valid to replay, readable.
    put_header(&mut b, 1, |h| h.log_guid = Guid([9; 16]));
    let p = damaged(dir.path(), "emptylog.vhdx", &b);
    assert!(vhdx::open(File::open(&p).unwrap()).is_ok());
    // A log far past the end.
    put_header(&mut b, 1, |h| h.log_offset = 1 << 40);
    let p = damaged(dir.path(), "farlog.vhdx", &b);
    let e = open_err(&p);
    assert!(e.starts_with("the log (1048576 bytes at offset 1099511627776) must be replayed but runs past the end of the"), "{e}");
}

/// One log descriptor for [`log_entry`]: 4 KiB of data, or a zeroed range.
enum LogOp {
    Data(u64, Vec<u8>),
    Zero(u64, u64),
}

/// A log entry as the spec lays it out (2.3.1): header and descriptors in
/// the first sector(s), then one data sector per data descriptor.
fn log_entry(seq: u64, tail: u32, guid: Guid, file_len: u64, ops: &[LogOp]) -> Vec<u8> {
    let desc_sectors = (ops.len() + 2).div_ceil(128);
    let data: Vec<&Vec<u8>> = ops
        .iter()
        .filter_map(|o| match o {
            LogOp::Data(_, d) => Some(d),
            LogOp::Zero(..) => None,
        })
        .collect();
    let len = (desc_sectors + data.len()) * 4096;
    let mut e = vec![0u8; len];
    e[0..4].copy_from_slice(b"loge");
    e[8..12].copy_from_slice(&(len as u32).to_le_bytes());
    e[12..16].copy_from_slice(&tail.to_le_bytes());
    e[16..24].copy_from_slice(&seq.to_le_bytes());
    e[24..28].copy_from_slice(&(ops.len() as u32).to_le_bytes());
    e[32..48].copy_from_slice(&guid.0);
    e[48..56].copy_from_slice(&file_len.to_le_bytes());
    e[56..64].copy_from_slice(&file_len.to_le_bytes());
    let mut ds = desc_sectors * 4096;
    for (i, op) in ops.iter().enumerate() {
        let d = 64 + 32 * i;
        match op {
            LogOp::Data(off, bytes) => {
                e[d..d + 4].copy_from_slice(b"desc");
                e[d + 4..d + 8].copy_from_slice(&bytes[4092..]);
                e[d + 8..d + 16].copy_from_slice(&bytes[..8]);
                e[d + 16..d + 24].copy_from_slice(&off.to_le_bytes());
                e[ds..ds + 4].copy_from_slice(b"data");
                e[ds + 4..ds + 8].copy_from_slice(&((seq >> 32) as u32).to_le_bytes());
                e[ds + 8..ds + 4092].copy_from_slice(&bytes[8..4092]);
                e[ds + 4092..ds + 4096].copy_from_slice(&(seq as u32).to_le_bytes());
                ds += 4096;
            }
            LogOp::Zero(off, n) => {
                e[d..d + 4].copy_from_slice(b"zero");
                e[d + 8..d + 16].copy_from_slice(&n.to_le_bytes());
                e[d + 16..d + 24].copy_from_slice(&off.to_le_bytes());
            }
        }
        e[d + 24..d + 32].copy_from_slice(&seq.to_le_bytes());
    }
    let crc = wire::checksum(&e, 4);
    e[4..8].copy_from_slice(&crc.to_le_bytes());
    e
}

#[test]
fn crafted_log_sequence_is_replayed_from_its_tail() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.raw");
    make_input(&input, ODD_SIZE, 11);
    let out = dir.path().join("good.vhdx");
    write_vhdx(&input, &out, &OPTS);
    let good = std::fs::read(&out).unwrap();
    let raw = std::fs::read(&input).unwrap();
    let (bat, bs) = (2usize << 20, 8u64 << 20);
    let entry =
        |i: usize| u64::from_le_bytes(good[bat + 8 * i..bat + 8 * i + 8].try_into().unwrap());
    assert_eq!(entry(0) & 7, 6);
    assert_eq!(entry(2) & 7, 6);
    // Entry A (sequence 10) rewrites the BAT page: block 0 becomes ZERO.
    let mut page = good[bat..bat + 4096].to_vec();
    page[..8].copy_from_slice(&wire::bat_entry(2, 0).to_le_bytes());
    // Entry B (sequence 11) zeroes the 4 KiB of block 2 holding the 0x5a
    // sector.
    let vo = ODD_SIZE - 64 * 1024;
    let within = (vo - 2 * bs) & !4095;
    let zero_at = (entry(2) & !0xfffff) + within;
    let guid = Guid([0x42; 16]);
    let len = good.len() as u64;
    let a = log_entry(10, 0, guid, len, &[LogOp::Data(bat as u64, page)]);
    let expected = |replay_a: bool| {
        let mut e = raw.clone();
        if replay_a {
            e[..bs as usize].fill(0);
        }
        let v = (2 * bs + within) as usize;
        e[v..v + 4096].fill(0);
        cloudimg_disk::MemDisk::new(e)
    };
    for (b_tail, replay_a) in [(0u32, true), (a.len() as u32, false)] {
        let b = log_entry(11, b_tail, guid, len, &[LogOp::Zero(zero_at, 4096)]);
        let mut img = good.clone();
        let lo = 1 << 20;
        img[lo..lo + a.len()].copy_from_slice(&a);
        img[lo + a.len()..lo + a.len() + b.len()].copy_from_slice(&b);
        put_header(&mut img, 1, |h| h.log_guid = guid);
        let p = damaged(dir.path(), "log.vhdx", &img);
        let want = expected(replay_a);
        let d = vhdx::open(File::open(&p).unwrap()).unwrap();
        assert_eq!(
            sha256_disk(&d).unwrap(),
            sha256_disk(&want).unwrap(),
            "tail {b_tail}"
        );
        let mut r = cloudimg_disk::verify::verify_file(
            &File::open(&p).unwrap(),
            cloudimg_disk::formats::Format::Vhdx,
        )
        .unwrap();
        assert_eq!(
            r.details["log_entries_replayed"],
            if replay_a { 2 } else { 1 }
        );
        // Replaying A wipes the GPT in block 0: only container findings.
        r.findings
            .retain(|f| f.layer == cloudimg_disk::verify::Layer::Container);
        assert_eq!(r.findings.len(), 1, "{:?}", r.findings);
        let from = if replay_a { 10 } else { 11 };
        assert_eq!(
            r.findings[0].message,
            format!("the log (GUID 42424242-4242-4242-4242-424242424242) was never replayed into the file: its active entries (sequence {from} to 11) were applied in memory")
        );
        // qemu replays the same log when allowed to write.
        if require_tool("qemu-img") {
            let q = dir.path().join("q.vhdx");
            std::fs::copy(&p, &q).unwrap();
            run(Command::new("qemu-img")
                .args(["check", "-r", "all", "-f", "vhdx"])
                .arg(&q));
            let qd = vhdx::open(File::open(&q).unwrap()).unwrap();
            // qemu (vhdx_log_search) ignores the tail field and replays the
            // whole chain, so it agrees only when the tail is the chain's
            // start; when B's tail names B, the spec makes A inactive.
            assert_eq!(
                sha256_disk(&qd).unwrap() == sha256_disk(&want).unwrap(),
                replay_a,
                "tail {b_tail}"
            );
        }
    }
    // A damaged entry B (bad checksum) leaves only A, which is replayed.
    let mut img = good.clone();
    let mut b = log_entry(11, 0, guid, len, &[LogOp::Zero(zero_at, 4096)]);
    b[100] ^= 1;
    let lo = 1 << 20;
    img[lo..lo + a.len()].copy_from_slice(&a);
    img[lo + a.len()..lo + a.len() + b.len()].copy_from_slice(&b);
    put_header(&mut img, 1, |h| h.log_guid = guid);
    let p = damaged(dir.path(), "log-a.vhdx", &img);
    let r = cloudimg_disk::verify::verify_file(
        &File::open(&p).unwrap(),
        cloudimg_disk::formats::Format::Vhdx,
    )
    .unwrap();
    assert_eq!(r.details["log_entries_replayed"], 1);
    assert_eq!(r.details["blocks_present"], 1);
}

#[test]
fn random_damage_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.raw");
    make_input(&input, 4 << 20, 12);
    let out = dir.path().join("good.vhdx");
    let layout = VhdxLayout {
        block_size: 1 << 20,
        logical_sector_size: 512,
        physical_sector_size: 4096,
    };
    vhdx::writer::write_dynamic_with(
        &RawFile::open(&input).unwrap(),
        &File::create(&out).unwrap(),
        &OPTS,
        &layout,
    )
    .unwrap();
    let good = std::fs::read(&out).unwrap();
    // Structure areas: identifier, headers, region tables, BAT page,
    // metadata table and items.
    let areas: [(usize, usize); 5] = [
        (0, 1024),
        (64 << 10, 128),
        (128 << 10, 128),
        (192 << 10, 256),
        (2 << 20, 256),
    ];
    let meta = (3usize << 20, (64 << 10) + 64);
    let mut rng = Rng::new(99);
    let p = dir.path().join("bad.vhdx");
    let (mut opened, mut refused) = (0, 0);
    for _ in 0..150 {
        let mut b = good.clone();
        for _ in 0..1 + rng.next_u64() % 4 {
            let (start, len) = if rng.next_u64() % 3 == 0 {
                meta
            } else {
                areas[(rng.next_u64() % areas.len() as u64) as usize]
            };
            let at = start + (rng.next_u64() % len as u64) as usize;
            if rng.next_u64() % 2 == 0 {
                b[at] ^= 1 << (rng.next_u64() % 8);
            } else {
                let v = rng.next_u64().to_le_bytes();
                let n = v.len().min(b.len() - at);
                b[at..at + n].copy_from_slice(&v[..n]);
            }
        }
        // Headers with valid checksums over the damage, so that it is
        // parsed and not just refused.
        for i in 0..2 {
            if rng.next_u64() % 2 == 0 {
                let o = wire::HEADER_OFFSETS[i] as usize;
                let crc = wire::checksum(&b[o..o + 4096], 4);
                b[o + 4..o + 8].copy_from_slice(&crc.to_le_bytes());
            }
        }
        for &o in &wire::REGION_TABLE_OFFSETS {
            let o = o as usize;
            let crc = wire::checksum(&b[o..o + 65536], 4);
            b[o + 4..o + 8].copy_from_slice(&crc.to_le_bytes());
        }
        if rng.next_u64() % 8 == 0 {
            b.truncate((rng.next_u64() % b.len() as u64) as usize);
        }
        std::fs::write(&p, &b).unwrap();
        match vhdx::open(File::open(&p).unwrap()) {
            Ok(d) => {
                opened += 1;
                let _ = d.extents().unwrap();
                let _ = sha256_disk(&d);
            }
            Err(e) => {
                refused += 1;
                assert!(!e.to_string().is_empty());
            }
        }
        let _ = cloudimg_disk::verify::verify_file(
            &File::open(&p).unwrap(),
            cloudimg_disk::formats::Format::Vhdx,
        );
    }
    eprintln!("opened {opened}, refused {refused}");
    assert!(opened > 0 && refused > 0);
}
