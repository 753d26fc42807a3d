//! A small GPT writer: protective MBR, primary and backup headers and a
//! 128-entry partition array with CRC32s (UEFI 2.10 §5.3).
//!
//! Kept local to the image builder; it may be replaced by the disk
//! crate's `layout::gpt` writer later.

use crate::error::{Error, Result};

/// Bytes in a logical sector.
pub const SECTOR_SIZE: u64 = 512;
/// Entries in the partition array.
pub const ENTRY_COUNT: u32 = 128;
/// Bytes in one partition entry.
pub const ENTRY_SIZE: u32 = 128;
/// Sectors taken by the partition array (128 × 128 / 512).
pub const ARRAY_SECTORS: u64 = (ENTRY_COUNT as u64 * ENTRY_SIZE as u64) / SECTOR_SIZE;

/// A GUID in the mixed-endian on-disk form GPT uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Guid(pub [u8; 16]);

impl Guid {
    /// Parse the textual form `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
    pub fn parse(s: &str) -> Option<Guid> {
        let hex: String = s.chars().filter(|c| *c != '-').collect();
        if hex.len() != 32 || s.len() != 36 {
            return None;
        }
        let mut b = [0u8; 16];
        for (i, byte) in b.iter_mut().enumerate() {
            *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Guid::from_be(b))
    }

    /// From the 16 bytes in textual (big-endian) order.
    pub fn from_be(b: [u8; 16]) -> Guid {
        let mut d = b;
        d[0..4].reverse();
        d[4..6].reverse();
        d[6..8].reverse();
        Guid(d)
    }

    /// A version-4-shaped GUID made from 16 bytes of a seeded hash.
    pub fn from_seed_bytes(mut b: [u8; 16]) -> Guid {
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        Guid::from_be(b)
    }
}

impl std::fmt::Display for Guid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let d = &self.0;
        write!(
            f,
            "{:02X}{:02X}{:02X}{:02X}-{:02X}{:02X}-{:02X}{:02X}-{:02X}{:02X}-",
            d[3], d[2], d[1], d[0], d[5], d[4], d[7], d[6], d[8], d[9]
        )?;
        d[10..].iter().try_for_each(|b| write!(f, "{b:02X}"))
    }
}

/// The BIOS boot partition type (GRUB's core.img lives there).
pub const BIOS_BOOT_TYPE: &str = "21686148-6449-6E6F-744E-656564454649";
/// The EFI system partition type.
pub const ESP_TYPE: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";

/// One partition to write.
#[derive(Debug, Clone)]
pub struct GptPartition {
    /// Partition type.
    pub type_guid: Guid,
    /// Unique partition GUID.
    pub unique_guid: Guid,
    /// First LBA.
    pub first_lba: u64,
    /// Last LBA (inclusive).
    pub last_lba: u64,
    /// Attribute bits.
    pub attributes: u64,
    /// Name (at most 36 UTF-16 code units).
    pub name: String,
}

/// The sectors of a GPT disk's metadata: what goes at LBA 0..=33 and
/// what goes in the last 33 sectors.
#[derive(Debug, Clone)]
pub struct GptSectors {
    /// LBA 0 (protective MBR, no boot code), LBA 1 (header), LBA 2..=33 (array).
    pub primary: Vec<u8>,
    /// The backup array followed by the backup header (last 33 sectors).
    pub backup: Vec<u8>,
    /// Byte offset of `backup` on the disk.
    pub backup_offset: u64,
}

/// Lay out a GPT for a disk of `disk_sectors` sectors.
pub fn create(disk_sectors: u64, disk_guid: Guid, parts: &[GptPartition]) -> Result<GptSectors> {
    let first_usable = 2 + ARRAY_SECTORS;
    if disk_sectors < 2 * first_usable + 1 {
        return Err(Error::InvalidLayout(format!(
            "disk of {disk_sectors} sectors is too small for a GPT"
        )));
    }
    let last_usable = disk_sectors - 2 - ARRAY_SECTORS;
    if parts.len() > ENTRY_COUNT as usize {
        return Err(Error::InvalidLayout(format!(
            "{} partitions do not fit in 128 entries",
            parts.len()
        )));
    }
    let mut array = vec![0u8; (ARRAY_SECTORS * SECTOR_SIZE) as usize];
    for (i, p) in parts.iter().enumerate() {
        if p.first_lba < first_usable || p.last_lba > last_usable || p.first_lba > p.last_lba {
            return Err(Error::InvalidLayout(format!(
                "partition {} at LBA {}..={} is outside the usable LBAs {first_usable}..={last_usable}",
                i + 1,
                p.first_lba,
                p.last_lba
            )));
        }
        let e = &mut array[i * ENTRY_SIZE as usize..(i + 1) * ENTRY_SIZE as usize];
        e[0..16].copy_from_slice(&p.type_guid.0);
        e[16..32].copy_from_slice(&p.unique_guid.0);
        e[32..40].copy_from_slice(&p.first_lba.to_le_bytes());
        e[40..48].copy_from_slice(&p.last_lba.to_le_bytes());
        e[48..56].copy_from_slice(&p.attributes.to_le_bytes());
        let units: Vec<u16> = p.name.encode_utf16().collect();
        if units.len() > 36 {
            return Err(Error::InvalidLayout(format!(
                "partition name {:?} is longer than 36 UTF-16 units",
                p.name
            )));
        }
        for (j, u) in units.iter().enumerate() {
            e[56 + 2 * j..58 + 2 * j].copy_from_slice(&u.to_le_bytes());
        }
    }
    let array_crc = crc32fast::hash(&array);
    let header = |my_lba: u64, alt_lba: u64, array_lba: u64| {
        let mut h = vec![0u8; SECTOR_SIZE as usize];
        h[0..8].copy_from_slice(b"EFI PART");
        h[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
        h[12..16].copy_from_slice(&92u32.to_le_bytes());
        h[24..32].copy_from_slice(&my_lba.to_le_bytes());
        h[32..40].copy_from_slice(&alt_lba.to_le_bytes());
        h[40..48].copy_from_slice(&first_usable.to_le_bytes());
        h[48..56].copy_from_slice(&last_usable.to_le_bytes());
        h[56..72].copy_from_slice(&disk_guid.0);
        h[72..80].copy_from_slice(&array_lba.to_le_bytes());
        h[80..84].copy_from_slice(&ENTRY_COUNT.to_le_bytes());
        h[84..88].copy_from_slice(&ENTRY_SIZE.to_le_bytes());
        h[88..92].copy_from_slice(&array_crc.to_le_bytes());
        let crc = crc32fast::hash(&h[..92]);
        h[16..20].copy_from_slice(&crc.to_le_bytes());
        h
    };
    let last = disk_sectors - 1;
    let mut primary = protective_mbr(disk_sectors);
    primary.extend(header(1, last, 2));
    primary.extend_from_slice(&array);
    let mut backup = array;
    backup.extend(header(last, 1, last - ARRAY_SECTORS));
    Ok(GptSectors {
        primary,
        backup,
        backup_offset: (last - ARRAY_SECTORS) * SECTOR_SIZE,
    })
}

/// A protective MBR (one 0xEE partition over the whole disk, capped at
/// 0xFFFFFFFF sectors), with zeroed boot code.
pub fn protective_mbr(disk_sectors: u64) -> Vec<u8> {
    let mut m = vec![0u8; SECTOR_SIZE as usize];
    let p = &mut m[446..462];
    p[0] = 0x00; // not active
    p[1..4].copy_from_slice(&[0x00, 0x02, 0x00]); // CHS of LBA 1
    p[4] = 0xEE;
    p[5..8].copy_from_slice(&[0xFF, 0xFF, 0xFF]);
    p[8..12].copy_from_slice(&1u32.to_le_bytes());
    let size = u32::try_from(disk_sectors - 1).unwrap_or(u32::MAX);
    p[12..16].copy_from_slice(&size.to_le_bytes());
    m[510] = 0x55;
    m[511] = 0xAA;
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_round_trips_text() {
        let g = Guid::parse(ESP_TYPE).unwrap();
        assert_eq!(g.0[..4], [0x28, 0x73, 0x2A, 0xC1]);
        assert_eq!(g.to_string(), ESP_TYPE);
        assert!(Guid::parse("not-a-guid").is_none());
    }

    #[test]
    fn headers_carry_valid_crcs() {
        let g = Guid::from_seed_bytes([7; 16]);
        let parts = [GptPartition {
            type_guid: Guid::parse(ESP_TYPE).unwrap(),
            unique_guid: g,
            first_lba: 2048,
            last_lba: 4095,
            attributes: 0,
            name: "EFI System".into(),
        }];
        let s = create(8192, g, &parts).unwrap();
        let h = &s.primary[512..1024];
        let mut z = h[..92].to_vec();
        z[16..20].fill(0);
        assert_eq!(crc32fast::hash(&z).to_le_bytes(), h[16..20]);
        assert_eq!(crc32fast::hash(&s.primary[1024..]).to_le_bytes(), h[88..92]);
        assert_eq!(s.backup_offset, (8192 - 33) * 512);
        assert_eq!(&s.backup[..16384], &s.primary[1024..]);
        let err = create(
            8192,
            g,
            &[GptPartition {
                last_lba: 9000,
                ..parts[0].clone()
            }],
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid layout: partition 1 at LBA 2048..=9000 is outside the usable LBAs 34..=8158"
        );
    }
}
