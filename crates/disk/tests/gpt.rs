//! GPT grow/verify/decode against sgdisk and corpus images.
//!
//! Every `grow` is materialised and compared byte for byte with
//! `cp` + `truncate -s` + `sgdisk -e` of the same input, then checked with
//! `sgdisk -v`.

mod common;

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use cloudimg_disk::disk::GIB;
use cloudimg_disk::io::RawFile;
use cloudimg_disk::layout::gpt::{self, crc32, create, GptSpec, NewPartition};
use cloudimg_disk::layout::{read_table, Guid, PartitionTable};
use cloudimg_disk::{ExtentKind, VirtualDisk};
use common::{run, Rng};

const ESP: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
const BIOS: &str = "21686148-6449-6E6F-744E-656564454649";
const LINUX: &str = "0FC63DAF-8483-4772-8E79-3D69D8477DE4";

fn g(s: &str) -> Guid {
    s.parse().unwrap()
}

fn sgdisk() -> Option<&'static str> {
    common::require_tool("sgdisk").then_some("sgdisk")
}

fn sparse_file(path: &Path, size: u64) -> File {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .unwrap();
    f.set_len(size).unwrap();
    f
}

/// Fill some seeded random 4 KiB runs inside `lba_range` (leaving holes).
fn scatter(f: &File, rng: &mut Rng, first_lba: u64, last_lba: u64) {
    let span = (last_lba - first_lba + 1) * 512;
    for _ in 0..8 {
        let mut buf = vec![0u8; 4096];
        rng.fill(&mut buf);
        let off = first_lba * 512 + (rng.next_u64() % (span - 4096)) / 512 * 512;
        f.write_all_at(&buf, off).unwrap();
    }
}

fn open_disk(p: &Path) -> RawFile {
    RawFile::open(p).unwrap()
}

/// `grow` `input` to `new_size`, write it out, and compare with
/// `cp` + `truncate` (+ `sgdisk -e` when `sgdisk_e`).
fn grow_matches_reference(dir: &Path, input: &Path, new_size: u64, sgdisk_e: bool) -> PathBuf {
    grow_matches_reference_keeping(dir, input, new_size, sgdisk_e, None)
}

/// [`grow_matches_reference`], except that the bytes `kept` (offset,
/// length) of the input, which `sgdisk -e` zeroes, must be kept as they
/// are by `grow`.
fn grow_matches_reference_keeping(
    dir: &Path,
    input: &Path,
    new_size: u64,
    sgdisk_e: bool,
    kept: Option<(u64, usize)>,
) -> PathBuf {
    let ours = dir.join("ours.img");
    let reference = dir.join("ref.img");
    let grown = gpt::grow(open_disk(input), new_size).unwrap();
    // package's self-check of grown disks finds nothing to object to.
    assert!(gpt::changes_outside_gpt(&grown).unwrap().is_empty());
    let out = File::create(&ours).unwrap();
    cloudimg_disk::formats::raw::write(&grown, &out).unwrap();
    drop(out);
    run(Command::new("cp")
        .arg("--sparse=always")
        .arg(input)
        .arg(&reference));
    run(Command::new("truncate")
        .arg("-s")
        .arg(new_size.to_string())
        .arg(&reference));
    if sgdisk_e {
        run(Command::new("sgdisk").arg("-e").arg(&reference));
    }
    if let Some((at, len)) = kept {
        let was = read_at(input, at, len);
        assert!(was.iter().any(|&b| b != 0), "the kept bytes are data");
        assert_eq!(
            read_at(&reference, at, len),
            vec![0; len],
            "sgdisk zeroes them"
        );
        let f = OpenOptions::new().write(true).open(&reference).unwrap();
        f.write_all_at(&was, at).unwrap();
    }
    assert_same_content(&ours, &reference);
    ours
}

/// Byte-for-byte comparison that only reads the data extents of either
/// file (holes read as zeros), so sparse GiB-sized images compare fast.
fn assert_same_content(a: &Path, b: &Path) {
    let (da, db) = (open_disk(a), open_disk(b));
    assert_eq!(da.size(), db.size(), "sizes differ");
    let mut ranges: Vec<(u64, u64)> = da
        .extents()
        .unwrap()
        .into_iter()
        .chain(db.extents().unwrap())
        .filter(|e| e.kind == ExtentKind::Data)
        .map(|e| (e.offset, e.end()))
        .collect();
    ranges.sort();
    for (start, end) in ranges {
        let mut pos = start;
        while pos < end {
            let n = (end - pos).min(1 << 20) as usize;
            let (mut x, mut y) = (vec![0u8; n], vec![0u8; n]);
            da.read_at(&mut x, pos).unwrap();
            db.read_at(&mut y, pos).unwrap();
            if x != y {
                let i = x.iter().zip(&y).position(|(p, q)| p != q).unwrap();
                panic!(
                    "{} and {} differ at byte {}",
                    a.display(),
                    b.display(),
                    pos + i as u64
                );
            }
            pos += n as u64;
        }
    }
}

fn sgdisk_v_clean(p: &Path) {
    let out = run(Command::new("sgdisk").arg("-v").arg(p));
    assert!(out.contains("No problems found"), "sgdisk -v: {out}");
}

fn next_gib(size: u64) -> u64 {
    size.div_ceil(GIB).max(1) * GIB
}

/// A disk made by sgdisk with three partitions, random boot code and
/// random data scattered over the partitions.
fn sgdisk_disk(path: &Path, size: u64, seed: u64) {
    let f = sparse_file(path, size);
    run(Command::new("sgdisk")
        .args([
            "-o",
            "-n1:2048:+1M",
            "-t1:ef02",
            "-n2:0:+8M",
            "-t2:ef00",
            "-c2:EFI system",
            "-n3:0:0",
            "-t3:8300",
        ])
        .arg(path));
    let mut rng = Rng::new(seed);
    let mut code = [0u8; 440];
    rng.fill(&mut code);
    f.write_all_at(&code, 0).unwrap();
    let PartitionTable::Gpt(l) = read_table(&open_disk(path)).unwrap() else {
        panic!("sgdisk made no GPT")
    };
    for p in &l.partitions {
        scatter(&f, &mut rng, p.first_lba, p.last_lba);
    }
}

/// Grow an sgdisk-made disk of `size` bytes to the next whole GiB and to
/// the one after. (Each `sgdisk` write takes about a second: it syncs.)
fn sgdisk_disk_grows(size: u64, seed: u64) {
    let Some(_) = sgdisk() else { return };
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.img");
    sgdisk_disk(&input, size, seed);
    assert_eq!(gpt::verify(&open_disk(&input)), vec![]);
    for new_size in [next_gib(size), next_gib(size) + GIB] {
        let out = grow_matches_reference(dir.path(), &input, new_size, true);
        sgdisk_v_clean(&out);
        assert_eq!(gpt::verify(&open_disk(&out)), vec![]);
    }
}

#[test]
fn sgdisk_disk_of_odd_size_grows_like_sgdisk_e() {
    // 100 MiB + 3 sectors: not a whole GiB, not even a whole MiB.
    sgdisk_disk_grows(100 * (1 << 20) + 3 * 512, 7);
}

#[test]
fn sgdisk_disk_of_whole_gib_grows_like_sgdisk_e() {
    // Growing to the same size is a no-op for both.
    sgdisk_disk_grows(GIB, 8);
}

fn created_disk(path: &Path, size: u64, seed: u64, num_entries: u32) -> gpt::GptImage {
    let mut rng = Rng::new(seed);
    let mut code = vec![0u8; 440];
    rng.fill(&mut code);
    let mut gb = [0u8; 16];
    rng.fill(&mut gb);
    let mut spec = GptSpec::new(Guid::v4_from(gb));
    spec.boot_code = code;
    spec.num_entries = num_entries;
    let parts = [
        (BIOS, 2048, 4095, "bios"),
        (ESP, 4096, 20479, "EFI system partition"),
        (LINUX, 20480, 40000, "rööt"),
    ];
    for (t, a, b, n) in parts {
        rng.fill(&mut gb);
        spec.partitions.push(NewPartition {
            type_guid: g(t),
            unique_guid: Guid::v4_from(gb),
            first_lba: a,
            last_lba: b,
            attributes: if t == BIOS { 4 } else { 0 },
            name: n.into(),
        });
    }
    let img = create(&spec, size).unwrap();
    let f = sparse_file(path, size);
    img.write_to(&f).unwrap();
    for (_, a, b, _) in parts {
        scatter(&f, &mut rng, a, b);
    }
    img
}

#[test]
fn created_disk_is_sgdisk_clean_and_grows_like_sgdisk_e() {
    let Some(_) = sgdisk() else { return };
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.img");
    created_disk(&input, 40 * (1 << 20) + 512, 3, 128);
    sgdisk_v_clean(&input);
    let out = run(Command::new("sgdisk").arg("-p").arg(&input));
    assert!(out.contains("EFI system partition"), "{out}");
    let PartitionTable::Gpt(l) = read_table(&open_disk(&input)).unwrap() else {
        panic!()
    };
    assert_eq!(l.partitions[2].name, "rööt");
    assert_eq!(l.partitions[0].attributes, 4);
    let out = grow_matches_reference(dir.path(), &input, GIB, true);
    sgdisk_v_clean(&out);
}

#[test]
fn fewer_entries_and_limine_style_slack_are_kept() {
    let Some(_) = sgdisk() else { return };
    fewer_entries(120);
    fewer_entries(126);
}

/// Shrink NumberOfPartitionEntries to `entries` (as Limine does) and put
/// "stage 2" bytes right after the shortened arrays.
fn fewer_entries(entries: u32) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.img");
    let size = 48 << 20;
    let n = size / 512;
    // 128-entry layout, then shrink NumberOfPartitionEntries to 120 as
    // Limine does and put "stage 2" bytes in the freed tail of both arrays.
    created_disk(&input, size, 11, 128);
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&input)
        .unwrap();
    let mut rng = Rng::new(99);
    let mut stage2 = vec![0u8; 32 * 512 - entries as usize * 128];
    rng.fill(&mut stage2);
    let arr_lbas = [2u64, n - 33];
    for (hdr_lba, arr_lba) in [(1u64, arr_lbas[0]), (n - 1, arr_lbas[1])] {
        let mut h = [0u8; 512];
        f.read_exact_at(&mut h, hdr_lba * 512).unwrap();
        h[80..84].copy_from_slice(&entries.to_le_bytes());
        let mut arr = vec![0u8; entries as usize * 128];
        f.read_exact_at(&mut arr, arr_lba * 512).unwrap();
        h[88..92].copy_from_slice(&crc32(&arr).to_le_bytes());
        h[16..20].fill(0);
        let c = crc32(&h[..92]);
        h[16..20].copy_from_slice(&c.to_le_bytes());
        f.write_all_at(&h, hdr_lba * 512).unwrap();
        f.write_all_at(&stage2, arr_lba * 512 + entries as u64 * 128)
            .unwrap();
    }
    // Non-zero bytes in the slack between the last partition and the
    // backup array too.
    f.write_all_at(&stage2, (n - 40) * 512).unwrap();
    drop(f);
    sgdisk_v_clean(&input);
    // sgdisk -e rewrites the primary array and zeroes the rest of its last
    // sector when the array ends inside it; grow leaves those bytes alone
    // (the GPT does not own them), and is otherwise identical.
    let tail = entries as u64 * 128 % 512;
    let kept = (tail != 0).then(|| (2 * 512 + entries as u64 * 128, (512 - tail) as usize));
    let out = grow_matches_reference_keeping(dir.path(), &input, GIB, true, kept);
    sgdisk_v_clean(&out);
    // The old backup area is untouched.
    let mut old = vec![0u8; stage2.len()];
    File::open(&out)
        .unwrap()
        .read_exact_at(&mut old, (n - 33) * 512 + entries as u64 * 128)
        .unwrap();
    assert_eq!(old, stage2);
}

#[test]
fn mbr_only_and_blank_disks_grow_without_table_changes() {
    let Some(_) = sgdisk() else { return };
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("mbr.img");
    let f = sparse_file(&input, 10 << 20);
    let mut mbr = [0u8; 512];
    Rng::new(5).fill(&mut mbr[..440]);
    mbr[446 + 4] = 0x83;
    mbr[446 + 8..446 + 12].copy_from_slice(&2048u32.to_le_bytes());
    mbr[446 + 12..446 + 16].copy_from_slice(&18432u32.to_le_bytes());
    mbr[510..].copy_from_slice(&[0x55, 0xAA]);
    f.write_all_at(&mbr, 0).unwrap();
    drop(f);
    assert_eq!(gpt::verify(&open_disk(&input)), vec![]);
    assert!(matches!(
        read_table(&open_disk(&input)).unwrap(),
        PartitionTable::Mbr(_)
    ));
    grow_matches_reference(dir.path(), &input, GIB, false);
    let blank = dir.path().join("blank.img");
    sparse_file(&blank, (10 << 20) + 512);
    assert_eq!(gpt::verify(&open_disk(&blank)), vec![]);
    assert!(matches!(
        read_table(&open_disk(&blank)).unwrap(),
        PartitionTable::None
    ));
    grow_matches_reference(dir.path(), &blank, GIB, false);
}

fn hybrid_grows(how: &str) {
    let Some(_) = sgdisk() else { return };
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("h.img");
    sparse_file(&input, 64 << 20);
    run(Command::new("sgdisk")
        .args(["-o", "-n1:2048:+1M", "-n2:0:+8M", "-t2:0700", "-h", how])
        .arg(&input));
    let PartitionTable::Gpt(l) = read_table(&open_disk(&input)).unwrap() else {
        panic!()
    };
    assert_eq!(l.mbr, cloudimg_disk::layout::mbr::MbrKind::Hybrid);
    grow_matches_reference(dir.path(), &input, GIB, true);
}

#[test]
fn hybrid_mbr_grows_like_sgdisk_e() {
    // 0xEE first, then the hybrid partition.
    hybrid_grows("2");
}

#[test]
fn hybrid_mbr_with_ee_last_grows_like_sgdisk_e() {
    hybrid_grows("2:EE");
}

#[test]
fn bad_sizes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.img");
    created_disk(&input, 48 << 20, 1, 128);
    let e = gpt::grow(open_disk(&input), GIB + 1).err().unwrap();
    assert_eq!(
        e.message(),
        "new disk size 1073741825 is not a multiple of 512 bytes"
    );
    let e = gpt::grow(open_disk(&input), 1 << 20).err().unwrap();
    assert_eq!(
        e.message(),
        "new disk size 1048576 is smaller than the disk (50331648 bytes); disks are never shrunk"
    );
}

fn read_at(p: &Path, off: u64, len: usize) -> Vec<u8> {
    let mut b = vec![0u8; len];
    File::open(p).unwrap().read_exact_at(&mut b, off).unwrap();
    b
}

fn flip(p: &Path, off: u64) {
    let f = OpenOptions::new().read(true).write(true).open(p).unwrap();
    let mut b = [0u8];
    f.read_exact_at(&mut b, off).unwrap();
    b[0] ^= 0x5a;
    f.write_all_at(&b, off).unwrap();
}

#[test]
fn each_corruption_is_reported_and_refused() {
    let dir = tempfile::tempdir().unwrap();
    let clean = dir.path().join("clean.img");
    let size: u64 = 48 << 20;
    let n = size / 512;
    created_disk(&clean, size, 21, 128);
    // (byte to flip, header LBA whose CRC covers it or array LBA, message)
    let hdr_crc = |p: &Path, lba: u64| {
        let mut h = read_at(p, lba * 512, 92);
        let found = u32::from_le_bytes(h[16..20].try_into().unwrap());
        h[16..20].fill(0);
        (crc32(&h), found)
    };
    let arr_crc = |p: &Path, hdr_lba: u64, arr_lba: u64| {
        let h = read_at(p, hdr_lba * 512, 92);
        let stored = u32::from_le_bytes(h[88..92].try_into().unwrap());
        (stored, crc32(&read_at(p, arr_lba * 512, 16384)))
    };
    for case in [
        "primary header",
        "primary array",
        "backup header",
        "backup array",
    ] {
        let bad = dir.path().join("bad.img");
        run(Command::new("cp")
            .arg("--sparse=always")
            .arg(&clean)
            .arg(&bad));
        let (off, fo) = match case {
            "primary header" => (512 + 60, 512 + 16),
            "primary array" => (2 * 512 + 130, 2 * 512),
            "backup header" => ((n - 1) * 512 + 40, (n - 1) * 512 + 16),
            _ => ((n - 33) * 512 + 300, (n - 33) * 512),
        };
        flip(&bad, off);
        let msg = match case {
            "primary header" | "backup header" => {
                let lba = if case == "primary header" { 1 } else { n - 1 };
                let (e, f) = hdr_crc(&bad, lba);
                format!("{} CRC mismatch (expected {e:08x}, found {f:08x})", case)
            }
            _ => {
                let (h, a) = if case == "primary array" {
                    (1, 2)
                } else {
                    (n - 1, n - 33)
                };
                let (e, f) = arr_crc(&bad, h, a);
                format!(
                    "{} partition array CRC mismatch (expected {e:08x}, found {f:08x})",
                    &case[..case.find(' ').unwrap()]
                )
            }
        };
        let findings = gpt::verify(&open_disk(&bad));
        assert_eq!(findings.len(), 1, "{case}: {findings:?}");
        assert_eq!(findings[0].message, msg, "{case}");
        assert_eq!(findings[0].offset, Some(fo), "{case}");
        let err = gpt::grow(open_disk(&bad), GIB).err().unwrap();
        assert_eq!(
            err.message(),
            format!("GPT is corrupt: {msg}; refusing to grow it")
        );
        if common::require_tool("sgdisk") {
            // sgdisk loads the good copy and reports the bad one as ERROR.
            let out = Command::new("sgdisk").arg("-v").arg(&bad).output().unwrap();
            let text = String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr);
            assert!(text.contains("ERROR"), "{case}: {text}");
        }
    }
}

#[test]
fn disagreeing_copies_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("d.img");
    let size: u64 = 48 << 20;
    let n = size / 512;
    created_disk(&p, size, 4, 128);
    // Give the backup another disk GUID, with a valid CRC.
    let f = OpenOptions::new().read(true).write(true).open(&p).unwrap();
    let mut h = [0u8; 512];
    f.read_exact_at(&mut h, (n - 1) * 512).unwrap();
    let primary_guid = Guid::from_bytes(&h[56..72]);
    h[56] ^= 0xff;
    let backup_guid = Guid::from_bytes(&h[56..72]);
    h[16..20].fill(0);
    let c = crc32(&h[..92]);
    h[16..20].copy_from_slice(&c.to_le_bytes());
    f.write_all_at(&h, (n - 1) * 512).unwrap();
    drop(f);
    let msg = format!("primary and backup headers disagree on the disk GUID (primary {primary_guid}, backup {backup_guid})");
    let findings = gpt::verify(&open_disk(&p));
    assert_eq!(
        findings
            .iter()
            .map(|f| f.message.clone())
            .collect::<Vec<_>>(),
        vec![msg.clone()]
    );
    assert_eq!(findings[0].offset, Some((n - 1) * 512 + 56));
    let err = gpt::grow(open_disk(&p), GIB).err().unwrap();
    assert_eq!(
        err.message(),
        format!("GPT is corrupt: {msg}; refusing to grow it")
    );
}

#[test]
fn protective_mbr_and_overlaps_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.img");
    let size: u64 = 48 << 20;
    created_disk(&p, size, 8, 128);
    let f = OpenOptions::new().read(true).write(true).open(&p).unwrap();
    f.write_all_at(&1000u32.to_le_bytes(), 446 + 12).unwrap();
    // Entry 2 starts inside entry 1; CRCs fixed so only the overlap shows.
    let n = size / 512;
    for (hdr, arr) in [(1u64, 2u64), (n - 1, n - 33)] {
        f.write_all_at(&3000u64.to_le_bytes(), arr * 512 + 128 + 32)
            .unwrap();
        let mut a = vec![0u8; 16384];
        f.read_exact_at(&mut a, arr * 512).unwrap();
        let mut h = [0u8; 92];
        f.read_exact_at(&mut h, hdr * 512).unwrap();
        h[88..92].copy_from_slice(&crc32(&a).to_le_bytes());
        h[16..20].fill(0);
        let c = crc32(&h);
        h[16..20].copy_from_slice(&c.to_le_bytes());
        f.write_all_at(&h, hdr * 512).unwrap();
    }
    drop(f);
    let msgs: Vec<String> = gpt::verify(&open_disk(&p))
        .into_iter()
        .map(|f| f.message)
        .collect();
    assert_eq!(
        msgs,
        vec![
            format!("protective MBR partition size is 1000 sectors, expected {} (min(disk sectors - 1, 0xFFFFFFFF))", n - 1),
            "partitions 1 (LBA 2048..=4095) and 2 (LBA 3000..=20479) overlap".to_string(),
        ]
    );
}

fn xz_corpus(rel: &str, dir: &Path) -> Option<PathBuf> {
    let src = common::corpus(rel)?;
    let out = dir.join("corpus.img");
    let data = Command::new("xz").arg("-dc").arg(&src).output().unwrap();
    assert!(data.status.success());
    std::fs::write(&out, data.stdout).unwrap();
    Some(out)
}

#[test]
fn util_linux_gpt_img_decodes() {
    let dir = tempfile::tempdir().unwrap();
    let Some(p) = xz_corpus("util-linux/gpt.img.xz", dir.path()) else {
        return;
    };
    let d = open_disk(&p);
    assert_eq!(d.size(), 10485760);
    assert_eq!(gpt::verify(&d), vec![]);
    let PartitionTable::Gpt(l) = read_table(&d).unwrap() else {
        panic!("no GPT")
    };
    assert_eq!(
        l.disk_guid.to_string(),
        "DD27F98D-7519-4C9E-8041-F2BFA7B1EF61"
    );
    assert_eq!((l.primary_header_lba, l.backup_header_lba), (1, 20479));
    assert_eq!((l.first_usable_lba, l.last_usable_lba), (34, 20446));
    assert_eq!((l.entries_lba, l.num_entries, l.entry_size), (2, 128, 128));
    let want = [
        (
            1,
            34,
            2047,
            "ThisIsName",
            "1DCF10BC-637E-4C52-8203-087AE10A820B",
        ),
        (
            2,
            2048,
            4095,
            "ThisIsOtherName",
            "A1D03A96-7238-46C6-BBB3-789CBE173EC7",
        ),
        (
            3,
            4096,
            6143,
            "primary",
            "A7101B6C-468C-47DF-AFF6-CD444D12AF61",
        ),
        (
            4,
            6144,
            8191,
            "primary",
            "AFC4950A-F0F1-4ADD-802C-5957133486D1",
        ),
        (
            5,
            8192,
            10239,
            "primary",
            "0DB0A787-C16B-4886-AF3A-FBB97299677C",
        ),
    ];
    assert_eq!(l.partitions.len(), 5);
    for (p, (i, a, b, name, guid)) in l.partitions.iter().zip(want) {
        assert_eq!(
            (p.index, p.first_lba, p.last_lba, p.name.as_str()),
            (i, a, b, name)
        );
        assert_eq!(p.unique_guid.to_string(), guid);
        assert_eq!(
            p.type_guid.to_string(),
            "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7"
        );
        assert_eq!(p.type_name, Some("Microsoft basic data"));
        assert_eq!(p.attributes, 0);
    }
    let h = read_at(&p, 512, 92);
    assert_eq!(
        u32::from_le_bytes(h[16..20].try_into().unwrap()),
        0xf303c548
    );
    assert_eq!(
        u32::from_le_bytes(h[88..92].try_into().unwrap()),
        0xfaa76117
    );
    let b = read_at(&p, 20479 * 512, 92);
    assert_eq!(
        u32::from_le_bytes(b[16..20].try_into().unwrap()),
        0x49b8a601
    );
    let json = serde_json::to_value(read_table(&d).unwrap()).unwrap();
    assert_eq!(json["kind"], "gpt");
    assert_eq!(json["partitions"][1]["name"], "ThisIsOtherName");
    if common::require_tool("sgdisk") {
        let out = grow_matches_reference(dir.path(), &p, GIB, true);
        sgdisk_v_clean(&out);
    }
}

#[test]
fn gpt_rs_disk_decodes() {
    let Some(p) = common::corpus("gpt-rs/gpt-disk.img") else {
        return;
    };
    let d = open_disk(&p);
    assert_eq!(d.size(), 36864);
    assert_eq!(gpt::verify(&d), vec![]);
    let PartitionTable::Gpt(l) = read_table(&d).unwrap() else {
        panic!("no GPT")
    };
    assert_eq!(
        l.disk_guid.to_string(),
        "1B6A2BFA-E92B-184C-A8A7-ED0610D54821"
    );
    assert_eq!(
        (l.backup_header_lba, l.first_usable_lba, l.last_usable_lba),
        (71, 34, 38)
    );
    let got: Vec<_> = l
        .partitions
        .iter()
        .map(|p| {
            (
                p.index,
                p.unique_guid.to_string(),
                p.first_lba,
                p.last_lba,
                p.name.clone(),
                p.type_name,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                1,
                "F38EAB50-076F-CB45-97F8-B1B7E5AF078F".to_string(),
                34,
                34,
                String::new(),
                Some("Linux filesystem")
            ),
            (
                2,
                "8EEE35AF-4A93-2C4F-AA7A-5FB193AC6FF7".to_string(),
                35,
                38,
                String::new(),
                Some("Linux filesystem")
            ),
        ]
    );
    let h = read_at(&p, 512, 92);
    assert_eq!(
        u32::from_le_bytes(h[16..20].try_into().unwrap()),
        0x55f06699
    );
    assert_eq!(
        u32::from_le_bytes(h[88..92].try_into().unwrap()),
        0x5fad601b
    );
    let b = read_at(&p, 71 * 512, 92);
    assert_eq!(
        u32::from_le_bytes(b[16..20].try_into().unwrap()),
        0x7ddfa41b
    );
    assert_eq!(u64::from_le_bytes(b[72..80].try_into().unwrap()), 39);
    if common::require_tool("sgdisk") {
        let dir = tempfile::tempdir().unwrap();
        let out = grow_matches_reference(dir.path(), &p, 1 << 20, true);
        sgdisk_v_clean(&out);
    }
}

#[test]
fn unsigned_mbr_is_made_protective_like_sgdisk_e() {
    let Some(_) = sgdisk() else { return };
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.img");
    created_disk(&input, 48 << 20, 31, 128);
    let f = OpenOptions::new().write(true).open(&input).unwrap();
    f.write_all_at(&[0, 0], 510).unwrap();
    f.write_all_at(&[0x12, 0x34, 0x56, 0x78], 440).unwrap();
    drop(f);
    let out = grow_matches_reference(dir.path(), &input, GIB, true);
    sgdisk_v_clean(&out);
}

#[test]
fn classic_mbr_in_front_of_gpt_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.img");
    created_disk(&input, 48 << 20, 32, 128);
    OpenOptions::new()
        .write(true)
        .open(&input)
        .unwrap()
        .write_all_at(&[0x83], 446 + 4)
        .unwrap();
    let e = gpt::grow(open_disk(&input), GIB).err().unwrap();
    assert_eq!(
        e.message(),
        "disk has a GPT behind a classic MBR without a 0xEE partition; refusing to grow it (sgdisk -e refuses too)"
    );
    let msgs: Vec<String> = gpt::verify(&open_disk(&input))
        .into_iter()
        .map(|f| f.message)
        .collect();
    assert_eq!(
        msgs,
        vec!["MBR has no protective 0xEE partition, so the GPT is not protected".to_string()]
    );
    if common::require_tool("sgdisk") {
        let r = dir.path().join("r.img");
        run(Command::new("cp").arg(&input).arg(&r));
        run(Command::new("truncate").args(["-s", "1G"]).arg(&r));
        assert!(!Command::new("sgdisk")
            .arg("-e")
            .arg(&r)
            .output()
            .unwrap()
            .status
            .success());
    }
}

#[test]
fn disk_enlarged_without_moving_the_backup_grows_like_sgdisk_e() {
    let Some(_) = sgdisk() else { return };
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.img");
    created_disk(&input, 48 << 20, 41, 128);
    OpenOptions::new()
        .write(true)
        .open(&input)
        .unwrap()
        .set_len(50 << 20)
        .unwrap();
    // verify wants the backup at the end...
    let msgs: Vec<String> = gpt::verify(&open_disk(&input))
        .into_iter()
        .map(|f| f.message)
        .collect();
    assert_eq!(
        msgs[0],
        "backup GPT header missing: no \"EFI PART\" signature at LBA 102399"
    );
    // ...but grow, like sgdisk -e, finds it where the primary points.
    let out = grow_matches_reference(dir.path(), &input, GIB, true);
    sgdisk_v_clean(&out);
}

#[test]
fn growing_past_2_tib_saturates_the_protective_mbr_like_sgdisk_e() {
    let Some(_) = sgdisk() else { return };
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.img");
    created_disk(&input, 48 << 20, 51, 128);
    // 0xFFFFFFFF sectors exactly (gdisk's `<` edge), then 3 TiB.
    for new_size in [0xFFFF_FFFFu64 * 512, 3 << 40] {
        // (and the CHS edge: the last LBA is the first one CHS cannot hold)
        let out = grow_matches_reference(dir.path(), &input, new_size, true);
        let mbr = read_at(&out, 446, 16);
        assert_eq!(&mbr[12..16], &[0xff; 4]);
        assert_eq!(&mbr[5..8], &[0xff, 0xff, 0xff]);
        assert_eq!(gpt::verify(&open_disk(&out)), vec![]);
    }
}

#[test]
fn chs_limit_edge_matches_sgdisk_e() {
    let Some(_) = sgdisk() else { return };
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.img");
    created_disk(&input, 48 << 20, 52, 128);
    // Last LBA 16450559 = the last CHS-addressable sector, then one more.
    for sectors in [16450560u64, 16450561] {
        grow_matches_reference(dir.path(), &input, sectors * 512, true);
    }
}

/// A disk laid out as Limine 8.x's `bios-install` leaves it (limine.c,
/// `bios_install`, GPT embedding): both arrays shrunk from 128 to 44
/// entries (11 sectors), "stage 2 half A" in LBAs 13-33 after the primary
/// array, "half B" in the 20 sectors before the backup header (LBAs
/// N-21..N-2; LBA N-22, between the backup array and half B, stays
/// zero). The halves are seeded random bytes. Returns them.
fn limine_like(path: &Path, size: u64, seed: u64) -> (Vec<u8>, Vec<u8>) {
    let n = size / 512;
    created_disk(path, size, seed, 128);
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    common::shrink_arrays_to_44(&f, n);
    let mut rng = Rng::new(seed ^ 0x51A6E2);
    let (mut a, mut b) = (vec![0u8; 21 * 512], vec![0u8; 20 * 512]);
    rng.fill(&mut a);
    rng.fill(&mut b);
    f.write_all_at(&a, 13 * 512).unwrap();
    f.write_all_at(&b, (n - 21) * 512).unwrap();
    (a, b)
}

/// The LBAs of half B (N0-21..=N0-2) that the backup array of a disk
/// grown to `new_size` (11 sectors at N-33) covers, worked out from the
/// layout alone.
fn expected_hits(old_size: u64, new_size: u64) -> Vec<[u64; 2]> {
    let (n0, n) = (old_size / 512, new_size / 512);
    let (first, last) = ((n - 33).max(n0 - 21), (n - 23).min(n0 - 2));
    if first <= last {
        vec![[first, last]]
    } else {
        Vec::new()
    }
}

/// Plan, grow and check one Limine-like disk `k` sectors short of a
/// multiple of `unit`: the planner skips the multiple exactly when its
/// backup array would land on half B; the result is byte for byte
/// `truncate` + `sgdisk -e` at the chosen size, `sgdisk -v` clean, with
/// both halves intact; and at the skipped size `sgdisk -e` does destroy
/// half B.
fn limine_like_grows_clear(unit: u64, multiple: u64, k: u64) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.img");
    let size = multiple * unit - k * 512;
    let (half_a, half_b) = limine_like(&input, size, 60 + k);
    let n0 = size / 512;
    sgdisk_v_clean(&input);
    let first = multiple * unit;
    let hits = expected_hits(size, first);
    let disk = open_disk(&input);
    assert_eq!(gpt::foreign_sectors(&disk, first).unwrap(), hits, "k={k}");
    let plan = gpt::plan_growth(&disk, unit).unwrap();
    let chosen = if hits.is_empty() { first } else { first + unit };
    let skipped = if hits.is_empty() {
        vec![]
    } else {
        vec![gpt::SkippedSize {
            size: first,
            foreign_lbas: hits.clone(),
        }]
    };
    assert_eq!(
        plan,
        gpt::Growth {
            from: size,
            to: chosen,
            skipped
        },
        "k={k}"
    );
    if let [[a, b]] = hits[..] {
        let e = gpt::grow(open_disk(&input), first).err().unwrap();
        let (lbas, hold) = if a == b {
            (format!("LBA {a}"), "holds")
        } else {
            (format!("LBAs {a}-{b}"), "hold")
        };
        assert_eq!(
            e.message(),
            format!("a backup GPT at {first} bytes would cover {lbas}, which {hold} data the GPT does not own; refusing to grow the disk to that size")
        );
    }
    let grown = gpt::grow_to_multiple(open_disk(&input), unit).unwrap();
    assert_eq!(grown.growth, plan);
    assert!(gpt::changes_outside_gpt(&grown.disk).unwrap().is_empty());
    let ours = grow_matches_reference(dir.path(), &input, chosen, true);
    let direct = gpt::grow(open_disk(&input), chosen).unwrap();
    assert_eq!(grown.disk.patches(), direct.patches());
    sgdisk_v_clean(&ours);
    assert_eq!(read_at(&ours, 13 * 512, half_a.len()), half_a, "k={k}");
    assert_eq!(
        read_at(&ours, (n0 - 21) * 512, half_b.len()),
        half_b,
        "k={k}"
    );
    if !hits.is_empty() {
        // What the stock tools do at the skipped size.
        let naive = dir.path().join("naive.img");
        run(Command::new("cp")
            .arg("--sparse=always")
            .arg(&input)
            .arg(&naive));
        run(Command::new("truncate")
            .arg("-s")
            .arg(first.to_string())
            .arg(&naive));
        run(Command::new("sgdisk").arg("-e").arg(&naive));
        assert_ne!(
            read_at(&naive, (n0 - 21) * 512, half_b.len()),
            half_b,
            "k={k}: sgdisk -e at {first} leaves half B alone?"
        );
    }
}

#[test]
fn limine_like_disks_short_of_a_gib_grow_clear_of_stage2() {
    let Some(_) = sgdisk() else { return };
    // 1 sector short: the backup array at 1 GiB covers the old one and the
    // zero sector after it, and is clear. 2 to 31 short: it lands on half
    // B (2: on its first sector; 21: all 11 array sectors; 31: its last
    // sector). 32 and more: clear again.
    for k in [1, 2, 5, 21, 31, 32, 64] {
        limine_like_grows_clear(GIB, 1, k);
    }
}

#[test]
fn limine_like_disks_short_of_a_mib_grow_clear_of_stage2() {
    let Some(_) = sgdisk() else { return };
    for k in [3, 31, 33] {
        limine_like_grows_clear(1 << 20, 48, k);
    }
}

#[test]
fn planner_rejects_bad_units_and_leaves_gptless_disks_alone() {
    let dir = tempfile::tempdir().unwrap();
    let blank = dir.path().join("blank.img");
    sparse_file(&blank, (10 << 20) + 512);
    let d = open_disk(&blank);
    let plan = gpt::plan_growth(&d, 1 << 20).unwrap();
    assert_eq!(
        (plan.from, plan.to, plan.skipped),
        ((10 << 20) + 512, 11 << 20, vec![])
    );
    let e = gpt::plan_growth(&d, 1000).err().unwrap();
    assert_eq!(
        e.message(),
        "growth unit 1000 is not a positive multiple of 512 bytes"
    );
}
