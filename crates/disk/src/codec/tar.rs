//! GNU tar: the header wire format, a writer for the one `disk.raw` member
//! GCP wants, and a general streaming reader.
//!
//! Wire format: 512-byte blocks; v7 header fields, then either the ustar
//! `prefix` or the GNU/oldgnu fields (atime, ctime, old sparse map,
//! isextended, realsize) (reference §4c; GNU tar manual "Old GNU Format";
//! Go `archive/tar/format.go`). The reader accepts v7, ustar (with the
//! star variant of `prefix`) and GNU headers, base-256 numbers, GNU `L`/`K`
//! long names (the last one wins), and old GNU sparse members (`S`) with
//! extension blocks. PAX records (`x`, `g`) are returned as ordinary
//! entries and not applied: the GCP verifier rejects them.
//!
//! Sparse data chunks are read back to back (as Go and CPython do). GNU tar
//! 1.34 instead expects each chunk to start on a 512-byte boundary, so the
//! writer only ever emits 512-byte aligned chunks.

use std::io::{self, Read, Write};

use crate::disk::{ExtentKind, VirtualDisk, BUFFER_SIZE};
use crate::error::{Error, IoContext, Result};

/// Size of a tar block.
pub const BLOCK_SIZE: u64 = 512;
/// Size of a tar record at the default blocking factor 20: an archive is
/// padded with zero blocks to a multiple of this.
pub const RECORD_SIZE: u64 = 20 * BLOCK_SIZE;

// Header field ranges (reference §4c).
const NAME: std::ops::Range<usize> = 0..100;
const MODE: std::ops::Range<usize> = 100..108;
const UID: std::ops::Range<usize> = 108..116;
const GID: std::ops::Range<usize> = 116..124;
const SIZE: std::ops::Range<usize> = 124..136;
const MTIME: std::ops::Range<usize> = 136..148;
const CHKSUM: std::ops::Range<usize> = 148..156;
const TYPEFLAG: usize = 156;
const LINKNAME: std::ops::Range<usize> = 157..257;
const MAGIC: std::ops::Range<usize> = 257..263;
const VERSION: std::ops::Range<usize> = 263..265;
const UNAME: std::ops::Range<usize> = 265..297;
const GNAME: std::ops::Range<usize> = 297..329;
/// ustar only: the name prefix.
const PREFIX: std::ops::Range<usize> = 345..500;
/// star: the prefix is 131 bytes, followed by atime/ctime, and the
/// header ends in this trailer.
const STAR_PREFIX: std::ops::Range<usize> = 345..476;
const STAR_TRAILER: std::ops::Range<usize> = 508..512;
/// GNU only: first old sparse map entry (4 × {offset 12, numbytes 12}).
const GNU_SPARSE: usize = 386;
/// Sparse entries held in the header itself.
const GNU_SPARSE_IN_HEADER: usize = 4;
const GNU_ISEXTENDED: usize = 482;
const GNU_REALSIZE: std::ops::Range<usize> = 483..495;
/// Sparse entries held in one extension block; its isextended flag
/// follows at byte 504.
const GNU_SPARSE_IN_EXT: usize = 21;
const EXT_ISEXTENDED: usize = 504;

/// Magic + version of GNU and oldgnu headers: `"ustar "` `" \0"`.
pub const MAGIC_GNU: &[u8; 8] = b"ustar  \0";
/// Magic + version of POSIX ustar/pax headers: `"ustar\0"` `"00"`.
pub const MAGIC_USTAR: &[u8; 8] = b"ustar\x0000";

/// Typeflags used here.
pub mod typeflag {
    /// Regular file.
    pub const REGULAR: u8 = b'0';
    /// Regular file (v7: NUL).
    pub const REGULAR_V7: u8 = 0;
    /// GNU old-style sparse file.
    pub const GNU_SPARSE: u8 = b'S';
    /// GNU long name for the next member.
    pub const GNU_LONGNAME: u8 = b'L';
    /// GNU long link name for the next member.
    pub const GNU_LONGLINK: u8 = b'K';
    /// PAX extended header for the next member.
    pub const PAX: u8 = b'x';
    /// PAX global header.
    pub const PAX_GLOBAL: u8 = b'g';
}

/// Largest GNU `L`/`K` payload accepted (GNU tar's PATH_MAX is 4096; this
/// leaves room while refusing allocation bombs).
pub const MAX_LONG_NAME: u64 = 64 * 1024;
/// Largest pax extended header payload accepted.
pub const MAX_PAX_SIZE: u64 = 1 << 20;
/// Most old-sparse map entries accepted for one member (each costs 16
/// bytes of memory). A disk with more separate data runs than this would
/// be pathological.
pub const MAX_SPARSE_ENTRIES: usize = 1 << 20;
/// Most sparse extension blocks accepted for one member: enough for
/// [`MAX_SPARSE_ENTRIES`] entries (21 per block).
pub const MAX_SPARSE_EXT_BLOCKS: usize = MAX_SPARSE_ENTRIES.div_ceil(GNU_SPARSE_IN_EXT);

/// The checksum of a header: the unsigned sum of its bytes with the
/// checksum field counted as spaces. Also returns the signed sum, which
/// some old writers used.
pub fn header_checksum(block: &[u8; 512]) -> (u64, i64) {
    let mut unsigned = 0u64;
    let mut signed = 0i64;
    for (i, &b) in block.iter().enumerate() {
        let b = if CHKSUM.contains(&i) { b' ' } else { b };
        unsigned += u64::from(b);
        signed += i64::from(b as i8);
    }
    (unsigned, signed)
}

/// Which header layout a block uses, from its magic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TarFormat {
    /// No magic: Unix v7.
    V7,
    /// `ustar\0` `00` (POSIX ustar, pax, star).
    Ustar,
    /// `ustar ` ` \0` (GNU and oldgnu).
    Gnu,
}

impl TarFormat {
    /// Lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            TarFormat::V7 => "v7",
            TarFormat::Ustar => "ustar",
            TarFormat::Gnu => "gnu",
        }
    }
}

/// One entry of an old GNU sparse map, in logical-file coordinates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SparseEntry {
    /// Where the data chunk goes in the logical file.
    pub offset: u64,
    /// Its length.
    pub numbytes: u64,
}

// ---------------------------------------------------------------------------
// Numbers

/// Parse a numeric field: octal (leading spaces/NULs allowed, ended by NUL
/// or space) or GNU base-256 (first byte has the top bit set). Negative
/// base-256 values and values above `i64::MAX` are refused.
pub fn parse_number(field: &[u8]) -> std::result::Result<u64, String> {
    let Some(&first) = field.first() else {
        return Ok(0);
    };
    if first & 0x80 != 0 {
        // Base-256, two's complement: bit 6 of the first byte is the sign
        // (as Go's archive/tar reads it; GNU writes 0x80 or 0xff).
        if first & 0x40 != 0 {
            return Err("is a negative base-256 number".into());
        }
        let mut v: u64 = u64::from(first & 0x7f);
        for &b in &field[1..] {
            if v >> 55 != 0 {
                return Err("is a base-256 number too large for 64 bits".into());
            }
            v = (v << 8) | u64::from(b);
        }
        return Ok(v);
    }
    let s: &[u8] = {
        let start = field
            .iter()
            .position(|&b| b != b' ' && b != 0)
            .unwrap_or(field.len());
        let rest = &field[start..];
        let end = rest
            .iter()
            .position(|&b| b == b' ' || b == 0)
            .unwrap_or(rest.len());
        // Whatever follows the terminator is ignored, as GNU tar and Go do.
        &rest[..end]
    };
    let mut v: u64 = 0;
    for &b in s {
        if !(b'0'..=b'7').contains(&b) {
            return Err(format!(
                "is not an octal number: {:?}",
                String::from_utf8_lossy(field)
            ));
        }
        v = v
            .checked_mul(8)
            .and_then(|v| v.checked_add(u64::from(b - b'0')))
            .filter(|&v| v <= i64::MAX as u64)
            .ok_or_else(|| "is an octal number too large for 64 bits".to_string())?;
    }
    Ok(v)
}

/// Write `value` into `field`: zero-padded octal with a trailing NUL when
/// it fits (`len - 1` digits), else GNU base-256 (0x80, then big-endian).
pub fn put_number(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    if digits >= 22 || value < 1u64 << (3 * digits) {
        let s = format!("{value:0digits$o}");
        field[..digits].copy_from_slice(s.as_bytes());
        field[digits] = 0;
    } else {
        field.fill(0);
        field[0] = 0x80;
        let be = value.to_be_bytes();
        let n = be.len().min(field.len() - 1);
        let flen = field.len();
        field[flen - n..].copy_from_slice(&be[be.len() - n..]);
    }
}

fn cstr(field: &[u8]) -> &[u8] {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    &field[..end]
}

// ---------------------------------------------------------------------------
// Writer

/// The sparse map GNU tar would write for `disk`: one chunk per run of data
/// extents, widened to 512-byte boundaries (GNU tar 1.34 cannot read
/// unaligned chunks), then a final `{realsize, 0}` entry, as GNU tar 1.34
/// writes it. `None` when the disk has no holes at all (GNU tar then
/// writes a regular member).
pub fn sparse_map(disk: &dyn VirtualDisk) -> io::Result<Option<Vec<SparseEntry>>> {
    let size = disk.size();
    let mut map: Vec<SparseEntry> = Vec::new();
    for e in disk.extents()? {
        if e.kind != ExtentKind::Data {
            continue;
        }
        let start = e.offset / BLOCK_SIZE * BLOCK_SIZE;
        let end = e
            .end()
            .div_ceil(BLOCK_SIZE)
            .saturating_mul(BLOCK_SIZE)
            .min(size);
        match map.last_mut() {
            Some(last) if last.offset + last.numbytes >= start => {
                last.numbytes = end.max(last.offset + last.numbytes) - last.offset;
            }
            _ => map.push(SparseEntry {
                offset: start,
                numbytes: end - start,
            }),
        }
    }
    if map.len() == 1 && map[0].offset == 0 && map[0].numbytes == size {
        return Ok(None);
    }
    // GNU tar 1.34 (SEEK_HOLE detection) always ends the map with
    // {realsize, 0}, even when the file ends in data (observed; older
    // versions added it only after a final hole, see tar-rs's
    // sparse_end.txt). Matching it keeps the archive byte-identical to
    // GNU tar's.
    map.push(SparseEntry {
        offset: size,
        numbytes: 0,
    });
    Ok(Some(map))
}

/// The fields of the one member the writer emits.
#[derive(Debug, Clone)]
pub struct MemberSpec<'a> {
    /// Member name (at most 100 bytes).
    pub name: &'a str,
    /// Permission bits.
    pub mode: u64,
    /// Modification time, Unix seconds.
    pub mtime: u64,
}

/// Build the header block (and extension blocks) of a member. `map` is
/// `None` for a regular member of `realsize` bytes.
pub fn member_headers(
    spec: &MemberSpec<'_>,
    realsize: u64,
    map: Option<&[SparseEntry]>,
) -> Vec<[u8; 512]> {
    let mut h = [0u8; 512];
    let name = spec.name.as_bytes();
    let n = name.len().min(NAME.len());
    h[..n].copy_from_slice(&name[..n]);
    put_number(&mut h[MODE], spec.mode);
    put_number(&mut h[UID], 0);
    put_number(&mut h[GID], 0);
    put_number(&mut h[MTIME], spec.mtime);
    h[MAGIC.start..VERSION.end].copy_from_slice(MAGIC_GNU);
    h[UNAME][..4].copy_from_slice(b"root");
    h[GNAME][..4].copy_from_slice(b"root");
    let mut blocks = Vec::new();
    match map {
        None => {
            h[TYPEFLAG] = typeflag::REGULAR;
            put_number(&mut h[SIZE], realsize);
        }
        Some(map) => {
            h[TYPEFLAG] = typeflag::GNU_SPARSE;
            put_number(&mut h[SIZE], map.iter().map(|e| e.numbytes).sum());
            put_number(&mut h[GNU_REALSIZE], realsize);
            let put = |b: &mut [u8], at: usize, e: &SparseEntry| {
                put_number(&mut b[at..at + 12], e.offset);
                put_number(&mut b[at + 12..at + 24], e.numbytes);
            };
            for (i, e) in map.iter().take(GNU_SPARSE_IN_HEADER).enumerate() {
                put(&mut h, GNU_SPARSE + 24 * i, e);
            }
            let rest = map.get(GNU_SPARSE_IN_HEADER..).unwrap_or(&[]);
            h[GNU_ISEXTENDED] = u8::from(!rest.is_empty());
            let chunks: Vec<_> = rest.chunks(GNU_SPARSE_IN_EXT).collect();
            for (ci, chunk) in chunks.iter().enumerate() {
                let mut b = [0u8; 512];
                for (i, e) in chunk.iter().enumerate() {
                    put(&mut b, 24 * i, e);
                }
                b[EXT_ISEXTENDED] = u8::from(ci + 1 < chunks.len());
                blocks.push(b);
            }
        }
    }
    let (sum, _) = header_checksum(&h);
    let s = format!("{sum:06o}");
    h[CHKSUM][..6].copy_from_slice(s.as_bytes());
    h[CHKSUM.start + 6] = 0;
    h[CHKSUM.start + 7] = b' ';
    blocks.insert(0, h);
    blocks
}

/// Write `disk` as the single member `spec.name` of a GNU tar archive:
/// headers, data chunks, two zero blocks, padding to a 10240-byte record.
/// Returns the number of archive bytes written.
pub fn write_disk_tar<W: Write>(
    disk: &dyn VirtualDisk,
    spec: &MemberSpec<'_>,
    out: &mut W,
) -> Result<u64> {
    let size = disk.size();
    if size % BLOCK_SIZE != 0 {
        return Err(Error::invalid_input(format!(
            "disk size {size} is not a multiple of {BLOCK_SIZE} bytes"
        )));
    }
    let map = sparse_map(disk).ctx("reading the disk's extents")?;
    let chunks: Vec<SparseEntry> = map.clone().unwrap_or_else(|| {
        vec![SparseEntry {
            offset: 0,
            numbytes: size,
        }]
    });
    let mut written = 0u64;
    for b in member_headers(spec, size, map.as_deref()) {
        out.write_all(&b).ctx("writing the tar header")?;
        written += BLOCK_SIZE;
    }
    let mut buf = vec![0u8; BUFFER_SIZE];
    for c in &chunks {
        let mut pos = c.offset;
        let end = c.offset + c.numbytes;
        while pos < end {
            let n = (end - pos).min(BUFFER_SIZE as u64) as usize;
            disk.read_at(&mut buf[..n], pos).ctx("reading the disk")?;
            out.write_all(&buf[..n]).ctx("writing tar data")?;
            pos += n as u64;
            written += n as u64;
        }
    }
    // Chunks are 512-multiples, so the data needs no padding; then the
    // end-of-archive blocks and the record padding.
    let zeros = [0u8; 512];
    let end = (written + 2 * BLOCK_SIZE).div_ceil(RECORD_SIZE) * RECORD_SIZE;
    while written < end {
        out.write_all(&zeros)
            .ctx("writing the end of the tar archive")?;
        written += BLOCK_SIZE;
    }
    Ok(written)
}

// ---------------------------------------------------------------------------
// Reader

/// One member, as read by [`TarReader::next_entry`].
#[derive(Debug, Clone)]
pub struct TarEntry {
    /// Offset of its (first) header block in the tar stream: the `L`/`K`
    /// header when there is one.
    pub header_offset: u64,
    /// Offset of the member's own header block.
    pub main_header_offset: u64,
    /// Name (from `L` if present, else `prefix/name` or `name`), cut at
    /// the first NUL.
    pub name: Vec<u8>,
    /// Link name (from `K` if present).
    pub link_name: Vec<u8>,
    /// Typeflag byte.
    pub typeflag: u8,
    /// Header layout.
    pub format: TarFormat,
    /// The 8 magic + version bytes as found.
    pub magic: [u8; 8],
    /// Mode bits.
    pub mode: u64,
    /// Owner ids.
    pub uid: u64,
    /// Group id.
    pub gid: u64,
    /// Owner and group names.
    pub uname: Vec<u8>,
    /// Group name.
    pub gname: Vec<u8>,
    /// Modification time (Unix seconds).
    pub mtime: u64,
    /// The size field: bytes of data stored in the archive.
    pub size: u64,
    /// Logical size: `realsize` for a sparse member, else `size` (0 for
    /// header-only types).
    pub realsize: u64,
    /// Old GNU sparse map (typeflag `S`).
    pub sparse: Option<Vec<SparseEntry>>,
    /// Offset of the data area in the tar stream.
    pub data_offset: u64,
    /// Number of GNU `L` headers seen before this member.
    pub long_names: u32,
    /// Number of GNU `K` headers seen before this member.
    pub long_links: u32,
    /// The records of the pax extended header(s) (`x`) before this member.
    /// Only `path`, `linkpath`, `size`, `uid`, `gid` and `mtime` are
    /// applied; pax sparse (`GNU.sparse.*`) is not decoded.
    pub pax: Option<Vec<(String, Vec<u8>)>>,
}

impl TarEntry {
    /// Name as text (lossy).
    pub fn name_str(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }
}

/// A piece of a member's logical content.
#[derive(Debug)]
pub enum TarChunk<'a> {
    /// Bytes stored in the archive.
    Data(&'a [u8]),
    /// A hole of this many zero bytes.
    Hole(u64),
}

/// How the archive ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TarEnd {
    /// Not reached yet.
    NotYet,
    /// Two zero blocks, the first at this offset.
    ZeroBlocks(u64),
    /// A single zero block at this offset, then end of input.
    LoneZeroBlock(u64),
    /// End of input at this offset with no zero block.
    Eof(u64),
}

/// A streaming tar reader over any [`Read`]; memory use is bounded by
/// [`BUFFER_SIZE`], [`MAX_LONG_NAME`] and [`MAX_SPARSE_ENTRIES`].
pub struct TarReader<R> {
    inner: R,
    pos: u64,
    /// Bytes of the current member's data area (padded) not yet consumed.
    pending: u64,
    /// The current member, until its content is read.
    current: Option<TarEntry>,
    end: TarEnd,
}

fn terr(offset: u64, msg: impl Into<String>) -> Error {
    Error::invalid_format(msg.into()).at(offset)
}

impl<R: Read> TarReader<R> {
    /// Read tar from `inner`.
    pub fn new(inner: R) -> Self {
        TarReader {
            inner,
            pos: 0,
            pending: 0,
            current: None,
            end: TarEnd::NotYet,
        }
    }

    /// Bytes consumed from the stream so far.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// How the archive ended (after [`next_entry`](Self::next_entry)
    /// returned `None`).
    pub fn end(&self) -> TarEnd {
        self.end
    }

    /// The underlying reader.
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// Mutable access to the underlying reader.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// Read up to a full block; returns the bytes read (less than 512 only
    /// at end of input).
    fn read_block(&mut self, block: &mut [u8; 512]) -> Result<usize> {
        let mut n = 0;
        while n < 512 {
            match self.inner.read(&mut block[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(Error::io("reading the tar stream", e).at(self.pos + n as u64))
                }
            }
        }
        self.pos += n as u64;
        Ok(n)
    }

    fn read_full_block(&mut self, what: &str) -> Result<[u8; 512]> {
        let mut b = [0u8; 512];
        let at = self.pos;
        let n = self.read_block(&mut b)?;
        if n < 512 {
            return Err(terr(
                at,
                format!("tar stream truncated in {what}: {n} of 512 bytes"),
            ));
        }
        Ok(b)
    }

    fn skip(&mut self, mut n: u64) -> Result<()> {
        let mut buf = vec![0u8; BUFFER_SIZE.min(n as usize).max(1)];
        while n > 0 {
            let k = n.min(buf.len() as u64) as usize;
            self.read_exact_data(&mut buf[..k])?;
            n -= k as u64;
        }
        Ok(())
    }

    fn read_exact_data(&mut self, buf: &mut [u8]) -> Result<()> {
        let mut n = 0;
        while n < buf.len() {
            match self.inner.read(&mut buf[n..]) {
                Ok(0) => {
                    return Err(terr(
                        self.pos + n as u64,
                        "tar stream truncated in member data",
                    ));
                }
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(Error::io("reading the tar stream", e).at(self.pos + n as u64))
                }
            }
        }
        self.pos += n as u64;
        Ok(())
    }

    /// Read the next member's headers. Skips whatever is left of the
    /// previous member's data. Returns `None` at the end of the archive
    /// (see [`end`](Self::end)).
    pub fn next_entry(&mut self) -> Result<Option<TarEntry>> {
        if self.pending > 0 {
            let n = self.pending;
            self.pending = 0;
            self.skip(n)?;
        }
        self.current = None;
        if self.end != TarEnd::NotYet {
            return Ok(None);
        }
        let mut long_name: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        let mut pax: Option<Vec<(String, Vec<u8>)>> = None;
        let mut pax_bytes = 0u64;
        let (mut long_names, mut long_links) = (0u32, 0u32);
        let mut first_offset = None;
        loop {
            let at = self.pos;
            let mut block = [0u8; 512];
            let n = self.read_block(&mut block)?;
            if n == 0 {
                if first_offset.is_some() {
                    return Err(terr(at, "tar stream ends after a GNU long-name header"));
                }
                self.end = TarEnd::Eof(at);
                return Ok(None);
            }
            if n < 512 {
                return Err(terr(
                    at,
                    format!("tar stream truncated in a header: {n} of 512 bytes"),
                ));
            }
            if block.iter().all(|&b| b == 0) {
                if first_offset.is_some() {
                    return Err(terr(at, "zero block after a GNU long-name header"));
                }
                let mut second = [0u8; 512];
                let m = self.read_block(&mut second)?;
                self.end = if m == 512 && second.iter().all(|&b| b == 0) {
                    TarEnd::ZeroBlocks(at)
                } else if m == 0 {
                    TarEnd::LoneZeroBlock(at)
                } else {
                    return Err(terr(
                        at + 512,
                        "a zero block is followed by a non-zero block",
                    ));
                };
                return Ok(None);
            }
            first_offset.get_or_insert(at);
            let entry = self.parse_header(&block, at)?;
            match entry.typeflag {
                typeflag::GNU_LONGNAME | typeflag::GNU_LONGLINK => {
                    let is_name = entry.typeflag == typeflag::GNU_LONGNAME;
                    if entry.size > MAX_LONG_NAME {
                        return Err(terr(
                            at,
                            format!(
                                "GNU long {} header has size {} (more than {MAX_LONG_NAME})",
                                if is_name { "name" } else { "link" },
                                entry.size
                            ),
                        ));
                    }
                    let mut data = vec![0u8; entry.size as usize];
                    self.read_exact_data(&mut data)?;
                    self.skip(pad(entry.size))?;
                    data.truncate(cstr(&data).len());
                    if is_name {
                        long_name = Some(data);
                        long_names += 1;
                    } else {
                        long_link = Some(data);
                        long_links += 1;
                    }
                }
                typeflag::PAX => {
                    if entry.size > MAX_PAX_SIZE {
                        return Err(terr(
                            at,
                            format!(
                                "pax extended header has size {} (more than {MAX_PAX_SIZE})",
                                entry.size
                            ),
                        ));
                    }
                    // Records of consecutive pax headers accumulate: bound
                    // their sum too.
                    pax_bytes += entry.size;
                    if pax_bytes > MAX_PAX_SIZE {
                        return Err(terr(
                            at,
                            format!(
                                "pax extended headers before one member add up to more than {MAX_PAX_SIZE} bytes"
                            ),
                        ));
                    }
                    let mut data = vec![0u8; entry.size as usize];
                    let data_at = self.pos;
                    self.read_exact_data(&mut data)?;
                    self.skip(pad(entry.size))?;
                    let records = parse_pax(&data).map_err(|m| terr(data_at, m))?;
                    pax.get_or_insert_with(Vec::new).extend(records);
                }
                _ => {
                    let mut entry = entry;
                    if let Some(records) = &pax {
                        apply_pax(&mut entry, records).map_err(|m| terr(at, m))?;
                    }
                    entry.pax = pax;
                    if entry.typeflag == typeflag::GNU_SPARSE {
                        let map = self.read_sparse_map(&block, at)?;
                        check_sparse_map(&map, entry.size, entry.realsize)
                            .map_err(|m| terr(at, m))?;
                        entry.sparse = Some(map);
                    }
                    let pax_path = entry
                        .pax
                        .as_ref()
                        .is_some_and(|p| p.iter().any(|(k, _)| k == "path"));
                    let pax_link = entry
                        .pax
                        .as_ref()
                        .is_some_and(|p| p.iter().any(|(k, _)| k == "linkpath"));
                    if let Some(n) = long_name.filter(|_| !pax_path) {
                        entry.name = n;
                    }
                    if let Some(l) = long_link.filter(|_| !pax_link) {
                        entry.link_name = l;
                    }
                    entry.header_offset = first_offset.unwrap_or(at);
                    entry.long_names = long_names;
                    entry.long_links = long_links;
                    entry.data_offset = self.pos;
                    let stored = if is_header_only(entry.typeflag) {
                        0
                    } else {
                        entry.size
                    };
                    self.pending = stored + pad(stored);
                    self.current = Some(entry.clone());
                    return Ok(Some(entry));
                }
            }
        }
    }

    fn parse_header(&self, block: &[u8; 512], at: u64) -> Result<TarEntry> {
        let stored = parse_number(&block[CHKSUM]).map_err(|m| {
            terr(
                at + CHKSUM.start as u64,
                format!("header checksum field {m}"),
            )
        })?;
        let (unsigned, signed) = header_checksum(block);
        if stored != unsigned && stored as i64 != signed {
            return Err(terr(
                at,
                format!(
                    "bad tar header checksum: stored {stored:o}, computed {unsigned:o} (octal)"
                ),
            ));
        }
        let mut magic = [0u8; 8];
        magic.copy_from_slice(&block[MAGIC.start..VERSION.end]);
        let format = if &magic == MAGIC_GNU {
            TarFormat::Gnu
        } else if &magic[..6] == b"ustar\0" {
            TarFormat::Ustar
        } else {
            TarFormat::V7
        };
        let num = |r: std::ops::Range<usize>, what: &str| {
            parse_number(&block[r.clone()])
                .map_err(|m| terr(at + r.start as u64, format!("tar header {what} field {m}")))
        };
        let typeflag = block[TYPEFLAG];
        let size = num(SIZE, "size")?;
        let mut name = cstr(&block[NAME]).to_vec();
        if format == TarFormat::Ustar {
            let prefix = if &block[STAR_TRAILER] == b"tar\0" {
                cstr(&block[STAR_PREFIX])
            } else {
                cstr(&block[PREFIX])
            };
            if !prefix.is_empty() {
                let mut p = prefix.to_vec();
                p.push(b'/');
                p.extend_from_slice(&name);
                name = p;
            }
        }
        let realsize = if typeflag == typeflag::GNU_SPARSE {
            num(GNU_REALSIZE, "realsize")?
        } else if is_header_only(typeflag) {
            0
        } else {
            size
        };
        Ok(TarEntry {
            header_offset: at,
            main_header_offset: at,
            name,
            link_name: cstr(&block[LINKNAME]).to_vec(),
            typeflag,
            format,
            magic,
            mode: num(MODE, "mode")?,
            uid: num(UID, "uid")?,
            gid: num(GID, "gid")?,
            uname: if format == TarFormat::V7 {
                Vec::new()
            } else {
                cstr(&block[UNAME]).to_vec()
            },
            gname: if format == TarFormat::V7 {
                Vec::new()
            } else {
                cstr(&block[GNAME]).to_vec()
            },
            mtime: num(MTIME, "mtime")?,
            size,
            realsize,
            sparse: None,
            data_offset: 0,
            long_names: 0,
            long_links: 0,
            pax: None,
        })
    }

    fn read_sparse_map(&mut self, header: &[u8; 512], at: u64) -> Result<Vec<SparseEntry>> {
        let mut map = Vec::new();
        let push_entries =
            |b: &[u8], count: usize, block_at: u64, map: &mut Vec<SparseEntry>| -> Result<()> {
                for i in 0..count {
                    let o = i * 24;
                    let field = &b[o..o + 24];
                    if field.iter().all(|&c| c == 0) {
                        break;
                    }
                    let offset = parse_number(&field[..12])
                        .map_err(|m| terr(block_at + o as u64, format!("sparse map offset {m}")))?;
                    let numbytes = parse_number(&field[12..]).map_err(|m| {
                        terr(block_at + o as u64 + 12, format!("sparse map numbytes {m}"))
                    })?;
                    if map.len() >= MAX_SPARSE_ENTRIES {
                        return Err(terr(
                            block_at,
                            format!("sparse map has more than {MAX_SPARSE_ENTRIES} entries"),
                        ));
                    }
                    map.push(SparseEntry { offset, numbytes });
                }
                Ok(())
            };
        push_entries(
            &header[GNU_SPARSE..GNU_ISEXTENDED],
            GNU_SPARSE_IN_HEADER,
            at + GNU_SPARSE as u64,
            &mut map,
        )?;
        let mut extended = header[GNU_ISEXTENDED] != 0;
        let mut blocks = 0usize;
        while extended {
            let block_at = self.pos;
            // Extension blocks whose entries are empty add nothing to the
            // map: bound them too, or a stream of them never ends.
            blocks += 1;
            if blocks > MAX_SPARSE_EXT_BLOCKS {
                return Err(terr(
                    block_at,
                    format!("sparse map has more than {MAX_SPARSE_EXT_BLOCKS} extension blocks"),
                ));
            }
            let b = self.read_full_block("a sparse extension block")?;
            push_entries(&b[..EXT_ISEXTENDED], GNU_SPARSE_IN_EXT, block_at, &mut map)?;
            extended = b[EXT_ISEXTENDED] != 0;
        }
        Ok(map)
    }

    /// Stream the current member's logical content to `f(logical_offset,
    /// chunk)`: data read from the archive and holes (for a sparse member,
    /// including the tail up to `realsize`). Can be called once per entry.
    pub fn read_content<F>(&mut self, mut f: F) -> Result<()>
    where
        F: FnMut(u64, TarChunk<'_>) -> Result<()>,
    {
        let Some(entry) = self.current.take() else {
            return Err(Error::invalid_input("no current tar member to read"));
        };
        if is_header_only(entry.typeflag) {
            return Ok(());
        }
        let mut buf = vec![0u8; BUFFER_SIZE.min(entry.size as usize).max(512)];
        let chunks = entry.sparse.clone().unwrap_or_else(|| {
            vec![SparseEntry {
                offset: 0,
                numbytes: entry.size,
            }]
        });
        let mut logical = 0u64;
        for c in &chunks {
            if c.offset > logical {
                f(logical, TarChunk::Hole(c.offset - logical))?;
            }
            let mut pos = c.offset;
            let end = c.offset + c.numbytes;
            while pos < end {
                let n = (end - pos).min(buf.len() as u64) as usize;
                self.read_exact_data(&mut buf[..n])?;
                self.pending -= n as u64;
                f(pos, TarChunk::Data(&buf[..n]))?;
                pos += n as u64;
            }
            logical = end;
        }
        if entry.realsize > logical {
            f(logical, TarChunk::Hole(entry.realsize - logical))?;
        }
        Ok(())
    }
}

/// Parse pax records: `"<len> <key>=<value>\n"`, where `len` counts the
/// whole record.
fn parse_pax(mut data: &[u8]) -> std::result::Result<Vec<(String, Vec<u8>)>, String> {
    let mut out = Vec::new();
    while !data.is_empty() && data[0] != 0 {
        let sp = data
            .iter()
            .position(|&b| b == b' ')
            .ok_or("malformed pax record: no length")?;
        let len: usize = std::str::from_utf8(&data[..sp])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or("malformed pax record: bad length")?;
        if len <= sp + 1 || len > data.len() || data[len - 1] != b'\n' {
            return Err(format!("malformed pax record: length {len} does not fit"));
        }
        let rec = &data[sp + 1..len - 1];
        let eq = rec
            .iter()
            .position(|&b| b == b'=')
            .ok_or("malformed pax record: no '='")?;
        out.push((
            String::from_utf8_lossy(&rec[..eq]).into_owned(),
            rec[eq + 1..].to_vec(),
        ));
        data = &data[len..];
    }
    Ok(out)
}

/// Apply the pax records that change how the member is framed or named.
fn apply_pax(e: &mut TarEntry, records: &[(String, Vec<u8>)]) -> std::result::Result<(), String> {
    let dec = |k: &str, v: &[u8]| -> std::result::Result<u64, String> {
        let s = String::from_utf8_lossy(v);
        let int = s.split('.').next().unwrap_or("");
        int.parse::<u64>()
            .ok()
            .filter(|&n| n <= i64::MAX as u64)
            .ok_or_else(|| format!("pax record {k} has a bad value {s:?}"))
    };
    for (k, v) in records {
        match k.as_str() {
            "path" => e.name = v.clone(),
            "linkpath" => e.link_name = v.clone(),
            "size" => {
                e.size = dec(k, v)?;
                if e.typeflag != typeflag::GNU_SPARSE && !is_header_only(e.typeflag) {
                    e.realsize = e.size;
                }
            }
            "uid" => e.uid = dec(k, v)?,
            "gid" => e.gid = dec(k, v)?,
            "mtime" => e.mtime = dec(k, v)?,
            _ => {}
        }
    }
    Ok(())
}

/// Typeflags whose size field does not describe stored data (Go
/// `isHeaderOnlyType`): hard link, symlink, char/block device, directory,
/// fifo.
fn is_header_only(t: u8) -> bool {
    matches!(t, b'1' | b'2' | b'3' | b'4' | b'5' | b'6')
}

/// Zero bytes that pad `n` bytes of data to a whole block.
pub fn pad(n: u64) -> u64 {
    (BLOCK_SIZE - n % BLOCK_SIZE) % BLOCK_SIZE
}

/// Check an old GNU sparse map: sorted, non-overlapping, within
/// `realsize`, holding exactly `size` bytes of data.
pub fn check_sparse_map(
    map: &[SparseEntry],
    size: u64,
    realsize: u64,
) -> std::result::Result<(), String> {
    let mut end = 0u64;
    let mut total = 0u64;
    for (i, e) in map.iter().enumerate() {
        let e_end = e
            .offset
            .checked_add(e.numbytes)
            .ok_or_else(|| format!("sparse map entry {i} overflows 64 bits"))?;
        if e.offset < end {
            return Err(format!(
                "sparse map entry {i} (offset {}) overlaps or precedes the previous one (ending at {end})",
                e.offset
            ));
        }
        if e_end > realsize {
            return Err(format!(
                "sparse map entry {i} ends at {e_end}, past the real size {realsize}"
            ));
        }
        end = e_end;
        total += e.numbytes;
    }
    if total != size {
        return Err(format!(
            "sparse map holds {total} bytes of data but the size field says {size}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemDisk;

    #[test]
    fn numbers_round_trip_octal_and_base256() {
        let mut f = [0u8; 12];
        put_number(&mut f, 0o644);
        assert_eq!(&f, b"00000000644\0");
        assert_eq!(parse_number(&f), Ok(0o644));
        put_number(&mut f, 10 << 30);
        assert_eq!(f, [0x80, 0, 0, 0, 0, 0, 0, 2, 0x80, 0, 0, 0]);
        assert_eq!(parse_number(&f), Ok(10 << 30));
        put_number(&mut f, (1 << 33) - 1);
        assert_eq!(&f, b"77777777777\0");
        let mut m = [0u8; 8];
        put_number(&mut m, 0o644);
        assert_eq!(&m, b"0000644\0");
        assert_eq!(parse_number(b"  755 \0\0"), Ok(0o755));
        assert!(parse_number(&[0xff; 12]).unwrap_err().contains("negative"));
        assert!(parse_number(b"12x4\0").is_err());
        assert_eq!(parse_number(b"011420\x000"), Ok(0o11420));
        assert!(parse_number(b"7777777777777777777777\0").is_err());
    }

    #[test]
    fn header_matches_gnu_tar_layout() {
        // Same fields as `tar --format=oldgnu -S` of a 1 GiB file with
        // three data blocks at the start, mtime 0o15301547250 (header
        // dumped from GNU tar 1.34).
        let map = [
            SparseEntry {
                offset: 0,
                numbytes: 0x3000,
            },
            SparseEntry {
                offset: 1 << 30,
                numbytes: 0,
            },
        ];
        let spec = MemberSpec {
            name: "disk.raw",
            mode: 0o644,
            mtime: 0o15301547250,
        };
        let b = member_headers(&spec, 1 << 30, Some(&map));
        assert_eq!(b.len(), 1);
        let h = &b[0];
        assert_eq!(&h[148..156], b"016404\0 ");
        assert_eq!(h[156], b'S');
        assert_eq!(&h[124..136], b"00000030000\0");
        assert_eq!(&h[483..495], b"10000000000\0");
        assert_eq!(&h[257..265], b"ustar  \0");
    }

    #[test]
    fn round_trip_through_reader_with_extension_blocks() {
        let mut bytes = vec![0u8; 1 << 20];
        for i in 0..30 {
            bytes[i * 8192 + 100] = i as u8 + 1;
        }
        let disk = MemDisk::new(bytes.clone());
        let spec = MemberSpec {
            name: "disk.raw",
            mode: 0o644,
            mtime: 7,
        };
        let mut out = Vec::new();
        write_disk_tar(&disk, &spec, &mut out).unwrap();
        assert_eq!(out.len() as u64 % RECORD_SIZE, 0);
        let mut r = TarReader::new(&out[..]);
        let e = r.next_entry().unwrap().unwrap();
        assert_eq!(e.name, b"disk.raw");
        assert_eq!(e.sparse.as_ref().unwrap().len(), 31);
        let mut got = vec![0u8; e.realsize as usize];
        r.read_content(|o, c| {
            if let TarChunk::Data(d) = c {
                got[o as usize..o as usize + d.len()].copy_from_slice(d);
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(got, bytes);
        assert!(r.next_entry().unwrap().is_none());
        assert!(matches!(r.end(), TarEnd::ZeroBlocks(_)));
    }

    /// A header block with `fill` applied and a valid checksum.
    fn header(fill: impl FnOnce(&mut [u8; 512])) -> [u8; 512] {
        let mut h = [0u8; 512];
        h[..4].copy_from_slice(b"bomb");
        put_number(&mut h[MODE], 0o644);
        put_number(&mut h[UID], 0);
        put_number(&mut h[GID], 0);
        put_number(&mut h[MTIME], 0);
        h[MAGIC.start..VERSION.end].copy_from_slice(MAGIC_GNU);
        fill(&mut h);
        let (sum, _) = header_checksum(&h);
        h[CHKSUM].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        h
    }

    /// Endless sparse extension blocks, each flagging another one.
    struct EndlessExtensions;
    impl Read for EndlessExtensions {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let mut b = [0u8; 512];
            for i in 0..GNU_SPARSE_IN_EXT {
                put_number(&mut b[24 * i..24 * i + 12], 0);
                put_number(&mut b[24 * i + 12..24 * i + 24], 0);
            }
            b[EXT_ISEXTENDED] = 1;
            let n = buf.len().min(512);
            buf[..n].copy_from_slice(&b[..n]);
            Ok(n)
        }
    }

    #[test]
    fn endless_sparse_map_is_refused() {
        let h = header(|h| {
            h[TYPEFLAG] = b'S';
            put_number(&mut h[SIZE], 0);
            put_number(&mut h[GNU_REALSIZE], 1 << 40);
            h[GNU_ISEXTENDED] = 1;
        });
        let mut r = TarReader::new((&h[..]).chain(EndlessExtensions));
        let err = r.next_entry().unwrap_err();
        assert!(
            err.message()
                .starts_with("sparse map has more than 1048576 entries"),
            "{err}"
        );
    }

    #[test]
    fn huge_long_name_and_pax_are_refused() {
        for (t, msg) in [
            (
                b'L',
                "GNU long name header has size 1099511627776 (more than 65536)",
            ),
            (
                b'K',
                "GNU long link header has size 1099511627776 (more than 65536)",
            ),
            (
                b'x',
                "pax extended header has size 1099511627776 (more than 1048576)",
            ),
        ] {
            let h = header(|h| {
                h[TYPEFLAG] = t;
                put_number(&mut h[SIZE], 1 << 40);
            });
            let err = TarReader::new(&h[..]).next_entry().unwrap_err();
            assert_eq!(err.to_string(), format!("{msg} (at byte 0)"));
        }
    }

    #[test]
    fn huge_regular_member_is_streamed_not_allocated() {
        let h = header(|h| {
            h[TYPEFLAG] = b'0';
            put_number(&mut h[SIZE], i64::MAX as u64);
        });
        let mut r = TarReader::new(&h[..]);
        let e = r.next_entry().unwrap().unwrap();
        assert_eq!(e.size, i64::MAX as u64);
        let err = r.read_content(|_, _| Ok(())).unwrap_err();
        assert_eq!(
            err.to_string(),
            "tar stream truncated in member data (at byte 512)"
        );
    }

    #[test]
    fn sparse_map_checks() {
        let e = |offset, numbytes| SparseEntry { offset, numbytes };
        assert!(check_sparse_map(&[e(0, 512), e(1024, 512)], 1024, 2048).is_ok());
        assert_eq!(
            check_sparse_map(&[e(1024, 512), e(0, 512)], 1024, 2048).unwrap_err(),
            "sparse map entry 1 (offset 0) overlaps or precedes the previous one (ending at 1536)"
        );
        assert_eq!(
            check_sparse_map(&[e(0, 4096)], 4096, 2048).unwrap_err(),
            "sparse map entry 0 ends at 4096, past the real size 2048"
        );
        assert_eq!(
            check_sparse_map(&[e(0, 512)], 1024, 2048).unwrap_err(),
            "sparse map holds 512 bytes of data but the size field says 1024"
        );
    }
}
