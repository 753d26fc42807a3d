//! QCOW2 writer/reader/verifier against qemu-img and the dfvfs corpus.

mod common;

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use cloudimg_disk::error::ErrorKind;
use cloudimg_disk::formats::qcow2;
use cloudimg_disk::formats::{Format, WriteOptions};
use cloudimg_disk::io::{sha256_disk, DiskDigest, RawFile};
use cloudimg_disk::verify::Layer;
use cloudimg_disk::{ExtentKind, VirtualDisk};
use common::{run, Rng};

const OPTS: WriteOptions = WriteOptions {
    mtime: 1_700_000_000,
    seed: [7; 32],
};

/// A sparse raw disk of `size` bytes with a GPT, seeded random runs,
/// compressible text runs and holes, and a run of explicit zeros.
fn make_input(path: &Path, size: u64, seed: u64) {
    let f = common::gpt_file(path, size, seed);
    let mut rng = Rng::new(seed);
    let mut off = 1 << 20;
    let mut k = 0u64;
    while off + 300_000 < size - (1 << 16) {
        let n = 4096 * (1 + rng.next_u64() as usize % 40);
        let mut buf = vec![0u8; n];
        match k % 4 {
            0 => rng.fill(&mut buf),
            1 => {
                let line = format!("capos block {k} seed {seed} ");
                for (i, b) in buf.iter_mut().enumerate() {
                    *b = line.as_bytes()[i % line.len()];
                }
            }
            2 => {} // explicit zeros: a data extent that reads as zero
            _ => {
                // Text-like: random words from a small vocabulary, which
                // deflate shrinks by about half.
                const WORDS: [&str; 16] = [
                    "the ",
                    "kernel ",
                    "capability ",
                    "of ",
                    "a ",
                    "process ",
                    "ring ",
                    "buffer ",
                    "and ",
                    "page ",
                    "table ",
                    "is ",
                    "mapped ",
                    "into ",
                    "memory\n",
                    "object ",
                ];
                let mut i = 0;
                while i < buf.len() {
                    let w = WORDS[rng.next_u64() as usize % 16].as_bytes();
                    let n = w.len().min(buf.len() - i);
                    buf[i..i + n].copy_from_slice(&w[..n]);
                    i += n;
                }
            }
        }
        f.write_all_at(&buf, off).unwrap();
        off += n as u64 + (rng.next_u64() % 96) * 4096;
        k += 1;
    }
}

fn write_qcow2(input: &Path, out: &Path, compress: bool, jobs: usize) {
    let disk = RawFile::open(input).unwrap();
    let f = File::create(out).unwrap();
    qcow2::write(&disk, &f, &OPTS, compress, jobs).unwrap();
}

fn qemu_check(p: &Path) -> String {
    let out = Command::new("qemu-img")
        .args(["check", "-f", "qcow2", "--output=json"])
        .arg(p)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "qemu-img check {}: {text} {}",
        p.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    for key in ["corruptions", "leaks", "check-errors"] {
        assert_eq!(
            v.get(key).and_then(|x| x.as_u64()).unwrap_or(0),
            0,
            "{key}: {text}"
        );
    }
    text
}

fn qemu_virtual_size(p: &Path) -> u64 {
    let text = run(Command::new("qemu-img")
        .args(["info", "-f", "qcow2", "--output=json"])
        .arg(p));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["virtual-size"].as_u64().unwrap()
}

fn qemu_compare(raw: &Path, q: &Path) {
    run(Command::new("qemu-img")
        .args(["compare", "-f", "raw", "-F", "qcow2"])
        .arg(raw)
        .arg(q));
}

fn container_findings(r: &cloudimg_disk::verify::Report) -> Vec<String> {
    r.findings
        .iter()
        .filter(|f| f.layer == Layer::Container)
        .map(|f| f.to_string())
        .collect()
}

struct Dir {
    dir: tempfile::TempDir,
}

impl Dir {
    fn new() -> Self {
        Dir {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn p(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

#[test]
fn written_images_pass_qemu_check_and_compare() {
    if !common::require_tool("qemu-img") {
        return;
    }
    let d = Dir::new();
    for (size, seed) in [(8u64 << 20, 1u64), ((24 << 20) + 512 * 7, 2)] {
        let raw = d.p("in.raw");
        make_input(&raw, size, seed);
        let want = sha256_disk(&RawFile::open(&raw).unwrap()).unwrap();
        for compress in [false, true] {
            let out = d.p("out.qcow2");
            write_qcow2(&raw, &out, compress, 2);
            qemu_check(&out);
            assert_eq!(qemu_virtual_size(&out), size);
            qemu_compare(&raw, &out);
            let r = cloudimg_disk::verify::verify_file(
                &File::open(&out).unwrap(),
                cloudimg_disk::formats::Format::Qcow2,
            )
            .unwrap();
            assert_eq!(r.findings, vec![], "size {size} compress {compress}");
            assert_eq!(r.format, Format::Qcow2);
            assert_eq!(r.virtual_size, Some(size));
            assert_eq!(r.virtual_sha256, Some(want));
            assert_eq!(r.details["cluster_size"], 65536);
            assert_eq!(r.details["refcounts_checked"], true);
            let compressed = r.details["compressed_clusters"].as_u64().unwrap();
            assert_eq!(compressed > 0, compress, "{:?}", r.details);
            let disk = qcow2::open(File::open(&out).unwrap()).unwrap();
            assert_eq!(sha256_disk(&disk).unwrap(), want);
        }
    }
}

#[test]
fn output_is_reproducible_and_independent_of_jobs() {
    let d = Dir::new();
    let raw = d.p("in.raw");
    make_input(&raw, 12 << 20, 5);
    for compress in [false, true] {
        write_qcow2(&raw, &d.p("a.qcow2"), compress, 1);
        write_qcow2(&raw, &d.p("b.qcow2"), compress, 1);
        write_qcow2(&raw, &d.p("c.qcow2"), compress, 4);
        let a = std::fs::read(d.p("a.qcow2")).unwrap();
        assert_eq!(a, std::fs::read(d.p("b.qcow2")).unwrap());
        assert_eq!(a, std::fs::read(d.p("c.qcow2")).unwrap(), "jobs 1 vs 4");
    }
}

#[test]
fn sizes_are_close_to_qemu_img() {
    if !common::require_tool("qemu-img") {
        return;
    }
    let d = Dir::new();
    let raw = d.p("in.raw");
    make_input(&raw, 32 << 20, 9);
    for compress in [false, true] {
        let ours = d.p("ours.qcow2");
        let theirs = d.p("qemu.qcow2");
        write_qcow2(&raw, &ours, compress, 2);
        let mut cmd = Command::new("qemu-img");
        cmd.args(["convert", "-f", "raw", "-O", "qcow2"]);
        if compress {
            cmd.arg("-c");
        }
        run(cmd.arg(&raw).arg(&theirs));
        let a = std::fs::metadata(&ours).unwrap().len();
        let b = std::fs::metadata(&theirs).unwrap().len();
        eprintln!("compress {compress}: ours {a} bytes, qemu-img {b} bytes");
        if compress {
            assert!(a as f64 <= b as f64 * 1.02, "ours {a}, qemu {b}");
        } else {
            assert!(a <= b + 3 * 65536, "ours {a}, qemu {b}");
        }
    }
}

#[test]
fn reads_images_made_by_qemu_img() {
    if !common::require_tool("qemu-img") {
        return;
    }
    let d = Dir::new();
    let raw = d.p("in.raw");
    make_input(&raw, (10 << 20) + 4096, 11);
    // A hole at the end, so that even 2 MiB clusters include zero ones
    // (the GPT backup is then no longer at the end: container findings
    // only below).
    let size = (16 << 20) + 4096;
    OpenOptions::new()
        .write(true)
        .open(&raw)
        .unwrap()
        .set_len(size)
        .unwrap();
    let want = sha256_disk(&RawFile::open(&raw).unwrap()).unwrap();
    let variants: [&[&str]; 7] = [
        &[],
        &["-c"],
        &["-o", "cluster_size=4096"],
        &["-c", "-o", "cluster_size=4096"],
        &["-o", "cluster_size=2M"],
        &["-c", "-o", "cluster_size=2M"],
        &["-o", "compat=0.10"],
    ];
    for args in variants {
        let q = d.p("q.qcow2");
        common::qemu_convert_raw(&raw, "qcow2", args, &q);
        let disk = qcow2::open(File::open(&q).unwrap()).unwrap();
        assert_eq!(disk.size(), size, "{args:?}");
        assert_eq!(sha256_disk(&disk).unwrap(), want, "{args:?}");
        // Unaligned reads across clusters agree with the raw input.
        let rawd = RawFile::open(&raw).unwrap();
        for (off, n) in [
            (1_000_001u64, 300_000usize),
            (4095, 2),
            (disk.size() - 5000, 5000),
        ] {
            let mut a = vec![0u8; n];
            let mut b = vec![0u8; n];
            disk.read_at(&mut a, off).unwrap();
            rawd.read_at(&mut b, off).unwrap();
            assert!(a == b, "{args:?} at {off}");
        }
        let ext = disk.extents().unwrap();
        assert_eq!(ext.last().unwrap().end(), disk.size());
        assert!(ext.iter().any(|e| e.kind == ExtentKind::Zero), "{args:?}");
        let r = cloudimg_disk::verify::verify_file(
            &File::open(&q).unwrap(),
            cloudimg_disk::formats::Format::Qcow2,
        )
        .unwrap();
        assert_eq!(container_findings(&r), Vec::<String>::new(), "{args:?}");
        assert_eq!(r.virtual_sha256, Some(want), "{args:?}");
    }
}

#[test]
fn zero_flagged_clusters_read_as_zero() {
    if !common::require_tool("qemu-img") || !common::require_tool("qemu-io") {
        return;
    }
    let d = Dir::new();
    let raw = d.p("in.raw");
    make_input(&raw, 8 << 20, 12);
    let q = d.p("q.qcow2");
    common::qemu_convert_raw(&raw, "qcow2", &[], &q);
    // Zero the first 2 MiB the qemu way: "reads as zero" L2 entries.
    run(Command::new("qemu-io")
        .args(["-f", "qcow2", "-c", "write -z 0 2M"])
        .arg(&q));
    let f = OpenOptions::new().write(true).open(&raw).unwrap();
    f.write_all_at(&vec![0u8; 2 << 20], 0).unwrap();
    let want = sha256_disk(&RawFile::open(&raw).unwrap()).unwrap();
    let disk = qcow2::open(File::open(&q).unwrap()).unwrap();
    assert_eq!(sha256_disk(&disk).unwrap(), want);
    assert_eq!(disk.extents().unwrap()[0].kind, ExtentKind::Zero);
    let r = cloudimg_disk::verify::verify_file(
        &File::open(&q).unwrap(),
        cloudimg_disk::formats::Format::Qcow2,
    )
    .unwrap();
    assert_eq!(container_findings(&r), Vec::<String>::new());
    assert!(r.details["zero_flagged_clusters"].as_u64().unwrap() > 0);
}

#[test]
fn reads_the_dfvfs_corpus_image() {
    let Some(q) = common::corpus("dfvfs/ext2.qcow2") else {
        return;
    };
    let disk = qcow2::open(File::open(&q).unwrap()).unwrap();
    assert_eq!(disk.size(), 4194304);
    assert_eq!(
        sha256_disk(&disk).unwrap().to_string(),
        "a6c2f0e39afe6c6ab432ca5465349fcefe8dc944398e97b2d957d3f89dbb5d80"
    );
    let r = cloudimg_disk::verify::verify_file(
        &File::open(&q).unwrap(),
        cloudimg_disk::formats::Format::Qcow2,
    )
    .unwrap();
    assert_eq!(container_findings(&r), Vec::<String>::new());
    assert_eq!(r.details["cluster_size"], 65536);
    assert_eq!(r.details["version"], 3);
    assert_eq!(
        r.virtual_sha256.unwrap().to_string(),
        "a6c2f0e39afe6c6ab432ca5465349fcefe8dc944398e97b2d957d3f89dbb5d80"
    );
}

/// Write a small image and return its path and bytes.
fn small_image(d: &Dir, compress: bool) -> (PathBuf, Vec<u8>) {
    let raw = d.p("in.raw");
    make_input(&raw, 4 << 20, 21);
    let q = d.p("small.qcow2");
    write_qcow2(&raw, &q, compress, 1);
    let bytes = std::fs::read(&q).unwrap();
    (q, bytes)
}

fn patched(d: &Dir, bytes: &[u8], name: &str, f: impl FnOnce(&mut Vec<u8>)) -> File {
    let mut b = bytes.to_vec();
    f(&mut b);
    let p = d.p(name);
    std::fs::write(&p, &b).unwrap();
    File::open(&p).unwrap()
}

fn open_err(f: File) -> (ErrorKind, String) {
    match qcow2::open(f) {
        Ok(_) => panic!("opened a bad image"),
        Err(e) => (e.kind(), e.message().to_string()),
    }
}

fn be64(b: &[u8], o: usize) -> u64 {
    u64::from_be_bytes(b[o..o + 8].try_into().unwrap())
}

#[test]
fn bad_images_are_refused_with_clear_errors() {
    let d = Dir::new();
    let (_, good) = small_image(&d, false);

    // Truncated inside the header.
    let f = patched(&d, &good, "t1", |b| b.truncate(50));
    assert_eq!(
        open_err(f),
        (
            ErrorKind::InvalidFormat,
            "file of 50 bytes is too short for a QCOW2 header".into()
        )
    );
    // Truncated before the L1 table ends.
    let f = patched(&d, &good, "t2", |b| b.truncate(65536 + 4));
    assert_eq!(
        open_err(f),
        (
            ErrorKind::Corrupt,
            "L1 table of 1 entries at offset 0x10000 runs past the end of the 65540-byte file"
                .into()
        )
    );
    // Backing file set.
    let f = patched(&d, &good, "backing", |b| {
        b[8..16].copy_from_slice(&512u64.to_be_bytes());
        b[16..20].copy_from_slice(&8u32.to_be_bytes());
        b[512..520].copy_from_slice(b"base.img");
    });
    assert_eq!(
        open_err(f),
        (
            ErrorKind::Unsupported,
            "QCOW2 images with a backing file are not supported (backing file \"base.img\")".into()
        )
    );
    // Huge l1_size: refused before allocating.
    let f = patched(&d, &good, "l1big", |b| {
        b[36..40].copy_from_slice(&u32::MAX.to_be_bytes())
    });
    assert_eq!(
        open_err(f),
        (
            ErrorKind::Corrupt,
            "L1 table of 4294967295 entries is larger than the 33554432 bytes qemu allows".into()
        )
    );
    // zstd.
    let f = patched(&d, &good, "zstd", |b| {
        b[79] |= 8;
        b[104] = 1;
    });
    assert_eq!(
        open_err(f),
        (
            ErrorKind::Unsupported,
            "QCOW2 compression zstd is not supported (only zlib)".into()
        )
    );
    // Encryption, extended L2, external data file, corrupt bit.
    type Patch = fn(&mut Vec<u8>);
    let cases: [(&str, Patch, &str); 4] = [
        (
            "crypt",
            |b| b[35] = 2,
            "encrypted QCOW2 images are not supported (crypt_method 2)",
        ),
        (
            "extl2",
            |b| b[79] |= 16,
            "QCOW2 images with extended L2 entries (subclusters) are not supported",
        ),
        (
            "datafile",
            |b| b[79] |= 4,
            "QCOW2 images with an external data file are not supported",
        ),
        (
            "corrupt",
            |b| b[79] |= 2,
            "QCOW2 image is marked corrupt (incompatible feature bit 1); run qemu-img check -r all",
        ),
    ];
    for (name, f, msg) in cases {
        let file = patched(&d, &good, name, f);
        assert_eq!(
            open_err(file),
            (ErrorKind::Unsupported, msg.into()),
            "{name}"
        );
    }
    // Not QCOW2 at all.
    let f = patched(&d, &good, "magic", |b| b[0] = b'X');
    assert_eq!(open_err(f).0, ErrorKind::InvalidFormat);
}

#[test]
fn l1_entry_past_eof_is_a_finding_and_a_read_error() {
    let d = Dir::new();
    let (_, good) = small_image(&d, false);
    let f = patched(&d, &good, "l1eof", |b| {
        b[65536..65544].copy_from_slice(&((1u64 << 63) | (1 << 40)).to_be_bytes());
    });
    let r = cloudimg_disk::verify::verify_file(&f, cloudimg_disk::formats::Format::Qcow2).unwrap();
    let len = good.len();
    assert!(
        r.findings.iter().any(|x| x.offset == Some(65536)
            && x.message
                == format!(
                    "L1 entry 0 points at 0x10000000000, not a cluster inside the {len}-byte file"
                )),
        "{:?}",
        r.findings
    );
    assert_eq!(r.virtual_sha256, None);
    let disk = qcow2::open(f).unwrap();
    let err = disk.read_at(&mut [0u8; 512], 0).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "L1 entry 0 points at 0x10000000000, which is not a cluster inside the {len}-byte file"
        )
    );
}

#[test]
fn short_compressed_cluster_is_a_finding() {
    let d = Dir::new();
    let (_, good) = small_image(&d, true);
    // Find the first compressed L2 entry and replace its data with a
    // deflate stream of 100 bytes.
    let l2 = (be64(&good, 65536) & 0x00ff_ffff_ffff_fe00) as usize;
    let (j, e) = (0..8192)
        .map(|j| (j, be64(&good, l2 + 8 * j)))
        .find(|(_, e)| e & (1 << 62) != 0)
        .expect("a compressed cluster");
    let off = (e & ((1u64 << 54) - 1)) as usize;
    let mut z = flate2::Compress::new(flate2::Compression::new(6), false);
    let mut short = Vec::with_capacity(1000);
    z.compress_vec(&[0x55; 100], &mut short, flate2::FlushCompress::Finish)
        .unwrap();
    let f = patched(&d, &good, "short", |b| {
        b[off..off + short.len()].copy_from_slice(&short)
    });
    let r = cloudimg_disk::verify::verify_file(&f, cloudimg_disk::formats::Format::Qcow2).unwrap();
    let vc = j; // region 0
    assert!(
        r.findings.iter().any(|x| x.offset == Some(off as u64)
            && x.message
                == format!(
                    "virtual cluster {vc}: compressed cluster inflates to 100 bytes, not the cluster size 65536"
                )),
        "{:?}",
        r.findings
    );
    assert_eq!(r.virtual_sha256, None);
    let disk = qcow2::open(f).unwrap();
    let err = disk
        .read_at(&mut vec![0u8; 65536], vc as u64 * 65536)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "compressed cluster inflates to 100 bytes, not the cluster size 65536 (at byte {off})"
        )
    );
}

#[test]
fn refcount_leaks_and_missing_references_are_findings() {
    let d = Dir::new();
    let (_, good) = small_image(&d, false);
    let rt = be64(&good, 48) as usize;
    let rb = (be64(&good, rt) & !511) as usize;
    let clusters = good.len() / 65536;
    // Cluster 0 gets refcount 2; the last cluster (a refcount block) 0;
    // and an extra unused cluster is appended with refcount 1.
    let f = patched(&d, &good, "refs", |b| {
        b[rb..rb + 2].copy_from_slice(&2u16.to_be_bytes());
        let last = rb + 2 * (clusters - 1);
        b[last..last + 2].copy_from_slice(&0u16.to_be_bytes());
        let extra = rb + 2 * clusters;
        b[extra..extra + 2].copy_from_slice(&1u16.to_be_bytes());
        b.extend_from_slice(&vec![0u8; 65536]);
    });
    let r = cloudimg_disk::verify::verify_file(&f, cloudimg_disk::formats::Format::Qcow2).unwrap();
    let msgs = container_findings(&r);
    assert_eq!(
        msgs,
        vec![
            "at byte 0: cluster 0 has refcount 2 but is used 1 times".to_string(),
            format!(
                "at byte {}: cluster {} has refcount 0 but is used 1 times",
                (clusters - 1) * 65536,
                clusters - 1
            ),
            format!(
                "at byte {}: cluster {clusters} is leaked: refcount 1 but nothing uses it",
                clusters * 65536
            ),
        ]
    );
    // Dirty bit: readable, reported by verify.
    let f = patched(&d, &good, "dirty", |b| b[79] |= 1);
    assert!(qcow2::open(f.try_clone().unwrap()).is_ok());
    let r = cloudimg_disk::verify::verify_file(&f, cloudimg_disk::formats::Format::Qcow2).unwrap();
    assert_eq!(
        container_findings(&r),
        vec![
            "at byte 72: dirty bit is set: the image was not closed cleanly and its refcounts may be stale"
                .to_string()
        ]
    );
}

#[test]
fn ten_gib_sparse_disk_writes_fast_and_checks_clean() {
    let d = Dir::new();
    let raw = d.p("big.raw");
    let size = 10u64 << 30;
    make_input(&raw, 64 << 20, 31);
    // Extend to 10 GiB with a few data runs far apart.
    let f = OpenOptions::new().write(true).open(&raw).unwrap();
    f.set_len(size).unwrap();
    let mut rng = Rng::new(77);
    let mut blob = vec![0u8; 200_000];
    rng.fill(&mut blob);
    for at in [3u64 << 30, (5 << 30) + 12345 * 512, size - 200_192] {
        f.write_all_at(&blob, at).unwrap();
    }
    drop(f);
    let t = std::time::Instant::now();
    let out = d.p("big.qcow2");
    write_qcow2(&raw, &out, true, 2);
    let secs = t.elapsed().as_secs_f64();
    assert!(secs < 10.0, "took {secs} s");
    let len = std::fs::metadata(&out).unwrap().len();
    assert!(len < 16 << 20, "{len} bytes");
    let disk = qcow2::open(File::open(&out).unwrap()).unwrap();
    assert_eq!(disk.size(), size);
    let mut back = vec![0u8; blob.len()];
    disk.read_at(&mut back, size - 200_192).unwrap();
    assert!(back == blob);
    // The verifier, comparing with the input instead of hashing 10 GiB
    // (zero runs are checked against the input's extent map).
    let rawd = RawFile::open(&raw).unwrap();
    let marker = cloudimg_disk::io::Sha256Hex([1; 32]);
    let digest = DiskDigest::comparing(&rawd, marker).unwrap();
    let r = cloudimg_disk::verify::verify_file_with(
        &File::open(&out).unwrap(),
        cloudimg_disk::formats::Format::Qcow2,
        cloudimg_disk::verify::VerifyOptions {
            digest,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(container_findings(&r), Vec::<String>::new());
    assert_eq!(r.virtual_sha256, Some(marker));
    assert!(secs + t.elapsed().as_secs_f64() < 20.0);
    if common::require_tool("qemu-img") {
        qemu_check(&out);
        assert_eq!(qemu_virtual_size(&out), size);
    }
}

#[test]
fn corrupted_images_never_panic() {
    let d = Dir::new();
    let raw = d.p("in.raw");
    make_input(&raw, 2 << 20, 41);
    let q = d.p("c.qcow2");
    write_qcow2(&raw, &q, true, 1);
    let good = std::fs::read(&q).unwrap();
    let mut rng = Rng::new(99);
    let meta_end = 3 * 65536; // header, L1, first L2 table
    for round in 0..300 {
        let mut b = good.clone();
        for _ in 0..1 + rng.next_u64() % 4 {
            let at = if round % 2 == 0 {
                (rng.next_u64() % 128) as usize
            } else {
                (rng.next_u64() % meta_end) as usize
            };
            b[at] ^= 1 << (rng.next_u64() % 8);
        }
        if round % 7 == 0 {
            b.truncate((rng.next_u64() % good.len() as u64) as usize);
        }
        let p = d.p("fuzz.qcow2");
        std::fs::write(&p, &b).unwrap();
        let _ = cloudimg_disk::verify::verify_file(
            &File::open(&p).unwrap(),
            cloudimg_disk::formats::Format::Qcow2,
        );
        if let Ok(disk) = qcow2::open(File::open(&p).unwrap()) {
            let _ = disk.extents();
            let mut buf = vec![0u8; 300_000];
            let _ = disk.read_at(&mut buf, 0);
        }
    }
}

#[test]
fn images_with_internal_snapshots_read_the_active_state() {
    if !common::require_tool("qemu-img") || !common::require_tool("qemu-io") {
        return;
    }
    let d = Dir::new();
    let raw = d.p("in.raw");
    make_input(&raw, 4 << 20, 51);
    let q = d.p("snap.qcow2");
    write_qcow2(&raw, &q, false, 1);
    run(Command::new("qemu-img")
        .args(["snapshot", "-c", "s1"])
        .arg(&q));
    // Change the active state after the snapshot.
    run(Command::new("qemu-io")
        .args(["-f", "qcow2", "-c", "write -P 0xab 1M 64k"])
        .arg(&q));
    let f = OpenOptions::new().write(true).open(&raw).unwrap();
    f.write_all_at(&[0xab; 65536], 1 << 20).unwrap();
    let want = sha256_disk(&RawFile::open(&raw).unwrap()).unwrap();
    let disk = qcow2::open(File::open(&q).unwrap()).unwrap();
    assert_eq!(sha256_disk(&disk).unwrap(), want);
    let r = cloudimg_disk::verify::verify_file(
        &File::open(&q).unwrap(),
        cloudimg_disk::formats::Format::Qcow2,
    )
    .unwrap();
    assert_eq!(container_findings(&r), Vec::<String>::new());
    assert_eq!(r.details["nb_snapshots"], 1);
    assert_eq!(r.details["refcounts_checked"], false);
    assert_eq!(r.virtual_sha256, Some(want));
}
