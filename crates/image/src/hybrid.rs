//! The hybrid BIOS+UEFI GPT layout and the image build.
//!
//! ```text
//! LBA 0          protective MBR with GRUB boot.img code
//! LBA 1..=33     primary GPT header and 128-entry array
//! LBA 2048..4095 partition 1: BIOS boot (GRUB core.img)
//! LBA 4096..     partition 2: EFI system partition (FAT32)
//! ...            holes
//! last 33 LBAs   backup array and header
//! ```

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use cloudimg_disk::layout::gpt::{self, GptSpec, NewPartition};
use cloudimg_disk::layout::{mbr, Guid};
use cloudimg_disk::SECTOR_SIZE;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::esp::{build_esp, EspSpec};
use crate::grub::{self, GrubPaths};

/// First LBA of the BIOS boot partition.
pub const BIOS_BOOT_FIRST_LBA: u64 = 2048;
/// Sectors in the BIOS boot partition (1 MiB).
pub const BIOS_BOOT_SECTORS: u64 = 2048;
/// First LBA of the ESP.
pub const ESP_FIRST_LBA: u64 = BIOS_BOOT_FIRST_LBA + BIOS_BOOT_SECTORS;
/// Path of the kernel on the ESP.
pub const KERNEL_PATH: &str = "/capos/kernel.elf";
/// Path of the GRUB config on the ESP.
pub const GRUB_CFG_PATH: &str = "/EFI/BOOT/grub.cfg";
/// Path of the UEFI loader on the ESP.
pub const EFI_LOADER_PATH: &str = "/EFI/BOOT/BOOTX64.EFI";
/// FAT label of the ESP.
pub const ESP_LABEL: &str = "CAPOS-ESP";
/// SOURCE_DATE_EPOCH used when none is given (1980-01-01T00:00:00Z).
pub const DEFAULT_EPOCH: i64 = 315_532_800;
/// The BIOS boot and EFI system partition types (defined once, in the
/// disk crate).
pub use cloudimg_disk::layout::gpt::{BIOS_BOOT_TYPE, ESP_TYPE};
/// Sectors the backup GPT takes at the end of the disk: the 128-entry
/// array and the header.
pub(crate) const BACKUP_GPT_SECTORS: u64 =
    (gpt::DEFAULT_ENTRIES as u64 * gpt::ENTRY_SIZE as u64).div_ceil(SECTOR_SIZE) + 1;

/// What to build.
#[derive(Debug, Clone)]
pub struct ImageOptions {
    /// Disk size in bytes (a multiple of 512).
    pub size: u64,
    /// ESP size in bytes (a multiple of 512, at least 34 MiB).
    pub esp_size: u64,
    /// The multiboot2 kernel.
    pub kernel: Vec<u8>,
    /// The kernel command line.
    pub cmdline: String,
    /// Time stamped on every FAT entry (Unix seconds).
    pub source_date_epoch: i64,
    /// Seed of the disk and partition GUIDs and FAT volume id.
    pub seed: u64,
    /// Where GRUB is.
    pub grub: GrubPaths,
    /// Whether an existing file at the output path may be replaced
    /// (true here; the CLI sets it only with `--force`). When false the
    /// image is still written under a temporary name and then linked to
    /// its final name only if that name is free.
    pub overwrite: bool,
}

impl ImageOptions {
    /// 256 MiB disk, 128 MiB ESP, demo kernel, empty command line.
    pub fn new() -> Self {
        ImageOptions {
            size: 256 << 20,
            esp_size: 128 << 20,
            kernel: crate::kernel::demo_kernel().to_vec(),
            cmdline: String::new(),
            source_date_epoch: DEFAULT_EPOCH,
            seed: 0,
            grub: GrubPaths::default(),
            overwrite: true,
        }
    }
}

impl Default for ImageOptions {
    fn default() -> Self {
        Self::new()
    }
}

/// A partition as placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionRange {
    /// First LBA.
    pub first_lba: u64,
    /// Last LBA (inclusive).
    pub last_lba: u64,
}

impl PartitionRange {
    /// Byte offset of the first sector.
    pub fn offset(&self) -> u64 {
        self.first_lba * SECTOR_SIZE
    }
    /// Length in bytes.
    pub fn len(&self) -> u64 {
        (self.last_lba + 1 - self.first_lba) * SECTOR_SIZE
    }
    /// Whether the range is empty (never, for a placed partition).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What was built.
#[derive(Debug, Clone)]
pub struct BuiltImage {
    /// The image file.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// The disk GUID.
    pub disk_guid: Guid,
    /// Partition 1.
    pub bios_boot: PartitionRange,
    /// Partition 2.
    pub esp: PartitionRange,
    /// The ESP's FAT volume id.
    pub esp_volume_id: u32,
    /// Bytes actually written (the rest are holes).
    pub bytes_written: u64,
}

fn seeded(seed: u64, what: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"cloudimg-image\0");
    h.update(seed.to_le_bytes());
    h.update(what.as_bytes());
    h.finalize().into()
}

pub(crate) fn seeded_guid(seed: u64, what: &str) -> Guid {
    let h = seeded(seed, what);
    let mut b = [0u8; 16];
    b.copy_from_slice(&h[..16]);
    Guid::v4_from(b)
}

/// The FAT volume id for a seed.
pub fn esp_volume_id(seed: u64) -> u32 {
    let h = seeded(seed, "esp volume id");
    u32::from_le_bytes([h[0], h[1], h[2], h[3]])
}

/// GRUB's spelling of a FAT volume id, as `search --fs-uuid` takes it.
pub fn fat_uuid(volume_id: u32) -> String {
    format!("{:04x}-{:04x}", volume_id >> 16, volume_id & 0xFFFF)
}

/// One command-line word for GRUB's config language: bare when it holds
/// only characters GRUB takes literally, else single-quoted.
fn grub_word(w: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_./:=,+-@%".contains(c);
    if w.chars().all(plain) {
        w.to_string()
    } else {
        format!("'{}'", w.replace('\'', "'\\''"))
    }
}

/// The GRUB config on the ESP: serial console, boot the kernel at once.
///
/// The command line is split on whitespace and each word passed as one
/// GRUB argument; GRUB joins them with single spaces for the multiboot2
/// command line tag (words holding quotes or backslashes reach the
/// kernel backslash-escaped, as GRUB does for every loader).
pub fn grub_cfg(cmdline: &str) -> String {
    let args: String = cmdline
        .split_whitespace()
        .map(|w| format!(" {}", grub_word(w)))
        .collect();
    format!(
        "# capOS boot menu (written by cloudimg)\n\
         serial --unit=0 --speed=115200 --word=8 --parity=no --stop=1\n\
         terminal_input serial\n\
         terminal_output serial\n\
         set timeout=0\n\
         set default=0\n\
         menuentry 'capOS' {{\n\
         \x20   echo 'Loading capOS kernel...'\n\
         \x20   multiboot2 {KERNEL_PATH}{args}\n\
         \x20   boot\n\
         }}\n"
    )
}

/// Where the partitions go for `opts`, or why they do not fit.
pub fn plan(opts: &ImageOptions) -> Result<(PartitionRange, PartitionRange)> {
    if opts.size % SECTOR_SIZE != 0 || opts.esp_size % SECTOR_SIZE != 0 {
        return Err(Error::InvalidLayout(format!(
            "disk size {} and ESP size {} must be multiples of 512",
            opts.size, opts.esp_size
        )));
    }
    let disk_sectors = opts.size / SECTOR_SIZE;
    let esp_sectors = opts.esp_size / SECTOR_SIZE;
    let needed = ESP_FIRST_LBA + esp_sectors + BACKUP_GPT_SECTORS;
    if esp_sectors == 0 || disk_sectors < needed {
        return Err(Error::InvalidLayout(format!(
            "a disk of {} bytes cannot hold a {}-byte ESP at LBA {ESP_FIRST_LBA} (at least {} bytes needed)",
            opts.size,
            opts.esp_size,
            needed * SECTOR_SIZE
        )));
    }
    let bios = PartitionRange {
        first_lba: BIOS_BOOT_FIRST_LBA,
        last_lba: BIOS_BOOT_FIRST_LBA + BIOS_BOOT_SECTORS - 1,
    };
    let esp = PartitionRange {
        first_lba: ESP_FIRST_LBA,
        last_lba: ESP_FIRST_LBA + esp_sectors - 1,
    };
    Ok((bios, esp))
}

/// Build the image at `out` (written under a temporary name, renamed
/// when complete).
pub fn build_image(opts: &ImageOptions, out: &Path) -> Result<BuiltImage> {
    let (bios, esp) = plan(opts)?;
    if !crate::kernel::has_multiboot2_header(&opts.kernel) {
        return Err(Error::InvalidLayout(
            "the kernel has no multiboot2 header in its first 32 KiB".into(),
        ));
    }
    let volume_id = esp_volume_id(opts.seed);
    let images = grub::make_images(&opts.grub, &grub::early_config(&fat_uuid(volume_id)))?;
    let core = grub::patch_core_img(&images.core_img, bios.first_lba)?;
    if core.len() as u64 > bios.len() {
        return Err(Error::Grub(format!(
            "core.img ({} bytes) does not fit the BIOS boot partition",
            core.len()
        )));
    }
    let esp_vol = build_esp(&EspSpec {
        size: esp.len(),
        volume_id,
        label: ESP_LABEL.into(),
        mtime: opts.source_date_epoch,
        hidden_sectors: u32::try_from(esp.first_lba).expect("the ESP starts at a fixed small LBA"),
        files: vec![
            (EFI_LOADER_PATH.into(), images.efi),
            (GRUB_CFG_PATH.into(), grub_cfg(&opts.cmdline).into_bytes()),
            (KERNEL_PATH.into(), opts.kernel.clone()),
        ],
    })?;

    let disk_guid = seeded_guid(opts.seed, "disk guid");
    let mut boot_sector = [0u8; 512];
    grub::install_boot_img(&mut boot_sector, &images.boot_img, bios.first_lba)?;
    let type_guid = |s: &str| s.parse::<Guid>().expect("constant GUID parses");
    let spec = GptSpec {
        boot_code: boot_sector[..mbr::BOOT_CODE_LEN].to_vec(),
        partitions: vec![
            NewPartition {
                type_guid: type_guid(BIOS_BOOT_TYPE),
                unique_guid: seeded_guid(opts.seed, "partition 1"),
                first_lba: bios.first_lba,
                last_lba: bios.last_lba,
                attributes: 0,
                name: "BIOS boot".into(),
            },
            NewPartition {
                type_guid: type_guid(ESP_TYPE),
                unique_guid: seeded_guid(opts.seed, "partition 2"),
                first_lba: esp.first_lba,
                last_lba: esp.last_lba,
                attributes: 0,
                name: "EFI System".into(),
            },
        ],
        ..GptSpec::new(disk_guid)
    };
    let gpt =
        gpt::create(&spec, opts.size).map_err(|e| Error::InvalidLayout(format!("GPT: {e}")))?;

    let output = cloudimg_disk::io::OutputFile::create(out)
        .map_err(|e| Error::io(format!("creating {}", out.display()), e))?;
    let file = output.file();
    file.set_len(opts.size)
        .map_err(|e| Error::io(format!("sizing {}", out.display()), e))?;
    let mut written = 0u64;
    let mut put = |bytes: &[u8], offset: u64| -> Result<()> {
        written += bytes.len() as u64;
        file.write_all_at(bytes, offset)
            .map_err(|e| Error::io(format!("writing {} at offset {offset}", out.display()), e))
    };
    put(&gpt.head, 0)?;
    put(&core, bios.offset())?;
    for (off, chunk) in esp_vol.data_chunks() {
        put(chunk, esp.offset() + off)?;
    }
    put(&gpt.tail, gpt.tail_offset)?;
    let path = commit(output, opts.overwrite)?;
    Ok(BuiltImage {
        path,
        size: opts.size,
        disk_guid,
        bios_boot: bios,
        esp,
        esp_volume_id: volume_id,
        bytes_written: written,
    })
}

/// Give a finished image its final name: replacing an existing file only
/// when `overwrite`, else failing with [`Error::OutputExists`].
pub(crate) fn commit(output: cloudimg_disk::io::OutputFile, overwrite: bool) -> Result<PathBuf> {
    let out = output.target().to_path_buf();
    let done = if overwrite {
        output.commit()
    } else {
        output.commit_new()
    };
    done.map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => Error::OutputExists(out.clone()),
        _ => Error::io(format!("finishing {}", out.display()), e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grub_cfg_quotes_the_cmdline() {
        let cfg = grub_cfg("console=ttyS0  it's $x");
        assert!(
            cfg.contains("multiboot2 /capos/kernel.elf console=ttyS0 'it'\\''s' '$x'\n"),
            "{cfg}"
        );
        assert!(grub_cfg("").contains("multiboot2 /capos/kernel.elf\n"));
        assert!(cfg.contains("set timeout=0\n"));
    }

    #[test]
    fn plan_refuses_too_small_disks() {
        let opts = ImageOptions {
            size: 64 << 20,
            esp_size: 64 << 20,
            kernel: vec![],
            ..ImageOptions::new()
        };
        assert_eq!(
            plan(&opts).unwrap_err().to_string(),
            "invalid layout: a disk of 67108864 bytes cannot hold a 67108864-byte ESP at LBA 4096 (at least 69222912 bytes needed)"
        );
    }

    #[test]
    fn fat_uuid_matches_grub_spelling() {
        assert_eq!(fat_uuid(0x1234_ABCD), "1234-abcd");
    }
}
