//! Preflight: can this disk boot on each cloud and firmware path, and if
//! not, why not. Read-only; nothing is written to the disk.
//!
//! [`check`] runs every check once and gives each a status:
//!
//! * `fail`: the paths it names will not boot, or the cloud will refuse
//!   the import;
//! * `warn`: it will probably boot, but something is fragile, slow or
//!   cannot be told from the disk alone;
//! * `pass`: checked and fine (the message says what was seen, e.g. the
//!   size the disk is grown to).
//!
//! A path (e.g. `aws-bios`) is ready when no `fail` check names it.
//!
//! Limine is told by its MBR code and its layout family (see [`limine`]);
//! its config is found as each firmware path of its release finds it.
//!
//! | id | what | fails |
//! |----|------|-------|
//! | `size-sector` | virtual size a multiple of 512 | every path |
//! | `mbr` | `55 AA`, one 0xEE entry at LBA 1 covering the disk (hybrid: warn) | every path |
//! | `gpt` | both headers and arrays (CRCs, locations, agreement), backup at the last LBA | every path |
//! | `bios-boot-code` | MBR bytes 0..440 not all zero; GRUB / Limine recognised | BIOS paths |
//! | `bios-stage2` | the loader's next stage is where its boot code points, non-zero; Limine: inside the disk, clear of partitions (but its BIOS boot partition) and GPT areas | BIOS paths |
//! | `bios-stage3` | Limine only: `limine-bios.sys` where its stage 2 looks, of the MBR code's family | BIOS paths |
//! | `esp` | an EFI system partition with a FAT file system | UEFI paths |
//! | `efi-loader` | `/EFI/BOOT/BOOTX64.EFI`, PE32+, x86-64, EFI application | UEFI paths |
//! | `alignment` | partitions start on 1 MiB (warn otherwise); a BIOS boot partition inside the first MiB is exempt | never |
//! | `kernel` | the kernel the GRUB / Limine config names exists, non-empty; Limine: its config found (a `limine.cfg` read by 8.x warns) | every path |
//! | `kernel:uefi` `kernel:bios` | instead of `kernel` when Limine's UEFI and BIOS paths read different configs | that firmware |
//! | `size:gcp` `size:aws` `size:azure` | each cloud's size rules | that cloud |
//! | `size:aws-bios` | only over 2 TiB: old AWS limit for BIOS boot volumes (warn) | never |
//!
//! Size rules, each stated once in [`crate::vocab`] with its source (the
//! project's cloud-formats reference, §1-4): GCP whole GiB (cloudimg grows
//! the disk); AWS VHD ≤ 2040 GiB (qemu block/vpc.c), stream-optimized VMDK
//! ≤ 2 TiB (sector offsets), 2 TiB for BIOS boot volumes (awsdocs
//! vmie_prereqs.md, 2019); Azure whole MiB, 20 MiB ..= 32 TiB (Azure
//! DiskCreationData.UploadSizeBytes, less the footer).
//!
//! One module per thing inspected: `table` (size, protective MBR, GPT,
//! alignment), `bios` (boot code and the stage it loads), `esp` (the
//! EFI system partition and its loader), `kernel` (the config each loader
//! reads and the kernel it names), `provider` (each cloud's size rules,
//! from [`crate::vocab`]); the readers they use: `fat`, `pe`, `grub`,
//! [`limine`].

use serde::Serialize;

use crate::disk::{VirtualDisk, SECTOR_SIZE};
use crate::error::Result;
use crate::layout::mbr::Mbr;

mod bios;
mod esp;
mod fat;
mod grub;
mod kernel;
pub mod limine;
mod pe;
mod provider;
mod table;

pub use pe::pe_efi_app;

pub use limine::{LimineReport, LoaderBytes};

/// One MiB, the alignment partitions should start on and the unit Azure
/// sizes must be a multiple of.
pub use crate::disk::MIB;
/// GPT types of the EFI system and BIOS boot partitions.
pub use crate::layout::gpt::{BIOS_BOOT_TYPE, ESP_TYPE};
/// MBR partition type of an EFI system partition.
pub const MBR_ESP_TYPE: u8 = 0xEF;
/// The removable-media loader path UEFI firmware boots (UEFI 2.10 §3.5.1.1).
pub const EFI_LOADER_PATH: &str = "/EFI/BOOT/BOOTX64.EFI";
/// PE machine type of x86-64 (PE format, "Machine Types").
pub const PE_MACHINE_X86_64: u16 = 0x8664;
/// PE optional header magic of PE32+.
pub const PE32_PLUS_MAGIC: u16 = 0x20B;
/// PE subsystem of an EFI application.
pub const PE_SUBSYSTEM_EFI_APPLICATION: u16 = 10;
/// Largest stream-optimized VMDK whose grain offsets fit (2 TiB; stated
/// once, in [`crate::vocab`]).
pub use crate::vocab::AWS_VMDK_MAX as VMDK_MAX;
/// Each provider's size rules (stated once, in [`crate::vocab`]).
pub use crate::vocab::{AWS_BIOS_BOOT_MAX, AWS_VHD_MAX, AZURE_MAX, AZURE_MIN};
/// GRUB's boot.img carries this string (its "GRUB " error prefix).
pub const GRUB_BOOT_MARK: &[u8] = b"GRUB ";
/// Offset of the 64-bit LBA of core.img in GRUB's boot.img.
pub const GRUB_KERNEL_SECTOR: usize = 0x5C;
/// Offset of the first blocklist entry in GRUB's diskboot.img (the first
/// sector of core.img; grub-core/boot/i386/pc/diskboot.S `firstlist`).
pub const GRUB_CORE_BLOCKLIST: usize = 512 - 12;
/// Largest file read whole from the ESP (loaders, configs).
pub const MAX_FILE_READ: u64 = 64 << 20;
/// Largest number of directory entries looked at in one directory (a
/// cyclic cluster chain would otherwise never end).
pub const MAX_DIR_ENTRIES: usize = 65_536;
/// GRUB configs followed through `configfile`/`source` at most.
const MAX_CONFIG_DEPTH: usize = 4;

/// Which cloud a check is for: one of [`Provider::CLOUDS`].
pub use crate::vocab::Provider;

/// How the firmware starts the disk (one type for every crate).
pub use crate::vocab::Firmware;

/// One cloud and firmware path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Target {
    /// The cloud.
    pub cloud: Provider,
    /// The firmware.
    pub firmware: Firmware,
}

impl Target {
    /// The paths of `cloud`: UEFI first.
    pub fn of(cloud: Provider) -> [Target; 2] {
        [Firmware::Uefi, Firmware::Bios].map(|firmware| Target { cloud, firmware })
    }

    /// `gcp-uefi`, `gcp-bios`, `aws-uefi`, `aws-bios`, `azure-gen2` (UEFI),
    /// `azure-gen1` (BIOS).
    pub fn name(self) -> &'static str {
        match (self.cloud, self.firmware) {
            (Provider::Gcp, Firmware::Uefi) => "gcp-uefi",
            (Provider::Gcp, Firmware::Bios) => "gcp-bios",
            (Provider::Aws, Firmware::Uefi) => "aws-uefi",
            (Provider::Aws, Firmware::Bios) => "aws-bios",
            (Provider::Azure, Firmware::Uefi) => "azure-gen2",
            (Provider::Azure, Firmware::Bios) => "azure-gen1",
            // Not clouds: `check` keeps only Provider::CLOUDS.
            (Provider::Openstack, Firmware::Uefi) => "openstack-uefi",
            (Provider::Openstack, Firmware::Bios) => "openstack-bios",
            (Provider::Hyperv, Firmware::Uefi) => "hyperv-uefi",
            (Provider::Hyperv, Firmware::Bios) => "hyperv-bios",
            (Provider::Vsphere, Firmware::Uefi) => "vsphere-uefi",
            (Provider::Vsphere, Firmware::Bios) => "vsphere-bios",
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for Target {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Checked and fine.
    Pass,
    /// Probably boots, but fragile or not fully checkable.
    Warn,
    /// The paths in [`Check::paths`] will not boot (or import).
    Fail,
}

impl Status {
    /// `pass`, `warn`, `fail`.
    pub fn name(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Stable identifier (see the module table).
    pub id: &'static str,
    /// What was looked at, e.g. "protective MBR", "/EFI/BOOT/BOOTX64.EFI".
    pub subject: String,
    /// Pass, warn or fail.
    pub status: Status,
    /// What was found, in one line.
    pub message: String,
    /// What to do about it (none when it passed).
    pub fix: Option<String>,
    /// The paths this check is about: a `fail` makes exactly these not ready.
    pub paths: Vec<Target>,
}

/// Whether one path is ready.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// The path.
    pub target: Target,
    /// The cloud.
    pub cloud: Provider,
    /// The firmware.
    pub firmware: Firmware,
    /// No failing check names this path.
    pub ready: bool,
    /// Ids of the failing checks that name it.
    pub failing: Vec<&'static str>,
    /// Ids of the warning checks that name it.
    pub warnings: Vec<&'static str>,
}

/// Every check and a verdict per path.
#[derive(Debug, Clone, Serialize)]
pub struct Checklist {
    /// Virtual size of the disk in bytes.
    pub virtual_size: u64,
    /// The checks, in the order they ran.
    pub checks: Vec<Check>,
    /// One per path of each requested cloud, UEFI first.
    pub verdicts: Vec<Verdict>,
    /// What was found of Limine (MBR family, versions, stage 2 bytes,
    /// stage 3, the config each firmware reads); `None` when the disk
    /// shows no Limine.
    pub limine: Option<LimineReport>,
}

impl Checklist {
    /// Whether every path checked is ready.
    pub fn ready(&self) -> bool {
        self.verdicts.iter().all(|v| v.ready)
    }
    /// The check with `id`, if it ran.
    pub fn get(&self, id: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.id == id)
    }
}

/// A partition, from a GPT or a classic MBR.
#[derive(Debug, Clone)]
struct Part {
    index: u32,
    first_lba: u64,
    sectors: u64,
    esp: bool,
    bios_boot: bool,
}

impl Part {
    fn offset(&self) -> u64 {
        self.first_lba.saturating_mul(SECTOR_SIZE)
    }
    fn len(&self) -> u64 {
        self.sectors.saturating_mul(SECTOR_SIZE)
    }
    fn contains_lba(&self, lba: u64) -> bool {
        lba >= self.first_lba && lba - self.first_lba < self.sectors
    }
}

struct Ctx<'a> {
    disk: &'a dyn VirtualDisk,
    clouds: Vec<Provider>,
    checks: Vec<Check>,
    /// Whether the disk has a GPT (from the `gpt` check).
    gpt: bool,
    /// Limine, when its MBR code or loader was found.
    limine: Option<LimineReport>,
    /// The Limine MBR code, when recognised.
    limine_mbr: Option<limine::LimineMbr>,
}

impl Ctx<'_> {
    fn targets(&self, firmware: Option<Firmware>) -> Vec<Target> {
        self.clouds
            .iter()
            .flat_map(|&c| Target::of(c))
            .filter(|t| firmware.is_none_or(|f| t.firmware == f))
            .collect()
    }
    fn push(
        &mut self,
        id: &'static str,
        subject: impl Into<String>,
        status: Status,
        message: impl Into<String>,
        fix: Option<String>,
        firmware: Option<Firmware>,
    ) {
        let paths = self.targets(firmware);
        self.checks.push(Check {
            id,
            subject: subject.into(),
            status,
            message: message.into(),
            fix: if status == Status::Pass { None } else { fix },
            paths,
        });
    }
}

fn fix(s: &str) -> Option<String> {
    Some(s.to_string())
}

/// Check `disk` for booting on every path of `clouds` (all three of
/// [`Provider::CLOUDS`] when empty; other providers are left out). `Err`
/// only when the disk cannot be read at all (its first sector); every
/// other problem is a check.
pub fn check(disk: &dyn VirtualDisk, clouds: &[Provider]) -> Result<Checklist> {
    let mut clouds: Vec<Provider> = Provider::CLOUDS
        .into_iter()
        .filter(|c| clouds.is_empty() || clouds.contains(c))
        .collect();
    clouds.dedup();
    let (mbr, sector0) = Mbr::read(disk)?;
    let mut cx = Ctx {
        disk,
        clouds,
        checks: Vec::new(),
        gpt: false,
        limine: None,
        limine_mbr: None,
    };
    let size = disk.size();

    table::check_size_sector(&mut cx, size);
    table::check_mbr(&mut cx, &mbr);
    let parts = table::check_gpt(&mut cx, &mbr);
    bios::check_bios(&mut cx, &sector0, parts.as_deref());
    let esp = esp::check_uefi(&mut cx, parts.as_deref());
    table::check_alignment(&mut cx, parts.as_deref());
    kernel::check_kernel(&mut cx, esp.as_ref(), parts.as_deref());
    for c in cx.clouds.clone() {
        provider::check_size(&mut cx, c, size);
    }

    let verdicts = cx
        .targets(None)
        .into_iter()
        .map(|t| {
            let with = |s: Status| -> Vec<&'static str> {
                cx.checks
                    .iter()
                    .filter(|c| c.status == s && c.paths.contains(&t))
                    .map(|c| c.id)
                    .collect()
            };
            let failing = with(Status::Fail);
            Verdict {
                target: t,
                cloud: t.cloud,
                firmware: t.firmware,
                ready: failing.is_empty(),
                failing,
                warnings: with(Status::Warn),
            }
        })
        .collect();
    Ok(Checklist {
        virtual_size: size,
        checks: cx.checks,
        verdicts,
        limine: cx.limine,
    })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_names() {
        let names: Vec<&str> = Provider::CLOUDS
            .iter()
            .flat_map(|&c| Target::of(c))
            .map(Target::name)
            .collect();
        assert_eq!(
            names,
            [
                "gcp-uefi",
                "gcp-bios",
                "aws-uefi",
                "aws-bios",
                "azure-gen2",
                "azure-gen1"
            ]
        );
    }
}
