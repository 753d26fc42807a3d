//! Limine: its MBR code, where its BIOS stage 2 lives (two layouts), its
//! stage 3 (`limine-bios.sys`), its version, and the config file each of
//! its firmware paths reads.
//!
//! Sources (checked against the two releases in the project's corpus,
//! `../shared/corpus/limine/{limine-8.2.0,limine-10.4.0}`):
//!
//! * MBR code: the first 512 bytes of the C array in `limine-bios-hdd.h`.
//!   Both releases start `EB 3C 90 "LIMINE  "`. At 0x76 8.2.0 has
//!   `BF A8 7D` (`mov di, 0x7DA8`, i.e. 0x1A4 + 4: the two locations
//!   follow two u16 sizes) and reads two halves; 10.4.0 has `BF A4 7D`
//!   (`mov di, 0x7DA4`: one u64 at 0x1A4) then `66 B9 00 7E 00 00`
//!   (`mov ecx, 0x7E00`: a fixed 0x7E00 bytes). Disassembled with
//!   `objdump -D -b binary -m i8086`.
//! * `limine.c` 8.2.0 lines 874-945 and 1029-1041 (`bios_install`): sizes
//!   `stage2_size_a`/`_b` (u16, bytes) at 0x1A4/0x1A6, byte locations
//!   `stage2_loc_a`/`_b` (u64) at 0x1A8/0x1B0; on GPT without a partition
//!   argument half A ends where a 128-entry primary array would end
//!   (`(partition_entry_lba + 32) * lb_size - size_a`) and half B ends at
//!   the backup header (`(secondary.partition_entry_lba + 32) * lb_size -
//!   size_b`), the entry count of both headers shrunk to fit.
//! * `limine.c` 10.4.0 lines 1003-1105: one u64 byte location at 0x1A4; on
//!   GPT the start of the BIOS boot partition ("Hah!IdontNeedEFI", at
//!   least 32 KiB, else it refuses); on MBR byte 512.
//! * Stage 3: "Remember to copy the limine-bios.sys file in either the
//!   root, /boot, /limine, or /boot/limine directories of one of the
//!   partitions" (`limine.c` 8.2.0 line 1053, 10.4.0 line 1117); the four
//!   paths are strings in both `limine-bios.sys`. The order inside a
//!   partition was measured by booting (see [`STAGE3_PATHS`]); 10.3.0's
//!   ChangeLog: "Change default path ordering for stage 3 file search on
//!   BIOS ports".
//! * Config search: see [`config_search`] (in `config.rs`, with the
//!   config's kernel and URIs).

use super::{fat, find, fix, Ctx, Firmware, Part, Status};

mod config;

use crate::disk::{VirtualDisk, SECTOR_SIZE};
use crate::layout::gpt::GptHeaderRaw;
pub use config::{config_search, ConfigSearch, FoundConfig};
pub(super) use config::{find_config, limine_kernels};

/// Limine's MBR code starts with `jmp short 0x3E; nop` and the OEM name
/// `LIMINE  ` (limine-bios-hdd.h of 8.2.0 and 10.4.0; every release since
/// 3.20 per the corpus README).
pub const LIMINE_MBR_MAGIC: &[u8; 11] = b"\xEB\x3C\x90LIMINE  ";
/// Offset of the stage-2 location field in Limine's MBR code (limine.c
/// `device_write(..., 0x1a4 + ...)`).
pub const STAGE2_INFO: usize = 0x1A4;
/// `mov di, 0x7DA8` (0x7C00 + 0x1A8): the 9.x-and-earlier MBR code points
/// DI at the first location, after the two u16 sizes (8.2.0, byte 0x76).
pub const MOV_DI_HALVES: [u8; 3] = [0xBF, 0xA8, 0x7D];
/// `mov di, 0x7DA4` (0x7C00 + 0x1A4): the 10.x MBR code points DI at the
/// single location (10.4.0, byte 0x76).
pub const MOV_DI_SINGLE: [u8; 3] = [0xBF, 0xA4, 0x7D];
/// Bytes the 10.x MBR code reads from the stage-2 location
/// (`66 B9 00 7E 00 00`, `mov ecx, 0x7E00`, 10.4.0 byte 0x82).
pub const STAGE2_READ_10X: u64 = 0x7E00;
/// Where Limine's BIOS stage 2 looks for stage 3 on each partition, in
/// order, up to 10.2. Measured with 8.2.0 under SeaBIOS (a good copy in
/// one place, a bad one in the others: the first present path is taken,
/// a bad copy there stops it; the four paths are strings in
/// limine-bios.sys). The 10.0 to 10.2 order is NOT measured (assumed
/// unchanged until the 10.3.0 ChangeLog's "Change default path ordering
/// for stage 3 file search on BIOS ports").
pub const STAGE3_PATHS: [&str; 4] = [
    "/limine-bios.sys",
    "/limine/limine-bios.sys",
    "/boot/limine-bios.sys",
    "/boot/limine/limine-bios.sys",
];
/// The same from 10.3 on; measured the same way with 10.4.0.
pub const STAGE3_PATHS_10_3: [&str; 4] = [
    "/boot/limine/limine-bios.sys",
    "/boot/limine-bios.sys",
    "/limine/limine-bios.sys",
    "/limine-bios.sys",
];

/// Which layout the MBR code uses for stage 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Family {
    /// Limine up to 9.x: two halves, sizes and locations at 0x1A4.
    #[serde(rename = "9.x-or-earlier")]
    UpTo9,
    /// Limine 10.x and later: one location at 0x1A4, 0x7E00 bytes read.
    #[serde(rename = "10.x-or-later")]
    From10,
}

impl Family {
    fn name(self) -> &'static str {
        match self {
            Family::UpTo9 => "9.x or earlier",
            Family::From10 => "10.x or later",
        }
    }
}

/// A Limine version read from a binary (`Limine X.Y.Z`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u32, pub u32, pub u32);

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

impl serde::Serialize for Version {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The first `Limine X.Y[.Z]` in `b` (both binaries of both releases
/// carry e.g. "Limine 8.2.0" and "Limine 8.2.0 (x86-64, UEFI)").
pub fn version_in(b: &[u8]) -> Option<Version> {
    let mut from = 0;
    while let Some(at) = find(&b[from..], b"Limine ") {
        let start = from + at + b"Limine ".len();
        let rest = &b[start..b.len().min(start + 24)];
        let end = rest
            .iter()
            .position(|c| !(c.is_ascii_digit() || *c == b'.'))
            .unwrap_or(rest.len());
        let nums: Vec<u32> = std::str::from_utf8(&rest[..end])
            .unwrap_or("")
            .split('.')
            .map_while(|s| s.parse().ok())
            .collect();
        if nums.len() >= 2 {
            return Some(Version(nums[0], nums[1], nums.get(2).copied().unwrap_or(0)));
        }
        from = start;
    }
    None
}

/// Where stage 2 is, as the MBR says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage2 {
    /// Two halves: (bytes, byte offset) each.
    Halves([(u64, u64); 2]),
    /// One contiguous piece at this byte offset; the MBR reads
    /// [`STAGE2_READ_10X`] bytes.
    Single(u64),
}

/// Limine's MBR code, recognised.
#[derive(Debug, Clone, Copy)]
pub struct LimineMbr {
    /// Its layout family.
    pub family: Family,
    /// How the family was told.
    pub evidence: &'static str,
    /// Where it loads stage 2 from.
    pub stage2: Stage2,
}

impl LimineMbr {
    /// The byte ranges stage 2 occupies as the MBR says: the two halves
    /// (up to 9.x), or the [`STAGE2_READ_10X`] bytes the 10.x MBR code
    /// reads from its one location. Empty halves are left out.
    pub fn stage2_ranges(&self) -> Vec<std::ops::Range<u64>> {
        match self.stage2 {
            Stage2::Halves(halves) => halves
                .iter()
                .filter(|(len, _)| *len > 0)
                .map(|&(len, at)| at..at.saturating_add(len))
                .collect(),
            Stage2::Single(at) => {
                let piece = at..at.saturating_add(STAGE2_READ_10X);
                vec![piece]
            }
        }
    }

    /// Whether any of the inclusive LBA ranges `lbas` touches stage 2.
    pub fn stage2_in_lbas(&self, lbas: &[[u64; 2]]) -> bool {
        let pieces = self.stage2_ranges();
        lbas.iter().any(|&[first, last]| {
            let bytes = first * SECTOR_SIZE..(last + 1) * SECTOR_SIZE;
            pieces
                .iter()
                .any(|h| h.start < bytes.end && bytes.start < h.end)
        })
    }
}

/// The Limine MBR of `disk`, when LBA 0 holds Limine's boot code.
pub fn read_mbr(disk: &dyn VirtualDisk) -> Option<LimineMbr> {
    let mut sector0 = [0u8; 512];
    disk.read_at(&mut sector0, 0).ok()?;
    recognise(&sector0)
}

/// Recognise Limine's MBR code and its family; `None` when sector 0 is not
/// Limine's.
pub fn recognise(sector0: &[u8; 512]) -> Option<LimineMbr> {
    if !sector0.starts_with(LIMINE_MBR_MAGIC) {
        return None;
    }
    let code = &sector0[0x3E..STAGE2_INFO];
    let u16at = |i: usize| u64::from(u16::from_le_bytes([sector0[i], sector0[i + 1]]));
    let u64at = |i: usize| u64::from_le_bytes(sector0[i..i + 8].try_into().expect("8 bytes"));
    let o = STAGE2_INFO;
    let (family, evidence) = if find(code, &MOV_DI_SINGLE).is_some() {
        (
            Family::From10,
            "`mov di, 0x7DA4`: one stage-2 location at 0x1A4",
        )
    } else if find(code, &MOV_DI_HALVES).is_some() {
        (
            Family::UpTo9,
            "`mov di, 0x7DA8`: two stage-2 sizes and locations at 0x1A4",
        )
    } else if u16at(o) % SECTOR_SIZE == 0 && u16at(o) != 0 && u64at(o + 4) != 0 {
        (
            Family::UpTo9,
            "code not matched; the 0x1A4 field reads as two sizes and locations",
        )
    } else {
        (
            Family::From10,
            "code not matched; the 0x1A4 field reads as one location",
        )
    };
    let stage2 = match family {
        Family::UpTo9 => Stage2::Halves([(u16at(o), u64at(o + 4)), (u16at(o + 2), u64at(o + 12))]),
        Family::From10 => Stage2::Single(u64at(o)),
    };
    Some(LimineMbr {
        family,
        evidence,
        stage2,
    })
}

/// Bytes a boot loader owns where its boot code points (for the growth
/// checks: moving the backup GPT must not cover those outside the
/// partitions).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LoaderBytes {
    /// First byte.
    pub offset: u64,
    /// Length in bytes (10.x: the 0x7E00 bytes the MBR code reads).
    pub len: u64,
    /// What they are, e.g. "Limine stage 2, half B".
    pub what: String,
    /// The BIOS boot partition holding them, if any (`None`: outside the
    /// partitions, e.g. Limine 9.x's halves next to the GPT arrays).
    pub partition: Option<u32>,
}

/// The Limine facts `check` found (the `limine` object of `--json`).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct LimineReport {
    /// Layout family of the MBR code (`None`: no Limine MBR code).
    pub family: Option<Family>,
    /// Version of `BOOTX64.EFI`.
    pub uefi_version: Option<Version>,
    /// Version of the `limine-bios.sys` BIOS stage 2 would load.
    pub bios_version: Option<Version>,
    /// Stage 2 pieces (byte ranges), as the MBR says.
    pub stage2: Vec<LoaderBytes>,
    /// `limine-bios.sys` stage 2 loads: "partition N: /path".
    pub stage3: Option<String>,
    /// The config UEFI Limine reads: "partition N: /path".
    pub uefi_config: Option<String>,
    /// The config BIOS Limine reads: "partition N: /path".
    pub bios_config: Option<String>,
}

fn open_fat<'a>(disk: &'a dyn VirtualDisk, p: &Part) -> Option<fat::Fat<'a>> {
    fat::Fat::open(disk, p.offset(), p.len()).ok()
}

fn read(fs: &fat::Fat<'_>, path: &str) -> Option<Vec<u8>> {
    let e = fs.lookup(path).ok()?;
    fs.read(&e, super::MAX_FILE_READ).ok()
}

/// A byte range on the disk.
#[derive(Debug, Clone, Copy)]
struct Range {
    start: u64,
    end: u64,
}

impl Range {
    fn overlaps(&self, o: &Range) -> bool {
        self.start < o.end && o.start < self.end
    }
    fn within(&self, o: &Range) -> bool {
        self.start >= o.start && self.end <= o.end
    }
    fn lbas(&self) -> String {
        format!(
            "LBA {}-{}",
            self.start / SECTOR_SIZE,
            self.end.div_ceil(SECTOR_SIZE).saturating_sub(1)
        )
    }
}

/// The bytes of a partition.
fn part_range(p: &Part) -> Range {
    Range {
        start: p.offset(),
        end: p.offset().saturating_add(p.len()),
    }
}

/// The GPT areas per the headers found: primary header and array (from
/// LBA 1) and backup header and array (from the primary's AlternateLBA,
/// else the last LBA). Array sizes from NumberOfPartitionEntries x
/// SizeOfPartitionEntry, which Limine up to 9.x shrinks.
fn gpt_areas(disk: &dyn VirtualDisk) -> Vec<(Range, String)> {
    let mut out = Vec::new();
    let sectors = disk.size() / SECTOR_SIZE;
    let read_header = |lba: u64| -> Option<GptHeaderRaw> {
        let mut s = [0u8; 512];
        disk.read_at(&mut s, lba.checked_mul(SECTOR_SIZE)?).ok()?;
        let h = GptHeaderRaw(s);
        h.has_signature().then_some(h)
    };
    let primary = read_header(1);
    let backup_lba = primary
        .as_ref()
        .map(|h| h.header().alternate_lba)
        .filter(|&l| l > 1 && l < sectors)
        .unwrap_or(sectors.saturating_sub(1));
    for (name, lba, h) in [
        ("primary", 1, primary.clone()),
        ("backup", backup_lba, read_header(backup_lba)),
    ] {
        let Some(h) = h else { continue };
        let h = h.header();
        out.push((
            Range {
                start: lba * SECTOR_SIZE,
                end: (lba + 1) * SECTOR_SIZE,
            },
            format!("the {name} GPT header (LBA {lba})"),
        ));
        let n = h.array_sectors().min(sectors);
        if n > 0 {
            let a = Range {
                start: h.entries_lba.saturating_mul(SECTOR_SIZE),
                end: h.entries_lba.saturating_add(n).saturating_mul(SECTOR_SIZE),
            };
            out.push((
                a,
                format!(
                    "the {name} GPT array ({}, {} entries)",
                    a.lbas(),
                    h.num_entries
                ),
            ));
        }
    }
    out
}

/// The BIOS stage checks for Limine MBR code: `bios-stage2` and
/// `bios-stage3`. Returns what was found for the report.
pub(super) fn check_bios(
    cx: &mut Ctx<'_>,
    m: &LimineMbr,
    parts: Option<&[Part]>,
    gpt: bool,
) -> LimineReport {
    let mut report = LimineReport {
        family: Some(m.family),
        ..LimineReport::default()
    };
    let parts = parts.unwrap_or_default();
    stage2(cx, m, parts, gpt, &mut report);
    stage3(cx, m, parts, &mut report);
    report
}

fn stage2(cx: &mut Ctx<'_>, m: &LimineMbr, parts: &[Part], gpt: bool, report: &mut LimineReport) {
    let size = cx.disk.size();
    let seen = Surroundings {
        disk: cx.disk,
        inside: Range {
            start: SECTOR_SIZE,
            end: size - size % SECTOR_SIZE,
        },
        parts,
        areas: if gpt { gpt_areas(cx.disk) } else { Vec::new() },
        family: m.family,
        gpt,
    };
    let mut problems = Vec::new();
    let mut places = Vec::new();
    for (r, name, len) in &stage2_pieces(m) {
        let what = format!("{name} ({len} bytes at byte {}, {})", r.start, r.lbas());
        let holder = parts
            .iter()
            .find(|p| p.bios_boot && r.within(&part_range(p)))
            .map(|p| p.index);
        report.stage2.push(LoaderBytes {
            offset: r.start,
            len: *len,
            what: format!("Limine stage 2, {name}"),
            partition: holder,
        });
        if *len == 0 {
            problems.push(format!("{what} is empty"));
            continue;
        }
        let (mine, in_bios_part) = seen.faults(r);
        if !mine.is_empty() {
            problems.push(format!("{what}: {}", mine.join(", ")));
        }
        if seen.overlaps_disk(r) {
            places.push(match in_bios_part {
                Some(i) => format!("{what} in BIOS boot partition {i}"),
                None => what,
            });
        }
    }
    push_stage2(cx, m, &problems, &places);
}

/// The pieces of stage 2 the MBR points at: (bytes, name, length).
fn stage2_pieces(m: &LimineMbr) -> Vec<(Range, String, u64)> {
    match m.stage2 {
        Stage2::Halves(h) => h
            .iter()
            .zip(["A", "B"])
            .filter(|((len, _), name)| *len != 0 || *name == "A")
            .map(|(&(len, at), name)| {
                (
                    Range {
                        start: at,
                        end: at.saturating_add(len),
                    },
                    format!("half {name}"),
                    len,
                )
            })
            .collect(),
        Stage2::Single(at) => vec![(
            Range {
                start: at,
                end: at.saturating_add(STAGE2_READ_10X),
            },
            "stage 2".to_string(),
            STAGE2_READ_10X,
        )],
    }
}

/// What a stage-2 piece must stay clear of.
struct Surroundings<'a> {
    disk: &'a dyn VirtualDisk,
    /// The disk after the MBR, in whole sectors.
    inside: Range,
    parts: &'a [Part],
    /// The GPT areas (none without a GPT).
    areas: Vec<(Range, String)>,
    family: Family,
    gpt: bool,
}

impl Surroundings<'_> {
    /// Whether some of `r` lies inside the disk.
    fn overlaps_disk(&self, r: &Range) -> bool {
        r.start.max(self.inside.start) < r.end.min(self.inside.end)
    }

    /// What is wrong with the (non-empty) piece `r`, and the BIOS boot
    /// partition wholly holding it.
    fn faults(&self, r: &Range) -> (Vec<String>, Option<u32>) {
        let mut mine = Vec::new();
        if !r.within(&self.inside) {
            mine.push(format!(
                "is not inside the disk's {} sectors after the MBR",
                self.disk.size() / SECTOR_SIZE
            ));
        }
        // What of it lies inside the disk is still checked.
        let inside = Range {
            start: r.start.max(self.inside.start),
            end: r.end.min(self.inside.end),
        };
        if inside.start >= inside.end {
            return (mine, None);
        }
        let in_bios_part = self.partition_faults(r, &mut mine);
        for (a, area) in &self.areas {
            if r.overlaps(a) {
                mine.push(format!("overlaps {area}"));
            }
        }
        if self.family == Family::From10 && self.gpt && in_bios_part.is_none() {
            mine.push(
                "is not inside a BIOS boot partition, where Limine 10.x installs it on a GPT disk"
                    .to_string(),
            );
        }
        match zero_sector(self.disk, &inside, self.family) {
            Ok(None) => {}
            Ok(Some(lba)) => mine.push(format!(
                "has an all-zero sector at LBA {lba} (Limine's stage 2 has none): it was overwritten"
            )),
            Err(e) => mine.push(format!("cannot be read: {e}")),
        }
        (mine, in_bios_part)
    }

    /// The partitions `r` overlaps: fine only inside a BIOS boot
    /// partition (returned).
    fn partition_faults(&self, r: &Range, mine: &mut Vec<String>) -> Option<u32> {
        let mut in_bios_part = None;
        for p in self.parts {
            let pr = part_range(p);
            if !r.overlaps(&pr) {
                continue;
            }
            if p.bios_boot && r.within(&pr) {
                in_bios_part = Some(p.index);
            } else if p.bios_boot {
                mine.push(format!(
                    "runs past the end of BIOS boot partition {} (LBA {}+{})",
                    p.index, p.first_lba, p.sectors
                ));
            } else {
                mine.push(format!(
                    "overlaps partition {} (LBA {}+{})",
                    p.index, p.first_lba, p.sectors
                ));
            }
        }
        in_bios_part
    }
}

/// The `bios-stage2` check from what was found of each piece.
fn push_stage2(cx: &mut Ctx<'_>, m: &LimineMbr, problems: &[String], places: &[String]) {
    let layout = match m.stage2 {
        Stage2::Halves(_) => "two halves",
        Stage2::Single(_) => "one piece",
    };
    let reinstall = match m.family {
        Family::UpTo9 => fix("run limine bios-install IMAGE again (it rewrites both halves and their locations); to resize the disk keep the bytes between the backup GPT array and header: copy the old end, or grow with cloudimg package"),
        Family::From10 => fix("give the disk a BIOS boot partition of at least 32 KiB (e.g. sgdisk -a 1 -n 0:40:2047 -t 0:EF02) and run limine bios-install IMAGE again"),
    };
    if problems.is_empty() {
        cx.push(
            "bios-stage2",
            "Limine stage 2",
            Status::Pass,
            format!(
                "{layout} ({} layout): {}; present, inside the disk, clear of the partitions and GPT areas",
                m.family.name(),
                places.join("; ")
            ),
            None,
            Some(Firmware::Bios),
        );
    } else {
        cx.push(
            "bios-stage2",
            "Limine stage 2",
            Status::Fail,
            format!(
                "stage 2 is damaged or misplaced ({layout}, {} layout): {}",
                m.family.name(),
                problems.join("; ")
            ),
            reinstall,
            Some(Firmware::Bios),
        );
    }
}

/// The first all-zero sector of a stage-2 piece, by LBA. Limine's stage 2
/// (decompressor and compressed data) has no all-zero 512-byte run in
/// either release of the corpus (longest zero run: 9 bytes), so an
/// all-zero sector means the bytes were overwritten (e.g. by a GPT array,
/// mostly zeros). 9.x halves: every sector but the last (which may be
/// padding); 10.x: the first sector only (the MBR reads 0x7E00 bytes, more
/// than stage 2, whose length the disk does not record).
fn zero_sector(disk: &dyn VirtualDisk, r: &Range, family: Family) -> std::io::Result<Option<u64>> {
    let sectors = (r.end - r.start) / SECTOR_SIZE;
    let check = match family {
        Family::UpTo9 => sectors.saturating_sub(1).max(1),
        Family::From10 => 1,
    };
    let mut s = [0u8; 512];
    for i in 0..check {
        let at = r.start + i * SECTOR_SIZE;
        disk.read_at(&mut s, at)?;
        if s.iter().all(|&b| b == 0) {
            return Ok(Some(at / SECTOR_SIZE));
        }
    }
    Ok(None)
}

/// The stage-3 paths in the order the stage 2 of `family` tries them;
/// 10.x: by the version of the copies found (10.3+ when unread).
fn stage3_order(family: Family, found: Option<Version>) -> [&'static str; 4] {
    match (family, found) {
        (Family::UpTo9, _) => STAGE3_PATHS,
        (Family::From10, Some(v)) if v < Version(10, 3, 0) => STAGE3_PATHS,
        (Family::From10, _) => STAGE3_PATHS_10_3,
    }
}

/// The `limine-bios.sys` stage 2 takes from one FAT partition, by the
/// order of its release (told by the copies of the MBR code's `family`):
/// its path, length and version, and which other copies it is taken
/// before. `None` when the partition has none.
fn stage3_pick(
    fs: &fat::Fat<'_>,
    family: Family,
) -> Option<(&'static str, u64, Option<Version>, String)> {
    let present: Vec<(&str, u64, Option<Version>)> = STAGE3_PATHS
        .iter()
        .filter_map(|&path| {
            let e = fs.lookup(path).ok()?;
            let bytes = fs.read(&e, super::MAX_FILE_READ).unwrap_or_default();
            Some((path, e.size, version_in(&bytes)))
        })
        .collect();
    if present.is_empty() {
        return None;
    }
    // The stage 2 in the MBR gap is of the MBR code's family: its
    // release is told by the copies of that family.
    let guess = present
        .iter()
        .filter_map(|f| f.2)
        .filter(|v| (v.0 >= 10) == (family == Family::From10))
        .max();
    let order = stage3_order(family, guess);
    let (path, len, version) = order
        .iter()
        .find_map(|o| present.iter().find(|f| f.0 == *o))
        .copied()
        .expect("a present path is in the order");
    let others = if present.len() > 1 {
        format!(
            " (taken before {}, by {}'s order)",
            present
                .iter()
                .filter(|f| f.0 != path)
                .map(|f| f.0)
                .collect::<Vec<_>>()
                .join(", "),
            if order == STAGE3_PATHS_10_3 {
                "10.3+"
            } else {
                "9.x/8.x"
            }
        )
    } else {
        String::new()
    };
    Some((path, len, version, others))
}

/// What stage 2 finds on each partition, first partition first: the
/// first present path in its order. A bad copy there fails that
/// partition and stage 2 goes on to the next (common/entry.s2.c
/// `volume_iterate_parts(... if (stage3_init(_PART)) break;)`).
fn stage3(cx: &mut Ctx<'_>, m: &LimineMbr, parts: &[Part], report: &mut LimineReport) {
    let bios = Some(Firmware::Bios);
    let copy = fix("copy limine-bios.sys of the same release as the MBR code to /boot/limine/ on the ESP (mcopy -i IMAGE@@OFFSET limine-bios.sys ::/boot/limine/)");
    let mut unreadable = Vec::new();
    let mut rejected = Vec::new();
    for p in parts {
        let Some(fs) = open_fat(cx.disk, p) else {
            unreadable.push(p.index.to_string());
            continue;
        };
        let Some((path, len, version, others)) = stage3_pick(&fs, m.family) else {
            continue;
        };
        let index = p.index;
        let v = version.map_or("no version string".to_string(), |v| format!("Limine {v}"));
        let wrong_family = version.is_some_and(|v| (v.0 >= 10) != (m.family == Family::From10));
        if wrong_family {
            rejected.push(format!(
                "{path} on partition {index} is {v}, but the MBR code is the {} layout: stage 2 rejects a stage 3 of another build (\"build ID mismatch\")",
                m.family.name()
            ));
            continue;
        }
        if len == 0 {
            rejected.push(format!("{path} on partition {index} is empty"));
            continue;
        }
        report.stage3 = Some(format!("partition {index}: {path}"));
        report.bios_version = version;
        let (status, tail) = if rejected.is_empty() {
            (Status::Pass, String::new())
        } else {
            (
                Status::Warn,
                format!(
                    "; an earlier partition's copy is rejected first: {}",
                    rejected.join("; ")
                ),
            )
        };
        cx.push(
            "bios-stage3",
            format!("limine-bios.sys (partition {index})"),
            status,
            format!("{path} on partition {index}, {len} bytes, {v}{others}{tail}"),
            copy,
            bios,
        );
        return;
    }
    let message = if rejected.is_empty() {
        format!(
            "no limine-bios.sys in /, /limine, /boot or /boot/limine of any FAT partition{}: Limine's stage 2 stops with \"Stage 3 file not found\"",
            if unreadable.is_empty() {
                String::new()
            } else {
                format!(" (partition {} not FAT, not read)", unreadable.join(", "))
            }
        )
    } else {
        rejected.join("; ")
    };
    cx.push(
        "bios-stage3",
        "limine-bios.sys",
        Status::Fail,
        message,
        if rejected.is_empty() {
            copy
        } else {
            fix("install the MBR code and limine-bios.sys from the same Limine release (limine bios-install with that release's host tool), and keep one copy")
        },
        bios,
    );
}

/// The version of Limine's UEFI loader: the `Limine X.Y.Z` string of
/// BOOTX64.EFI on the ESP.
pub(super) fn uefi_version(
    disk: &dyn VirtualDisk,
    parts: &[Part],
    esp: Option<u32>,
) -> Option<Version> {
    let p = parts.iter().find(|p| Some(p.index) == esp)?;
    let fs = open_fat(disk, p)?;
    version_in(&read(&fs, super::EFI_LOADER_PATH)?)
}

/// Whether a partition index names a FAT partition, and its file system.
pub(super) fn fat_of<'a>(
    disk: &'a dyn VirtualDisk,
    parts: &[Part],
    index: u32,
) -> Option<fat::Fat<'a>> {
    open_fat(disk, parts.iter().find(|p| p.index == index)?)
}
