//! Stream-optimized VMDK. STUB: to be implemented.

use std::fs::File;
use std::io::Write;

use crate::disk::VirtualDisk;
use crate::error::{Error, Result};
use crate::formats::WriteOptions;
use crate::verify::Report;

/// Write `disk` as a stream-optimized VMDK to `out`; `file_name` goes in
/// the descriptor's extent line.
pub fn write_stream_optimized<W: Write>(
    _disk: &dyn VirtualDisk,
    _out: W,
    _file_name: &str,
    _opts: &WriteOptions,
) -> Result<W> {
    Err(Error::unsupported("vmdk writer not implemented"))
}

/// Decode and check a VMDK in full.
pub fn verify(_file: &File) -> Result<Report> {
    Err(Error::unsupported("vmdk verifier not implemented"))
}
