//! Hostile and damaged input: truncation sweeps over every format we
//! write, flipped bytes in every checksummed structure, allocation and
//! decompression bombs, and the regressions found by fuzzing (fuzz/).
//! Each verifier must answer with an error or findings (with offsets),
//! never panic, never hang.

mod common;

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use cloudimg_disk::codec::{gzip, tar};
use cloudimg_disk::formats::{gcp, vhd, vmdk, WriteOptions};
use cloudimg_disk::layout::gpt::{self, GptSpec, NewPartition};
use cloudimg_disk::layout::{self, Guid};
use cloudimg_disk::verify::Report;
use cloudimg_disk::{MemDisk, VirtualDisk};

const GIB: u64 = 1 << 30;

fn opts() -> WriteOptions {
    WriteOptions {
        mtime: 1_700_000_000,
        seed: [5; 32],
    }
}

/// A 64 KiB GPT disk with two partitions and some data.
fn gpt_disk() -> Vec<u8> {
    let size = 64u64 << 10;
    let mut spec = GptSpec::new(Guid::v4_from([1; 16]));
    spec.partitions = vec![
        NewPartition {
            type_guid: "C12A7328-F81F-11D2-BA4B-00A0C93EC93B".parse().unwrap(),
            unique_guid: Guid::v4_from([2; 16]),
            first_lba: 34,
            last_lba: 60,
            attributes: 0,
            name: "EFI system".into(),
        },
        NewPartition {
            type_guid: "0FC63DAF-8483-4772-8E79-3D69D8477DE4".parse().unwrap(),
            unique_guid: Guid::v4_from([3; 16]),
            first_lba: 61,
            last_lba: 93,
            attributes: 0,
            name: "root".into(),
        },
    ];
    let img = gpt::create(&spec, size).unwrap();
    let mut d = vec![0u8; size as usize];
    for (o, b) in img.patches() {
        d[o as usize..o as usize + b.len()].copy_from_slice(b);
    }
    let mut rng = common::Rng::new(7);
    rng.fill(&mut d[34 * 512..40 * 512]);
    d
}

fn vhd_bytes(dir: &Path) -> Vec<u8> {
    let p = dir.join("w.vhd");
    vhd::write_fixed(
        &MemDisk::new(gpt_disk()),
        &File::create(&p).unwrap(),
        &opts(),
    )
    .unwrap();
    fs::read(p).unwrap()
}

fn vmdk_bytes() -> Vec<u8> {
    vmdk::write_stream_optimized(&MemDisk::new(gpt_disk()), Vec::new(), "disk.vmdk", &opts())
        .unwrap()
}

fn targz_bytes() -> Vec<u8> {
    let grown = gpt::grow(MemDisk::new(gpt_disk()), GIB).unwrap();
    gcp::write_tar_gz(&grown, Vec::new(), &opts()).unwrap()
}

/// Most bytes a verifier may read per byte of its input, and beyond: a
/// verifier reads the file once or twice (a stream-optimized VMDK's
/// markers, then its tables), never in a loop.
const READS_PER_INPUT_BYTE: u64 = 4;
const READS_BEYOND: u64 = 1 << 20;

/// Run `verify` on `bytes` written to a file, within a bound of work that
/// no hang or loop over the input stays inside: the bytes it reads are
/// counted ([`common::counting_reads`]) and bounded by the input's size,
/// and what it decodes by the largest disk these tests build (1 GiB: the
/// GCP shape). No wall clock: the bound is the same on any machine.
fn verify_with(
    dir: &Path,
    bytes: &[u8],
    format: cloudimg_disk::formats::Format,
) -> cloudimg_disk::Result<Report> {
    let p = dir.join("x");
    fs::write(&p, bytes).unwrap();
    let (r, reads) = common::counting_reads(|| {
        cloudimg_disk::verify::verify_file(&File::open(&p).unwrap(), format)
    });
    let most = READS_PER_INPUT_BYTE * bytes.len() as u64 + READS_BEYOND;
    assert!(
        reads.bytes <= most,
        "verify read {} bytes of a {}-byte input (at most {most})",
        reads.bytes,
        bytes.len()
    );
    // What was decoded (and hashed) in full.
    if let Ok(Report {
        virtual_size: Some(size),
        virtual_sha256: Some(_),
        ..
    }) = &r
    {
        assert!(*size <= GIB, "verify decoded {size} bytes");
    }
    r
}

fn messages(r: &Report) -> Vec<String> {
    r.findings.iter().map(|f| f.to_string()).collect()
}

/// Offsets to cut a `len`-byte artifact at: inside the first headers,
/// the middle, and every few bytes of the last sectors (footers,
/// trailers).
fn cuts(len: usize) -> Vec<usize> {
    let mut c = vec![0, 1, 10, 100, 511, 512, 513, 1024, 1536, len / 3, len / 2];
    for back in [1536, 1024, 600, 513, 512, 511, 300, 64, 8, 4, 1] {
        c.push(len.saturating_sub(back));
    }
    c.sort_unstable();
    c.dedup();
    c.retain(|&n| n < len);
    c
}

fn cut_file(dir: &Path, bytes: &[u8]) -> File {
    let p = dir.join("cut");
    fs::write(&p, bytes).unwrap();
    File::open(&p).unwrap()
}

/// Read a few places of a disk and its extent map: errors are fine,
/// panics are not.
fn exercise(disk: &dyn VirtualDisk) {
    let size = disk.size();
    let _ = disk.extents();
    let mut buf = vec![0u8; 4096];
    for off in [0, size / 2, size.saturating_sub(4096)] {
        let n = (size - off.min(size)).min(4096) as usize;
        let _ = disk.read_at(&mut buf[..n], off);
    }
    assert!(disk
        .read_at(&mut buf[..512], size.saturating_sub(256))
        .is_err());
}

// ---------------------------------------------------------------------------
// Truncation sweeps

#[test]
fn truncated_fixed_vhd_is_never_sound() {
    let dir = tempfile::tempdir().unwrap();
    let good = vhd_bytes(dir.path());
    let len = good.len();
    assert!(
        verify_with(dir.path(), &good, cloudimg_disk::formats::Format::VhdFixed)
            .unwrap()
            .is_ok()
    );
    for n in cuts(len) {
        if let Ok(d) = vhd::open(cut_file(dir.path(), &good[..n])) {
            exercise(&d);
        }
        match verify_with(
            dir.path(),
            &good[..n],
            cloudimg_disk::formats::Format::VhdFixed,
        ) {
            Err(e) => {
                assert!(n < 512, "cut at {n}: {e}");
                assert_eq!(
                    e.to_string(),
                    format!("file of {n} bytes is too short for a VHD footer")
                );
            }
            Ok(r) => {
                // The last 512 bytes are taken as the footer: never sound.
                let m = messages(&r);
                assert!(
                    m[0].starts_with(&format!("at byte {}: footer cookie is ", n - 512)),
                    "cut at {n}: {m:?}"
                );
                assert!(
                    m.iter().any(|f| f.starts_with(&format!(
                        "at byte {}: footer checksum mismatch",
                        n - 512 + 64
                    ))),
                    "cut at {n}: {m:?}"
                );
                // Findings about the container carry their offset (one
                // about the decoded disk's GPT, when qemu 7.2's geometry
                // rule gives the garbage footer a small size, does not).
                assert!(
                    r.findings
                        .iter()
                        .filter(|f| f.layer == cloudimg_disk::verify::Layer::Container)
                        .all(|f| f.offset.is_some()),
                    "cut at {n}: {m:?}"
                );
            }
        }
    }
    // One byte short: the footer starts one byte early.
    let r = verify_with(
        dir.path(),
        &good[..len - 1],
        cloudimg_disk::formats::Format::VhdFixed,
    )
    .unwrap();
    assert_eq!(
        messages(&r)[0],
        format!(
            "at byte {}: footer cookie is \"\\0conecti\" (00636f6e65637469), expected \"conectix\"",
            len - 513
        )
    );
}

#[test]
fn truncated_stream_optimized_vmdk_is_never_sound() {
    let dir = tempfile::tempdir().unwrap();
    let good = vmdk_bytes();
    let len = good.len();
    assert!(
        verify_with(dir.path(), &good, cloudimg_disk::formats::Format::Vmdk)
            .unwrap()
            .is_ok()
    );
    for n in cuts(len) {
        if let Ok(d) = vmdk::open(cut_file(dir.path(), &good[..n])) {
            exercise(&d);
        }
        match verify_with(dir.path(), &good[..n], cloudimg_disk::formats::Format::Vmdk) {
            Err(e) => {
                assert!(n < 512, "cut at {n}: {e}");
                assert_eq!(
                    e.to_string(),
                    format!("file of {n} bytes is too short for a VMDK header")
                );
            }
            Ok(r) => {
                let m = messages(&r);
                assert!(!m.is_empty(), "cut at {n} passes");
                assert!(r.virtual_sha256.is_none(), "cut at {n} decodes: {m:?}");
                // Readers look for the footer 3 sectors before the end.
                let footer_at = (n as u64 / 512 * 512).saturating_sub(1536);
                assert!(
                    m.iter()
                        .any(|f| f.starts_with(&format!("at byte {footer_at}: "))
                            && f.contains("footer")),
                    "cut at {n}: {m:?}"
                );
            }
        }
    }
    let r = verify_with(
        dir.path(),
        &good[..512],
        cloudimg_disk::formats::Format::Vmdk,
    )
    .unwrap();
    assert_eq!(
        messages(&r),
        [
            "at byte 28: the descriptor (20 sectors at sector 1) runs past the end of the file",
            "at byte 0: file of 512 bytes is too short to hold a footer",
            "cannot read the grain tables: the grain directory is at the end, but file of 512 bytes is too short to hold a footer",
            "at byte 512: the stream ends without an end-of-stream marker",
        ]
    );
    // The last sector (end-of-stream marker) missing: where the footer
    // marker should be is the grain directory (its first entry, 30, reads
    // as a marker's sector count).
    let n = len - 512;
    let r = verify_with(dir.path(), &good[..n], cloudimg_disk::formats::Format::Vmdk).unwrap();
    assert_eq!(
        messages(&r)[0],
        format!(
            "at byte {}: no footer marker at byte {} (3 sectors before the end), found: end-of-stream marker (30 sectors)",
            n - 1536,
            n - 1536
        )
    );
}

#[test]
fn truncated_gcp_tarball_is_an_error_at_the_cut() {
    let dir = tempfile::tempdir().unwrap();
    let good = targz_bytes();
    let len = good.len();
    assert!(
        verify_with(dir.path(), &good, cloudimg_disk::formats::Format::Gzip)
            .unwrap()
            .is_ok()
    );
    // Cuts near the end decode the whole 1 GiB disk (hashing its hole,
    // about a second) before they reach the damage: keep one of them.
    let mut cuts = cuts(len);
    cuts.retain(|&n| n + 1536 < len || n + 4 == len);
    for n in cuts {
        let e = verify_with(dir.path(), &good[..n], cloudimg_disk::formats::Format::Gzip)
            .map(|r| messages(&r))
            .expect_err(&format!("cut at {n} decodes"));
        let want = if n < 10 {
            "gzip file truncated in the header"
        } else if n >= len - 8 {
            "gzip file truncated in the trailer (CRC32 and ISIZE)"
        } else {
            "gzip file truncated: the deflate stream ends before its final block"
        };
        assert_eq!(e.message(), want, "cut at {n}");
        assert_eq!(e.offset(), Some(n as u64), "cut at {n}");
        let out = File::create(dir.path().join("out.raw")).unwrap();
        let e = gcp::extract_disk(&cut_file(dir.path(), &good[..n]), &out).unwrap_err();
        assert_eq!(e.message(), want, "extracting, cut at {n}");
    }
}

#[test]
fn truncated_gpt_disk_loses_its_backup() {
    let good = gpt_disk();
    assert_eq!(gpt::verify(&MemDisk::new(good.clone())), vec![]);
    for n in cuts(good.len()) {
        let d = MemDisk::new(good[..n].to_vec());
        let f: Vec<String> = gpt::verify(&d).iter().map(|f| f.to_string()).collect();
        let _ = layout::read_table(&d);
        let _ = gpt::grow(&d, (n as u64).div_ceil(512) * 512 + 4096);
        if n < 512 {
            // Not even an MBR: nothing says there is a GPT.
            assert_eq!(f, Vec::<String>::new(), "cut at {n}");
            continue;
        }
        assert!(!f.is_empty(), "cut at {n} passes");
        let sectors = n as u64 / 512;
        if n % 512 != 0 {
            assert_eq!(
                f[0],
                format!("disk size {n} is not a multiple of 512 bytes, so the GPT has no last LBA")
            );
        }
        if sectors >= 3 {
            let last = sectors - 1;
            assert!(
                f.contains(&format!(
                    "at byte {}: backup GPT header missing: no \"EFI PART\" signature at LBA {last}",
                    last * 512
                )),
                "cut at {n}: {f:?}"
            );
        }
        if sectors >= 34 {
            // The primary copy is intact and still decodes.
            match layout::read_table(&d).unwrap() {
                layout::PartitionTable::Gpt(g) => {
                    assert_eq!(g.source, "primary");
                    assert_eq!(g.partitions.len(), 2);
                }
                t => panic!("cut at {n}: {t:?}"),
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Flipped bytes in checksummed structures

#[test]
fn every_vhd_footer_byte_is_covered_by_the_checksum() {
    let dir = tempfile::tempdir().unwrap();
    let good = vhd_bytes(dir.path());
    let fo = good.len() - 512;
    for i in 0..512 {
        let mut bad = good.clone();
        bad[fo + i] ^= 0x10;
        let r = verify_with(dir.path(), &bad, cloudimg_disk::formats::Format::VhdFixed).unwrap();
        let m = messages(&r);
        let stored = u32::from_be_bytes(bad[fo + 64..fo + 68].try_into().unwrap());
        assert!(
            m.iter().any(|f| f.starts_with(&format!(
                "at byte {}: footer checksum mismatch (expected ",
                fo + 64
            )) && f.ends_with(&format!(", found {stored:08x})"))),
            "byte {i}: {m:?}"
        );
    }
}

fn gpt_messages(d: &[u8]) -> Vec<String> {
    gpt::verify(&MemDisk::new(d.to_vec()))
        .iter()
        .map(|f| f.to_string())
        .collect()
}

#[test]
fn every_gpt_header_and_array_byte_is_covered_by_a_crc() {
    let good = gpt_disk();
    let last = good.len() as u64 / 512 - 1;
    let array_sectors = 32u64;
    let copies = [
        ("primary", 1u64, 2u64, "backup"),
        ("backup", last, last - array_sectors, "primary"),
    ];
    for (which, hdr_lba, arr_lba, other) in copies {
        let h = (hdr_lba * 512) as usize;
        for i in 0..92 {
            let mut bad = good.clone();
            bad[h + i] ^= 0x04;
            let m = gpt_messages(&bad);
            let crc = format!("at byte {}: {which} header CRC mismatch (expected ", h + 16);
            let size = format!("at byte {}: {which} header size ", h + 12);
            let missing = format!(
                "at byte {h}: {which} GPT header missing: no \"EFI PART\" signature at LBA {hdr_lba}"
            );
            assert!(
                m.iter().any(|f| f.starts_with(&crc)
                    || (12..16).contains(&i) && f.starts_with(&size)
                    || i < 8 && *f == missing),
                "{which} header byte {i}: {m:?}"
            );
            if i >= 8 {
                // The other copy is sound and is used instead.
                match layout::read_table(&MemDisk::new(bad)).unwrap() {
                    layout::PartitionTable::Gpt(g) => assert_eq!(g.source, other),
                    t => panic!("{t:?}"),
                }
            }
        }
        let a = (arr_lba * 512) as usize;
        // Every byte of the used entries, then a sample of the empty ones.
        for i in (0..256).chain((256..16384).step_by(97)) {
            let mut bad = good.clone();
            bad[a + i] ^= 0x80;
            let m = gpt_messages(&bad);
            let prefix = format!("at byte {a}: {which} partition array CRC mismatch (expected ");
            assert!(
                m.iter().any(|f| f.starts_with(&prefix)),
                "{which} array byte {i}: {m:?}"
            );
            match layout::read_table(&MemDisk::new(bad)).unwrap() {
                layout::PartitionTable::Gpt(g) => {
                    assert_eq!(g.source, other);
                    assert_eq!(g.partitions.len(), 2);
                }
                t => panic!("{t:?}"),
            }
        }
    }
}

#[test]
fn gzip_trailer_bytes_are_all_checked() {
    let dir = tempfile::tempdir().unwrap();
    let good = targz_bytes();
    let n = good.len();
    let mut bad = good.clone();
    for b in &mut bad[n - 8..] {
        *b ^= 0x21;
    }
    let crc = u32::from_le_bytes(good[n - 8..n - 4].try_into().unwrap());
    let isize = u32::from_le_bytes(good[n - 4..].try_into().unwrap());
    let r = verify_with(dir.path(), &bad, cloudimg_disk::formats::Format::Gzip).unwrap();
    assert_eq!(
        messages(&r),
        [
            format!(
                "at byte {}: gzip: CRC32 mismatch: trailer says {:08x}, the data has {crc:08x}",
                n - 8,
                crc ^ 0x2121_2121
            ),
            format!(
                "at byte {}: gzip: ISIZE mismatch: trailer says {}, the data is {isize} bytes ({isize} mod 2^32)",
                n - 4,
                isize ^ 0x2121_2121
            ),
        ]
    );
    // The extractor refuses the data it cannot trust.
    let out = File::create(dir.path().join("out.raw")).unwrap();
    let e = gcp::extract_disk(&cut_file(dir.path(), &bad), &out).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "gzip: CRC32 mismatch: trailer says {:08x}, the data has {crc:08x} (at byte {})",
            crc ^ 0x2121_2121,
            n - 8
        )
    );
}

// ---------------------------------------------------------------------------
// Allocation and decompression bombs: refused with a clear error, in
// bounded memory and time.

/// Gzip `data` with our own writer.
fn gz(data: &[u8]) -> Vec<u8> {
    let mut w = gzip::GzipWriter::new(Vec::new()).unwrap();
    w.write_all(data).unwrap();
    w.finish().unwrap()
}

fn spec() -> tar::MemberSpec<'static> {
    tar::MemberSpec {
        name: "disk.raw",
        mode: 0o644,
        mtime: 0,
    }
}

#[test]
fn sparse_map_of_millions_of_entries_is_refused() {
    use tar::{member_headers, SparseEntry, MAX_SPARSE_ENTRIES};
    let dir = tempfile::tempdir().unwrap();
    // One more entry than accepted: 4 in the header, 21 per extension
    // block (about 25 MB of headers, 2 MB gzipped).
    let map: Vec<SparseEntry> = (0..=MAX_SPARSE_ENTRIES as u64)
        .map(|i| SparseEntry {
            offset: i * 512,
            numbytes: 0,
        })
        .collect();
    let mut t: Vec<u8> = member_headers(&spec(), GIB, Some(&map)).concat();
    t.resize(t.len() + 1024, 0);
    let r = verify_with(dir.path(), &gz(&t), cloudimg_disk::formats::Format::Gzip).unwrap();
    // The entry past the limit is in extension block (MAX - 4) / 21.
    let block = (MAX_SPARSE_ENTRIES - 4) / 21;
    assert_eq!(
        messages(&r),
        [format!(
            "at byte {}: tar stream: sparse map has more than 1048576 entries",
            512 * (1 + block)
        )]
    );
}

#[test]
fn endless_empty_sparse_extension_blocks_are_refused() {
    use tar::{member_headers, SparseEntry, MAX_SPARSE_EXT_BLOCKS};
    let dir = tempfile::tempdir().unwrap();
    // Extension blocks that hold no entry but say another follows: before
    // the fix the reader looped as long as the stream lasted (a few KiB
    // of gzip inflate to gigabytes of such blocks).
    let map: Vec<SparseEntry> = (0..5)
        .map(|i| SparseEntry {
            offset: i * 1024,
            numbytes: 0,
        })
        .collect();
    let mut t: Vec<u8> = member_headers(&spec(), GIB, Some(&map)).concat();
    t.truncate(512);
    let mut empty = [0u8; 512];
    empty[504] = 1;
    for _ in 0..MAX_SPARSE_EXT_BLOCKS + 10 {
        t.extend_from_slice(&empty);
    }
    t.resize(t.len() + 1024, 0);
    let r = verify_with(dir.path(), &gz(&t), cloudimg_disk::formats::Format::Gzip).unwrap();
    assert_eq!(
        messages(&r),
        [format!(
            "at byte {}: tar stream: sparse map has more than 49933 extension blocks",
            512 * (1 + MAX_SPARSE_EXT_BLOCKS)
        )]
    );
}

/// A gzip file whose member is `tar` followed by `zero_mib` MiB of zeros,
/// with a trailer (CRC-32, ISIZE) describing `tar` alone. The zeros are
/// one deflate block repeated, so 1 GiB costs about 1 MB of file.
fn deflate_bomb(tar: &[u8], zero_mib: usize) -> Vec<u8> {
    use flate2::{Compress, Compression, FlushCompress};
    let mut c = Compress::new(Compression::best(), false);
    let mut deflate = Vec::with_capacity(tar.len() + (4 << 20));
    c.compress_vec(tar, &mut deflate, FlushCompress::Full)
        .unwrap();
    let before = deflate.len();
    c.compress_vec(&vec![0u8; 1 << 20], &mut deflate, FlushCompress::Full)
        .unwrap();
    let block = deflate[before..].to_vec();
    let mut out = gzip::WRITER_HEADER.to_vec();
    out.extend_from_slice(&deflate);
    for _ in 1..zero_mib {
        out.extend_from_slice(&block);
    }
    let mut fin = Vec::with_capacity(64);
    c.compress_vec(&[], &mut fin, FlushCompress::Finish)
        .unwrap();
    out.extend_from_slice(&fin);
    out.extend_from_slice(&crc32fast::hash(tar).to_le_bytes());
    out.extend_from_slice(&(tar.len() as u32).to_le_bytes());
    out
}

#[test]
fn deflate_bomb_after_the_tar_archive_is_stopped() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let mut tar = Vec::new();
    gzip::GzipReader::new(&targz_bytes()[..])
        .unwrap()
        .read_to_end(&mut tar)
        .unwrap();
    // Where the archive ends (after its two zero blocks).
    let mut tr = tar::TarReader::new(&tar[..]);
    while tr.next_entry().unwrap().is_some() {}
    let end = tr.position();
    // The tar says disk.raw is 1 GiB of mostly holes; the member goes on
    // with 1 GiB of zeros that no tar header accounts for.
    let bomb = deflate_bomb(&tar, 1024);
    assert!(bomb.len() < 2 << 20, "{}", bomb.len());
    let r = verify_with(dir.path(), &bomb, cloudimg_disk::formats::Format::Gzip).unwrap();
    assert_eq!(
        messages(&r).iter().map(|m| m.split_once(": ").unwrap().1).collect::<Vec<_>>(),
        [format!(
            "gzip: the member inflates to more than {} bytes, over 4194304 past the end of the tar stream \
             (byte {end}); decompression stopped, so CRC32 and ISIZE were not checked (ISIZE, the file's last \
             4 bytes, says {})",
            end + 4194304,
            tar.len()
        )]
    );
    // The finding is at the compressed byte where decompression stopped.
    let at = r.findings[0].offset.unwrap();
    assert!(at > 10 && at < bomb.len() as u64, "{at}");
    // The disk itself was decoded before the bomb went off.
    assert_eq!(r.virtual_size, Some(GIB));

    let out = File::create(dir.path().join("out.raw")).unwrap();
    let e = gcp::extract_disk(&cut_file(dir.path(), &bomb), &out).unwrap_err();
    assert_eq!(
        e.message(),
        "gzip: more than 4194304 bytes follow disk.raw in the tar stream; decompression stopped (a deflate bomb?)"
    );

    // The same zeros within the limit are just record padding: sound.
    let padded = deflate_bomb(&tar, 2);
    let r = verify_with(dir.path(), &padded, cloudimg_disk::formats::Format::Gzip).unwrap();
    assert_eq!(
        messages(&r),
        [
            format!(
                "at byte {}: gzip: CRC32 mismatch: trailer says {:08x}, the data has {:08x}",
                padded.len() - 8,
                crc32fast::hash(&tar),
                {
                    let mut h = crc32fast::Hasher::new();
                    h.update(&tar);
                    h.update(&vec![0u8; 2 << 20]);
                    h.finalize()
                }
            ),
            format!(
                "at byte {}: gzip: ISIZE mismatch: trailer says {}, the data is {} bytes ({} mod 2^32)",
                padded.len() - 4,
                tar.len(),
                tar.len() + (2 << 20),
                tar.len() + (2 << 20)
            ),
        ]
    );
}

fn vmdk_header(capacity: u64, gd_offset: u64) -> vmdk::wire::SparseExtentHeader {
    vmdk::wire::SparseExtentHeader::stream_optimized(capacity, gd_offset)
}

#[test]
fn vmdk_claiming_2_pow_40_grain_table_entries_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    // 2^47 sectors of 128-sector grains: 2^40 grain table entries, in
    // 2^31 tables; the grain directory alone would be 8 GiB.
    let h = vmdk_header(1 << 47, 1);
    assert_eq!(h.grain_count(), 1 << 40);
    let bytes = h.to_bytes();
    let e = vmdk::open(cut_file(dir.path(), &bytes)).unwrap_err();
    assert_eq!(
        e.message(),
        "the grain directory (2147483648 entries at sector 1) does not fit in the 512-byte file"
    );
    let r = verify_with(dir.path(), &bytes, cloudimg_disk::formats::Format::Vmdk).unwrap();
    assert_eq!(
        messages(&r),
        [
            "at byte 28: the descriptor (20 sectors at sector 1) runs past the end of the file",
            "at byte 512: cannot read the grain tables: the grain directory (2147483648 entries at sector 1) does \
             not fit in the 512-byte file",
            "at byte 512: the stream ends without an end-of-stream marker",
        ]
    );
    // inspect refuses it too, without counting 2^40 grains.
    let p = dir.path().join("cut");
    let e = cloudimg_disk::inspect::inspect(&p).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}: the grain directory (2147483648 entries at sector 1) does not fit in the 512-byte file (at byte 512)",
            p.display()
        )
    );
}

#[test]
fn vmdk_descriptor_of_megabytes_is_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let good = vmdk_bytes();
    // Claim a 4 MiB descriptor (8192 sectors) in a file large enough.
    let mut bad = good.clone();
    bad[36..44].copy_from_slice(&8192u64.to_le_bytes());
    let tail = bad.split_off(512);
    bad.resize(512 + (4 << 20), b'x');
    bad.extend_from_slice(&tail);
    let r = verify_with(dir.path(), &bad, cloudimg_disk::formats::Format::Vmdk).unwrap();
    let m = messages(&r);
    assert_eq!(
        m[0],
        "at byte 36: the descriptor is 8192 sectors, more than the 2048 sectors (1 MiB) cloudimg reads; it was not read"
    );
    // A 1 MiB descriptor (the most read) full of junk lines: the first 16
    // are reported, then a count, not 100,000 findings.
    let mut junk = b"# Disk DescriptorFile\n".to_vec();
    while junk.len() < (1 << 20) - 16 {
        junk.extend_from_slice(b"junk\n");
    }
    junk.resize(1 << 20, b'\n');
    let mut bad = good[..512].to_vec();
    bad[36..44].copy_from_slice(&2048u64.to_le_bytes());
    bad.extend_from_slice(&junk);
    bad.extend_from_slice(&good[512..]);
    let r = verify_with(dir.path(), &bad, cloudimg_disk::formats::Format::Vmdk).unwrap();
    let lines: Vec<String> = messages(&r)
        .into_iter()
        .filter(|m| m.contains("descriptor line"))
        .collect();
    assert_eq!(lines.len(), 17, "{lines:?}");
    assert_eq!(
        lines[0],
        "at byte 512: descriptor line 2 is not understood: \"junk\""
    );
    let total = junk
        .split(|&b| b == b'\n')
        .filter(|l| *l == b"junk")
        .count();
    assert_eq!(
        lines[16],
        format!(
            "at byte 512: {} more descriptor lines are not understood",
            total - 16
        )
    );
}

// ---------------------------------------------------------------------------
// Regressions found by reading the code behind the fuzz targets

/// Set a u64 field of the GPT header at `lba` and fix its CRC.
fn set_gpt_field(d: &mut [u8], lba: usize, field: usize, v: u64) {
    let h = lba * 512;
    d[h + field..h + field + 8].copy_from_slice(&v.to_le_bytes());
    d[h + 16..h + 20].fill(0);
    let crc = crc32fast::hash(&d[h..h + 92]);
    d[h + 16..h + 20].copy_from_slice(&crc.to_le_bytes());
}

#[test]
fn grow_with_alternate_lba_at_u64_max_is_refused() {
    // A sound primary header whose AlternateLBA is 2^64-1: grow looked
    // for a moved backup at AlternateLBA + 1 (an overflow).
    let mut d = gpt_disk();
    set_gpt_field(&mut d, 1, 32, u64::MAX);
    let disk = MemDisk::new(d);
    assert_eq!(
        gpt_messages(disk.bytes()),
        ["at byte 544: primary header AlternateLBA is 18446744073709551615, but the disk's last LBA is 127"]
    );
    let e = gpt::grow(&disk, GIB).map(|_| ()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "GPT is corrupt: primary header AlternateLBA is 18446744073709551615, but the disk's last LBA is 127; \
         refusing to grow it"
    );
}

#[test]
fn vmdk_grain_table_errors_carry_their_offset() {
    let dir = tempfile::tempdir().unwrap();
    let good = vmdk_bytes();
    let n = good.len();
    // The grain directory (GD at the end: the footer, at n - 1024, says
    // where) has one entry; point it past the end of the file.
    let gd_sector = u64::from_le_bytes(good[n - 1024 + 56..n - 1024 + 64].try_into().unwrap());
    let gd_at = (gd_sector * 512) as usize;
    let mut bad = good.clone();
    bad[gd_at..gd_at + 4].copy_from_slice(&1_000_000u32.to_le_bytes());
    let e = vmdk::open(cut_file(dir.path(), &bad)).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("grain table 0 at sector 1000000 runs past the end of the {n}-byte file (at byte {gd_at})")
    );
    let r = verify_with(dir.path(), &bad, cloudimg_disk::formats::Format::Vmdk).unwrap();
    assert!(
        messages(&r).contains(&format!(
            "at byte {gd_at}: cannot read the grain tables: grain table 0 at sector 1000000 runs past the end of \
             the {n}-byte file"
        )),
        "{:?}",
        messages(&r)
    );
}

#[test]
fn dynamic_vhd_header_outside_the_file_is_reported_at_the_data_offset_field() {
    let dir = tempfile::tempdir().unwrap();
    // A dynamic footer (copy at the start and at the end) whose data
    // offset points past the end of the file; reported in the start copy,
    // the one qemu reads (block/vpc.c vpc_open).
    let good = vhd_bytes(dir.path());
    let mut f = good[good.len() - 512..].to_vec();
    f[60..64].copy_from_slice(&3u32.to_be_bytes());
    f[16..24].copy_from_slice(&(1u64 << 40).to_be_bytes());
    let c = vhd::wire::checksum(&f, 64);
    f[64..68].copy_from_slice(&c.to_be_bytes());
    let bytes = [&f[..], &[0u8; 1024][..], &f[..]].concat();
    let r = verify_with(dir.path(), &bytes, cloudimg_disk::formats::Format::VhdFixed).unwrap();
    assert_eq!(
        messages(&r),
        [
            "at byte 16: dynamic disk data offset is 1099511627776, expected 512",
            "at byte 16: dynamic header at offset 1099511627776 lies outside the 2048-byte file",
        ]
    );
}

#[test]
fn every_tar_defect_is_reported_at_once_with_its_offset() {
    use tar::{header_checksum, member_headers, MemberSpec};
    let dir = tempfile::tempdir().unwrap();
    // A pax header, then a ustar member "disk.img" of 1 MiB: four
    // defects in one archive, each reported with its offset.
    let pax_rec = b"12 mtime=17\n";
    let mut pax = member_headers(
        &MemberSpec {
            name: "PaxHeaders/disk.img",
            mode: 0o644,
            mtime: 0,
        },
        12,
        None,
    )
    .remove(0);
    pax[156] = b'x';
    let mut h = member_headers(
        &MemberSpec {
            name: "disk.img",
            mode: 0o644,
            mtime: 0,
        },
        1 << 20,
        None,
    )
    .remove(0);
    h[257..265].copy_from_slice(b"ustar\x0000");
    for b in [&mut pax, &mut h] {
        b[148..156].fill(b' ');
        let s = format!("{:06o}\0 ", header_checksum(b).0);
        b[148..156].copy_from_slice(s.as_bytes());
    }
    let mut t = pax.to_vec();
    t.extend_from_slice(pax_rec);
    t.resize(1024, 0);
    t.extend_from_slice(&h);
    t.resize(t.len() + (1 << 20) + 1024, 0);
    t.resize(t.len().div_ceil(10240) * 10240, 0);
    let r = verify_with(dir.path(), &gz(&t), cloudimg_disk::formats::Format::Gzip).unwrap();
    assert_eq!(
        messages(&r),
        [
            "at byte 0: tar stream: pax extended header (typeflag 'x'): GCP wants plain oldgnu headers",
            "at byte 1281: tar stream: header magic \"ustar\\0\" version \"00\" is ustar/pax, expected oldgnu \
             (magic \"ustar \" version \" \\0\")",
            "at byte 1024: tar stream: member is named \"disk.img\", expected \"disk.raw\"",
            "at byte 1024: tar stream: \"disk.img\" is 1048576 bytes, not a whole number of GiB",
        ]
    );
    assert_eq!(r.details["tar_mtime"], 17);
}

/// The tar stream of [`targz_bytes`] cut just before its end-of-archive
/// blocks.
fn tar_without_end() -> Vec<u8> {
    use std::io::Read;
    let mut tar = Vec::new();
    gzip::GzipReader::new(&targz_bytes()[..])
        .unwrap()
        .read_to_end(&mut tar)
        .unwrap();
    let mut tr = tar::TarReader::new(&tar[..]);
    while tr.next_entry().unwrap().is_some() {}
    let end = tr.position() as usize - 1024;
    tar.truncate(end);
    tar
}

/// A header block for a member `name` of `size` bytes and typeflag `t`.
fn header(name: &str, size: u64, t: u8) -> [u8; 512] {
    use tar::{header_checksum, member_headers, MemberSpec};
    let spec = MemberSpec {
        name,
        mode: 0o644,
        mtime: 0,
    };
    let mut h = member_headers(&spec, size, None).remove(0);
    h[156] = t;
    h[148..156].fill(b' ');
    let s = format!("{:06o}\0 ", header_checksum(&h).0);
    h[148..156].copy_from_slice(s.as_bytes());
    h
}

#[test]
fn millions_of_tiny_members_give_a_bounded_report() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = tar_without_end();
    let first = t.len();
    let n = 20_000;
    for i in 0..n {
        t.extend_from_slice(&header(&format!("x{i}"), 0, b'0'));
    }
    t.resize(t.len() + 1024, 0);
    let r = verify_with(dir.path(), &gz(&t), cloudimg_disk::formats::Format::Gzip).unwrap();
    let m = messages(&r);
    assert_eq!(m.len(), 33, "{:?}", &m[..3]);
    assert_eq!(
        m[0],
        format!(
            "at byte {first}: tar stream: extra member \"x0\": the archive must hold only disk.raw"
        )
    );
    assert_eq!(
        m[32],
        format!(
            "at byte {}: tar stream: {} more pax headers or extra members from here on are not listed",
            first + 32 * 512,
            n - 32
        )
    );
}

/// A pax record `"<len> key=value\n"`.
fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let body = 3 + key.len() + value.len(); // ' ', '=', '\n'
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    let mut r = format!("{len} {key}=").into_bytes();
    r.extend_from_slice(value);
    r.push(b'\n');
    assert_eq!(r.len(), len);
    r
}

#[test]
fn pax_headers_piling_up_before_one_member_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    // Each pax header is within the 1 MiB bound, but their records
    // accumulate until a member comes: three of 400 KiB are too many.
    let rec = pax_record("comment", &vec![b'a'; 400 << 10]);
    let mut t = Vec::new();
    for _ in 0..3 {
        t.extend_from_slice(&header("PaxHeaders/x", rec.len() as u64, b'x'));
        t.extend_from_slice(&rec);
        t.resize(t.len().div_ceil(512) * 512, 0);
    }
    let third = 2 * (512 + rec.len().div_ceil(512) * 512);
    t.extend_from_slice(&header("disk.raw", 0, b'0'));
    t.resize(t.len() + 1024, 0);
    let r = verify_with(dir.path(), &gz(&t), cloudimg_disk::formats::Format::Gzip).unwrap();
    assert_eq!(
        messages(&r),
        [format!(
            "at byte {third}: tar stream: pax extended headers before one member add up to more than 1048576 bytes"
        )]
    );
}

#[test]
fn deflate_bomb_after_an_unreadable_tar_header_is_stopped() {
    let dir = tempfile::tempdir().unwrap();
    // A header with a bad checksum, then 64 MiB of zeros: decoding stops
    // 4 MiB after the point where the tar stream became unreadable.
    let mut h = header("disk.raw", GIB, b'0');
    h[0] = b'D';
    let bomb = deflate_bomb(&h, 64);
    let r = verify_with(dir.path(), &bomb, cloudimg_disk::formats::Format::Gzip).unwrap();
    let m = messages(&r);
    assert_eq!(m.len(), 2, "{m:?}");
    assert!(
        m[0].starts_with("at byte 0: tar stream: bad tar header checksum: stored "),
        "{m:?}"
    );
    assert_eq!(
        m[1].split_once(": ").unwrap().1,
        "gzip: the member inflates to more than 4194816 bytes, over 4194304 past the unreadable part of the tar \
         stream (byte 512); decompression stopped, so CRC32 and ISIZE were not checked (ISIZE, the file's last 4 \
         bytes, says 512)"
    );
}

#[test]
fn check_readable_refuses_what_open_disk_refuses() {
    use cloudimg_disk::formats::open::{check_readable, open_disk};
    let dir = tempfile::tempdir().unwrap();
    // A GCP tarball whose gzip CRC-32 is wrong, a VMDK whose grain
    // directory runs past the end, and the good ones.
    let mut gz = targz_bytes();
    let n = gz.len();
    gz[n - 8] ^= 1;
    let mut vm = vmdk_bytes();
    vm.truncate(vm.len() / 2);
    for (name, bytes, ok) in [
        ("good.tar.gz", targz_bytes(), true),
        ("crc.tar.gz", gz, false),
        ("good.vmdk", vmdk_bytes(), true),
        ("cut.vmdk", vm, false),
    ] {
        let p = dir.path().join(name);
        fs::write(&p, &bytes).unwrap();
        let open = open_disk(&p).map(|(_, f)| f).map_err(|e| e.to_string());
        let check = check_readable(&p).map_err(|e| e.to_string());
        assert_eq!(open, check, "{name}");
        assert_eq!(check.is_ok(), ok, "{name}: {check:?}");
    }
}
