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
pub mod verify;
pub mod wire;
mod writer;

pub use reader::{open, VmdkReader};
pub use verify::{verify, verify_with};
pub use writer::{
    default_jobs, write_stream_optimized, write_stream_optimized_jobs, COMPRESSION_LEVEL,
};
