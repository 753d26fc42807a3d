//! The GCP import shape: a gzip'd GNU oldgnu tar holding one member,
//! `disk.raw`. STUB: to be implemented.

use std::fs::File;
use std::io::Write;

use crate::disk::VirtualDisk;
use crate::error::{Error, Result};
use crate::formats::WriteOptions;
use crate::verify::Report;

/// Write `disk` (already grown to whole GiB) as `disk.raw` in a gzip'd
/// oldgnu tar to `out`.
pub fn write_tar_gz<W: Write>(_disk: &dyn VirtualDisk, _out: W, _opts: &WriteOptions) -> Result<W> {
    Err(Error::unsupported("gcp writer not implemented"))
}

/// Decode and check a GCP tarball in full.
pub fn verify(_file: &File) -> Result<Report> {
    Err(Error::unsupported("gcp verifier not implemented"))
}
