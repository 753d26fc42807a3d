//! Reading a VHDX as a [`VirtualDisk`]: the current header, the log
//! (replayed in memory by [`super::log`]), the region table, the metadata
//! and the BAT.
//!
//! [`parse`] does the structural work shared with the verifier: it records
//! every problem it meets as a [`Finding`] and returns an error only when
//! the disk cannot be decoded (every such error is also recorded as a
//! finding of kind Corrupt/Unsupported, so that the verifier can report it).

use std::fs::File;
use std::io;

use crate::disk::{coalesce, eof_error, Extent, ExtentKind, VirtualDisk};
use crate::error::{Error, ErrorKind, IoContext, Result};
use crate::layout::Guid;
use crate::verify::Finding;

use super::log::{replay_log, Overlay};
use super::metadata::parse_metadata;
use super::wire::*;

/// How one of the two headers fared.
#[derive(Debug, Clone)]
pub struct HeaderSlot {
    /// Offset of the header in the file.
    pub offset: u64,
    /// Decoded fields.
    pub header: VhdxHeader,
    /// Checksum computed over the 4 KiB.
    pub computed_checksum: u32,
    /// Signature, checksum and version are right.
    pub valid: bool,
}

/// The disk parameters from the metadata region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskParams {
    /// Payload block size.
    pub block_size: u32,
    /// File parameters flags.
    pub file_flags: u32,
    /// Virtual disk size in bytes.
    pub virtual_size: u64,
    /// Logical sector size (512 or 4096).
    pub logical_sector_size: u32,
    /// Physical sector size (512 or 4096).
    pub physical_sector_size: u32,
    /// SCSI page 83 identifier.
    pub page83: Guid,
}

impl DiskParams {
    /// Payload blocks per sector bitmap block.
    pub fn chunk_ratio(&self) -> u64 {
        chunk_ratio(self.logical_sector_size, self.block_size)
    }
    /// Whether the file is a fixed disk (blocks stay allocated).
    pub fn leave_blocks_allocated(&self) -> bool {
        self.file_flags & PARAMS_LEAVE_BLOCKS_ALLOCATED != 0
    }
}

/// Everything [`parse`] learnt about a VHDX.
#[derive(Debug)]
pub struct VhdxImage {
    /// The file (with the log replayed over it).
    pub file: Overlay,
    /// Creator string of the file identifier.
    pub creator: String,
    /// Both headers.
    pub headers: [HeaderSlot; 2],
    /// Index (0 or 1) of the current header.
    pub current: usize,
    /// Log entries replayed (0 when the log was empty).
    pub log_entries_replayed: usize,
    /// The region table in use.
    pub regions: RegionTable,
    /// Offset of the region table in use.
    pub region_table_offset: u64,
    /// BAT region.
    pub bat_region: RegionEntry,
    /// Metadata region.
    pub metadata_region: RegionEntry,
    /// The metadata table entries.
    pub metadata: Vec<MetadataEntry>,
    /// Disk parameters.
    pub params: DiskParams,
    /// The BAT (payload and sector bitmap entries interleaved).
    pub bat: Vec<u64>,
}

impl VhdxImage {
    /// The current header.
    pub fn header(&self) -> &VhdxHeader {
        &self.headers[self.current].header
    }
    /// BAT entry of payload block `i`.
    pub fn payload_entry(&self, i: u64) -> u64 {
        let idx = bat_index(i, self.params.chunk_ratio());
        self.bat.get(idx as usize).copied().unwrap_or(0)
    }
    /// Number of payload blocks.
    pub fn blocks(&self) -> u64 {
        payload_blocks(self.params.virtual_size, self.params.block_size)
    }
}

/// Record `e` as a finding and return it.
pub(super) fn fatal(findings: &mut Vec<Finding>, e: Error) -> Error {
    findings.push(match e.offset() {
        Some(o) => Finding::at(o, e.message()),
        None => Finding::whole(e.message()),
    });
    e
}

/// Read and check a VHDX's structure, recording every problem met in
/// `findings`. Returns an error (also recorded, except for I/O errors and
/// a missing signature) when the disk cannot be decoded.
pub fn parse(file: File, findings: &mut Vec<Finding>) -> Result<VhdxImage> {
    let len = file.metadata().ctx("reading metadata")?.len();
    let mut sig = [0u8; 8];
    if crate::formats::read_up_to(&file, &mut sig, 0)? < 8 || sig != FILE_SIGNATURE {
        return Err(Error::invalid_format(
            "not a VHDX: no \"vhdxfile\" signature at offset 0",
        ));
    }
    let header_end = REGION_TABLE_OFFSETS[1] + REGION_TABLE_SIZE as u64;
    if len < header_end {
        return Err(fatal(
            findings,
            Error::corrupt(format!(
                "file of {len} bytes is too short for the VHDX header section ({header_end} bytes)"
            )),
        ));
    }
    let mut creator = [0u8; CREATOR_SIZE];
    crate::io::read_exact_at(&file, &mut creator, CREATOR_OFFSET as u64)
        .ctx("reading the creator")?;
    let creator = creator_string(&creator);

    let headers = [
        read_header_slot(&file, 0, findings)?,
        read_header_slot(&file, 1, findings)?,
    ];
    let current = current_header(&headers, findings)?;
    let h = headers[current].header.clone();
    let ho = headers[current].offset;
    let log_end = check_log_placement(&h, ho, len, findings)?;

    let mut overlay = Overlay::new(file, len);
    let mut log_entries_replayed = 0;
    if !h.log_guid.is_zero() && h.log_length != 0 {
        log_entries_replayed = replay_log(&mut overlay, &h, ho, findings)?;
    }

    let (region_table_offset, regions) = read_region_tables(&overlay, findings)?;
    let (bat_region, metadata_region) =
        required_regions(&regions, region_table_offset, len, findings)?;
    check_region_overlaps(&regions, region_table_offset, &h, log_end, findings)?;
    let (metadata, params) = parse_metadata(&overlay, &metadata_region, findings)?;
    let bat = read_bat(&overlay, &bat_region, &params, findings)?;
    let image = VhdxImage {
        file: overlay,
        creator,
        headers,
        current,
        log_entries_replayed,
        regions,
        region_table_offset,
        bat_region,
        metadata_region,
        metadata,
        params,
        bat,
    };
    check_payload_entries(&image, findings)?;
    Ok(image)
}

/// Read header `i` (0 or 1) and check its signature, checksum and version
/// (spec 2.2.2), recording each problem.
fn read_header_slot(file: &File, i: usize, findings: &mut Vec<Finding>) -> Result<HeaderSlot> {
    let off = HEADER_OFFSETS[i];
    let mut b = [0u8; HEADER_SIZE];
    crate::io::read_exact_at(file, &mut b, off).ctx("reading a header")?;
    let header = VhdxHeader::parse(&b);
    let computed = checksum(&b, header_off::CHECKSUM);
    let mut problems = Vec::new();
    if header.signature != HEADER_SIGNATURE {
        problems.push(format!(
            "signature is {:?}, expected \"head\"",
            String::from_utf8_lossy(&header.signature)
        ));
    }
    if computed != header.checksum {
        problems.push(format!(
            "checksum mismatch (expected {computed:08x}, found {:08x})",
            header.checksum
        ));
    }
    if header.version != 1 {
        problems.push(format!("version is {}, expected 1", header.version));
    }
    for p in &problems {
        findings.push(Finding::at(off, format!("header {}: {p}", i + 1)));
    }
    Ok(HeaderSlot {
        offset: off,
        header,
        computed_checksum: computed,
        valid: problems.is_empty(),
    })
}

/// The index of the current header (spec 2.2.2): the valid one with the
/// larger sequence number.
fn current_header(headers: &[HeaderSlot; 2], findings: &mut Vec<Finding>) -> Result<usize> {
    Ok(match (headers[0].valid, headers[1].valid) {
        (false, false) => {
            return Err(fatal(
                findings,
                Error::corrupt("no valid VHDX header: both headers fail their checks")
                    .at(HEADER_OFFSETS[0]),
            ))
        }
        (true, false) => 0,
        (false, true) => 1,
        (true, true) => {
            let (a, b) = (&headers[0].header, &headers[1].header);
            if a.sequence_number > b.sequence_number {
                0
            } else if b.sequence_number > a.sequence_number {
                1
            } else if a == b {
                // Disk2VHD writes two identical headers (qemu accepts them).
                0
            } else {
                return Err(fatal(
                    findings,
                    Error::corrupt(format!(
                        "both headers are valid with the same sequence number {} but differ",
                        a.sequence_number
                    ))
                    .at(HEADER_OFFSETS[0]),
                ));
            }
        }
    })
}

/// Check the log version and where the current header `h` (at `ho`) puts
/// the log in the `len`-byte file; return the log's end.
fn check_log_placement(
    h: &VhdxHeader,
    ho: u64,
    len: u64,
    findings: &mut Vec<Finding>,
) -> Result<u64> {
    if h.log_version != 0 {
        return Err(fatal(
            findings,
            Error::unsupported(format!(
                "log version {} is not supported (only 0)",
                h.log_version
            ))
            .at(ho + header_off::LOG_VERSION as u64),
        ));
    }
    // qemu refuses a log offset inside the header section or not 1
    // MiB-aligned even when the log is empty (block/vhdx-log.c
    // vhdx_parse_log: -EINVAL before it looks at the log GUID).
    if h.log_offset < HEADER_SECTION_END || h.log_offset % MIB != 0 {
        return Err(fatal(
            findings,
            Error::corrupt(format!(
                "the log offset {} is not 1 MiB-aligned after the header section",
                h.log_offset
            ))
            .at(ho + header_off::LOG_OFFSET as u64),
        ));
    }
    let log_end = h.log_offset.saturating_add(h.log_length as u64);
    if h.log_length as u64 % MIB != 0 || log_end > len {
        findings.push(Finding::at(
            ho + header_off::LOG_OFFSET as u64,
            format!(
                "log of {} bytes at offset {} is not 1 MiB-aligned after the header section inside the {len}-byte file",
                h.log_length, h.log_offset
            ),
        ));
    }
    Ok(log_end)
}

/// Read both region tables (spec 2.2.3), recording the problems of each;
/// return the first valid copy and its offset.
fn read_region_tables(
    overlay: &Overlay,
    findings: &mut Vec<Finding>,
) -> Result<(u64, RegionTable)> {
    let mut tables = Vec::new();
    for (i, &off) in REGION_TABLE_OFFSETS.iter().enumerate() {
        let b = overlay.read_vec(off, REGION_TABLE_SIZE, "region table")?;
        let t = RegionTable::parse(&b);
        let computed = checksum(&b, 4);
        let mut ok = true;
        if t.signature != REGION_SIGNATURE {
            findings.push(Finding::at(
                off,
                format!(
                    "region table {}: signature is {:?}, expected \"regi\"",
                    i + 1,
                    String::from_utf8_lossy(&t.signature)
                ),
            ));
            ok = false;
        }
        if computed != t.checksum {
            findings.push(Finding::at(
                off + 4,
                format!(
                    "region table {}: checksum mismatch (expected {computed:08x}, found {:08x})",
                    i + 1,
                    t.checksum
                ),
            ));
            ok = false;
        }
        if t.entry_count > REGION_MAX_ENTRIES {
            findings.push(Finding::at(
                off + 8,
                format!(
                    "region table {}: {} entries, more than the {REGION_MAX_ENTRIES} allowed",
                    i + 1,
                    t.entry_count
                ),
            ));
            ok = false;
        }
        tables.push((off, t, ok));
    }
    if tables[0].2 && tables[1].2 && tables[0].1 != tables[1].1 {
        findings.push(Finding::at(
            REGION_TABLE_OFFSETS[1],
            "the two region tables differ",
        ));
    }
    // qemu reads only the first region table and refuses the file when it
    // fails its checks (block/vhdx.c vhdx_open_region_tables): falling
    // back to the second copy would decode what qemu refuses.
    let (offset, table, ok) = tables.swap_remove(0);
    if !ok {
        return Err(fatal(
            findings,
            Error::corrupt("the first region table fails its checks (see above)")
                .at(REGION_TABLE_OFFSETS[0]),
        ));
    }
    Ok((offset, table))
}

/// The BAT and metadata regions of the table at `table_offset`, each
/// listed once, inside the `len`-byte file; unknown regions are skipped
/// unless required.
fn required_regions(
    regions: &RegionTable,
    table_offset: u64,
    len: u64,
    findings: &mut Vec<Finding>,
) -> Result<(RegionEntry, RegionEntry)> {
    let mut bat_region = None;
    let mut metadata_region = None;
    for (i, e) in regions.entries.iter().enumerate() {
        let at = table_offset + 16 + 32 * i as u64;
        let slot = if e.guid == BAT_GUID {
            &mut bat_region
        } else if e.guid == METADATA_GUID {
            &mut metadata_region
        } else if e.flags & REGION_REQUIRED != 0 {
            return Err(fatal(
                findings,
                Error::unsupported(format!("unknown required region {}", e.guid)).at(at),
            ));
        } else {
            continue;
        };
        if slot.is_some() {
            return Err(fatal(
                findings,
                Error::corrupt(format!("region {} is listed twice", e.guid)).at(at),
            ));
        }
        if e.file_offset < HEADER_SECTION_END
            || e.file_offset % MIB != 0
            || e.length as u64 % MIB != 0
            || e.length == 0
        {
            findings.push(Finding::at(
                at,
                format!(
                    "region {} at offset {} with length {} is not 1 MiB-aligned after the header section",
                    e.guid, e.file_offset, e.length
                ),
            ));
        }
        if e.end() > len {
            return Err(fatal(
                findings,
                Error::corrupt(format!(
                    "region {} ({} bytes at offset {}) runs past the end of the {len}-byte file",
                    e.guid, e.length, e.file_offset
                ))
                .at(at),
            ));
        }
        *slot = Some(*e);
    }
    let (Some(bat_region), Some(metadata_region)) = (bat_region, metadata_region) else {
        return Err(fatal(
            findings,
            Error::corrupt("region table lacks the BAT or the metadata region").at(table_offset),
        ));
    };
    Ok((bat_region, metadata_region))
}

/// Whether the byte ranges `[a.0, a.1)` and `[b.0, b.1)` overlap, as
/// qemu's `vhdx_region_check` decides it (block/vhdx.c): an empty range
/// strictly inside another overlaps it.
fn overlaps(a: (u64, u64), b: (u64, u64)) -> bool {
    !(a.0 >= b.1 || a.1 <= b.0)
}

/// Regions must not overlap each other, the header section or the log
/// (which ends at `log_end`, and counts even when empty, as qemu
/// registers it) (qemu `vhdx_region_check`).
fn check_region_overlaps(
    regions: &RegionTable,
    table_offset: u64,
    h: &VhdxHeader,
    log_end: u64,
    findings: &mut Vec<Finding>,
) -> Result<()> {
    let mut spans = vec![
        ("the header section".to_string(), 0, HEADER_SECTION_END),
        ("the log".to_string(), h.log_offset, log_end),
    ];
    for e in &regions.entries {
        spans.push((format!("region {}", e.guid), e.file_offset, e.end()));
    }
    for i in 0..spans.len() {
        for j in i + 1..spans.len() {
            let (a, b) = (&spans[i], &spans[j]);
            if overlaps((a.1, a.2), (b.1, b.2)) {
                return Err(fatal(
                    findings,
                    Error::corrupt(format!("{} overlaps {}", a.0, b.0)).at(table_offset),
                ));
            }
        }
    }
    Ok(())
}

/// Read the BAT (spec 2.5): the entries the disk described by `params`
/// needs, which must fit in `region`.
fn read_bat(
    overlay: &Overlay,
    region: &RegionEntry,
    params: &DiskParams,
    findings: &mut Vec<Finding>,
) -> Result<Vec<u64>> {
    let cr = params.chunk_ratio();
    let entries = bat_entries(params.virtual_size, params.block_size, cr);
    if entries * 8 > region.length as u64 {
        return Err(fatal(
            findings,
            Error::corrupt(format!(
                "BAT region of {} bytes is too small for the {entries} entries the disk needs",
                region.length
            ))
            .at(region.file_offset),
        ));
    }
    // Bounded by the region, itself inside the file.
    let raw = overlay.read_vec(region.file_offset, (entries * 8) as usize, "BAT")?;
    Ok(raw.chunks_exact(8).map(|c| le64(c, 0)).collect())
}

/// Check the payload BAT entries a reader relies on: states it can read,
/// and present blocks inside the file. Every problem is a finding; the
/// first one is returned as the error.
fn check_payload_entries(image: &VhdxImage, findings: &mut Vec<Finding>) -> Result<()> {
    let mut first: Option<Error> = None;
    let mut bad = 0u64;
    let cr = image.params.chunk_ratio();
    let bs = image.params.block_size as u64;
    let vs = image.params.virtual_size;
    let spans = registered_spans(image);
    for i in 0..image.blocks() {
        let idx = bat_index(i, cr);
        let e = image.bat[idx as usize];
        let at = image.bat_region.file_offset + 8 * idx;
        let state = (e & BAT_STATE_MASK) as u8;
        let msg = match state {
            PAYLOAD_BLOCK_NOT_PRESENT
            | PAYLOAD_BLOCK_UNDEFINED
            | PAYLOAD_BLOCK_ZERO
            | PAYLOAD_BLOCK_UNMAPPED
            | PAYLOAD_BLOCK_UNMAPPED_V095 => None,
            PAYLOAD_BLOCK_FULLY_PRESENT => {
                let off = e & BAT_OFFSET_MASK;
                let need = bs.min(vs - i * bs);
                if off < HEADER_SECTION_END {
                    Some(format!(
                        "BAT entry {idx}: block {i} at file offset {off} lies in the header section"
                    ))
                } else if off.checked_add(need).is_none_or(|end| end > image.file.len()) {
                    Some(format!(
                        "BAT entry {idx}: block {i} at file offset {off} runs past the end of the {}-byte file",
                        image.file.len()
                    ))
                } else {
                    // qemu vhdx_check_bat_entries: a present block must not
                    // overlap the log or a region (whole block size).
                    spans
                        .iter()
                        .find(|(_, s, e)| overlaps((off, off + bs), (*s, *e)))
                        .map(|(name, _, _)| {
                            format!("BAT entry {idx}: block {i} at file offset {off} overlaps {name}")
                        })
                }
            }
            PAYLOAD_BLOCK_PARTIALLY_PRESENT => Some(format!(
                "BAT entry {idx}: block {i} is partially present, which only differencing disks may be"
            )),
            s => Some(format!("BAT entry {idx}: block {i} has reserved state {s}")),
        };
        if let Some(m) = msg {
            bad += 1;
            findings.push(Finding::at(at, m.clone()));
            if first.is_none() {
                first = Some(Error::corrupt(m).at(at));
            }
        }
    }
    if let Some((idx, m)) = bad_bitmap_entry(image) {
        let at = image.bat_region.file_offset + 8 * idx;
        bad += 1;
        findings.push(Finding::at(at, m.clone()));
        if first.is_none() {
            first = Some(Error::corrupt(m).at(at));
        }
    }
    match first {
        None => Ok(()),
        Some(e) if bad == 1 => Err(e),
        Some(e) => {
            let (m, o) = (e.message().to_string(), e.offset());
            let e = Error::corrupt(format!("{m} (and {} more bad BAT entries)", bad - 1));
            Err(match o {
                Some(o) => e.at(o),
                None => e,
            })
        }
    }
}

/// The file ranges qemu registers before it checks the BAT: the log (even
/// empty) and every region of the table (block/vhdx.c
/// vhdx_parse_header, vhdx_open_region_tables).
fn registered_spans(image: &VhdxImage) -> Vec<(String, u64, u64)> {
    let h = image.header();
    let mut spans = vec![(
        "the log".to_string(),
        h.log_offset,
        h.log_offset.saturating_add(h.log_length as u64),
    )];
    for e in &image.regions.entries {
        spans.push((format!("region {}", e.guid), e.file_offset, e.end()));
    }
    spans
}

/// The first sector bitmap entry of the BAT that says "fully present"
/// (state 6) but points past the end of the file, which qemu refuses for
/// every BAT entry (block/vhdx.c vhdx_check_bat_entries; a disk without a
/// parent reads no sector bitmap).
fn bad_bitmap_entry(image: &VhdxImage) -> Option<(u64, String)> {
    let cr = image.params.chunk_ratio();
    let len = image.file.len();
    (cr..image.bat.len() as u64)
        .step_by(cr as usize + 1)
        .find_map(|idx| {
            let e = image.bat[idx as usize];
            let off = e & BAT_OFFSET_MASK;
            ((e & BAT_STATE_MASK) as u8 == PAYLOAD_BLOCK_FULLY_PRESENT && off >= len).then(|| {
                (
                    idx,
                    format!(
                        "BAT entry {idx}: sector bitmap at file offset {off} lies past the end of the {len}-byte file"
                    ),
                )
            })
        })
}

/// A VHDX read through its BAT.
#[derive(Debug)]
pub struct VhdxDisk {
    image: VhdxImage,
}

impl VhdxDisk {
    /// A disk read through a parsed image.
    pub fn from_image(image: VhdxImage) -> VhdxDisk {
        VhdxDisk { image }
    }

    /// The parsed structure.
    pub fn image(&self) -> &VhdxImage {
        &self.image
    }

    /// File offset of block `i`'s data, or None when it reads as zeros.
    fn block_data(&self, i: u64) -> Option<u64> {
        let e = self.image.payload_entry(i);
        ((e & BAT_STATE_MASK) as u8 == PAYLOAD_BLOCK_FULLY_PRESENT).then_some(e & BAT_OFFSET_MASK)
    }
}

impl VirtualDisk for VhdxDisk {
    fn size(&self) -> u64 {
        self.image.params.virtual_size
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let size = self.size();
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|&e| e <= size)
            .ok_or_else(|| eof_error(offset, buf.len(), size))?;
        let bs = self.image.params.block_size as u64;
        let mut pos = offset;
        while pos < end {
            let block = pos / bs;
            let within = pos % bs;
            let n = (bs - within).min(end - pos) as usize;
            let out = &mut buf[(pos - offset) as usize..(pos - offset) as usize + n];
            match self.block_data(block) {
                None => out.fill(0),
                Some(base) => self.image.file.read_at(out, base + within).map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("block {block} at file offset {}: {e}", base + within),
                    )
                })?,
            }
            pos += n as u64;
        }
        Ok(())
    }

    fn extents(&self) -> io::Result<Vec<Extent>> {
        let bs = self.image.params.block_size as u64;
        let size = self.size();
        let ext = (0..self.image.blocks()).map(|i| Extent {
            offset: i * bs,
            len: bs.min(size - i * bs),
            kind: if self.block_data(i).is_some() {
                ExtentKind::Data
            } else {
                ExtentKind::Zero
            },
        });
        Ok(coalesce(ext))
    }
}

/// Open a VHDX (dynamic or fixed) for reading. A log that must be replayed
/// is replayed in memory (the file is never written); differencing disks
/// and structures that cannot be decoded are refused.
pub fn open(file: File) -> Result<Box<dyn VirtualDisk>> {
    Ok(Box::new(open_disk(file)?))
}

/// [`open`], keeping the concrete type.
pub fn open_disk(file: File) -> Result<VhdxDisk> {
    let mut findings = Vec::new();
    let image = parse(file, &mut findings)?;
    Ok(VhdxDisk { image })
}

/// Whether `e` is an error [`parse`] recorded as a finding (the structure
/// is bad), rather than an I/O error or a file that is not a VHDX.
pub fn is_structural(e: &Error) -> bool {
    matches!(e.kind(), ErrorKind::Corrupt | ErrorKind::Unsupported)
}
