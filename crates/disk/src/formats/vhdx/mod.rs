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
use std::path::Path;

use crate::disk::VirtualDisk;
use crate::error::Result;
use crate::formats::table::{Output, Probe};
use crate::formats::WriteOptions;

pub mod log;
mod metadata;
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

pub use verify::verify;

/// The format table's detector: the file type identifier `vhdxfile`.
pub fn detect(p: &Probe<'_>) -> Result<bool> {
    Ok(p.head.starts_with(&wire::FILE_SIGNATURE))
}

/// The format table's opener.
pub fn open_disk(file: File, _len: u64, _path: &Path) -> Result<Box<dyn VirtualDisk>> {
    open(file)
}

/// The format table's writer: a dynamic VHDX.
pub fn write_artifact(disk: &dyn VirtualDisk, out: &Output<'_>, opts: &WriteOptions) -> Result<()> {
    write_dynamic(disk, out.file, opts)
}

/// Open a VHDX (dynamic or fixed) for random-access reading.
pub fn open(file: File) -> Result<Box<dyn VirtualDisk>> {
    reader::open(file)
}
