//! The master boot record (LBA 0): 440 bytes of boot code, a disk
//! signature, four 16-byte partition entries and the `55 AA` signature.
//!
//! Layout (offset:length): code 0:440, disk signature 440:4 (LE), two
//! "nulls" bytes 444:2, entries 446:64, signature 510:2. Entry: status 0,
//! start CHS 1:3, type 4, end CHS 5:3, start LBA 8:4 (LE), sectors 12:4
//! (LE). A GPT disk carries a *protective* MBR whose only entry has type
//! 0xEE (UEFI spec 2.10 §5.2.3); a *hybrid* MBR has other entries too.
//! Oracle: `sgdisk -v`, `sfdisk --json`.

use serde::Serialize;

use crate::disk::{VirtualDisk, SECTOR_SIZE};
use crate::error::{IoContext, Result};

/// Bytes of boot code at the start of the MBR.
pub const BOOT_CODE_LEN: usize = 440;
/// Offset of the 32-bit disk signature.
pub const DISK_SIGNATURE_OFFSET: usize = 440;
/// Offset of the two bytes after the disk signature (usually zero).
pub const NULLS_OFFSET: usize = 444;
/// Offset of the first of the four partition entries.
pub const ENTRIES_OFFSET: usize = 446;
/// Size of one partition entry.
pub const ENTRY_LEN: usize = 16;
/// Offset of the `55 AA` boot signature.
pub const SIGNATURE_OFFSET: usize = 510;
/// The boot signature bytes.
pub const SIGNATURE: [u8; 2] = [0x55, 0xAA];
/// Partition type of the GPT protective partition.
pub const TYPE_GPT_PROTECTIVE: u8 = 0xEE;
/// Heads per cylinder that gdisk assumes for image files (it asks the
/// kernel with `HDIO_GETGEO`, which fails on regular files, and falls back
/// to 255; gdisk `diskio-unix.cc` `GetNumHeads`).
pub const CHS_HEADS: u64 = 255;
/// Sectors per track gdisk assumes for image files (fallback 63).
pub const CHS_SECTORS: u64 = 63;
/// Cylinders addressable in CHS (10 bits).
pub const CHS_CYLINDERS: u64 = 1024;

/// One MBR partition entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MbrEntry {
    /// Index 1..=4.
    pub index: u8,
    /// Status byte (0x80 = active).
    pub status: u8,
    /// Start CHS bytes as stored (head, sector|cyl-high, cyl-low).
    pub start_chs: [u8; 3],
    /// Partition type byte.
    pub kind: u8,
    /// End CHS bytes as stored.
    pub end_chs: [u8; 3],
    /// First sector.
    pub start_lba: u32,
    /// Number of sectors.
    pub sectors: u32,
}

impl MbrEntry {
    /// Decode the 16 bytes of entry `index` (1-based).
    pub fn parse(index: u8, b: &[u8]) -> MbrEntry {
        MbrEntry {
            index,
            status: b[0],
            start_chs: [b[1], b[2], b[3]],
            kind: b[4],
            end_chs: [b[5], b[6], b[7]],
            start_lba: u32::from_le_bytes([b[8], b[9], b[10], b[11]]),
            sectors: u32::from_le_bytes([b[12], b[13], b[14], b[15]]),
        }
    }

    /// Encode as 16 bytes.
    pub fn to_bytes(&self) -> [u8; ENTRY_LEN] {
        let mut b = [0u8; ENTRY_LEN];
        b[0] = self.status;
        b[1..4].copy_from_slice(&self.start_chs);
        b[4] = self.kind;
        b[5..8].copy_from_slice(&self.end_chs);
        b[8..12].copy_from_slice(&self.start_lba.to_le_bytes());
        b[12..16].copy_from_slice(&self.sectors.to_le_bytes());
        b
    }

    /// An entry with type 0 is unused.
    pub fn is_used(&self) -> bool {
        self.kind != 0
    }
}

/// How an MBR relates to a GPT (gdisk's `MBRValidity`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MbrKind {
    /// No `55 AA` signature.
    Invalid,
    /// A classic MBR with no 0xEE entry.
    Classic,
    /// Only 0xEE entries (and empty ones): the GPT protective MBR.
    Protective,
    /// 0xEE plus other entries.
    Hybrid,
}

/// A decoded MBR.
#[derive(Debug, Clone, Serialize)]
pub struct Mbr {
    /// The disk signature (bytes 440..444, LE).
    pub disk_signature: u32,
    /// What kind of MBR this is.
    pub kind: MbrKind,
    /// The used entries (type != 0).
    pub partitions: Vec<MbrEntry>,
    /// Whether the boot code area holds any non-zero byte.
    pub has_boot_code: bool,
    /// All four entries, used or not.
    #[serde(skip)]
    pub entries: [MbrEntry; 4],
}

impl Mbr {
    /// Decode a 512-byte sector.
    pub fn parse(sector: &[u8; 512]) -> Mbr {
        let entries: [MbrEntry; 4] = std::array::from_fn(|i| {
            let o = ENTRIES_OFFSET + i * ENTRY_LEN;
            MbrEntry::parse(i as u8 + 1, &sector[o..o + ENTRY_LEN])
        });
        let signed = sector[SIGNATURE_OFFSET..] == SIGNATURE;
        // Same rules as gdisk BasicMBRData::ReadMBRData.
        let has_ee = entries.iter().any(|e| e.kind == TYPE_GPT_PROTECTIVE);
        let has_other = entries
            .iter()
            .any(|e| e.kind != TYPE_GPT_PROTECTIVE && e.kind != 0);
        let kind = match (signed, has_ee, has_other) {
            (false, _, _) => MbrKind::Invalid,
            (true, false, _) => MbrKind::Classic,
            (true, true, false) => MbrKind::Protective,
            (true, true, true) => MbrKind::Hybrid,
        };
        let mut sig = [0u8; 4];
        sig.copy_from_slice(&sector[DISK_SIGNATURE_OFFSET..DISK_SIGNATURE_OFFSET + 4]);
        Mbr {
            disk_signature: u32::from_le_bytes(sig),
            kind,
            partitions: entries.iter().copied().filter(MbrEntry::is_used).collect(),
            has_boot_code: sector[..BOOT_CODE_LEN].iter().any(|&b| b != 0),
            entries,
        }
    }

    /// Read and decode LBA 0 of `disk` (a disk shorter than one sector
    /// has an [`MbrKind::Invalid`] MBR).
    pub fn read(disk: &dyn VirtualDisk) -> Result<(Mbr, [u8; 512])> {
        let mut sector = [0u8; 512];
        if disk.size() >= SECTOR_SIZE {
            disk.read_at(&mut sector, 0).ctx("reading the MBR")?;
        }
        Ok((Mbr::parse(&sector), sector))
    }

    /// The first 0xEE entry.
    pub fn protective_entry(&self) -> Option<&MbrEntry> {
        self.entries.iter().find(|e| e.kind == TYPE_GPT_PROTECTIVE)
    }
}

/// CHS bytes for `lba` with gdisk's geometry (255 heads, 63 sectors per
/// track), `00 00 00` for LBA 0, same arithmetic as gdisk
/// `MBRPart::LBAtoCHS`. When the LBA does not fit (>= 1024 x 255 x 63)
/// gdisk 1.0.9 writes `FF FF FF` (observed: the largest CHS that fits,
/// LBA 16450559, is `FE FF FF`; LBA 16450560 gives `FF FF FF`; older gdisk
/// source wrote `FE FF FF` there).
pub fn chs_for_lba(lba: u64) -> [u8; 3] {
    if lba == 0 {
        return [0, 0, 0];
    }
    if lba >= CHS_HEADS * CHS_SECTORS * CHS_CYLINDERS {
        return [255, 255, 255];
    }
    let cylinder = lba / (CHS_HEADS * CHS_SECTORS);
    let rem = lba - cylinder * CHS_HEADS * CHS_SECTORS;
    let head = rem / CHS_SECTORS;
    let sector = rem - head * CHS_SECTORS;
    [
        head as u8,
        ((sector + 1) + (cylinder >> 8) * 64) as u8,
        (cylinder & 0xff) as u8,
    ]
}

/// The protective entry gdisk writes for a disk of `disk_sectors` sectors
/// (`BasicMBRData::MakeProtectiveMBR`): status 0, start LBA 1, size
/// `disk_sectors - 1` (or 0xFFFFFFFF when the disk has 0xFFFFFFFF sectors
/// or more), CHS computed from those.
pub fn protective_entry(disk_sectors: u64) -> MbrEntry {
    let sectors = if disk_sectors < u32::MAX as u64 {
        disk_sectors.saturating_sub(1)
    } else {
        u32::MAX as u64
    };
    MbrEntry {
        index: 1,
        status: 0,
        start_chs: chs_for_lba(1),
        kind: TYPE_GPT_PROTECTIVE,
        end_chs: chs_for_lba(sectors.max(1)),
        start_lba: 1,
        sectors: sectors as u32,
    }
}

/// A protective MBR sector as `sgdisk` makes it: `boot_code` kept (the
/// rest of the 440 bytes zero), disk signature and the two bytes after it
/// zero, one 0xEE entry, three empty entries, `55 AA`. Observed with sgdisk
/// 1.0.9: `-e` after a grow zeroes a non-zero disk signature and clears an
/// active flag on the 0xEE entry, keeping the boot code.
pub fn protective_mbr(boot_code: &[u8], disk_sectors: u64) -> [u8; 512] {
    let mut s = [0u8; 512];
    let n = boot_code.len().min(BOOT_CODE_LEN);
    s[..n].copy_from_slice(&boot_code[..n]);
    s[ENTRIES_OFFSET..ENTRIES_OFFSET + ENTRY_LEN]
        .copy_from_slice(&protective_entry(disk_sectors).to_bytes());
    s[SIGNATURE_OFFSET..].copy_from_slice(&SIGNATURE);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chs_matches_sgdisk_observations() {
        // sgdisk -e on a 256 MiB disk grown to 1 GiB: end CHS a2 02 20 -> 8a 08 82.
        assert_eq!(chs_for_lba(524287), [0xa2, 0x02, 0x20]);
        assert_eq!(chs_for_lba(2097151), [0x8a, 0x08, 0x82]);
        assert_eq!(chs_for_lba(1), [0x00, 0x02, 0x00]);
        assert_eq!(chs_for_lba(255 * 63 * 1024 - 1), [0xfe, 0xff, 0xff]);
        assert_eq!(chs_for_lba(255 * 63 * 1024), [0xff, 0xff, 0xff]);
    }

    #[test]
    fn protective_size_saturates() {
        assert_eq!(protective_entry(2048).sectors, 2047);
        assert_eq!(protective_entry(1 << 40).sectors, u32::MAX);
        assert_eq!(protective_entry(u32::MAX as u64).sectors, u32::MAX);
        assert_eq!(protective_entry(u32::MAX as u64 - 1).sectors, u32::MAX - 2);
    }

    #[test]
    fn kinds() {
        let mut s = protective_mbr(&[0x90; 440], 4096);
        assert_eq!(Mbr::parse(&s).kind, MbrKind::Protective);
        s[ENTRIES_OFFSET + 16 + 4] = 0x0c;
        assert_eq!(Mbr::parse(&s).kind, MbrKind::Hybrid);
        s[ENTRIES_OFFSET + 4] = 0x83;
        assert_eq!(Mbr::parse(&s).kind, MbrKind::Classic);
        s[511] = 0;
        assert_eq!(Mbr::parse(&s).kind, MbrKind::Invalid);
    }
}
