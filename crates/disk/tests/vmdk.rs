//! Stream-optimized VMDK: round trips through our writer and reader,
//! qemu-img as the independent oracle, third-party corpus files, and
//! malformed files with exact findings.

mod common;

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use cloudimg_disk::formats::vmdk::{self, wire::SparseExtentHeader};
use cloudimg_disk::formats::WriteOptions;
use cloudimg_disk::io::sha256_disk;
use cloudimg_disk::verify::Finding;
use cloudimg_disk::{Extent, ExtentKind, MemDisk, VirtualDisk};
use common::{require_tool, run, Rng};
use sha2::{Digest, Sha256};

const GRAIN: usize = 64 * 1024;

fn opts(seed: u8) -> WriteOptions {
    WriteOptions {
        mtime: 0,
        seed: [seed; 32],
    }
}

fn sha_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// A disk that reports all of its bytes as data, zeros included, so the
/// writer has to find all-zero grains by reading them.
struct AllData(MemDisk);

impl VirtualDisk for AllData {
    fn size(&self) -> u64 {
        self.0.size()
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.0.read_at(buf, offset)
    }
    fn extents(&self) -> io::Result<Vec<Extent>> {
        Ok(vec![Extent {
            offset: 0,
            len: self.size(),
            kind: ExtentKind::Data,
        }])
    }
}

/// Text-like, compressible bytes.
fn text(rng: &mut Rng, n: usize) -> Vec<u8> {
    const WORDS: [&str; 8] = [
        "grain ", "table ", "sector\n", "disk ", "zlib ", "marker ", "VMDK ", "footer ",
    ];
    let mut v = Vec::with_capacity(n + 16);
    while v.len() < n {
        v.extend_from_slice(WORDS[(rng.next_u64() % 8) as usize].as_bytes());
    }
    v.truncate(n);
    v
}

/// A mixed disk: random grains, text, holes, a grain that is zero only in
/// part, and a data run that ends mid-grain.
fn mixed_disk(size: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut b = vec![0u8; size];
    let mut pos = 0;
    let mut k = 0;
    while pos < size {
        let n = (GRAIN * (1 + (k % 3)) + 4096 * k).min(size - pos);
        match k % 4 {
            0 => rng.fill(&mut b[pos..pos + n]),
            1 => b[pos..pos + n].copy_from_slice(&text(&mut rng, n)),
            2 => {} // hole
            _ => b[pos + n / 2..pos + n].fill(0x5A),
        }
        pos += n;
        k += 1;
    }
    b
}

struct Written {
    dir: tempfile::TempDir,
    raw: PathBuf,
    vmdk: PathBuf,
}

fn write_vmdk(disk: &dyn VirtualDisk, raw_bytes: &[u8]) -> Written {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("in.raw");
    fs::write(&raw, raw_bytes).unwrap();
    let vmdk = dir.path().join("disk.vmdk");
    let bytes = vmdk::write_stream_optimized(disk, Vec::new(), "disk.vmdk", &opts(1)).unwrap();
    fs::write(&vmdk, &bytes).unwrap();
    Written { dir, raw, vmdk }
}

/// Everything we and qemu-img can say about a VMDK we wrote of `raw`.
fn check_against_oracles(w: &Written, raw: &[u8]) {
    // Our verifier and reader.
    let report = cloudimg_disk::verify::verify_file(
        &File::open(&w.vmdk).unwrap(),
        cloudimg_disk::formats::Format::Vmdk,
    )
    .unwrap();
    assert_eq!(report.findings, Vec::<Finding>::new());
    assert_eq!(report.virtual_size, Some(raw.len() as u64));
    assert_eq!(report.virtual_sha256.unwrap().to_string(), sha_hex(raw));
    assert_eq!(report.details["create_type"], "streamOptimized");
    assert_eq!(report.details["version"], 3);
    assert_eq!(report.details["flags"], "0x00030001");
    let r = vmdk::open(File::open(&w.vmdk).unwrap()).unwrap();
    assert_eq!(r.size(), raw.len() as u64);
    let mut back = vec![0u8; raw.len()];
    r.read_at(&mut back, 0).unwrap();
    assert!(back == raw, "our reader decodes the input");
    let mut covered = 0;
    for e in r.extents().unwrap() {
        assert_eq!(e.offset, covered);
        if e.kind == ExtentKind::Zero {
            assert!(raw[e.offset as usize..e.end() as usize]
                .iter()
                .all(|&b| b == 0));
        }
        covered = e.end();
    }
    assert_eq!(covered, raw.len() as u64);

    if !require_tool("qemu-img") {
        return;
    }
    let info = run(Command::new("qemu-img")
        .args(["info", "--output=json"])
        .arg(&w.vmdk));
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!(info["format"], "vmdk");
    assert_eq!(info["virtual-size"], raw.len() as u64);
    assert_eq!(
        info["format-specific"]["data"]["create-type"],
        "streamOptimized"
    );
    run(Command::new("qemu-img")
        .args(["check", "-f", "vmdk"])
        .arg(&w.vmdk));
    run(Command::new("qemu-img")
        .args(["compare", "-f", "raw", "-F", "vmdk"])
        .arg(&w.raw)
        .arg(&w.vmdk));
    let out = w.dir.path().join("back.raw");
    run(Command::new("qemu-img")
        .args(["convert", "-f", "vmdk", "-O", "raw"])
        .arg(&w.vmdk)
        .arg(&out));
    assert_eq!(sha_hex(&fs::read(&out).unwrap()), sha_hex(raw));
}

#[test]
fn mixed_disk_round_trips_through_qemu_img() {
    let raw = mixed_disk(3 << 20, 7);
    let w = write_vmdk(&MemDisk::new(raw.clone()), &raw);
    check_against_oracles(&w, &raw);
}

#[test]
fn random_disk_round_trips() {
    let mut raw = vec![0u8; 1 << 20];
    Rng::new(11).fill(&mut raw);
    let w = write_vmdk(&MemDisk::new(raw.clone()), &raw);
    check_against_oracles(&w, &raw);
}

#[test]
fn size_not_a_grain_multiple_round_trips() {
    // 40 MiB + 3 sectors: more than one grain table, a short last grain.
    let size = (40 << 20) + 3 * 512;
    let mut raw = vec![0u8; size];
    Rng::new(5).fill(&mut raw[..200_000]);
    Rng::new(6).fill(&mut raw[(34 << 20)..(34 << 20) + 70_000]);
    raw[size - 700..].copy_from_slice(&text(&mut Rng::new(9), 700));
    let w = write_vmdk(&MemDisk::new(raw.clone()), &raw);
    check_against_oracles(&w, &raw);
    // The last grain inflates to exactly the 1536 bytes the disk has left.
    let r = cloudimg_disk::verify::verify_file(
        &File::open(&w.vmdk).unwrap(),
        cloudimg_disk::formats::Format::Vmdk,
    )
    .unwrap();
    assert_eq!(r.details["grains"], 4 + 2 + 1);
    assert_eq!(r.details["grain_tables"], 2);
}

#[test]
fn zero_grains_are_omitted_even_when_reported_as_data() {
    let mut raw = vec![0u8; 8 * GRAIN];
    raw[3 * GRAIN + 17] = 1;
    let w = write_vmdk(&AllData(MemDisk::new(raw.clone())), &raw);
    check_against_oracles(&w, &raw);
    let r = cloudimg_disk::verify::verify_file(
        &File::open(&w.vmdk).unwrap(),
        cloudimg_disk::formats::Format::Vmdk,
    )
    .unwrap();
    assert_eq!(r.details["grains"], 1);
}

#[test]
fn all_zero_disk_round_trips() {
    let raw = vec![0u8; 5 << 20];
    let w = write_vmdk(&MemDisk::new(raw.clone()), &raw);
    check_against_oracles(&w, &raw);
    let r = cloudimg_disk::verify::verify_file(
        &File::open(&w.vmdk).unwrap(),
        cloudimg_disk::formats::Format::Vmdk,
    )
    .unwrap();
    assert_eq!(r.details["grains"], 0);
    assert_eq!(r.details["grain_tables"], 0);
}

#[test]
fn output_is_reproducible_and_seeded() {
    let raw = mixed_disk(1 << 20, 3);
    let d = MemDisk::new(raw);
    let a = vmdk::write_stream_optimized(&d, Vec::new(), "x.vmdk", &opts(1)).unwrap();
    let b = vmdk::write_stream_optimized(&d, Vec::new(), "x.vmdk", &opts(1)).unwrap();
    assert!(a == b, "same input, same bytes");
    for jobs in [1, 2, 5] {
        let c =
            vmdk::write_stream_optimized_jobs(&d, Vec::new(), "x.vmdk", &opts(1), jobs).unwrap();
        assert!(a == c, "jobs={jobs} gives the same bytes");
    }
    let other = vmdk::write_stream_optimized(&d, Vec::new(), "x.vmdk", &opts(2)).unwrap();
    assert_ne!(a[512..1024], other[512..1024], "the CID follows the seed");
    assert_eq!(a.len(), other.len());
}

#[test]
fn descriptor_and_header_layout() {
    let raw = mixed_disk(1 << 20, 4);
    let bytes = vmdk::write_stream_optimized(&MemDisk::new(raw), Vec::new(), "disk.vmdk", &opts(1))
        .unwrap();
    let h = SparseExtentHeader::parse(bytes[..512].try_into().unwrap()).unwrap();
    assert_eq!(
        (
            h.version,
            h.flags,
            h.capacity,
            h.grain_size,
            h.descriptor_offset,
            h.descriptor_size
        ),
        (3, 0x30001, 2048, 128, 1, 20)
    );
    assert_eq!(
        (h.num_gtes_per_gt, h.rgd_offset, h.gd_offset, h.overhead),
        (512, 0, u64::MAX, 21)
    );
    assert_eq!(&bytes[73..79], &[0x0A, 0x20, 0x0D, 0x0A, 1, 0]);
    let desc = String::from_utf8(bytes[512..512 * 21].to_vec()).unwrap();
    let desc = desc.trim_end_matches('\0');
    let cid = desc.lines().find_map(|l| l.strip_prefix("CID=")).unwrap();
    assert_eq!(cid.len(), 8);
    assert!(cid != "ffffffff" && cid != "fffffffe");
    for line in [
        "# Disk DescriptorFile",
        "version=1",
        "encoding=\"UTF-8\"",
        "parentCID=ffffffff",
        "createType=\"streamOptimized\"",
        "RW 2048 SPARSE \"disk.vmdk\"",
        "ddb.virtualHWVersion = \"4\"",
        "ddb.geometry.cylinders = \"1\"",
        "ddb.geometry.heads = \"255\"",
        "ddb.geometry.sectors = \"63\"",
        "ddb.adapterType = \"lsilogic\"",
    ] {
        assert!(
            desc.lines().any(|l| l == line),
            "descriptor has {line:?}:\n{desc}"
        );
    }
    assert!(desc.contains("ddb.longContentID = \""));
    // The first grain record follows the descriptor: LBA 0, then a zlib
    // header: 78 9C when deflated, 78 01 when stored (this grain is
    // random, so it is stored).
    assert_eq!(&bytes[21 * 512..21 * 512 + 8], &[0; 8]);
    assert_eq!(&bytes[21 * 512 + 12..21 * 512 + 14], &[0x78, 0x01]);
    // Footer marker, footer and EOS end the file.
    let n = bytes.len();
    assert_eq!(
        &bytes[n - 1536..n - 1520],
        &[1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0]
    );
    assert_eq!(&bytes[n - 1024..n - 1020], b"KDMV");
    assert!(bytes[n - 512..].iter().all(|&b| b == 0));
}

#[test]
fn reads_qemu_img_stream_optimized_output() {
    if !require_tool("qemu-img") {
        return;
    }
    let size = (3 << 20) + 512 * 5;
    let mut raw = mixed_disk(size, 21);
    raw[size - 10..].fill(0xEE);
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("in.raw");
    fs::write(&src, &raw).unwrap();
    let q = dir.path().join("q.vmdk");
    common::qemu_stream_vmdk(&src, &q);
    let r = vmdk::open(File::open(&q).unwrap()).unwrap();
    assert_eq!(
        r.leading_header().gd_offset,
        r.header().gd_offset,
        "qemu keeps the GD in the header"
    );
    assert_eq!(sha256_disk(&r).unwrap().to_string(), sha_hex(&raw));
    let report = cloudimg_disk::verify::verify_file(
        &File::open(&q).unwrap(),
        cloudimg_disk::formats::Format::Vmdk,
    )
    .unwrap();
    assert_eq!(report.virtual_sha256.unwrap().to_string(), sha_hex(&raw));
    // qemu-img 7.2 pads the file with zeros to a whole grain after a
    // short last grain: the first zero sector reads as an end-of-stream
    // marker.
    assert_eq!(report.findings, vec![]);

    // With a whole number of grains, its file ends after the last grain,
    // without the end-of-stream marker VMware's stream format asks for.
    let mut raw = vec![0u8; 1 << 20];
    Rng::new(22).fill(&mut raw);
    fs::write(&src, &raw).unwrap();
    fs::remove_file(&q).unwrap();
    common::qemu_stream_vmdk(&src, &q);
    let report = cloudimg_disk::verify::verify_file(
        &File::open(&q).unwrap(),
        cloudimg_disk::formats::Format::Vmdk,
    )
    .unwrap();
    assert_eq!(report.virtual_sha256.unwrap().to_string(), sha_hex(&raw));
    let len = fs::metadata(&q).unwrap().len();
    assert_eq!(
        report.findings,
        vec![Finding::at(
            len,
            "the stream ends without an end-of-stream marker"
        )]
    );
}

fn corpus_sha(path: &Path, expected: &str, create_type: &str) {
    let r = vmdk::open(File::open(path).unwrap()).unwrap();
    assert_eq!(sha256_disk(&r).unwrap().to_string(), expected);
    let report = cloudimg_disk::verify::verify_file(
        &File::open(path).unwrap(),
        cloudimg_disk::formats::Format::Vmdk,
    )
    .unwrap();
    assert_eq!(report.virtual_sha256.unwrap().to_string(), expected);
    assert_eq!(report.details["create_type"], create_type);
}

#[test]
fn corpus_vmware_stream_optimized() {
    let Some(p) = common::corpus("vmdk-rs/streamOptimized.vmdk") else {
        return;
    };
    corpus_sha(
        &p,
        "a3bcf05f07a1c06a3380eeca8571f0efb2b85afafa1e21662b8cad436d1f7727",
        "streamOptimized",
    );
    let r = vmdk::open(File::open(&p).unwrap()).unwrap();
    assert_eq!(r.size(), 10485760);
    let report = cloudimg_disk::verify::verify_file(
        &File::open(&p).unwrap(),
        cloudimg_disk::formats::Format::Vmdk,
    )
    .unwrap();
    assert_eq!(report.details["flags"], "0x00030001");
    assert_eq!(report.details["cid"], "00000000");
}

#[test]
fn corpus_monolithic_sparse() {
    let Some(xz) = common::corpus("vmdk-rs/monolithicSparse.vmdk.xz") else {
        return;
    };
    if !require_tool("xz") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.vmdk");
    let out = Command::new("xz").arg("-dc").arg(&xz).output().unwrap();
    assert!(out.status.success());
    fs::write(&p, out.stdout).unwrap();
    corpus_sha(
        &p,
        "a3bcf05f07a1c06a3380eeca8571f0efb2b85afafa1e21662b8cad436d1f7727",
        "monolithicSparse",
    );
    let Some(ext2) = common::corpus("dfvfs/ext2.vmdk") else {
        return;
    };
    corpus_sha(
        &ext2,
        "a6c2f0e39afe6c6ab432ca5465349fcefe8dc944398e97b2d957d3f89dbb5d80",
        "monolithicSparse",
    );
    assert_eq!(
        vmdk::open(File::open(&ext2).unwrap()).unwrap().size(),
        4194304
    );
}

#[test]
fn corpus_fuzzed_header_is_rejected() {
    let Some(bz) = common::corpus("qemu/sample_images/afl9.vmdk.bz2") else {
        return;
    };
    if !require_tool("bzip2") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("afl9.vmdk");
    let out = Command::new("bzip2").arg("-dc").arg(&bz).output().unwrap();
    fs::write(&p, out.stdout).unwrap();
    let e = vmdk::open(File::open(&p).unwrap()).unwrap_err();
    assert_eq!(
        e.message(),
        "unusable VMDK header: capacity of 2233785398448881665 sectors is too large (at most 281474976710656)"
    );
    let report = cloudimg_disk::verify::verify_file(
        &File::open(&p).unwrap(),
        cloudimg_disk::formats::Format::Vmdk,
    )
    .unwrap();
    assert!(!report.is_ok());
    assert_eq!(report.virtual_sha256, None);
}

// ---- malformed files -------------------------------------------------

/// A small VMDK of four grains (data, text, hole, data) and where its
/// structures are.
struct Small {
    bytes: Vec<u8>,
    /// Byte offset of the grain table.
    gt: usize,
    /// Byte offsets of the grain records of grains 0, 1 and 3.
    grains: [usize; 3],
    /// Byte offset of the GD marker.
    gd_marker: usize,
}

fn small() -> Small {
    let mut raw = vec![0u8; 4 * GRAIN];
    raw[..GRAIN].fill(0xAB);
    raw[GRAIN..2 * GRAIN].copy_from_slice(&text(&mut Rng::new(1), GRAIN));
    raw[3 * GRAIN..].fill(0xCD);
    let bytes =
        vmdk::write_stream_optimized(&MemDisk::new(raw), Vec::new(), "s.vmdk", &opts(1)).unwrap();
    let n = bytes.len();
    let footer = SparseExtentHeader::parse(bytes[n - 1024..n - 512].try_into().unwrap()).unwrap();
    let gd = footer.gd_offset as usize * 512;
    let gt = u32::from_le_bytes(bytes[gd..gd + 4].try_into().unwrap()) as usize * 512;
    let entry = |i: usize| {
        u32::from_le_bytes(bytes[gt + 4 * i..gt + 4 * i + 4].try_into().unwrap()) as usize * 512
    };
    assert_eq!(entry(2), 0);
    Small {
        grains: [entry(0), entry(1), entry(3)],
        gt,
        gd_marker: gd - 512,
        bytes,
    }
}

fn verify_bytes(bytes: &[u8]) -> cloudimg_disk::Result<cloudimg_disk::verify::Report> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.vmdk");
    fs::write(&p, bytes).unwrap();
    cloudimg_disk::verify::verify_file(
        &File::open(&p).unwrap(),
        cloudimg_disk::formats::Format::Vmdk,
    )
}

fn set_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

#[test]
fn small_vmdk_is_clean() {
    let s = small();
    let r = verify_bytes(&s.bytes).unwrap();
    assert_eq!(r.findings, vec![]);
    assert_eq!(r.details["grains"], 3);
    assert_eq!(s.grains[0], 21 * 512);
}

#[test]
fn grain_pointing_past_eof() {
    let mut s = small();
    let len = s.bytes.len();
    set_u32(&mut s.bytes, s.gt + 4, 0x0100_0000);
    let r = verify_bytes(&s.bytes).unwrap();
    assert_eq!(
        r.findings,
        vec![
            Finding::at(
                (s.gt + 4) as u64,
                format!("grain table entry for LBA 128 points at byte 8589934592, past the end of the {len}-byte file")
            ),
            Finding::at(s.grains[1] as u64, "grain record for LBA 128 is not referenced by any grain table"),
        ]
    );
    assert_eq!(r.virtual_sha256, None);
}

#[test]
fn overlapping_grains() {
    let mut s = small();
    set_u32(&mut s.bytes, s.gt + 4, (s.grains[0] / 512) as u32);
    let r = verify_bytes(&s.bytes).unwrap();
    let g0 = s.grains[0];
    assert_eq!(
        r.findings,
        vec![
            Finding::at(
                (s.gt + 4) as u64,
                format!("grain table entry for LBA 128 points at the grain record for LBA 0 (byte {g0})")
            ),
            Finding::at(g0 as u64, format!("the grain for LBA 128 at byte {g0} overlaps the grain for LBA 0 at byte {g0}")),
            Finding::at(s.grains[1] as u64, "grain record for LBA 128 is not referenced by any grain table"),
        ]
    );
}

#[test]
fn grain_inflating_to_the_wrong_size() {
    let mut s = small();
    let at = s.grains[2];
    let short = {
        use std::io::Write;
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(6));
        z.write_all(&[0xCD; 60000]).unwrap();
        z.finish().unwrap()
    };
    let old = u32::from_le_bytes(s.bytes[at + 8..at + 12].try_into().unwrap()) as usize;
    assert!(12 + short.len() <= 512 && 12 + old <= 512);
    s.bytes[at + 12..at + 512].fill(0);
    s.bytes[at + 12..at + 12 + short.len()].copy_from_slice(&short);
    set_u32(&mut s.bytes, at + 8, short.len() as u32);
    let r = verify_bytes(&s.bytes).unwrap();
    assert_eq!(
        r.findings,
        vec![Finding::at(
            at as u64,
            "grain at LBA 384 inflates to 60000 bytes, expected 65536"
        )]
    );
    assert_eq!(r.virtual_sha256, None);
}

#[test]
fn wrong_marker_type() {
    let mut s = small();
    set_u32(&mut s.bytes, s.gd_marker + 12, 7);
    let r = verify_bytes(&s.bytes).unwrap();
    assert_eq!(
        r.findings,
        vec![Finding::at(
            s.gd_marker as u64,
            "marker of unknown type 7 (1 sectors)"
        )]
    );
}

#[test]
fn bad_magic_is_an_error() {
    let mut s = small();
    s.bytes[..4].copy_from_slice(b"vmdk");
    let e = verify_bytes(&s.bytes).unwrap_err();
    assert_eq!(
        e.message(),
        "not a VMDK sparse extent: magic is [76, 6d, 64, 6b], expected \"KDMV\""
    );
}

#[test]
fn bad_version_is_reported() {
    let mut s = small();
    set_u32(&mut s.bytes, 4, 2);
    let n = s.bytes.len();
    let r = verify_bytes(&s.bytes).unwrap();
    assert_eq!(
        r.findings,
        vec![
            Finding::at(4, "version 2: stream-optimized extents must be version 3"),
            Finding::at(
                (n - 1024) as u64,
                "the footer's version is 3, the header's is 2"
            ),
        ]
    );
    set_u32(&mut s.bytes, 4, 9);
    let r = verify_bytes(&s.bytes).unwrap();
    assert_eq!(
        r.findings[0],
        Finding::at(4, "unsupported version 9 (expected 1 to 3)")
    );
}

#[test]
fn truncated_file() {
    let s = small();
    let n = s.bytes.len();
    // Without footer marker, footer and end-of-stream marker.
    let cut = &s.bytes[..n - 1536];
    let r = verify_bytes(cut).unwrap();
    let m = n - 1536;
    assert_eq!(
        r.findings,
        vec![
            Finding::at(
                (m - 1536) as u64,
                format!("no footer marker at byte {} (3 sectors before the end), found: end-of-stream marker (0 sectors)", m - 1536)
            ),
            Finding::whole(format!(
                "cannot read the grain tables: the grain directory is at the end, but no footer marker at byte {} (3 sectors before the end), found: end-of-stream marker (0 sectors)",
                m - 1536
            )),
            Finding::at(m as u64, "the stream ends without an end-of-stream marker"),
        ]
    );
    // Cut inside a grain record.
    let len = s.grains[1] + 700;
    let rec_size = u32::from_le_bytes(
        s.bytes[s.grains[1] + 8..s.grains[1] + 12]
            .try_into()
            .unwrap(),
    );
    let r = verify_bytes(&s.bytes[..len]).unwrap();
    let footer_at = len / 512 * 512 - 1536;
    let no_footer = format!(
        "no footer marker at byte {footer_at} (3 sectors before the end), found: end-of-stream marker (0 sectors)"
    );
    assert_eq!(
        r.findings,
        vec![
            Finding::at(footer_at as u64, no_footer.clone()),
            Finding::whole(format!(
                "cannot read the grain tables: the grain directory is at the end, but {no_footer}"
            )),
            Finding::at(
                s.grains[1] as u64,
                format!("grain record for LBA 128 ({rec_size} compressed bytes) runs past the end of the file")
            ),
        ]
    );
    assert_eq!(r.virtual_sha256, None);
    // Too short for a header.
    let e = verify_bytes(&s.bytes[..100]).unwrap_err();
    assert_eq!(
        e.message(),
        "file of 100 bytes is too short for a VMDK header"
    );
}

#[test]
fn reader_rejects_grain_pointing_past_eof() {
    let mut s = small();
    set_u32(&mut s.bytes, s.gt + 4, 0x0100_0000);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.vmdk");
    fs::write(&p, &s.bytes).unwrap();
    let r = vmdk::open(File::open(&p).unwrap()).unwrap();
    let mut buf = [0u8; 512];
    let e = r.read_at(&mut buf, GRAIN as u64).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "12 bytes at byte 8589934592 run past the end of the file ({} bytes)",
            s.bytes.len()
        )
    );
    r.read_at(&mut buf, 0).unwrap();
    assert_eq!(buf, [0xAB; 512]);
    let _ = File::open(&p).unwrap().read_at(&mut buf, 0);
}

/// Writer throughput for 1, 2 and 4 compression workers (identical bytes).
/// Run: `cargo test --release -p cloudimg-disk --test vmdk -- --ignored --nocapture`.
#[test]
#[ignore = "benchmark"]
fn bench_parallel_compression() {
    let mib = 192;
    let mut b = vec![0u8; mib << 20];
    let mut rng = Rng::new(42);
    for (i, c) in b.chunks_mut(1 << 20).enumerate() {
        match i % 3 {
            0 => rng.fill(c),
            1 => c.copy_from_slice(&text(&mut rng, c.len())),
            _ => {}
        }
    }
    let d = MemDisk::new(b);
    let mut first: Option<Vec<u8>> = None;
    for jobs in [1, 2, 4] {
        let t = std::time::Instant::now();
        let out =
            vmdk::write_stream_optimized_jobs(&d, Vec::new(), "b.vmdk", &opts(0), jobs).unwrap();
        let dt = t.elapsed();
        eprintln!(
            "jobs={jobs}: {mib} MiB -> {} bytes in {dt:.2?} ({:.0} MiB/s)",
            out.len(),
            mib as f64 / dt.as_secs_f64()
        );
        match &first {
            None => first = Some(out),
            Some(f) => assert!(f == &out, "jobs={jobs} changed the output"),
        }
    }
}

#[test]
fn monolithic_sparse_redundant_table_mismatch() {
    let Some(ext2) = common::corpus("dfvfs/ext2.vmdk") else {
        return;
    };
    let mut b = fs::read(&ext2).unwrap();
    assert_eq!(verify_bytes(&b).unwrap().findings, vec![]);
    // The redundant GD is at sector 21; its first GT follows the GD copies.
    let rgt = u32::from_le_bytes(b[21 * 512..21 * 512 + 4].try_into().unwrap()) as usize * 512;
    b[rgt] ^= 1;
    let r = verify_bytes(&b).unwrap();
    assert_eq!(
        r.findings,
        vec![Finding::at(
            rgt as u64,
            "redundant grain table 0 differs from the primary grain table"
        )]
    );
    // The primary tables still decode the same disk.
    assert_eq!(
        r.virtual_sha256.unwrap().to_string(),
        "a6c2f0e39afe6c6ab432ca5465349fcefe8dc944398e97b2d957d3f89dbb5d80"
    );
}

#[test]
fn large_sparse_disk_past_4_gib() {
    // 5 GiB + 1 sector, sparse: data at the start, past 4 GiB, at the end.
    let size: u64 = (5 << 30) + 512;
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("big.raw");
    let f = File::create(&raw).unwrap();
    f.set_len(size).unwrap();
    let spots: [(u64, u8); 3] = [(4096, 0x11), ((4 << 30) + 12345, 0x22), (size - 301, 0x33)];
    for (at, v) in spots {
        f.write_all_at(&[v; 300], at).unwrap();
    }
    drop(f);
    let disk = cloudimg_disk::io::RawFile::open(&raw).unwrap();
    let vmdk_path = dir.path().join("big.vmdk");
    let out = File::create(&vmdk_path).unwrap();
    vmdk::write_stream_optimized(&disk, out, "big.vmdk", &opts(1)).unwrap();
    let r = vmdk::open(File::open(&vmdk_path).unwrap()).unwrap();
    assert_eq!(r.size(), size);
    for (at, v) in spots {
        let mut b = [0u8; 302];
        r.read_at(&mut b, at - 1).unwrap();
        assert_eq!((b[0], b[1], b[300], b[301]), (0, v, v, 0));
    }
    let data: u64 = r
        .extents()
        .unwrap()
        .iter()
        .filter(|e| e.kind == ExtentKind::Data)
        .map(|e| e.len)
        .sum();
    assert_eq!(
        data,
        2 * GRAIN as u64 + 512,
        "two whole grains and the 512-byte last grain"
    );
    if !require_tool("qemu-img") {
        return;
    }
    run(Command::new("qemu-img")
        .args(["check", "-f", "vmdk"])
        .arg(&vmdk_path));
    run(Command::new("qemu-img")
        .args(["compare", "-f", "raw", "-F", "vmdk"])
        .arg(&raw)
        .arg(&vmdk_path));
}

#[test]
fn grains_out_of_order() {
    let mut s = small();
    let [g0, g1, _] = s.grains;
    // Swap the LBAs of the first two records and their GT entries: the
    // tables stay consistent, the stream order does not.
    set_u32(&mut s.bytes, g0, 128);
    set_u32(&mut s.bytes, g1, 0);
    set_u32(&mut s.bytes, s.gt, (g1 / 512) as u32);
    set_u32(&mut s.bytes, s.gt + 4, (g0 / 512) as u32);
    let r = verify_bytes(&s.bytes).unwrap();
    assert_eq!(
        r.findings,
        vec![Finding::at(
            g1 as u64,
            "grain record for LBA 0 comes after LBA 128 (grains must be in increasing order)"
        )]
    );
    // Still decodable through the tables: the two grains trade places.
    let mut raw = vec![0u8; 4 * GRAIN];
    raw[..GRAIN].copy_from_slice(&text(&mut Rng::new(1), GRAIN));
    raw[GRAIN..2 * GRAIN].fill(0xAB);
    raw[3 * GRAIN..].fill(0xCD);
    assert_eq!(r.virtual_sha256.unwrap().to_string(), sha_hex(&raw));
}

// ---------------------------------------------------------------------------
// Descriptors judged by their content, not their first comment

/// `bytes` (a VMDK we wrote) with its embedded descriptor (20 sectors at
/// sector 1) replaced by `text`, padded with NULs.
fn with_descriptor(bytes: &[u8], text: &str) -> Vec<u8> {
    let mut b = bytes.to_vec();
    let area = &mut b[512..21 * 512];
    area.fill(0);
    area[..text.len()].copy_from_slice(text.as_bytes());
    b
}

/// A descriptor shaped like the one Red Hat's VMDK-stream-converter
/// (github.com/imcleod/VMDK-stream-converter, `VMDKstream.py`, used to
/// upload images to ESX through the vSphere API) embeds in the
/// stream-optimized files it writes: its first line is a comment other
/// than `# Disk DescriptorFile`, comments sit between the settings, the
/// extent is `RDONLY` and names another file, the DDB comes in another
/// order and the text ends without a newline. Written in our words after
/// that sample, with this disk's capacity.
fn stream_converter_descriptor(sectors: u64) -> String {
    format!(
        "# Description file written by a VMDK stream converter\n\
         version=1\n\
         # a random content id\n\
         CID=7e5b80a7\n\
         # no parent\n\
         parentCID=ffffffff\n\
         createType=\"streamOptimized\"\n\
         \n\
         # Extent description\n\
         RDONLY {sectors} SPARSE \"call-me-stream.vmdk\"\n\
         \n\
         # The Disk Data Base\n\
         #DDB\n\
         \n\
         ddb.adapterType = \"lsilogic\"\n\
         ddb.geometry.cylinders = \"1\"\n\
         ddb.geometry.heads = \"255\"\n\
         ddb.geometry.sectors = \"63\"\n\
         ddb.longContentID = \"8f15b3d0009d9a3f456ff7b28d324d2a\"\n\
         ddb.virtualHWVersion = \"7\""
    )
}

#[test]
fn descriptor_with_another_first_comment_is_read_like_qemu() {
    if !require_tool("qemu-img") {
        return;
    }
    let raw = mixed_disk(2 << 20, 31);
    let w = write_vmdk(&MemDisk::new(raw.clone()), &raw);
    let ours = fs::read(&w.vmdk).unwrap();
    let text = stream_converter_descriptor(raw.len() as u64 / 512);
    assert!(!text.starts_with("# Disk DescriptorFile"));
    fs::write(&w.vmdk, with_descriptor(&ours, &text)).unwrap();

    // The oracle reads it and agrees with the raw disk...
    let info = run(Command::new("qemu-img")
        .args(["info", "--output=json"])
        .arg(&w.vmdk));
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!(info["format"], "vmdk");
    run(Command::new("qemu-img")
        .args(["compare", "-f", "raw", "-F", "vmdk"])
        .arg(&w.raw)
        .arg(&w.vmdk));
    // ...and so do our verifier (no finding) and reader.
    let report = cloudimg_disk::verify::verify_file(
        &File::open(&w.vmdk).unwrap(),
        cloudimg_disk::formats::Format::Vmdk,
    )
    .unwrap();
    assert_eq!(report.findings, Vec::<Finding>::new());
    assert_eq!(report.virtual_sha256.unwrap().to_string(), sha_hex(&raw));
    let r = vmdk::open(File::open(&w.vmdk).unwrap()).unwrap();
    assert_eq!(sha256_disk(&r).unwrap().to_string(), sha_hex(&raw));
}

#[test]
fn descriptor_qemu_refuses_is_refused_in_one_line() {
    if !require_tool("qemu-img") {
        return;
    }
    let raw = mixed_disk(1 << 20, 32);
    let w = write_vmdk(&MemDisk::new(raw.clone()), &raw);
    let ours = fs::read(&w.vmdk).unwrap();
    let cases = [
        (
            "# Disk DescriptorFile\nversion=1\ncreateType=\"streamOptimized\"\n",
            "the embedded descriptor has no CID",
        ),
        (
            "version=1\nCID=xyz\nparentCID=ffffffff\n",
            "the embedded descriptor's CID \"xyz\" is not 1 to 8 hex digits",
        ),
        (
            "version=1\nCID=1234abcd\nparentCID=ffffffff\nparentFileNameHint=\"base.vmdk\"\n",
            "is a delta disk of the parent \"base.vmdk\" (parentFileNameHint): convert the pair first (qemu-img convert -O raw) and give the result",
        ),
    ];
    for (text, message) in cases {
        fs::write(&w.vmdk, with_descriptor(&ours, text)).unwrap();
        let q = Command::new("qemu-img")
            .args(["convert", "-f", "vmdk", "-O", "raw"])
            .arg(&w.vmdk)
            .arg(w.dir.path().join("out.raw"))
            .output()
            .unwrap();
        assert!(!q.status.success(), "qemu-img reads {text:?}");
        let e = vmdk::open(File::open(&w.vmdk).unwrap()).err().unwrap();
        assert_eq!(e.to_string(), message);
        // The verifier still decodes it and says what is wrong.
        let report = cloudimg_disk::verify::verify_file(
            &File::open(&w.vmdk).unwrap(),
            cloudimg_disk::formats::Format::Vmdk,
        )
        .unwrap();
        assert!(!report.findings.is_empty(), "{text:?}");
        assert_eq!(report.virtual_sha256.unwrap().to_string(), sha_hex(&raw));
    }
}
