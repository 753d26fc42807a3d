//! The partition tables: the protective MBR (`mbr`), both GPT copies
//! (`gpt`) and the partitions' alignment (`alignment`).

use super::{fix, Ctx, Part, Status, MBR_ESP_TYPE};
use crate::disk::{MIB, SECTOR_SIZE};
use crate::layout::gpt::{self, GptLayout, BIOS_BOOT_TYPE, ESP_TYPE};
use crate::layout::mbr::{self, Mbr, MbrKind};
use crate::layout::{Guid, PartitionTable};

/// `size-sector`: the virtual size is a whole number of sectors.
pub(super) fn check_size_sector(cx: &mut Ctx<'_>, size: u64) {
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
}

pub(super) fn check_mbr(cx: &mut Ctx<'_>, m: &Mbr) {
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
        MbrKind::Protective | MbrKind::Hybrid => protective(cx, m, subject, rebuild),
    }
}

/// The `mbr` check of an MBR with a 0xEE entry (protective or hybrid).
fn protective(cx: &mut Ctx<'_>, m: &Mbr, subject: &str, rebuild: Option<String>) {
    let sectors = cx.disk.size() / SECTOR_SIZE;
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

/// The GPT check; the partitions (from the GPT, or a classic MBR), or
/// `None` when there is no readable table.
pub(super) fn check_gpt(cx: &mut Ctx<'_>, m: &Mbr) -> Option<Vec<Part>> {
    let table = crate::layout::read_table(cx.disk);
    // MBR findings (offsets inside LBA 0) belong to the `mbr` check.
    let findings: Vec<String> = gpt::verify(cx.disk)
        .into_iter()
        .filter(|f| f.offset.is_none_or(|o| o >= SECTOR_SIZE))
        .map(|f| f.to_string())
        .collect();
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
            Some(gpt_parts(&g))
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
            Some(mbr_parts(m))
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

/// The partitions of a GPT.
fn gpt_parts(g: &GptLayout) -> Vec<Part> {
    let esp_type: Guid = ESP_TYPE.parse().expect("constant GUID parses");
    let bios_type: Guid = BIOS_BOOT_TYPE.parse().expect("constant GUID parses");
    g.partitions
        .iter()
        .map(|p| Part {
            index: p.index,
            first_lba: p.first_lba,
            sectors: p.last_lba.saturating_sub(p.first_lba).saturating_add(1),
            esp: p.type_guid == esp_type,
            bios_boot: p.type_guid == bios_type,
        })
        .collect()
}

/// The partitions of a classic MBR (an ESP is type 0xEF there).
fn mbr_parts(m: &Mbr) -> Vec<Part> {
    m.partitions
        .iter()
        .map(|p| Part {
            index: u32::from(p.index),
            first_lba: u64::from(p.start_lba),
            sectors: u64::from(p.sectors),
            esp: p.kind == MBR_ESP_TYPE,
            bios_boot: false,
        })
        .collect()
}

pub(super) fn check_alignment(cx: &mut Ctx<'_>, parts: Option<&[Part]>) {
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
