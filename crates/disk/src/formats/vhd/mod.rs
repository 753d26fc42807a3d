//! Fixed VHD (Microsoft Virtual Hard Disk Image Format Specification,
//! footer only). STUB: to be implemented.

use std::fs::File;

use crate::disk::VirtualDisk;
use crate::error::{Error, Result};
use crate::formats::WriteOptions;
use crate::verify::Report;

/// Write `disk` as a fixed VHD into `out` (positioned writes; holes stay holes).
pub fn write_fixed(_disk: &dyn VirtualDisk, _out: &File, _opts: &WriteOptions) -> Result<()> {
    Err(Error::unsupported("vhd writer not implemented"))
}

/// Decode and check a VHD in full.
pub fn verify(_file: &File) -> Result<Report> {
    Err(Error::unsupported("vhd verifier not implemented"))
}
