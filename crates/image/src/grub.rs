//! GRUB for both firmware paths, made with Debian's `grub-mkimage` and
//! installed by cloudimg itself the way `grub-bios-setup` (util/setup.c)
//! does for a GPT disk with a BIOS boot partition:
//!
//! * `boot.img` goes into bytes 0..440 of the MBR (the disk signature,
//!   partition table and 0x55AA are kept); its BPB area (3..0x5A) is
//!   taken from the sector it replaces; the 64-bit LBA of core.img's
//!   first sector is written at 0x5C; the boot drive byte at 0x64 is
//!   0xFF (use the drive the BIOS booted from); and the two-byte jump at
//!   0x66 that skips the drive check is replaced by NOPs, as setup.c
//!   does for hard disks (buggy BIOSes pass 0 or 1 instead of 0x80).
//! * `core.img` is written to the BIOS boot partition; its first sector
//!   (diskboot.img) ends with a 12-byte blocklist {start: u64, len: u16,
//!   segment: u16} at offset 500, set to the LBA of core.img's second
//!   sector, the number of sectors after the first, and segment 0x820
//!   (0x800 + 512/16: right after the first sector).
//!   GRUB's optional Reed-Solomon redundancy is not added (its length
//!   field stays 0, which the loader accepts).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};

/// Offset of the 64-bit LBA of core.img in boot.img.
pub const BOOT_KERNEL_SECTOR: usize = 0x5C;
/// Offset of the boot drive byte in boot.img.
pub const BOOT_DRIVE: usize = 0x64;
/// Offset of the drive-check jump in boot.img.
pub const BOOT_DRIVE_CHECK: usize = 0x66;
/// Start and end of the BIOS parameter block area in boot.img.
pub const BOOT_BPB: std::ops::Range<usize> = 0x03..0x5A;
/// Bytes of MBR boot code (the disk signature starts at 0x1B8).
pub const MBR_CODE_SIZE: usize = 0x1B8;
/// Offset of diskboot.img's first blocklist entry in core.img.
pub const CORE_FIRST_BLOCKLIST: usize = 512 - 12;
/// Segment where the rest of core.img is loaded (0x800 + 0x20).
pub const CORE_LOAD_SEGMENT: u16 = 0x820;

/// GRUB modules built into both images.
pub const COMMON_MODULES: &[&str] = &[
    "part_gpt",
    "part_msdos",
    "fat",
    "multiboot2",
    "serial",
    "terminal",
    "terminfo",
    "normal",
    "configfile",
    "search",
    "search_fs_uuid",
    "search_fs_file",
    "echo",
    "test",
    "boot",
    "halt",
    "reboot",
];

/// Where GRUB's platform directories are.
#[derive(Debug, Clone)]
pub struct GrubPaths {
    /// `grub-mkimage`.
    pub mkimage: PathBuf,
    /// Directory holding `x86_64-efi/` and `i386-pc/` (Debian:
    /// /usr/lib/grub).
    pub lib_dir: PathBuf,
}

impl Default for GrubPaths {
    fn default() -> Self {
        GrubPaths {
            mkimage: PathBuf::from("grub-mkimage"),
            lib_dir: PathBuf::from("/usr/lib/grub"),
        }
    }
}

/// The GRUB pieces of one image.
#[derive(Debug, Clone)]
pub struct GrubImages {
    /// `/EFI/BOOT/BOOTX64.EFI`.
    pub efi: Vec<u8>,
    /// The i386-pc `boot.img` (512 bytes, unpatched).
    pub boot_img: Vec<u8>,
    /// The i386-pc `core.img` (unpatched).
    pub core_img: Vec<u8>,
}

/// The early config embedded in both images: put GRUB's console on COM1
/// at once (so that even a failure to find the ESP shows in a serial
/// log), find the ESP by its FAT volume id and look for grub.cfg in
/// /EFI/BOOT there.
pub fn early_config(fs_uuid: &str) -> String {
    format!(
        "serial --unit=0 --speed=115200 --word=8 --parity=no --stop=1\n\
         terminal_input serial console\n\
         terminal_output serial console\n\
         search --no-floppy --fs-uuid --set=root {fs_uuid}\n\
         set prefix=($root)/EFI/BOOT\n"
    )
}

fn mkimage(
    paths: &GrubPaths,
    format: &str,
    platform: &str,
    cfg: &Path,
    out: &Path,
    extra: &[&str],
) -> Result<Vec<u8>> {
    let dir = paths.lib_dir.join(platform);
    let mut cmd = Command::new(&paths.mkimage);
    cmd.arg("-O")
        .arg(format)
        .arg("-d")
        .arg(&dir)
        .arg("-o")
        .arg(out)
        .arg("-p")
        .arg("/EFI/BOOT")
        .arg("-c")
        .arg(cfg)
        .args(extra)
        .args(COMMON_MODULES)
        .env("LC_ALL", "C");
    let tool = paths.mkimage.display().to_string();
    let output = cmd.output().map_err(|e| Error::Tool {
        tool: tool.clone(),
        message: format!("{e} (install grub-common with grub-efi-amd64-bin and grub-pc-bin)"),
    })?;
    if !output.status.success() {
        return Err(Error::Tool {
            tool,
            message: format!(
                "-O {format} failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        });
    }
    std::fs::read(out).map_err(|source| Error::ReadInput {
        path: out.to_path_buf(),
        source,
    })
}

/// Make BOOTX64.EFI and core.img with `early` embedded, and read
/// boot.img.
pub fn make_images(paths: &GrubPaths, early: &str) -> Result<GrubImages> {
    let tmp = tempfile::tempdir().map_err(|e| Error::io("creating a temporary directory", e))?;
    let cfg = tmp.path().join("early.cfg");
    std::fs::write(&cfg, early).map_err(|e| Error::io("writing the early GRUB config", e))?;
    let efi = mkimage(
        paths,
        "x86_64-efi",
        "x86_64-efi",
        &cfg,
        &tmp.path().join("BOOTX64.EFI"),
        &[],
    )?;
    let core_img = mkimage(
        paths,
        "i386-pc",
        "i386-pc",
        &cfg,
        &tmp.path().join("core.img"),
        &["biosdisk"],
    )?;
    let boot_path = paths.lib_dir.join("i386-pc/boot.img");
    let boot_img = std::fs::read(&boot_path).map_err(|source| Error::ReadInput {
        path: boot_path.clone(),
        source,
    })?;
    if boot_img.len() != 512 {
        return Err(Error::Grub(format!(
            "{} is {} bytes, not 512",
            boot_path.display(),
            boot_img.len()
        )));
    }
    if core_img.len() < 1024 {
        return Err(Error::Grub(format!(
            "core.img is only {} bytes",
            core_img.len()
        )));
    }
    Ok(GrubImages {
        efi,
        boot_img,
        core_img,
    })
}

/// Put `boot_img`'s code into `mbr` (a 512-byte sector holding the
/// partition table), pointing it at core.img's first sector `core_lba`.
pub fn install_boot_img(mbr: &mut [u8], boot_img: &[u8], core_lba: u64) -> Result<()> {
    if mbr.len() != 512 || boot_img.len() != 512 {
        return Err(Error::Grub(
            "boot.img and the MBR must both be 512 bytes".into(),
        ));
    }
    let mut code = boot_img[..MBR_CODE_SIZE].to_vec();
    // Keep the BPB area of the sector being replaced (setup.c: "Copy the
    // possible DOS BPB").
    code[BOOT_BPB].copy_from_slice(&mbr[BOOT_BPB]);
    code[BOOT_KERNEL_SECTOR..BOOT_KERNEL_SECTOR + 8].copy_from_slice(&core_lba.to_le_bytes());
    code[BOOT_DRIVE] = 0xFF;
    code[BOOT_DRIVE_CHECK] = 0x90;
    code[BOOT_DRIVE_CHECK + 1] = 0x90;
    mbr[..MBR_CODE_SIZE].copy_from_slice(&code);
    Ok(())
}

/// Patch core.img's first blocklist for a core.img written contiguously
/// from `core_lba`. Returns the patched image padded to whole sectors.
pub fn patch_core_img(core_img: &[u8], core_lba: u64) -> Result<Vec<u8>> {
    let sectors = core_img.len().div_ceil(512);
    let rest = u16::try_from(sectors - 1)
        .map_err(|_| Error::Grub(format!("core.img of {} sectors is too large", sectors)))?;
    let mut img = core_img.to_vec();
    img.resize(sectors * 512, 0);
    let bl = &mut img[CORE_FIRST_BLOCKLIST..512];
    bl[0..8].copy_from_slice(&(core_lba + 1).to_le_bytes());
    bl[8..10].copy_from_slice(&rest.to_le_bytes());
    bl[10..12].copy_from_slice(&CORE_LOAD_SEGMENT.to_le_bytes());
    Ok(img)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_img_patch_keeps_partition_table() {
        let mut mbr = vec![0u8; 512];
        mbr[0x1B8..0x1BC].copy_from_slice(&[1, 2, 3, 4]);
        mbr[0x1BE] = 0xEE;
        mbr[510] = 0x55;
        mbr[511] = 0xAA;
        let boot: Vec<u8> = (0..512).map(|i| (i % 251) as u8 + 1).collect();
        install_boot_img(&mut mbr, &boot, 2048).unwrap();
        assert_eq!(mbr[0..3], boot[0..3]);
        assert!(mbr[3..0x5A].iter().all(|b| *b == 0));
        assert_eq!(mbr[0x5C..0x64], 2048u64.to_le_bytes());
        assert_eq!(mbr[0x64], 0xFF);
        assert_eq!(mbr[0x66..0x68], [0x90, 0x90]);
        assert_eq!(mbr[0x68..0x1B8], boot[0x68..0x1B8]);
        assert_eq!(mbr[0x1B8..0x1BC], [1, 2, 3, 4]);
        assert_eq!(mbr[0x1BE], 0xEE);
        assert_eq!(mbr[510..], [0x55, 0xAA]);
    }

    #[test]
    fn early_config_finds_the_esp_by_uuid() {
        let cfg = early_config("1234-abcd");
        assert!(cfg.starts_with("serial --unit=0 --speed=115200"));
        assert!(cfg.contains(
            "\nsearch --no-floppy --fs-uuid --set=root 1234-abcd\nset prefix=($root)/EFI/BOOT\n"
        ));
    }

    #[test]
    fn core_blocklist_points_after_first_sector() {
        let img = patch_core_img(&vec![0u8; 1500], 2048).unwrap();
        assert_eq!(img.len(), 1536);
        assert_eq!(img[500..508], 2049u64.to_le_bytes());
        assert_eq!(img[508..510], 2u16.to_le_bytes());
        assert_eq!(img[510..512], 0x820u16.to_le_bytes());
    }
}
