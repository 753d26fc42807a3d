//! VMware sparse VMDK: the stream-optimized subset written for AWS VM
//! Import and VMware, and a reader for hosted sparse extents
//! (stream-optimized and monolithic sparse).
//!
//! Spec: VMware "Virtual Disk Format 5.0" (hosted sparse and
//! stream-optimized compressed sparse extents), open-vmdk `vmdk/sparse.c`,
//! qemu `block/vmdk.c`; facts collected in shared/reference/cloud-formats.md
//! §4b. Oracles: `qemu-img info`/`check`/`compare`/`convert`, and corpus
//! files written by VMware (vmdk-rs) and qemu-img (dfvfs).
//!
//! - [`write_stream_optimized`]: header (v3, GD at end), embedded
//!   descriptor, deflated grains, grain tables, grain directory, footer,
//!   end-of-stream marker.
//! - [`open`]: a [`VirtualDisk`](crate::VirtualDisk) over any hosted
//!   sparse extent.
//! - [`verify`]: decodes everything and reports every finding.

pub mod descriptor;
mod reader;
mod stream;
pub mod verify;
pub mod wire;
mod writer;

use std::fs::File;
use std::path::Path;

use crate::disk::VirtualDisk;
use crate::error::{Error, Result};
use crate::formats::table::{self, Inspected, Output, Probe, Verified, VerifyOptions};
use crate::formats::WriteOptions;

pub use reader::{open, VmdkReader};
pub use verify::verify;
pub use writer::{
    default_jobs, write_stream_optimized, write_stream_optimized_jobs, COMPRESSION_LEVEL,
};

/// The format table's detector: a hosted sparse extent's magic.
pub fn detect(p: &Probe<'_>) -> Result<bool> {
    Ok(p.head.starts_with(&wire::MAGIC))
}

/// The format table's detector of a text descriptor without data.
pub fn detect_descriptor(p: &Probe<'_>) -> Result<bool> {
    Ok(descriptor::is_text_descriptor(p.head))
}

/// The format table's opener.
pub fn open_disk(file: File, _len: u64, _path: &Path) -> Result<Box<dyn VirtualDisk>> {
    Ok(Box::new(open(file)?))
}

/// The format table's inspection: the sparse extent header's facts and
/// how many grains are allocated.
pub fn inspect(file: File, _len: u64, _path: &Path) -> Result<Inspected> {
    let r = open(file)?;
    let h = r.header();
    let mut d = serde_json::Map::new();
    d.insert("version".into(), h.version.into());
    d.insert("flags".into(), format!("{:#x}", h.flags).into());
    d.insert("capacity_sectors".into(), h.capacity.into());
    d.insert("grain_size_sectors".into(), h.grain_size.into());
    d.insert("compress_algorithm".into(), h.compress_algorithm.into());
    d.insert("gd_offset".into(), h.gd_offset.into());
    d.insert("grains_allocated".into(), r.allocated_grains().into());
    d.insert("grains_total".into(), r.grain_count().into());
    Ok(Inspected {
        details: d,
        virtual_size: None,
        disk: Some(Box::new(r)),
    })
}

/// The format table's writer: a stream-optimized VMDK whose descriptor
/// names `out.file_name`.
pub fn write_artifact(disk: &dyn VirtualDisk, out: &Output<'_>, opts: &WriteOptions) -> Result<()> {
    table::through_buffer(out.file, |w| {
        write_stream_optimized_jobs(disk, w, out.file_name, opts, out.jobs).map(drop)
    })
}

/// The format table's opener of a text descriptor: refused, saying what
/// to give instead.
pub fn refuse_descriptor(file: File, _len: u64, _path: &Path) -> Result<Box<dyn VirtualDisk>> {
    Err(Error::unsupported(
        crate::formats::open::descriptor_refusal(&file)?,
    ))
}

/// The format table's verifier of a text descriptor: refused, as opening.
pub fn verify_descriptor(file: &File, _: VerifyOptions<'_>) -> Result<Verified> {
    Err(Error::unsupported(
        crate::formats::open::descriptor_refusal(file)?,
    ))
}
