//! Disk image formats, one folder each: `wire` (on-disk structures),
//! `writer`, `reader`, `verify`, and one row each in the format table
//! ([`table`]), through which every other module detects, opens,
//! inspects, writes and verifies them.
//!
//! [`detect`] tells the format from content, never from the file name,
//! and refuses what cloudimg does not read (compressed data, VDI, QED, ...:
//! [`foreign`]) in one line saying what to do.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use serde::Serialize;

use crate::error::{Error, IoContext, Result};

pub use table::{spec, FormatSpec, Output, Reading, Verified, VerifyOptions};

pub mod foreign;
pub mod gcp;
pub mod open;
pub mod ova;
pub mod qcow2;
pub mod raw;
pub mod table;
pub mod vhd;
pub mod vhdx;
pub mod vmdk;

/// A format cloudimg can recognise.
///
/// It serializes as its [`name`](Format::name), the one spelling of a
/// format in messages and JSON documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// A raw disk image (anything not recognised as another format, nor
    /// refused as compressed data or an image format cloudimg does not
    /// read: see [`foreign`]).
    Raw,
    /// A fixed VHD: the disk's bytes followed by a 512-byte footer.
    VhdFixed,
    /// A dynamic VHD (footer copy at the start).
    VhdDynamic,
    /// A hosted sparse VMDK extent (stream-optimized or monolithic sparse).
    Vmdk,
    /// A VMDK text descriptor without data.
    VmdkDescriptor,
    /// A gzip file (the GCP `disk.raw.tar.gz` shape is checked inside).
    Gzip,
    /// An uncompressed tar archive.
    Tar,
    /// An OVA: a tar whose first member is an OVF descriptor.
    Ova,
    /// A QCOW2 image.
    Qcow2,
    /// A VHDX image.
    Vhdx,
}

impl Serialize for Format {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl Format {
    /// Its name (`raw`, `vhd-fixed`, `vhd-dynamic`, `vmdk`,
    /// `vmdk-descriptor`, `tar-gz`, `tar`, `ova`, `qcow2`, `vhdx`).
    pub fn name(self) -> &'static str {
        self.spec().name
    }
    /// Its row in the format table.
    pub fn spec(self) -> &'static FormatSpec {
        table::spec(self)
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Detect the format of an open file from its first and last sectors.
/// A file cloudimg does not read (compressed data, a VDI, ...; see
/// [`foreign`]) is an error saying what it is and what to do.
pub fn detect_file(file: &File) -> Result<Format> {
    detect_file_named(file, None)
}

/// [`detect_file`], naming `path` in the command a refusal suggests:
/// the format table's detectors see the file's size, first and last
/// sectors ([`table::Probe`]).
fn detect_file_named(file: &File, path: Option<&Path>) -> Result<Format> {
    let len = file.metadata().ctx("reading file metadata")?.len();
    let mut head = [0u8; 512];
    let n = read_up_to(file, &mut head, 0)?;
    let mut tail = [0u8; 512];
    let has_tail = len >= 512 && read_up_to(file, &mut tail, len - 512)? == 512;
    table::detect_probe(&table::Probe {
        file,
        path,
        len,
        head: &head[..n],
        tail: has_tail.then_some(&tail[..]),
    })
}

/// Detect the format of the file at `path`.
pub fn detect(path: &Path) -> Result<Format> {
    let (file, _) = open_input(path)?;
    detect_file_named(&file, Some(path)).map_err(|e| e.with_path(path))
}

/// Open the input at `path` read-only: a regular file, or a one-line
/// refusal naming it (a directory, a FIFO, a device: see
/// [`crate::io::open_input`]).
pub fn open_input(path: &Path) -> Result<(File, std::fs::Metadata)> {
    crate::io::open_input(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::IsADirectory | std::io::ErrorKind::InvalidInput => {
                Error::invalid_input(e.to_string())
            }
            _ => Error::io("opening", e),
        })
        .map_err(|e| e.with_path(path))
}

/// Open an existing artifact or image for reading and detect its format:
/// a directory or an empty file is refused with an error naming it.
pub fn open_detect(path: &Path) -> Result<(File, std::fs::Metadata, Format)> {
    let (file, meta) = open_input(path)?;
    if meta.len() == 0 {
        return Err(Error::invalid_input("is empty").with_path(path));
    }
    let format = detect_file_named(&file, Some(path)).map_err(|e| e.with_path(path))?;
    Ok((file, meta, format))
}

/// Read as many bytes as the file has at `offset`, up to `buf.len()`.
pub(crate) fn read_up_to(file: &File, buf: &mut [u8], offset: u64) -> Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read_at(&mut buf[n..], offset + n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io("reading", e)),
        }
    }
    Ok(n)
}

/// Settings shared by every writer, all derived from the inputs so that
/// outputs are reproducible.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteOptions {
    /// Timestamp (Unix seconds) written where a format wants one:
    /// `SOURCE_DATE_EPOCH`, or 0.
    pub mtime: u64,
    /// Seed for identifiers (VHD UUID, VMDK CID): derived from the input,
    /// never random.
    pub seed: [u8; 32],
}
