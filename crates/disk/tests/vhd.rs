//! Fixed VHD writer/verifier/reader against qemu-img and corpus VHDs.

mod common;

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use cloudimg_disk::formats::vhd::{self, wire};
use cloudimg_disk::formats::{Format, WriteOptions};
use cloudimg_disk::io::{sha256_disk, sha256_file, RawFile};
use cloudimg_disk::{ExtentKind, VirtualDisk};
use common::{run, Rng};

const OPTS: WriteOptions = WriteOptions {
    mtime: 1_700_000_000,
    seed: [7; 32],
};

/// A sparse raw disk of `size` bytes with a GPT and seeded random data
/// runs separated by holes.
fn make_input(path: &Path, size: u64, seed: u64) {
    let f = common::gpt_file(path, size, seed);
    let mut rng = Rng::new(seed);
    let mut off = 1 << 20;
    while off + 65536 < size - (1 << 16) {
        let mut buf = vec![0u8; 4096 * (1 + rng.next_u64() as usize % 8)];
        rng.fill(&mut buf);
        f.write_all_at(&buf, off).unwrap();
        off += 256 * 1024 + (rng.next_u64() % 64) * 4096;
    }
}

fn write_vhd(input: &Path, out: &Path, opts: &WriteOptions) {
    let disk = RawFile::open(input).unwrap();
    let f = File::create(out).unwrap();
    vhd::write_fixed(&disk, &f, opts).unwrap();
}

fn footer(p: &Path) -> [u8; 512] {
    let f = File::open(p).unwrap();
    let len = f.metadata().unwrap().len();
    let mut b = [0u8; 512];
    f.read_exact_at(&mut b, len - 512).unwrap();
    b
}

struct Case {
    _dir: tempfile::TempDir,
    input: PathBuf,
    out: PathBuf,
    size: u64,
}

fn case(size: u64, seed: u64) -> Case {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.raw");
    let out = dir.path().join("out.vhd");
    make_input(&input, size, seed);
    write_vhd(&input, &out, &OPTS);
    Case {
        _dir: dir,
        input,
        out,
        size,
    }
}

// 5 MiB + 1.5 KiB: a multiple of 512 that is not MiB- or CHS-aligned.
const ODD_SIZE: u64 = 5 * (1 << 20) + 1536;

#[test]
fn round_trip_verifies_and_keeps_holes() {
    for (size, seed) in [(ODD_SIZE, 1), (64 << 20, 2)] {
        let c = case(size, seed);
        let report = cloudimg_disk::verify::verify_file(
            &File::open(&c.out).unwrap(),
            cloudimg_disk::formats::Format::VhdFixed,
        )
        .unwrap();
        assert_eq!(report.findings, vec![], "size {size}");
        assert_eq!(report.format, Format::VhdFixed);
        assert_eq!(report.virtual_size, Some(size));
        assert_eq!(report.file_size, size + 512);
        assert_eq!(report.virtual_sha256, Some(sha256_file(&c.input).unwrap()));
        assert_eq!(report.details["creator_app"], "qem2");
        assert_eq!(report.details["chs"], "65535/16/255");
        assert_eq!(report.details["timestamp"], 1_700_000_000u64 - 946_684_800);
        // Reader: same bytes, same holes.
        let d = vhd::open(File::open(&c.out).unwrap()).unwrap();
        assert_eq!(d.size(), size);
        assert_eq!(sha256_disk(&d).unwrap(), sha256_file(&c.input).unwrap());
        let data = |e: Vec<cloudimg_disk::Extent>| {
            e.iter()
                .filter(|e| e.kind == ExtentKind::Data)
                .map(|e| e.len)
                .sum::<u64>()
        };
        assert_eq!(
            data(d.extents().unwrap()),
            data(RawFile::open(&c.input).unwrap().extents().unwrap())
        );
        // Allocated blocks of the output ≈ input (+ the footer's block).
        let (bi, bo) = (
            std::fs::metadata(&c.input).unwrap().blocks(),
            std::fs::metadata(&c.out).unwrap().blocks(),
        );
        assert!(
            bo <= bi + 8 && bo + 8 >= bi,
            "input {bi} blocks, output {bo} blocks"
        );
        assert!(bo * 512 < size / 2, "output is not sparse");
    }
}

#[test]
fn qemu_reads_exact_size_and_content() {
    if !common::require_tool("qemu-img") {
        return;
    }
    for (size, seed) in [(ODD_SIZE, 3), (32 << 20, 4)] {
        let c = case(size, seed);
        let info = run(Command::new("qemu-img")
            .args(["info", "-f", "vpc", "--output=json"])
            .arg(&c.out));
        let v: serde_json::Value = serde_json::from_str(&info).unwrap();
        assert_eq!(v["format"], "vpc");
        assert_eq!(v["virtual-size"], size);
        run(Command::new("qemu-img")
            .args(["compare", "-f", "raw", "-F", "vpc"])
            .arg(&c.input)
            .arg(&c.out));
        // qemu-img has no checks for vpc; make sure that is still so, so
        // the oracle is not silently skipped when it gains them.
        let chk = Command::new("qemu-img")
            .args(["check", "-f", "vpc"])
            .arg(&c.out)
            .output()
            .unwrap();
        assert!(String::from_utf8_lossy(&chk.stderr).contains("does not support checks"));
    }
}

#[test]
fn footer_matches_qemu_force_size_but_for_time_and_uuid() {
    if !common::require_tool("qemu-img") {
        return;
    }
    let c = case(ODD_SIZE, 5);
    let q = c.out.with_extension("qemu.vhd");
    common::qemu_convert_raw(&c.input, "vpc", &["-o", "subformat=fixed,force_size"], &q);
    let (ours, theirs) = (footer(&c.out), footer(&q));
    let masked = |b: &[u8; 512]| {
        let mut m = *b;
        m[24..28].fill(0); // timestamp
        m[64..68].fill(0); // checksum
        m[68..84].fill(0); // uuid
        m
    };
    assert_eq!(hex::encode(masked(&ours)), hex::encode(masked(&theirs)));
    assert_eq!(std::fs::metadata(&q).unwrap().len(), c.size + 512);
}

#[test]
fn output_is_reproducible_and_follows_options() {
    let c = case(ODD_SIZE, 6);
    let again = c.out.with_extension("2.vhd");
    write_vhd(&c.input, &again, &OPTS);
    assert_eq!(
        std::fs::read(&c.out).unwrap(),
        std::fs::read(&again).unwrap()
    );
    let other = c.out.with_extension("3.vhd");
    write_vhd(
        &c.input,
        &other,
        &WriteOptions {
            mtime: 0,
            seed: [8; 32],
        },
    );
    let (a, b) = (footer(&c.out), footer(&other));
    assert_ne!(a[68..84], b[68..84], "seed changes the UUID");
    assert_eq!(b[24..28], [0, 0, 0, 0], "mtime before 2000 clamps to 0");
    assert_eq!(b[68 + 6] >> 4, 4, "version 4 UUID");
    assert_eq!(b[68 + 8] >> 6, 2, "RFC 4122 variant");
    let far = c.out.with_extension("4.vhd");
    write_vhd(
        &c.input,
        &far,
        &WriteOptions {
            mtime: u64::MAX,
            seed: [8; 32],
        },
    );
    assert_eq!(footer(&far)[24..28], [0xff; 4]);
}

#[test]
fn unaligned_disk_is_refused() {
    let disk = cloudimg_disk::MemDisk::new(vec![0; 1000]);
    let dir = tempfile::tempdir().unwrap();
    let f = File::create(dir.path().join("x.vhd")).unwrap();
    let e = vhd::write_fixed(&disk, &f, &OPTS).unwrap_err();
    assert_eq!(
        e.message(),
        "a VHD needs a disk size that is a non-zero multiple of 512 bytes, not 1000"
    );
}

/// Damage a copy of `c.out` with `f` (given the footer bytes and the file),
/// fixing the checksum afterwards unless `keep_checksum`, and return the
/// verifier's messages.
fn damaged(
    c: &Case,
    name: &str,
    fix_checksum: bool,
    f: impl FnOnce(&mut [u8; 512], &File),
) -> Vec<(Option<u64>, String)> {
    let p = c.out.with_extension(format!("{name}.vhd"));
    run(Command::new("cp")
        .arg("--sparse=always")
        .arg(&c.out)
        .arg(&p));
    let file = OpenOptions::new().read(true).write(true).open(&p).unwrap();
    let mut ft = footer(&p);
    f(&mut ft, &file);
    if fix_checksum {
        let sum = wire::checksum(&ft, 64);
        ft[64..68].copy_from_slice(&sum.to_be_bytes());
    }
    let len = file.metadata().unwrap().len();
    file.write_all_at(&ft, len - 512).unwrap();
    let r = cloudimg_disk::verify::verify_file(&file, cloudimg_disk::formats::Format::VhdFixed)
        .unwrap();
    r.findings
        .into_iter()
        .map(|f| (f.offset, f.message))
        .collect()
}

/// A change to a footer (and maybe the file).
type Damage = Box<dyn FnOnce(&mut [u8; 512], &File)>;

#[test]
fn every_damaged_footer_field_is_reported() {
    let c = case(ODD_SIZE, 9);
    let fo = c.size;
    let stored = u32::from_be_bytes(footer(&c.out)[64..68].try_into().unwrap());
    let msgs = damaged(&c, "sum", false, |f, _| f[64] ^= 0x10);
    let found = stored ^ 0x1000_0000;
    assert_eq!(
        msgs,
        vec![(
            Some(fo + 64),
            format!("footer checksum mismatch (expected {stored:08x}, found {found:08x})")
        )]
    );
    let msgs = damaged(&c, "sum2", false, |f, _| f[100] = 1);
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    assert!(msgs[0].1.starts_with("footer checksum mismatch (expected "));
    assert_eq!(
        msgs[1],
        (
            Some(fo + 85),
            "footer reserved bytes are not zero".to_string()
        )
    );

    let cases: Vec<(&str, Damage, u64, String)> = vec![
        ("cookie", Box::new(|f, _| f[0] = b'C'), 0, "footer cookie is \"Conectix\" (436f6e6563746978), expected \"conectix\"".into()),
        ("type", Box::new(|f, _| f[63] = 5), 60, "disk type is 5, expected fixed (2) or dynamic (3)".into()),
        ("features", Box::new(|f, _| f[11] = 0), 8, "footer features 00000000 lack the reserved bit 00000002 that must always be set".into()),
        ("version", Box::new(|f, _| f[13] = 2), 12, "footer format version is 00020000, expected 00010000".into()),
        ("offset", Box::new(|f, _| f[16] = 0), 16, "fixed disk data offset is 0xffffffffffffff, expected 0xffffffffffffffff".into()),
        ("original", Box::new(|f, _| f[40..48].copy_from_slice(&(ODD_SIZE - 512).to_be_bytes())), 40, format!("original size {} differs from current size {ODD_SIZE}", ODD_SIZE - 512)),
        ("state", Box::new(|f, _| f[84] = 1), 84, "saved state is 1, expected 0".into()),
        ("geometry", Box::new(|f, _| f[58] = 0), 56, "geometry 65535/0/255 is not valid (cylinders and sectors must be non-zero, heads 1..=16)".into()),
        ("creator", Box::new(|f, _| f[28..32].copy_from_slice(b"qemu")), 56, format!(
            "creator \"qemu\" makes qemu size the disk by its geometry 121/4/17 ({} bytes), not its current size {ODD_SIZE}", 121 * 4 * 17 * 512
        )),
    ];
    for (name, f, field, msg) in cases {
        let f2: Damage = if name == "creator" {
            Box::new(move |b: &mut [u8; 512], file: &File| {
                f(b, file);
                b[56..58].copy_from_slice(&121u16.to_be_bytes());
                b[58] = 4;
                b[59] = 17;
            })
        } else {
            f
        };
        let msgs = damaged(&c, name, true, f2);
        if name == "creator" {
            // qemu would see a truncated disk, so its GPT breaks too.
            assert_eq!(msgs[0], (Some(fo + field), msg), "{name}");
            assert!(
                msgs[1]
                    .1
                    .starts_with("decoded disk: backup GPT header missing"),
                "{msgs:?}"
            );
        } else {
            assert_eq!(msgs, vec![(Some(fo + field), msg)], "{name}");
        }
    }
}

#[test]
fn size_versus_file_is_reported() {
    let c = case(ODD_SIZE, 10);
    // Current (and original) size one sector larger than the data.
    let msgs = damaged(&c, "bigger", true, |f, _| {
        let s = (ODD_SIZE + 512).to_be_bytes();
        f[40..48].copy_from_slice(&s);
        f[48..56].copy_from_slice(&s);
    });
    assert_eq!(
        msgs,
        vec![(
            Some(ODD_SIZE + 48),
            format!(
                "file is {} bytes, expected current size {} + 512 = {}",
                ODD_SIZE + 512,
                ODD_SIZE + 512,
                ODD_SIZE + 1024
            )
        )]
    );
    // A file with an extra sector before the footer.
    let p = c.out.with_extension("longer.vhd");
    let data = std::fs::read(&c.out).unwrap();
    let (body, foot) = data.split_at(data.len() - 512);
    std::fs::write(&p, [body, &[0u8; 512][..], foot].concat()).unwrap();
    let r = cloudimg_disk::verify::verify_file(
        &File::open(&p).unwrap(),
        cloudimg_disk::formats::Format::VhdFixed,
    )
    .unwrap();
    let msgs: Vec<_> = r.findings.iter().map(|f| f.message.clone()).collect();
    assert_eq!(
        msgs,
        vec![format!(
            "file is {} bytes, expected current size {ODD_SIZE} + 512 = {}",
            ODD_SIZE + 1024,
            ODD_SIZE + 512
        )]
    );
    // Too short for a footer: an error.
    let tiny = c.out.with_extension("tiny.vhd");
    std::fs::write(&tiny, [0u8; 100]).unwrap();
    let e = cloudimg_disk::verify::verify_file(
        &File::open(&tiny).unwrap(),
        cloudimg_disk::formats::Format::VhdFixed,
    )
    .unwrap_err();
    assert_eq!(
        e.message(),
        "file of 100 bytes is too short for a VHD footer"
    );
}

#[test]
fn gpt_damage_inside_the_vhd_is_reported() {
    let c = case(ODD_SIZE, 11);
    let f = OpenOptions::new().write(true).open(&c.out).unwrap();
    f.write_all_at(&[0xAB], 512 + 60).unwrap();
    let r = cloudimg_disk::verify::verify_file(
        &File::open(&c.out).unwrap(),
        cloudimg_disk::formats::Format::VhdFixed,
    )
    .unwrap();
    assert_eq!(r.findings.len(), 1, "{:?}", r.findings);
    assert!(r.findings[0]
        .message
        .starts_with("decoded disk: primary header CRC mismatch"));
    assert_eq!(r.findings[0].offset, Some(512 + 16));
}

fn bunzip(rel: &str, dir: &Path) -> Option<PathBuf> {
    let src = common::corpus(rel)?;
    let out = dir.join(Path::new(rel).file_stem().unwrap());
    let data = Command::new("bzcat").arg(&src).output().unwrap();
    assert!(data.status.success());
    std::fs::write(&out, data.stdout).unwrap();
    Some(out)
}

#[test]
fn dfvfs_ext2_dynamic_vhd_decodes() {
    let Some(p) = common::corpus("dfvfs/ext2.vhd") else {
        return;
    };
    let r = cloudimg_disk::verify::verify_file(
        &File::open(&p).unwrap(),
        cloudimg_disk::formats::Format::VhdFixed,
    )
    .unwrap();
    assert_eq!(r.format, Format::VhdDynamic);
    assert_eq!(r.virtual_size, Some(4212736));
    assert_eq!(
        r.virtual_sha256.unwrap().to_string(),
        "870be7ae16c1fa8faab05c6eb9205dc9a7ae35c5f552c5cf8a267c0bc6a5cb99"
    );
    assert_eq!(r.details["creator_app"], "qemu");
    assert_eq!(r.details["chs"], "121/4/17");
    assert_eq!(r.findings, vec![]);
    // The first 4 MiB are dfvfs's ext2.raw.
    let d = vhd::open(File::open(&p).unwrap()).unwrap();
    let mut head = vec![0u8; 4194304];
    d.read_at(&mut head, 0).unwrap();
    let mem = cloudimg_disk::MemDisk::new(head);
    assert_eq!(
        sha256_disk(&mem).unwrap().to_string(),
        "a6c2f0e39afe6c6ab432ca5465349fcefe8dc944398e97b2d957d3f89dbb5d80"
    );
}

#[test]
fn qemu_sample_dynamic_vhds_decode() {
    let dir = tempfile::tempdir().unwrap();
    for (name, size) in [
        (
            "qemu/sample_images/virtualpc-dynamic.vhd.bz2",
            136363130880u64,
        ),
        (
            "qemu/sample_images/hyperv2012r2-dynamic.vhd.bz2",
            136365211648,
        ),
    ] {
        let Some(p) = bunzip(name, dir.path()) else {
            return;
        };
        let d = vhd::open(File::open(&p).unwrap()).unwrap();
        assert_eq!(d.size(), size, "{name}");
        // Every block unallocated: one zero extent, reads give zeros.
        assert_eq!(
            d.extents().unwrap(),
            vec![cloudimg_disk::Extent {
                offset: 0,
                len: size,
                kind: ExtentKind::Zero
            }]
        );
        let mut b = vec![1u8; 4096];
        d.read_at(&mut b, size - 4096).unwrap();
        assert!(b.iter().all(|&x| x == 0));
        // (Hashing 127 GiB of zeros takes minutes; the documented sha256
        // values are those of that many zero bytes.)
    }
}

#[test]
fn fuzzed_afl5_is_rejected_without_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let Some(p) = bunzip("qemu/sample_images/afl5.img.bz2", dir.path()) else {
        return;
    };
    // The file is truncated inside the dynamic header (qemu pads the read
    // with zeros and then refuses the table size).
    let e = vhd::open(File::open(&p).unwrap()).err().unwrap();
    assert_eq!(
        e.message(),
        "dynamic header at offset 512 lies outside the 1028-byte file"
    );
    let r = cloudimg_disk::verify::verify_file(
        &File::open(&p).unwrap(),
        cloudimg_disk::formats::Format::VhdFixed,
    )
    .unwrap();
    assert!(
        r.findings.iter().any(|f| f.message == e.message()),
        "{:?}",
        r.findings
    );
    assert_eq!(r.virtual_sha256, None);
}

#[test]
fn huge_bat_is_rejected_without_allocating() {
    let Some(src) = common::corpus("dfvfs/ext2.vhd") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bat.vhd");
    let mut b = std::fs::read(&src).unwrap();
    // max table entries = 1073741825 (afl5's value), header checksum fixed.
    b[512 + 28..512 + 32].copy_from_slice(&1073741825u32.to_be_bytes());
    let mut h: [u8; 1024] = b[512..1536].try_into().unwrap();
    let sum = wire::checksum(&h, 36);
    h[36..40].copy_from_slice(&sum.to_be_bytes());
    b[512..1536].copy_from_slice(&h);
    std::fs::write(&p, &b).unwrap();
    let e = vhd::open(File::open(&p).unwrap()).err().unwrap();
    assert_eq!(
        e.message(),
        format!("block allocation table of 1073741825 entries at offset 1536 runs past the end of the {}-byte file", b.len())
    );
    assert_eq!(e.offset(), Some(512 + 28));
}

/// ext2.vhd with its dynamic header changed by `f` (checksum fixed).
fn ext2_with_header(dir: &Path, f: impl FnOnce(&mut [u8; 1024])) -> Option<PathBuf> {
    let src = common::corpus("dfvfs/ext2.vhd")?;
    let p = dir.join("h.vhd");
    let mut b = std::fs::read(&src).unwrap();
    let mut h: [u8; 1024] = b[512..1536].try_into().unwrap();
    f(&mut h);
    let sum = wire::checksum(&h, 36);
    h[36..40].copy_from_slice(&sum.to_be_bytes());
    b[512..1536].copy_from_slice(&h);
    std::fs::write(&p, &b).unwrap();
    Some(p)
}

#[test]
fn dynamic_structure_damage_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    // A BAT too small for the disk (qemu: "Page table too small").
    let Some(p) = ext2_with_header(dir.path(), |h| {
        h[28..32].copy_from_slice(&2u32.to_be_bytes())
    }) else {
        return;
    };
    let e = vhd::open(File::open(&p).unwrap()).err().unwrap();
    let msg = "block allocation table covers 4194304 bytes (2 blocks of 2097152), less than the 4212736-byte disk";
    assert_eq!(e.message(), msg);
    let r = cloudimg_disk::verify::verify_file(
        &File::open(&p).unwrap(),
        cloudimg_disk::formats::Format::VhdFixed,
    )
    .unwrap();
    assert_eq!(
        r.findings,
        vec![cloudimg_disk::verify::Finding::at(512 + 28, msg)]
    );
    assert_eq!(r.virtual_sha256, None);

    // A BAT entry pointing past the end of the file: refused on open, as
    // qemu does ("free_data_block_offset points after the end of file").
    let src = common::corpus("dfvfs/ext2.vhd").unwrap();
    let mut b = std::fs::read(&src).unwrap();
    b[1536..1540].copy_from_slice(&0x0010_0000u32.to_be_bytes());
    let p = dir.path().join("bat.vhd");
    std::fs::write(&p, &b).unwrap();
    let r = cloudimg_disk::verify::verify_file(
        &File::open(&p).unwrap(),
        cloudimg_disk::formats::Format::VhdFixed,
    )
    .unwrap();
    let msgs: Vec<_> = r
        .findings
        .iter()
        .map(|f| (f.offset, f.message.as_str()))
        .collect();
    assert_eq!(
        msgs,
        vec![(
            Some(1536),
            "BAT entry 0 puts block 0 at sector 1048576, whose 2097664 bytes run past the end of the 2100224-byte file"
        )]
    );
    assert_eq!(r.virtual_sha256, None);

    // Header checksum, and the footer at the end differing from the copy
    // at the start (the one qemu reads): open refuses, verify reports.
    let Some(p) = ext2_with_header(dir.path(), |_| {}) else {
        return;
    };
    let f = OpenOptions::new().read(true).write(true).open(&p).unwrap();
    let len = f.metadata().unwrap().len();
    f.write_all_at(&[0x77], 512 + 36).unwrap();
    f.write_all_at(&[0x01], len - 512 + 84).unwrap();
    let e = vhd::open(File::open(&p).unwrap()).err().unwrap();
    assert_eq!(
        e.to_string(),
        format!(
            "the footer copy at the start differs from the footer at byte {}: qemu reads the \
             start copy, other tools the end one (at byte 0)",
            len - 512
        )
    );
    let r =
        cloudimg_disk::verify::verify_file(&f, cloudimg_disk::formats::Format::VhdFixed).unwrap();
    let msgs: Vec<_> = r.findings.iter().map(|f| f.message.clone()).collect();
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    assert_eq!(
        msgs[0],
        "footer copy at the start differs from the footer at the end"
    );
    assert!(
        msgs[1].starts_with("dynamic header checksum mismatch (expected "),
        "{msgs:?}"
    );
    assert!(r.virtual_sha256.is_some());
}

/// Random damage to the footers, dynamic header and BAT of a dynamic VHD
/// never panics, never allocates wildly, and either decodes or reports.
#[test]
fn random_damage_never_panics() {
    let Some(src) = common::corpus("dfvfs/ext2.vhd") else {
        return;
    };
    let clean = std::fs::read(&src).unwrap();
    let n = clean.len();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("r.vhd");
    let mut rng = Rng::new(77);
    let hot: Vec<usize> = (0..2048).chain(n - 512..n).collect();
    for _ in 0..300 {
        let mut b = clean.clone();
        for _ in 0..1 + rng.next_u64() % 3 {
            let i = hot[(rng.next_u64() % hot.len() as u64) as usize];
            b[i] = rng.next_u64() as u8;
        }
        std::fs::write(&p, &b).unwrap();
        let _ = cloudimg_disk::verify::verify_file(
            &File::open(&p).unwrap(),
            cloudimg_disk::formats::Format::VhdFixed,
        );
        if let Ok(d) = vhd::open(File::open(&p).unwrap()) {
            if d.size() <= 64 << 20 {
                let _ = sha256_disk(&d);
            }
        }
    }
}

/// The package flow: grow a GPT disk (without copying it), write the grown
/// disk as a fixed VHD, verify it and compare it with qemu.
#[test]
fn grown_gpt_disk_as_vhd_is_clean() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.raw");
    make_input(&input, ODD_SIZE, 12);
    let grown = cloudimg_disk::layout::gpt::grow(RawFile::open(&input).unwrap(), 8 << 20).unwrap();
    let out = dir.path().join("out.vhd");
    vhd::write_fixed(&grown, &File::create(&out).unwrap(), &OPTS).unwrap();
    let r = cloudimg_disk::verify::verify_file(
        &File::open(&out).unwrap(),
        cloudimg_disk::formats::Format::VhdFixed,
    )
    .unwrap();
    assert_eq!(r.findings, vec![]);
    assert_eq!(r.virtual_size, Some(8 << 20));
    assert_eq!(r.virtual_sha256, Some(sha256_disk(&grown).unwrap()));
    if common::require_tool("qemu-img") {
        let raw = dir.path().join("grown.raw");
        cloudimg_disk::formats::raw::write(&grown, &File::create(&raw).unwrap()).unwrap();
        run(Command::new("qemu-img")
            .args(["compare", "-f", "raw", "-F", "vpc"])
            .arg(&raw)
            .arg(&out));
    }
}
