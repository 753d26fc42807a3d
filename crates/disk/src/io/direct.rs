//! Direct I/O (`O_DIRECT`) for the artifacts that are plain copies of the
//! disk: the raw image and the fixed VHDs.
//!
//! Those artifacts are the bulk of what `package` writes (on the 10 GiB
//! benchmark fixture, 2 GiB of its 3.4 GB). Written through the page cache
//! they cost a fresh page per 4 KiB, a copy into it, and later the same
//! pages read back for verification; on virtual machines that hand free
//! memory back to the host (free page reporting, the usual cloud setup) a
//! fresh page also costs a fault in the hypervisor, about 1.8 s of system
//! time per GiB measured here. With `O_DIRECT` the data goes from our
//! buffer to the device and is read back from the device into our buffer:
//! no page cache, no extra copy, and the verification reads what the
//! device holds rather than what the cache holds. The device work is the
//! same writeback that `fsync` waits for anyway, plus one read.
//!
//! Direct I/O is used only where the filesystem says it can do it for the
//! file (`statx` reports its alignment, Linux 6.1 and later) and accepts
//! the flag; otherwise (tmpfs, older kernels) the ordinary cached path is
//! taken. Buffers, offsets and lengths are aligned to what `statx`
//! reports (at least 512 bytes); the unaligned edges of a range go through
//! the ordinary file handle.

use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};

use rustix::fs::{AtFlags, OFlags, StatxFlags};

/// How a written artifact is read back for verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadBack {
    /// Through the page cache (what was just written is still there).
    PageCache,
    /// From the device, with direct I/O where the filesystem offers it
    /// (else through the page cache).
    Device,
}

impl ReadBack {
    /// `f`, reading as this says.
    pub fn raw_file(self, f: super::RawFile) -> super::RawFile {
        match self {
            ReadBack::PageCache => f,
            ReadBack::Device => f.with_direct_reads(),
        }
    }
}

/// Bytes moved per direct read or write.
pub const CHUNK: usize = 4 << 20;

/// A heap buffer whose first byte is aligned to `align` (safe code: the
/// vector is over-allocated and the aligned window used).
pub struct AlignedBuf {
    raw: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBuf {
    /// `len` zero bytes starting at a multiple of `align` (a power of two).
    pub fn new(len: usize, align: usize) -> Self {
        let raw = vec![0u8; len + align];
        let start = raw.as_ptr().align_offset(align);
        assert!(start < align, "a byte buffer can always be aligned");
        AlignedBuf { raw, start, len }
    }

    /// Its length.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The aligned bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.raw[self.start..self.start + self.len]
    }

    /// The aligned bytes, writable.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.raw[self.start..self.start + self.len]
    }
}

/// A second handle on an open file, opened with `O_DIRECT`, and the
/// alignment the filesystem requires for it.
#[derive(Debug)]
pub struct Direct {
    file: File,
    /// Alignment of buffers in memory.
    mem_align: usize,
    /// Alignment of file offsets and lengths.
    offset_align: u64,
}

impl Direct {
    /// Open `file` again with `O_DIRECT`, for writing (`write`) or
    /// reading. `None` when the filesystem offers no direct I/O for it,
    /// when the alignment it needs is unreasonable (over 64 KiB), or when
    /// the reopening fails: the caller then uses `file` as it is.
    pub fn reopen(file: &File, write: bool) -> Option<Direct> {
        let st = rustix::fs::statx(file, "", AtFlags::EMPTY_PATH, StatxFlags::DIOALIGN).ok()?;
        if !StatxFlags::from_bits_retain(st.stx_mask).contains(StatxFlags::DIOALIGN) {
            return None;
        }
        let (mem, off) = (st.stx_dio_mem_align, st.stx_dio_offset_align);
        if mem == 0 || off == 0 || mem > 65536 || off > 65536 {
            return None;
        }
        // Whatever the filesystem allows, 4 KiB alignment is also taken:
        // it is a multiple of every smaller power of two.
        let mem_align = (mem as usize).max(4096);
        let offset_align = u64::from(off).max(4096);
        let path = format!("/proc/self/fd/{}", file.as_raw_fd());
        let reopened = OpenOptions::new()
            .read(!write)
            .write(write)
            .custom_flags(OFlags::DIRECT.bits() as i32)
            .open(path)
            .ok()?;
        Some(Direct {
            file: reopened,
            mem_align,
            offset_align,
        })
    }

    /// Alignment for buffers.
    pub fn mem_align(&self) -> usize {
        self.mem_align
    }

    /// Alignment for offsets and lengths.
    pub fn offset_align(&self) -> u64 {
        self.offset_align
    }

    /// Write `buf` (aligned in memory, a multiple of the offset alignment
    /// long) at `offset` (aligned), directly.
    pub fn write_aligned(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        debug_assert!(self.is_aligned(buf, offset));
        self.file.write_all_at(buf, offset)
    }

    fn is_aligned(&self, buf: &[u8], offset: u64) -> bool {
        (buf.as_ptr() as usize) % self.mem_align == 0
            && offset % self.offset_align == 0
            && buf.len() as u64 % self.offset_align == 0
    }

    /// Read exactly `buf.len()` bytes at `offset` (any alignment), from
    /// the device: the aligned blocks covering the range are read into a
    /// bounce buffer of this thread and the range copied out. A read
    /// that ends early (the file is shorter) is an `UnexpectedEof` error.
    pub fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        thread_local! {
            static BOUNCE: RefCell<Option<AlignedBuf>> = const { RefCell::new(None) };
        }
        let a = self.offset_align;
        let mut done = 0usize;
        BOUNCE.with(|cell| -> io::Result<()> {
            let mut slot = cell.borrow_mut();
            let bounce = match slot.as_mut() {
                Some(b) if b.len() >= CHUNK + 2 * a as usize => b,
                _ => slot.insert(AlignedBuf::new(CHUNK + 2 * a as usize, self.mem_align)),
            };
            while done < buf.len() {
                let at = offset + done as u64;
                let start = at / a * a;
                let want = (buf.len() - done).min(CHUNK);
                let end = (at + want as u64).div_ceil(a) * a;
                let span = &mut bounce.as_mut_slice()[..(end - start) as usize];
                let got = read_up_to(&self.file, span, start)?;
                let skip = (at - start) as usize;
                let n = got.saturating_sub(skip).min(want);
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "file shrank while being read",
                    ));
                }
                buf[done..done + n].copy_from_slice(&span[skip..skip + n]);
                done += n;
            }
            Ok(())
        })
    }
}

/// Whether `file` lives on a filesystem whose `copy_file_range` shares
/// extents instead of copying (btrfs, XFS, bcachefs, ZFS, OCFS2) or copies
/// on the server (NFS): there a copy costs neither page cache nor device
/// writes, so it is better than direct I/O.
pub fn copies_without_data(file: &File) -> bool {
    const REFLINK_OR_SERVER_COPY: [u64; 6] = [
        0x9123_683E, // btrfs
        0x5846_5342, // XFS
        0xCA45_1A4E, // bcachefs
        0x2FC1_2FC1, // ZFS
        0x7461_636F, // OCFS2
        0x6969,      // NFS
    ];
    rustix::fs::fstatfs(file).is_ok_and(|s| REFLINK_OR_SERVER_COPY.contains(&(s.f_type as u64)))
}

/// Read into `buf` at `offset` until it is full or the file ends; the
/// number of bytes read.
fn read_up_to(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], offset + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_buffers_are_aligned() {
        for align in [512, 4096, 65536] {
            let mut b = AlignedBuf::new(10_000, align);
            assert_eq!(b.as_slice().as_ptr() as usize % align, 0);
            assert_eq!(b.len(), 10_000);
            b.as_mut_slice()[9_999] = 1;
        }
    }

    /// On a filesystem with direct I/O (the test directory is beside the
    /// crate, on the disk the build is on, not a tmpfs), writes and reads
    /// at any offset come back as written. Where the build's filesystem
    /// has no direct I/O, `reopen` declines and there is nothing to test.
    #[test]
    fn direct_writes_and_reads_round_trip() {
        let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let p = dir.path().join("d.raw");
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&p)
            .unwrap();
        let Some(w) = Direct::reopen(&f, true) else {
            eprintln!("SKIP: no direct I/O on {}", p.display());
            return;
        };
        let a = w.offset_align() as usize;
        let mut buf = AlignedBuf::new(3 * a, w.mem_align());
        for (i, x) in buf.as_mut_slice().iter_mut().enumerate() {
            *x = (i * 7 % 251) as u8;
        }
        w.write_aligned(buf.as_slice(), a as u64).unwrap();
        f.set_len(5 * a as u64 - 100).unwrap();
        let r = Direct::reopen(&f, false).expect("the file reopens for reading");
        // Unaligned start and length, across the written blocks.
        let mut got = vec![0u8; 2 * a + 17];
        r.read_exact_at(&mut got, a as u64 + 13).unwrap();
        assert_eq!(&got[..], &buf.as_slice()[13..13 + 2 * a + 17]);
        // The file's last bytes (a hole), then past its end.
        let mut tail = vec![1u8; 50];
        r.read_exact_at(&mut tail, 5 * a as u64 - 150).unwrap();
        assert!(tail.iter().all(|&x| x == 0));
        let e = r.read_exact_at(&mut tail, 5 * a as u64 - 20).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }
}
