//! Dynamic VHDX writer, streaming: blocks holding any non-zero byte are
//! appended in virtual order as they are met; the BAT is written last.
//!
//! Layout (all 1 MiB-aligned, as `qemu-img convert -O vhdx` lays it out,
//! minus qemu's 5 MiB gap before the first block):
//!
//! | offset | what |
//! |---|---|
//! | 0 | file identifier "vhdxfile", creator "cloudimg" |
//! | 64 KiB, 128 KiB | headers, sequence numbers 1 and 2 (identical otherwise) |
//! | 192 KiB, 256 KiB | region tables (BAT, metadata; both required) |
//! | 1 MiB | empty log, 1 MiB (log GUID zero: nothing to replay) |
//! | 2 MiB | BAT, rounded up to 1 MiB |
//! | after the BAT | metadata region, 1 MiB |
//! | after the metadata | payload blocks |

use std::fs::File;
use std::os::unix::fs::FileExt;

use sha2::{Digest, Sha256};

use crate::disk::{for_each_chunk, Chunk, VirtualDisk};
use crate::error::{Error, IoContext, Result};
use crate::formats::WriteOptions;
use crate::layout::Guid;

use super::wire::*;

/// Creator string written in the file identifier.
pub const CREATOR: &str = "cloudimg";
/// Log we reserve (qemu's default size).
pub const LOG_LENGTH: u32 = 1 << 20;
/// Sequence number of the first header; the second has the next one and
/// is therefore current.
pub const FIRST_SEQUENCE: u64 = 1;

/// The shape of a VHDX to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VhdxLayout {
    /// Payload block size (a power of two, 1..=256 MiB).
    pub block_size: u32,
    /// Logical sector size (512 or 4096).
    pub logical_sector_size: u32,
    /// Physical sector size (512 or 4096).
    pub physical_sector_size: u32,
}

impl VhdxLayout {
    /// What we write by default for a disk of `size` bytes: qemu 7.2's
    /// default block size for that size (`vhdx_co_create`: 8 MiB up to
    /// 1 GiB, 16 MiB up to 100 GiB, 32 MiB up to 32 TiB, 64 MiB above;
    /// checked with `qemu-img create -f vhdx`), 512-byte logical sectors
    /// and 4096-byte physical sectors (as Hyper-V writes; qemu writes 512).
    pub fn for_size(size: u64) -> VhdxLayout {
        let block_size = if size > 32 << 40 {
            64 << 20
        } else if size > 100 << 30 {
            32 << 20
        } else if size > 1 << 30 {
            16 << 20
        } else {
            8 << 20
        };
        VhdxLayout {
            block_size,
            logical_sector_size: 512,
            physical_sector_size: 4096,
        }
    }
}

/// A GUID derived from the seed: SHA-256("cloudimg vhdx " ‖ what ‖ NUL ‖
/// seed), first 16 bytes, with the version-4 and variant bits set.
pub fn seeded_guid(what: &str, opts: &WriteOptions) -> Guid {
    let mut h = Sha256::new();
    h.update(b"cloudimg vhdx ");
    h.update(what.as_bytes());
    h.update([0]);
    h.update(opts.seed);
    let d = h.finalize();
    Guid::v4_from(d[..16].try_into().expect("SHA-256 has 32 bytes"))
}

/// Where everything goes in a file for `size` bytes with `layout`.
#[derive(Debug, Clone, Copy)]
struct Plan {
    chunk_ratio: u64,
    bat_entries: u64,
    bat_offset: u64,
    bat_length: u64,
    metadata_offset: u64,
    data_offset: u64,
}

fn plan(size: u64, layout: &VhdxLayout) -> Plan {
    let chunk_ratio = chunk_ratio(layout.logical_sector_size, layout.block_size);
    let bat_entries = bat_entries(size, layout.block_size, chunk_ratio);
    let bat_offset = HEADER_SECTION_END + LOG_LENGTH as u64;
    let bat_length = (bat_entries * 8).div_ceil(MIB).max(1) * MIB;
    let metadata_offset = bat_offset + bat_length;
    Plan {
        chunk_ratio,
        bat_entries,
        bat_offset,
        bat_length,
        metadata_offset,
        data_offset: metadata_offset + MIB,
    }
}

/// The header section and metadata region of a new file (everything but
/// the BAT and the blocks), as (offset, bytes) pieces.
fn fixed_structures(
    size: u64,
    layout: &VhdxLayout,
    p: &Plan,
    opts: &WriteOptions,
) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut id = vec![0u8; CREATOR_OFFSET + CREATOR_SIZE];
    id[..8].copy_from_slice(&FILE_SIGNATURE);
    for (i, u) in CREATOR.encode_utf16().enumerate() {
        id[CREATOR_OFFSET + 2 * i..CREATOR_OFFSET + 2 * i + 2].copy_from_slice(&u.to_le_bytes());
    }
    out.push((0, id));
    let guid = seeded_guid("write", opts);
    for (i, &off) in HEADER_OFFSETS.iter().enumerate() {
        let h = VhdxHeader {
            signature: HEADER_SIGNATURE,
            checksum: 0,
            sequence_number: FIRST_SEQUENCE + i as u64,
            file_write_guid: guid,
            data_write_guid: guid,
            log_guid: Guid::ZERO,
            log_version: 0,
            version: 1,
            log_length: LOG_LENGTH,
            log_offset: HEADER_SECTION_END,
        };
        out.push((off, h.to_bytes().to_vec()));
    }
    let regions = RegionTable::encode(&[
        RegionEntry {
            guid: BAT_GUID,
            file_offset: p.bat_offset,
            length: p.bat_length as u32,
            flags: REGION_REQUIRED,
        },
        RegionEntry {
            guid: METADATA_GUID,
            file_offset: p.metadata_offset,
            length: MIB as u32,
            flags: REGION_REQUIRED,
        },
    ]);
    for &off in &REGION_TABLE_OFFSETS {
        out.push((off, regions.clone()));
    }
    // Metadata: the table, then the items packed from 64 KiB, in qemu's
    // order and with qemu's (and Hyper-V's) flags.
    let vd = META_IS_REQUIRED | META_IS_VIRTUAL_DISK;
    let items: [(Guid, u32, Vec<u8>); 5] = [
        (FILE_PARAMETERS_GUID, META_IS_REQUIRED, {
            let mut v = layout.block_size.to_le_bytes().to_vec();
            v.extend_from_slice(&0u32.to_le_bytes());
            v
        }),
        (VIRTUAL_DISK_SIZE_GUID, vd, size.to_le_bytes().to_vec()),
        (PAGE83_GUID, vd, seeded_guid("page83", opts).0.to_vec()),
        (
            LOGICAL_SECTOR_SIZE_GUID,
            vd,
            layout.logical_sector_size.to_le_bytes().to_vec(),
        ),
        (
            PHYSICAL_SECTOR_SIZE_GUID,
            vd,
            layout.physical_sector_size.to_le_bytes().to_vec(),
        ),
    ];
    let mut entries = Vec::new();
    let mut data = Vec::new();
    for (g, flags, bytes) in &items {
        entries.push(MetadataEntry {
            item_id: *g,
            offset: (METADATA_TABLE_SIZE + data.len()) as u32,
            length: bytes.len() as u32,
            flags: *flags,
        });
        data.extend_from_slice(bytes);
    }
    let mut md = encode_metadata_table(&entries);
    md.extend_from_slice(&data);
    out.push((p.metadata_offset, md));
    out
}

/// Write `disk` as a dynamic VHDX with the default layout for its size.
pub fn write_dynamic(disk: &dyn VirtualDisk, out: &File, opts: &WriteOptions) -> Result<()> {
    write_dynamic_with(disk, out, opts, &VhdxLayout::for_size(disk.size()))
}

/// Write `disk` as a dynamic VHDX into `out` (which should be empty),
/// reading it once in order with at most one 1 MiB buffer. A block gets
/// file space (state fully present) when it holds a non-zero byte; the
/// others are ZERO, as `qemu-img convert -O vhdx` leaves them; sector
/// bitmap entries are not present. The file is sparse wherever the data is
/// zero.
pub fn write_dynamic_with(
    disk: &dyn VirtualDisk,
    out: &File,
    opts: &WriteOptions,
    layout: &VhdxLayout,
) -> Result<()> {
    let size = disk.size();
    let (bs, ls, ps) = (
        layout.block_size,
        layout.logical_sector_size,
        layout.physical_sector_size,
    );
    if !bs.is_power_of_two() || !(BLOCK_SIZE_MIN..=BLOCK_SIZE_MAX).contains(&bs) {
        return Err(Error::invalid_input(format!(
            "VHDX block size {bs} is not a power of two between 1 MiB and 256 MiB"
        )));
    }
    if !matches!(ls, 512 | 4096) || !matches!(ps, 512 | 4096) {
        return Err(Error::invalid_input(format!(
            "VHDX sector sizes must be 512 or 4096, not {ls} (logical) and {ps} (physical)"
        )));
    }
    if size == 0 || size % ls as u64 != 0 || size > MAX_VIRTUAL_SIZE {
        return Err(Error::invalid_input(format!(
            "a VHDX needs a disk size that is a non-zero multiple of {ls} bytes up to 64 TiB, not {size}"
        )));
    }
    let p = plan(size, layout);
    out.set_len(0).ctx("truncating the output")?;
    for (off, bytes) in fixed_structures(size, layout, &p, opts) {
        out.write_all_at(&bytes, off)
            .ctx("writing the VHDX headers")?;
    }
    let mut bat = vec![0u64; p.bat_entries as usize];
    for i in 0..payload_blocks(size, bs) {
        bat[bat_index(i, p.chunk_ratio) as usize] = bat_entry(PAYLOAD_BLOCK_ZERO, 0);
    }
    let bsz = bs as u64;
    let mut next = p.data_offset;
    for_each_chunk(disk, |offset, chunk| -> Result<()> {
        let Chunk::Data(data) = chunk else {
            return Ok(());
        };
        let mut pos = 0usize;
        while pos < data.len() {
            let at = offset + pos as u64;
            let block = at / bsz;
            let n = ((block + 1) * bsz - at).min((data.len() - pos) as u64) as usize;
            let piece = &data[pos..pos + n];
            if piece.iter().any(|&b| b != 0) {
                let idx = bat_index(block, p.chunk_ratio) as usize;
                if bat[idx] & BAT_STATE_MASK != PAYLOAD_BLOCK_FULLY_PRESENT as u64 {
                    bat[idx] = bat_entry(PAYLOAD_BLOCK_FULLY_PRESENT, next);
                    next += bsz;
                }
                let base = bat[idx] & BAT_OFFSET_MASK;
                out.write_all_at(piece, base + at % bsz)
                    .ctx("writing a VHDX block")?;
            }
            pos += n;
        }
        Ok(())
    })?;
    let raw: Vec<u8> = bat.iter().flat_map(|e| e.to_le_bytes()).collect();
    out.write_all_at(&raw, p.bat_offset)
        .ctx("writing the VHDX BAT")?;
    out.set_len(next).ctx("setting the file size")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_follows_qemu_block_sizes() {
        assert_eq!(VhdxLayout::for_size(100 << 20).block_size, 8 << 20);
        assert_eq!(VhdxLayout::for_size(1 << 30).block_size, 8 << 20);
        assert_eq!(VhdxLayout::for_size(2 << 30).block_size, 16 << 20);
        assert_eq!(VhdxLayout::for_size(200 << 30).block_size, 32 << 20);
        assert_eq!(VhdxLayout::for_size(33 << 40).block_size, 64 << 20);
    }

    #[test]
    fn plan_places_regions_after_the_log() {
        let p = plan(200 << 30, &VhdxLayout::for_size(200 << 30));
        assert_eq!(p.bat_entries, 6449);
        assert_eq!(p.bat_offset, 2 << 20);
        assert_eq!(p.metadata_offset, 3 << 20);
        assert_eq!(p.data_offset, 4 << 20);
    }
}
