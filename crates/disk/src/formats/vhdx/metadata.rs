//! The VHDX metadata region: its table and the five items every disk
//! must have (file parameters, virtual disk size, page 83 data, logical
//! and physical sector size), read into [`DiskParams`]; split out of
//! [`super::reader`], which calls [`parse_metadata`].

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::layout::Guid;
use crate::verify::Finding;

use super::log::Overlay;
use super::reader::{fatal, DiskParams};
use super::wire::*;

/// The metadata items a disk must have: their id, length and name.
const REQUIRED_ITEMS: [(Guid, u32, &str); 5] = [
    (FILE_PARAMETERS_GUID, 8, "file parameters"),
    (VIRTUAL_DISK_SIZE_GUID, 8, "virtual disk size"),
    (PAGE83_GUID, 16, "page 83 data"),
    (LOGICAL_SECTOR_SIZE_GUID, 4, "logical sector size"),
    (PHYSICAL_SECTOR_SIZE_GUID, 4, "physical sector size"),
];

/// The data of metadata items, by item id.
type MetadataItems = HashMap<Guid, Vec<u8>>;

/// Read the metadata table and the five required items.
pub(super) fn parse_metadata(
    overlay: &Overlay,
    region: &RegionEntry,
    findings: &mut Vec<Finding>,
) -> Result<(Vec<MetadataEntry>, DiskParams)> {
    let entries = read_metadata_table(overlay, region, findings)?;
    let (items, has_locator) = read_metadata_items(overlay, region, &entries, findings)?;
    let params = disk_params(&items, has_locator, region.file_offset, findings)?;
    Ok((entries, params))
}

/// Read the metadata table at the start of `region` and check its
/// signature and entry count.
fn read_metadata_table(
    overlay: &Overlay,
    region: &RegionEntry,
    findings: &mut Vec<Finding>,
) -> Result<Vec<MetadataEntry>> {
    let mo = region.file_offset;
    let table_len = (region.length as usize).min(METADATA_TABLE_SIZE);
    if table_len < 32 {
        return Err(fatal(
            findings,
            Error::corrupt(format!(
                "metadata region of {} bytes is too small",
                region.length
            ))
            .at(mo),
        ));
    }
    let b = overlay.read_vec(mo, table_len, "metadata table")?;
    let (sig, count, entries) = parse_metadata_table(&b);
    if sig != METADATA_SIGNATURE {
        return Err(fatal(
            findings,
            Error::corrupt(format!(
                "metadata table signature is {:?}, expected \"metadata\"",
                String::from_utf8_lossy(&sig)
            ))
            .at(mo),
        ));
    }
    if count as usize != entries.len() {
        return Err(fatal(
            findings,
            Error::corrupt(format!(
                "metadata table claims {count} entries, more than the {} that fit",
                entries.len()
            ))
            .at(mo + 10),
        ));
    }
    Ok(entries)
}

/// Read the [`REQUIRED_ITEMS`] the table `entries` lists, each once and of
/// its length; also return where a parent locator is listed, if one is.
/// Unknown items are skipped unless required.
fn read_metadata_items(
    overlay: &Overlay,
    region: &RegionEntry,
    entries: &[MetadataEntry],
    findings: &mut Vec<Finding>,
) -> Result<(MetadataItems, Option<u64>)> {
    let mo = region.file_offset;
    let mut items = MetadataItems::new();
    let mut has_locator = None;
    for (i, e) in entries.iter().enumerate() {
        let at = mo + 32 + 32 * i as u64;
        let end = e.offset as u64 + e.length as u64;
        if e.length != 0
            && ((e.offset as usize) < METADATA_TABLE_SIZE || end > region.length as u64)
        {
            return Err(fatal(
                findings,
                Error::corrupt(format!(
                    "metadata item {} ({} bytes at offset {}) lies outside the item area of the {}-byte metadata region",
                    e.item_id, e.length, e.offset, region.length
                ))
                .at(at),
            ));
        }
        if e.item_id == PARENT_LOCATOR_GUID {
            has_locator = Some(at);
            continue;
        }
        let Some(&(_, want, name)) = REQUIRED_ITEMS.iter().find(|k| k.0 == e.item_id) else {
            if e.flags & META_IS_REQUIRED != 0 {
                return Err(fatal(
                    findings,
                    Error::unsupported(format!("unknown required metadata item {}", e.item_id))
                        .at(at),
                ));
            }
            continue;
        };
        if items.contains_key(&e.item_id) {
            return Err(fatal(
                findings,
                Error::corrupt(format!("metadata item {name} is listed twice")).at(at),
            ));
        }
        if e.length != want {
            return Err(fatal(
                findings,
                Error::corrupt(format!(
                    "metadata item {name} is {} bytes long, expected {want}",
                    e.length
                ))
                .at(at),
            ));
        }
        if e.flags & META_IS_REQUIRED == 0 {
            findings.push(Finding::at(
                at,
                format!("metadata item {name} lacks the IsRequired flag"),
            ));
        }
        let data = overlay.read_vec(mo + e.offset as u64, want as usize, "metadata item")?;
        items.insert(e.item_id, data);
    }
    for (g, _, name) in REQUIRED_ITEMS {
        if !items.contains_key(&g) {
            return Err(fatal(
                findings,
                Error::corrupt(format!("required metadata item {name} is missing")).at(mo),
            ));
        }
    }
    Ok((items, has_locator))
}

/// Decode and check the disk parameters from the required metadata
/// `items` (of the region at `mo`); `has_locator`: where a parent locator
/// is listed, if one is.
fn disk_params(
    items: &MetadataItems,
    has_locator: Option<u64>,
    mo: u64,
    findings: &mut Vec<Finding>,
) -> Result<DiskParams> {
    let fp = &items[&FILE_PARAMETERS_GUID];
    let params = DiskParams {
        block_size: le32(fp, 0),
        file_flags: le32(fp, 4),
        virtual_size: le64(&items[&VIRTUAL_DISK_SIZE_GUID], 0),
        logical_sector_size: le32(&items[&LOGICAL_SECTOR_SIZE_GUID], 0),
        physical_sector_size: le32(&items[&PHYSICAL_SECTOR_SIZE_GUID], 0),
        page83: Guid::from_bytes(&items[&PAGE83_GUID]),
    };
    if params.file_flags & PARAMS_HAS_PARENT != 0 {
        return Err(fatal(
            findings,
            Error::unsupported(
                "differencing VHDX (the file parameters say it has a parent) is not supported",
            )
            .at(mo),
        ));
    }
    if let Some(at) = has_locator {
        findings.push(Finding::at(
            at,
            "metadata lists a parent locator but the file parameters do not say the disk has a parent",
        ));
    }
    let bs = params.block_size;
    if !bs.is_power_of_two() || !(BLOCK_SIZE_MIN..=BLOCK_SIZE_MAX).contains(&bs) {
        return Err(fatal(
            findings,
            Error::corrupt(format!(
                "block size {bs} is not a power of two between 1 MiB and 256 MiB"
            ))
            .at(mo),
        ));
    }
    let ls = params.logical_sector_size;
    if ls != 512 && ls != 4096 {
        return Err(fatal(
            findings,
            Error::corrupt(format!("logical sector size {ls} is neither 512 nor 4096")).at(mo),
        ));
    }
    let ps = params.physical_sector_size;
    if ps != 512 && ps != 4096 {
        findings.push(Finding::at(
            mo,
            format!("physical sector size {ps} is neither 512 nor 4096"),
        ));
    }
    let vs = params.virtual_size;
    if vs == 0 || vs > MAX_VIRTUAL_SIZE || vs % ls as u64 != 0 {
        return Err(fatal(
            findings,
            Error::corrupt(format!(
                "virtual disk size {vs} is not a non-zero multiple of the {ls}-byte sector up to 64 TiB"
            ))
            .at(mo),
        ));
    }
    Ok(params)
}
