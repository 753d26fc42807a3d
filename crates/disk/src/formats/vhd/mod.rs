//! VHD (Microsoft Virtual Hard Disk Image Format Specification 1.0).
//!
//! Supported: writing *fixed* disks (the disk's bytes followed by a 512-byte
//! footer, holes kept), reading fixed and dynamic disks (footer copy,
//! "cxsparse" header, BAT, blocks), and a deep verifier. Not supported:
//! differencing disks, the 511-byte footers of very old Virtual PC.
//!
//! The footer is what `qemu-img convert -O vpc -o subformat=fixed,force_size`
//! writes (creator `qem2`, geometry 65535/16/255, current = original =
//! input size), so qemu 7.2 and newer report the exact input size; see
//! [`wire`]. Oracles: `qemu-img info -f vpc --output=json`, `qemu-img
//! compare -f raw -F vpc`, the dfvfs and qemu corpus VHDs. (`qemu-img
//! check` does not support vpc.)

use std::fs::File;

use crate::disk::VirtualDisk;
use crate::error::Result;
use crate::formats::WriteOptions;
use crate::verify::Report;

pub mod reader;
pub mod verify;
pub mod wire;
pub mod writer;

pub use reader::DynamicVhd;
pub use wire::{VhdDynamicHeader, VhdFooter};

/// Write `disk` as a fixed VHD into `out` (positioned writes; holes stay holes).
pub fn write_fixed(disk: &dyn VirtualDisk, out: &File, opts: &WriteOptions) -> Result<()> {
    writer::write_fixed(disk, out, opts)
}

/// Decode and check a VHD in full.
pub fn verify(file: &File) -> Result<Report> {
    verify::verify(file)
}

/// Open a VHD (fixed or dynamic) for random-access reading.
pub fn open(file: File) -> Result<Box<dyn VirtualDisk>> {
    reader::open(file)
}
