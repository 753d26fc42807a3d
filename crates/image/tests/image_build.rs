//! The built image checked by independent tools: sgdisk, fsck.fat,
//! mtools; and byte-for-byte reproducibility.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use cloudimg_image::{build_image, demo_kernel, hybrid, BuiltImage, ImageOptions};

fn build(dir: &Path, name: &str, opts: &ImageOptions) -> BuiltImage {
    build_image(opts, &dir.join(name)).expect("image builds")
}

fn opts() -> ImageOptions {
    ImageOptions {
        source_date_epoch: 1_700_000_000,
        seed: 42,
        cmdline: "console=ttyS0".into(),
        ..ImageOptions::new()
    }
}

/// Copy the ESP's byte range out of the image.
fn extract_esp(img: &BuiltImage, out: &Path) -> PathBuf {
    let bytes = std::fs::read(&img.path).unwrap();
    let esp = &bytes[img.esp.offset() as usize..(img.esp.offset() + img.esp.len()) as usize];
    std::fs::write(out, esp).unwrap();
    out.to_path_buf()
}

#[test]
fn gpt_passes_sgdisk_verify() {
    if !(common::require_grub() && common::require_tool("sgdisk")) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let img = build(dir.path(), "a.raw", &opts());
    let out = common::run(Command::new("sgdisk").arg("-v").arg(&img.path));
    assert!(out.contains("No problems found"), "{out}");
    let table = common::run(Command::new("sgdisk").arg("-p").arg(&img.path));
    assert!(
        table.contains("   1            2048            4095   1024.0 KiB  EF02  BIOS boot"),
        "{table}"
    );
    assert!(
        table.contains("   2            4096          266239   128.0 MiB   EF00  EFI System"),
        "{table}"
    );
    let info = common::run(Command::new("sgdisk").args(["-i", "2"]).arg(&img.path));
    assert!(
        info.contains(&format!("Partition unique GUID: {}", img_guid(&img, 2))),
        "{info}"
    );
    let disk = common::run(Command::new("sgdisk").arg("-p").arg(&img.path));
    assert!(
        disk.contains(&format!("Disk identifier (GUID): {}", img.disk_guid)),
        "{disk}"
    );
}

fn img_guid(img: &BuiltImage, part: u64) -> String {
    let bytes = std::fs::read(&img.path).unwrap();
    let e = 1024 + (part as usize - 1) * 128;
    let mut g = [0u8; 16];
    g.copy_from_slice(&bytes[e + 16..e + 32]);
    cloudimg_disk::layout::Guid(g).to_string()
}

#[test]
fn esp_passes_fsck_and_mtools_find_the_files() {
    if !(common::require_grub()
        && common::require_tool("fsck.fat")
        && common::require_tool("mcopy"))
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let img = build(dir.path(), "a.raw", &opts());
    let esp = extract_esp(&img, &dir.path().join("esp.img"));
    let fsck = common::run(Command::new("fsck.fat").arg("-n").arg("-v").arg(&esp));
    assert!(fsck.contains("2 FATs, 32 bit entries"), "{fsck}");
    assert!(fsck.contains("      4096 hidden sectors"), "{fsck}");
    assert!(
        !fsck
            .to_lowercase()
            .contains("differences between boot sector"),
        "{fsck}"
    );

    let mdir = common::run(Command::new("mdir").args(["-/", "-i"]).arg(&esp).arg("::/"));
    assert!(mdir.contains("BOOTX64  EFI"), "{mdir}");
    assert!(
        mdir.contains(&format!("KERNEL   ELF{:>10}", demo_kernel().len())),
        "{mdir}"
    );
    assert!(mdir.contains("GRUB     CFG"), "{mdir}");
    assert!(
        mdir.contains(&format!(
            "Volume Serial Number is {:04X}-{:04X}",
            img.esp_volume_id >> 16,
            img.esp_volume_id & 0xFFFF
        )),
        "{mdir}"
    );
    assert!(mdir.contains("Volume in drive : is CAPOS-ESP"), "{mdir}");
    assert!(
        mdir.contains("2023-11-14  22:13"),
        "FAT times come from SOURCE_DATE_EPOCH: {mdir}"
    );

    let get = |p: &str| {
        let out = dir.path().join("out");
        let _ = std::fs::remove_file(&out);
        common::run(
            Command::new("mcopy")
                .arg("-i")
                .arg(&esp)
                .arg(format!("::{p}"))
                .arg(&out),
        );
        std::fs::read(&out).unwrap()
    };
    assert_eq!(get(hybrid::KERNEL_PATH), demo_kernel());
    assert_eq!(
        get(hybrid::GRUB_CFG_PATH),
        hybrid::grub_cfg("console=ttyS0").into_bytes()
    );
    let efi = get(hybrid::EFI_LOADER_PATH);
    assert!(efi.starts_with(b"MZ"), "BOOTX64.EFI is a PE image");
    let early = hybrid::fat_uuid(img.esp_volume_id);
    assert!(
        efi.windows(early.len()).any(|w| w == early.as_bytes()),
        "early config names the ESP's UUID"
    );
}

#[test]
fn mbr_and_core_img_are_patched_like_grub_bios_setup() {
    if !common::require_grub() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let img = build(dir.path(), "a.raw", &opts());
    let bytes = std::fs::read(&img.path).unwrap();
    let boot = std::fs::read("/usr/lib/grub/i386-pc/boot.img").unwrap();
    assert_eq!(bytes[..3], boot[..3], "jump kept");
    assert_eq!(bytes[0x5A..0x5C], boot[0x5A..0x5C], "kernel address kept");
    assert_eq!(bytes[0x5C..0x64], 2048u64.to_le_bytes(), "core.img LBA");
    assert_eq!(bytes[0x64], 0xFF, "boot drive: the one the BIOS booted");
    assert_eq!(
        bytes[0x66..0x68],
        [0x90, 0x90],
        "drive check enabled for hard disks"
    );
    assert_eq!(
        bytes[0x68..0x1B8],
        boot[0x68..0x1B8],
        "rest of the boot code"
    );
    assert_eq!(bytes[0x1C2], 0xEE, "protective partition kept");
    assert_eq!(bytes[510..512], [0x55, 0xAA]);
    let core = 2048 * 512;
    assert_eq!(
        bytes[core + 500..core + 508],
        2049u64.to_le_bytes(),
        "blocklist start"
    );
    let len = u16::from_le_bytes([bytes[core + 508], bytes[core + 509]]);
    assert!((100..2047).contains(&len), "blocklist length {len}");
    assert!(
        bytes[core + 512 * (len as usize + 1)..core + 1024 * 1024]
            .iter()
            .all(|b| *b == 0),
        "nothing past core.img"
    );
    assert_eq!(bytes[core + 510..core + 512], 0x820u16.to_le_bytes());
}

#[test]
fn same_inputs_give_identical_bytes() {
    if !common::require_grub() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let a = build(dir.path(), "a.raw", &opts());
    let b = build(dir.path(), "b.raw", &opts());
    let (ba, bb) = (
        std::fs::read(&a.path).unwrap(),
        std::fs::read(&b.path).unwrap(),
    );
    assert!(ba == bb, "two builds differ");
    let c = build(dir.path(), "c.raw", &ImageOptions { seed: 43, ..opts() });
    assert_ne!(a.disk_guid, c.disk_guid);
    assert_ne!(a.esp_volume_id, c.esp_volume_id);
    let d = build(
        dir.path(),
        "d.raw",
        &ImageOptions {
            source_date_epoch: 1_800_000_000,
            ..opts()
        },
    );
    let bd = std::fs::read(&d.path).unwrap();
    assert_eq!(
        a.disk_guid, d.disk_guid,
        "GUIDs follow the seed, not the time"
    );
    assert!(ba != bd, "FAT times follow SOURCE_DATE_EPOCH");
}

#[test]
fn grub_mkimage_output_is_deterministic() {
    if !common::require_grub() {
        return;
    }
    let paths = cloudimg_image::grub::GrubPaths::default();
    let early = cloudimg_image::grub::early_config("1234-abcd");
    let a = cloudimg_image::grub::make_images(&paths, &early).unwrap();
    let b = cloudimg_image::grub::make_images(&paths, &early).unwrap();
    assert!(a.efi == b.efi, "BOOTX64.EFI differs between two runs");
    assert!(
        a.core_img == b.core_img,
        "core.img differs between two runs"
    );
    assert!(
        a.efi.windows(early.len()).any(|w| w == early.as_bytes()),
        "early config embedded"
    );
}

#[test]
fn ten_gib_image_is_sparse_and_quick() {
    if !(common::require_grub() && common::require_tool("sgdisk")) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let start = std::time::Instant::now();
    let img = build(
        dir.path(),
        "big.raw",
        &ImageOptions {
            size: 10 << 30,
            ..opts()
        },
    );
    let took = start.elapsed();
    let meta = std::fs::metadata(&img.path).unwrap();
    assert_eq!(meta.len(), 10 << 30);
    assert!(
        img.bytes_written < 2 << 20,
        "wrote {} bytes",
        img.bytes_written
    );
    assert!(
        meta.blocks() * 512 < 8 << 20,
        "allocated {} bytes",
        meta.blocks() * 512
    );
    assert!(took.as_secs_f64() < 5.0, "took {took:?}");
    let out = common::run(Command::new("sgdisk").arg("-v").arg(&img.path));
    assert!(out.contains("No problems found"), "{out}");
}

#[test]
fn bad_inputs_are_refused_with_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let err = build_image(
        &ImageOptions {
            kernel: b"\x7fELF nothing".to_vec(),
            ..opts()
        },
        &dir.path().join("x.raw"),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid layout: the kernel has no multiboot2 header in its first 32 KiB"
    );
    let err = build_image(
        &ImageOptions {
            size: 1000,
            ..opts()
        },
        &dir.path().join("x.raw"),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid layout: disk size 1000 and ESP size 134217728 must be multiples of 512"
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing left behind"
    );
}
