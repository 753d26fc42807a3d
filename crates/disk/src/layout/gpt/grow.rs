//! Growing a GPT disk as `truncate -s` + `sgdisk -e` do, never over data
//! the GPT does not own ([`grow`], [`plan_growth`], [`changes_outside_gpt`]).

use serde::{Deserialize, Serialize};

use super::inspect::{corrupt, inspect, inspect_at, GptCopy, Inspection};
use super::wire::*;
use crate::disk::{PatchedDisk, VirtualDisk, SECTOR_SIZE};
use crate::error::{Error, IoContext, Result};
use crate::layout::mbr::{self, MbrKind};

/// Grow `disk` to `new_size` bytes the way `truncate -s NEW` followed by
/// `sgdisk -e` does, byte for byte, without copying the disk, unless that
/// would change bytes the GPT does not own (see below): then it refuses.
///
/// What changes (GPT fdisk 1.0.9 `MoveSecondHeaderToEnd` + `SaveGPTData`,
/// confirmed by experiment against `sgdisk -e`):
/// - new LastUsableLBA = N - FirstUsableLBA (N = new size in sectors), in
///   both headers. With the usual 34 this is N-34, but gdisk keeps the
///   *header's* first-usable value, whatever the array size or LBA;
/// - the backup array goes to LastUsableLBA + 1 and is an exact copy of the
///   primary array bytes (NumberOfPartitionEntries x SizeOfPartitionEntry,
///   zero-padded to a sector, as gdisk's `DiskIO::Write` does); the
///   header's entry count and size are kept;
/// - the backup header goes to LBA N-1: the old backup header sector with
///   MyLBA, LastUsableLBA, PartitionEntryLBA and the CRC updated;
/// - the primary header: AlternateLBA, LastUsableLBA, CRC;
/// - a *protective* MBR whose last-usable LBA changes is rebuilt as
///   `MakeProtectiveMBR` does: boot code kept, disk signature and the two
///   bytes after it zeroed, one 0xEE entry (status 0, start CHS 00 02 00,
///   end CHS of the last LBA with 255 heads x 63 sectors or FF FF FF past
///   CHS range, start 1, size N-1, or 0xFFFFFFFF once N >= 0xFFFFFFFF),
///   the other three entries zeroed ([`mbr::protective_mbr`]);
/// - a *hybrid* MBR is left as it is: gdisk only runs `OptimizeEESize` on
///   it, which leaves the layouts `sgdisk -h` makes (0xEE before or after
///   the hybrid partitions) unchanged; checked against `sgdisk -e` for
///   those two layouts only;
/// - an MBR without `55 AA` is replaced by a protective one (boot code
///   kept), as gdisk does on load; a classic MBR (no 0xEE entry) in front
///   of a GPT is refused, as `sgdisk -e` refuses it ("Invalid partition
///   data!");
/// - nothing else: the old backup header and array stay where they were
///   (Limine keeps BIOS stage 2 there).
///
/// One deliberate difference: gdisk also rewrites the primary array, so
/// when the array does not end on a sector boundary it zeroes the rest of
/// its last sector. `grow` leaves the primary array alone (its entries do
/// not change): the result is the same unless those bytes are non-zero,
/// and then they are kept, because the GPT does not own them.
///
/// **Bytes the GPT does not own are never changed.** The old GPT owns the
/// MBR's partition table area (bytes 440..512 of LBA 0, rebuilt as above),
/// its header sectors and its arrays' entry bytes (as the headers say).
/// Any other non-zero byte the new backup array or header would change
/// (say Limine's BIOS stage 2 just before the old backup header, when the
/// disk grows by fewer sectors than the backup GPT spans) makes `grow`
/// refuse, naming the LBAs; [`grow_to_multiple`] picks a size whose
/// backup GPT lands clear of them, and [`foreign_sectors`] lists them.
///
/// A disk without GPT (MBR-only or blank) is just extended with zeros. A
/// GPT whose headers or arrays are damaged or disagree is refused. A disk
/// that was already enlarged without moving its backup is accepted when
/// the backup sits, sound, at the primary's AlternateLBA (gdisk reads it
/// there too).
pub fn grow<D: VirtualDisk>(disk: D, new_size: u64) -> Result<PatchedDisk<D>> {
    let writes = grow_writes(&disk, new_size)?;
    let foreign = writes.foreign(&disk)?;
    if !foreign.is_empty() {
        return Err(Error::invalid_input(format!(
            "a backup GPT at {new_size} bytes would cover {}, which {} data the GPT does not own; refusing to grow the disk to that size",
            lba_ranges_text(&foreign),
            if is_one_lba(&foreign) { "holds" } else { "hold" }
        )));
    }
    let mut out = PatchedDisk::new(disk, new_size);
    for (at, bytes) in writes.patches {
        out.patch(at, bytes);
    }
    Ok(out)
}

/// An inclusive range of LBAs, `[first, last]` (as JSON: a two-number
/// array).
pub type LbaRange = [u64; 2];

/// Whether `ranges` is one single LBA (for "LBA 7, which holds" rather
/// than "LBAs 7-9, which hold").
pub fn is_one_lba(ranges: &[LbaRange]) -> bool {
    matches!(ranges, [[a, b]] if a == b)
}

/// Inclusive LBA ranges for messages: `LBA 7`, `LBAs 7-9`, `LBAs 3, 7-9`.
pub fn lba_ranges_text(ranges: &[LbaRange]) -> String {
    let one = is_one_lba(ranges);
    let list = ranges
        .iter()
        .map(|[a, b]| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
    format!("{} {list}", if one { "LBA" } else { "LBAs" })
}

/// What growing a disk to a size writes, and what its old GPT owns.
struct GrowWrites {
    /// (offset, bytes), sorted and non-overlapping.
    patches: Vec<(u64, Vec<u8>)>,
    /// Byte ranges of the old disk its GPT owns.
    owned: Vec<std::ops::Range<u64>>,
    /// First LBA of the new backup array (`None` without a GPT).
    backup_lba: Option<u64>,
}

impl GrowWrites {
    /// LBAs (coalesced inclusive ranges) where a patch changes a non-zero
    /// byte of `old` that its GPT does not own.
    fn foreign(&self, old: &dyn VirtualDisk) -> Result<Vec<LbaRange>> {
        changed_foreign_lbas(old, &self.owned, &self.patches)
    }
}

/// The LBAs (coalesced inclusive ranges) where `patches` change a byte of
/// `old` that is non-zero and outside `owned`. Patches past the end of
/// `old` cover zeros and change nothing it holds.
fn changed_foreign_lbas(
    old: &dyn VirtualDisk,
    owned: &[std::ops::Range<u64>],
    patches: &[(u64, Vec<u8>)],
) -> Result<Vec<LbaRange>> {
    let size = old.size();
    let mut lbas: Vec<u64> = Vec::new();
    for (at, bytes) in patches {
        if *at >= size {
            continue;
        }
        let n = (size - at).min(bytes.len() as u64) as usize;
        let mut was = vec![0u8; n];
        old.read_at(&mut was, *at)
            .ctx("reading the sectors a backup GPT would cover")
            .map_err(|e| e.at(*at))?;
        for (i, (&w, &b)) in was.iter().zip(bytes).enumerate() {
            let off = at + i as u64;
            if w != 0 && w != b && !owned.iter().any(|r| r.contains(&off)) {
                let lba = off / SECTOR_SIZE;
                if lbas.last() != Some(&lba) {
                    lbas.push(lba);
                }
            }
        }
    }
    Ok(coalesce_lbas(lbas))
}

/// The byte ranges of a disk its (sound) GPT owns: the MBR's partition
/// table area (bytes 440..512: disk signature, entries, `55 AA`; the boot
/// code before it is not the GPT's), both header sectors and both arrays'
/// entry bytes, as the headers locate and size them.
fn owned_ranges(p: &GptCopy, b: &GptCopy) -> Vec<std::ops::Range<u64>> {
    let array = |c: &GptCopy| {
        let at = c.hdr.entries_lba * SECTOR_SIZE;
        at..at + c.hdr.array_bytes()
    };
    let header = |c: &GptCopy| c.lba * SECTOR_SIZE..(c.lba + 1) * SECTOR_SIZE;
    vec![
        mbr::BOOT_CODE_LEN as u64..SECTOR_SIZE,
        header(p),
        array(p),
        header(b),
        array(b),
    ]
}

/// Read and check the GPT of `disk` for growing: the sound primary and
/// backup copies (the backup read where the primary says it is when the
/// disk was enlarged before without moving it, as gdisk does), with the
/// inspection. `None` when the disk has no GPT.
fn growable_gpt(disk: &dyn VirtualDisk) -> Result<Option<Inspection>> {
    let size = disk.size();
    let ins = inspect(disk)?;
    if !ins.gpt_present {
        return Ok(None);
    }
    let moved = ins
        .primary
        .as_ref()
        .filter(|p| p.sound())
        .map(|p| p.hdr.alternate_lba);
    let ins = match moved {
        Some(alt) if alt < (size / SECTOR_SIZE).saturating_sub(1) && corrupt(&ins).is_some() => {
            let again = inspect_at(disk, Some(alt))?;
            if corrupt(&again).is_none() {
                again
            } else {
                ins
            }
        }
        _ => ins,
    };
    if let Some(why) = corrupt(&ins) {
        return Err(Error::corrupt(format!(
            "GPT is corrupt: {why}; refusing to grow it"
        )));
    }
    if ins.primary.is_none() || ins.backup.is_none() {
        return Err(Error::corrupt(
            "GPT is corrupt: a header is missing; refusing to grow it",
        ));
    }
    Ok(Some(ins))
}

/// The writes that grow `disk` to `new_size` (see [`grow`]), and what its
/// GPT owns.
fn grow_writes(disk: &dyn VirtualDisk, new_size: u64) -> Result<GrowWrites> {
    let size = disk.size();
    if new_size % SECTOR_SIZE != 0 {
        return Err(Error::invalid_input(format!(
            "new disk size {new_size} is not a multiple of 512 bytes"
        )));
    }
    if new_size < size {
        return Err(Error::invalid_input(format!(
            "new disk size {new_size} is smaller than the disk ({size} bytes); disks are never shrunk"
        )));
    }
    let Some(ins) = growable_gpt(disk)? else {
        return Ok(GrowWrites {
            patches: Vec::new(),
            owned: Vec::new(),
            backup_lba: None,
        });
    };
    let (Some(p), Some(b)) = (&ins.primary, &ins.backup) else {
        unreachable!("growable_gpt returns both copies");
    };
    let n = new_size / SECTOR_SIZE;
    let ph = p.hdr;
    let new_last_usable = n
        .checked_sub(ph.first_usable_lba)
        .filter(|&l| l >= ph.first_usable_lba);
    let new_array_lba = new_last_usable.map(|l| l + 1);
    let Some((new_last_usable, new_array_lba)) = new_last_usable.zip(new_array_lba) else {
        return Err(Error::invalid_input(format!(
            "disk of {n} sectors is too small for a GPT whose first usable LBA is {}",
            ph.first_usable_lba
        )));
    };
    let primary_array_end = ph.entries_lba + ph.array_sectors();
    if new_array_lba + ph.array_sectors() > n - 1 || new_array_lba < primary_array_end.max(2) {
        return Err(Error::invalid_input(format!(
            "the backup partition array ({} sectors at LBA {new_array_lba}) does not fit before the backup header at LBA {}",
            ph.array_sectors(),
            n - 1
        )));
    }
    for (_, part) in p.partitions() {
        if part.last_lba > new_last_usable {
            return Err(Error::invalid_input(format!(
                "partition {} ends at LBA {}, past the new last usable LBA {new_last_usable}",
                part.index, part.last_lba
            )));
        }
    }
    let old_last_usable = ph.last_usable_lba;

    let mut primary = p.raw.clone();
    primary.set_u64(H_ALTERNATE_LBA, n - 1);
    primary.set_u64(H_LAST_USABLE, new_last_usable);
    primary.update_crc();

    let mut backup = b.raw.clone();
    backup.set_u64(H_MY_LBA, n - 1);
    backup.set_u64(H_LAST_USABLE, new_last_usable);
    backup.set_u64(H_ENTRIES_LBA, new_array_lba);
    backup.update_crc();

    let mut array = p.array.clone().expect("a sound copy has its array");
    array.resize((ph.array_sectors() * SECTOR_SIZE) as usize, 0);

    if ins.mbr.kind == MbrKind::Classic {
        return Err(Error::unsupported(
            "disk has a GPT behind a classic MBR without a 0xEE partition; refusing to grow it (sgdisk -e refuses too)",
        ));
    }
    let mut patches = Vec::new();
    let rebuild_mbr = match ins.mbr.kind {
        MbrKind::Protective => old_last_usable != new_last_usable,
        MbrKind::Invalid => true,
        MbrKind::Classic | MbrKind::Hybrid => false,
    };
    if rebuild_mbr {
        let m = mbr::protective_mbr(&ins.mbr_sector[..mbr::BOOT_CODE_LEN], n);
        patches.push((0, m.to_vec()));
    }
    patches.push((PRIMARY_HEADER_LBA * SECTOR_SIZE, primary.0.to_vec()));
    patches.push((new_array_lba * SECTOR_SIZE, array));
    patches.push(((n - 1) * SECTOR_SIZE, backup.0.to_vec()));
    Ok(GrowWrites {
        patches,
        owned: owned_ranges(p, b),
        backup_lba: Some(new_array_lba),
    })
}

/// The LBAs (coalesced inclusive ranges) a backup GPT placed for a disk of
/// `new_size` bytes (see [`grow`]) would change although they hold
/// non-zero data the disk's GPT does not own: empty when growing to that
/// size is safe. Errors are [`grow`]'s (bad size, corrupt GPT).
pub fn foreign_sectors(disk: &dyn VirtualDisk, new_size: u64) -> Result<Vec<LbaRange>> {
    grow_writes(disk, new_size)?.foreign(disk)
}

/// A size a disk was not grown to, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedSize {
    /// The size in bytes (a whole multiple of the unit) that was passed
    /// over.
    pub size: u64,
    /// The LBAs (inclusive ranges) a backup GPT at that size would have
    /// overwritten: non-zero data the GPT does not own.
    pub foreign_lbas: Vec<LbaRange>,
}

/// How a disk is grown to a whole multiple of a unit: from its size to
/// the chosen one, and the smaller multiples passed over because their
/// backup GPT would have overwritten data the GPT does not own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Growth {
    /// The disk's size in bytes before growing.
    pub from: u64,
    /// The size it is grown to.
    pub to: u64,
    /// Smaller candidate sizes passed over, smallest first (empty when
    /// the first whole multiple was safe).
    pub skipped: Vec<SkippedSize>,
}

/// Choose the size to grow `disk` to: the smallest whole multiple of
/// `unit` (bytes, a multiple of 512) at least the disk's size whose backup
/// GPT covers no non-zero sector the disk's GPT does not own (see
/// [`foreign_sectors`]).
///
/// This always ends: the backup GPT of each larger multiple lies further
/// out, and one that starts at or after the disk's old end covers only
/// zeros. (The MBR and primary header writes change only bytes the GPT
/// owns, whatever the size.)
pub fn plan_growth(disk: &dyn VirtualDisk, unit: u64) -> Result<Growth> {
    if unit == 0 || unit % SECTOR_SIZE != 0 {
        return Err(Error::invalid_input(format!(
            "growth unit {unit} is not a positive multiple of 512 bytes"
        )));
    }
    let from = disk.size();
    let mut size = from.div_ceil(unit).max(1) * unit;
    let mut skipped = Vec::new();
    loop {
        let writes = grow_writes(disk, size)?;
        let foreign = writes.foreign(disk)?;
        if foreign.is_empty() {
            return Ok(Growth {
                from,
                to: size,
                skipped,
            });
        }
        if writes.backup_lba.is_none_or(|l| l * SECTOR_SIZE >= from) {
            // Cannot happen (see above); never loop for ever.
            return Err(Error::corrupt(format!(
                "growing the disk would change {} outside its backup GPT; refusing to grow it",
                lba_ranges_text(&foreign)
            )));
        }
        skipped.push(SkippedSize {
            size,
            foreign_lbas: foreign,
        });
        size = size
            .checked_add(unit)
            .ok_or_else(|| Error::invalid_input("no disk size is left to grow to".to_string()))?;
    }
}

/// A disk grown by [`grow_to_multiple`]: the grown disk and how its size
/// was chosen.
pub struct Grown<D> {
    /// The grown disk (the input, zeros to the new end, and the GPT's
    /// patches).
    pub disk: PatchedDisk<D>,
    /// Its old and new sizes and the sizes passed over.
    pub growth: Growth,
}

/// Grow `disk` to the size [`plan_growth`] chooses for `unit` (GCP: a
/// whole GiB, Azure: a whole MiB), as [`grow`] does.
pub fn grow_to_multiple<D: VirtualDisk>(disk: D, unit: u64) -> Result<Grown<D>> {
    let growth = plan_growth(&disk, unit)?;
    let disk = grow(disk, growth.to)?;
    Ok(Grown { disk, growth })
}

/// The LBAs (coalesced inclusive ranges) where `grown` changes its base
/// disk outside the GPT: a non-zero byte of the base that the base's GPT
/// does not own changed, or a zero byte (or one past the base's end) made
/// non-zero where the grown disk's own GPT owns nothing. Empty for every
/// disk [`grow`] makes. Only the patches are read, with the few sectors of
/// the base under them. `package` checks this for each grown disk: with
/// the artifact proven identical to the grown disk, it proves the
/// artifact holds the input unchanged outside the GPT.
pub fn changes_outside_gpt<D: VirtualDisk>(grown: &PatchedDisk<D>) -> Result<Vec<LbaRange>> {
    let base: &dyn VirtualDisk = grown.base();
    // Each GPT as `grow` reads it (the base's backup where its primary
    // says it is, for a disk enlarged before without moving it).
    let owned_by = |ins: Option<Inspection>| -> Vec<std::ops::Range<u64>> {
        match ins.as_ref().map(|i| (&i.primary, &i.backup)) {
            Some((Some(p), Some(b))) => owned_ranges(p, b),
            _ => Vec::new(),
        }
    };
    let old_owned = owned_by(growable_gpt(base)?);
    let new_owned = owned_by(growable_gpt(grown)?);
    let owns = |r: &[std::ops::Range<u64>], off: u64| r.iter().any(|r| r.contains(&off));
    let size = base.size();
    let mut lbas: Vec<u64> = Vec::new();
    for (at, bytes) in grown.patches() {
        let mut was = vec![0u8; bytes.len()];
        if *at < size {
            let n = (size - at).min(bytes.len() as u64) as usize;
            base.read_at(&mut was[..n], *at)
                .ctx("reading the sectors under the grown disk's GPT")
                .map_err(|e| e.at(*at))?;
        }
        for (i, (&w, &b)) in was.iter().zip(bytes).enumerate() {
            let off = at + i as u64;
            let allowed =
                w == b || (w != 0 && owns(&old_owned, off)) || (w == 0 && owns(&new_owned, off));
            if !allowed {
                lbas.push(off / SECTOR_SIZE);
            }
        }
    }
    Ok(coalesce_lbas(lbas))
}

/// Sorted, merged inclusive ranges of `lbas`.
fn coalesce_lbas(mut lbas: Vec<u64>) -> Vec<LbaRange> {
    lbas.sort_unstable();
    lbas.dedup();
    let mut ranges: Vec<LbaRange> = Vec::new();
    for lba in lbas {
        match ranges.last_mut() {
            Some(r) if r[1] + 1 == lba => r[1] = lba,
            _ => ranges.push([lba, lba]),
        }
    }
    ranges
}
