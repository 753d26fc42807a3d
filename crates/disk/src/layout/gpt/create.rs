//! Building a new GPT, laid out as `sgdisk -o` does ([`create`]).

use super::wire::*;
use crate::disk::SECTOR_SIZE;
use crate::error::{Error, IoContext, Result};
use crate::layout::mbr;
use crate::layout::Guid;

/// A partition for [`create`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPartition {
    /// Type GUID.
    pub type_guid: Guid,
    /// Unique GUID.
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

/// What [`create`] builds a GPT from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GptSpec {
    /// Disk GUID.
    pub disk_guid: Guid,
    /// Up to 440 bytes of MBR boot code (empty for none).
    pub boot_code: Vec<u8>,
    /// Partitions, in entry order (entry i+1 is `partitions[i]`).
    pub partitions: Vec<NewPartition>,
    /// Number of partition entries ([`DEFAULT_ENTRIES`] normally).
    pub num_entries: u32,
}

impl GptSpec {
    /// A spec with no partitions, no boot code and 128 entries.
    pub fn new(disk_guid: Guid) -> Self {
        GptSpec {
            disk_guid,
            boot_code: Vec::new(),
            partitions: Vec::new(),
            num_entries: DEFAULT_ENTRIES,
        }
    }
}

/// A GPT built by [`create`]: bytes to write at the start and at the end
/// of the disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GptImage {
    /// Protective MBR, primary header and primary array, for offset 0.
    pub head: Vec<u8>,
    /// Backup array and backup header, for offset [`tail_offset`](Self::tail_offset).
    pub tail: Vec<u8>,
    /// Where `tail` goes (it ends at the disk's end).
    pub tail_offset: u64,
    /// First usable LBA.
    pub first_usable_lba: u64,
    /// Last usable LBA.
    pub last_usable_lba: u64,
}

impl GptImage {
    /// The two (offset, bytes) writes.
    pub fn patches(&self) -> [(u64, &[u8]); 2] {
        [(0, &self.head), (self.tail_offset, &self.tail)]
    }
    /// Write both parts into a file (which must already be `disk_size` long
    /// or will be extended by the tail write).
    pub fn write_to(&self, file: &std::fs::File) -> Result<()> {
        use std::os::unix::fs::FileExt;
        for (o, b) in self.patches() {
            file.write_all_at(b, o).ctx("writing the GPT")?;
        }
        Ok(())
    }
}

/// Build a new GPT for a disk of `disk_size` bytes, laid out as `sgdisk -o`
/// does: protective MBR (boot code kept, signature 0), primary header at 1,
/// array at 2, first usable LBA 2 + array sectors (34), last usable
/// N - first usable, backup array right after it, backup header at N-1.
/// Partitions must lie in the usable range and not overlap; entries are
/// written in the given order.
pub fn create(spec: &GptSpec, disk_size: u64) -> Result<GptImage> {
    if disk_size % SECTOR_SIZE != 0 {
        return Err(Error::invalid_input(format!(
            "disk size {disk_size} is not a multiple of 512 bytes"
        )));
    }
    if spec.boot_code.len() > mbr::BOOT_CODE_LEN {
        return Err(Error::invalid_input(format!(
            "MBR boot code is {} bytes, more than {}",
            spec.boot_code.len(),
            mbr::BOOT_CODE_LEN
        )));
    }
    if spec.num_entries == 0 || spec.partitions.len() > spec.num_entries as usize {
        return Err(Error::invalid_input(format!(
            "{} partitions do not fit in {} entries",
            spec.partitions.len(),
            spec.num_entries
        )));
    }
    let array_bytes = spec.num_entries as u64 * ENTRY_SIZE as u64;
    if array_bytes > MAX_ARRAY_BYTES {
        return Err(Error::invalid_input(format!(
            "{} entries are too many",
            spec.num_entries
        )));
    }
    let array_sectors = array_bytes.div_ceil(SECTOR_SIZE);
    let n = disk_size / SECTOR_SIZE;
    let first_usable = 2 + array_sectors;
    if n < 2 * first_usable + 1 {
        return Err(Error::invalid_input(format!(
            "disk of {n} sectors is too small for a GPT"
        )));
    }
    let last_usable = n - first_usable;
    let backup_array_lba = last_usable + 1;

    let array = entries(spec, array_sectors, first_usable, last_usable)?;
    let array_crc = crc32(&array[..array_bytes as usize]);
    let (primary, backup) = headers(spec, n, first_usable, array_crc);

    let mut head = Vec::with_capacity(((2 + array_sectors) * SECTOR_SIZE) as usize);
    head.extend_from_slice(&mbr::protective_mbr(&spec.boot_code, n));
    head.extend_from_slice(&primary.0);
    head.extend_from_slice(&array);
    let mut tail = array;
    tail.extend_from_slice(&backup.0);
    Ok(GptImage {
        head,
        tail_offset: backup_array_lba * SECTOR_SIZE,
        tail,
        first_usable_lba: first_usable,
        last_usable_lba: last_usable,
    })
}

/// The primary array (`array_sectors` sectors) holding `spec`'s
/// partitions, each checked to lie inside `first_usable..=last_usable`
/// and to overlap no other.
fn entries(
    spec: &GptSpec,
    array_sectors: u64,
    first_usable: u64,
    last_usable: u64,
) -> Result<Vec<u8>> {
    let mut array = vec![0u8; (array_sectors * SECTOR_SIZE) as usize];
    let mut ranges = Vec::new();
    for (i, p) in spec.partitions.iter().enumerate() {
        if p.type_guid.is_zero() {
            return Err(Error::invalid_input(format!(
                "partition {} has the zero type GUID",
                i + 1
            )));
        }
        if p.first_lba > p.last_lba || p.first_lba < first_usable || p.last_lba > last_usable {
            return Err(Error::invalid_input(format!(
                "partition {} (LBA {}..={}) is not inside the usable range {first_usable}..={last_usable}",
                i + 1,
                p.first_lba,
                p.last_lba
            )));
        }
        ranges.push((p.first_lba, p.last_lba, i + 1));
        let gp = GptPartition {
            index: i as u32 + 1,
            type_guid: p.type_guid,
            type_name: None,
            unique_guid: p.unique_guid,
            first_lba: p.first_lba,
            last_lba: p.last_lba,
            attributes: p.attributes,
            name: p.name.clone(),
        };
        array[i * ENTRY_SIZE as usize..(i + 1) * ENTRY_SIZE as usize]
            .copy_from_slice(&gp.to_bytes());
    }
    ranges.sort();
    for w in ranges.windows(2) {
        if w[1].0 <= w[0].1 {
            return Err(Error::invalid_input(format!(
                "partitions {} and {} overlap",
                w[0].2, w[1].2
            )));
        }
    }
    Ok(array)
}

/// The primary and backup headers of a new GPT on a disk of `n` sectors
/// (primary array at LBA 2, backup array right after the last usable LBA,
/// backup header at N-1), CRCs computed.
fn headers(
    spec: &GptSpec,
    n: u64,
    first_usable: u64,
    array_crc: u32,
) -> (GptHeaderRaw, GptHeaderRaw) {
    let last_usable = n - first_usable;
    let mut primary = GptHeaderRaw([0u8; 512]);
    primary.0[..8].copy_from_slice(&HEADER_SIGNATURE);
    primary.set_u32(H_REVISION, REVISION_1_0);
    primary.set_u32(H_HEADER_SIZE, HEADER_SIZE);
    primary.set_u64(H_MY_LBA, 1);
    primary.set_u64(H_ALTERNATE_LBA, n - 1);
    primary.set_u64(H_FIRST_USABLE, first_usable);
    primary.set_u64(H_LAST_USABLE, last_usable);
    primary.0[H_DISK_GUID..H_DISK_GUID + 16].copy_from_slice(&spec.disk_guid.0);
    primary.set_u64(H_ENTRIES_LBA, 2);
    primary.set_u32(H_NUM_ENTRIES, spec.num_entries);
    primary.set_u32(H_ENTRY_SIZE, ENTRY_SIZE);
    primary.set_u32(H_ENTRIES_CRC, array_crc);
    let mut backup = primary.clone();
    primary.update_crc();
    backup.set_u64(H_MY_LBA, n - 1);
    backup.set_u64(H_ALTERNATE_LBA, 1);
    backup.set_u64(H_ENTRIES_LBA, last_usable + 1);
    backup.update_crc();
    (primary, backup)
}
