//! Raw disk images: the bytes of the disk and nothing else.
//!
//! Writing copies data extents with positioned writes and leaves zero
//! extents as holes (the file is sized with `set_len`), so a sparse input
//! gives an equally sparse output. Oracle: `cmp`/`qemu-img compare`.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::disk::{for_each_chunk, Chunk, ExtentKind, VirtualDisk};
use crate::error::{Error, IoContext, Result};
use crate::io::direct::{self, AlignedBuf, Direct};
use crate::io::{feed_disk, RawFile};
use crate::verify::Report;

use super::table::{Output, Verified, VerifyOptions};
use super::{Format, WriteOptions};

/// Copy `disk` into `out`, which must be empty; zero extents stay holes.
pub fn write(disk: &dyn VirtualDisk, out: &File) -> Result<()> {
    write_with(disk, out, None)
}

/// [`write`], the data going through `direct` (a direct-I/O handle on
/// `out`) when given: see [`write_data_with`].
pub fn write_with(disk: &dyn VirtualDisk, out: &File, direct: Option<&Direct>) -> Result<()> {
    write_data_with(disk, out, direct)?;
    out.set_len(disk.size()).ctx("setting the file size")?;
    Ok(())
}

/// Copy the data extents of `disk` to the same offsets of `out`. With
/// `direct` (a direct-I/O handle on `out`, [`crate::io::direct`]), each
/// extent's aligned blocks are read into an aligned buffer and written to
/// the device, bypassing the page cache, and only its unaligned edges go
/// through `out`. Without, as [`write_data`].
pub fn write_data_with(disk: &dyn VirtualDisk, out: &File, direct: Option<&Direct>) -> Result<()> {
    let Some(direct) = direct else {
        return write_data(disk, out);
    };
    let a = direct.offset_align();
    let mut buf = AlignedBuf::new(direct::CHUNK, direct.mem_align());
    let cached = |from: u64, to: u64| -> Result<()> {
        if from < to {
            let mut b = vec![0u8; (to - from) as usize];
            disk.read_at(&mut b, from).ctx("reading the disk")?;
            out.write_all_at(&b, from).ctx("writing")?;
        }
        Ok(())
    };
    let extents = disk.extents().ctx("listing the data extents")?;
    for e in extents.iter().filter(|e| e.kind == ExtentKind::Data) {
        let (start, end) = (e.offset, e.end());
        let (first, last) = (start.div_ceil(a) * a, end / a * a);
        if first >= last {
            cached(start, end)?;
            continue;
        }
        cached(start, first)?;
        let mut pos = first;
        while pos < last {
            let n = (last - pos).min(direct::CHUNK as u64) as usize;
            let b = &mut buf.as_mut_slice()[..n];
            disk.read_at(b, pos).ctx("reading the disk")?;
            direct.write_aligned(b, pos).ctx("writing")?;
            pos += n as u64;
        }
        cached(last, end)?;
    }
    Ok(())
}

/// Copy the data extents of `disk` to the same offsets of `out`, leaving
/// the rest untouched. A raw file is copied in the kernel.
pub fn write_data(disk: &dyn VirtualDisk, out: &File) -> Result<()> {
    if let Some(raw) = disk.as_raw_file() {
        let extents = disk.extents().ctx("listing the data extents")?;
        for e in extents.iter().filter(|e| e.kind == ExtentKind::Data) {
            raw.copy_range_to(out, e.offset, e.len)
                .ctx("copying data")?;
        }
        return Ok(());
    }
    for_each_chunk(disk, |offset, chunk| -> Result<()> {
        if let Chunk::Data(b) = chunk {
            out.write_all_at(b, offset).ctx("writing")?;
        }
        Ok(())
    })
}

/// "Decode" a raw image, reading it as `opts.from` says: its content is
/// its bytes, handed back for the GPT check.
pub fn verify(file: &File, opts: VerifyOptions<'_>) -> Result<Verified> {
    let mut digest = opts.digest;
    let len = file.metadata().ctx("reading metadata")?.len();
    let f = file.try_clone().ctx("opening")?;
    let disk = opts.from.raw_file(RawFile::window(f, "", 0, len));
    let mut report = Report::new(Format::Raw, len);
    report.virtual_size = Some(len);
    if len % 512 != 0 {
        report.push(crate::verify::Finding::whole(format!(
            "size {len} is not a multiple of 512 bytes"
        )));
    }
    feed_disk(&disk, &mut digest).map_err(|e| Error::io("reading", e))?;
    report.virtual_sha256 = Some(digest.finish());
    Ok(Verified::with_disk(report, disk))
}

/// The format table's opener: the file's bytes.
pub fn open_disk(file: File, len: u64, path: &Path) -> Result<Box<dyn VirtualDisk>> {
    Ok(Box::new(RawFile::window(file, path, 0, len)))
}

/// The format table's writer: the disk's bytes, through `out.direct` when
/// given.
pub fn write_artifact(disk: &dyn VirtualDisk, out: &Output<'_>, _: &WriteOptions) -> Result<()> {
    write_with(disk, out.file, out.direct)
}
