//! Raw disk images: the bytes of the disk and nothing else.
//!
//! Writing copies data extents with positioned writes and leaves zero
//! extents as holes (the file is sized with `set_len`), so a sparse input
//! gives an equally sparse output. Oracle: `cmp`/`qemu-img compare`.

use std::fs::File;
use std::os::unix::fs::FileExt;

use crate::disk::{for_each_chunk, Chunk, ExtentKind, VirtualDisk};
use crate::error::{Error, IoContext, Result};
use crate::io::{feed_disk, DiskDigest, RawFile};
use crate::verify::Report;

use super::Format;

/// Copy `disk` into `out`, which must be empty; zero extents stay holes.
pub fn write(disk: &dyn VirtualDisk, out: &File) -> Result<()> {
    write_data(disk, out)?;
    out.set_len(disk.size()).ctx("setting the file size")?;
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

/// "Decode" a raw image: its content is its bytes. The partition table, if
/// any, is checked by the caller ([`crate::layout`]).
pub fn verify(file: &File) -> Result<Report> {
    verify_with(file, DiskDigest::new())
}

/// [`verify`], feeding the content to `digest` (which may compare it with
/// an expected disk instead of hashing it).
pub fn verify_with(file: &File, mut digest: DiskDigest<'_>) -> Result<Report> {
    let len = file.metadata().ctx("reading metadata")?.len();
    let f = file.try_clone().ctx("opening")?;
    let disk = RawFile::window(f, "", 0, len);
    let mut report = Report::new(Format::Raw, len);
    report.virtual_size = Some(len);
    if len % 512 != 0 {
        report.push(crate::verify::Finding::whole(format!(
            "size {len} is not a multiple of 512 bytes"
        )));
    }
    feed_disk(&disk, &mut digest).map_err(|e| Error::io("reading", e))?;
    report.virtual_sha256 = Some(digest.finish());
    Ok(report)
}
