//! The marker stream of a stream-optimized VMDK, walked by the verifier
//! ([`super::verify`]): grain records (checked, inflated and hashed in
//! stream order) and metadata markers (grain tables, grain directory,
//! footer, end of stream), as VMware's "Virtual Disk Format 5.0" lays them
//! out and qemu `block/vmdk.c` reads them.

use std::fs::File;

use flate2::Decompress;

use super::reader::{self, inflate, read_exact_at, Inflated};
use super::wire::{
    Marker, SparseExtentHeader, GD_AT_END, GRAIN_RECORD_HEADER_BYTES, MARKER_EOS, MARKER_FOOTER,
    MARKER_GD, MARKER_GT, SECTOR_BYTES,
};
use crate::error::{IoContext, Result};
use crate::io::DiskDigest;
use crate::verify::{Finding, Report};

/// A grain record found by walking the stream.
#[derive(Debug, Clone, Copy)]
pub(super) struct WalkedGrain {
    pub(super) sector: u64,
    pub(super) lba: u64,
    /// Padded length of the record in bytes.
    pub(super) bytes: u64,
}

/// What walking the marker stream found.
pub(super) struct Walk<'a> {
    pub(super) grains: Vec<WalkedGrain>,
    /// Sectors of grain tables introduced by GT markers.
    pub(super) gts: Vec<u64>,
    /// Whether grain LBAs strictly increase.
    pub(super) in_order: bool,
    /// Whether every grain inflated correctly (so `digest` is usable).
    pub(super) digest_ok: bool,
    /// Digest of the grains in stream order, zeros filled between them.
    pub(super) digest: DiskDigest<'a>,
}

/// Walk grain records and metadata markers from `overHead` to the end of
/// the stream.
pub(super) fn walk_stream<'a>(
    file: &File,
    file_size: u64,
    h: &SparseExtentHeader,
    gd_at_end: bool,
    digest: DiskDigest<'a>,
    r: &mut Report,
) -> Result<Walk<'a>> {
    let mut w = Walk {
        grains: Vec::new(),
        gts: Vec::new(),
        in_order: true,
        digest_ok: true,
        digest,
    };
    let mut grains = GrainRecords {
        file,
        file_size,
        h,
        z: Decompress::new(true),
        data: vec![0u8; h.grain_bytes() as usize],
        comp: Vec::new(),
        prev_lba: None,
    };
    let mut sector = h.overhead.max(1);
    let mut eos = false;
    let mut gd_seen = None;
    let mut ended_early = false;
    loop {
        let at = sector.saturating_mul(SECTOR_BYTES);
        if at >= file_size {
            break;
        }
        if file_size - at < 16 {
            r.push(Finding::at(at, "the file ends inside a marker"));
            ended_early = true;
            break;
        }
        let mut head = [0u8; 16];
        read_exact_at(file, &mut head, at).ctx("reading the marker stream")?;
        let m = Marker::parse(&head);
        if m.is_grain() {
            match grains.record(sector, &m, &mut w, r)? {
                Some(next) => sector = next,
                None => {
                    ended_early = true;
                    break;
                }
            }
            continue;
        }
        match metadata_marker(file, file_size, h, gd_at_end, sector, &m, r)? {
            MarkerStep::Next(next) => {
                match m.kind {
                    MARKER_GT => w.gts.push(sector + 1),
                    MARKER_GD => gd_seen = Some(sector + 1),
                    // The footer itself was checked where readers look
                    // for it (EOF - 1024).
                    _ => {}
                }
                sector = next;
            }
            MarkerStep::EndOfStream => {
                eos = true;
                break;
            }
            MarkerStep::Stop => {
                ended_early = true;
                break;
            }
        }
    }
    if !eos && !ended_early {
        r.push(Finding::at(
            file_size,
            "the stream ends without an end-of-stream marker",
        ));
    }
    if let Some(gd) = gd_seen {
        if gd != h.gd_offset && h.gd_offset != GD_AT_END {
            r.push(Finding::at(
                (gd - 1) * SECTOR_BYTES,
                format!(
                    "grain directory marker precedes sector {gd}, but the header's gdOffset is {}",
                    h.gd_offset
                ),
            ));
        }
    }
    r.detail("end_of_stream_marker", eos);
    Ok(w)
}

/// Where the marker walk goes after a metadata marker.
enum MarkerStep {
    /// On, at this sector.
    Next(u64),
    /// The end-of-stream marker.
    EndOfStream,
    /// The stream cannot be followed further (a finding says why).
    Stop,
}

/// Check the metadata marker `m` at `sector`: its type, its length, and
/// what follows an end-of-stream marker.
fn metadata_marker(
    file: &File,
    file_size: u64,
    h: &SparseExtentHeader,
    gd_at_end: bool,
    sector: u64,
    m: &Marker,
    r: &mut Report,
) -> Result<MarkerStep> {
    let at = sector.saturating_mul(SECTOR_BYTES);
    // A metadata marker: `val` sectors of metadata follow.
    let (expected, name) = match m.kind {
        MARKER_EOS => (0, "end-of-stream"),
        MARKER_GT => (h.gt_sectors(), "grain table"),
        MARKER_GD => (h.gd_sectors(), "grain directory"),
        MARKER_FOOTER => (1, "footer"),
        k => {
            r.push(Finding::at(
                at,
                format!("marker of unknown type {k} ({} sectors)", m.val),
            ));
            return Ok(MarkerStep::Stop);
        }
    };
    if m.val != expected {
        r.push(Finding::at(
            at,
            format!(
                "{name} marker announces {} sectors, expected {expected}",
                m.val
            ),
        ));
    }
    if m.kind == MARKER_EOS {
        let after = at + SECTOR_BYTES;
        // qemu-img pads its stream-optimized files with zeros to a
        // whole grain; with the GD at the end, the end-of-stream
        // marker must be the last sector (readers look for the footer
        // at a fixed distance from the end).
        if after < file_size && (gd_at_end || !is_zero_range(file, after, file_size)?) {
            r.push(Finding::at(
                after,
                format!(
                    "{} bytes follow the end-of-stream marker",
                    file_size - after
                ),
            ));
        }
        return Ok(MarkerStep::EndOfStream);
    }
    let meta_end = sector.saturating_add(1).saturating_add(m.val);
    if meta_end.saturating_mul(SECTOR_BYTES) > file_size {
        r.push(Finding::at(
            at,
            format!(
                "{name} marker: its {} sectors run past the end of the file",
                m.val
            ),
        ));
        return Ok(MarkerStep::Stop);
    }
    Ok(MarkerStep::Next(meta_end))
}

/// Reads and inflates the grain records of a stream, in stream order.
struct GrainRecords<'f> {
    file: &'f File,
    file_size: u64,
    h: &'f SparseExtentHeader,
    z: Decompress,
    /// One grain's worth of inflated bytes.
    data: Vec<u8>,
    /// The compressed bytes of the record being read.
    comp: Vec<u8>,
    /// LBA of the previous record.
    prev_lba: Option<u64>,
}

impl GrainRecords<'_> {
    /// The grain record at `sector` (marker `m`): checked, and inflated
    /// into `w.digest` while the stream is in order. Returns the sector
    /// after it, or `None` when the stream cannot be followed further (a
    /// finding says why).
    fn record(
        &mut self,
        sector: u64,
        m: &Marker,
        w: &mut Walk<'_>,
        r: &mut Report,
    ) -> Result<Option<u64>> {
        let (file, file_size, h) = (self.file, self.file_size, self.h);
        let size = h.capacity * SECTOR_BYTES;
        let gb = h.grain_bytes();
        let max_comp = reader::max_compressed_bytes(gb);
        let at = sector.saturating_mul(SECTOR_BYTES);
        let size_c = u64::from(m.size);
        let lba = m.val;
        if size_c > max_comp {
            r.push(Finding::at(at, format!("grain record for LBA {lba} claims {size_c} compressed bytes (at most {max_comp})")));
            return Ok(None);
        }
        let rec_end = at + GRAIN_RECORD_HEADER_BYTES as u64 + size_c;
        if rec_end > file_size {
            r.push(Finding::at(at, format!("grain record for LBA {lba} ({size_c} compressed bytes) runs past the end of the file")));
            return Ok(None);
        }
        let bytes = (rec_end - at).div_ceil(SECTOR_BYTES) * SECTOR_BYTES;
        let lba_ok = lba % h.grain_size == 0 && lba < h.capacity;
        if !lba_ok {
            r.push(Finding::at(at, format!("grain record has LBA {lba}, not the start of a grain inside the {}-sector disk", h.capacity)));
            w.digest_ok = false;
        }
        if let Some(p) = self.prev_lba.filter(|&p| lba <= p) {
            r.push(Finding::at(at, format!("grain record for LBA {lba} comes after LBA {p} (grains must be in increasing order)")));
            w.in_order = false;
        }
        self.prev_lba = Some(lba);
        w.grains.push(WalkedGrain { sector, lba, bytes });
        self.comp.resize(size_c as usize, 0);
        read_exact_at(file, &mut self.comp, at + GRAIN_RECORD_HEADER_BYTES as u64)
            .ctx("reading a grain")?;
        let expected = if lba_ok {
            (size - lba * SECTOR_BYTES).min(gb)
        } else {
            gb
        };
        match inflate(&mut self.z, &self.comp, &mut self.data) {
            Inflated::Bytes(k) if k == expected || (k == gb && lba_ok) => {
                if lba_ok && w.in_order && w.digest_ok {
                    w.digest.zeros(lba * SECTOR_BYTES - w.digest.len());
                    w.digest.data(&self.data[..expected as usize]);
                }
            }
            Inflated::Bytes(k) => {
                r.push(Finding::at(
                    at,
                    format!("grain at LBA {lba} inflates to {k} bytes, expected {expected}"),
                ));
                w.digest_ok = false;
            }
            Inflated::MoreThan(k) => {
                r.push(Finding::at(
                    at,
                    format!(
                        "grain at LBA {lba} inflates to more than {k} bytes, expected {expected}"
                    ),
                ));
                w.digest_ok = false;
            }
            Inflated::Invalid(msg) => {
                r.push(Finding::at(at, format!("grain at LBA {lba}: {msg}")));
                w.digest_ok = false;
            }
        }
        Ok(Some(sector + bytes / SECTOR_BYTES))
    }
}

/// Whether the file's bytes in `from..to` are all zero.
fn is_zero_range(file: &File, from: u64, to: u64) -> Result<bool> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut pos = from;
    while pos < to {
        let n = (to - pos).min(buf.len() as u64) as usize;
        read_exact_at(file, &mut buf[..n], pos).ctx("reading the end of the file")?;
        if buf[..n].iter().any(|&b| b != 0) {
            return Ok(false);
        }
        pos += n as u64;
    }
    Ok(true)
}
