//! Deep check of a GCP tarball, streaming the whole file once with bounded
//! memory.
//!
//! Finding offsets: messages starting `gzip:` are at byte offsets in the
//! file; `tar stream:` offsets are in the decompressed tar stream;
//! `decoded disk:` offsets are in the decoded disk.

use std::fs::File;
use std::io;
use std::sync::Mutex;

use super::MEMBER_NAME;
use crate::codec::gzip::{GzipFacts, GzipReader};
use crate::codec::tar::{self, TarChunk, TarEnd, TarEntry, TarReader, MAGIC_GNU};
use crate::disk::{Extent, ExtentKind, VirtualDisk};
use crate::error::{IoContext, Result};
use crate::formats::table::{DecodedDisk, Verified, VerifyOptions};
use crate::formats::Format;
use crate::io::DiskDigest;
use crate::io::FileReader;
use crate::verify::{Finding, Report};
use crate::vocab::GCP_SIZE_UNIT;

/// Bytes kept from each end of the decoded disk for the GPT check (the
/// primary GPT is in the first 17 KiB, the backup in the last 17 KiB).
const GPT_WINDOW: u64 = 1 << 20;
/// Largest decoded disk the verifier hashes: 64 TiB (GCP's largest
/// persistent disk). Hashing runs at about 1.5 GB/s, holes included, so a
/// forged realsize of exabytes would otherwise keep it busy for years.
const MAX_DECODED_SIZE: u64 = 64 << 40;

/// Most tar-stream bytes decompressed after the end of the archive (or
/// after the point where the tar stream became unreadable). Writers pad
/// the archive to a 10 KiB record (GNU tar's default blocking factor; 1 MiB
/// at its largest), so anything beyond this is not tar: a deflate bomb
/// would otherwise keep the verifier inflating zeros for hours.
pub(crate) const MAX_AFTER_ARCHIVE: u64 = 4 << 20;

/// The last 4 bytes of the file: the ISIZE of a single-member gzip file.
fn stored_isize(file: &File, file_size: u64) -> Result<u32> {
    let mut b = [0u8; 4];
    crate::formats::read_up_to(file, &mut b, file_size.saturating_sub(4))?;
    Ok(u32::from_le_bytes(b))
}

/// Findings about pax headers and extra members listed one by one.
const MAX_LISTED_HEADER_FINDINGS: usize = 32;

type Tar<'a> = TarReader<GzipReader<FileReader<'a>>>;

/// Decode and check a GCP tarball in full: gzip framing, the tar stream
/// and the one `disk.raw` member, whose two ends are handed back for the
/// GPT check. Every problem is a finding; `Err` only when the gzip layer
/// cannot be decoded (not gzip, corrupt or truncated deflate data).
pub fn verify(file: &File, opts: VerifyOptions<'_>) -> Result<Verified> {
    let mut digest = Some(opts.digest);
    let file_size = file.metadata().ctx("reading file metadata")?.len();
    let mut report = Report::new(Format::Gzip, file_size);
    let gz = GzipReader::new(FileReader::new(file))?;
    let mut tar = TarReader::new(gz);
    let mut disk: Option<Decoded<'_>> = None;
    let tar_result = check_tar(&mut tar, &mut report, &mut disk, &mut digest);
    if let Err(e) = &tar_result {
        if let Some(fatal) = tar.get_mut().take_fatal() {
            return Err(fatal);
        }
        let msg = if e.message().starts_with("tar stream") {
            e.message().to_string()
        } else {
            format!("tar stream: {}", e.message())
        };
        report.push(match e.offset() {
            Some(o) => Finding::at(o, msg),
            None => Finding::whole(msg),
        });
    }
    let tar_pos = tar.position();
    let mut gz = tar.into_inner();
    check_after_archive(file, &mut gz, tar_pos, tar_result.is_ok(), &mut report)?;
    gzip_details(gz.facts(), &mut report);
    report.findings.splice(0..0, gz.findings().iter().cloned());

    let Some(d) = disk else {
        return Ok(Verified::report_only(report));
    };
    report.virtual_size = Some(d.size);
    report.virtual_sha256 = Some(d.digest.finish());
    let window = WindowDisk {
        size: d.size,
        head: d.head,
        tail: d.tail,
        misses: Mutex::new(Vec::new()),
    };
    Ok(Verified {
        report,
        disk: Some(Box::new(window)),
    })
}

/// What follows the archive in the tar stream: non-zero bytes, or more
/// than [`MAX_AFTER_ARCHIVE`] of anything (decompression then stops).
fn check_after_archive(
    file: &File,
    gz: &mut GzipReader<FileReader<'_>>,
    tar_pos: u64,
    tar_ok: bool,
    report: &mut Report,
) -> Result<()> {
    let rest = gz.drain_at_most(MAX_AFTER_ARCHIVE)?;
    report.detail("tar_stream_size", tar_pos + rest.bytes);
    if rest.nonzero > 0 && tar_ok {
        report.push(Finding::at(
            tar_pos,
            format!(
                "tar stream: {}{} non-zero bytes after the end of the archive",
                if rest.complete { "" } else { "at least " },
                rest.nonzero
            ),
        ));
    }
    if !rest.complete {
        report.push(Finding::at(
            gz.file_position(),
            format!(
                "gzip: the member inflates to more than {} bytes, over {MAX_AFTER_ARCHIVE} past {} of the tar \
                 stream (byte {tar_pos}); decompression stopped, so CRC32 and ISIZE were not checked (ISIZE, the \
                 file's last 4 bytes, says {})",
                tar_pos + MAX_AFTER_ARCHIVE,
                if tar_ok { "the end" } else { "the unreadable part" },
                stored_isize(file, report.file_size)?
            ),
        ));
    }
    Ok(())
}

/// The gzip header's facts, for `--json`.
fn gzip_details(facts: &GzipFacts, report: &mut Report) {
    report.detail("gzip_flags", facts.flags);
    report.detail("gzip_mtime", facts.mtime);
    report.detail("gzip_xfl", facts.xfl);
    report.detail("gzip_os", facts.os);
    report.detail("gzip_header_len", facts.header_len);
    if let Some(n) = &facts.name {
        report.detail("gzip_name", n.clone());
    }
    if let Some(c) = &facts.comment {
        report.detail("gzip_comment", c.clone());
    }
    report.detail("gzip_crc32", format!("{:08x}", facts.crc));
    report.detail("gzip_uncompressed_size", facts.uncompressed_len);
    report.detail(
        "gzip_members",
        if facts.next_member_offset.is_some() {
            "more than one"
        } else {
            "one"
        },
    );
}

/// The decoded disk, summarised while streaming.
struct Decoded<'a> {
    size: u64,
    digest: DiskDigest<'a>,
    head: Vec<u8>,
    tail: Vec<u8>,
}

fn typeflag_text(t: u8) -> String {
    if t.is_ascii_graphic() {
        (t as char).to_string()
    } else {
        format!("\\x{t:02x}")
    }
}

/// Bytes as text, NUL as `\0` and other unprintables as `\xNN`.
fn escape(b: &[u8]) -> String {
    b.iter()
        .map(|&c| match c {
            0 => "\\0".to_string(),
            0x20..=0x7e => (c as char).to_string(),
            _ => format!("\\x{c:02x}"),
        })
        .collect()
}

fn check_header(e: &TarEntry, report: &mut Report) {
    let at = e.main_header_offset;
    if e.long_names > 0 || e.long_links > 0 {
        report.push(Finding::at(
            e.header_offset,
            "tar stream: GNU long-name records ('L'/'K') precede the member; GCP wants a plain oldgnu header",
        ));
    }
    if &e.magic != MAGIC_GNU {
        let kind = match e.format {
            tar::TarFormat::Ustar => "ustar/pax",
            tar::TarFormat::V7 => "v7 or unknown",
            tar::TarFormat::Gnu => "gnu",
        };
        let finding = Finding::at(
            at + 257,
            format!(
                "tar stream: header magic \"{}\" version \"{}\" is {kind}, expected oldgnu \
                 (magic \"ustar \" version \" \\0\")",
                escape(&e.magic[..6]),
                escape(&e.magic[6..])
            ),
        );
        // A POSIX ustar header is valid tar that GCP does not take; any
        // other magic is not a tar header GNU tar reads the same way.
        report.push(match e.format {
            tar::TarFormat::Ustar => finding.provider_rule(),
            _ => finding,
        });
    }
    if e.name != MEMBER_NAME.as_bytes() {
        report.push(Finding::at(
            at,
            format!(
                "tar stream: member is named {:?}, expected \"disk.raw\"",
                e.name_str()
            ),
        ));
    }
    if !matches!(
        e.typeflag,
        tar::typeflag::REGULAR | tar::typeflag::GNU_SPARSE
    ) {
        report.push(Finding::at(
            at + 156,
            format!(
                "tar stream: member typeflag is '{}', expected '0' (regular) or 'S' (GNU sparse)",
                typeflag_text(e.typeflag)
            ),
        ));
    }
    if e.realsize % GCP_SIZE_UNIT != 0 || e.realsize == 0 {
        let finding = Finding::at(
            at,
            format!(
                "tar stream: {:?} is {} bytes, not a whole number of GiB",
                e.name_str(),
                e.realsize
            ),
        );
        report.push(match e.realsize {
            0 => finding,
            _ => finding.provider_rule(),
        });
    }
    if let Some(map) = &e.sparse {
        let data: Vec<_> = map.iter().filter(|c| c.numbytes > 0).collect();
        if let Some((i, c)) = data
            .iter()
            .enumerate()
            .find(|(i, c)| i + 1 < data.len() && c.numbytes % tar::BLOCK_SIZE != 0)
        {
            report.push(Finding::at(
                at,
                format!(
                    "tar stream: sparse chunk {i} at {} is {} bytes, not a multiple of 512: GNU tar cannot read it",
                    c.offset, c.numbytes
                ),
            ));
        }
    }
}

fn check_tar<'a>(
    tar: &mut Tar<'_>,
    report: &mut Report,
    disk: &mut Option<Decoded<'a>>,
    digest: &mut Option<DiskDigest<'a>>,
) -> Result<()> {
    let mut members = 0u64;
    // Findings repeated per header (pax headers, extra members) are listed
    // up to a bound, then counted: a small gzip file can hold millions of
    // tiny members.
    let mut listed = 0usize;
    let mut unlisted: Option<(u64, u64)> = None;
    let mut note = |report: &mut Report, f: Finding| {
        if listed < MAX_LISTED_HEADER_FINDINGS {
            listed += 1;
            report.push(f);
        } else {
            let u = unlisted.get_or_insert((f.offset.unwrap_or(0), 0));
            u.1 += 1;
        }
    };
    while let Some(e) = tar.next_entry()? {
        if e.pax.is_some() {
            note(
                report,
                Finding::at(
                    e.header_offset,
                    "tar stream: pax extended header (typeflag 'x'): GCP wants plain oldgnu headers",
                ),
            );
        }
        if e.typeflag == tar::typeflag::PAX_GLOBAL {
            note(
                report,
                Finding::at(
                    e.header_offset,
                    "tar stream: pax global header (typeflag 'g'): GCP wants plain oldgnu headers",
                ),
            );
            continue;
        }
        members += 1;
        if members > 1 {
            let name: String = e.name_str().chars().take(200).collect();
            note(
                report,
                Finding::at(
                    e.header_offset,
                    format!(
                        "tar stream: extra member {name:?}: the archive must hold only disk.raw"
                    ),
                ),
            );
            continue;
        }
        member_details(&e, report);
        check_header(&e, report);
        if !matches!(
            e.typeflag,
            tar::typeflag::REGULAR | tar::typeflag::GNU_SPARSE
        ) {
            continue;
        }
        if e.realsize > MAX_DECODED_SIZE {
            report.push(Finding::at(
                e.main_header_offset,
                format!(
                    "tar stream: {:?} is {} bytes, more than the {MAX_DECODED_SIZE} bytes (64 TiB) \
                     cloudimg decodes; its content was not checked",
                    e.name_str(),
                    e.realsize
                ),
            ));
            continue;
        }
        let d = decode_member(tar, e.realsize, digest.take().unwrap_or_default())?;
        *disk = Some(d);
    }
    if let Some((at, n)) = unlisted {
        report.push(Finding::at(
            at,
            format!(
                "tar stream: {n} more pax headers or extra members from here on are not listed"
            ),
        ));
    }
    if members == 0 {
        report.push(Finding::whole(
            "tar stream: the archive holds no member; expected disk.raw",
        ));
    }
    report.detail("tar_members", members);
    end_findings(tar.end(), report);
    Ok(())
}

/// The `disk.raw` member's header facts, for `--json`.
fn member_details(e: &TarEntry, report: &mut Report) {
    report.detail("tar_member", e.name_str());
    report.detail("tar_typeflag", typeflag_text(e.typeflag));
    report.detail("tar_format", e.format.name());
    report.detail("tar_magic", escape(&e.magic));
    report.detail("tar_realsize", e.realsize);
    report.detail("tar_size", e.size);
    report.detail("tar_mtime", e.mtime);
    report.detail("tar_mode", format!("{:o}", e.mode));
    report.detail("tar_uid", e.uid);
    report.detail("tar_gid", e.gid);
    report.detail(
        "tar_sparse_entries",
        e.sparse.as_ref().map_or(0, |m| m.len()),
    );
}

/// Stream the member's content (of `size` bytes) into `digest`, keeping
/// its first and last [`GPT_WINDOW`] bytes.
fn decode_member<'a>(tar: &mut Tar<'_>, size: u64, digest: DiskDigest<'a>) -> Result<Decoded<'a>> {
    let head_len = size.min(GPT_WINDOW);
    let tail_start = size - size.min(GPT_WINDOW);
    let mut d = Decoded {
        size,
        digest,
        head: vec![0; head_len as usize],
        tail: vec![0; (size - tail_start) as usize],
    };
    tar.read_content(|offset, chunk| {
        match chunk {
            TarChunk::Hole(n) => d.digest.zeros(n),
            TarChunk::Data(b) => {
                d.digest.data(b);
                copy_window(&mut d.head, 0, b, offset);
                copy_window(&mut d.tail, tail_start, b, offset);
            }
        }
        Ok(())
    })?;
    Ok(d)
}

/// How the archive ends: two zero blocks, or findings.
fn end_findings(end: TarEnd, report: &mut Report) {
    report.detail(
        "tar_end",
        match end {
            TarEnd::ZeroBlocks(_) => "two zero blocks",
            TarEnd::LoneZeroBlock(_) => "one zero block",
            TarEnd::Eof(_) => "no zero blocks",
            TarEnd::NotYet => "not reached",
        },
    );
    match end {
        TarEnd::ZeroBlocks(_) | TarEnd::NotYet => {}
        TarEnd::LoneZeroBlock(o) => report.push(Finding::at(
            o,
            "tar stream: the archive ends with one zero block, expected two",
        )),
        TarEnd::Eof(o) => report.push(Finding::at(
            o,
            "tar stream: end-of-archive zero blocks missing",
        )),
    }
}

/// Copy the part of `data` (at disk offset `offset`) that falls into
/// `window` (at disk offset `start`).
fn copy_window(window: &mut [u8], start: u64, data: &[u8], offset: u64) {
    let wend = start + window.len() as u64;
    let dend = offset + data.len() as u64;
    let from = start.max(offset);
    let to = wend.min(dend);
    if from < to {
        window[(from - start) as usize..(to - start) as usize]
            .copy_from_slice(&data[(from - offset) as usize..(to - offset) as usize]);
    }
}

/// The decoded disk as seen by the GPT check: only its first and last
/// [`GPT_WINDOW`] bytes are known; reading anything else is an error
/// (never zeros, which would hide a problem).
struct WindowDisk {
    size: u64,
    head: Vec<u8>,
    tail: Vec<u8>,
    misses: Mutex<Vec<(u64, usize)>>,
}

impl DecodedDisk for WindowDisk {
    /// The first read the GPT check made outside the two ends kept.
    fn unserved_read(&self) -> Option<Finding> {
        let misses = self.misses.lock().unwrap_or_else(|e| e.into_inner());
        let &(o, len) = misses.first()?;
        Some(
            Finding::at(
                o,
                format!(
                    "decoded disk: cannot check the GPT: it reads {len} bytes at {o}, outside the first \
                     and last {GPT_WINDOW} bytes kept while streaming"
                ),
            )
            .in_disk(),
        )
    }
}

impl VirtualDisk for WindowDisk {
    fn size(&self) -> u64 {
        self.size
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|&e| e <= self.size)
            .ok_or_else(|| crate::disk::eof_error(offset, buf.len(), self.size))?;
        if end <= self.head.len() as u64 {
            buf.copy_from_slice(&self.head[offset as usize..end as usize]);
            return Ok(());
        }
        let tail_start = self.size - self.tail.len() as u64;
        if offset >= tail_start {
            buf.copy_from_slice(
                &self.tail[(offset - tail_start) as usize..(end - tail_start) as usize],
            );
            return Ok(());
        }
        self.misses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((offset, buf.len()));
        Err(io::Error::other(format!(
            "cannot check {} bytes at {offset}: only the first and last {GPT_WINDOW} bytes of disk.raw are kept \
             while streaming",
            buf.len()
        )))
    }
    fn extents(&self) -> io::Result<Vec<Extent>> {
        Ok(vec![Extent {
            offset: 0,
            len: self.size,
            kind: ExtentKind::Data,
        }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_disk_refuses_reads_outside_the_windows() {
        let size = 8 * GPT_WINDOW;
        let d = WindowDisk {
            size,
            head: vec![1; GPT_WINDOW as usize],
            tail: vec![2; GPT_WINDOW as usize],
            misses: Mutex::new(Vec::new()),
        };
        let mut b = [0u8; 512];
        d.read_at(&mut b, 0).unwrap();
        assert_eq!(b, [1; 512]);
        d.read_at(&mut b, size - 512).unwrap();
        assert_eq!(b, [2; 512]);
        let err = d.read_at(&mut b, GPT_WINDOW).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot check 512 bytes at 1048576: only the first and last 1048576 bytes of disk.raw are kept \
             while streaming"
        );
        // Straddling the head window's end is outside too.
        assert!(d.read_at(&mut b, GPT_WINDOW - 256).is_err());
        assert_eq!(d.misses.lock().unwrap().len(), 2);
    }

    #[test]
    fn copy_window_clips() {
        let mut w = vec![0u8; 10];
        copy_window(&mut w, 100, &[7; 20], 95);
        assert_eq!(w, [7, 7, 7, 7, 7, 7, 7, 7, 7, 7]);
        let mut w = vec![0u8; 10];
        copy_window(&mut w, 100, &[7; 3], 108);
        assert_eq!(w, [0, 0, 0, 0, 0, 0, 0, 0, 7, 7]);
    }
}
