//! `check`: a Limine-style hybrid image made with independent tools
//! (GPT by cloudimg, FAT by mkfs.fat, files by mtools, partitions changed
//! by sgdisk), then broken in exactly one way per test; each test asserts
//! the check id, its status and message, and which paths are ready.

mod common;

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::process::Command;

use cloudimg_disk::check::{check, Checklist, Provider, Status, MIB};
use cloudimg_disk::io::RawFile;
use cloudimg_disk::layout::gpt::{self, GptSpec, NewPartition};
use cloudimg_disk::layout::Guid;

const ESP_FIRST_LBA: u64 = 4096;

fn tools() -> bool {
    common::require_tool("mkfs.fat")
        && common::require_tool("mcopy")
        && common::require_tool("mdel")
        && common::require_tool("sgdisk")
}

/// A minimal PE32+ header for `machine` with subsystem `subsystem`,
/// followed by `tag`.
fn pe(machine: u16, subsystem: u16, tag: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; 1024];
    b[0..2].copy_from_slice(b"MZ");
    b[0x3C] = 0x80;
    b[0x80..0x84].copy_from_slice(b"PE\0\0");
    b[0x84..0x86].copy_from_slice(&machine.to_le_bytes());
    b[0x98..0x9A].copy_from_slice(&0x20Bu16.to_le_bytes());
    b[0x98 + 68..0x98 + 70].copy_from_slice(&subsystem.to_le_bytes());
    b.extend_from_slice(tag);
    b
}

/// Limine-style MBR code of the 9.x-and-earlier layout: `EB 3C 90
/// "LIMINE  "`, `mov di, 0x7DA8` at 0x76 (as in 8.2.0), filler code, and
/// the two stage-2 halves (512 bytes each) at LBA 40 and 41.
fn limine_mbr() -> Vec<u8> {
    let mut c = vec![0u8; 440];
    c[..11].copy_from_slice(b"\xEB\x3C\x90LIMINE  ");
    for (i, b) in c[0x3E..0x1A4].iter_mut().enumerate() {
        *b = (i % 251) as u8 + 1;
    }
    c[0x76..0x79].copy_from_slice(&[0xBF, 0xA8, 0x7D]);
    c[0x1A4..0x1A6].copy_from_slice(&512u16.to_le_bytes());
    c[0x1A6..0x1A8].copy_from_slice(&512u16.to_le_bytes());
    c[0x1A8..0x1B0].copy_from_slice(&(40u64 * 512).to_le_bytes());
    c[0x1B0..0x1B8].copy_from_slice(&(41u64 * 512).to_le_bytes());
    c
}

struct Img {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Img {
    /// mtools image spec of the ESP.
    fn esp(&self) -> String {
        format!("{}@@{}", self.path.display(), ESP_FIRST_LBA * 512)
    }
    fn check(&self, clouds: &[Provider]) -> Checklist {
        let d = RawFile::open(&self.path).unwrap();
        check(&d, clouds).unwrap()
    }
    fn write_at(&self, bytes: &[u8], off: u64) {
        let f = OpenOptions::new().write(true).open(&self.path).unwrap();
        f.write_all_at(bytes, off).unwrap();
    }
}

/// Build the image: `size` bytes, BIOS boot partition at 2048..4095, an
/// ESP of `esp_mib` MiB at 4096 formatted `fat` (12/16/32) holding
/// BOOTX64.EFI, /limine.conf and /boot/capos-kernel.elf (long names).
fn build(size: u64, esp_mib: u64, fat: u32) -> Img {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("disk.raw");
    let esp_sectors = esp_mib * MIB / 512;
    let g = |s: &str| s.parse::<Guid>().unwrap();
    let spec = GptSpec {
        boot_code: limine_mbr(),
        partitions: vec![
            NewPartition {
                type_guid: g("21686148-6449-6E6F-744E-656564454649"),
                unique_guid: Guid::v4_from([1; 16]),
                first_lba: 2048,
                last_lba: 4095,
                attributes: 0,
                name: "BIOS boot".into(),
            },
            NewPartition {
                type_guid: g("C12A7328-F81F-11D2-BA4B-00A0C93EC93B"),
                unique_guid: Guid::v4_from([2; 16]),
                first_lba: ESP_FIRST_LBA,
                last_lba: ESP_FIRST_LBA + esp_sectors - 1,
                attributes: 0,
                name: "EFI System".into(),
            },
        ],
        ..GptSpec::new(Guid::v4_from([3; 16]))
    };
    let gpt = gpt::create(&spec, size).unwrap();
    let f = File::create(&path).unwrap();
    f.set_len(size).unwrap();
    gpt.write_to(&f).unwrap();
    f.write_all_at(&[0x5A; 1024], 40 * 512).unwrap(); // Limine stage 2
    drop(f);

    let esp = dir.path().join("esp.img");
    common::run(
        Command::new("mkfs.fat")
            .args(["-F", &fat.to_string(), "-C", "-i", "12345678"])
            .arg(&esp)
            .arg((esp_mib * 1024).to_string()),
    );
    let files = dir.path().join("files");
    fs::create_dir_all(&files).unwrap();
    fs::write(files.join("BOOTX64.EFI"), pe(0x8664, 10, b"Limine")).unwrap();
    fs::write(
        files.join("limine.conf"),
        "timeout: 0\nserial: yes\n\n/capOS\n    protocol: multiboot2\n    kernel_path: boot():/boot/capos-kernel.elf\n",
    )
    .unwrap();
    fs::write(files.join("capos-kernel.elf"), vec![0x7Fu8; 5000]).unwrap();
    fs::write(
        files.join("limine-bios.sys"),
        b"stage 3 Limine 8.2.0 (x86-64, BIOS)",
    )
    .unwrap();
    let i = format!("{}", esp.display());
    common::run(Command::new("mmd").args(["-i", &i, "::/EFI", "::/EFI/BOOT", "::/boot"]));
    common::run(
        Command::new("mcopy")
            .args(["-i", &i])
            .arg(files.join("limine-bios.sys"))
            .arg("::/limine-bios.sys"),
    );
    common::run(
        Command::new("mcopy")
            .args(["-i", &i])
            .arg(files.join("BOOTX64.EFI"))
            .arg("::/EFI/BOOT/BOOTX64.EFI"),
    );
    common::run(
        Command::new("mcopy")
            .args(["-i", &i])
            .arg(files.join("limine.conf"))
            .arg("::/limine.conf"),
    );
    common::run(
        Command::new("mcopy")
            .args(["-i", &i])
            .arg(files.join("capos-kernel.elf"))
            .arg("::/boot/capos-kernel.elf"),
    );
    let bytes = fs::read(&esp).unwrap();
    let img = Img { _dir: dir, path };
    img.write_at(&bytes, ESP_FIRST_LBA * 512);
    img
}

fn default_img() -> Img {
    build(64 * MIB, 40, 32)
}

fn status(l: &Checklist, id: &str) -> (Status, String) {
    let c = l.get(id).unwrap_or_else(|| panic!("no check {id}: {l:#?}"));
    (c.status, c.message.clone())
}

/// Names of the paths that are not ready.
fn not_ready(l: &Checklist) -> Vec<&'static str> {
    l.verdicts
        .iter()
        .filter(|v| !v.ready)
        .map(|v| v.target.name())
        .collect()
}

/// How the kernel messages of the synthetic image end: both firmware
/// paths read /limine.conf (no version string in the fake binaries).
const N8: &str = " (Limine UEFI and BIOS read /limine.conf on partition 2: the first found in the 8.x search order (version unread))";

const BIOS: [&str; 3] = ["gcp-bios", "aws-bios", "azure-gen1"];
const UEFI: [&str; 3] = ["gcp-uefi", "aws-uefi", "azure-gen2"];

#[test]
fn clean_limine_image_is_ready_everywhere() {
    if !tools() {
        return;
    }
    let img = default_img();
    let l = img.check(&[]);
    for c in &l.checks {
        assert_eq!(c.status, Status::Pass, "{c:?}");
    }
    assert!(l.ready());
    assert_eq!(l.verdicts.len(), 6);
    assert!(status(&l, "bios-boot-code").1.starts_with("Limine stage 1"));
    assert_eq!(
        status(&l, "bios-stage2").1,
        "two halves (9.x or earlier layout): half A (512 bytes at byte 20480, LBA 40-40); half B (512 bytes at byte 20992, LBA 41-41); present, inside the disk, clear of the partitions and GPT areas"
    );
    assert_eq!(
        status(&l, "bios-stage3").1,
        "/limine-bios.sys on partition 2, 35 bytes, Limine 8.2.0"
    );
    assert_eq!(
        status(&l, "efi-loader").1,
        "1030 bytes, PE32+ x86-64 EFI application (Limine)"
    );
    assert_eq!(
        status(&l, "kernel").1,
        format!("/limine.conf boots /boot/capos-kernel.elf (5000 bytes){N8}")
    );
    assert_eq!(status(&l, "esp").1, "partition 2 (LBA 4096+81920), FAT32");
}

#[test]
fn fat16_and_fat12_esps_are_read() {
    if !tools() {
        return;
    }
    for (size, esp, fat) in [(64 * MIB, 40, 16), (32 * MIB, 2, 12)] {
        let l = build(size, esp, fat).check(&[Provider::Aws]);
        assert!(
            status(&l, "esp").1.ends_with(&format!("FAT{fat}")),
            "{l:#?}"
        );
        assert_eq!(status(&l, "kernel").0, Status::Pass, "{l:#?}");
        assert!(l.ready());
    }
}

#[test]
fn names_are_matched_without_case() {
    if !tools() {
        return;
    }
    let img = default_img();
    let esp = img.esp();
    let dir = tempfile::tempdir().unwrap();
    let efi = dir.path().join("bootx64.efi");
    fs::write(&efi, pe(0x8664, 10, b"")).unwrap();
    let conf = dir.path().join("LIMINE.CONF");
    fs::write(&conf, "/x\nKERNEL_PATH: boot():/BOOT/CAPOS-KERNEL.ELF\n").unwrap();
    common::run(Command::new("mdeltree").args(["-i", &esp, "::/EFI"]));
    common::run(Command::new("mdel").args(["-i", &esp, "::/limine.conf"]));
    common::run(Command::new("mmd").args(["-i", &esp, "::/efi", "::/efi/boot"]));
    common::run(
        Command::new("mcopy")
            .args(["-i", &esp])
            .arg(&efi)
            .arg("::/efi/boot/bootx64.efi"),
    );
    common::run(
        Command::new("mcopy")
            .args(["-i", &esp])
            .arg(&conf)
            .arg("::/LIMINE.CONF"),
    );
    let listing = common::run(Command::new("mdir").args(["-i", &esp, "::/efi/boot"]));
    // mtools keeps an all-lowercase 8.3 name as a short name with the
    // lowercase flags (no long name).
    assert!(listing.contains("bootx64  efi"), "{listing}");
    let l = img.check(&[]);
    assert_eq!(status(&l, "efi-loader").0, Status::Pass, "{l:#?}");
    assert_eq!(
        status(&l, "kernel").1,
        format!("/limine.conf boots /BOOT/CAPOS-KERNEL.ELF (5000 bytes){N8}")
    );
}

#[test]
fn zero_mbr_code_fails_bios_paths_only() {
    if !tools() {
        return;
    }
    let img = default_img();
    img.write_at(&[0u8; 440], 0);
    let l = img.check(&[]);
    assert_eq!(
        status(&l, "bios-boot-code"),
        (
            Status::Fail,
            "MBR bytes 0..440 are all zero: BIOS firmware has no code to run".into()
        )
    );
    assert_eq!(not_ready(&l), BIOS);
    for v in l.verdicts.iter().filter(|v| !v.ready) {
        assert_eq!(v.failing, ["bios-boot-code"]);
    }
}

#[test]
fn zeroed_limine_stage2_fails_bios_paths() {
    if !tools() {
        return;
    }
    let img = default_img();
    img.write_at(&[0u8; 512], 41 * 512);
    let l = img.check(&[Provider::Gcp]);
    assert_eq!(
        status(&l, "bios-stage2"),
        (
            Status::Fail,
            "stage 2 is damaged or misplaced (two halves, 9.x or earlier layout): half B (512 bytes at byte 20992, LBA 41-41): has an all-zero sector at LBA 41 (Limine's stage 2 has none): it was overwritten".into()
        )
    );
    assert_eq!(not_ready(&l), ["gcp-bios"]);
}

#[test]
fn missing_efi_loader_fails_uefi_paths_only() {
    if !tools() {
        return;
    }
    let img = default_img();
    common::run(Command::new("mdel").args(["-i", &img.esp(), "::/EFI/BOOT/BOOTX64.EFI"]));
    let l = img.check(&[]);
    assert_eq!(
        status(&l, "efi-loader"),
        (
            Status::Fail,
            "not on the ESP (no BOOTX64.EFI): UEFI firmware has nothing to boot from this disk"
                .into()
        )
    );
    assert_eq!(not_ready(&l), UEFI);
}

#[test]
fn arm64_loader_is_refused() {
    if !tools() {
        return;
    }
    let img = default_img();
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("BOOTX64.EFI");
    fs::write(&f, pe(0xAA64, 10, b"")).unwrap();
    common::run(
        Command::new("mcopy")
            .args(["-o", "-i", &img.esp()])
            .arg(&f)
            .arg("::/EFI/BOOT/BOOTX64.EFI"),
    );
    let l = img.check(&[Provider::Azure]);
    assert_eq!(
        status(&l, "efi-loader"),
        (
            Status::Fail,
            "is a PE image for machine 0xaa64 (arm64), not x86-64 (0x8664)".into()
        )
    );
    assert_eq!(not_ready(&l), ["azure-gen2"]);
}

#[test]
fn corrupt_backup_gpt_fails_every_path() {
    if !tools() {
        return;
    }
    let img = default_img();
    let last = 64 * MIB - 512;
    // Damage the header's CRC field itself.
    img.write_at(&[0xFF], last + 16);
    let l = img.check(&[]);
    let (s, m) = status(&l, "gpt");
    assert_eq!(s, Status::Fail);
    assert!(
        m.starts_with("1 problem(s): at byte 67108368: backup header CRC mismatch (expected "),
        "{m}"
    );
    assert_eq!(not_ready(&l).len(), 6);
    // The primary still gives the partitions: the other checks pass.
    assert_eq!(status(&l, "kernel").0, Status::Pass);
}

#[test]
fn misaligned_partitions_warn() {
    if !tools() {
        return;
    }
    let img = default_img();
    // 4 KiB aligned, not 1 MiB.
    common::run(
        Command::new("sgdisk")
            .args(["-a", "1", "-n", "3:86024:+1M"])
            .arg(&img.path),
    );
    let l = img.check(&[]);
    assert_eq!(
        status(&l, "alignment"),
        (
            Status::Warn,
            "4 KiB but not 1 MiB aligned: partition 3 at LBA 86024".into()
        )
    );
    assert!(l.ready(), "a warning does not make a path not ready");
    // Not even 4 KiB aligned.
    common::run(
        Command::new("sgdisk")
            .args(["-a", "1", "-n", "4:90001:+1M"])
            .arg(&img.path),
    );
    let l = img.check(&[]);
    let (s, m) = status(&l, "alignment");
    assert_eq!(s, Status::Warn);
    assert!(
        m.starts_with("not 4 KiB aligned: partition 4 at LBA 90001;"),
        "{m}"
    );
    assert!(l.verdicts.iter().all(|v| v.warnings == ["alignment"]));
}

#[test]
fn size_not_a_sector_multiple_fails() {
    if !tools() {
        return;
    }
    let img = default_img();
    let f = OpenOptions::new().write(true).open(&img.path).unwrap();
    f.set_len(64 * MIB + 100).unwrap();
    let l = img.check(&[Provider::Aws]);
    assert_eq!(
        status(&l, "size-sector"),
        (
            Status::Fail,
            "size 67108964 is not a multiple of 512 bytes (100 bytes over): no cloud imports it and the GPT has no last LBA".into()
        )
    );
    assert_eq!(not_ready(&l), ["aws-uefi", "aws-bios"]);
}

#[test]
fn missing_kernel_fails_every_path() {
    if !tools() {
        return;
    }
    let img = default_img();
    common::run(Command::new("mdel").args(["-i", &img.esp(), "::/boot/capos-kernel.elf"]));
    let l = img.check(&[]);
    assert_eq!(
        status(&l, "kernel"),
        (
            Status::Fail,
            format!("/limine.conf boots /boot/capos-kernel.elf: /boot/capos-kernel.elf is missing (no capos-kernel.elf){N8}")
        )
    );
    assert_eq!(not_ready(&l).len(), 6);
}

#[test]
fn missing_limine_config_fails_every_path() {
    if !tools() {
        return;
    }
    let img = default_img();
    common::run(Command::new("mdel").args(["-i", &img.esp(), "::/limine.conf"]));
    let l = img.check(&[]);
    let (s, m) = status(&l, "kernel");
    assert_eq!(s, Status::Fail);
    assert_eq!(
        m,
        "Limine UEFI and BIOS: no limine.conf on FAT partition(s) 2 (searched /limine.conf, /limine/limine.conf, /boot/limine.conf, /boot/limine/limine.conf, /EFI/BOOT/limine.conf, /limine.cfg, /limine/limine.cfg, /boot/limine.cfg, /boot/limine/limine.cfg, /EFI/BOOT/limine.cfg, the 8.x search order (version unread)): Limine stops with \"config file not found\""
    );
    assert_eq!(not_ready(&l).len(), 6);
}

#[test]
fn azure_sizes() {
    if !tools() {
        return;
    }
    // Not a whole MiB: Azure needs it grown (pass, with the size).
    let l = build(64 * MIB + 512, 40, 32).check(&[Provider::Azure]);
    assert_eq!(
        status(&l, "size:azure"),
        (
            Status::Pass,
            "67109376 bytes is not a whole MiB, which Azure requires; `cloudimg package --azure` grows it to 65 MiB (68157440 bytes) and moves the backup GPT".into()
        )
    );
    assert!(l.get("size:gcp").is_none(), "only the clouds asked for");
    // Under 20 MiB: Azure refuses it; the other clouds do not care.
    let l = build(16 * MIB, 2, 12).check(&[]);
    assert_eq!(
        status(&l, "size:azure"),
        (
            Status::Fail,
            "16777216 bytes is outside Azure's range for uploaded disks, 20 MiB ..= 32 TiB".into()
        )
    );
    assert_eq!(not_ready(&l), ["azure-gen2", "azure-gen1"]);
    assert_eq!(
        status(&l, "size:gcp").1,
        "16777216 bytes is not a whole GiB; cloudimg package grows it to 1 GiB (1073741824 bytes) and moves the backup GPT"
    );
}

#[test]
fn no_esp_fails_uefi_and_cannot_tell_the_kernel() {
    if !tools() {
        return;
    }
    let img = default_img();
    common::run(Command::new("sgdisk").args(["-t", "2:8300"]).arg(&img.path));
    let l = img.check(&[]);
    assert_eq!(status(&l, "esp").0, Status::Fail);
    assert!(l.get("efi-loader").is_none());
    // BIOS Limine still reads /limine.conf from the FAT partition.
    assert_eq!(status(&l, "kernel:uefi").0, Status::Warn);
    assert_eq!(status(&l, "kernel:bios").0, Status::Pass);
    assert_eq!(not_ready(&l), UEFI);
}

#[test]
fn hybrid_mbr_warns_naming_its_entries() {
    if !tools() {
        return;
    }
    let img = default_img();
    common::run(Command::new("sgdisk").args(["-h", "2"]).arg(&img.path));
    let l = img.check(&[]);
    let (s, m) = status(&l, "mbr");
    assert_eq!(s, Status::Warn);
    assert!(m.starts_with("hybrid MBR: besides the 0xEE entry"), "{m}");
    assert!(m.contains("LBA 4096+81920"), "{m}");
}

#[test]
fn looping_fat_chain_is_bounded() {
    if !tools() {
        return;
    }
    let img = default_img();
    // Point every FAT32 entry of the first FAT at cluster 3: any chain
    // through it loops. The check must end and report, not hang.
    let d = RawFile::open(&img.path).unwrap();
    let mut bs = [0u8; 512];
    use cloudimg_disk::VirtualDisk;
    d.read_at(&mut bs, ESP_FIRST_LBA * 512).unwrap();
    let reserved = u64::from(u16::from_le_bytes([bs[14], bs[15]]));
    let fat = ESP_FIRST_LBA * 512 + reserved * 512;
    let loops: Vec<u8> = (0..256u32).flat_map(|_| 3u32.to_le_bytes()).collect();
    img.write_at(&loops, fat + 8);
    let l = img.check(&[]);
    assert_eq!(
        status(&l, "efi-loader"),
        (
            Status::Fail,
            "not on the ESP (a cluster chain loops back to cluster 3): UEFI firmware has nothing to boot from this disk".into()
        )
    );
}

#[test]
fn paths_of_the_disk_are_only_read() {
    if !tools() {
        return;
    }
    let img = default_img();
    let before = fs::read(&img.path).unwrap();
    img.check(&[]);
    assert!(fs::read(&img.path).unwrap() == before);
}

// ---------------------------------------------------------------------
// Real Limine images: the host tool `limine` compiled from the corpus's
// limine.c (8.2.0 and 10.4.0), partitions by sgdisk, FAT by mkfs.fat,
// files by mtools, Limine's own BOOTX64.EFI and limine-bios.sys. Where
// the host tool says where it put stage 2, that is the oracle.
// ---------------------------------------------------------------------

mod real_limine {
    use super::*;

    /// First LBA of the ESP in both layouts.
    const ESP_LBA: u64 = 2048;
    /// capOS's disk: 256 MiB, one 128 MiB ESP at 1 MiB.
    const DISK: u64 = 256 * MIB;

    fn tools() -> bool {
        super::tools() && common::require_tool("cc") && common::require_tool("mmd")
    }

    /// The corpus folder of a release.
    fn release(v: &str) -> Option<PathBuf> {
        common::corpus(&format!("limine/limine-{v}/limine.c"))
            .map(|p| p.parent().unwrap().to_path_buf())
    }

    /// The host tool of release `v`, compiled once (testkit's
    /// `limine_release`: `cc -O2 -std=c99 limine.c`, as the corpus README
    /// says).
    fn host_tool(v: &'static str) -> PathBuf {
        cloudimg_testkit::limine_release(v)
            .expect("the release was found by the caller")
            .join("limine")
    }

    struct Limg {
        _dir: tempfile::TempDir,
        path: PathBuf,
        /// What `limine bios-install` printed (stderr).
        install_log: String,
    }

    impl Limg {
        fn esp(&self) -> String {
            format!("{}@@{}", self.path.display(), ESP_LBA * 512)
        }
        fn check(&self, clouds: &[Provider]) -> Checklist {
            check(&RawFile::open(&self.path).unwrap(), clouds).unwrap()
        }
        fn put(&self, bytes: &[u8], to: &str) {
            let f = self._dir.path().join("put.tmp");
            fs::write(&f, bytes).unwrap();
            common::run(
                Command::new("mcopy")
                    .args(["-o", "-i", &self.esp()])
                    .arg(&f)
                    .arg(format!("::{to}")),
            );
        }
    }

    /// A capOS-style Limine image of release `v`: 256 MiB GPT, a 128 MiB
    /// FAT32 ESP at LBA 2048 (and for 10.x a BIOS boot partition at LBA
    /// 40-2047 first), BOOTX64.EFI, /boot/limine/limine-bios.sys,
    /// /boot/limine/limine.conf booting /boot/capos.elf, then
    /// `limine bios-install`.
    fn build(v: &'static str) -> Limg {
        build_with(v, &[])
    }

    /// [`build`], running `sgdisk EXTRA IMAGE` before `bios-install`.
    fn build_with(v: &'static str, extra: &[&str]) -> Limg {
        build_sized(v, DISK, extra)
    }

    /// [`build_with`] on a disk of `size` bytes.
    fn build_sized(v: &'static str, size: u64, extra: &[&str]) -> Limg {
        let src = release(v).unwrap();
        let tool = host_tool(v);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("limine.raw");
        File::create(&path).unwrap().set_len(size).unwrap();
        let mut sg = Command::new("sgdisk");
        if v.starts_with("10.") {
            sg.args(["-a", "1", "-n", "1:40:2047", "-t", "1:EF02", "-a", "2048"]);
            sg.args(["-n", "2:2048:+128M", "-t", "2:EF00"]);
        } else {
            sg.args(["-n", "1:2048:+128M", "-t", "1:EF00"]);
        }
        common::run(sg.arg(&path));
        common::run(
            Command::new("mkfs.fat")
                .args(["-F", "32", "-i", "12345678", "--offset", "2048"])
                .arg(&path)
                .arg((128 * 1024).to_string()),
        );
        let key = if v.starts_with("10.") {
            "path"
        } else {
            "kernel_path"
        };
        let img = Limg {
            _dir: dir,
            path,
            install_log: String::new(),
        };
        let esp = img.esp();
        common::run(Command::new("mmd").args([
            "-i",
            &esp,
            "::/EFI",
            "::/EFI/BOOT",
            "::/boot",
            "::/boot/limine",
        ]));
        img.put(
            &fs::read(src.join("BOOTX64.EFI")).unwrap(),
            "/EFI/BOOT/BOOTX64.EFI",
        );
        img.put(
            &fs::read(src.join("limine-bios.sys")).unwrap(),
            "/boot/limine/limine-bios.sys",
        );
        img.put(
            format!("timeout: 0\nserial: yes\n\n/capOS\n    protocol: multiboot2\n    {key}: boot():/boot/capos.elf\n").as_bytes(),
            "/boot/limine/limine.conf",
        );
        img.put(&[0x7F; 7000], "/boot/capos.elf");
        if !extra.is_empty() {
            common::run(Command::new("sgdisk").args(extra).arg(&img.path));
        }
        let out = Command::new(&tool)
            .arg("bios-install")
            .arg(&img.path)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        Limg {
            install_log: String::from_utf8_lossy(&out.stderr).into_owned(),
            ..img
        }
    }

    /// The byte offsets the host tool says it wrote stage 2 at: "Stage 2
    /// to be located at 0xA and 0xB." (8.2.0) or "... at byte offset 0xA."
    /// (10.4.0).
    fn logged_stage2(log: &str) -> Vec<u64> {
        let line = log
            .lines()
            .find(|l| l.starts_with("Stage 2 to be located at"))
            .unwrap_or_else(|| panic!("{log}"));
        line.split([' ', '.'])
            .filter_map(|w| w.strip_prefix("0x"))
            .map(|h| u64::from_str_radix(h, 16).unwrap())
            .collect()
    }

    fn msg(l: &Checklist, id: &str) -> String {
        status(l, id).1
    }

    /// The MBR code as shipped: the first 512 bytes of the C array in
    /// `limine-bios-hdd.h` (what `bios-install` writes to LBA 0).
    fn shipped_mbr(v: &str) -> Option<[u8; 512]> {
        let h = fs::read_to_string(common::corpus(&format!(
            "limine/limine-{v}/limine-bios-hdd.h"
        ))?)
        .unwrap();
        let body = &h[h.find('{').unwrap() + 1..];
        let bytes: Vec<u8> = body
            .split(',')
            .filter_map(|w| w.trim().strip_prefix("0x"))
            .take(512)
            .map(|x| u8::from_str_radix(x, 16).unwrap())
            .collect();
        Some(bytes.try_into().unwrap())
    }

    #[test]
    fn shipped_mbr_code_is_recognised_with_its_family() {
        use cloudimg_disk::check::limine::{recognise, Family, Stage2};
        for (v, family) in [("8.2.0", Family::UpTo9), ("10.4.0", Family::From10)] {
            let Some(mbr) = shipped_mbr(v) else { return };
            let m = recognise(&mbr).unwrap_or_else(|| panic!("{v} not recognised"));
            assert_eq!(m.family, family, "{v}");
            match (family, m.stage2) {
                (Family::UpTo9, Stage2::Halves(_)) | (Family::From10, Stage2::Single(_)) => {}
                other => panic!("{v}: {other:?}"),
            }
            // Not from a fallback guess: the code itself was matched.
            assert!(
                m.evidence.starts_with("`mov di, 0x7DA"),
                "{v}: {}",
                m.evidence
            );
        }
    }

    #[test]
    fn limine_8_capos_layout_is_named_and_ready() {
        if !tools() || release("8.2.0").is_none() {
            return;
        }
        let img = build("8.2.0");
        let at = logged_stage2(&img.install_log);
        assert_eq!(at.len(), 2, "{}", img.install_log);
        let l = img.check(&[]);
        for c in &l.checks {
            assert_eq!(c.status, Status::Pass, "{c:?}");
        }
        assert!(l.ready());
        assert_eq!(
            msg(&l, "bios-boot-code"),
            "Limine stage 1 (EB 3C 90 \"LIMINE  \"), 9.x-or-earlier layout (`mov di, 0x7DA8`: two stage-2 sizes and locations at 0x1A4); limine-bios.sys is Limine 8.2.0"
        );
        let s2 = msg(&l, "bios-stage2");
        assert!(
            s2.starts_with("two halves (9.x or earlier layout): half A ("),
            "{s2}"
        );
        for a in &at {
            assert!(s2.contains(&format!(" bytes at byte {a}, ")), "{a}: {s2}");
        }
        assert_eq!(
            msg(&l, "bios-stage3"),
            "/boot/limine/limine-bios.sys on partition 1, 209492 bytes, Limine 8.2.0"
        );
        assert_eq!(
            msg(&l, "kernel"),
            "/boot/limine/limine.conf boots /boot/capos.elf (7000 bytes) (Limine UEFI and BIOS read /boot/limine/limine.conf on partition 1: the first found in Limine 8.2.0's search order)"
        );
        let r = l.limine.as_ref().unwrap();
        assert_eq!(r.uefi_version.unwrap().to_string(), "8.2.0");
        assert_eq!(r.bios_version.unwrap().to_string(), "8.2.0");
        assert_eq!(
            r.stage2.iter().map(|b| b.offset).collect::<Vec<_>>(),
            at,
            "the report's stage 2 bytes are where the host tool put them"
        );
        assert!(
            r.stage2.iter().all(|b| b.partition.is_none()),
            "outside the partitions"
        );
        assert_eq!(
            r.uefi_config.as_deref(),
            Some("partition 1: /boot/limine/limine.conf")
        );
        // sgdisk agrees the shrunk GPT is sound.
        assert!(common::run(Command::new("sgdisk").arg("-v").arg(&img.path))
            .contains("No problems found"));
    }

    #[test]
    fn limine_10_with_a_bios_boot_partition_is_named_and_ready() {
        if !tools() || release("10.4.0").is_none() {
            return;
        }
        let img = build("10.4.0");
        let at = logged_stage2(&img.install_log);
        assert_eq!(at, [40 * 512], "{}", img.install_log);
        let l = img.check(&[]);
        for c in &l.checks {
            assert_eq!(c.status, Status::Pass, "{c:?}");
        }
        assert!(l.ready());
        assert!(l.verdicts.iter().all(|v| v.warnings.is_empty()));
        assert_eq!(
            msg(&l, "bios-boot-code"),
            "Limine stage 1 (EB 3C 90 \"LIMINE  \"), 10.x-or-later layout (`mov di, 0x7DA4`: one stage-2 location at 0x1A4); limine-bios.sys is Limine 10.4.0"
        );
        assert_eq!(
            msg(&l, "bios-stage2"),
            "one piece (10.x or later layout): stage 2 (32256 bytes at byte 20480, LBA 40-102) in BIOS boot partition 1; present, inside the disk, clear of the partitions and GPT areas"
        );
        assert_eq!(
            msg(&l, "alignment"),
            "the other 1 partition(s) start on a 1 MiB boundary; BIOS boot partition 1 at LBA 40 lies inside the first MiB and needs no alignment"
        );
        assert_eq!(
            msg(&l, "kernel"),
            "/boot/limine/limine.conf boots /boot/capos.elf (7000 bytes) (Limine UEFI and BIOS read /boot/limine/limine.conf on partition 2: the first found in Limine 10.4.0's search order)"
        );
        let r = l.limine.as_ref().unwrap();
        assert_eq!(r.uefi_version.unwrap().to_string(), "10.4.0");
        assert_eq!(
            r.stage3.as_deref(),
            Some("partition 2: /boot/limine/limine-bios.sys")
        );
    }

    /// The case: a good /boot/limine/limine.conf and a second
    /// /EFI/BOOT/limine.conf naming a missing kernel. Limine 10.4.0 UEFI
    /// reads the one next to BOOTX64.EFI (measured: corpus README); BIOS
    /// reads /boot/limine/limine.conf.
    #[test]
    fn limine_10_uefi_reads_the_config_next_to_its_loader() {
        if !tools() || release("10.4.0").is_none() {
            return;
        }
        let img = build("10.4.0");
        img.put(
            b"timeout: 0\n\n/other\n    protocol: multiboot2\n    path: boot():/boot/missing.elf\n",
            "/EFI/BOOT/limine.conf",
        );
        let l = img.check(&[]);
        assert!(l.get("kernel").is_none());
        assert_eq!(
            status(&l, "kernel:uefi"),
            (
                Status::Fail,
                "/EFI/BOOT/limine.conf boots /boot/missing.elf: /boot/missing.elf is missing (no missing.elf) (Limine UEFI reads /EFI/BOOT/limine.conf on partition 2: the first found in Limine 10.4.0's search order; BIOS reads /boot/limine/limine.conf on partition 2 instead)".into()
            )
        );
        assert_eq!(status(&l, "kernel:bios").0, Status::Pass);
        assert_eq!(not_ready(&l), UEFI);
        let r = l.limine.as_ref().unwrap();
        assert_eq!(
            r.uefi_config.as_deref(),
            Some("partition 2: /EFI/BOOT/limine.conf")
        );
        assert_eq!(
            r.bios_config.as_deref(),
            Some("partition 2: /boot/limine/limine.conf")
        );
    }

    /// Limine 8.2.0 reads the first of /limine.conf ... /boot/limine/
    /// limine.conf on both paths: a /limine.conf shadows the good one
    /// everywhere.
    #[test]
    fn limine_8_root_config_shadows_boot_limine() {
        if !tools() || release("8.2.0").is_none() {
            return;
        }
        let img = build("8.2.0");
        img.put(
            b"timeout: 0\n\n/other\n    protocol: multiboot2\n    kernel_path: boot():/gone.elf\n",
            "/limine.conf",
        );
        let l = img.check(&[Provider::Gcp]);
        let (s, m) = status(&l, "kernel");
        assert_eq!(s, Status::Fail);
        assert!(
            m.starts_with("/limine.conf boots /gone.elf: /gone.elf is missing"),
            "{m}"
        );
        assert_eq!(not_ready(&l), ["gcp-uefi", "gcp-bios"]);
    }

    /// capOS's layout with a hybrid MBR (made before `bios-install`, which
    /// keeps the MBR's table): only the `mbr` check warns.
    #[test]
    fn limine_8_with_a_hybrid_mbr_is_ready() {
        if !tools() || release("8.2.0").is_none() {
            return;
        }
        let img = build_with("8.2.0", &["-h", "1"]);
        let l = img.check(&[]);
        assert!(l.ready());
        for c in &l.checks {
            let want = if c.id == "mbr" {
                Status::Warn
            } else {
                Status::Pass
            };
            assert_eq!(c.status, want, "{c:?}");
        }
        assert!(msg(&l, "mbr").starts_with(
            "hybrid MBR: besides the 0xEE entry #1 it has #2 type 0xef LBA 2048+262144"
        ));
        assert!(msg(&l, "bios-stage2").starts_with("two halves (9.x or earlier layout)"));
    }

    /// 8.2.0 knows no `path:` key (booted: "KERNEL_PATH not specified").
    #[test]
    fn limine_8_refuses_the_10x_path_key() {
        if !tools() || release("8.2.0").is_none() {
            return;
        }
        let img = build("8.2.0");
        img.put(
            b"timeout: 0\n\n/capOS\n    protocol: multiboot2\n    path: boot():/boot/capos.elf\n",
            "/boot/limine/limine.conf",
        );
        let l = img.check(&[]);
        assert_eq!(
            status(&l, "kernel"),
            (
                Status::Fail,
                "/boot/limine/limine.conf names its kernel with `path:`, which Limine 8.2.0 does not know (its key is `kernel_path:`): it stops with \"KERNEL_PATH not specified\" (Limine UEFI and BIOS read it from partition 1)".into()
            )
        );
        assert_eq!(not_ready(&l).len(), 6);
    }

    /// The pre-8.x `limine.cfg` still boots with 8.2.0, after a warning
    /// and a 20 s wait (seen on its serial console): a warning.
    #[test]
    fn limine_8_old_cfg_warns() {
        if !tools() || release("8.2.0").is_none() {
            return;
        }
        let img = build("8.2.0");
        common::run(Command::new("mdel").args(["-i", &img.esp(), "::/boot/limine/limine.conf"]));
        img.put(
            b"TIMEOUT=0\n:capOS\nPROTOCOL=multiboot2\nKERNEL_PATH=boot:///boot/capos.elf\n",
            "/boot/limine/limine.cfg",
        );
        let l = img.check(&[]);
        let (s, m) = status(&l, "kernel");
        assert_eq!(s, Status::Warn);
        assert_eq!(
            m,
            "/boot/limine/limine.cfg boots /boot/capos.elf (7000 bytes) (Limine UEFI and BIOS read /boot/limine/limine.cfg on partition 1: the first found in Limine 8.2.0's search order); it is a limine.cfg: Limine 8.x warns about the old format and waits 20 s on every boot (later releases may not read it at all)"
        );
        assert!(l.ready());
    }

    /// `truncate` a few sectors off, then `sgdisk -e`: the stock tools
    /// call the GPT sound, but half B of stage 2 is cut off and under the
    /// new backup header.
    #[test]
    fn limine_8_shrunk_with_sgdisk_loses_stage2() {
        if !tools() || release("8.2.0").is_none() {
            return;
        }
        let img = build("8.2.0");
        let f = OpenOptions::new().write(true).open(&img.path).unwrap();
        f.set_len(DISK - 5 * 512).unwrap();
        drop(f);
        common::run(Command::new("sgdisk").arg("-e").arg(&img.path));
        assert!(common::run(Command::new("sgdisk").arg("-v").arg(&img.path))
            .contains("No problems found"));
        let l = img.check(&[]);
        let (s, m) = status(&l, "bios-stage2");
        assert_eq!(s, Status::Fail);
        assert_eq!(
            m,
            "stage 2 is damaged or misplaced (two halves, 9.x or earlier layout): half B (10240 bytes at byte 268424704, LBA 524267-524286): is not inside the disk's 524283 sectors after the MBR, overlaps the backup GPT header (LBA 524282)"
        );
        assert_eq!(not_ready(&l), BIOS);
    }

    /// Growing by a few sectors, then `sgdisk -e`: the new backup array
    /// (its 44 entries at LBA 524260-524270) lands on half B.
    #[test]
    fn limine_8_grown_with_sgdisk_overwrites_stage2() {
        if !tools() || release("8.2.0").is_none() {
            return;
        }
        let img = build("8.2.0");
        let f = OpenOptions::new().write(true).open(&img.path).unwrap();
        f.set_len(DISK + 5 * 512).unwrap();
        drop(f);
        common::run(Command::new("sgdisk").arg("-e").arg(&img.path));
        let l = img.check(&[Provider::Azure]);
        let (s, m) = status(&l, "bios-stage2");
        assert_eq!(s, Status::Fail);
        assert!(
            m.starts_with("stage 2 is damaged or misplaced (two halves, 9.x or earlier layout): half B (10240 bytes at byte 268424704, LBA 524267-524286): overlaps the backup GPT array (LBA "),
            "{m}"
        );
        assert!(m.contains("has an all-zero sector at LBA "), "{m}");
        assert_eq!(not_ready(&l), ["azure-gen1"]);
    }

    /// Installed on a disk 5 sectors short of a MiB, Limine 8.x puts half
    /// B where a backup GPT at the next MiB would go: `check` says so for
    /// Azure (a warning: `package` grows past it), names the LBAs, and
    /// agrees with the grow planner; GCP's GiB is clear of it.
    #[test]
    fn limine_8_short_of_a_mib_explains_the_growth() {
        if !tools() || release("8.2.0").is_none() {
            return;
        }
        let img = build_sized("8.2.0", DISK - 5 * 512, &[]);
        let raw = RawFile::open(&img.path).unwrap();
        let plan = cloudimg_disk::layout::gpt::plan_growth(&raw, MIB).unwrap();
        assert_eq!(plan.to, DISK + MIB, "{plan:?}");
        assert_eq!(plan.skipped.len(), 1, "{plan:?}");
        let [first, last] = plan.skipped[0].foreign_lbas[0];
        let l = img.check(&[Provider::Azure, Provider::Gcp]);
        assert!(l.ready(), "{l:?}");
        let (s, m) = status(&l, "size:azure");
        assert_eq!(s, Status::Warn);
        assert_eq!(
            m,
            format!(
                "268432896 bytes is not a whole MiB, and a backup GPT at 256 MiB would cover LBAs {first}-{last}, which hold Limine's BIOS stage 2 (its MBR says so): `truncate -s 256M` + `sgdisk -e` would overwrite it and break BIOS boot; cloudimg package grows it to 257 MiB instead (269484032 bytes), leaving those bytes as they are"
            )
        );
        assert_eq!(status(&l, "size:gcp").0, Status::Pass);
        assert_eq!(status(&l, "bios-stage2").0, Status::Pass);
    }

    #[test]
    fn limine_10_zeroed_stage2_fails_bios_paths() {
        if !tools() || release("10.4.0").is_none() {
            return;
        }
        let img = build("10.4.0");
        let f = OpenOptions::new().write(true).open(&img.path).unwrap();
        f.write_all_at(&[0u8; 512], 40 * 512).unwrap();
        let l = img.check(&[Provider::Aws]);
        assert_eq!(
            status(&l, "bios-stage2"),
            (
                Status::Fail,
                "stage 2 is damaged or misplaced (one piece, 10.x or later layout): stage 2 (32256 bytes at byte 20480, LBA 40-102): has an all-zero sector at LBA 40 (Limine's stage 2 has none): it was overwritten".into()
            )
        );
        assert_eq!(not_ready(&l), ["aws-bios"]);
    }

    #[test]
    fn missing_limine_bios_sys_fails_bios_paths() {
        if !tools() || release("10.4.0").is_none() {
            return;
        }
        let img = build("10.4.0");
        common::run(Command::new("mdel").args([
            "-i",
            &img.esp(),
            "::/boot/limine/limine-bios.sys",
        ]));
        let l = img.check(&[]);
        assert_eq!(
            status(&l, "bios-stage3"),
            (
                Status::Fail,
                "no limine-bios.sys in /, /limine, /boot or /boot/limine of any FAT partition (partition 1 not FAT, not read): Limine's stage 2 stops with \"Stage 3 file not found\"".into()
            )
        );
        assert_eq!(not_ready(&l), BIOS);
    }

    /// Two copies of limine-bios.sys on one partition: stage 2 takes the
    /// first present in its release's order (measured by booting: 8.2.0
    /// tries /, /limine, /boot, /boot/limine; 10.4.0 the reverse) and
    /// stops on a bad one.
    #[test]
    fn stage3_is_taken_in_the_release_order() {
        if !tools() || release("10.4.0").is_none() || release("8.2.0").is_none() {
            return;
        }
        let sys = |v| fs::read(release(v).unwrap().join("limine-bios.sys")).unwrap();
        let img = build("10.4.0");
        img.put(&sys("8.2.0"), "/limine-bios.sys");
        let l = img.check(&[Provider::Gcp]);
        assert_eq!(
            status(&l, "bios-stage3"),
            (
                Status::Pass,
                "/boot/limine/limine-bios.sys on partition 2, 214276 bytes, Limine 10.4.0 (taken before /limine-bios.sys, by 10.3+'s order)".into()
            )
        );
        let img = build("8.2.0");
        img.put(&sys("10.4.0"), "/limine-bios.sys");
        let l = img.check(&[Provider::Gcp]);
        let (s, m) = status(&l, "bios-stage3");
        assert_eq!(s, Status::Fail);
        assert!(m.starts_with("/limine-bios.sys on partition 1 is Limine 10.4.0, but the MBR code is the 9.x or earlier layout"), "{m}");
        assert_eq!(not_ready(&l), ["gcp-bios"]);
    }

    /// Stage 3 of another release than the MBR code: stage 2 refuses it.
    #[test]
    fn limine_bios_sys_of_another_family_fails() {
        if !tools() || release("10.4.0").is_none() || release("8.2.0").is_none() {
            return;
        }
        let img = build("10.4.0");
        img.put(
            &fs::read(release("8.2.0").unwrap().join("limine-bios.sys")).unwrap(),
            "/boot/limine/limine-bios.sys",
        );
        let l = img.check(&[Provider::Gcp]);
        let (s, m) = status(&l, "bios-stage3");
        assert_eq!(s, Status::Fail);
        assert!(m.starts_with("/boot/limine/limine-bios.sys on partition 2 is Limine 8.2.0, but the MBR code is the 10.x or later layout"), "{m}");
        assert_eq!(not_ready(&l), ["gcp-bios"]);
    }
}
