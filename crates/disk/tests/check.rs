//! `check`: a Limine-style hybrid image made with independent tools
//! (GPT by cloudimg, FAT by mkfs.fat, files by mtools, partitions changed
//! by sgdisk), then broken in exactly one way per test; each test asserts
//! the check id, its status and message, and which paths are ready.

mod common;

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::process::Command;

use cloudimg_disk::check::{check, Checklist, Cloud, Status, MIB};
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
    fn check(&self, clouds: &[Cloud]) -> Checklist {
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
        "timeout: 0\nserial: yes\n\n/capOS\n    protocol: multiboot2\n    path: boot():/boot/capos-kernel.elf\n",
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
        let l = build(size, esp, fat).check(&[Cloud::Aws]);
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
    fs::write(&conf, "/x\nPATH: boot():/BOOT/CAPOS-KERNEL.ELF\n").unwrap();
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
    let l = img.check(&[Cloud::Gcp]);
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
    let l = img.check(&[Cloud::Azure]);
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
    let l = img.check(&[Cloud::Aws]);
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
    let l = build(64 * MIB + 512, 40, 32).check(&[Cloud::Azure]);
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
