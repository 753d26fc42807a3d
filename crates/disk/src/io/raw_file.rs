//! A raw image file as a [`VirtualDisk`], with holes found by
//! `SEEK_DATA`/`SEEK_HOLE` so that they are never read.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use rustix::fs::SeekFrom;

use crate::disk::{coalesce, eof_error, Extent, ExtentKind, VirtualDisk};

use super::direct::Direct;

/// A regular file read as a disk. The size is fixed when it is opened.
#[derive(Debug)]
pub struct RawFile {
    file: File,
    size: u64,
    path: PathBuf,
    /// Where the disk starts in the file (non-zero for a window of a file).
    base: u64,
    /// A direct-I/O handle reads go through, if asked for and available.
    direct: Option<Direct>,
}

impl RawFile {
    /// Open a regular file read-only.
    pub fn open(path: impl AsRef<Path>) -> io::Result<Self> {
        let path = path.as_ref();
        let (file, meta) = super::open_input(path)?;
        Ok(RawFile {
            file,
            size: meta.len(),
            path: path.to_path_buf(),
            base: 0,
            direct: None,
        })
    }

    /// Use an open file; `size` bytes starting at `base` form the disk.
    pub fn window(file: File, path: impl AsRef<Path>, base: u64, size: u64) -> Self {
        RawFile {
            file,
            size,
            path: path.as_ref().to_path_buf(),
            base,
            direct: None,
        }
    }

    /// Read from the device rather than the page cache ([`Direct`]), when
    /// the filesystem offers direct I/O for the file; else as before.
    pub fn with_direct_reads(mut self) -> Self {
        self.direct = Direct::reopen(&self.file, false);
        self
    }

    /// Whether reads go to the device (see [`RawFile::with_direct_reads`]).
    pub fn reads_direct(&self) -> bool {
        self.direct.is_some()
    }

    /// The path the file was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open file.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Copy `len` bytes at `offset` of this disk to `offset` of `out`,
    /// in the kernel when the filesystem allows (`copy_file_range`: no
    /// copy through user space, a reflink on filesystems that share
    /// extents), else through a buffer.
    pub fn copy_range_to(&self, out: &File, offset: u64, len: u64) -> io::Result<()> {
        let mut src = self.base + offset;
        let mut dst = offset;
        let end = offset + len;
        while dst < end {
            let want = (end - dst).min(1 << 30) as usize;
            match rustix::fs::copy_file_range(&self.file, Some(&mut src), out, Some(&mut dst), want)
            {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "file shrank while being read",
                    ))
                }
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => {}
                Err(
                    rustix::io::Errno::XDEV
                    | rustix::io::Errno::INVAL
                    | rustix::io::Errno::NOSYS
                    | rustix::io::Errno::OPNOTSUPP,
                ) => return self.copy_range_buffered(out, dst, end - dst),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    fn copy_range_buffered(&self, out: &File, offset: u64, len: u64) -> io::Result<()> {
        let mut buf = vec![0u8; crate::disk::BUFFER_SIZE];
        let mut pos = offset;
        while pos < offset + len {
            let n = (offset + len - pos).min(buf.len() as u64) as usize;
            self.read_at(&mut buf[..n], pos)?;
            out.write_all_at(&buf[..n], pos)?;
            pos += n as u64;
        }
        Ok(())
    }

    /// Find the next data at or after `pos` (relative to the window), or
    /// `None` if the rest is a hole.
    fn next_data(&self, pos: u64) -> io::Result<Option<u64>> {
        match rustix::fs::seek(&self.file, SeekFrom::Data(self.base + pos)) {
            Ok(off) => Ok(Some(off.saturating_sub(self.base))),
            Err(rustix::io::Errno::NXIO) => Ok(None),
            Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::OPNOTSUPP) => Ok(Some(pos)),
            Err(e) => Err(e.into()),
        }
    }

    fn next_hole(&self, pos: u64) -> io::Result<u64> {
        match rustix::fs::seek(&self.file, SeekFrom::Hole(self.base + pos)) {
            Ok(off) => Ok(off.saturating_sub(self.base)),
            Err(rustix::io::Errno::NXIO)
            | Err(rustix::io::Errno::INVAL)
            | Err(rustix::io::Errno::OPNOTSUPP) => Ok(self.size),
            Err(e) => Err(e.into()),
        }
    }
}

impl VirtualDisk for RawFile {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        match offset.checked_add(buf.len() as u64) {
            Some(end) if end <= self.size => {}
            _ => return Err(eof_error(offset, buf.len(), self.size)),
        }
        match &self.direct {
            Some(d) => d.read_exact_at(buf, self.base + offset),
            None => self.file.read_exact_at(buf, self.base + offset),
        }
        .map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                io::Error::new(io::ErrorKind::UnexpectedEof, "file shrank while being read")
            } else {
                e
            }
        })
    }

    fn as_raw_file(&self) -> Option<&RawFile> {
        Some(self)
    }

    fn extents(&self) -> io::Result<Vec<Extent>> {
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < self.size {
            let data = match self.next_data(pos)? {
                Some(d) if d < self.size => d,
                _ => self.size,
            };
            if data > pos {
                out.push(Extent {
                    offset: pos,
                    len: data - pos,
                    kind: ExtentKind::Zero,
                });
            }
            if data >= self.size {
                break;
            }
            let hole = self.next_hole(data)?.clamp(data + 1, self.size);
            out.push(Extent {
                offset: data,
                len: hole - data,
                kind: ExtentKind::Data,
            });
            pos = hole;
        }
        Ok(coalesce(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn holes_become_zero_extents() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sparse.raw");
        let f = File::create(&p).unwrap();
        f.set_len(64 << 20).unwrap();
        f.write_at(b"hello", 32 << 20).unwrap();
        (&f).flush().unwrap();
        drop(f);
        let d = RawFile::open(&p).unwrap();
        let ex = d.extents().unwrap();
        assert_eq!(ex.iter().map(|e| e.len).sum::<u64>(), 64 << 20);
        let data: u64 = ex
            .iter()
            .filter(|e| e.kind == ExtentKind::Data)
            .map(|e| e.len)
            .sum();
        assert!(data < 1 << 20, "only the written block is data: {ex:?}");
        let mut b = [0u8; 5];
        d.read_at(&mut b, 32 << 20).unwrap();
        assert_eq!(&b, b"hello");
    }
}
