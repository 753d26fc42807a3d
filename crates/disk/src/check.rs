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
//! Size rules (the project's cloud-formats reference, §1-3): GCP whole
//! GiB (cloudimg grows the disk); AWS VHD ≤ 2040 GiB (qemu block/vpc.c),
//! stream-optimized VMDK ≤ 2 TiB (sector offsets), 2 TiB for BIOS boot
//! volumes (awsdocs vmie_prereqs.md, 2019); Azure whole MiB, 20 MiB ..=
//! 32 TiB (Azure DiskCreationData.UploadSizeBytes, less the footer).

use std::io;

use serde::Serialize;

use crate::disk::{VirtualDisk, GIB, SECTOR_SIZE};
use crate::error::Result;
use crate::layout::gpt;
use crate::layout::mbr::{self, Mbr, MbrKind};
use crate::layout::{Guid, PartitionTable};

mod fat;
mod grub;
pub mod limine;
mod pe;

use grub::{embedded_grub_prefix, grub_kernels};
use limine::limine_kernels;
#[cfg(test)]
use limine::limine_uri;
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
/// Largest AWS VHD (qemu's VHD limit, 0xFF000000 sectors = 2040 GiB).
pub const AWS_VHD_MAX: u64 = 2040 * GIB;
/// Largest stream-optimized VMDK whose grain offsets fit (2 TiB).
pub const VMDK_MAX: u64 = 2 << 40;
/// Old AWS VM Import limit for MBR (BIOS) boot volumes (2 TiB).
pub const AWS_BIOS_BOOT_MAX: u64 = 2 << 40;
/// Azure's size range (stated once, in [`crate::vocab`]).
pub use crate::vocab::{AZURE_MAX, AZURE_MIN};
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
/// [`Provider::CLOUDS`] when empty; other providers are left out). `Err` only when the disk cannot be read at all (its first
/// sector); every other problem is a check.
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

    // Size in whole sectors.
    if size % SECTOR_SIZE != 0 {
        cx.push(
            "size-sector",
            "disk size",
            Status::Fail,
            format!(
                "size {size} is not a multiple of 512 bytes ({} bytes over): no cloud imports it and the GPT has no last LBA",
                size % SECTOR_SIZE
            ),
            fix("pad the image to a whole sector (truncate -s %512) and move the backup GPT to the end (sgdisk -e)"),
            None,
        );
    } else {
        cx.push(
            "size-sector",
            "disk size",
            Status::Pass,
            format!("{size} bytes = {} sectors of 512", size / SECTOR_SIZE),
            None,
            None,
        );
    }

    check_mbr(&mut cx, &mbr);
    let parts = check_gpt(&mut cx, &mbr);
    check_bios(&mut cx, &sector0, parts.as_deref());
    let esp = check_uefi(&mut cx, parts.as_deref());
    check_alignment(&mut cx, parts.as_deref());
    check_kernel(&mut cx, esp.as_ref(), parts.as_deref());
    for c in cx.clouds.clone() {
        check_size(&mut cx, c, size);
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

fn check_mbr(cx: &mut Ctx<'_>, m: &Mbr) {
    let sectors = cx.disk.size() / SECTOR_SIZE;
    let subject = "protective MBR";
    let rebuild = fix(
        "write a new protective MBR: gdisk IMAGE, then x (expert menu), n (new protective MBR), w",
    );
    match m.kind {
        MbrKind::Invalid => cx.push(
            "mbr",
            subject,
            Status::Fail,
            "LBA 0 has no 55 AA signature: neither BIOS nor UEFI firmware takes it for a partitioned disk",
            rebuild,
            None,
        ),
        MbrKind::Classic => cx.push(
            "mbr",
            subject,
            Status::Warn,
            format!(
                "classic MBR with no 0xEE entry ({} partitions): not a GPT disk",
                m.partitions.len()
            ),
            fix("convert to GPT (sgdisk -g) if the disk should boot with UEFI from a GPT"),
            None,
        ),
        MbrKind::Protective | MbrKind::Hybrid => {
            let e = *m
                .protective_entry()
                .expect("protective and hybrid MBRs have an 0xEE entry");
            let want = mbr::protective_entry(sectors).sectors;
            let ees = m
                .partitions
                .iter()
                .filter(|p| p.kind == mbr::TYPE_GPT_PROTECTIVE)
                .count();
            if e.start_lba != 1 {
                cx.push(
                    "mbr",
                    subject,
                    Status::Fail,
                    format!(
                        "the 0xEE entry (#{}) starts at LBA {}, not 1: UEFI firmware does not take the disk for GPT",
                        e.index, e.start_lba
                    ),
                    rebuild,
                    None,
                );
            } else if m.kind == MbrKind::Hybrid {
                let others: Vec<String> = m
                    .partitions
                    .iter()
                    .filter(|p| p.kind != mbr::TYPE_GPT_PROTECTIVE)
                    .map(|p| {
                        format!(
                            "#{} type {:#04x} LBA {}+{}",
                            p.index, p.kind, p.start_lba, p.sectors
                        )
                    })
                    .collect();
                cx.push(
                    "mbr",
                    subject,
                    Status::Warn,
                    format!(
                        "hybrid MBR: besides the 0xEE entry #{} it has {}; some UEFI firmware then ignores the GPT",
                        e.index,
                        others.join(", ")
                    ),
                    fix("unless a BIOS loader needs the MBR entries, make it protective: gdisk IMAGE, then x, n, w"),
                    None,
                );
            } else if ees > 1 {
                cx.push(
                    "mbr",
                    subject,
                    Status::Warn,
                    format!("{ees} 0xEE entries; a protective MBR has one"),
                    rebuild,
                    None,
                );
            } else if e.sectors != want {
                cx.push(
                    "mbr",
                    subject,
                    Status::Warn,
                    format!(
                        "the 0xEE entry covers {} sectors, expected {want} (the disk has {sectors}): the disk was resized without updating it",
                        e.sectors
                    ),
                    fix("sgdisk -e IMAGE (cloudimg package rewrites it for GCP)"),
                    None,
                );
            } else {
                cx.push(
                    "mbr",
                    subject,
                    Status::Pass,
                    format!(
                        "55 AA, one 0xEE entry (#{}) at LBA 1 covering {} sectors",
                        e.index, e.sectors
                    ),
                    None,
                    None,
                );
            }
        }
    }
}

/// The GPT check; the partitions (from the GPT, or a classic MBR), or
/// `None` when there is no readable table.
fn check_gpt(cx: &mut Ctx<'_>, m: &Mbr) -> Option<Vec<Part>> {
    let table = crate::layout::read_table(cx.disk);
    // MBR findings (offsets inside LBA 0) belong to the `mbr` check.
    let findings: Vec<String> = gpt::verify(cx.disk)
        .into_iter()
        .filter(|f| f.offset.is_none_or(|o| o >= SECTOR_SIZE))
        .map(|f| f.to_string())
        .collect();
    let esp_type: Guid = ESP_TYPE.parse().expect("constant GUID parses");
    let bios_type: Guid = BIOS_BOOT_TYPE.parse().expect("constant GUID parses");
    match table {
        Ok(PartitionTable::Gpt(g)) => {
            cx.gpt = true;
            if findings.is_empty() {
                cx.push(
                    "gpt",
                    "GPT",
                    Status::Pass,
                    format!(
                        "primary (LBA 1) and backup (LBA {}) headers and arrays sound and in agreement; {} partitions",
                        g.backup_header_lba,
                        g.partitions.len()
                    ),
                    None,
                    None,
                );
            } else {
                cx.push(
                    "gpt",
                    "GPT",
                    Status::Fail,
                    format!(
                        "{} problem(s): {}",
                        findings.len(),
                        findings.join("; ")
                    ),
                    fix("repair it from the sound copy: sgdisk -e IMAGE (or gdisk: r, b/c/d/e as needed, w), then sgdisk -v IMAGE"),
                    None,
                );
            }
            Some(
                g.partitions
                    .iter()
                    .map(|p| Part {
                        index: p.index,
                        first_lba: p.first_lba,
                        sectors: p.last_lba.saturating_sub(p.first_lba).saturating_add(1),
                        esp: p.type_guid == esp_type,
                        bios_boot: p.type_guid == bios_type,
                    })
                    .collect(),
            )
        }
        Ok(PartitionTable::Mbr(_)) => {
            cx.push(
                "gpt",
                "GPT",
                Status::Warn,
                "no GPT: partitions are taken from the classic MBR (an ESP is type 0xEF there)",
                fix("use GPT (sgdisk -g IMAGE) for UEFI clouds"),
                None,
            );
            Some(
                m.partitions
                    .iter()
                    .map(|p| Part {
                        index: u32::from(p.index),
                        first_lba: u64::from(p.start_lba),
                        sectors: u64::from(p.sectors),
                        esp: p.kind == MBR_ESP_TYPE,
                        bios_boot: false,
                    })
                    .collect(),
            )
        }
        Ok(PartitionTable::None) => {
            cx.push(
                "gpt",
                "GPT",
                Status::Fail,
                "no partition table: no 0xEE MBR entry and no \"EFI PART\" header at LBA 1 or the last LBA",
                fix("partition the disk (sgdisk) with an EFI system partition and a BIOS boot partition, or build it with cloudimg image build"),
                None,
            );
            None
        }
        Err(e) => {
            let msg = if findings.is_empty() {
                e.message().to_string()
            } else {
                findings.join("; ")
            };
            cx.push(
                "gpt",
                "GPT",
                Status::Fail,
                format!("no sound copy: {msg}"),
                fix("rewrite the partition table (gdisk's recovery menu), or rebuild the image"),
                None,
            );
            None
        }
    }
}

fn check_bios(cx: &mut Ctx<'_>, sector0: &[u8; 512], parts: Option<&[Part]>) {
    let code = &sector0[..mbr::BOOT_CODE_LEN];
    let bios = Some(Firmware::Bios);
    let gpt = cx.gpt;
    let install = "install a BIOS loader (grub-install --target=i386-pc, or limine bios-install), or rebuild with cloudimg image build";
    if code.iter().all(|&b| b == 0) {
        cx.push(
            "bios-boot-code",
            "MBR boot code",
            Status::Fail,
            "MBR bytes 0..440 are all zero: BIOS firmware has no code to run",
            fix(install),
            bios,
        );
        return;
    }
    let bios_parts: Vec<&Part> = parts
        .unwrap_or_default()
        .iter()
        .filter(|p| p.bios_boot)
        .collect();
    if find(code, GRUB_BOOT_MARK).is_some() {
        cx.push(
            "bios-boot-code",
            "MBR boot code",
            Status::Pass,
            "GRUB boot.img (\"GRUB \" string at byte 0..440)",
            None,
            bios,
        );
        let lba = u64::from_le_bytes(
            code[GRUB_KERNEL_SECTOR..GRUB_KERNEL_SECTOR + 8]
                .try_into()
                .expect("8 bytes"),
        );
        grub_core(cx, lba, &bios_parts);
    } else if let Some(m) = limine::recognise(sector0) {
        let at = cx.checks.len();
        cx.push(
            "bios-boot-code",
            "MBR boot code",
            Status::Pass,
            format!(
                "Limine stage 1 (EB 3C 90 \"LIMINE  \"), {} layout ({})",
                match m.family {
                    limine::Family::UpTo9 => "9.x-or-earlier",
                    limine::Family::From10 => "10.x-or-later",
                },
                m.evidence
            ),
            None,
            bios,
        );
        let report = limine::check_bios(cx, &m, parts, gpt);
        if let Some(v) = report.bios_version {
            cx.checks[at]
                .message
                .push_str(&format!("; limine-bios.sys is Limine {v}"));
        }
        cx.limine = Some(report);
        cx.limine_mbr = Some(m);
    } else {
        cx.push(
            "bios-boot-code",
            "MBR boot code",
            Status::Pass,
            "unrecognised boot code (not GRUB, not Limine): present, but its next stage is not checked",
            None,
            bios,
        );
        match bios_parts.first() {
            Some(p) => match first_sector_zero(cx.disk, p.first_lba) {
                Ok(true) => cx.push(
                    "bios-stage2",
                    format!("BIOS boot partition {}", p.index),
                    Status::Warn,
                    format!("BIOS boot partition {} starts with a zero sector: nothing seems installed there", p.index),
                    fix(install),
                    bios,
                ),
                Ok(false) => cx.push(
                    "bios-stage2",
                    format!("BIOS boot partition {}", p.index),
                    Status::Pass,
                    format!("BIOS boot partition {} holds data", p.index),
                    None,
                    bios,
                ),
                Err(e) => cx.push(
                    "bios-stage2",
                    format!("BIOS boot partition {}", p.index),
                    Status::Warn,
                    format!("cannot read it: {e}"),
                    None,
                    bios,
                ),
            },
            None => cx.push(
                "bios-stage2",
                "BIOS stage 2",
                Status::Warn,
                "cannot tell where this boot code loads its next stage from",
                fix("use GRUB or Limine if the BIOS path matters"),
                bios,
            ),
        }
    }
}

fn first_sector_zero(disk: &dyn VirtualDisk, lba: u64) -> io::Result<bool> {
    let mut s = [0u8; 512];
    disk.read_at(&mut s, lba.saturating_mul(SECTOR_SIZE))?;
    Ok(s.iter().all(|&b| b == 0))
}

fn grub_core(cx: &mut Ctx<'_>, lba: u64, bios_parts: &[&Part]) {
    let bios = Some(Firmware::Bios);
    let subject = "GRUB core.img";
    let reinstall = fix("reinstall GRUB for BIOS (grub-install --target=i386-pc, with a 1 MiB BIOS boot partition, type EF02), or rebuild with cloudimg image build");
    let sectors = cx.disk.size() / SECTOR_SIZE;
    if lba == 0 || lba >= sectors {
        cx.push(
            "bios-stage2",
            subject,
            Status::Fail,
            format!("boot.img points at LBA {lba} for core.img, outside the {sectors}-sector disk"),
            reinstall,
            bios,
        );
        return;
    }
    let inside = bios_parts.iter().find(|p| p.contains_lba(lba));
    let mut first = [0u8; 512];
    if let Err(e) = cx.disk.read_at(&mut first, lba * SECTOR_SIZE) {
        cx.push(
            "bios-stage2",
            subject,
            Status::Fail,
            format!("cannot read LBA {lba}, where boot.img loads core.img from: {e}"),
            reinstall,
            bios,
        );
        return;
    }
    let place = match inside {
        Some(p) => format!(" (BIOS boot partition {})", p.index),
        None => String::new(),
    };
    if first.iter().all(|&b| b == 0) {
        cx.push(
            "bios-stage2",
            subject,
            Status::Fail,
            format!("boot.img loads core.img from LBA {lba}{place}, but that sector is all zero"),
            reinstall,
            bios,
        );
        return;
    }
    // diskboot.img (core.img's first sector) loads the rest by its first
    // blocklist entry: start LBA (u64), sectors (u16), segment (u16).
    let bl = &first[GRUB_CORE_BLOCKLIST..];
    let start = u64::from_le_bytes(bl[..8].try_into().expect("8 bytes"));
    let len = u64::from(u16::from_le_bytes([bl[8], bl[9]]));
    let problem = if len == 0 {
        Some(format!(
            "core.img's first sector at LBA {lba}{place} has an empty blocklist: the rest of core.img is never loaded"
        ))
    } else if start == 0 || start.saturating_add(len) > sectors {
        Some(format!(
            "core.img's blocklist loads {len} sectors from LBA {start}, outside the {sectors}-sector disk"
        ))
    } else if inside.is_some_and(|p| !p.contains_lba(start) || !p.contains_lba(start + len - 1)) {
        Some(format!(
            "core.img's blocklist loads {len} sectors from LBA {start}, past the end of its BIOS boot partition"
        ))
    } else {
        match first_sector_zero(cx.disk, start) {
            Ok(true) => Some(format!(
                "core.img's blocklist loads {len} sectors from LBA {start}, but the first of them is all zero"
            )),
            Ok(false) => None,
            Err(e) => Some(format!("cannot read LBA {start}: {e}")),
        }
    };
    if let Some(m) = problem {
        cx.push("bios-stage2", subject, Status::Fail, m, reinstall, bios);
        return;
    }
    match inside {
        Some(p) => cx.push(
            "bios-stage2",
            subject,
            Status::Pass,
            format!(
                "boot.img loads core.img from LBA {lba}, in BIOS boot partition {}; its blocklist loads {len} more sectors from LBA {start}",
                p.index
            ),
            None,
            bios,
        ),
        None => cx.push(
            "bios-stage2",
            subject,
            Status::Warn,
            format!("core.img at LBA {lba} lies outside any BIOS boot partition: partitioning tools may overwrite it"),
            fix("give GRUB a BIOS boot partition (type EF02) and reinstall it"),
            bios,
        ),
    }
}

/// The ESP, opened.
struct Esp<'a> {
    index: u32,
    fs: fat::Fat<'a>,
}

/// Read a file whole (at most [`MAX_FILE_READ`] bytes).
fn read_file(esp: &Esp<'_>, path: &str) -> std::result::Result<Vec<u8>, String> {
    let f = esp.fs.lookup(path)?;
    esp.fs.read(&f, MAX_FILE_READ)
}

fn check_uefi<'a>(cx: &mut Ctx<'a>, parts: Option<&[Part]>) -> Option<Esp<'a>> {
    let uefi = Some(Firmware::Uefi);
    let Some(parts) = parts else {
        cx.push(
            "esp",
            "EFI system partition",
            Status::Fail,
            "no readable partition table, so no ESP",
            fix("see the gpt check"),
            uefi,
        );
        return None;
    };
    let esps: Vec<&Part> = parts.iter().filter(|p| p.esp).collect();
    let Some(p) = esps.first() else {
        cx.push(
            "esp",
            "EFI system partition",
            Status::Fail,
            format!("no partition of the ESP type {ESP_TYPE} among {}", parts.len()),
            fix("add an ESP (sgdisk -n 0:0:+128M -t 0:EF00) with a FAT32 file system holding /EFI/BOOT/BOOTX64.EFI"),
            uefi,
        );
        return None;
    };
    let fs = match fat::Fat::open(cx.disk, p.offset(), p.len()) {
        Ok(fs) => fs,
        Err(e) => {
            cx.push(
                "esp",
                format!("EFI system partition {}", p.index),
                Status::Fail,
                format!("partition {}: {e}", p.index),
                fix("format it FAT32 (mkfs.fat -F 32) and install the loader again"),
                uefi,
            );
            return None;
        }
    };
    let fat = fs.kind();
    cx.push(
        "esp",
        format!("EFI system partition {}", p.index),
        if esps.len() > 1 {
            Status::Warn
        } else {
            Status::Pass
        },
        if esps.len() > 1 {
            format!(
                "{} ESPs; firmware may boot any of them; partition {} checked ({fat})",
                esps.len(),
                p.index
            )
        } else {
            format!(
                "partition {} (LBA {}+{}), {fat}",
                p.index, p.first_lba, p.sectors
            )
        },
        fix("keep one ESP"),
        uefi,
    );
    let esp = Esp { index: p.index, fs };
    let subject = EFI_LOADER_PATH;
    let reinstall = fix("install a x86-64 UEFI loader at /EFI/BOOT/BOOTX64.EFI (grub-install --target=x86_64-efi --removable, or copy Limine's BOOTX64.EFI)");
    match read_file(&esp, EFI_LOADER_PATH) {
        Err(e) => cx.push(
            "efi-loader",
            subject,
            Status::Fail,
            format!("not on the ESP ({e}): UEFI firmware has nothing to boot from this disk"),
            reinstall,
            uefi,
        ),
        Ok(bytes) => match pe_efi_app(&bytes) {
            Err(e) => cx.push("efi-loader", subject, Status::Fail, e, reinstall, uefi),
            Ok(()) => {
                let who = if find(&bytes, b"GNU GRUB").is_some() {
                    "GRUB"
                } else if find(&bytes, b"Limine").is_some() {
                    "Limine"
                } else {
                    "unrecognised loader"
                };
                cx.push(
                    "efi-loader",
                    subject,
                    Status::Pass,
                    format!(
                        "{} bytes, PE32+ x86-64 EFI application ({who})",
                        bytes.len()
                    ),
                    None,
                    uefi,
                );
            }
        },
    }
    Some(esp)
}

fn check_alignment(cx: &mut Ctx<'_>, parts: Option<&[Part]>) {
    let Some(parts) = parts else { return };
    let mut off4k = Vec::new();
    let mut off1m = Vec::new();
    let mut exempt = Vec::new();
    for p in parts {
        let o = p.offset();
        // A BIOS boot partition wholly inside the first MiB (Limine 10.x
        // and GRUB put it at e.g. LBA 34 or 40 to 2047) is read once by
        // the BIOS loader, in the gap before the first aligned partition:
        // its alignment does not matter.
        if p.bios_boot && o.saturating_add(p.len()) <= MIB {
            exempt.push(format!("{} at LBA {}", p.index, p.first_lba));
            continue;
        }
        if o % 4096 != 0 {
            off4k.push(format!("{} at LBA {}", p.index, p.first_lba));
        } else if o % MIB != 0 {
            off1m.push(format!("{} at LBA {}", p.index, p.first_lba));
        }
    }
    let fix_it = fix("start partitions on multiples of 2048 sectors (sgdisk's default alignment); rebuild the image or move them (gparted)");
    if !off4k.is_empty() {
        cx.push(
            "alignment",
            "partition alignment",
            Status::Warn,
            format!(
                "not 4 KiB aligned: partition {}; its 4 KiB blocks then straddle two of the volume's (read-modify-write on 4K-sector volumes)",
                off4k.join(", partition ")
            ),
            fix_it,
            None,
        );
    } else if !off1m.is_empty() {
        cx.push(
            "alignment",
            "partition alignment",
            Status::Warn,
            format!(
                "4 KiB but not 1 MiB aligned: partition {}",
                off1m.join(", partition ")
            ),
            fix_it,
            None,
        );
    } else {
        cx.push(
            "alignment",
            "partition alignment",
            Status::Pass,
            if exempt.is_empty() {
                format!("all {} partitions start on a 1 MiB boundary", parts.len())
            } else {
                format!(
                    "the other {} partition(s) start on a 1 MiB boundary; BIOS boot partition {} lies inside the first MiB and needs no alignment",
                    parts.len() - exempt.len(),
                    exempt.join(", ")
                )
            },
            None,
            None,
        );
    }
}

/// What a boot loader config names.
#[derive(Debug, Clone, PartialEq, Eq)]
enum KernelRef {
    /// A path on the ESP.
    Path(String),
    /// A path elsewhere or through a variable: cannot be checked.
    Unknown(String),
}

fn check_kernel(cx: &mut Ctx<'_>, esp: Option<&Esp<'_>>, parts: Option<&[Part]>) {
    let efi = esp.and_then(|e| read_file(e, EFI_LOADER_PATH).ok());
    let efi_limine = efi
        .as_ref()
        .is_some_and(|b| find(b, b"Limine").is_some() && find(b, b"GNU GRUB").is_none());
    if cx.limine_mbr.is_some() || efi_limine {
        limine_kernel(cx, esp, parts.unwrap_or_default(), efi_limine);
        return;
    }
    let Some(esp) = esp else {
        cx.push(
            "kernel",
            "kernel",
            Status::Warn,
            "no readable ESP, so no boot loader config to read: cannot tell which kernel boots",
            fix("see the esp check"),
            None,
        );
        return;
    };
    // GRUB: the prefix its embedded early config sets, then the usual places.
    let mut grub_paths: Vec<String> = Vec::new();
    if let Some(p) = efi.as_deref().and_then(embedded_grub_prefix) {
        grub_paths.push(format!("{}/grub.cfg", p.trim_end_matches('/')));
    }
    for p in [
        "/EFI/BOOT/grub.cfg",
        "/boot/grub/grub.cfg",
        "/grub/grub.cfg",
    ] {
        if !grub_paths.iter().any(|q| q.eq_ignore_ascii_case(p)) {
            grub_paths.push(p.into());
        }
    }
    let mut found: Option<(String, Vec<KernelRef>)> = None;
    for p in &grub_paths {
        if let Ok(cfg) = read_file(esp, p) {
            let refs = grub_kernels(esp, &String::from_utf8_lossy(&cfg), 0);
            found = Some((p.clone(), refs));
            break;
        }
    }
    let Some((cfg, refs)) = found else {
        // No GRUB config: a Limine config without Limine's MBR code or
        // loader (e.g. a BIOS-less image with another EFI loader).
        let all = parts.unwrap_or_default();
        let s = limine::config_search(Firmware::Uefi, None, None);
        if limine::find_config(cx.disk, all, Some(esp.index), &s, Firmware::Uefi).is_ok() {
            limine_kernel(cx, Some(esp), all, false);
            return;
        }
        cx.push(
            "kernel",
            "kernel",
            Status::Warn,
            format!(
                "no grub.cfg ({}) or limine.conf on ESP partition {}: cannot tell which kernel boots",
                grub_paths.join(", "),
                esp.index
            ),
            fix("put the boot loader config on the ESP, where cloudimg can read it"),
            None,
        );
        return;
    };
    if refs.is_empty() {
        cx.push(
            "kernel",
            "kernel",
            Status::Warn,
            format!("{cfg} names no kernel (no multiboot2/multiboot/linux/chainloader line, or no path: key): cannot tell which kernel boots"),
            fix("check the boot entry in the config"),
            None,
        );
        return;
    }
    let resolved: Vec<Resolved> = refs
        .iter()
        .map(|r| match r {
            KernelRef::Unknown(s) => Resolved::Unknown(s.clone()),
            KernelRef::Path(p) => lookup_kernel(&esp.fs, p, p),
        })
        .collect();
    push_kernel(
        cx,
        KernelCheck {
            id: "kernel",
            subject: format!("kernel ({cfg})"),
            cfg: &cfg,
            note: String::new(),
            names: names(&refs),
            firmware: None,
        },
        resolved,
    );
}

/// A kernel a config names, looked up.
enum Resolved {
    /// Found: its display name and size.
    Present(String, u64),
    /// Missing or empty: why.
    Missing(String),
    /// Cannot be resolved on a FAT partition.
    Unknown(String),
}

fn lookup_kernel(fs: &fat::Fat<'_>, path: &str, shown: &str) -> Resolved {
    match fs.lookup(path) {
        Ok(f) if f.size == 0 => Resolved::Missing(format!("{shown} is empty")),
        Ok(f) => Resolved::Present(shown.to_string(), f.size),
        Err(e) => Resolved::Missing(format!("{shown} is missing ({e})")),
    }
}

/// How one `kernel` check is named and worded.
struct KernelCheck<'s> {
    id: &'static str,
    subject: String,
    /// The config, as named at the start of the message.
    cfg: &'s str,
    /// Appended to the message: who reads the config, and why that one.
    note: String,
    /// The kernels named, for a failure.
    names: String,
    firmware: Option<Firmware>,
}

fn push_kernel(cx: &mut Ctx<'_>, k: KernelCheck<'_>, resolved: Vec<Resolved>) {
    let mut missing = Vec::new();
    let mut unknown = Vec::new();
    let mut present = Vec::new();
    for r in resolved {
        match r {
            Resolved::Present(p, len) => present.push(format!("{p} ({len} bytes)")),
            Resolved::Missing(m) => missing.push(m),
            Resolved::Unknown(u) => unknown.push(u),
        }
    }
    let cfg = k.cfg;
    let (status, message, fix_it) = if !missing.is_empty() {
        (
            Status::Fail,
            format!("{cfg} boots {}: {}", k.names, missing.join("; ")),
            fix("copy the kernel to that path on the ESP (mcopy -i ESP.img kernel ::/path), or fix the path in the config"),
        )
    } else if !unknown.is_empty() {
        (
            Status::Warn,
            format!(
                "{cfg} names {}, which cloudimg cannot resolve on the ESP{}",
                unknown.join(", "),
                if present.is_empty() {
                    String::new()
                } else {
                    format!(" (found {})", present.join(", "))
                }
            ),
            fix("use a plain path on the ESP so that it can be checked"),
        )
    } else if present.is_empty() {
        (
            Status::Warn,
            format!("{cfg} names no kernel (no path:/kernel_path: key in its default entry): cannot tell which kernel boots"),
            fix("check the boot entry in the config"),
        )
    } else {
        (
            Status::Pass,
            format!("{cfg} boots {}", present.join(", ")),
            None,
        )
    };
    cx.push(
        k.id,
        k.subject,
        status,
        format!("{message}{}", k.note),
        fix_it,
        k.firmware,
    );
}

/// The config each firmware path of Limine reads, in its release's search
/// order, and the kernel its default entry boots. One `kernel` check when
/// both read the same file; else `kernel:uefi` and `kernel:bios`.
fn limine_kernel(cx: &mut Ctx<'_>, esp: Option<&Esp<'_>>, parts: &[Part], efi_limine: bool) {
    let esp_index = esp.map(|e| e.index);
    let family = cx.limine_mbr.map(|m| m.family);
    let uefi_version = limine::uefi_version(cx.disk, parts, esp_index);
    let bios_version = cx.limine.as_ref().and_then(|r| r.bios_version);
    let mut found = Vec::new();
    for (fw, version) in [
        (Firmware::Uefi, uefi_version),
        (Firmware::Bios, bios_version),
    ] {
        let search = limine::config_search(fw, version, family);
        let r = if fw == Firmware::Uefi && esp_index.is_none() {
            Err("no readable EFI system partition, so no UEFI Limine to read a config".to_string())
        } else {
            limine::find_config(cx.disk, parts, esp_index, &search, fw)
        };
        found.push((fw, r));
    }
    let report = cx.limine.get_or_insert_with(LimineReport::default);
    report.uefi_version = uefi_version;
    report.uefi_config = found[0].1.as_ref().ok().map(|c| c.place());
    report.bios_config = found[1].1.as_ref().ok().map(|c| c.place());
    let same = match (&found[0].1, &found[1].1) {
        (Ok(a), Ok(b)) => a.part == b.part && a.path == b.path,
        (Err(_), Err(_)) => true,
        _ => false,
    };
    // Which firmware surely runs Limine (a missing config then stops it).
    let bios_limine = cx.limine_mbr.is_some();
    let runs = |fw: Firmware| match fw {
        Firmware::Uefi => efi_limine && esp_index.is_some(),
        Firmware::Bios => bios_limine,
    };
    let jobs: Vec<(&'static str, Option<Firmware>, usize)> = if same {
        vec![("kernel", None, 0)]
    } else {
        vec![
            ("kernel:uefi", Some(Firmware::Uefi), 0),
            ("kernel:bios", Some(Firmware::Bios), 1),
        ]
    };
    for (id, firmware, i) in jobs {
        let who = match firmware {
            None => "UEFI and BIOS".to_string(),
            Some(Firmware::Uefi) => "UEFI".to_string(),
            Some(Firmware::Bios) => "BIOS".to_string(),
        };
        let sure = match firmware {
            None => runs(Firmware::Uefi) || runs(Firmware::Bios),
            Some(f) => runs(f),
        };
        match &found[i].1 {
            Err(e) => cx.push(
                id,
                format!("Limine config ({who})"),
                if sure { Status::Fail } else { Status::Warn },
                format!("Limine {who}: {e}"),
                fix("put limine.conf in /boot/limine/ on the ESP (and nowhere else Limine looks first)"),
                firmware,
            ),
            Ok(c) => {
                // The path key: 8.2.0 knows only `kernel_path:` (booted
                // with `path:` it stops: "multiboot2: KERNEL_PATH not
                // specified"; its binaries carry KERNEL_PATH and no PATH
                // string); 10.4.0 takes both (booted with each). 9.x NOT
                // measured: both are taken.
                let versions = match firmware {
                    None => vec![uefi_version, bios_version],
                    Some(Firmware::Uefi) => vec![uefi_version],
                    Some(Firmware::Bios) => vec![bios_version],
                };
                let pre9 = versions.into_iter().flatten().find(|v| v.0 < 9);
                let keys: &[&str] = if pre9.is_some() {
                    &["kernel_path", "image_path"]
                } else {
                    &["path", "kernel_path", "image_path"]
                };
                let refs = limine_kernels(&c.text, c.part, keys);
                if let Some(v) = pre9.filter(|_| refs.is_empty()) {
                    if !limine_kernels(&c.text, c.part, &["path"]).is_empty() {
                        cx.push(
                            id,
                            format!("kernel ({})", c.path),
                            Status::Fail,
                            format!(
                                "{} names its kernel with `path:`, which Limine {v} does not know (its key is `kernel_path:`): it stops with \"KERNEL_PATH not specified\" (Limine {who} read{} it from partition {})",
                                c.path,
                                if firmware.is_none() { "" } else { "s" },
                                c.part
                            ),
                            fix("use `kernel_path:` for Limine 8.x (10.x takes both)"),
                            firmware,
                        );
                        continue;
                    }
                }
                let names = refs
                    .iter()
                    .map(|r| match r {
                        Ok((_, p)) => p.clone(),
                        Err(u) => u.clone(),
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                let resolved = refs
                    .iter()
                    .map(|r| match r {
                        Err(u) => Resolved::Unknown(u.clone()),
                        Ok((part, p)) => {
                            let shown = if *part == c.part {
                                p.clone()
                            } else {
                                format!("{p} on partition {part}")
                            };
                            match limine::fat_of(cx.disk, parts, *part) {
                                Some(fs) => lookup_kernel(&fs, p, &shown),
                                None => Resolved::Unknown(format!(
                                    "{shown} (partition {part} is not a readable FAT partition)"
                                )),
                            }
                        }
                    })
                    .collect();
                push_kernel(
                    cx,
                    KernelCheck {
                        id,
                        subject: format!("kernel ({})", c.path),
                        cfg: &c.path,
                        note: format!(
                            " (Limine {who} read{} {} on partition {}: the first found in {}{})",
                            if firmware.is_none() { "" } else { "s" },
                            c.path,
                            c.part,
                            c.basis,
                            match firmware {
                                None => String::new(),
                                Some(_) => match &found[1 - i].1 {
                                    Ok(o) => format!(
                                        "; {} reads {} on partition {} instead",
                                        found[1 - i].0.name(),
                                        o.path,
                                        o.part
                                    ),
                                    Err(_) => format!("; {} finds none", found[1 - i].0.name()),
                                },
                            }
                        ),
                        names,
                        firmware,
                    },
                    resolved,
                );
                if c.path.ends_with(".cfg") {
                    old_format_warning(cx);
                }
            }
        }
    }
}

/// A `limine.cfg` (the pre-8.x format) read by Limine 8.x: it boots, but
/// shows on every boot "The format of the config file has changed in
/// Limine version 8.x ... this warning and associated 20 second timeout
/// will persist" and waits (seen on the serial console of 8.2.0 under
/// SeaBIOS; the text is in 8.2.0's BOOTX64.EFI and limine-bios.sys).
fn old_format_warning(cx: &mut Ctx<'_>) {
    let c = cx
        .checks
        .last_mut()
        .expect("a kernel check was just pushed");
    if c.status == Status::Pass {
        c.status = Status::Warn;
        c.fix = fix("convert it to the limine.conf format (`key: value`, entries `/Name`) and rename it limine.conf");
    }
    c.message.push_str("; it is a limine.cfg: Limine 8.x warns about the old format and waits 20 s on every boot (later releases may not read it at all)");
}

fn names(refs: &[KernelRef]) -> String {
    refs.iter()
        .map(|r| match r {
            KernelRef::Path(p) | KernelRef::Unknown(p) => p.as_str(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn check_size(cx: &mut Ctx<'_>, cloud: Provider, size: u64) {
    let id = match cloud {
        Provider::Gcp => "size:gcp",
        Provider::Aws => "size:aws",
        Provider::Azure => "size:azure",
        // Not clouds: `check` keeps only Provider::CLOUDS.
        Provider::Openstack | Provider::Hyperv | Provider::Vsphere => return,
    };
    let subject = format!("size for {}", cloud.id());
    let paths: Vec<Target> = Target::of(cloud).to_vec();
    let push =
        |cx: &mut Ctx<'_>, status: Status, msg: String, fix: Option<String>, paths: Vec<Target>| {
            cx.checks.push(Check {
                id,
                subject: subject.clone(),
                status,
                message: msg,
                fix: if status == Status::Pass { None } else { fix },
                paths,
            });
        };
    match cloud {
        Provider::Gcp => {
            if let Some((msg, fix)) = growth_hazard(cx, GIB, "GiB") {
                push(cx, Status::Warn, msg, fix, paths);
                return;
            }
            let grown = size.div_ceil(GIB).max(1) * GIB;
            let msg = if grown == size {
                format!("{} GiB, a whole number of GiB as GCP requires", size / GIB)
            } else {
                format!(
                    "{size} bytes is not a whole GiB; cloudimg package grows it to {} GiB ({grown} bytes) and moves the backup GPT",
                    grown / GIB
                )
            };
            push(cx, Status::Pass, msg, None, paths);
        }
        Provider::Aws => {
            let mut notes = Vec::new();
            if size > AWS_VHD_MAX {
                notes.push(
                    "larger than 2040 GiB, the most a VHD holds: use the raw shape".to_string(),
                );
            }
            if size > VMDK_MAX {
                notes.push("larger than 2 TiB, the most a stream-optimized VMDK's grain offsets address: use the raw shape".to_string());
            }
            if notes.is_empty() {
                push(
                    cx,
                    Status::Pass,
                    format!(
                        "{size} bytes fits every AWS shape (raw any size, VHD ≤ 2040 GiB, VMDK ≤ 2 TiB); the volume is rounded up to {} GiB",
                        size.div_ceil(GIB).max(1)
                    ),
                    None,
                    paths,
                );
            } else {
                push(
                    cx,
                    Status::Warn,
                    notes.join("; "),
                    fix("import the raw shape (cloudimg package writes it)"),
                    paths,
                );
            }
            if size > AWS_BIOS_BOOT_MAX {
                cx.checks.push(Check {
                    id: "size:aws-bios",
                    subject: "size for aws legacy BIOS".into(),
                    status: Status::Warn,
                    message: format!(
                        "{size} bytes is over 2 TiB, the old VM Import limit for BIOS (MBR) boot volumes"
                    ),
                    fix: fix("boot it with UEFI (register-image --boot-mode uefi), or keep it at 2 TiB or less"),
                    paths: vec![Target {
                        cloud: Provider::Aws,
                        firmware: Firmware::Bios,
                    }],
                });
            }
        }
        Provider::Azure => {
            let grown = crate::package::azure_size(size);
            if !(AZURE_MIN..=AZURE_MAX).contains(&grown) {
                push(
                    cx,
                    Status::Fail,
                    format!(
                        "{size} bytes is outside Azure's range for uploaded disks, 20 MiB ..= 32 TiB"
                    ),
                    if grown < AZURE_MIN {
                        fix("grow the image to at least 20 MiB (truncate -s 20M IMAGE; sgdisk -e IMAGE)")
                    } else {
                        fix("shrink the image to at most 32 TiB")
                    },
                    paths,
                );
            } else if let Some((msg, fix)) = growth_hazard(cx, MIB, "MiB") {
                push(cx, Status::Warn, msg, fix, paths);
            } else if grown != size {
                push(
                    cx,
                    Status::Pass,
                    format!(
                        "{size} bytes is not a whole MiB, which Azure requires; `cloudimg package --azure` grows it to {} MiB ({grown} bytes) and moves the backup GPT",
                        grown / MIB
                    ),
                    None,
                    paths,
                );
            } else {
                push(
                    cx,
                    Status::Pass,
                    format!("{} MiB, a whole MiB inside 20 MiB ..= 32 TiB", size / MIB),
                    None,
                    paths,
                );
            }
        }
        // Returned above: no size rule for them here.
        Provider::Openstack | Provider::Hyperv | Provider::Vsphere => {}
    }
}

/// When growing the disk to the next whole `unit` would put the backup GPT
/// over data the GPT does not own (Limine up to 9.x keeps half B of its
/// BIOS stage 2 just before the backup header): the message and fix of a
/// warning saying what `cloudimg package` does instead and what the stock
/// tools would break. `None` when the first whole `unit` is safe, or the
/// GPT cannot be grown at all (the `gpt` check says why).
fn growth_hazard(cx: &Ctx<'_>, unit: u64, unit_name: &str) -> Option<(String, Option<String>)> {
    let growth = gpt::plan_growth(cx.disk, unit).ok()?;
    let first = growth.skipped.first()?;
    let foreign: Vec<_> = growth
        .skipped
        .iter()
        .flat_map(|s| s.foreign_lbas.iter().copied())
        .collect();
    let hits_stage2 = cx.limine_mbr.is_some_and(|m| m.stage2_in_lbas(&foreign));
    let whose = if hits_stage2 {
        "Limine's BIOS stage 2 (its MBR says so)"
    } else {
        "data the GPT does not own"
    };
    let sized = |b: u64| format!("{} {unit_name}", b / unit);
    let msg = format!(
        "{} bytes is not a whole {unit_name}, and a backup GPT at {} would cover {}, which {} {whose}: `truncate -s {}{}` + `sgdisk -e` would overwrite it{}; cloudimg package grows it to {} instead ({} bytes), leaving those bytes as they are",
        growth.from,
        sized(first.size),
        gpt::lba_ranges_text(&first.foreign_lbas),
        if gpt::is_one_lba(&first.foreign_lbas) { "holds" } else { "hold" },
        first.size / unit,
        &unit_name[..1],
        if hits_stage2 { " and break BIOS boot" } else { "" },
        sized(growth.to),
        growth.to,
    );
    let fix = fix(&format!(
        "nothing to do for cloudimg package; to get a {} disk, make the image a whole {unit_name} before installing the boot loader (limine bios-install), or use Limine 10.x with a BIOS boot partition, which keeps stage 2 out of the GPT areas",
        sized(first.size)
    ));
    Some((msg, fix))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::grub::strip_grub_device;
    use super::*;

    #[test]
    fn pe_checks_name_the_reason() {
        let mut b = vec![0u8; 512];
        b[0..2].copy_from_slice(b"MZ");
        b[0x3C] = 0x80;
        b[0x80..0x84].copy_from_slice(b"PE\0\0");
        b[0x84..0x86].copy_from_slice(&0x8664u16.to_le_bytes());
        b[0x98..0x9A].copy_from_slice(&0x20Bu16.to_le_bytes());
        b[0x98 + 68..0x98 + 70].copy_from_slice(&10u16.to_le_bytes());
        assert_eq!(pe_efi_app(&b), Ok(()));
        b[0x84..0x86].copy_from_slice(&0xAA64u16.to_le_bytes());
        assert_eq!(
            pe_efi_app(&b).unwrap_err(),
            "is a PE image for machine 0xaa64 (arm64), not x86-64 (0x8664)"
        );
        b[0x84..0x86].copy_from_slice(&0x8664u16.to_le_bytes());
        b[0x98 + 68] = 3;
        assert_eq!(
            pe_efi_app(&b).unwrap_err(),
            "has PE subsystem 3, not EFI application (10)"
        );
        b[0x3C] = 0xFF;
        b[0x3D] = 0xFF;
        assert_eq!(
            pe_efi_app(&b).unwrap_err(),
            "is not a PE image: no PE\\0\\0 signature at byte 65535"
        );
        assert_eq!(pe_efi_app(b"").unwrap_err(), "is empty");
    }

    #[test]
    fn limine_uris() {
        let p = |n: u32, s: &str| Ok((n, s.to_string()));
        assert_eq!(limine_uri("boot():/boot/kernel", 2), p(2, "/boot/kernel"));
        assert_eq!(limine_uri("boot(2):/k#abcd", 1), p(2, "/k"));
        assert_eq!(limine_uri("$boot:///k.gz", 2), p(2, "/k.gz"));
        assert_eq!(limine_uri("boot://3/k", 2), p(3, "/k"));
        assert_eq!(limine_uri("guid://x/k", 2), Err("guid://x/k".into()));
        assert_eq!(
            limine_uri("boot():/${ARCH}/k", 2),
            Err("boot():/${ARCH}/k".into())
        );
        let conf = "timeout: 0\n\n/capOS\n    protocol: multiboot2\n    kernel_path: boot():/capos/kernel.elf\n/Other\n    path: boot():/other\n";
        const ALL: &[&str] = &["path", "kernel_path", "image_path"];
        assert_eq!(
            limine_kernels(conf, 1, ALL),
            vec![p(1, "/capos/kernel.elf")]
        );
        let conf2 = format!("default_entry: 2\n{conf}");
        assert_eq!(limine_kernels(&conf2, 1, ALL), vec![p(1, "/other")]);
        // 8.x knows no `path:`: the second entry names no kernel for it.
        assert_eq!(
            limine_kernels(&conf2, 1, &["kernel_path"]),
            vec![p(1, "/capos/kernel.elf")]
        );
        let old = "TIMEOUT=0\n:capOS\nPROTOCOL=multiboot2\nKERNEL_PATH=boot:///kernel.elf\n";
        assert_eq!(limine_kernels(old, 1, ALL), vec![p(1, "/kernel.elf")]);
    }

    #[test]
    fn limine_versions_and_search_orders() {
        use limine::{config_search, version_in, Family, Version};
        assert_eq!(
            version_in(b"xx Limine boot Limine 10.4.0 (x86-64, UEFI)"),
            Some(Version(10, 4, 0))
        );
        assert_eq!(version_in(b"Limine 8.2"), Some(Version(8, 2, 0)));
        assert_eq!(version_in(b"no version"), None);
        let u = config_search(Firmware::Uefi, Some(Version(10, 4, 0)), None);
        assert_eq!(u.app_dir, Some("/EFI/BOOT/limine.conf"));
        assert_eq!(u.per_partition[0], "/boot/limine/limine.conf");
        let b = config_search(Firmware::Bios, Some(Version(10, 4, 0)), None);
        assert_eq!(b.app_dir, None);
        let b8 = config_search(Firmware::Bios, Some(Version(8, 2, 0)), None);
        assert_eq!(b8.per_partition[0], "/limine.conf");
        assert_eq!(b8.per_partition[4], "/EFI/BOOT/limine.conf");
        let u9 = config_search(Firmware::Uefi, Some(Version(10, 2, 1)), None);
        assert_eq!(u9.per_partition.last(), Some(&"/EFI/limine/limine.conf"));
        let guess = config_search(Firmware::Uefi, None, Some(Family::From10));
        assert_eq!(guess.app_dir, Some("/EFI/BOOT/limine.conf"));
    }

    #[test]
    fn grub_prefix_and_devices() {
        let efi = b"\0\0search --fs-uuid --set=root 1234-abcd\nset prefix=($root)/EFI/BOOT\n\0";
        assert_eq!(embedded_grub_prefix(efi).as_deref(), Some("/EFI/BOOT"));
        assert_eq!(strip_grub_device("(hd0,gpt2)/k"), Some("/k"));
        assert_eq!(strip_grub_device("$prefix/k"), None);
    }

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
