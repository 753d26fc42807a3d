//! QCOW2 (qemu docs/interop/qcow2.txt).
//!
//! Supported: writing version 3 images (64 KiB clusters, 16-bit
//! refcounts, zlib, no backing file, no snapshots; zero clusters left
//! unallocated; optional per-cluster compression as `qemu-img convert -c`),
//! reading versions 2 and 3 (cluster sizes 512 B to 2 MiB, compressed and
//! "reads as zero" clusters), and a deep verifier that recomputes the
//! refcounts. Not supported: backing files, encryption, external data
//! files, extended L2 entries, zstd; images marked corrupt are refused by
//! the reader (the verifier reports them). The dirty bit is accepted by
//! the reader and reported by the verifier.
//!
//! Oracles: `qemu-img check`, `qemu-img info`, `qemu-img compare`, images
//! made by `qemu-img convert`, the dfvfs corpus image.

use std::fs::File;
use std::path::Path;

use crate::disk::VirtualDisk;
use crate::error::Result;
use crate::formats::table::{Output, Probe};
use crate::formats::WriteOptions;

pub mod reader;
pub mod verify;
pub mod wire;
pub mod writer;

pub use reader::Qcow2Disk;
pub use wire::QcowHeader;

/// Write `disk` as a QCOW2 v3 image into `out` (positioned writes; zero
/// clusters unallocated). With `compress`, clusters are deflated on up to
/// `jobs` threads; the output does not depend on `jobs`.
pub fn write(
    disk: &dyn VirtualDisk,
    out: &File,
    opts: &WriteOptions,
    compress: bool,
    jobs: usize,
) -> Result<()> {
    writer::write(disk, out, opts, compress, jobs)
}

/// Open a QCOW2 image (v2 or v3) for random-access reading.
pub fn open(file: File) -> Result<Box<dyn VirtualDisk>> {
    reader::open(file)
}

pub use verify::verify;

/// The format table's detector: the magic `QFI\xfb`.
pub fn detect(p: &Probe<'_>) -> Result<bool> {
    Ok(p.head.starts_with(&wire::MAGIC))
}

/// The format table's opener.
pub fn open_disk(file: File, _len: u64, _path: &Path) -> Result<Box<dyn VirtualDisk>> {
    open(file)
}

/// The format table's writer: QCOW2 v3, clusters deflated when
/// `out.compress`.
pub fn write_artifact(disk: &dyn VirtualDisk, out: &Output<'_>, opts: &WriteOptions) -> Result<()> {
    write(disk, out.file, opts, out.compress, out.jobs)
}
