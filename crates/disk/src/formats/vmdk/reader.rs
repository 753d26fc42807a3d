//! Random-access reader for hosted sparse VMDK extents: stream-optimized
//! (GD at the end, as cloudimg and VMware write it, or GD in the header,
//! as qemu-img writes it) and monolithic sparse (uncompressed grains).
//!
//! Grains are located through the grain directory and grain tables and
//! inflated on demand. Every size read from the file is bounded by the
//! file size before anything is allocated, so a fuzzed header is refused
//! instead of allocating absurd amounts of memory.

use std::fs::File;
use std::io;
use std::sync::Mutex;

use flate2::{Decompress, FlushDecompress, Status};

use super::descriptor::Descriptor;
use super::wire::{
    self, Marker, SparseExtentHeader, GD_AT_END, GRAIN_RECORD_HEADER_BYTES, GTE_ZEROED, MARKER_EOS,
    MARKER_FOOTER, SECTOR_BYTES,
};
use crate::disk::{eof_error, Extent, ExtentKind, VirtualDisk};
use crate::error::{Error, IoContext, Result};

/// Largest compressed grain accepted: twice the grain plus slack (deflate
/// never expands data by more than a few bytes per 16 KiB block; qemu
/// reads at most two grains for one record).
pub(crate) fn max_compressed_bytes(grain_bytes: u64) -> u64 {
    2 * grain_bytes + 4096
}

pub(crate) use crate::io::read_exact_at;

/// Read and check the footer of a GD_AT_END file: footer marker at
/// EOF-1536, header copy at EOF-1024, end-of-stream marker at EOF-512 (where
/// qemu looks for them). The error says what is missing.
pub(crate) fn read_footer(
    file: &File,
    file_size: u64,
) -> std::result::Result<SparseExtentHeader, String> {
    let end = file_size / SECTOR_BYTES * SECTOR_BYTES;
    if end < 4 * SECTOR_BYTES {
        return Err(format!(
            "file of {file_size} bytes is too short to hold a footer"
        ));
    }
    let at = end - 3 * SECTOR_BYTES;
    let mut b = [0u8; 3 * SECTOR_BYTES as usize];
    read_exact_at(file, &mut b, at).map_err(|e| format!("reading the footer: {e}"))?;
    let marker = Marker::parse(&b[..16]);
    if marker.size != 0 || marker.kind != MARKER_FOOTER || marker.val != 1 {
        return Err(format!(
            "no footer marker at byte {at} (3 sectors before the end), found: {}",
            describe_marker(&marker)
        ));
    }
    let sector: &[u8; 512] = b[512..1024].try_into().expect("slice of 512 bytes");
    let footer = SparseExtentHeader::parse(sector)
        .map_err(|e| format!("footer at byte {}: {}", at + 512, e.message()))?;
    let eos = Marker::parse(&b[1024..1040]);
    if eos.val != 0 || eos.size != 0 || eos.kind != MARKER_EOS {
        return Err(format!(
            "no end-of-stream marker at byte {} (the last sector), found: {}",
            at + 1024,
            describe_marker(&eos)
        ));
    }
    Ok(footer)
}

/// A marker, for messages.
pub(crate) fn describe_marker(m: &Marker) -> String {
    if m.is_grain() {
        format!("grain record (LBA {}, {} bytes)", m.val, m.size)
    } else {
        format!("{} marker ({} sectors)", wire::marker_name(m.kind), m.val)
    }
}

/// Outcome of inflating one grain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Inflated {
    /// The stream inflated to this many bytes (written to the start of the
    /// output buffer when it fit).
    Bytes(u64),
    /// The stream inflates to more than this many bytes (counting stopped).
    MoreThan(u64),
    /// Not a valid zlib stream.
    Invalid(String),
}

/// Inflate the zlib stream `input` into `out`; when it is longer than
/// `out`, keep counting (up to 4 × `out.len()`) without storing.
pub(crate) fn inflate(z: &mut Decompress, input: &[u8], out: &mut [u8]) -> Inflated {
    // The common case, a sound stream that fits, by libdeflate (about
    // 1.6 times zlib-rs's speed); anything else again by zlib, whose
    // streaming API tells the exact story (truncated, too long, invalid).
    thread_local! {
        static FAST: std::cell::RefCell<libdeflater::Decompressor> =
            std::cell::RefCell::new(libdeflater::Decompressor::new());
    }
    if let Ok(n) = FAST.with(|d| d.borrow_mut().zlib_decompress(input, out)) {
        return Inflated::Bytes(n as u64);
    }
    z.reset(true);
    loop {
        let (i, o) = (z.total_in() as usize, z.total_out() as usize);
        if o == out.len() {
            break;
        }
        match z.decompress(&input[i..], &mut out[o..], FlushDecompress::Finish) {
            Ok(Status::StreamEnd) => return Inflated::Bytes(z.total_out()),
            Ok(_) if z.total_in() as usize == i && z.total_out() as usize == o => {
                return Inflated::Invalid("the zlib stream is truncated".into())
            }
            Ok(_) => {}
            Err(e) => return Inflated::Invalid(format!("invalid zlib stream: {e}")),
        }
    }
    // The output is full: count what is left.
    let cap = 4 * out.len() as u64;
    let mut scratch = [0u8; 16 * 1024];
    loop {
        let (i, o) = (z.total_in() as usize, z.total_out());
        if o > cap {
            return Inflated::MoreThan(cap);
        }
        match z.decompress(&input[i..], &mut scratch, FlushDecompress::Finish) {
            Ok(Status::StreamEnd) => return Inflated::Bytes(z.total_out()),
            Ok(_) if z.total_in() as usize == i && z.total_out() == o => {
                return Inflated::Invalid("the zlib stream is truncated".into())
            }
            Ok(_) => {}
            Err(e) => return Inflated::Invalid(format!("invalid zlib stream: {e}")),
        }
    }
}

/// Where grain `n` of the disk is and how long it is in the disk.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GrainSpan {
    /// Byte offset in the virtual disk.
    pub start: u64,
    /// Bytes of the disk it covers (the last grain may be short).
    pub len: u64,
}

/// A hosted sparse VMDK extent opened for random access.
pub struct VmdkReader {
    file: File,
    file_size: u64,
    leading: SparseExtentHeader,
    header: SparseExtentHeader,
    /// Grain directory entries (sector of each grain table, 0 = none).
    gd: Vec<u32>,
    /// Grain tables, one per GD entry (None for a zero entry).
    gts: Vec<Option<Box<[u32]>>>,
    cache: Mutex<GrainCache>,
}

struct GrainCache {
    grain: Option<u64>,
    data: Vec<u8>,
    compressed: Vec<u8>,
    zlib: Decompress,
}

impl std::fmt::Debug for VmdkReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VmdkReader")
            .field("header", &self.header)
            .finish_non_exhaustive()
    }
}

/// Open a hosted sparse VMDK extent for random access, as a whole disk:
/// refused, as qemu-img refuses it, when its embedded descriptor has no
/// usable CID or names a parent disk ([`Descriptor::reading_problem`]).
/// The verifier opens it with [`VmdkReader::open`], which does not look
/// at the descriptor, and reports those as findings.
pub fn open(file: File) -> Result<VmdkReader> {
    let r = VmdkReader::open(file)?;
    if let Some(p) = read_descriptor(&r.file, r.file_size, &r.leading)?
        .as_ref()
        .and_then(Descriptor::reading_problem)
    {
        return Err(Error::unsupported(p));
    }
    Ok(r)
}

impl VmdkReader {
    /// Open `file`: read the header (and the footer when the GD is at the
    /// end), check it, and load the grain directory and tables.
    pub fn open(file: File) -> Result<Self> {
        let file_size = file.metadata().ctx("reading file metadata")?.len();
        let leading = read_header(&file, file_size)?;
        let header = if leading.gd_offset == GD_AT_END {
            read_footer(&file, file_size).map_err(|m| {
                Error::corrupt(format!("the grain directory is at the end, but {m}"))
            })?
        } else {
            leading
        };
        let problems = header.fatal_problems();
        if !problems.is_empty() {
            return Err(Error::invalid_format(format!(
                "unusable VMDK header: {}",
                problems.join("; ")
            )));
        }
        // Where the header in effect lies: the footer copy sits 1024 bytes
        // before the end when the grain directory is at the end.
        let header_at = if leading.gd_offset == GD_AT_END {
            file_size / SECTOR_BYTES * SECTOR_BYTES - 2 * SECTOR_BYTES
        } else {
            0
        };
        if header.compressed() && !header.markers() {
            return Err(Error::unsupported(
                "compressed grains without grain markers are not supported",
            ));
        }
        let (gd, gts) = load_tables(&file, file_size, &header)?;
        check_leading_capacity(&leading).map_err(|e| e.at_header(0))?;
        check_as_qemu(&header, file_size).map_err(|e| e.at_header(header_at))?;
        check_redundant_gd(&header, file_size).map_err(|e| e.at_header(header_at))?;
        let grain_bytes = header.grain_bytes() as usize;
        Ok(VmdkReader {
            file,
            file_size,
            leading,
            header,
            gd,
            gts,
            cache: Mutex::new(GrainCache {
                grain: None,
                data: vec![0; grain_bytes],
                compressed: Vec::new(),
                zlib: Decompress::new(true),
            }),
        })
    }

    /// The header at sector 0.
    pub fn leading_header(&self) -> &SparseExtentHeader {
        &self.leading
    }

    /// The header in effect (the footer's when the GD is at the end).
    pub fn header(&self) -> &SparseExtentHeader {
        &self.header
    }

    /// Size of the VMDK file.
    pub fn file_size(&self) -> u64 {
        self.file_size
    }

    /// Grain directory entries.
    pub fn gd(&self) -> &[u32] {
        &self.gd
    }

    /// The grain table of GD entry `i`, if it has one.
    pub fn gt(&self, i: usize) -> Option<&[u32]> {
        self.gts.get(i).and_then(|t| t.as_deref())
    }

    /// Number of grains.
    pub fn grain_count(&self) -> u64 {
        self.header.grain_count()
    }

    /// The GT entry of grain `n` (0 = unallocated).
    pub fn grain_entry(&self, n: u64) -> u32 {
        let per = u64::from(self.header.num_gtes_per_gt);
        self.gt((n / per) as usize)
            .map_or(0, |t| t[(n % per) as usize])
    }

    /// Whether grain `n` holds data (its GT entry points at a grain).
    pub fn grain_allocated(&self, n: u64) -> bool {
        match self.grain_entry(n) {
            0 => false,
            GTE_ZEROED => !self.header.zeroed_gte(),
            _ => true,
        }
    }

    /// Number of allocated grains. Only the grain tables present are
    /// visited, so the cost is bounded by the file, not by the capacity.
    pub fn allocated_grains(&self) -> u64 {
        let per = u64::from(self.header.num_gtes_per_gt);
        (0..self.gd.len())
            .filter_map(|i| self.gt(i).map(|t| (i, t)))
            .map(|(i, t)| {
                let first = i as u64 * per;
                (0..t.len() as u64)
                    .filter(|&j| first + j < self.grain_count() && self.grain_allocated(first + j))
                    .count() as u64
            })
            .sum()
    }

    pub(crate) fn span(&self, n: u64) -> GrainSpan {
        let start = n * self.header.grain_bytes();
        GrainSpan {
            start,
            len: (self.size() - start).min(self.header.grain_bytes()),
        }
    }

    /// Decode grain `n` into `out` (at least the grain size): the first
    /// `span(n).len` bytes are the grain's content.
    fn decode_grain(&self, n: u64, c: &mut GrainCache) -> io::Result<()> {
        let span = self.span(n);
        let len = span.len as usize;
        if !self.grain_allocated(n) {
            c.data[..len].fill(0);
            return Ok(());
        }
        let at = u64::from(self.grain_entry(n)) * SECTOR_BYTES;
        let lba = n * self.header.grain_size;
        let bad = |m: String| io::Error::new(io::ErrorKind::InvalidData, m);
        if !self.header.compressed() {
            return read_exact_at(&self.file, &mut c.data[..len], at);
        }
        let mut head = [0u8; GRAIN_RECORD_HEADER_BYTES];
        read_exact_at(&self.file, &mut head, at)?;
        let rec_lba = u64::from_le_bytes(head[..8].try_into().expect("8 bytes"));
        let size = u64::from(u32::from_le_bytes(head[8..12].try_into().expect("4 bytes")));
        if rec_lba != lba {
            return Err(bad(format!(
                "the grain table entry for LBA {lba} points at byte {at}, a grain record for LBA {rec_lba}"
            )));
        }
        let grain_bytes = self.header.grain_bytes();
        if size == 0 || size > max_compressed_bytes(grain_bytes) {
            return Err(bad(format!(
                "grain at LBA {lba} (byte {at}) has a compressed size of {size} bytes"
            )));
        }
        c.compressed.resize(size as usize, 0);
        read_exact_at(
            &self.file,
            &mut c.compressed,
            at + GRAIN_RECORD_HEADER_BYTES as u64,
        )?;
        let GrainCache {
            data,
            compressed,
            zlib,
            ..
        } = c;
        match inflate(zlib, compressed, data) {
            Inflated::Bytes(k) if k == span.len || k == grain_bytes => Ok(()),
            Inflated::Bytes(k) => Err(bad(format!(
                "grain at LBA {lba} inflates to {k} bytes, expected {}",
                span.len
            ))),
            Inflated::MoreThan(k) => Err(bad(format!(
                "grain at LBA {lba} inflates to more than {k} bytes, expected {}",
                span.len
            ))),
            Inflated::Invalid(m) => Err(bad(format!("grain at LBA {lba}: {m}"))),
        }
    }
}

/// Largest embedded descriptor read, in sectors (1 MiB): descriptors are a
/// few hundred bytes; VMware reserves 20 sectors, and qemu reads at most 20
/// (`DESC_SIZE` in `block/vmdk.c`).
pub(crate) const DESCRIPTOR_SECTORS_MAX: u64 = 2048;

/// The embedded descriptor the header `h` points at, parsed; none when
/// there is none or it lies outside the file or is larger than
/// [`DESCRIPTOR_SECTORS_MAX`] (the verifier reports those).
fn read_descriptor(
    file: &File,
    file_size: u64,
    h: &SparseExtentHeader,
) -> Result<Option<Descriptor>> {
    if h.descriptor_offset == 0
        || h.descriptor_size == 0
        || h.descriptor_size > DESCRIPTOR_SECTORS_MAX
    {
        return Ok(None);
    }
    let at = h.descriptor_offset.saturating_mul(SECTOR_BYTES);
    let len = h.descriptor_size * SECTOR_BYTES;
    if at.checked_add(len).is_none_or(|e| e > file_size) {
        return Ok(None);
    }
    let mut b = vec![0u8; len as usize];
    read_exact_at(file, &mut b, at).ctx("reading the embedded descriptor")?;
    Ok(Some(Descriptor::parse(&b)))
}

/// A header refusal and the offset of its field within the header.
struct HeaderProblem {
    field: u64,
    error: Error,
}

impl HeaderProblem {
    fn new(field: usize, error: Error) -> HeaderProblem {
        HeaderProblem {
            field: field as u64,
            error,
        }
    }

    /// The error, at the field's byte offset in a header at `header_at`.
    fn at_header(self, header_at: u64) -> Error {
        self.error.at(header_at + self.field)
    }
}

/// qemu's L1 size limit (`vmdk_add_extent`, block/vmdk.c: "L1 size too
/// big" above 32 Mi grain directory entries).
const QEMU_L1_ENTRIES_MAX: u64 = 32 * 1024 * 1024;

/// Refuse what qemu refuses at open, or reads otherwise than the header
/// says (block/vmdk.c `vmdk_open_vmdk4`, `get_cluster_offset`,
/// `vmdk_read_extent`), on the header in effect `h` of a `file_size`-byte
/// file.
fn check_as_qemu(h: &SparseExtentHeader, file_size: u64) -> std::result::Result<(), HeaderProblem> {
    use wire::field as f;
    // vmdk_open_vmdk4: `bdrv_nb_sectors(file) < grain_offset` ("File
    // truncated, expecting at least N bytes"); the comparison is
    // unsigned, and qemu's sector count rounds the file size up.
    let sectors = file_size.div_ceil(SECTOR_BYTES);
    if sectors < h.overhead {
        return Err(HeaderProblem::new(
            f::OVERHEAD,
            Error::corrupt(format!(
                "the header says grains start at sector {} (overHead), past the end of the {file_size}-byte file (truncated?)",
                h.overhead
            )),
        ));
    }
    // qemu decides "compressed" by compressAlgorithm alone (== 1,
    // deflate) and reads the grains of a file whose flags say compressed
    // but whose algorithm is 0 as raw bytes, markers and all: which
    // reading is meant is unknowable, so refuse.
    if h.flags & wire::FLAG_COMPRESSED != 0 && h.compress_algorithm == wire::COMPRESS_NONE {
        return Err(HeaderProblem::new(
            f::COMPRESS_ALGORITHM,
            Error::corrupt(
                "the flags say the grains are compressed, but the compression algorithm is 0 (none)",
            ),
        ));
    }
    // qemu treats grain table entry 1 as a zeroed grain whenever the flag
    // is set (`has_zero_grain`, whatever the version); the VMDK 5.0
    // technote defines the flag from version 2 on, where a version-1
    // reader takes entry 1 for a grain at sector 1. Refuse the ambiguity.
    if h.version < 2 && h.flags & wire::FLAG_ZEROED_GTE != 0 {
        return Err(HeaderProblem::new(
            f::FLAGS,
            Error::corrupt(format!(
                "version {} header sets the zeroed-grain-table flag, defined only from version 2",
                h.version
            )),
        ));
    }
    if h.gd_entries() > QEMU_L1_ENTRIES_MAX {
        return Err(HeaderProblem::new(
            f::CAPACITY,
            Error::unsupported(format!(
                "the grain directory has {} entries, more than the {QEMU_L1_ENTRIES_MAX} qemu reads",
                h.gd_entries()
            )),
        ));
    }
    Ok(())
}

/// qemu looks at the capacity of the header at sector 0 before it reads a
/// footer: when it is 0 and the header names an embedded descriptor, it
/// opens that descriptor as a descriptor file of other extents
/// (`vmdk_open_vmdk4` → `vmdk_open_desc_file`), which a monolithic
/// sparse or stream-optimized disk is not ("Unsupported image type").
/// cloudimg would read the footer's capacity instead: refuse.
fn check_leading_capacity(leading: &SparseExtentHeader) -> std::result::Result<(), HeaderProblem> {
    if leading.capacity == 0 && leading.descriptor_offset != 0 {
        return Err(HeaderProblem::new(
            wire::field::CAPACITY,
            Error::corrupt(
                "the header at sector 0 has a capacity of 0 sectors and names an embedded descriptor, which makes it a descriptor file, not a disk",
            ),
        ));
    }
    Ok(())
}

/// qemu reads the redundant grain directory whenever the flag is set and
/// `rgdOffset` is not 0, and fails to open the file when it cannot
/// (`vmdk_init_tables`: "Could not read l1 backup table"). cloudimg never
/// reads it for decoding, but refuses one that does not lie inside the
/// file (stricter than qemu, which reads zeros past the end of a file).
fn check_redundant_gd(
    h: &SparseExtentHeader,
    file_size: u64,
) -> std::result::Result<(), HeaderProblem> {
    if h.flags & wire::FLAG_REDUNDANT_GD == 0 || h.rgd_offset == 0 {
        return Ok(());
    }
    let end = h
        .rgd_offset
        .checked_mul(SECTOR_BYTES)
        .and_then(|a| a.checked_add(h.gd_entries() * 4));
    if end.is_none_or(|e| e > file_size) {
        return Err(HeaderProblem::new(
            wire::field::RGD_OFFSET,
            Error::corrupt(format!(
                "the redundant grain directory ({} entries at sector {}) does not fit in the {file_size}-byte file",
                h.gd_entries(),
                h.rgd_offset
            )),
        ));
    }
    Ok(())
}

/// Read and parse the header at sector 0.
pub(crate) fn read_header(file: &File, file_size: u64) -> Result<SparseExtentHeader> {
    if file_size < SECTOR_BYTES {
        return Err(Error::invalid_format(format!(
            "file of {file_size} bytes is too short for a VMDK header"
        )));
    }
    let mut s = [0u8; SECTOR_BYTES as usize];
    read_exact_at(file, &mut s, 0).ctx("reading the VMDK header")?;
    SparseExtentHeader::parse(&s)
}

/// Load the grain directory and every grain table it points at. The GD
/// must lie inside the file, and the tables loaded can add up to at most
/// the file size, so memory is bounded by the file size.
#[allow(clippy::type_complexity)]
fn load_tables(
    file: &File,
    file_size: u64,
    h: &SparseExtentHeader,
) -> Result<(Vec<u32>, Vec<Option<Box<[u32]>>>)> {
    let entries = h.gd_entries();
    let gd_bytes = entries * 4;
    let gd_at = h.gd_offset.checked_mul(SECTOR_BYTES);
    match gd_at.and_then(|a| a.checked_add(gd_bytes)) {
        Some(end) if end <= file_size => {}
        _ => {
            return Err(Error::corrupt(format!(
                "the grain directory ({entries} entries at sector {}) does not fit in the {file_size}-byte file",
                h.gd_offset
            ))
            .at(h.gd_offset.saturating_mul(SECTOR_BYTES)))
        }
    }
    let gd_at = gd_at.expect("checked above");
    let mut raw = vec![0u8; gd_bytes as usize];
    read_exact_at(file, &mut raw, gd_at).ctx("reading the grain directory")?;
    let gd = wire::parse_table(&raw);
    let gt_bytes = u64::from(h.num_gtes_per_gt) * 4;
    let mut budget = file_size;
    let mut gts = Vec::with_capacity(gd.len());
    for (i, &e) in gd.iter().enumerate() {
        if e == 0 {
            gts.push(None);
            continue;
        }
        let at = u64::from(e) * SECTOR_BYTES;
        if at + gt_bytes > file_size {
            return Err(Error::corrupt(format!(
                "grain table {i} at sector {e} runs past the end of the {file_size}-byte file"
            ))
            .at(gd_at + 4 * i as u64));
        }
        budget = budget.checked_sub(gt_bytes).ok_or_else(|| {
            Error::corrupt(
                "the grain tables add up to more than the file size (tables shared or overlapping)",
            )
            .at(gd_at + 4 * i as u64)
        })?;
        let mut raw = vec![0u8; gt_bytes as usize];
        read_exact_at(file, &mut raw, at).ctx("reading a grain table")?;
        gts.push(Some(wire::parse_table(&raw).into_boxed_slice()));
    }
    Ok((gd, gts))
}

impl VirtualDisk for VmdkReader {
    fn size(&self) -> u64 {
        self.header.capacity * SECTOR_BYTES
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let size = self.size();
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|&e| e <= size)
            .ok_or_else(|| eof_error(offset, buf.len(), size))?;
        let gb = self.header.grain_bytes();
        let mut cache = self
            .cache
            .lock()
            .map_err(|_| io::Error::other("the VMDK grain cache was poisoned by a panic"))?;
        let mut pos = offset;
        while pos < end {
            let n = pos / gb;
            let span = self.span(n);
            let from = (pos - span.start) as usize;
            let to = ((end - span.start).min(span.len)) as usize;
            let dst = &mut buf[(pos - offset) as usize..(pos - offset) as usize + (to - from)];
            if !self.grain_allocated(n) {
                dst.fill(0);
            } else {
                if cache.grain != Some(n) {
                    cache.grain = None;
                    self.decode_grain(n, &mut cache)?;
                    cache.grain = Some(n);
                }
                dst.copy_from_slice(&cache.data[from..to]);
            }
            pos = span.start + to as u64;
        }
        Ok(())
    }

    fn extents(&self) -> io::Result<Vec<Extent>> {
        let per = u64::from(self.header.num_gtes_per_gt);
        let gb = self.header.grain_bytes();
        let size = self.size();
        let mut out: Vec<Extent> = Vec::new();
        let mut add = |first_grain: u64, grains: u64, kind: ExtentKind| {
            let s = first_grain * gb;
            let e = ((first_grain + grains) * gb).min(size);
            if e <= s {
                return;
            }
            match out.last_mut() {
                Some(l) if l.kind == kind && l.end() == s => l.len += e - s,
                _ => out.push(Extent {
                    offset: s,
                    len: e - s,
                    kind,
                }),
            }
        };
        for (i, gt) in self.gts.iter().enumerate() {
            let first = i as u64 * per;
            if gt.is_none() {
                add(first, per, ExtentKind::Zero);
                continue;
            }
            for j in 0..per {
                let kind = if self.grain_allocated(first + j) {
                    ExtentKind::Data
                } else {
                    ExtentKind::Zero
                };
                add(first + j, 1, kind);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(6));
        z.write_all(data).unwrap();
        z.finish().unwrap()
    }

    #[test]
    fn inflate_reports_exact_short_long_and_broken_streams() {
        let mut z = Decompress::new(true);
        let mut out = vec![0u8; 1000];
        assert_eq!(
            inflate(&mut z, &zlib(&[7; 1000]), &mut out),
            Inflated::Bytes(1000)
        );
        assert_eq!(out, vec![7; 1000]);
        assert_eq!(
            inflate(&mut z, &zlib(&[7; 600]), &mut out),
            Inflated::Bytes(600)
        );
        assert_eq!(
            inflate(&mut z, &zlib(&[7; 1500]), &mut out),
            Inflated::Bytes(1500)
        );
        assert_eq!(
            inflate(&mut z, &zlib(&[7; 100_000]), &mut out),
            Inflated::MoreThan(4000)
        );
        let s = zlib(&[7; 1000]);
        assert_eq!(
            inflate(&mut z, &s[..s.len() - 6], &mut out),
            Inflated::Invalid("the zlib stream is truncated".into())
        );
        assert!(matches!(
            inflate(&mut z, b"not zlib at all", &mut out),
            Inflated::Invalid(_)
        ));
    }

    #[test]
    fn open_rejects_short_and_foreign_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x");
        std::fs::write(&p, [0u8; 100]).unwrap();
        let e = open(File::open(&p).unwrap()).unwrap_err();
        assert_eq!(
            e.message(),
            "file of 100 bytes is too short for a VMDK header"
        );
        std::fs::write(&p, [0u8; 512]).unwrap();
        let e = open(File::open(&p).unwrap()).unwrap_err();
        assert_eq!(
            e.message(),
            "not a VMDK sparse extent: magic is [00, 00, 00, 00], expected \"KDMV\""
        );
    }

    /// A 64 KiB stream-optimized disk with no grain: header, descriptor
    /// (zeros), grain directory at sector 21 (one entry, 0), padding to
    /// 22 sectors; `edit` changes the header first.
    fn tiny_vmdk(dir: &std::path::Path, edit: impl Fn(&mut SparseExtentHeader)) -> File {
        let mut h = SparseExtentHeader::stream_optimized(128, 21);
        edit(&mut h);
        let mut b = h.to_bytes().to_vec();
        b.resize(22 * 512, 0);
        let p = dir.join("t.vmdk");
        std::fs::write(&p, b).unwrap();
        File::open(&p).unwrap()
    }

    #[test]
    fn open_refuses_what_qemu_refuses_or_reads_otherwise() {
        // Issue 13: each of these was decoded by cloudimg while qemu-img
        // refused it or decoded other bytes (block/vmdk.c).
        let dir = tempfile::tempdir().unwrap();
        assert!(VmdkReader::open(tiny_vmdk(dir.path(), |_| {})).is_ok());
        let refused = |edit: &dyn Fn(&mut SparseExtentHeader)| {
            let e = VmdkReader::open(tiny_vmdk(dir.path(), edit)).unwrap_err();
            format!("{} (at byte {:?})", e.message(), e.offset())
        };
        assert_eq!(
            refused(&|h| h.overhead = 23),
            "the header says grains start at sector 23 (overHead), past the end of the 11264-byte file (truncated?) (at byte Some(64))"
        );
        assert_eq!(
            refused(&|h| h.overhead = u64::MAX),
            "the header says grains start at sector 18446744073709551615 (overHead), past the end of the 11264-byte file (truncated?) (at byte Some(64))"
        );
        assert_eq!(
            refused(&|h| h.compress_algorithm = wire::COMPRESS_NONE),
            "the flags say the grains are compressed, but the compression algorithm is 0 (none) (at byte Some(77))"
        );
        assert_eq!(
            refused(&|h| {
                h.version = 1;
                h.flags |= wire::FLAG_ZEROED_GTE;
            }),
            "version 1 header sets the zeroed-grain-table flag, defined only from version 2 (at byte Some(8))"
        );
        assert_eq!(
            refused(&|h| {
                h.flags |= wire::FLAG_REDUNDANT_GD;
                h.rgd_offset = 22;
            }),
            "the redundant grain directory (1 entries at sector 22) does not fit in the 11264-byte file (at byte Some(48))"
        );
        // A redundant GD inside the file is fine.
        assert!(VmdkReader::open(tiny_vmdk(dir.path(), |h| {
            h.flags |= wire::FLAG_REDUNDANT_GD;
            h.rgd_offset = 21;
        }))
        .is_ok());
    }

    #[test]
    fn open_bounds_the_grain_directory_by_the_file_size() {
        let mut h = SparseExtentHeader::stream_optimized(1 << 40, 1);
        h.gd_offset = 1;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x");
        std::fs::write(&p, h.to_bytes()).unwrap();
        let e = open(File::open(&p).unwrap()).unwrap_err();
        assert_eq!(
            e.message(),
            "the grain directory (16777216 entries at sector 1) does not fit in the 512-byte file"
        );
    }
}
