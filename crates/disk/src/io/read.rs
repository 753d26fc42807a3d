//! Positioned reads that say what went wrong in words a user can act on.

use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::path::Path;

use rustix::fs::OFlags;

/// Open an input read-only, refusing anything but a regular file: a
/// directory ("is a directory"), a FIFO, socket or device ("is a FIFO, not
/// a regular file", ...). The open itself never waits: `O_NONBLOCK` keeps
/// a FIFO without a writer from hanging it (it is cleared again before
/// the file is used), `O_NOCTTY` keeps a terminal from becoming ours.
pub fn open_input(path: &Path) -> io::Result<(File, Metadata)> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags((OFlags::NONBLOCK | OFlags::NOCTTY).bits() as i32)
        .open(path)?;
    let meta = file.metadata()?;
    let ft = meta.file_type();
    let what = if ft.is_file() {
        rustix::fs::fcntl_setfl(&file, OFlags::empty())?;
        return Ok((file, meta));
    } else if ft.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::IsADirectory,
            "is a directory",
        ));
    } else if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_block_device() {
        "a block device (copy it to a file first)"
    } else if ft.is_char_device() {
        "a character device"
    } else {
        "not a file"
    };
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("is {what}, not a regular file"),
    ))
}

/// Read exactly `buf.len()` bytes at `offset`. Reading past the end of the
/// file (a truncated file, or an offset the file's own tables got wrong)
/// fails with "N bytes at byte O run past the end of the file (L bytes)"
/// rather than the standard library's "failed to fill whole buffer".
pub fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    file.read_exact_at(buf, offset).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            let len = file
                .metadata()
                .map(|m| format!(" ({} bytes)", m.len()))
                .unwrap_or_default();
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "{} bytes at byte {offset} run past the end of the file{len}",
                    buf.len()
                ),
            )
        } else {
            e
        }
    })
}
