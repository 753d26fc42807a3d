//! The virtual disk abstraction every reader produces and every writer
//! consumes.
//!
//! A [`VirtualDisk`] has a size, positioned reads (holes read as zeros) and
//! an extent map: sorted, non-overlapping [`Extent`]s covering `0..size`,
//! each either [`ExtentKind::Data`] (must be read) or [`ExtentKind::Zero`]
//! (known to read as zeros without reading, e.g. a hole in a sparse file or
//! an unallocated grain).

use std::io;
use std::ops::Range;

/// Bytes per logical sector. Every format cloudimg writes works in 512-byte
/// sectors (GPT LBAs, VHD, VMDK, tar blocks).
pub const SECTOR_SIZE: u64 = 512;

/// One MiB, the unit Azure image sizes must be a multiple of.
pub const MIB: u64 = 1 << 20;
/// One GiB, the unit GCP image sizes must be a multiple of.
pub const GIB: u64 = 1 << 30;

/// Size of the buffers used to stream data between readers and writers.
/// 1 MiB: large enough to amortise syscalls, small enough to keep memory
/// bounded whatever the image size.
pub const BUFFER_SIZE: usize = 1 << 20;

/// Whether an extent's bytes must be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExtentKind {
    /// Bytes that must be read (they may still happen to be zero).
    Data,
    /// Bytes known to read as zero.
    Zero,
}

/// A byte range of a virtual disk and what it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Extent {
    /// First byte.
    pub offset: u64,
    /// Length in bytes (never 0 in an extent map).
    pub len: u64,
    /// Data or zeros.
    pub kind: ExtentKind,
}

impl Extent {
    /// One past the last byte.
    pub fn end(&self) -> u64 {
        self.offset + self.len
    }
    /// The byte range.
    pub fn range(&self) -> Range<u64> {
        self.offset..self.end()
    }
}

/// A random-access virtual disk.
pub trait VirtualDisk: Send + Sync {
    /// Virtual size in bytes.
    fn size(&self) -> u64;

    /// Fill `buf` with the bytes at `offset`. Reading past [`size`](Self::size)
    /// is an error ([`io::ErrorKind::UnexpectedEof`]).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;

    /// Sorted, non-overlapping extents covering `0..size()` exactly.
    fn extents(&self) -> io::Result<Vec<Extent>>;

    /// The raw file behind this disk, byte for byte, if it is one: lets
    /// writers copy data in the kernel (`copy_file_range`).
    fn as_raw_file(&self) -> Option<&crate::io::RawFile> {
        None
    }
}

impl<T: VirtualDisk + ?Sized> VirtualDisk for &T {
    fn size(&self) -> u64 {
        (**self).size()
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        (**self).read_at(buf, offset)
    }
    fn extents(&self) -> io::Result<Vec<Extent>> {
        (**self).extents()
    }
    fn as_raw_file(&self) -> Option<&crate::io::RawFile> {
        (**self).as_raw_file()
    }
}

impl<T: VirtualDisk + ?Sized> VirtualDisk for Box<T> {
    fn size(&self) -> u64 {
        (**self).size()
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        (**self).read_at(buf, offset)
    }
    fn extents(&self) -> io::Result<Vec<Extent>> {
        (**self).extents()
    }
    fn as_raw_file(&self) -> Option<&crate::io::RawFile> {
        (**self).as_raw_file()
    }
}

/// Error for a read that runs past the end of a disk.
pub fn eof_error(offset: u64, len: usize, size: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("read of {len} bytes at {offset} runs past the end of the {size}-byte disk"),
    )
}

/// Merge adjacent extents of the same kind and drop empty ones.
pub fn coalesce(extents: impl IntoIterator<Item = Extent>) -> Vec<Extent> {
    let mut out: Vec<Extent> = Vec::new();
    for e in extents {
        if e.len == 0 {
            continue;
        }
        match out.last_mut() {
            Some(last) if last.kind == e.kind && last.end() == e.offset => last.len += e.len,
            _ => out.push(e),
        }
    }
    out
}

/// A piece of a disk delivered by [`for_each_chunk`].
#[derive(Debug)]
pub enum Chunk<'a> {
    /// Bytes read from a data extent.
    Data(&'a [u8]),
    /// A run of this many zero bytes (from a zero extent).
    Zero(u64),
}

/// Walk the whole disk in order, reading data extents in pieces of at most
/// [`BUFFER_SIZE`] bytes, and calling `f(offset, chunk)`.
pub fn for_each_chunk<D, F, E>(disk: &D, mut f: F) -> Result<(), E>
where
    D: VirtualDisk + ?Sized,
    F: FnMut(u64, Chunk<'_>) -> Result<(), E>,
    E: From<io::Error>,
{
    let mut buf = vec![0u8; BUFFER_SIZE];
    for e in disk.extents()? {
        match e.kind {
            ExtentKind::Zero => f(e.offset, Chunk::Zero(e.len))?,
            ExtentKind::Data => {
                let mut pos = e.offset;
                while pos < e.end() {
                    let n = (e.end() - pos).min(BUFFER_SIZE as u64) as usize;
                    disk.read_at(&mut buf[..n], pos)?;
                    f(pos, Chunk::Data(&buf[..n]))?;
                    pos += n as u64;
                }
            }
        }
    }
    Ok(())
}

/// A disk whose data extents were refined by reading them: every aligned
/// 4 KiB block of zeros inside a data extent becomes a zero extent, as
/// `cp --sparse=always` would punch it. Writers then skip those blocks
/// like holes (sparse tar entries, omitted grains, holes in raw copies).
pub struct ZeroScanned<D> {
    inner: D,
    extents: Vec<Extent>,
}

/// Granularity of [`ZeroScanned`]: the usual filesystem block.
pub const ZERO_SCAN_BLOCK: u64 = 4096;

impl<D: VirtualDisk> ZeroScanned<D> {
    /// Scan `inner`'s data extents on up to `jobs` threads.
    pub fn scan(inner: D, jobs: usize) -> io::Result<Self> {
        const UNIT: u64 = 64 << 20;
        let mut units: Vec<Extent> = Vec::new();
        let mut out: Vec<Extent> = Vec::new();
        let base = inner.extents()?;
        for e in &base {
            if e.kind == ExtentKind::Zero {
                continue;
            }
            let mut pos = e.offset;
            while pos < e.end() {
                let end = ((pos / UNIT + 1) * UNIT).min(e.end());
                units.push(Extent {
                    offset: pos,
                    len: end - pos,
                    kind: ExtentKind::Data,
                });
                pos = end;
            }
        }
        let threads = jobs.clamp(1, units.len().max(1));
        type Scanned = io::Result<Vec<(usize, Vec<Extent>)>>;
        let scanned: Vec<Scanned> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let (units, inner) = (&units, &inner);
                    s.spawn(move || {
                        let mut buf = vec![0u8; BUFFER_SIZE];
                        let mut res = Vec::new();
                        for (i, u) in units.iter().enumerate().skip(t).step_by(threads) {
                            res.push((i, scan_unit(inner, *u, &mut buf)?));
                        }
                        Ok(res)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("scan threads do not panic"))
                .collect()
        });
        let mut parts: Vec<(usize, Vec<Extent>)> = Vec::with_capacity(units.len());
        for r in scanned {
            parts.extend(r?);
        }
        parts.sort_by_key(|(i, _)| *i);
        let mut parts = parts.into_iter().map(|(_, v)| v);
        for e in base {
            if e.kind == ExtentKind::Zero {
                out.push(e);
                continue;
            }
            let mut covered = e.offset;
            while covered < e.end() {
                let part = parts.next().expect("one scanned part per unit");
                covered = part.last().map_or(covered, Extent::end);
                out.extend(part);
            }
        }
        Ok(ZeroScanned {
            inner,
            extents: coalesce(out),
        })
    }
}

fn scan_unit<D: VirtualDisk>(d: &D, u: Extent, buf: &mut [u8]) -> io::Result<Vec<Extent>> {
    let mut out = Vec::new();
    let mut pos = u.offset;
    while pos < u.end() {
        let n = (u.end() - pos).min(buf.len() as u64) as usize;
        d.read_at(&mut buf[..n], pos)?;
        let mut at = pos;
        while at < pos + n as u64 {
            // Blocks aligned to absolute 4 KiB boundaries.
            let end = ((at / ZERO_SCAN_BLOCK + 1) * ZERO_SCAN_BLOCK).min(pos + n as u64);
            let b = &buf[(at - pos) as usize..(end - pos) as usize];
            let zero = b.len() as u64 == ZERO_SCAN_BLOCK && b.iter().all(|&x| x == 0);
            let kind = if zero {
                ExtentKind::Zero
            } else {
                ExtentKind::Data
            };
            out.push(Extent {
                offset: at,
                len: end - at,
                kind,
            });
            at = end;
        }
        pos += n as u64;
    }
    Ok(coalesce(out))
}

impl<D: VirtualDisk> VirtualDisk for ZeroScanned<D> {
    fn size(&self) -> u64 {
        self.inner.size()
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.inner.read_at(buf, offset)
    }
    fn extents(&self) -> io::Result<Vec<Extent>> {
        Ok(self.extents.clone())
    }
    fn as_raw_file(&self) -> Option<&crate::io::RawFile> {
        self.inner.as_raw_file()
    }
}

/// A disk held in memory; zero extents are found by scanning 4 KiB blocks.
/// For tests and small synthesized disks.
#[derive(Debug, Clone)]
pub struct MemDisk {
    bytes: Vec<u8>,
}

impl MemDisk {
    /// Wrap `bytes`.
    pub fn new(bytes: Vec<u8>) -> Self {
        MemDisk { bytes }
    }
    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl VirtualDisk for MemDisk {
    fn size(&self) -> u64 {
        self.bytes.len() as u64
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|&e| e <= self.size());
        match end {
            Some(end) => {
                buf.copy_from_slice(&self.bytes[offset as usize..end as usize]);
                Ok(())
            }
            None => Err(eof_error(offset, buf.len(), self.size())),
        }
    }
    fn extents(&self) -> io::Result<Vec<Extent>> {
        const BLOCK: usize = 4096;
        let ext = self.bytes.chunks(BLOCK).enumerate().map(|(i, c)| Extent {
            offset: (i * BLOCK) as u64,
            len: c.len() as u64,
            kind: if c.iter().all(|&b| b == 0) {
                ExtentKind::Zero
            } else {
                ExtentKind::Data
            },
        });
        Ok(coalesce(ext))
    }
}

/// A disk made of a base disk, grown to a larger size with zeros, with some
/// byte ranges replaced. This is how a GPT disk grown for GCP is described
/// without copying it: the input, zeros to the new end, and patched
/// sectors (protective MBR, primary header, relocated backup GPT).
pub struct PatchedDisk<D> {
    base: D,
    size: u64,
    /// Sorted, non-overlapping (offset, bytes).
    patches: Vec<(u64, Vec<u8>)>,
}

impl<D: VirtualDisk> PatchedDisk<D> {
    /// `base` grown (never shrunk) to `size`, with no patches yet.
    pub fn new(base: D, size: u64) -> Self {
        assert!(
            size >= base.size(),
            "a patched disk is never smaller than its base"
        );
        PatchedDisk {
            base,
            size,
            patches: Vec::new(),
        }
    }
    /// Replace the bytes at `offset` with `bytes`. Panics if the patch
    /// overlaps another or runs past the end: callers build patches from a
    /// layout they computed.
    pub fn patch(&mut self, offset: u64, bytes: Vec<u8>) {
        let end = offset + bytes.len() as u64;
        assert!(end <= self.size, "patch lies inside the disk");
        let i = self.patches.partition_point(|(o, _)| *o < offset);
        if let Some((o, b)) = i.checked_sub(1).map(|j| &self.patches[j]) {
            assert!(o + b.len() as u64 <= offset, "patches do not overlap");
        }
        if let Some((o, _)) = self.patches.get(i) {
            assert!(end <= *o, "patches do not overlap");
        }
        self.patches.insert(i, (offset, bytes));
    }
    /// The base disk.
    pub fn base(&self) -> &D {
        &self.base
    }
    /// The patches, sorted by offset.
    pub fn patches(&self) -> &[(u64, Vec<u8>)] {
        &self.patches
    }
}

impl<D: VirtualDisk> VirtualDisk for PatchedDisk<D> {
    fn size(&self) -> u64 {
        self.size
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|&e| e <= self.size)
            .ok_or_else(|| eof_error(offset, buf.len(), self.size))?;
        let base_size = self.base.size();
        if offset < base_size {
            let n = (base_size.min(end) - offset) as usize;
            self.base.read_at(&mut buf[..n], offset)?;
            buf[n..].fill(0);
        } else {
            buf.fill(0);
        }
        for (po, pb) in &self.patches {
            let pend = po + pb.len() as u64;
            if pend <= offset || *po >= end {
                continue;
            }
            let from = offset.max(*po);
            let to = end.min(pend);
            buf[(from - offset) as usize..(to - offset) as usize]
                .copy_from_slice(&pb[(from - po) as usize..(to - po) as usize]);
        }
        Ok(())
    }
    fn extents(&self) -> io::Result<Vec<Extent>> {
        let mut base = self.base.extents()?;
        if self.size > self.base.size() {
            base.push(Extent {
                offset: self.base.size(),
                len: self.size - self.base.size(),
                kind: ExtentKind::Zero,
            });
        }
        // Cut the base extents at patch boundaries, turning patched ranges
        // into data.
        let mut out = Vec::with_capacity(base.len() + 2 * self.patches.len());
        let mut patches = self.patches.iter().peekable();
        for e in base {
            let mut pos = e.offset;
            while pos < e.end() {
                while patches
                    .peek()
                    .is_some_and(|(po, pb)| po + pb.len() as u64 <= pos)
                {
                    patches.next();
                }
                match patches.peek() {
                    Some((po, pb)) if *po <= pos => {
                        let to = (po + pb.len() as u64).min(e.end());
                        out.push(Extent {
                            offset: pos,
                            len: to - pos,
                            kind: ExtentKind::Data,
                        });
                        pos = to;
                    }
                    Some((po, _)) if *po < e.end() => {
                        out.push(Extent {
                            offset: pos,
                            len: po - pos,
                            kind: e.kind,
                        });
                        pos = *po;
                    }
                    _ => {
                        out.push(Extent {
                            offset: pos,
                            len: e.end() - pos,
                            kind: e.kind,
                        });
                        pos = e.end();
                    }
                }
            }
        }
        Ok(coalesce(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(d: &dyn VirtualDisk) -> Vec<u8> {
        let mut v = vec![0; d.size() as usize];
        d.read_at(&mut v, 0).unwrap();
        v
    }

    fn check_extents(d: &dyn VirtualDisk) {
        let ex = d.extents().unwrap();
        let mut pos = 0;
        let bytes = read_all(d);
        for e in &ex {
            assert_eq!(e.offset, pos);
            assert!(e.len > 0);
            if e.kind == ExtentKind::Zero {
                assert!(bytes[e.offset as usize..e.end() as usize]
                    .iter()
                    .all(|&b| b == 0));
            }
            pos = e.end();
        }
        assert_eq!(pos, d.size());
    }

    #[test]
    fn mem_disk_extents_cover_disk() {
        let mut b = vec![0u8; 20000];
        b[5000] = 1;
        b[19999] = 2;
        let d = MemDisk::new(b);
        check_extents(&d);
        assert_eq!(d.extents().unwrap().len(), 4);
    }

    #[test]
    fn patched_disk_reads_patches_and_growth() {
        let mut b = vec![0u8; 8192];
        b[100] = 9;
        let mut d = PatchedDisk::new(MemDisk::new(b), 16384);
        d.patch(0, vec![1; 512]);
        d.patch(8192 + 4096, vec![3; 512]);
        d.patch(8192 - 512, vec![2; 1024]);
        let all = read_all(&d);
        assert_eq!(all.len(), 16384);
        assert_eq!(&all[..512], &[1; 512][..]);
        assert_eq!(&all[7680..8704], &[2; 1024][..]);
        assert_eq!(&all[12288..12800], &[3; 512][..]);
        assert_eq!(all[100], 1);
        assert_eq!(all[1000], 0);
        check_extents(&d);
        let mut part = [0u8; 100];
        d.read_at(&mut part, 8690).unwrap();
        assert_eq!(&part[..14], &[2; 14][..]);
        assert_eq!(&part[14..], &[0; 86][..]);
    }

    #[test]
    fn reads_past_end_fail() {
        let d = MemDisk::new(vec![0; 512]);
        let mut b = [0u8; 2];
        assert_eq!(
            d.read_at(&mut b, 511).unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
    }
}
