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

use crate::disk::VirtualDisk;
use crate::error::Result;
use crate::formats::WriteOptions;
use crate::io::DiskDigest;
use crate::verify::Report;

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

/// Decode and check a QCOW2 image in full.
pub fn verify(file: &File) -> Result<Report> {
    verify::verify(file)
}

/// [`verify`], feeding the decoded disk to `digest`.
pub fn verify_with(file: &File, digest: DiskDigest<'_>) -> Result<Report> {
    verify::verify_with(file, digest)
}
