//! Deep verification of a VMDK: decode everything, report every problem.
//!
//! Checks the header (and the footer against it), the descriptor, the
//! marker stream of a stream-optimized file (grain records, GT/GD/footer
//! markers, end of stream), the grain directory and tables against the
//! grains actually present, and inflates every grain. The decoded content
//! is hashed, and the disk handed back for the dispatcher to check its
//! partition table ([`crate::verify::verify_file_with`]).

use std::fs::File;

use super::descriptor::{self, Descriptor};
use super::reader::{self, read_exact_at, VmdkReader};
use super::stream::{walk_stream, Walk};
use super::wire::{
    self, SparseExtentHeader, CHECK_CHARS, COMPRESS_DEFLATE, FLAG_COMPRESSED, FLAG_MARKERS,
    FLAG_NEWLINE_TEST, GD_AT_END, NUM_GTES_PER_GT, SECTOR_BYTES, VERSION_STREAM_OPTIMIZED,
};
use crate::disk::{for_each_chunk, Chunk};
use crate::error::{IoContext, Result};
use crate::formats::table::{Verified, VerifyOptions};
use crate::formats::Format;
use crate::io::{DiskDigest, Sha256Hex};
use crate::verify::{Finding, Report};

use super::reader::DESCRIPTOR_SECTORS_MAX;
/// Descriptor lines not understood that are reported one by one.
const MAX_BAD_LINES: usize = 16;

/// Decode and check a VMDK in full, feeding the decoded disk to
/// `opts.digest`; the disk is handed back (for the GPT check) when it was
/// decoded in full.
pub fn verify(file: &File, opts: VerifyOptions<'_>) -> Result<Verified> {
    let file_size = file.metadata().ctx("reading file metadata")?.len();
    let leading = reader::read_header(file, file_size)?;
    let mut r = Report::new(Format::Vmdk, file_size);
    header_details(&leading, &mut r);
    header_findings(&leading, 0, &mut r);
    if !leading.fatal_problems().is_empty() && leading.gd_offset != GD_AT_END {
        return Ok(Verified::report_only(r));
    }

    let desc = descriptor_findings(file, file_size, &leading, &mut r)?;
    let stream = desc.as_ref().and_then(|d| d.create_type.as_deref()) == Some("streamOptimized")
        || leading.flags & FLAG_MARKERS != 0;
    if stream {
        stream_header_findings(&leading, 0, &mut r);
    }

    // The header in effect: the footer's when the GD is at the end.
    let end = file_size / SECTOR_BYTES * SECTOR_BYTES;
    let header = if leading.gd_offset == GD_AT_END {
        match reader::read_footer(file, file_size) {
            Ok(footer) => {
                footer_findings(&leading, &footer, end - 2 * SECTOR_BYTES, &mut r);
                footer
            }
            Err(m) => {
                r.push(Finding::at(end.saturating_sub(3 * SECTOR_BYTES), m));
                leading
            }
        }
    } else {
        leading
    };
    if !header.fatal_problems().is_empty() {
        return Ok(Verified::report_only(r));
    }
    r.virtual_size = Some(header.capacity * SECTOR_BYTES);
    let gd_at_end = leading.gd_offset == GD_AT_END;
    let disk = decode(file, file_size, &header, gd_at_end, opts.digest, &mut r)?;
    Ok(match disk {
        Some(d) => Verified::with_disk(r, d),
        None => Verified::report_only(r),
    })
}

/// Walk the marker stream (stream-optimized files) and the grain tables,
/// and hash the decoded disk; return it when it was decoded in full.
fn decode(
    file: &File,
    file_size: u64,
    header: &SparseExtentHeader,
    gd_at_end: bool,
    digest: DiskDigest<'_>,
    r: &mut Report,
) -> Result<Option<VmdkReader>> {
    let size = header.capacity * SECTOR_BYTES;
    let disk = match VmdkReader::open(file.try_clone().ctx("opening the VMDK again")?) {
        Ok(d) => Some(d),
        Err(e) => {
            let msg = format!("cannot read the grain tables: {}", e.message());
            r.push(match e.offset() {
                Some(o) => Finding::at(o, msg),
                None => Finding::whole(msg),
            });
            None
        }
    };
    let mut digest = Some(digest);
    let walk = if header.markers() {
        Some(walk_stream(
            file,
            file_size,
            header,
            gd_at_end,
            digest.take().unwrap_or_default(),
            r,
        )?)
    } else {
        None
    };

    let mut consistent = walk.as_ref().is_some_and(|w| w.in_order);
    if let Some(d) = &disk {
        let before = r.findings.len();
        table_findings(d, walk.as_ref(), r);
        redundant_gd_findings(file, d, r)?;
        consistent &= r.findings.len() == before;
        r.detail("grains", d.allocated_grains());
        r.detail("grain_tables", d.gd().iter().filter(|&&e| e != 0).count());
    } else {
        consistent = false;
    }

    // Hash the decoded disk: from the walk when the walk and the tables
    // agree (one pass), else through the tables.
    let sha = match (walk, &disk) {
        (Some(w), _) if consistent && w.digest_ok => {
            let mut dg = w.digest;
            dg.zeros(size - dg.len());
            Some(dg.finish())
        }
        (_, Some(d)) => hash_tables(d, digest.take().unwrap_or_default(), r),
        _ => None,
    };
    r.virtual_sha256 = sha;
    Ok(disk.filter(|_| sha.is_some()))
}

/// Hash the disk `d` decoded through its grain tables; `None` (and a
/// finding, unless an earlier one explains it) when that fails.
fn hash_tables(d: &VmdkReader, mut dg: DiskDigest<'_>, r: &mut Report) -> Option<Sha256Hex> {
    let res = for_each_chunk(d, |_, c| -> std::io::Result<()> {
        match c {
            Chunk::Data(b) => dg.data(b),
            Chunk::Zero(n) => dg.zeros(n),
        }
        Ok(())
    });
    match res {
        Ok(()) => Some(dg.finish()),
        Err(e) => {
            // Already explained by an earlier finding, if any.
            if r.findings.is_empty() {
                r.push(Finding::whole(format!("decoding the disk failed: {e}")));
            }
            None
        }
    }
}

fn header_details(h: &SparseExtentHeader, r: &mut Report) {
    r.detail("version", h.version);
    r.detail("flags", format!("{:#010x}", h.flags));
    r.detail("capacity_sectors", h.capacity);
    r.detail("grain_size_sectors", h.grain_size);
    r.detail("num_gtes_per_gt", h.num_gtes_per_gt);
    r.detail("descriptor_offset", h.descriptor_offset);
    r.detail("descriptor_size", h.descriptor_size);
    r.detail("overhead_sectors", h.overhead);
    if h.gd_offset == GD_AT_END {
        r.detail("gd_offset", "GD_AT_END");
    } else {
        r.detail("gd_offset", h.gd_offset);
    }
    r.detail("rgd_offset", h.rgd_offset);
    r.detail("compress_algorithm", h.compress_algorithm);
}

/// Header field offsets, for findings.
const AT_VERSION: u64 = 4;
const AT_FLAGS: u64 = 8;
const AT_CAPACITY: u64 = 12;
const AT_GRAIN_SIZE: u64 = 20;
const AT_NUM_GTES: u64 = 44;
const AT_UNCLEAN: u64 = 72;
const AT_CHECK_CHARS: u64 = 73;
const AT_COMPRESS: u64 = 77;

/// Problems of any sparse extent header at byte `base`.
fn header_findings(h: &SparseExtentHeader, base: u64, r: &mut Report) {
    if h.version == 0 || h.version > wire::VERSION_MAX {
        r.push(Finding::at(
            base + AT_VERSION,
            format!("unsupported version {} (expected 1 to 3)", h.version),
        ));
    }
    if h.flags & !wire::FLAGS_KNOWN != 0 {
        r.push(Finding::at(
            base + AT_FLAGS,
            format!("unknown flag bits {:#x}", h.flags & !wire::FLAGS_KNOWN),
        ));
    }
    if h.flags & FLAG_NEWLINE_TEST != 0 && h.check_chars != CHECK_CHARS {
        r.push(Finding::at(
            base + AT_CHECK_CHARS,
            format!(
                "newline-detection bytes are {:02x?}, expected [0a, 20, 0d, 0a] (text-mode transfer?)",
                h.check_chars
            ),
        ));
    }
    if h.capacity == 0 || h.capacity > wire::MAX_CAPACITY_SECTORS {
        r.push(Finding::at(
            base + AT_CAPACITY,
            format!("capacity of {} sectors is out of range", h.capacity),
        ));
    }
    if h.grain_size == 0
        || !h.grain_size.is_power_of_two()
        || h.grain_size > wire::GRAIN_SIZE_SECTORS_MAX
    {
        r.push(Finding::at(
            base + AT_GRAIN_SIZE,
            format!(
                "grain size {} sectors is not a power of 2 between 1 and 128",
                h.grain_size
            ),
        ));
    }
    if h.num_gtes_per_gt != NUM_GTES_PER_GT {
        r.push(Finding::at(
            base + AT_NUM_GTES,
            format!(
                "{} grain table entries per table; VMware supports only 512",
                h.num_gtes_per_gt
            ),
        ));
    }
    if h.compress_algorithm > COMPRESS_DEFLATE {
        r.push(Finding::at(
            base + AT_COMPRESS,
            format!("unsupported compression algorithm {}", h.compress_algorithm),
        ));
    }
    if h.unclean_shutdown != 0 {
        r.push(Finding::at(
            base + AT_UNCLEAN,
            "the unclean-shutdown flag is set",
        ));
    }
}

/// What a stream-optimized header must have (AWS and ESX refuse others).
fn stream_header_findings(h: &SparseExtentHeader, base: u64, r: &mut Report) {
    if h.version != VERSION_STREAM_OPTIMIZED && h.version <= wire::VERSION_MAX && h.version != 0 {
        r.push(Finding::at(
            base + AT_VERSION,
            format!(
                "version {}: stream-optimized extents must be version 3",
                h.version
            ),
        ));
    }
    for (bit, name) in [
        (FLAG_COMPRESSED, "compressed-grains"),
        (FLAG_MARKERS, "markers"),
    ] {
        if h.flags & bit == 0 {
            r.push(Finding::at(
                base + AT_FLAGS,
                format!("the {name} flag is not set in a stream-optimized extent"),
            ));
        }
    }
    if h.compress_algorithm != COMPRESS_DEFLATE {
        r.push(Finding::at(
            base + AT_COMPRESS,
            format!(
                "compression algorithm {} in a stream-optimized extent (expected 1, deflate)",
                h.compress_algorithm
            ),
        ));
    }
}

/// The footer must repeat the leading header except for the real GD
/// offset.
fn footer_findings(lead: &SparseExtentHeader, foot: &SparseExtentHeader, at: u64, r: &mut Report) {
    if foot.gd_offset == GD_AT_END {
        r.push(Finding::at(
            at + 56,
            "the footer's grain directory offset is GD_AT_END too",
        ));
    }
    let same = SparseExtentHeader {
        gd_offset: lead.gd_offset,
        ..*foot
    };
    if same != *lead {
        let fields: [(&str, u64, u64); 12] = [
            ("version", lead.version.into(), foot.version.into()),
            ("flags", lead.flags.into(), foot.flags.into()),
            ("capacity", lead.capacity, foot.capacity),
            ("grainSize", lead.grain_size, foot.grain_size),
            (
                "descriptorOffset",
                lead.descriptor_offset,
                foot.descriptor_offset,
            ),
            ("descriptorSize", lead.descriptor_size, foot.descriptor_size),
            (
                "numGTEsPerGT",
                lead.num_gtes_per_gt.into(),
                foot.num_gtes_per_gt.into(),
            ),
            ("rgdOffset", lead.rgd_offset, foot.rgd_offset),
            ("overHead", lead.overhead, foot.overhead),
            (
                "uncleanShutdown",
                lead.unclean_shutdown.into(),
                foot.unclean_shutdown.into(),
            ),
            (
                "compressAlgorithm",
                lead.compress_algorithm.into(),
                foot.compress_algorithm.into(),
            ),
            (
                "check characters",
                u32::from_le_bytes(lead.check_chars).into(),
                u32::from_le_bytes(foot.check_chars).into(),
            ),
        ];
        for (name, a, b) in fields.iter().filter(|(_, a, b)| a != b) {
            r.push(Finding::at(
                at,
                format!("the footer's {name} is {b}, the header's is {a}"),
            ));
        }
    }
    header_findings(foot, at, r);
}

/// Read, parse and check the embedded descriptor.
fn descriptor_findings(
    file: &File,
    file_size: u64,
    h: &SparseExtentHeader,
    r: &mut Report,
) -> Result<Option<Descriptor>> {
    let at = h.descriptor_offset.saturating_mul(SECTOR_BYTES);
    if h.descriptor_offset == 0 || h.descriptor_size == 0 {
        r.push(Finding::at(28, "the file has no embedded descriptor"));
        return Ok(None);
    }
    if h.descriptor_size > DESCRIPTOR_SECTORS_MAX {
        r.push(Finding::at(
            36,
            format!(
                "the descriptor is {} sectors, more than the {DESCRIPTOR_SECTORS_MAX} sectors (1 MiB) cloudimg reads; \
                 it was not read",
                h.descriptor_size
            ),
        ));
        return Ok(None);
    }
    let len = h.descriptor_size * SECTOR_BYTES;
    if at.checked_add(len).is_none_or(|e| e > file_size) {
        r.push(Finding::at(
            28,
            format!(
                "the descriptor ({} sectors at sector {}) runs past the end of the file",
                h.descriptor_size, h.descriptor_offset
            ),
        ));
        return Ok(None);
    }
    let mut b = vec![0u8; len as usize];
    read_exact_at(file, &mut b, at).ctx("reading the descriptor")?;
    // Judged by its content, not its first comment (see `descriptor`).
    let d = Descriptor::parse(&b);
    identity_findings(&d, at, r);
    extent_findings(&d, h, at, r);
    Ok(Some(d))
}

/// The descriptor's type, CID and parent (at `at` in the file).
fn identity_findings(d: &Descriptor, at: u64, r: &mut Report) {
    match &d.create_type {
        Some(t) => r.detail("create_type", t.as_str()),
        None => r.push(Finding::at(at, "the descriptor has no createType")),
    }
    match &d.cid {
        Some(c) if !descriptor::is_cid(c) => r.push(Finding::at(
            at,
            format!("CID {c:?} is not 1 to 8 hex digits"),
        )),
        Some(c) if c.eq_ignore_ascii_case("ffffffff") || c.eq_ignore_ascii_case("fffffffe") => r
            .push(Finding::at(
                at,
                format!("CID {c} is reserved (read as \"no parent\" or \"all zeros\")"),
            )),
        Some(_) => {}
        None => r.push(Finding::at(at, "the descriptor has no CID")),
    }
    if let Some(c) = &d.cid {
        r.detail("cid", c.as_str());
    }
    match d.parent_cid.as_deref() {
        Some(p) if p.eq_ignore_ascii_case("ffffffff") => {}
        Some(p) => r.push(Finding::at(
            at,
            format!("parentCID is {p}: the disk has a parent and cannot be decoded alone"),
        )),
        None => r.push(Finding::at(at, "the descriptor has no parentCID")),
    }
    if let Some(hint) = &d.parent_hint {
        r.push(Finding::at(
            at,
            format!(
                "parentFileNameHint is {hint:?}: the disk has a parent and cannot be decoded alone"
            ),
        ));
    }
}

/// The descriptor's one extent line against the header, and the lines
/// not understood.
fn extent_findings(d: &Descriptor, h: &SparseExtentHeader, at: u64, r: &mut Report) {
    match d.extents.as_slice() {
        [e] => {
            if e.kind != "SPARSE" {
                r.push(Finding::at(
                    at,
                    format!("the extent type is {}, expected SPARSE", e.kind),
                ));
            }
            if e.sectors != h.capacity {
                r.push(Finding::at(
                    at,
                    format!(
                        "the extent line has {} sectors, the header's capacity is {}",
                        e.sectors, h.capacity
                    ),
                ));
            }
        }
        ex => r.push(Finding::at(
            at,
            format!("the descriptor has {} extent lines, expected 1", ex.len()),
        )),
    }
    for (line, text) in d.bad_lines.iter().take(MAX_BAD_LINES) {
        let text: String = text.chars().take(200).collect();
        r.push(Finding::at(
            at,
            format!("descriptor line {line} is not understood: {text:?}"),
        ));
    }
    if d.bad_lines.len() > MAX_BAD_LINES {
        r.push(Finding::at(
            at,
            format!(
                "{} more descriptor lines are not understood",
                d.bad_lines.len() - MAX_BAD_LINES
            ),
        ));
    }
}

/// Check the grain directory and tables: against the walk for a stream,
/// against the file bounds and each other for any sparse extent.
fn table_findings(d: &VmdkReader, walk: Option<&Walk>, r: &mut Report) {
    let h = d.header();
    let file_size = d.file_size();
    let per = u64::from(h.num_gtes_per_gt);
    let gb = h.grain_bytes();
    // GD entries must point at tables introduced by GT markers.
    if let Some(w) =
        walk.filter(|w| !w.gts.is_empty() || h.gd_offset != d.leading_header().gd_offset)
    {
        for (i, &e) in d.gd().iter().enumerate() {
            if e != 0 && w.gts.binary_search(&u64::from(e)).is_err() {
                r.push(Finding::at(
                    h.gd_offset * SECTOR_BYTES + i as u64 * 4,
                    format!("grain directory entry {i} points at sector {e}, which does not follow a grain table marker"),
                ));
            }
        }
    }
    let mut referenced = walk.map(|w| vec![false; w.grains.len()]);
    let mut spans: Vec<(u64, u64, u64)> = Vec::new(); // (start, end, lba)
    for (i, &gt_sector) in d.gd().iter().enumerate() {
        let Some(gt) = d.gt(i) else { continue };
        for (j, &e) in gt.iter().enumerate() {
            let n = i as u64 * per + j as u64;
            if e == 0 || (e == wire::GTE_ZEROED && h.zeroed_gte()) {
                continue;
            }
            let entry_at = u64::from(gt_sector) * SECTOR_BYTES + j as u64 * 4;
            let lba = n * h.grain_size;
            if n >= h.grain_count() {
                r.push(Finding::at(
                    entry_at,
                    format!("grain table entry for LBA {lba} lies beyond the disk's capacity"),
                ));
                continue;
            }
            let at = u64::from(e) * SECTOR_BYTES;
            if at >= file_size {
                r.push(Finding::at(entry_at, format!("grain table entry for LBA {lba} points at byte {at}, past the end of the {file_size}-byte file")));
                continue;
            }
            let mut len = gb;
            if let (Some(w), Some(refd)) = (walk, referenced.as_mut()) {
                match w.grains.binary_search_by_key(&u64::from(e), |g| g.sector) {
                    Ok(k) => {
                        let g = w.grains[k];
                        refd[k] = true;
                        len = g.bytes;
                        if g.lba != lba {
                            r.push(Finding::at(entry_at, format!("grain table entry for LBA {lba} points at the grain record for LBA {} (byte {at})", g.lba)));
                        }
                    }
                    Err(_) => {
                        r.push(Finding::at(entry_at, format!("grain table entry for LBA {lba} points at byte {at}, which is not the start of a grain record")));
                        len = SECTOR_BYTES;
                    }
                }
            } else if at + len > file_size {
                r.push(Finding::at(entry_at, format!("grain for LBA {lba} at byte {at} runs past the end of the {file_size}-byte file")));
            }
            spans.push((at, at + len, lba));
        }
    }
    spans.sort_unstable();
    for p in spans.windows(2) {
        let ((a, a_end, a_lba), (b, _, b_lba)) = (p[0], p[1]);
        if b < a_end {
            r.push(Finding::at(b, format!("the grain for LBA {b_lba} at byte {b} overlaps the grain for LBA {a_lba} at byte {a}")));
        }
    }
    if let (Some(w), Some(refd)) = (walk, referenced) {
        for (g, _) in w.grains.iter().zip(refd).filter(|(_, used)| !used) {
            r.push(Finding::at(
                g.sector * SECTOR_BYTES,
                format!(
                    "grain record for LBA {} is not referenced by any grain table",
                    g.lba
                ),
            ));
        }
    }
}

/// With the redundant-GD flag, the redundant grain directory's tables must
/// repeat the primary ones (qemu and VMware keep both in step).
fn redundant_gd_findings(file: &File, d: &VmdkReader, r: &mut Report) -> Result<()> {
    let h = d.header();
    if h.flags & wire::FLAG_REDUNDANT_GD == 0 || h.rgd_offset == 0 {
        return Ok(());
    }
    let file_size = d.file_size();
    let n = d.gd().len() as u64;
    let at = h.rgd_offset.saturating_mul(SECTOR_BYTES);
    if at.checked_add(n * 4).is_none_or(|e| e > file_size) {
        r.push(Finding::at(
            48,
            format!(
                "the redundant grain directory at sector {} runs past the end of the file",
                h.rgd_offset
            ),
        ));
        return Ok(());
    }
    let mut raw = vec![0u8; (n * 4) as usize];
    read_exact_at(file, &mut raw, at).ctx("reading the redundant grain directory")?;
    let rgd = wire::parse_table(&raw);
    let gt_bytes = u64::from(h.num_gtes_per_gt) * 4;
    let mut rgt = vec![0u8; gt_bytes as usize];
    for (i, &e) in rgd.iter().enumerate() {
        let entry_at = at + i as u64 * 4;
        match (d.gt(i), e) {
            (None, 0) => {}
            (Some(_), 0) | (None, _) => {
                r.push(Finding::at(
                    entry_at,
                    format!(
                        "redundant grain directory entry {i} is {e}, the primary's is {}",
                        d.gd()[i]
                    ),
                ));
            }
            (Some(gt), e) => {
                let gt_at = u64::from(e) * SECTOR_BYTES;
                if gt_at + gt_bytes > file_size {
                    r.push(Finding::at(
                        entry_at,
                        format!(
                            "redundant grain table {i} at sector {e} runs past the end of the file"
                        ),
                    ));
                    continue;
                }
                read_exact_at(file, &mut rgt, gt_at).ctx("reading a redundant grain table")?;
                if wire::parse_table(&rgt) != gt {
                    r.push(Finding::at(
                        gt_at,
                        format!("redundant grain table {i} differs from the primary grain table"),
                    ));
                }
            }
        }
    }
    Ok(())
}
