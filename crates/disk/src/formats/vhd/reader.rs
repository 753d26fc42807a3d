//! Reading a VHD as a [`VirtualDisk`]: fixed disks are a window of the
//! file; dynamic disks are read through their block allocation table.
//!
//! Like qemu, the reader ignores the per-block sector bitmaps (an allocated
//! block is read in full) and the dynamic header's checksum, which
//! [`verify()`](super::verify()) reports. The footer is chosen as qemu
//! does (the start copy first), and the reader refuses what qemu refuses
//! or would read otherwise than other tools (see `check_footer`).

use std::fs::File;
use std::io;

use crate::disk::{coalesce, eof_error, Extent, ExtentKind, VirtualDisk, SECTOR_SIZE};
use crate::error::{Error, IoContext, Result};
use crate::io::RawFile;

use super::wire::*;

/// Largest dynamic block size accepted (qemu's limit is the same order).
pub const MAX_BLOCK_SIZE: u32 = 256 << 20;

/// Where the footer was found and what it says.
#[derive(Debug, Clone)]
pub struct FooterAt {
    /// Byte offset of the footer in the file.
    pub offset: u64,
    /// The raw bytes.
    pub bytes: [u8; 512],
    /// Decoded.
    pub footer: VhdFooter,
}

/// Read the footer as block/vpc.c vpc_open chooses it: the copy at the
/// start of the file when it has the "conectix" cookie (dynamic disks
/// begin with one), else the footer at the end.
pub fn read_footer(file: &File) -> Result<FooterAt> {
    let len = file.metadata().ctx("reading metadata")?.len();
    if len < FOOTER_SIZE {
        return Err(Error::invalid_format(format!(
            "file of {len} bytes is too short for a VHD footer"
        )));
    }
    let mut bytes = [0u8; 512];
    crate::io::read_exact_at(file, &mut bytes, 0).ctx("reading the VHD footer copy")?;
    let mut at = 0;
    if bytes[..8] != FOOTER_COOKIE {
        crate::io::read_exact_at(file, &mut bytes, len - FOOTER_SIZE)
            .ctx("reading the VHD footer")?;
        at = len - FOOTER_SIZE;
    }
    Ok(FooterAt {
        offset: at,
        footer: VhdFooter::parse(&bytes),
        bytes,
    })
}

/// Refuse what qemu 7.2's block/vpc.c vpc_open refuses or would read
/// otherwise than other tools, for the footer `at` that [`read_footer`]
/// chose in the `len`-byte `file`: a start copy that differs from the
/// footer at the end (qemu follows the start copy, other readers the end
/// one), a dynamic disk without its start copy or a fixed one with one
/// (qemu picks its reading by where the footer is, not by the disk type),
/// a footer checksum mismatch ("Incorrect header checksum"), a size qemu
/// versions disagree on (unknown creator whose geometry and current size
/// differ: qemu 7.2 takes the geometry, 10.0 the current size), and a
/// disk above 2040 GiB.
fn check_footer(file: &File, at: &FooterAt, len: u64) -> Result<()> {
    let f = &at.footer;
    let field = |o: usize| at.offset + o as u64;
    if at.offset == 0 && len > FOOTER_SIZE {
        let mut tail = [0u8; 512];
        crate::io::read_exact_at(file, &mut tail, len - FOOTER_SIZE)
            .ctx("reading the VHD footer")?;
        if tail[..8] == FOOTER_COOKIE && tail != at.bytes {
            return Err(Error::corrupt(format!(
                "the footer copy at the start differs from the footer at byte {}: \
                 qemu reads the start copy, other tools the end one",
                len - FOOTER_SIZE
            ))
            .at(0));
        }
    }
    match (f.disk_type, at.offset == 0) {
        (DISK_TYPE_DYNAMIC, false) => {
            return Err(Error::corrupt(
                "dynamic VHD has no footer copy at the start of the file (qemu reads it as a fixed disk)",
            )
            .at(0))
        }
        (DISK_TYPE_FIXED, true) => {
            return Err(Error::corrupt(
                "fixed VHD starts with a footer copy (qemu reads it as a dynamic disk)",
            )
            .at(0))
        }
        _ => {}
    }
    let computed = checksum(&at.bytes, off::CHECKSUM);
    if computed != f.checksum {
        return Err(Error::corrupt(format!(
            "footer checksum mismatch (expected {computed:08x}, found {:08x})",
            f.checksum
        ))
        .at(field(off::CHECKSUM)));
    }
    let (old, new) = (f.virtual_size(), f.virtual_size_qemu10());
    if old != new {
        return Err(Error::corrupt(format!(
            "creator {:?} is not one qemu knows: qemu 7.2 sizes the disk by its geometry \
             {}/{}/{} ({old} bytes), qemu 10.0 by its current size ({new} bytes)",
            VhdFooter::fourcc(&f.creator_app),
            f.cylinders,
            f.heads,
            f.sectors_per_track
        ))
        .at(field(off::CREATOR_APP)));
    }
    if old > MAX_DISK_BYTES {
        return Err(Error::corrupt(format!(
            "disk of {old} bytes is larger than the {MAX_DISK_BYTES} bytes (2040 GiB) qemu opens"
        ))
        .at(field(off::CURRENT_SIZE)));
    }
    Ok(())
}

/// A dynamic VHD: blocks located through the BAT.
#[derive(Debug)]
pub struct DynamicVhd {
    file: File,
    size: u64,
    block_size: u64,
    /// Bytes of sector bitmap before each block's data.
    bitmap_size: u64,
    bat: Vec<u32>,
    /// The dynamic header.
    pub header: VhdDynamicHeader,
}

impl DynamicVhd {
    /// Open a dynamic VHD whose footer is `footer`, checking the header and
    /// BAT bounds before allocating anything.
    pub fn open(file: File, footer: &VhdFooter) -> Result<DynamicVhd> {
        let len = file.metadata().ctx("reading metadata")?.len();
        let ho = footer.data_offset;
        if ho
            .checked_add(DYNAMIC_HEADER_SIZE as u64)
            .is_none_or(|e| e > len)
        {
            return Err(Error::corrupt(format!(
                "dynamic header at offset {ho} lies outside the {len}-byte file"
            )));
        }
        let mut hb = [0u8; DYNAMIC_HEADER_SIZE];
        crate::io::read_exact_at(&file, &mut hb, ho).ctx("reading the dynamic header")?;
        let header = VhdDynamicHeader::parse(&hb);
        if header.cookie != DYNAMIC_COOKIE {
            return Err(Error::invalid_format(format!(
                "dynamic header cookie is {:?}, expected \"cxsparse\"",
                String::from_utf8_lossy(&header.cookie)
            ))
            .at(ho));
        }
        let bs = header.block_size;
        if !bs.is_power_of_two() || (bs as u64) < SECTOR_SIZE || bs > MAX_BLOCK_SIZE {
            return Err(Error::corrupt(format!(
                "dynamic block size {bs} is not a power of two between 512 and {MAX_BLOCK_SIZE}"
            ))
            .at(ho + 32));
        }
        let entries = header.max_table_entries as u64;
        // block/vpc.c vpc_open: the data area starts at the BAT's end
        // rounded up to a sector, and must lie inside the file.
        let bat_end = header
            .table_offset
            .checked_add(entries * 4)
            .and_then(|e| e.checked_next_multiple_of(SECTOR_SIZE));
        if bat_end.is_none_or(|e| e > len) {
            return Err(Error::corrupt(format!(
                "block allocation table of {entries} entries at offset {} runs past the end of the {len}-byte file",
                header.table_offset
            ))
            .at(ho + 28));
        }
        let size = footer.virtual_size();
        // As qemu ("Page table too small"): the BAT must cover the disk.
        // This also bounds the extent map by the BAT, itself bounded by
        // the file size.
        if entries * (bs as u64) < size {
            return Err(Error::corrupt(format!(
                "block allocation table covers {} bytes ({entries} blocks of {bs}), less than the {size}-byte disk",
                entries * bs as u64
            ))
            .at(ho + 28));
        }
        let mut raw = vec![0u8; (entries * 4) as usize];
        crate::io::read_exact_at(&file, &mut raw, header.table_offset)
            .ctx("reading the block allocation table")?;
        let bat: Vec<u32> = raw
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes(c.try_into().expect("4 bytes")))
            .collect();
        let bitmap_size = (bs as u64 / SECTOR_SIZE).div_ceil(8).div_ceil(SECTOR_SIZE) * SECTOR_SIZE;
        check_blocks_inside(&bat, bitmap_size + bs as u64, len, header.table_offset)?;
        Ok(DynamicVhd {
            file,
            size,
            block_size: bs as u64,
            bitmap_size,
            bat,
            header,
        })
    }

    /// File offset of the data of block `i`, or `None` when unallocated.
    fn block_data(&self, i: u64) -> Option<u64> {
        match self.bat.get(i as usize) {
            Some(&e) if e != BAT_UNALLOCATED => Some(e as u64 * SECTOR_SIZE + self.bitmap_size),
            _ => None,
        }
    }

    /// Number of allocated blocks.
    pub fn allocated_blocks(&self) -> usize {
        self.bat.iter().filter(|&&e| e != BAT_UNALLOCATED).count()
    }

    /// The BAT entries (sector offsets; 0xFFFFFFFF = unallocated).
    pub fn bat(&self) -> &[u32] {
        &self.bat
    }

    /// Bytes of sector bitmap before each block.
    pub fn bitmap_size(&self) -> u64 {
        self.bitmap_size
    }

    /// Block size in bytes.
    pub fn block_size(&self) -> u64 {
        self.block_size
    }
}

/// As block/vpc.c vpc_open ("free_data_block_offset points after the end
/// of file. The image has been truncated."): every allocated block, its
/// bitmap and data (`block_bytes`), must end inside the `len`-byte file.
fn check_blocks_inside(bat: &[u32], block_bytes: u64, len: u64, bat_offset: u64) -> Result<()> {
    for (i, &e) in bat.iter().enumerate() {
        if e != BAT_UNALLOCATED && e as u64 * SECTOR_SIZE + block_bytes > len {
            return Err(Error::corrupt(format!(
                "BAT entry {i} puts block {i} at sector {e}, whose {block_bytes} bytes run past the end of the {len}-byte file"
            ))
            .at(bat_offset + 4 * i as u64));
        }
    }
    Ok(())
}

impl VirtualDisk for DynamicVhd {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|&e| e <= self.size)
            .ok_or_else(|| eof_error(offset, buf.len(), self.size))?;
        let mut pos = offset;
        while pos < end {
            let block = pos / self.block_size;
            let within = pos % self.block_size;
            let n = (self.block_size - within).min(end - pos) as usize;
            let out = &mut buf[(pos - offset) as usize..(pos - offset) as usize + n];
            match self.block_data(block) {
                None => out.fill(0),
                Some(base) => {
                    crate::io::read_exact_at(&self.file, out, base + within).map_err(|e| {
                        io::Error::new(
                            e.kind(),
                            format!("block {block} at file offset {}: {e}", base + within),
                        )
                    })?
                }
            }
            pos += n as u64;
        }
        Ok(())
    }

    fn extents(&self) -> io::Result<Vec<Extent>> {
        let blocks = self.size.div_ceil(self.block_size);
        let ext = (0..blocks).map(|i| {
            let offset = i * self.block_size;
            Extent {
                offset,
                len: self.block_size.min(self.size - offset),
                kind: if self.block_data(i).is_some() {
                    ExtentKind::Data
                } else {
                    ExtentKind::Zero
                },
            }
        });
        Ok(coalesce(ext))
    }
}

/// Open a VHD (fixed or dynamic) for random-access reading. The virtual
/// size follows qemu's rule ([`VhdFooter::virtual_size`]). Differencing
/// disks are refused.
pub fn open(file: File) -> Result<Box<dyn VirtualDisk>> {
    let len = file.metadata().ctx("reading metadata")?.len();
    let at = read_footer(&file)?;
    let f = &at.footer;
    if f.cookie != FOOTER_COOKIE {
        return Err(Error::invalid_format(
            "not a VHD: no \"conectix\" footer at the end or the start of the file",
        ));
    }
    if f.disk_type == DISK_TYPE_FIXED || f.disk_type == DISK_TYPE_DYNAMIC {
        check_footer(&file, &at, len)?;
    }
    match f.disk_type {
        DISK_TYPE_FIXED => {
            let size = f.virtual_size();
            if size > len - FOOTER_SIZE {
                return Err(Error::corrupt(format!(
                    "fixed VHD claims {size} bytes of data but the file holds only {}",
                    len - FOOTER_SIZE
                )));
            }
            Ok(Box::new(RawFile::window(file, "", 0, size)))
        }
        DISK_TYPE_DYNAMIC => Ok(Box::new(DynamicVhd::open(file, f)?)),
        DISK_TYPE_DIFFERENCING => Err(Error::unsupported(
            "differencing VHDs (with a parent disk) are not supported",
        )),
        t => Err(Error::invalid_format(format!(
            "VHD disk type {t} is neither fixed (2) nor dynamic (3)"
        ))
        .at(at.offset + off::DISK_TYPE as u64)),
    }
}
