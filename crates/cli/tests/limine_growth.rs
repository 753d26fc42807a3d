//! Issue 11, item 2: growing a real Limine disk never overwrites Limine's
//! BIOS stage 2.
//!
//! Limine 8.2.0 images are built here with the stock tools only (the
//! corpus's `limine.c` compiled with `cc`, `sgdisk`, `mkfs.fat`, mtools,
//! `limine bios-install`), 1 to 64 sectors short of a whole GiB and of a
//! whole MiB. `limine bios-install` (limine.c `bios_install`, 8.2.0)
//! shrinks both GPT arrays and embeds stage 2 in two halves, half B right
//! before the backup header; the MBR records where (u16 size A at 0x1A4,
//! u16 size B at 0x1A6, u64 byte offset A at 0x1A8, u64 byte offset B at
//! 0x1B0). For every image, `cloudimg package --gcp --azure` must grow the
//! disk to the first whole GiB (GCP) or MiB (Azure) whose backup GPT lands
//! clear of stage 2 (worked out here from Limine's own record), say so
//! when it skipped one, keep the boot code and both halves byte for byte,
//! and the grown disks must boot under SeaBIOS. The stock `truncate` +
//! `sgdisk -e` is shown to break such an image.

mod common;

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use cloudimg_boot::{BootOptions, DiskInterface, Firmware};
use cloudimg_disk::VirtualDisk;
use common::{cloudimg, corpus, require_file, require_tool, run};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
/// The ESP: LBA 2048 on, 32 MiB of FAT16.
const ESP_LBA: u64 = 2048;
const ESP_BYTES: u64 = 32 * MIB;
/// limine.conf for 8.x (the kernel key is `kernel_path` there; see the
/// corpus README).
const LIMINE_CONF: &str = "timeout: 0\nserial: yes\n\n/capOS\n    protocol: multiboot2\n    kernel_path: boot():/boot/capos.elf\n";

/// The host tool and a filled ESP, made once per test binary.
struct Kit {
    limine: PathBuf,
    esp: Vec<u8>,
}

fn tools_present() -> bool {
    let tools = [
        "cc",
        "sgdisk",
        "mkfs.fat",
        "mcopy",
        "mmd",
        "qemu-system-x86_64",
    ];
    tools.iter().all(|t| require_tool(t)) && require_file("/usr/share/seabios/bios-256k.bin")
}

/// Compile `limine` from the corpus and fill an ESP image with Limine's
/// files, its config and the demo kernel.
fn kit() -> Option<&'static Kit> {
    static KIT: OnceLock<Option<Kit>> = OnceLock::new();
    KIT.get_or_init(|| {
        if !tools_present() {
            return None;
        }
        let release = cloudimg_testkit::limine_release("8.2.0")?;
        let limine = release.join("limine");
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("limine-8.2.0-kit-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let esp = dir.join("esp.img");
        File::create(&esp).unwrap().set_len(ESP_BYTES).unwrap();
        run(Command::new("mkfs.fat")
            .args(["-F", "16", "-n", "CAPOS", "-i", "C0FFEE11"])
            .arg(&esp));
        let files = [
            ("BOOTX64.EFI", "::/EFI/BOOT/BOOTX64.EFI"),
            ("limine-bios.sys", "::/boot/limine/limine-bios.sys"),
        ];
        let conf = dir.join("limine.conf");
        fs::write(&conf, LIMINE_CONF).unwrap();
        let kernel = dir.join("capos.elf");
        fs::write(&kernel, cloudimg_image::kernel::demo_kernel()).unwrap();
        let mtools = |args: &[&str], cmd: &str| {
            run(Command::new(cmd)
                .env("MTOOLS_SKIP_CHECK", "1")
                .arg("-i")
                .arg(&esp)
                .args(args));
        };
        mtools(
            &["::/EFI", "::/EFI/BOOT", "::/boot", "::/boot/limine"],
            "mmd",
        );
        for (name, to) in files {
            let from = corpus(&format!("limine/limine-8.2.0/{name}"))?;
            mtools(&[from.to_str().unwrap(), to], "mcopy");
        }
        mtools(
            &[conf.to_str().unwrap(), "::/boot/limine/limine.conf"],
            "mcopy",
        );
        mtools(&[kernel.to_str().unwrap(), "::/boot/capos.elf"], "mcopy");
        Some(Kit {
            limine,
            esp: fs::read(&esp).unwrap(),
        })
    })
    .as_ref()
}

/// A sparse Limine 8.2.0 image of `size` bytes at `path`: a GPT made by
/// `sgdisk` with one ESP, the kit's FAT16 in it, `limine bios-install`.
fn limine_image(kit: &Kit, path: &Path, size: u64) {
    File::create(path).unwrap().set_len(size).unwrap();
    run(Command::new("sgdisk")
        .args([
            "-o",
            &format!("-n1:{ESP_LBA}:+{}M", ESP_BYTES / MIB),
            "-t1:ef00",
        ])
        .arg(path));
    let f = OpenOptions::new().write(true).open(path).unwrap();
    for (i, chunk) in kit.esp.chunks(64 << 10).enumerate() {
        if chunk.iter().any(|&b| b != 0) {
            f.write_all_at(chunk, ESP_LBA * 512 + (i as u64) * (64 << 10))
                .unwrap();
        }
    }
    drop(f);
    run(Command::new(&kit.limine)
        .args(["bios-install", "--quiet"])
        .arg(path));
}

/// The disk an artifact holds, decoded by tools cloudimg did not write:
/// GNU tar extracts a GCP tarball's `disk.raw` (sparse, `-S`); a fixed
/// VHD is the disk followed by its 512-byte footer.
fn decoded(artifact: &Path, scratch: &Path) -> cloudimg_disk::io::RawFile {
    if artifact.to_string_lossy().ends_with(".tar.gz") {
        let to = scratch.join("gcp");
        fs::create_dir_all(&to).unwrap();
        run(Command::new("tar")
            .arg("-xzSf")
            .arg(artifact)
            .arg("-C")
            .arg(&to));
        cloudimg_disk::io::RawFile::open(to.join("disk.raw")).unwrap()
    } else {
        let f = File::open(artifact).unwrap();
        let len = f.metadata().unwrap().len() - 512;
        cloudimg_disk::io::RawFile::window(f, "", 0, len)
    }
}

/// Assert two disks are equal byte for byte, reading only where either
/// has data (holes read as zeros).
fn assert_same_content(a: &dyn VirtualDisk, b: &dyn VirtualDisk, what: &str) {
    assert_eq!(a.size(), b.size(), "{what}: sizes");
    let mut ranges: Vec<(u64, u64)> = a
        .extents()
        .unwrap()
        .into_iter()
        .chain(b.extents().unwrap())
        .filter(|e| e.kind == cloudimg_disk::ExtentKind::Data)
        .map(|e| (e.offset, e.end()))
        .collect();
    ranges.sort();
    for (start, end) in ranges {
        let mut pos = start;
        while pos < end {
            let n = (end - pos).min(1 << 20);
            assert!(
                read_at(a, pos, n) == read_at(b, pos, n),
                "{what}: differ in bytes {pos}..{}",
                pos + n
            );
            pos += n;
        }
    }
}

fn read_at(disk: &dyn VirtualDisk, at: u64, len: u64) -> Vec<u8> {
    let mut b = vec![0u8; len as usize];
    disk.read_at(&mut b, at).unwrap();
    b
}

/// What Limine wrote outside the partitions, as its MBR records it: the
/// boot code, and the two stage 2 halves (byte offset, length).
struct LimineBytes {
    halves: [(u64, u64); 2],
}

impl LimineBytes {
    /// Parse the MBR's stage 2 location field (limine.c 8.2.0,
    /// `bios_install`: `0x1a4 + 0` u16 size A, `+ 2` u16 size B, `+ 4` u64
    /// location A, `+ 12` u64 location B, little endian).
    fn of(disk: &dyn VirtualDisk) -> LimineBytes {
        let mbr = read_at(disk, 0, 512);
        assert_eq!(&mbr[..3], &[0xEB, 0x3C, 0x90]);
        assert_eq!(&mbr[3..11], b"LIMINE  ");
        let u16_at = |o: usize| u16::from_le_bytes([mbr[o], mbr[o + 1]]) as u64;
        let u64_at = |o: usize| u64::from_le_bytes(mbr[o..o + 8].try_into().unwrap());
        LimineBytes {
            halves: [
                (u64_at(0x1a4 + 4), u16_at(0x1a4)),
                (u64_at(0x1a4 + 12), u16_at(0x1a4 + 2)),
            ],
        }
    }

    /// The ranges to compare: boot code, half A, half B.
    fn ranges(&self) -> [(u64, u64); 3] {
        [(0, 440), self.halves[0], self.halves[1]]
    }
}

/// The size a disk must be grown to and the sizes to skip, worked out
/// from the GPT header and Limine's record alone: the backup array of a
/// disk of `c` sectors goes to LBA `c - FirstUsableLBA + 1` for as many
/// sectors as the array has (sgdisk -e), and a size is skipped when that
/// array covers a non-zero sector of either stage 2 half.
fn expected_growth(input: &dyn VirtualDisk, unit: u64, limine: &LimineBytes) -> serde_json::Value {
    let hdr = read_at(input, 512, 92);
    let u32_at = |o: usize| u32::from_le_bytes(hdr[o..o + 4].try_into().unwrap()) as u64;
    let first_usable = u64::from_le_bytes(hdr[40..48].try_into().unwrap());
    let array_sectors = (u32_at(80) * u32_at(84)).div_ceil(512);
    let size = input.size();
    let stage2_lbas: Vec<u64> = limine
        .halves
        .iter()
        .flat_map(|&(at, len)| at / 512..(at + len).div_ceil(512))
        .filter(|&lba| read_at(input, lba * 512, 512).iter().any(|&b| b != 0))
        .collect();
    let mut skipped = Vec::new();
    let mut c = size.div_ceil(unit) * unit;
    loop {
        let array = c / 512 - first_usable + 1;
        let hits: Vec<u64> = (array..array + array_sectors)
            .filter(|l| stage2_lbas.contains(l))
            .collect();
        if hits.is_empty() {
            break;
        }
        // Contiguous here: one range.
        assert_eq!(hits.len() as u64, hits[hits.len() - 1] - hits[0] + 1);
        skipped.push(
            serde_json::json!({"size": c, "foreign_lbas": [[hits[0], hits[hits.len() - 1]]]}),
        );
        c += unit;
    }
    serde_json::json!({"from": size, "to": c, "skipped": skipped})
}

/// `2 GiB` or `301 MiB`, as the note says it.
fn size_text(bytes: u64, unit: u64) -> String {
    if unit == GIB {
        format!("{} GiB", bytes / GIB)
    } else {
        format!("{} MiB", bytes / MIB)
    }
}

/// The note `package` must print for a disk grown past its first size.
fn expected_note(file: &str, growth: &serde_json::Value, unit: u64) -> String {
    let skipped = &growth["skipped"][0];
    let lbas = &skipped["foreign_lbas"][0];
    let (a, b) = (lbas[0].as_u64().unwrap(), lbas[1].as_u64().unwrap());
    let (cover, hold) = if a == b {
        (format!("LBA {a}"), "holds")
    } else {
        (format!("LBAs {a}-{b}"), "hold")
    };
    let skipped_size = size_text(skipped["size"].as_u64().unwrap(), unit);
    format!(
        "cloudimg: note: {file}: grown to {}, not {skipped_size}: a backup GPT at {skipped_size} would cover {cover}, which {hold} data the GPT does not own (Limine's BIOS stage 2, as its MBR says)",
        size_text(growth["to"].as_u64().unwrap(), unit)
    )
}

/// One image: its size, and whether its GCP shape is made and checked
/// too (else only the Azure one).
struct Case {
    size: u64,
    gcp: bool,
}

/// Time spent in each step, summed over the cases.
#[derive(Default)]
struct Timings {
    build: Duration,
    package: Duration,
    check: Duration,
    boot: Duration,
    boots: usize,
}

/// Build, package, check and boot one image; the problems found.
fn run_case(kit: &Kit, case: &Case, t: &Mutex<Timings>) -> Vec<String> {
    let mut problems = Vec::new();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let image = d.join("limine.img");
    let start = Instant::now();
    limine_image(kit, &image, case.size);
    let built = start.elapsed();
    let mut args = vec![
        "package",
        "limine.img",
        "--azure",
        "-o",
        "out",
        "--json",
        "-j",
        "1",
    ];
    if case.gcp {
        args.push("--gcp");
    }
    let out = cloudimg(&args, d);
    let packaged = start.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        return vec![format!("{}: package failed: {stderr}", case.size)];
    }
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let input = cloudimg_disk::io::RawFile::open(&image).unwrap();
    let limine = LimineBytes::of(&input);
    let mut to_boot: Vec<(PathBuf, String)> = Vec::new();
    let shapes = [("disk.raw.tar.gz", GIB), ("capos-azure.vhd", MIB)];
    for (file, unit) in shapes.into_iter().filter(|s| case.gcp || s.1 == MIB) {
        let what = format!("{} bytes, {file}", case.size);
        let Some(a) = json["artifacts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["file"] == file)
        else {
            problems.push(format!("{what}: not made: {json}"));
            continue;
        };
        let want = expected_growth(&input, unit, &limine);
        let skipped = !want["skipped"].as_array().unwrap().is_empty();
        if a["virtual_size_bytes"] != want["to"] {
            problems.push(format!(
                "{what}: grown to {}, expected {}",
                a["virtual_size_bytes"], want["to"]
            ));
        }
        // `growth` is there exactly when a size was skipped.
        let got_growth = a.get("growth").cloned().unwrap_or(serde_json::Value::Null);
        if skipped && got_growth != want || !skipped && !got_growth.is_null() {
            problems.push(format!("{what}: growth {got_growth}, expected {want}"));
        }
        let manifest: serde_json::Value =
            serde_json::from_slice(&fs::read(d.join("out/manifest.json")).unwrap()).unwrap();
        let in_manifest = manifest["artifacts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["file"] == file)
            .and_then(|m| m.get("growth").cloned())
            .unwrap_or(serde_json::Value::Null);
        if in_manifest != got_growth {
            problems.push(format!(
                "{what}: manifest growth {in_manifest}, --json {got_growth}"
            ));
        }
        let notes: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with(&format!("cloudimg: note: {file}: ")))
            .collect();
        let want_notes: Vec<String> = skipped
            .then(|| expected_note(file, &want, unit))
            .into_iter()
            .collect();
        if notes != want_notes {
            problems.push(format!("{what}: notes {notes:?}, expected {want_notes:?}"));
        }
        // Limine's bytes outside the partitions, in the disk as GNU tar
        // extracts it from the tarball, or as the fixed VHD holds it
        // (the disk, then a 512-byte footer).
        let path = d.join("out").join(file);
        let grown = decoded(&path, d);
        for (at, len) in limine.ranges() {
            if read_at(&grown, at, len) != read_at(&input, at, len) {
                problems.push(format!(
                    "{what}: bytes {at}..{} differ from the input's",
                    at + len
                ));
            }
        }
        let sha = a["virtual_sha256"].as_str().unwrap().to_string();
        if !to_boot.iter().any(|(_, s)| *s == sha) {
            to_boot.push((path, sha));
        }
    }
    let checked = start.elapsed();
    // Boot each distinct grown disk under SeaBIOS (identical disks, e.g.
    // GCP's and Azure's both at 1 GiB, boot alike).
    for (path, _) in &to_boot {
        let mut opts = BootOptions::new(Firmware::Bios);
        opts.disk = DiskInterface::Scsi;
        match cloudimg_boot::boot(path, &opts) {
            Ok(r) if r.passed && r.serial_tail.contains("firmware=bios") => {}
            Ok(r) => problems.push(format!(
                "{} bytes: {}: {}",
                case.size,
                r.summary(),
                r.serial_tail
            )),
            Err(e) => problems.push(format!(
                "{} bytes: booting {}: {e}",
                case.size,
                path.display()
            )),
        }
    }
    let mut t = t.lock().unwrap();
    t.build += built;
    t.package += packaged - built;
    t.check += checked - packaged;
    t.boot += start.elapsed() - checked;
    t.boots += to_boot.len();
    problems
}

/// Every image 1..=64 sectors short of 1 GiB (packaged for GCP and Azure)
/// and of 300 MiB (for Azure): grown clear of stage 2, Limine's bytes
/// intact, and every distinct grown disk boots under SeaBIOS. Runs on a few threads: the
/// images are built while others boot (`sgdisk` mostly waits).
#[test]
fn limine_images_short_of_a_gib_or_a_mib_grow_clear_and_boot_under_seabios() {
    let Some(kit) = kit() else { return };
    let started = Instant::now();
    // An image short of 1 GiB is short of a MiB too: GCP's and Azure's
    // growth both matter. Short of 300 MiB, only Azure's does (GCP's
    // backup GPT goes 700 MiB past the image's end), so only the Azure
    // shape is made: a GCP shape of each would double the time.
    let cases: Vec<Case> = [(GIB, true), (300 * MIB, false)]
        .iter()
        .flat_map(|&(boundary, gcp)| {
            (1..=64u64).map(move |k| Case {
                size: boundary - k * 512,
                gcp,
            })
        })
        .collect();
    let n = cases.len();
    let queue = Mutex::new(cases);
    let problems = Mutex::new(Vec::new());
    let timings = Mutex::new(Timings::default());
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get()) + 1;
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let Some(case) = queue.lock().unwrap().pop() else {
                    break;
                };
                let p = run_case(kit, &case, &timings);
                problems.lock().unwrap().extend(p);
            });
        }
    });
    let t = timings.into_inner().unwrap();
    eprintln!(
        "{n} Limine images, {} SeaBIOS boots, {workers} threads: {:.1} s in all (summed over threads: build {:.1} s, package {:.1} s, checks {:.1} s, boots {:.1} s)",
        t.boots,
        started.elapsed().as_secs_f64(),
        t.build.as_secs_f64(),
        t.package.as_secs_f64(),
        t.check.as_secs_f64(),
        t.boot.as_secs_f64()
    );
    let problems = problems.into_inner().unwrap();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The damage is real and visible to these checks: 5 sectors short of
/// 1 GiB, `truncate -s 1G` + `sgdisk -e` writes the backup array over
/// half B and SeaBIOS no longer boots the disk; cloudimg's GCP disk (2 GiB)
/// is `truncate` + `sgdisk -e` at 2 GiB byte for byte, and boots.
#[test]
fn stock_tools_break_a_limine_image_cloudimg_does_not() {
    let Some(kit) = kit() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let image = d.join("limine.img");
    limine_image(kit, &image, GIB - 5 * 512);
    let before = cloudimg(
        &["boot", "limine.img", "--firmware", "bios", "--disk", "scsi"],
        d,
    );
    common::ok(before);
    let input = cloudimg_disk::io::RawFile::open(&image).unwrap();
    let limine = LimineBytes::of(&input);
    let stock = |name: &str, size: u64| -> PathBuf {
        let p = d.join(name);
        run(Command::new("cp")
            .arg("--sparse=always")
            .arg(&image)
            .arg(&p));
        run(Command::new("truncate")
            .arg("-s")
            .arg(size.to_string())
            .arg(&p));
        run(Command::new("sgdisk").arg("-e").arg(&p));
        p
    };
    let naive = stock("naive.img", GIB);
    let naive_disk = cloudimg_disk::io::RawFile::open(&naive).unwrap();
    let (b_at, b_len) = limine.halves[1];
    assert_ne!(
        read_at(&naive_disk, b_at, b_len),
        read_at(&input, b_at, b_len),
        "sgdisk -e at 1 GiB leaves half B alone?"
    );
    let mut opts = BootOptions::new(Firmware::Bios);
    opts.disk = DiskInterface::Scsi;
    opts.timeout = Duration::from_secs(20);
    let r = cloudimg_boot::boot(&naive, &opts).unwrap();
    assert!(!r.passed, "the damaged disk booted: {}", r.summary());

    common::ok(cloudimg(
        &["package", "limine.img", "--gcp", "-o", "out"],
        d,
    ));
    let gcp = d.join("out/disk.raw.tar.gz");
    let grown = decoded(&gcp, d);
    let reference = stock("ref.img", 2 * GIB);
    let reference = cloudimg_disk::io::RawFile::open(&reference).unwrap();
    assert_same_content(
        &grown,
        &reference,
        "GCP disk vs truncate + sgdisk -e at 2 GiB",
    );
    let out = run(Command::new("sgdisk").arg("-v").arg(d.join("gcp/disk.raw")));
    assert!(out.contains("No problems found"), "sgdisk -v: {out}");
    let r = cloudimg_boot::boot(&gcp, &opts).unwrap();
    assert!(r.passed, "{}: {}", r.summary(), r.serial_tail);
}
