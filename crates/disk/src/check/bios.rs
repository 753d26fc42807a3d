//! The BIOS path: the MBR boot code (`bios-boot-code`) and the stage it
//! loads (`bios-stage2`): GRUB's core.img here, Limine's stages in
//! [`limine`](super::limine).

use std::io;

use super::{find, fix, limine, Ctx, Firmware, Part, Status};
use super::{GRUB_BOOT_MARK, GRUB_CORE_BLOCKLIST, GRUB_KERNEL_SECTOR};
use crate::disk::{VirtualDisk, SECTOR_SIZE};
use crate::layout::mbr;

/// How to put a BIOS loader on the disk.
const INSTALL: &str = "install a BIOS loader (grub-install --target=i386-pc, or limine bios-install), or rebuild with cloudimg image build";

/// `bios-boot-code` and the stages it loads (`bios-stage2`, and for Limine
/// `bios-stage3`).
pub(super) fn check_bios(cx: &mut Ctx<'_>, sector0: &[u8; 512], parts: Option<&[Part]>) {
    let code = &sector0[..mbr::BOOT_CODE_LEN];
    if code.iter().all(|&b| b == 0) {
        cx.push(
            "bios-boot-code",
            "MBR boot code",
            Status::Fail,
            "MBR bytes 0..440 are all zero: BIOS firmware has no code to run",
            fix(INSTALL),
            Some(Firmware::Bios),
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
            Some(Firmware::Bios),
        );
        let lba = u64::from_le_bytes(
            code[GRUB_KERNEL_SECTOR..GRUB_KERNEL_SECTOR + 8]
                .try_into()
                .expect("8 bytes"),
        );
        grub_core(cx, lba, &bios_parts);
    } else if let Some(m) = limine::recognise(sector0) {
        limine_code(cx, m, parts);
    } else {
        other_code(cx, &bios_parts);
    }
}

/// Limine's MBR code: `bios-boot-code`, then its stages 2 and 3.
fn limine_code(cx: &mut Ctx<'_>, m: limine::LimineMbr, parts: Option<&[Part]>) {
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
        Some(Firmware::Bios),
    );
    let gpt = cx.gpt;
    let report = limine::check_bios(cx, &m, parts, gpt);
    if let Some(v) = report.bios_version {
        cx.checks[at]
            .message
            .push_str(&format!("; limine-bios.sys is Limine {v}"));
    }
    cx.limine = Some(report);
    cx.limine_mbr = Some(m);
}

/// Boot code that is neither GRUB's nor Limine's: present; its next stage
/// only looked for in a BIOS boot partition.
fn other_code(cx: &mut Ctx<'_>, bios_parts: &[&Part]) {
    let bios = Some(Firmware::Bios);
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
                fix(INSTALL),
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
