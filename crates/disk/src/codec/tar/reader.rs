//! A streaming tar reader: headers, GNU long names, pax records, old GNU
//! sparse maps, and each member's content as data and holes.

use std::io::{self, Read};

use super::{
    check_sparse_map, cstr, header_checksum, is_header_only, pad, parse_number, typeflag,
    SparseEntry, TarFormat, CHKSUM, EXT_ISEXTENDED, GID, GNAME, GNU_ISEXTENDED, GNU_REALSIZE,
    GNU_SPARSE, GNU_SPARSE_IN_EXT, GNU_SPARSE_IN_HEADER, LINKNAME, MAGIC, MAGIC_GNU, MAX_LONG_NAME,
    MAX_PAX_SIZE, MAX_SPARSE_ENTRIES, MAX_SPARSE_EXT_BLOCKS, MODE, MTIME, NAME, PREFIX, SIZE,
    STAR_PREFIX, STAR_TRAILER, TYPEFLAG, UID, UNAME, VERSION,
};
use crate::disk::BUFFER_SIZE;
use crate::error::{Error, Result};

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

/// The headers read before a member's own: GNU long names and links, and
/// pax extended headers.
#[derive(Default)]
struct Prelude {
    /// Offset of the first of them.
    first_offset: Option<u64>,
    /// The last GNU `L` name, and how many `L` headers there were.
    long_name: Option<Vec<u8>>,
    long_names: u32,
    /// The last GNU `K` link name, and how many `K` headers there were.
    long_link: Option<Vec<u8>>,
    long_links: u32,
    /// The pax records, in order, and their total size.
    pax: Option<Vec<(String, Vec<u8>)>>,
    pax_bytes: u64,
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
        let mut prelude = Prelude::default();
        loop {
            let at = self.pos;
            let Some(block) = self.read_header_block(prelude.first_offset.is_some())? else {
                return Ok(None);
            };
            prelude.first_offset.get_or_insert(at);
            let entry = self.parse_header(&block, at)?;
            match entry.typeflag {
                typeflag::GNU_LONGNAME | typeflag::GNU_LONGLINK => {
                    self.read_long_name(&entry, at, &mut prelude)?;
                }
                typeflag::PAX => self.read_pax_header(&entry, at, &mut prelude)?,
                _ => return self.finish_entry(entry, &block, at, prelude).map(Some),
            }
        }
    }

    /// Read the block where a header should be. Returns `None`, with
    /// [`end`](Self::end) set, at the end of the archive: end of input, or
    /// a zero block (followed by a second one or by end of input).
    /// `in_prelude`: a GNU long-name or pax header was just read, so a
    /// member header must follow.
    fn read_header_block(&mut self, in_prelude: bool) -> Result<Option<[u8; 512]>> {
        let at = self.pos;
        let mut block = [0u8; 512];
        let n = self.read_block(&mut block)?;
        if n == 0 {
            if in_prelude {
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
            if in_prelude {
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
        Ok(Some(block))
    }

    /// Read the payload of a GNU `L` or `K` header (`entry`, at `at`) into
    /// `prelude`.
    fn read_long_name(&mut self, entry: &TarEntry, at: u64, prelude: &mut Prelude) -> Result<()> {
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
            prelude.long_name = Some(data);
            prelude.long_names += 1;
        } else {
            prelude.long_link = Some(data);
            prelude.long_links += 1;
        }
        Ok(())
    }

    /// Read the records of a pax extended header (`entry`, at `at`) into
    /// `prelude`.
    fn read_pax_header(&mut self, entry: &TarEntry, at: u64, prelude: &mut Prelude) -> Result<()> {
        if entry.size > MAX_PAX_SIZE {
            return Err(terr(
                at,
                format!(
                    "pax extended header has size {} (more than {MAX_PAX_SIZE})",
                    entry.size
                ),
            ));
        }
        // Records of consecutive pax headers accumulate: bound their sum
        // too.
        prelude.pax_bytes += entry.size;
        if prelude.pax_bytes > MAX_PAX_SIZE {
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
        prelude.pax.get_or_insert_with(Vec::new).extend(records);
        Ok(())
    }

    /// Complete the member whose header `block` (at `at`) parsed as
    /// `entry`: apply what `prelude` collected (pax records win over GNU
    /// long names), read its sparse map, and make it the current member.
    fn finish_entry(
        &mut self,
        mut entry: TarEntry,
        block: &[u8; 512],
        at: u64,
        prelude: Prelude,
    ) -> Result<TarEntry> {
        if let Some(records) = &prelude.pax {
            apply_pax(&mut entry, records).map_err(|m| terr(at, m))?;
        }
        entry.pax = prelude.pax;
        if entry.typeflag == typeflag::GNU_SPARSE {
            let map = self.read_sparse_map(block, at)?;
            check_sparse_map(&map, entry.size, entry.realsize).map_err(|m| terr(at, m))?;
            entry.sparse = Some(map);
        }
        let pax_has = |key: &str| {
            entry
                .pax
                .as_ref()
                .is_some_and(|p| p.iter().any(|(k, _)| k == key))
        };
        let (pax_path, pax_link) = (pax_has("path"), pax_has("linkpath"));
        if let Some(n) = prelude.long_name.filter(|_| !pax_path) {
            entry.name = n;
        }
        if let Some(l) = prelude.long_link.filter(|_| !pax_link) {
            entry.link_name = l;
        }
        entry.header_offset = prelude.first_offset.unwrap_or(at);
        entry.long_names = prelude.long_names;
        entry.long_links = prelude.long_links;
        entry.data_offset = self.pos;
        let stored = if is_header_only(entry.typeflag) {
            0
        } else {
            entry.size
        };
        self.pending = stored + pad(stored);
        self.current = Some(entry.clone());
        Ok(entry)
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
