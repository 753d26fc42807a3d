//! Reading and checking a disk's GPT: both copies, their agreement, the
//! protective MBR and the partitions ([`verify`], [`read_table`]).

use serde::Serialize;

use super::wire::*;
use crate::disk::{VirtualDisk, SECTOR_SIZE};
use crate::error::{Error, IoContext, Result};
use crate::layout::mbr::{self, Mbr, MbrKind};
use crate::layout::{Guid, PartitionTable};
use crate::verify::Finding;

/// A decoded GPT, for `inspect`.
#[derive(Debug, Clone, Serialize)]
pub struct GptLayout {
    /// Which copy was decoded: "primary" or "backup".
    pub source: &'static str,
    /// Disk GUID.
    pub disk_guid: Guid,
    /// LBA of the primary header (1).
    pub primary_header_lba: u64,
    /// LBA of the backup header (AlternateLBA of the primary).
    pub backup_header_lba: u64,
    /// First usable LBA.
    pub first_usable_lba: u64,
    /// Last usable LBA (inclusive).
    pub last_usable_lba: u64,
    /// LBA of the decoded copy's partition array.
    pub entries_lba: u64,
    /// Number of partition entries.
    pub num_entries: u32,
    /// Size of one entry.
    pub entry_size: u32,
    /// The kind of MBR in LBA 0.
    pub mbr: MbrKind,
    /// Used entries, in index order.
    pub partitions: Vec<GptPartition>,
}

/// One copy (primary or backup) of the GPT as read from a disk.
#[derive(Debug, Clone)]
pub(super) struct GptCopy {
    pub(super) lba: u64,
    pub(super) raw: GptHeaderRaw,
    pub(super) hdr: GptHeader,
    pub(super) header_ok: bool,
    /// The array bytes, when they could be read.
    pub(super) array: Option<Vec<u8>>,
    pub(super) array_ok: bool,
}

impl GptCopy {
    pub(super) fn sound(&self) -> bool {
        self.header_ok && self.array_ok
    }
    pub(super) fn partitions(&self) -> Vec<(u64, GptPartition)> {
        let Some(a) = &self.array else {
            return Vec::new();
        };
        let es = self.hdr.entry_size as usize;
        a.chunks_exact(es)
            .enumerate()
            .filter_map(|(i, e)| {
                let off = self.hdr.entries_lba * SECTOR_SIZE + (i * es) as u64;
                GptPartition::parse(i as u32 + 1, e).map(|p| (off, p))
            })
            .collect()
    }
}

/// Everything read from a disk's partition structures.
pub(super) struct Inspection {
    pub(super) mbr: Mbr,
    pub(super) mbr_sector: [u8; 512],
    pub(super) primary: Option<GptCopy>,
    pub(super) backup: Option<GptCopy>,
    /// Whether any sign of a GPT was seen (0xEE entry or a signature).
    pub(super) gpt_present: bool,
    /// Problems with the headers and arrays (CRCs, locations, agreement):
    /// a GPT with any of these is corrupt.
    pub(super) table: Vec<Finding>,
    /// Other problems (protective MBR, partition ranges).
    pub(super) other: Vec<Finding>,
}

fn read_sector(disk: &dyn VirtualDisk, lba: u64) -> Result<[u8; 512]> {
    let mut s = [0u8; 512];
    disk.read_at(&mut s, lba * SECTOR_SIZE)
        .ctx(&format!("reading LBA {lba}"))
        .map_err(|e| e.at(lba * SECTOR_SIZE))?;
    Ok(s)
}

/// Read the header at `lba` and its array, reporting what is wrong with
/// them. `None` when there is no header there at all.
fn read_copy(
    disk: &dyn VirtualDisk,
    sectors: u64,
    lba: u64,
    which: &str,
    f: &mut Vec<Finding>,
) -> Result<Option<GptCopy>> {
    let base = lba * SECTOR_SIZE;
    let raw = GptHeaderRaw(read_sector(disk, lba)?);
    if !raw.has_signature() {
        f.push(Finding::at(
            base,
            format!("{which} GPT header missing: no \"EFI PART\" signature at LBA {lba}"),
        ));
        return Ok(None);
    }
    let hdr = raw.header();
    let header_ok = header_crc_ok(&raw, &hdr, base, which, f);
    let mut copy = GptCopy {
        lba,
        raw,
        hdr,
        header_ok,
        array: None,
        array_ok: false,
    };
    if !header_ok || !array_readable(&hdr, sectors, lba, which, f) {
        return Ok(Some(copy));
    }
    let mut array = vec![0u8; hdr.array_bytes() as usize];
    disk.read_at(&mut array, hdr.entries_lba * SECTOR_SIZE)
        .ctx("reading a GPT partition array")
        .map_err(|e| e.at(hdr.entries_lba * SECTOR_SIZE))?;
    let c = crc32(&array);
    copy.array_ok = c == hdr.entries_crc;
    if !copy.array_ok {
        f.push(Finding::at(
            hdr.entries_lba * SECTOR_SIZE,
            format!(
                "{which} partition array CRC mismatch (expected {:08x}, found {c:08x})",
                hdr.entries_crc
            ),
        ));
    }
    copy.array = Some(array);
    Ok(Some(copy))
}

/// Whether the header at byte `base` has a HeaderSize the CRC can be
/// computed over and the CRC it stores; a finding when not.
fn header_crc_ok(
    raw: &GptHeaderRaw,
    hdr: &GptHeader,
    base: u64,
    which: &str,
    f: &mut Vec<Finding>,
) -> bool {
    match raw.computed_crc() {
        None => {
            f.push(Finding::at(
                base + H_HEADER_SIZE as u64,
                format!(
                    "{which} header size {} is outside 92..=512",
                    hdr.header_size
                ),
            ));
            false
        }
        Some(c) if c != hdr.header_crc => {
            f.push(Finding::at(
                base + H_HEADER_CRC as u64,
                format!(
                    "{which} header CRC mismatch (expected {c:08x}, found {:08x})",
                    hdr.header_crc
                ),
            ));
            false
        }
        Some(_) => true,
    }
}

/// The fields of a header (with a good CRC) at `lba`: revision and MyLBA
/// (findings only), then entry size, array size and array location,
/// whose defects leave the array unread (`false`).
fn array_readable(
    hdr: &GptHeader,
    sectors: u64,
    lba: u64,
    which: &str,
    f: &mut Vec<Finding>,
) -> bool {
    let base = lba * SECTOR_SIZE;
    if hdr.revision != REVISION_1_0 {
        f.push(Finding::at(
            base + H_REVISION as u64,
            format!(
                "{which} header revision is {:08x}, expected 00010000",
                hdr.revision
            ),
        ));
    }
    if hdr.my_lba != lba {
        f.push(Finding::at(
            base + H_MY_LBA as u64,
            format!(
                "{which} header MyLBA is {}, but it is at LBA {lba}",
                hdr.my_lba
            ),
        ));
    }
    let es = hdr.entry_size;
    if es < ENTRY_SIZE || !(es / ENTRY_SIZE).is_power_of_two() || es % ENTRY_SIZE != 0 {
        f.push(Finding::at(
            base + H_ENTRY_SIZE as u64,
            format!("{which} header partition entry size is {es}, not 128 x 2^n"),
        ));
        return false;
    }
    if hdr.array_bytes() > MAX_ARRAY_BYTES {
        f.push(Finding::at(
            base + H_NUM_ENTRIES as u64,
            format!(
                "{which} partition array of {} entries x {es} bytes is larger than {MAX_ARRAY_BYTES} bytes",
                hdr.num_entries
            ),
        ));
        return false;
    }
    let end = hdr.entries_lba.checked_add(hdr.array_sectors());
    if hdr.entries_lba < 2 || end.is_none_or(|e| e > sectors) {
        f.push(Finding::at(
            base + H_ENTRIES_LBA as u64,
            format!(
                "{which} partition array at LBA {} ({} sectors) lies outside the {sectors}-sector disk",
                hdr.entries_lba,
                hdr.array_sectors()
            ),
        ));
        return false;
    }
    true
}

pub(super) fn inspect(disk: &dyn VirtualDisk) -> Result<Inspection> {
    inspect_at(disk, None)
}

/// Inspect, looking for the backup header at `backup_at` instead of the
/// last LBA (used by [`grow`](super::grow) for a disk already enlarged
/// without moving its backup, which `sgdisk -e` also accepts).
pub(super) fn inspect_at(disk: &dyn VirtualDisk, backup_at: Option<u64>) -> Result<Inspection> {
    let (mbr, mbr_sector) = Mbr::read(disk)?;
    let size = disk.size();
    let sectors = size / SECTOR_SIZE;
    let mut ins = Inspection {
        mbr,
        mbr_sector,
        primary: None,
        backup: None,
        gpt_present: false,
        table: Vec::new(),
        other: Vec::new(),
    };
    let sig_at = |lba: u64| -> Result<bool> {
        Ok(lba < sectors && lba > 0 && read_sector(disk, lba)?[..8] == HEADER_SIGNATURE)
    };
    let has_ee = ins.mbr.protective_entry().is_some();
    ins.gpt_present =
        has_ee || sig_at(PRIMARY_HEADER_LBA)? || (sectors > 2 && sig_at(sectors - 1)?);
    if !ins.gpt_present {
        return Ok(ins);
    }
    if size % SECTOR_SIZE != 0 {
        ins.table.push(Finding::whole(format!(
            "disk size {size} is not a multiple of 512 bytes, so the GPT has no last LBA"
        )));
    }
    if sectors < 3 {
        ins.table.push(Finding::whole(format!(
            "disk of {sectors} sectors is too small for a GPT"
        )));
        return Ok(ins);
    }
    let last = backup_at
        .filter(|&b| b > PRIMARY_HEADER_LBA && b < sectors)
        .unwrap_or(sectors - 1);
    let t = &mut ins.table;
    ins.primary = read_copy(disk, sectors, PRIMARY_HEADER_LBA, "primary", t)?;
    ins.backup = read_copy(disk, sectors, last, "backup", t)?;
    for c in [&ins.primary, &ins.backup]
        .into_iter()
        .flatten()
        .filter(|c| c.header_ok)
    {
        check_locations(c, last, t);
    }
    if let (Some(p), Some(b)) = (&ins.primary, &ins.backup) {
        if p.header_ok && b.header_ok {
            check_agreement(p, b, t);
        }
    }
    check_protective_mbr(&ins.mbr, sectors, &mut ins.other);
    if let Some(c) = [&ins.primary, &ins.backup]
        .into_iter()
        .flatten()
        .find(|c| c.sound())
    {
        check_partitions(c, &mut ins.other);
    }
    Ok(ins)
}

/// Locations: each header points at the other (the backup is at `last`);
/// the arrays lie outside the usable range.
fn check_locations(c: &GptCopy, last: u64, t: &mut Vec<Finding>) {
    let (which, other) = if c.lba == PRIMARY_HEADER_LBA {
        ("primary", last)
    } else {
        ("backup", 1)
    };
    let h = &c.hdr;
    let base = c.lba * SECTOR_SIZE;
    if h.alternate_lba != other {
        let msg = if which == "primary" {
            format!(
                "primary header AlternateLBA is {}, but the disk's last LBA is {last}",
                h.alternate_lba
            )
        } else {
            format!(
                "backup header AlternateLBA is {}, expected 1",
                h.alternate_lba
            )
        };
        t.push(Finding::at(base + H_ALTERNATE_LBA as u64, msg));
    }
    let arr_end = h.entries_lba.saturating_add(h.array_sectors());
    if h.first_usable_lba > h.last_usable_lba.saturating_add(1) || h.last_usable_lba >= last {
        t.push(Finding::at(
            base + H_FIRST_USABLE as u64,
            format!(
                "{which} header usable range {}..={} is not inside the disk (last LBA {last})",
                h.first_usable_lba, h.last_usable_lba
            ),
        ));
    } else if which == "primary" && (h.first_usable_lba < arr_end || h.first_usable_lba < 2) {
        t.push(Finding::at(
            base + H_FIRST_USABLE as u64,
            format!(
                "primary partition array (LBA {}..{arr_end}) overlaps the usable range starting at LBA {}",
                h.entries_lba, h.first_usable_lba
            ),
        ));
    } else if which == "backup" && (h.entries_lba <= h.last_usable_lba || arr_end > last) {
        t.push(Finding::at(
            base + H_ENTRIES_LBA as u64,
            format!(
                "backup partition array (LBA {}..{arr_end}) is not between the usable range (last LBA {}) and the backup header (LBA {last})",
                h.entries_lba, h.last_usable_lba
            ),
        ));
    }
}

/// Agreement between the two copies (both headers' CRCs checked out;
/// the arrays compared only when both of theirs did too).
fn check_agreement(p: &GptCopy, b: &GptCopy, t: &mut Vec<Finding>) {
    let (ph, bh) = (&p.hdr, &b.hdr);
    let bb = b.lba * SECTOR_SIZE;
    let mut differ = |field: usize, what: &str, pv: String, bv: String| {
        if pv != bv {
            t.push(Finding::at(
                bb + field as u64,
                format!(
                    "primary and backup headers disagree on the {what} (primary {pv}, backup {bv})"
                ),
            ));
        }
    };
    differ(
        H_DISK_GUID,
        "disk GUID",
        ph.disk_guid.to_string(),
        bh.disk_guid.to_string(),
    );
    differ(
        H_FIRST_USABLE,
        "first usable LBA",
        ph.first_usable_lba.to_string(),
        bh.first_usable_lba.to_string(),
    );
    differ(
        H_LAST_USABLE,
        "last usable LBA",
        ph.last_usable_lba.to_string(),
        bh.last_usable_lba.to_string(),
    );
    differ(
        H_NUM_ENTRIES,
        "number of partition entries",
        ph.num_entries.to_string(),
        bh.num_entries.to_string(),
    );
    differ(
        H_ENTRY_SIZE,
        "partition entry size",
        ph.entry_size.to_string(),
        bh.entry_size.to_string(),
    );
    if p.array_ok && b.array_ok && p.array != b.array {
        t.push(Finding::at(
            bh.entries_lba * SECTOR_SIZE,
            format!(
                "primary and backup partition arrays differ (array CRC primary {:08x}, backup {:08x})",
                ph.entries_crc, bh.entries_crc
            ),
        ));
    }
}

/// The protective MBR in front of a GPT on a disk of `sectors` sectors.
fn check_protective_mbr(m: &Mbr, sectors: u64, o: &mut Vec<Finding>) {
    let expected = mbr::protective_entry(sectors).sectors as u64;
    match m.kind {
        MbrKind::Invalid => o.push(Finding::at(
            mbr::SIGNATURE_OFFSET as u64,
            "MBR has no 55AA signature: a GPT disk needs a protective MBR",
        )),
        MbrKind::Classic => o.push(Finding::at(
            mbr::ENTRIES_OFFSET as u64,
            "MBR has no protective 0xEE partition, so the GPT is not protected",
        )),
        MbrKind::Protective | MbrKind::Hybrid => {
            let e = m
                .protective_entry()
                .copied()
                .expect("protective or hybrid MBRs have an 0xEE entry");
            let eo = (mbr::ENTRIES_OFFSET + (e.index as usize - 1) * mbr::ENTRY_LEN) as u64;
            if e.start_lba != 1 {
                o.push(Finding::at(
                    eo + 8,
                    format!(
                        "protective MBR partition starts at LBA {}, expected 1",
                        e.start_lba
                    ),
                ));
            }
            if m.kind == MbrKind::Protective && e.sectors as u64 != expected {
                o.push(Finding::at(
                    eo + 12,
                    format!(
                        "protective MBR partition size is {} sectors, expected {expected} (min(disk sectors - 1, 0xFFFFFFFF))",
                        e.sectors
                    ),
                ));
            } else if m.kind == MbrKind::Hybrid && e.start_lba as u64 + e.sectors as u64 > sectors {
                o.push(Finding::at(
                    eo + 12,
                    format!(
                        "hybrid MBR 0xEE partition runs past the end of the disk ({} sectors)",
                        e.sectors
                    ),
                ));
            }
        }
    }
}

/// The partitions of a sound copy: each inside the usable range, none
/// overlapping another.
fn check_partitions(c: &GptCopy, o: &mut Vec<Finding>) {
    let h = c.hdr;
    let mut parts = c.partitions();
    for (off, p) in &parts {
        if p.first_lba > p.last_lba {
            o.push(Finding::at(
                off + 32,
                format!(
                    "partition {} starts at LBA {} after its end LBA {}",
                    p.index, p.first_lba, p.last_lba
                ),
            ));
        } else if p.first_lba < h.first_usable_lba || p.last_lba > h.last_usable_lba {
            o.push(Finding::at(
                off + 32,
                format!(
                    "partition {} (LBA {}..={}) lies outside the usable range {}..={}",
                    p.index, p.first_lba, p.last_lba, h.first_usable_lba, h.last_usable_lba
                ),
            ));
        }
    }
    parts.sort_by_key(|(_, p)| (p.first_lba, p.index));
    for w in parts.windows(2) {
        let ((_, a), (off, b)) = (&w[0], &w[1]);
        if b.first_lba <= a.last_lba && a.first_lba <= a.last_lba {
            o.push(Finding::at(
                off + 32,
                format!(
                    "partitions {} (LBA {}..={}) and {} (LBA {}..={}) overlap",
                    a.index, a.first_lba, a.last_lba, b.index, b.first_lba, b.last_lba
                ),
            ));
        }
    }
}

/// Check a disk's GPT in both copies; every problem is a finding (offsets
/// are byte offsets in the disk). A disk with neither a 0xEE MBR entry nor
/// an "EFI PART" signature at LBA 1 or at the last LBA (MBR-only or no
/// table) gives no findings. If the GPT cannot be read at all (I/O error),
/// that is reported as one finding.
pub fn verify(disk: &dyn VirtualDisk) -> Vec<Finding> {
    match inspect(disk) {
        Ok(mut ins) => {
            ins.table.append(&mut ins.other);
            ins.table
        }
        Err(e) => vec![Finding {
            offset: e.offset(),
            message: format!("GPT could not be read: {}", e.message()),
            layer: crate::verify::Layer::Disk,
        }],
    }
}

pub(super) fn corrupt(ins: &Inspection) -> Option<String> {
    if ins.table.is_empty() {
        return None;
    }
    let msgs: Vec<&str> = ins.table.iter().map(|f| f.message.as_str()).collect();
    Some(msgs.join("; "))
}

pub(crate) fn read_table(disk: &dyn VirtualDisk) -> Result<PartitionTable> {
    let ins = inspect(disk)?;
    if !ins.gpt_present {
        return Ok(match ins.mbr.kind {
            MbrKind::Classic => PartitionTable::Mbr(ins.mbr),
            _ => PartitionTable::None,
        });
    }
    let Some(c) = [&ins.primary, &ins.backup]
        .into_iter()
        .flatten()
        .find(|c| c.sound())
    else {
        return Err(Error::corrupt(format!(
            "GPT is corrupt: {}",
            corrupt(&ins).unwrap_or_else(|| "no sound header".into())
        )));
    };
    let h = c.hdr;
    let backup_header_lba = if c.lba == PRIMARY_HEADER_LBA {
        h.alternate_lba
    } else {
        c.lba
    };
    Ok(PartitionTable::Gpt(GptLayout {
        source: if c.lba == PRIMARY_HEADER_LBA {
            "primary"
        } else {
            "backup"
        },
        disk_guid: h.disk_guid,
        primary_header_lba: PRIMARY_HEADER_LBA,
        backup_header_lba,
        first_usable_lba: h.first_usable_lba,
        last_usable_lba: h.last_usable_lba,
        entries_lba: h.entries_lba,
        num_entries: h.num_entries,
        entry_size: h.entry_size,
        mbr: ins.mbr.kind,
        partitions: c.partitions().into_iter().map(|(_, p)| p).collect(),
    }))
}
