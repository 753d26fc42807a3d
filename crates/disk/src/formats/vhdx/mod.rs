//! VHDX (Microsoft "VHDX Format Specification" v1.00), the Hyper-V and
//! Azure-native format.
//!
//! Supported: writing *dynamic* disks (blocks holding data are stored, the
//! rest read as zero; what `qemu-img convert -O vhdx` makes, with GUIDs
//! from the seed instead of random ones), reading dynamic and fixed disks
//! of any block size with 512- or 4096-byte logical sectors, replaying a
//! pending log in memory (the file is never written), and a deep verifier.
//! Not supported: differencing disks (with a parent).
//!
//! Oracles: `qemu-img check -f vhdx`, `qemu-img info`, `qemu-img compare`,
//! images made by `qemu-img convert -O vhdx`, and the qemu corpus VHDXs
//! (one made by Hyper-V, one with a log to replay).

use std::fs::File;

use crate::disk::VirtualDisk;
use crate::error::Result;
use crate::formats::WriteOptions;
use crate::io::DiskDigest;
use crate::verify::Report;

pub mod log;
pub mod reader;
pub mod verify;
pub mod wire;
pub mod writer;

pub use reader::{VhdxDisk, VhdxImage};
pub use writer::VhdxLayout;

/// Write `disk` as a dynamic VHDX into `out` (positioned writes; zero data
/// stays holes). The layout is [`VhdxLayout::for_size`].
pub fn write_dynamic(disk: &dyn VirtualDisk, out: &File, opts: &WriteOptions) -> Result<()> {
    writer::write_dynamic(disk, out, opts)
}

/// Decode and check a VHDX in full.
pub fn verify(file: &File) -> Result<Report> {
    verify::verify(file)
}

/// [`verify`], feeding the decoded disk to `digest` in order.
pub fn verify_with(file: &File, digest: DiskDigest<'_>) -> Result<Report> {
    verify::verify_with(file, digest)
}

/// Open a VHDX (dynamic or fixed) for random-access reading.
pub fn open(file: File) -> Result<Box<dyn VirtualDisk>> {
    reader::open(file)
}
