//! Writing a disk as the one member of a GNU tar archive, byte for byte
//! as GNU tar 1.34 writes it with `--format=oldgnu -S`: an old GNU sparse
//! member (`S`) when the disk has holes, a regular member (`0`) when not.

use std::io::{self, Write};

use super::{
    header_checksum, put_number, typeflag, SparseEntry, BLOCK_SIZE, CHKSUM, EXT_ISEXTENDED, GID,
    GNAME, GNU_ISEXTENDED, GNU_REALSIZE, GNU_SPARSE, GNU_SPARSE_IN_EXT, GNU_SPARSE_IN_HEADER,
    MAGIC, MAGIC_GNU, MODE, MTIME, NAME, RECORD_SIZE, SIZE, TYPEFLAG, UID, UNAME, VERSION,
};
use crate::disk::{ExtentKind, VirtualDisk, BUFFER_SIZE};
use crate::error::{Error, IoContext, Result};

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
