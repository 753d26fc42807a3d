//! Disk image formats, one folder each: `wire` (on-disk structures),
//! `writer`, `reader`, `verify`.
//!
//! [`detect`] tells the format from content, never from the file name,
//! and refuses what cloudimg does not read (compressed data, VDI, QED, ...:
//! [`foreign`]) in one line saying what to do.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use serde::Serialize;

use crate::error::{Error, IoContext, Result};

pub mod foreign;
pub mod gcp;
pub mod open;
pub mod ova;
pub mod qcow2;
pub mod raw;
pub mod vhd;
pub mod vhdx;
pub mod vmdk;

/// A format cloudimg can recognise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
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

impl Format {
    /// A short human name.
    pub fn name(self) -> &'static str {
        match self {
            Format::Raw => "raw",
            Format::VhdFixed => "vhd (fixed)",
            Format::VhdDynamic => "vhd (dynamic)",
            Format::Vmdk => "vmdk",
            Format::VmdkDescriptor => "vmdk descriptor",
            Format::Gzip => "gzip (tar.gz)",
            Format::Tar => "tar",
            Format::Ova => "ova",
            Format::Qcow2 => "qcow2",
            Format::Vhdx => "vhdx",
        }
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

/// [`detect_file`], naming `path` in the command a refusal suggests.
fn detect_file_named(file: &File, path: Option<&Path>) -> Result<Format> {
    let refuse = |f: foreign::Foreign| Err(Error::unsupported(f.refusal(path)));
    let len = file.metadata().ctx("reading file metadata")?.len();
    let mut head = [0u8; 512];
    let n = read_up_to(file, &mut head, 0)?;
    let head = &head[..n];
    if head.starts_with(foreign::GZIP_MAGIC) && !foreign::looks_partitioned(head) {
        if !foreign::gzip_holds_tar(file) {
            return refuse(foreign::Foreign::Gzip);
        }
        return Ok(Format::Gzip);
    }
    if head.starts_with(&vmdk::wire::MAGIC) {
        return Ok(Format::Vmdk);
    }
    if vmdk::descriptor::is_text_descriptor(head) {
        return Ok(Format::VmdkDescriptor);
    }
    if head.starts_with(&qcow2::wire::MAGIC) {
        return Ok(Format::Qcow2);
    }
    if head.starts_with(&vhdx::wire::FILE_SIGNATURE) {
        return Ok(Format::Vhdx);
    }
    if head.starts_with(&vhd::wire::FOOTER_COOKIE) {
        return Ok(Format::VhdDynamic);
    }
    if len >= 512 {
        let mut tail = [0u8; 512];
        read_up_to(file, &mut tail, len - 512)?;
        if tail.starts_with(&vhd::wire::FOOTER_COOKIE) {
            return Ok(Format::VhdFixed);
        }
    }
    if head.len() >= 263 && &head[257..262] == b"ustar" {
        let name = &head[..100];
        let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(100)];
        if name.to_ascii_lowercase().ends_with(b".ovf") {
            return Ok(Format::Ova);
        }
        return Ok(Format::Tar);
    }
    match foreign::sniff(head) {
        Some(f) => refuse(f),
        None => Ok(Format::Raw),
    }
}

/// Detect the format of the file at `path`.
pub fn detect(path: &Path) -> Result<Format> {
    let file = File::open(path)
        .ctx("opening")
        .map_err(|e| e.with_path(path))?;
    detect_file_named(&file, Some(path)).map_err(|e| e.with_path(path))
}

/// Open an existing artifact or image for reading and detect its format:
/// a directory or an empty file is refused with an error naming it.
pub fn open_detect(path: &Path) -> Result<(File, std::fs::Metadata, Format)> {
    let file = File::open(path)
        .ctx("opening")
        .map_err(|e| e.with_path(path))?;
    let meta = file
        .metadata()
        .ctx("opening")
        .map_err(|e| e.with_path(path))?;
    if meta.is_dir() {
        return Err(Error::invalid_input("is a directory").with_path(path));
    }
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
