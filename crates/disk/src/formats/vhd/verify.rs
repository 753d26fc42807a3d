//! Deep check of a VHD: every footer field, the sizes against the file,
//! the dynamic header and BAT, the decoded disk's SHA-256 (its GPT is
//! checked by the dispatcher, [`crate::verify::verify_file_with`]).

use std::fs::File;

use crate::error::{Error, IoContext, Result};
use crate::formats::table::{Verified, VerifyOptions};
use crate::formats::Format;
use crate::io::{feed_disk, RawFile, ReadBack};
use crate::verify::{Finding, Report};

use super::reader::{read_footer, DynamicVhd, FooterAt};
use super::wire::*;

/// Decode and check a VHD in full, feeding the decoded disk to
/// `opts.digest` and reading a fixed disk's data as `opts.from` says. Every problem is a finding with its
/// byte offset in the file; the decoded disk is handed back for the GPT
/// check. `Err` only when the file is shorter than a footer or
/// cannot be read.
pub fn verify(file: &File, opts: VerifyOptions<'_>) -> Result<Verified> {
    let len = file.metadata().ctx("reading metadata")?.len();
    let at = read_footer(file)?;
    let f = &at.footer;
    let format = if f.disk_type == DISK_TYPE_DYNAMIC {
        Format::VhdDynamic
    } else {
        Format::VhdFixed
    };
    let mut r = Report::new(format, len);
    footer_findings(&at, &mut r);
    disk_type_findings(&at, len, &mut r);
    size_findings(&at, &mut r);
    footer_details(&at, &mut r);
    let Some(disk) = decodable_disk(file, len, &at, opts.from, &mut r)? else {
        return Ok(Verified::report_only(r));
    };
    let mut digest = opts.digest;
    r.virtual_size = Some(f.virtual_size());
    feed_disk(&disk, &mut digest).map_err(|e| Error::io("reading the VHD data", e))?;
    r.virtual_sha256 = Some(digest.finish());
    Ok(Verified::with_disk(r, disk))
}

/// The footer's cookie, checksum, features and version.
fn footer_findings(at: &FooterAt, r: &mut Report) {
    let (f, fo) = (&at.footer, at.offset);
    let field = |o: usize| fo + o as u64;
    if f.cookie != FOOTER_COOKIE {
        r.push(Finding::at(
            field(off::COOKIE),
            format!(
                "footer cookie is {:?} ({}), expected \"conectix\"",
                String::from_utf8_lossy(&f.cookie),
                hex::encode(f.cookie)
            ),
        ));
    }
    let computed = checksum(&at.bytes, off::CHECKSUM);
    if computed != f.checksum {
        r.push(Finding::at(
            field(off::CHECKSUM),
            format!(
                "footer checksum mismatch (expected {computed:08x}, found {:08x})",
                f.checksum
            ),
        ));
    }
    if f.features & FEATURES_RESERVED == 0 {
        r.push(Finding::at(
            field(off::FEATURES),
            format!(
                "footer features {:08x} lack the reserved bit 00000002 that must always be set",
                f.features
            ),
        ));
    }
    if f.version != FORMAT_VERSION {
        r.push(Finding::at(
            field(off::VERSION),
            format!(
                "footer format version is {:08x}, expected 00010000",
                f.version
            ),
        ));
    }
}

/// The data offset and file size a disk type needs.
fn disk_type_findings(at: &FooterAt, len: u64, r: &mut Report) {
    let (f, fo) = (&at.footer, at.offset);
    let field = |o: usize| fo + o as u64;
    match f.disk_type {
        DISK_TYPE_FIXED => {
            if f.data_offset != FIXED_DATA_OFFSET {
                r.push(Finding::at(
                    field(off::DATA_OFFSET),
                    format!(
                        "fixed disk data offset is {:#x}, expected 0xffffffffffffffff",
                        f.data_offset
                    ),
                ));
            }
            let want = f.current_size.checked_add(FOOTER_SIZE);
            if want != Some(len) {
                r.push(Finding::at(
                    field(off::CURRENT_SIZE),
                    format!(
                        "file is {len} bytes, expected current size {} + 512 = {}",
                        f.current_size,
                        f.current_size as u128 + 512
                    ),
                ));
            }
            if fo != len - FOOTER_SIZE {
                r.push(Finding::at(
                    len - FOOTER_SIZE,
                    "fixed disk has no footer at the end of the file",
                ));
            }
        }
        DISK_TYPE_DYNAMIC => {
            if f.data_offset != 512 {
                r.push(Finding::at(
                    field(off::DATA_OFFSET),
                    format!(
                        "dynamic disk data offset is {}, expected 512",
                        f.data_offset
                    ),
                ));
            }
        }
        t => r.push(Finding::at(
            field(off::DISK_TYPE),
            format!("disk type is {t}, expected fixed (2) or dynamic (3)"),
        )),
    }
}

/// Sizes and geometry, saved state and reserved bytes.
fn size_findings(at: &FooterAt, r: &mut Report) {
    let (f, fo) = (&at.footer, at.offset);
    let field = |o: usize| fo + o as u64;
    if f.current_size != f.original_size {
        r.push(Finding::at(
            field(off::ORIGINAL_SIZE),
            format!(
                "original size {} differs from current size {}",
                f.original_size, f.current_size
            ),
        ));
    }
    if f.current_size % 512 != 0 {
        r.push(Finding::at(
            field(off::CURRENT_SIZE),
            format!(
                "current size {} is not a multiple of 512 bytes",
                f.current_size
            ),
        ));
    }
    if f.heads == 0 || f.sectors_per_track == 0 || f.cylinders == 0 || f.heads > 16 {
        r.push(Finding::at(
            field(off::GEOMETRY),
            format!(
                "geometry {}/{}/{} is not valid (cylinders and sectors must be non-zero, heads 1..=16)",
                f.cylinders, f.heads, f.sectors_per_track
            ),
        ));
    } else if f.virtual_size() != f.current_size {
        r.push(Finding::at(
            field(off::GEOMETRY),
            format!(
                "creator {:?} makes qemu size the disk by its geometry {}/{}/{} ({} bytes), not its current size {}",
                VhdFooter::fourcc(&f.creator_app),
                f.cylinders,
                f.heads,
                f.sectors_per_track,
                f.chs_bytes(),
                f.current_size
            ),
        ));
    }
    if f.saved_state != 0 {
        r.push(Finding::at(
            field(off::SAVED_STATE),
            format!("saved state is {}, expected 0", f.saved_state),
        ));
    }
    if !f.reserved_zero {
        r.push(Finding::at(
            field(off::SAVED_STATE + 1),
            "footer reserved bytes are not zero",
        ));
    }
}

/// The footer's facts, for `--json`.
fn footer_details(at: &FooterAt, r: &mut Report) {
    let (f, fo) = (&at.footer, at.offset);
    r.detail("creator_app", VhdFooter::fourcc(&f.creator_app));
    r.detail("creator_version", format!("{:08x}", f.creator_version));
    r.detail("creator_host_os", VhdFooter::fourcc(&f.creator_host_os));
    r.detail("timestamp", f.timestamp);
    r.detail("timestamp_unix", f.timestamp as u64 + VHD_EPOCH_UNIX);
    r.detail("uuid", uuid_string(&f.uuid));
    r.detail(
        "chs",
        format!("{}/{}/{}", f.cylinders, f.heads, f.sectors_per_track),
    );
    r.detail("disk_type", f.disk_type);
    r.detail("current_size", f.current_size);
    r.detail("original_size", f.original_size);
    r.detail("footer_offset", fo);
}

/// The disk the VHD holds, when it can be decoded: a dynamic disk whose
/// blocks all lie inside the file, or a fixed disk the file holds in full.
fn decodable_disk(
    file: &File,
    len: u64,
    at: &FooterAt,
    from: ReadBack,
    r: &mut Report,
) -> Result<Option<Box<dyn crate::VirtualDisk>>> {
    let (f, fo) = (&at.footer, at.offset);
    let field = |o: usize| fo + o as u64;
    let vsize = f.virtual_size();
    Ok(Some(match f.disk_type {
        DISK_TYPE_DYNAMIC => {
            let dup = file.try_clone().ctx("opening")?;
            match DynamicVhd::open(dup, f) {
                Ok(d) => {
                    if !check_dynamic(file, len, at, &d, r)? {
                        // Blocks outside the file cannot be decoded.
                        return Ok(None);
                    }
                    Box::new(d)
                }
                Err(e) => {
                    // Errors without an offset concern where the
                    // footer's data offset points.
                    r.push(Finding {
                        offset: e.offset().or(Some(field(off::DATA_OFFSET))),
                        message: e.message().to_string(),
                        layer: crate::verify::Layer::Container,
                    });
                    return Ok(None);
                }
            }
        }
        _ => {
            if vsize > len.saturating_sub(FOOTER_SIZE) || vsize % 512 != 0 {
                // Cannot decode a disk the file does not hold.
                return Ok(None);
            }
            Box::new(from.raw_file(RawFile::window(
                file.try_clone().ctx("opening")?,
                "",
                0,
                vsize,
            )))
        }
    }))
}

/// Dynamic-disk checks: footer copy, header checksum and version, BAT
/// entries inside the file. Returns whether every allocated block lies
/// inside the file (so that the disk can be decoded).
fn check_dynamic(
    file: &File,
    len: u64,
    at: &super::reader::FooterAt,
    d: &DynamicVhd,
    r: &mut Report,
) -> Result<bool> {
    let mut copy = [0u8; 512];
    let mut tail = [0u8; 512];
    crate::formats::read_up_to(file, &mut copy, 0)?;
    crate::formats::read_up_to(file, &mut tail, len - FOOTER_SIZE)?;
    if copy != tail {
        r.push(Finding::at(
            0,
            "footer copy at the start differs from the footer at the end",
        ));
    }
    let h = &d.header;
    let ho = at.footer.data_offset;
    if h.computed_checksum != h.checksum {
        r.push(Finding::at(
            ho + DYNAMIC_CHECKSUM_OFFSET as u64,
            format!(
                "dynamic header checksum mismatch (expected {:08x}, found {:08x})",
                h.computed_checksum, h.checksum
            ),
        ));
    }
    if h.version != DYNAMIC_HEADER_VERSION {
        r.push(Finding::at(
            ho + 24,
            format!(
                "dynamic header version is {:08x}, expected 00010000",
                h.version
            ),
        ));
    }
    let needed = at.footer.current_size.div_ceil(d.block_size());
    if (h.max_table_entries as u64) < needed {
        r.push(Finding::at(
            ho + 28,
            format!(
                "BAT has {} entries but the disk needs {needed}",
                h.max_table_entries
            ),
        ));
    }
    let block_bytes = d.bitmap_size() + d.block_size();
    let mut decodable = true;
    for (i, &e) in d.bat().iter().enumerate() {
        if e != BAT_UNALLOCATED && (e as u64 * 512 + block_bytes > len - FOOTER_SIZE) {
            r.push(Finding::at(
                h.table_offset + 4 * i as u64,
                format!("BAT entry {i} points at sector {e}, past the data area of the file"),
            ));
            decodable = false;
        }
    }
    r.detail("block_size", d.block_size());
    r.detail("max_table_entries", h.max_table_entries);
    r.detail("allocated_blocks", d.allocated_blocks());
    Ok(decodable)
}

/// RFC 4122 text form of 16 bytes taken in stored order.
pub fn uuid_string(u: &[u8; 16]) -> String {
    let h = hex::encode(u);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}
