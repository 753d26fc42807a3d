//! Deep check of a VHDX: both headers and region tables, the metadata, every
//! BAT entry, the decoded disk's SHA-256 (its GPT is checked by the
//! dispatcher, [`crate::verify::verify_file_with`]).

use std::fs::File;

use crate::error::{Error, IoContext, Result};
use crate::formats::table::{Verified, VerifyOptions};
use crate::formats::Format;
use crate::io::feed_disk;
use crate::verify::{Finding, Report};

use super::reader::{is_structural, parse, VhdxDisk, VhdxImage};
use super::wire::*;

/// Decode and check a VHDX in full, feeding the decoded disk to
/// `opts.digest` (zero runs as zeros). Every problem is a finding with its
/// byte offset in the file; the decoded disk is handed back for the GPT
/// check. `Err` only when the file is not a VHDX or cannot be read.
pub fn verify(file: &File, opts: VerifyOptions<'_>) -> Result<Verified> {
    let mut digest = opts.digest;
    let len = file.metadata().ctx("reading metadata")?.len();
    let mut r = Report::new(Format::Vhdx, len);
    let mut findings = Vec::new();
    let parsed = parse(file.try_clone().ctx("opening")?, &mut findings);
    r.findings.append(&mut findings);
    let image = match parsed {
        Ok(i) => i,
        Err(e) if is_structural(&e) => return Ok(Verified::report_only(r)),
        Err(e) => return Err(e),
    };
    details(&image, &mut r);
    check_headers(&image, &mut r);
    check_metadata(&image, &mut r);
    check_bat(&image, &mut r);
    let disk = VhdxDisk::from_image(image);
    r.virtual_size = Some(crate::VirtualDisk::size(&disk));
    feed_disk(&disk, &mut digest).map_err(|e| Error::io("reading the VHDX data", e))?;
    r.virtual_sha256 = Some(digest.finish());
    Ok(Verified::with_disk(r, disk))
}

fn details(im: &VhdxImage, r: &mut Report) {
    let h = im.header();
    let p = &im.params;
    r.detail("creator", im.creator.clone());
    r.detail(
        "header_sequence_numbers",
        vec![
            im.headers[0].header.sequence_number,
            im.headers[1].header.sequence_number,
        ],
    );
    r.detail("current_header", im.current as u64 + 1);
    r.detail("file_write_guid", h.file_write_guid.to_string());
    r.detail("data_write_guid", h.data_write_guid.to_string());
    r.detail("log_guid", h.log_guid.to_string());
    r.detail("log_offset", h.log_offset);
    r.detail("log_length", h.log_length);
    r.detail("log_entries_replayed", im.log_entries_replayed as u64);
    r.detail("bat_offset", im.bat_region.file_offset);
    r.detail("metadata_offset", im.metadata_region.file_offset);
    r.detail("block_size", p.block_size);
    r.detail("logical_sector_size", p.logical_sector_size);
    r.detail("physical_sector_size", p.physical_sector_size);
    r.detail("virtual_disk_size", p.virtual_size);
    r.detail("page83", p.page83.to_string());
    r.detail("leave_blocks_allocated", p.leave_blocks_allocated());
    r.detail("chunk_ratio", p.chunk_ratio());
    r.detail("bat_entries", im.bat.len() as u64);
    let mut counts = [0u64; 8];
    for i in 0..im.blocks() {
        counts[(im.payload_entry(i) & BAT_STATE_MASK) as usize] += 1;
    }
    r.detail(
        "blocks_present",
        counts[PAYLOAD_BLOCK_FULLY_PRESENT as usize],
    );
    r.detail("blocks_zero", counts[PAYLOAD_BLOCK_ZERO as usize]);
    r.detail(
        "blocks_not_present",
        counts[PAYLOAD_BLOCK_NOT_PRESENT as usize],
    );
}

fn check_headers(im: &VhdxImage, r: &mut Report) {
    for (i, s) in im.headers.iter().enumerate() {
        let h = &s.header;
        if h.log_version != 0 && s.valid {
            r.push(Finding::at(
                s.offset + header_off::LOG_VERSION as u64,
                format!(
                    "header {}: log version is {}, expected 0",
                    i + 1,
                    h.log_version
                ),
            ));
        }
    }
    let (a, b) = (&im.headers[0], &im.headers[1]);
    if a.valid && b.valid && a.header.sequence_number == b.header.sequence_number {
        r.push(Finding::at(
            b.offset + header_off::SEQUENCE as u64,
            format!(
                "both headers have sequence number {}; the current one is ambiguous",
                a.header.sequence_number
            ),
        ));
    }
}

fn check_metadata(im: &VhdxImage, r: &mut Report) {
    let mo = im.metadata_region.file_offset;
    let mut spans: Vec<(u64, u64, usize)> = im
        .metadata
        .iter()
        .enumerate()
        .filter(|(_, e)| e.length != 0)
        .map(|(i, e)| (e.offset as u64, e.offset as u64 + e.length as u64, i))
        .collect();
    spans.sort();
    for w in spans.windows(2) {
        if w[1].0 < w[0].1 {
            r.push(Finding::at(
                mo + 32 + 32 * w[1].2 as u64,
                format!(
                    "metadata item {} overlaps item {}",
                    im.metadata[w[1].2].item_id, im.metadata[w[0].2].item_id
                ),
            ));
        }
    }
}

fn check_bat(im: &VhdxImage, r: &mut Report) {
    let p = &im.params;
    let cr = p.chunk_ratio();
    let bs = p.block_size as u64;
    let file_len = im.file.len();
    let bat_at = |idx: u64| im.bat_region.file_offset + 8 * idx;
    // Occupied file ranges: (start, end, what, entry offset).
    let mut used: Vec<(u64, u64, String, u64)> =
        vec![(0, HEADER_SECTION_END, "the header section".into(), 0)];
    let h = im.header();
    if h.log_length != 0 {
        used.push((
            h.log_offset,
            h.log_offset + h.log_length as u64,
            "the log".into(),
            0,
        ));
    }
    for e in &im.regions.entries {
        used.push((e.file_offset, e.end(), format!("region {}", e.guid), 0));
    }
    let fixed_regions = used.len();
    for (idx, &e) in im.bat.iter().enumerate() {
        let idx = idx as u64;
        let state = (e & BAT_STATE_MASK) as u8;
        let off = e & BAT_OFFSET_MASK;
        let reserved = e & !BAT_STATE_MASK & !BAT_OFFSET_MASK;
        if reserved != 0 {
            r.push(Finding::at(
                bat_at(idx),
                format!("BAT entry {idx}: reserved bits are {reserved:#x}, expected 0"),
            ));
        }
        if is_bitmap_index(idx, cr) {
            match state {
                SB_BLOCK_NOT_PRESENT => {}
                SB_BLOCK_PRESENT => {
                    if off < HEADER_SECTION_END || off.saturating_add(MIB) > file_len {
                        r.push(Finding::at(
                            bat_at(idx),
                            format!(
                                "BAT entry {idx}: sector bitmap at file offset {off} lies outside the file's data area"
                            ),
                        ));
                    } else {
                        used.push((off, off + MIB, format!("sector bitmap (BAT entry {idx})"), bat_at(idx)));
                    }
                }
                s => r.push(Finding::at(
                    bat_at(idx),
                    format!("BAT entry {idx}: sector bitmap state {s} is neither 0 (not present) nor 6 (present)"),
                )),
            }
            continue;
        }
        let block = idx - idx / (cr + 1);
        match state {
            PAYLOAD_BLOCK_FULLY_PRESENT => {
                // Bounds were checked by the parser (it refuses blocks
                // outside the file).
                let end = off + bs.min(p.virtual_size - block * bs);
                used.push((off, end, format!("block {block} (BAT entry {idx})"), bat_at(idx)));
            }
            PAYLOAD_BLOCK_UNMAPPED_V095 => r.push(Finding::at(
                bat_at(idx),
                format!("BAT entry {idx}: block {block} has state 5, unmapped in a pre-1.0 draft and reserved in VHDX 1.00"),
            )),
            PAYLOAD_BLOCK_NOT_PRESENT | PAYLOAD_BLOCK_UNDEFINED | PAYLOAD_BLOCK_ZERO
            | PAYLOAD_BLOCK_UNMAPPED => {}
            // Reserved and partially present states were reported by the
            // parser, which refuses them.
            _ => {}
        }
    }
    // Overlaps: sort by start; each range must end before the next begins.
    // The fixed regions were checked by the parser.
    let mut order: Vec<usize> = (0..used.len()).collect();
    order.sort_by_key(|&i| (used[i].0, used[i].1));
    let mut reach: Option<usize> = None; // range reaching furthest so far
    for &i in &order {
        if let Some(j) = reach {
            if used[i].0 < used[j].1 && !(i < fixed_regions && j < fixed_regions) {
                let (later, earlier) = if i >= fixed_regions { (i, j) } else { (j, i) };
                r.push(Finding::at(
                    used[later].3,
                    format!(
                        "{} at file offset {} overlaps {}",
                        used[later].2, used[later].0, used[earlier].2
                    ),
                ));
            }
            if used[i].1 > used[j].1 {
                reach = Some(i);
            }
        } else {
            reach = Some(i);
        }
    }
}
