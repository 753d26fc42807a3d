//! Reading a VHDX as a [`VirtualDisk`]: the current header, the log
//! (replayed in memory), the region table, the metadata and the BAT.
//!
//! [`parse`] does the structural work shared with the verifier: it records
//! every problem it meets as a [`Finding`] and returns an error only when
//! the disk cannot be decoded (every such error is also recorded as a
//! finding of kind Corrupt/Unsupported, so that the verifier can report it).

use std::collections::HashMap;
use std::fs::File;
use std::io;

use crate::disk::{coalesce, eof_error, Extent, ExtentKind, VirtualDisk};
use crate::error::{Error, ErrorKind, IoContext, Result};
use crate::layout::Guid;
use crate::verify::Finding;

use super::wire::*;

/// Largest log accepted for replay (qemu and Hyper-V write 1 MiB logs);
/// the whole log is read into memory.
pub const MAX_LOG_LENGTH: u64 = 64 << 20;

/// One write the log makes to the file, applied in order over its bytes.
#[derive(Debug, Clone)]
enum LogWrite {
    /// 4 KiB of data at a file offset.
    Data(u64, Box<[u8]>),
    /// A zeroed range (offset, length).
    Zero(u64, u64),
}

/// The file as seen after the log's writes: the bytes on disk with the
/// replayed writes laid over them, and zeros past the end of the file up
/// to the length the log says the file has.
#[derive(Debug)]
pub struct Overlay {
    file: File,
    file_len: u64,
    len: u64,
    writes: Vec<LogWrite>,
}

impl Overlay {
    fn new(file: File, file_len: u64) -> Overlay {
        Overlay {
            file,
            file_len,
            len: file_len,
            writes: Vec::new(),
        }
    }

    /// Length of the file after replay.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the log changed anything.
    pub fn is_replayed(&self) -> bool {
        !self.writes.is_empty()
    }

    /// Read `buf.len()` bytes at `offset` of the replayed file.
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|&e| e <= self.len)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "read of {} bytes at file offset {offset} runs past the end of the {}-byte file",
                        buf.len(),
                        self.len
                    ),
                )
            })?;
        let phys = end.min(self.file_len).saturating_sub(offset) as usize;
        if phys > 0 {
            crate::io::read_exact_at(&self.file, &mut buf[..phys], offset)?;
        }
        buf[phys..].fill(0);
        for w in &self.writes {
            let (wo, wl) = match w {
                LogWrite::Data(o, d) => (*o, d.len() as u64),
                LogWrite::Zero(o, l) => (*o, *l),
            };
            let (from, to) = (offset.max(wo), end.min(wo.saturating_add(wl)));
            if from >= to {
                continue;
            }
            let dst = &mut buf[(from - offset) as usize..(to - offset) as usize];
            match w {
                LogWrite::Data(_, d) => {
                    dst.copy_from_slice(&d[(from - wo) as usize..(to - wo) as usize])
                }
                LogWrite::Zero(..) => dst.fill(0),
            }
        }
        Ok(())
    }

    fn read_vec(&self, offset: u64, len: usize, what: &str) -> Result<Vec<u8>> {
        let mut b = vec![0u8; len];
        self.read_at(&mut b, offset)
            .map_err(|e| Error::io(format!("reading the {what}"), e).at(offset))?;
        Ok(b)
    }
}

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
fn fatal(findings: &mut Vec<Finding>, e: Error) -> Error {
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

    // Headers (spec 2.2.2): the valid one with the larger sequence number.
    let mut slots = Vec::with_capacity(2);
    for (i, &off) in HEADER_OFFSETS.iter().enumerate() {
        let mut b = [0u8; HEADER_SIZE];
        crate::io::read_exact_at(&file, &mut b, off).ctx("reading a header")?;
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
        slots.push(HeaderSlot {
            offset: off,
            header,
            computed_checksum: computed,
            valid: problems.is_empty(),
        });
    }
    let headers: [HeaderSlot; 2] = [slots[0].clone(), slots[1].clone()];
    let current = match (headers[0].valid, headers[1].valid) {
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
    };
    let h = headers[current].header.clone();
    let ho = headers[current].offset;
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
    let log_end = h.log_offset.saturating_add(h.log_length as u64);
    if h.log_length != 0 && (h.log_offset < HEADER_SECTION_END || h.log_offset % MIB != 0)
        || h.log_length as u64 % MIB != 0
        || log_end > len
    {
        findings.push(Finding::at(
            ho + header_off::LOG_OFFSET as u64,
            format!(
                "log of {} bytes at offset {} is not 1 MiB-aligned after the header section inside the {len}-byte file",
                h.log_length, h.log_offset
            ),
        ));
    }

    let mut overlay = Overlay::new(file, len);
    let mut log_entries_replayed = 0;
    if !h.log_guid.is_zero() && h.log_length != 0 {
        log_entries_replayed = replay_log(&mut overlay, &h, ho, findings)?;
    }

    // Region tables (spec 2.2.3): the first valid copy.
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
    let Some((region_table_offset, regions, _)) = tables.into_iter().find(|t| t.2) else {
        return Err(fatal(
            findings,
            Error::corrupt("no valid region table: both copies fail their checks")
                .at(REGION_TABLE_OFFSETS[0]),
        ));
    };
    let mut bat_region = None;
    let mut metadata_region = None;
    for (i, e) in regions.entries.iter().enumerate() {
        let at = region_table_offset + 16 + 32 * i as u64;
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
            Error::corrupt("region table lacks the BAT or the metadata region")
                .at(region_table_offset),
        ));
    };
    // Regions must not overlap each other or the log (qemu
    // `vhdx_region_check`).
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
            if a.1 < b.2 && b.1 < a.2 && a.1 != a.2 && b.1 != b.2 {
                return Err(fatal(
                    findings,
                    Error::corrupt(format!("{} overlaps {}", a.0, b.0)).at(region_table_offset),
                ));
            }
        }
    }

    let (metadata, params) = parse_metadata(&overlay, &metadata_region, findings)?;

    // BAT (spec 2.5).
    let cr = params.chunk_ratio();
    let entries = bat_entries(params.virtual_size, params.block_size, cr);
    if entries * 8 > bat_region.length as u64 {
        return Err(fatal(
            findings,
            Error::corrupt(format!(
                "BAT region of {} bytes is too small for the {entries} entries the disk needs",
                bat_region.length
            ))
            .at(bat_region.file_offset),
        ));
    }
    // Bounded by the region, itself inside the file.
    let raw = overlay.read_vec(bat_region.file_offset, (entries * 8) as usize, "BAT")?;
    let bat: Vec<u64> = raw.chunks_exact(8).map(|c| le64(c, 0)).collect();
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

/// Read the metadata table and the five required items.
fn parse_metadata(
    overlay: &Overlay,
    region: &RegionEntry,
    findings: &mut Vec<Finding>,
) -> Result<(Vec<MetadataEntry>, DiskParams)> {
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
    let known = [
        (FILE_PARAMETERS_GUID, 8u32, "file parameters"),
        (VIRTUAL_DISK_SIZE_GUID, 8, "virtual disk size"),
        (PAGE83_GUID, 16, "page 83 data"),
        (LOGICAL_SECTOR_SIZE_GUID, 4, "logical sector size"),
        (PHYSICAL_SECTOR_SIZE_GUID, 4, "physical sector size"),
    ];
    let mut items: HashMap<Guid, Vec<u8>> = HashMap::new();
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
        let Some(&(_, want, name)) = known.iter().find(|k| k.0 == e.item_id) else {
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
    for (g, _, name) in known {
        if !items.contains_key(&g) {
            return Err(fatal(
                findings,
                Error::corrupt(format!("required metadata item {name} is missing")).at(mo),
            ));
        }
    }
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
    Ok((entries, params))
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
                    None
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

/// A validated log entry.
#[derive(Debug)]
struct LogEntry {
    /// Position in the log.
    pos: u64,
    length: u64,
    tail: u64,
    sequence: u64,
    flushed_file_offset: u64,
    last_file_offset: u64,
    writes: Vec<LogWrite>,
}

/// Validate the log entry at `pos` of the in-memory log (spec 2.3.1;
/// qemu `vhdx_validate_log_entry`, `vhdx_log_desc_is_valid`).
fn log_entry_at(log: &[u8], pos: u64, guid: &Guid) -> Option<LogEntry> {
    let l = log.len() as u64;
    let ring = |p: u64, n: u64| -> Vec<u8> {
        let mut v = Vec::with_capacity(n as usize);
        let mut p = p % l;
        let mut left = n;
        while left > 0 {
            let k = left.min(l - p);
            v.extend_from_slice(&log[p as usize..(p + k) as usize]);
            left -= k;
            p = (p + k) % l;
        }
        v
    };
    let hdr = ring(pos, LOG_ENTRY_HEADER_SIZE as u64);
    if hdr[0..4] != LOG_ENTRY_SIGNATURE {
        return None;
    }
    let length = le32(&hdr, 8) as u64;
    let sequence = le64(&hdr, 16);
    let count = le32(&hdr, 24) as u64;
    if length == 0 || length % LOG_SECTOR_SIZE != 0 || length > l || sequence == 0 {
        return None;
    }
    if Guid::from_bytes(&hdr[32..48]) != *guid {
        return None;
    }
    let desc_sectors = (count + 2).div_ceil(128);
    if desc_sectors * LOG_SECTOR_SIZE > length {
        return None;
    }
    let entry = ring(pos, length);
    if checksum(&entry, 4) != le32(&entry, 4) {
        return None;
    }
    let mut writes = Vec::new();
    let mut data_at = desc_sectors * LOG_SECTOR_SIZE;
    for d in 0..count as usize {
        let o = LOG_ENTRY_HEADER_SIZE + LOG_DESCRIPTOR_SIZE * d;
        let desc = &entry[o..o + LOG_DESCRIPTOR_SIZE];
        let file_offset = le64(desc, 16);
        if le64(desc, 24) != sequence || file_offset % LOG_SECTOR_SIZE != 0 {
            return None;
        }
        if desc[0..4] == LOG_ZERO_DESC_SIGNATURE {
            let n = le64(desc, 8);
            if n % LOG_SECTOR_SIZE != 0 {
                return None;
            }
            writes.push(LogWrite::Zero(file_offset, n));
        } else if desc[0..4] == LOG_DATA_DESC_SIGNATURE {
            if data_at + LOG_SECTOR_SIZE > length {
                return None;
            }
            let s = &entry[data_at as usize..(data_at + LOG_SECTOR_SIZE) as usize];
            let seq = ((le32(s, 4) as u64) << 32) | le32(s, 4092) as u64;
            if s[0..4] != LOG_DATA_SIGNATURE || seq != sequence {
                return None;
            }
            // The sector's first 8 and last 4 bytes live in the descriptor.
            let mut data = vec![0u8; LOG_SECTOR_SIZE as usize];
            data[..8].copy_from_slice(&desc[8..16]);
            data[8..4092].copy_from_slice(&s[8..4092]);
            data[4092..].copy_from_slice(&desc[4..8]);
            writes.push(LogWrite::Data(file_offset, data.into_boxed_slice()));
            data_at += LOG_SECTOR_SIZE;
        } else {
            return None;
        }
    }
    Some(LogEntry {
        pos,
        length,
        tail: le32(&hdr, 12) as u64,
        sequence,
        flushed_file_offset: le64(&hdr, 48),
        last_file_offset: le64(&hdr, 56),
        writes,
    })
}

/// Find the active log sequence and lay its writes over the file, in
/// memory. Returns the number of entries replayed.
///
/// The active sequence (spec 2.3.3) is the chain of valid entries, each
/// following the previous one in the ring with the next sequence number,
/// that ends with the highest sequence number; it is replayed from the
/// entry its head's tail field names (from its start when the tail is not
/// in the chain), oldest first.
fn replay_log(
    overlay: &mut Overlay,
    h: &VhdxHeader,
    ho: u64,
    findings: &mut Vec<Finding>,
) -> Result<usize> {
    let (lo, ll) = (h.log_offset, h.log_length as u64);
    let at = ho + header_off::LOG_OFFSET as u64;
    if lo < HEADER_SECTION_END || lo % MIB != 0 || ll % MIB != 0 {
        return Err(fatal(
            findings,
            Error::corrupt(format!(
                "the log ({ll} bytes at offset {lo}) must be replayed but is not 1 MiB-aligned after the header section"
            ))
            .at(at),
        ));
    }
    if ll > MAX_LOG_LENGTH {
        return Err(fatal(
            findings,
            Error::unsupported(format!(
                "the log of {ll} bytes must be replayed but is larger than the {MAX_LOG_LENGTH} bytes supported"
            ))
            .at(at),
        ));
    }
    if lo.saturating_add(ll) > overlay.file_len {
        return Err(fatal(
            findings,
            Error::corrupt(format!(
                "the log ({ll} bytes at offset {lo}) must be replayed but runs past the end of the {}-byte file",
                overlay.file_len
            ))
            .at(at),
        ));
    }
    let log = overlay.read_vec(lo, ll as usize, "log")?;
    let mut cache: HashMap<u64, Option<LogEntry>> = HashMap::new();
    let mut best: Option<Vec<u64>> = None;
    let mut best_seq = 0;
    let mut in_chain = vec![false; (ll / LOG_SECTOR_SIZE) as usize];
    for start in (0..ll).step_by(LOG_SECTOR_SIZE as usize) {
        if in_chain[(start / LOG_SECTOR_SIZE) as usize] {
            continue;
        }
        let mut chain = Vec::new();
        let mut pos = start;
        let mut covered = 0;
        let mut prev_seq = None;
        loop {
            let e = cache
                .entry(pos)
                .or_insert_with(|| log_entry_at(&log, pos, &h.log_guid));
            let Some(e) = e else { break };
            if prev_seq.is_some_and(|s: u64| e.sequence != s.wrapping_add(1)) {
                break;
            }
            covered += e.length;
            if covered > ll {
                break;
            }
            prev_seq = Some(e.sequence);
            chain.push(pos);
            pos = (pos + e.length) % ll;
        }
        if let (Some(seq), false) = (prev_seq, chain.is_empty()) {
            for &p in &chain[1..] {
                in_chain[(p / LOG_SECTOR_SIZE) as usize] = true;
            }
            if best.is_none() || seq > best_seq {
                best_seq = seq;
                best = Some(chain);
            }
        }
    }
    let Some(chain) = best else {
        // A log GUID without valid entries: nothing to replay.
        return Ok(0);
    };
    let head = cache[chain.last().expect("a chain has entries")]
        .as_ref()
        .expect("chain entries are valid");
    let from = chain.iter().position(|&p| p == head.tail).unwrap_or(0);
    if head.flushed_file_offset > overlay.file_len {
        return Err(fatal(
            findings,
            Error::corrupt(format!(
                "the log says the file was flushed up to {} bytes, but it has only {} (truncated?)",
                head.flushed_file_offset, overlay.file_len
            ))
            .at(lo + head.pos + 48),
        ));
    }
    let mut n = 0;
    for p in &chain[from..] {
        let e = cache
            .get_mut(p)
            .and_then(Option::take)
            .expect("chain entries are valid");
        overlay.len = overlay.len.max(e.last_file_offset);
        for w in e.writes {
            let end = match &w {
                LogWrite::Data(o, d) => o.saturating_add(d.len() as u64),
                LogWrite::Zero(o, l) => o.saturating_add(*l),
            };
            overlay.len = overlay.len.max(end);
            overlay.writes.push(w);
        }
        n += 1;
    }
    findings.push(Finding::at(
        lo + chain[from],
        format!(
            "the log (GUID {}) was never replayed into the file: its active entries (sequence {} to {}) were applied in memory",
            h.log_guid,
            best_seq - (n as u64 - 1),
            best_seq
        ),
    ));
    Ok(n)
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
