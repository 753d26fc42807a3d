//! Positioned reads that say what went wrong in words a user can act on.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

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
