//! The format table: one row ([`FormatSpec`]) per [`Format`], holding
//! everything the rest of cloudimg needs to know about it: how it is
//! detected, opened as a [`VirtualDisk`], inspected cheaply, written,
//! verified in full, and handed to QEMU. `package`, `verify`, `inspect`,
//! `check` and `boot` all go through [`spec`]; nothing else matches on a
//! [`Format`] to dispatch.
//!
//! Adding a format: a folder under `formats/` whose `mod.rs` offers the
//! functions of the signatures below ([`OpenFn`], [`WriteFn`],
//! [`VerifyFn`], ...), a variant of [`Format`], and one row in [`TABLE`].
//!
//! The rows are in detection order: [`detect`](super::detect) asks each
//! row's detector in turn, refuses what [`foreign`](super::foreign)
//! recognises, and takes anything else as [`Format::Raw`].

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use crate::disk::VirtualDisk;
use crate::error::{Error, IoContext, Result};
use crate::io::direct::Direct;
use crate::io::{DiskDigest, ReadBack};
use crate::verify::{Finding, Report};

use super::{foreign, gcp, open, ova, qcow2, raw, vhd, vhdx, vmdk, Format, WriteOptions};

/// What a detector sees of a file: its size, first sector and last
/// sector (the ones a format's magic can be in).
pub struct Probe<'a> {
    /// The file, for a detector that must look further (a gzip's content).
    pub file: &'a File,
    /// Its path, when known: named in the command a refusal suggests.
    pub path: Option<&'a Path>,
    /// Its size in bytes.
    pub len: u64,
    /// Its first 512 bytes (fewer for a shorter file).
    pub head: &'a [u8],
    /// Its last 512 bytes, when it has that many.
    pub tail: Option<&'a [u8]>,
}

/// Whether a probed file is in the row's format. `Err` refuses the file
/// (e.g. a gzip that is not a GCP tarball), saying what to do instead.
pub type DetectFn = fn(&Probe<'_>) -> Result<bool>;

/// Open `file` (of `len` bytes, named `path` in errors of later reads) as
/// the disk it holds, for random-access reading.
pub type OpenFn = fn(file: File, len: u64, path: &Path) -> Result<Box<dyn VirtualDisk>>;

/// What `inspect` learns from a file without decoding it in full.
#[derive(Default)]
pub struct Inspected {
    /// Header facts, format-specific.
    pub details: serde_json::Map<String, serde_json::Value>,
    /// Size of the virtual disk, when known without a disk to read.
    pub virtual_size: Option<u64>,
    /// The disk (or as much of it as was decoded: its start, for the
    /// partition table), if the format holds one cloudimg reads.
    pub disk: Option<Box<dyn VirtualDisk>>,
}

/// Inspect `file` (of `len` bytes, named `path`) cheaply.
pub type InspectFn = fn(file: File, len: u64, path: &Path) -> Result<Inspected>;

/// Where and how a writer writes one artifact.
pub struct Output<'a> {
    /// The file to write: new and empty (created exclusively, under a
    /// temporary name).
    pub file: &'a File,
    /// The artifact's final file name (a stream-optimized VMDK's
    /// descriptor names its extent by it).
    pub file_name: &'a str,
    /// The image's name (an OVA names its members after it).
    pub image_name: &'a str,
    /// A directory for scratch files (an OVA's VMDK before it is archived):
    /// the output's own, for the same filesystem and free space.
    pub scratch_dir: &'a Path,
    /// A direct-I/O handle on `file`, used by the plain copies (raw, fixed
    /// VHD) when given ([`crate::io::direct`]).
    pub direct: Option<&'a Direct>,
    /// Threads for the compressing writers (at least 1); the bytes written
    /// do not depend on it.
    pub jobs: usize,
    /// Deflate clusters, where the format can (QCOW2, as `qemu-img convert
    /// -c`).
    pub compress: bool,
}

/// Write `disk` in the row's format to `out`, flushing it (but not
/// syncing it) before returning.
pub type WriteFn = fn(disk: &dyn VirtualDisk, out: &Output<'_>, opts: &WriteOptions) -> Result<()>;

/// How a verifier reads an artifact.
pub struct VerifyOptions<'a> {
    /// Where the decoded disk goes: hashed, or compared with the disk it
    /// must be.
    pub digest: DiskDigest<'a>,
    /// How a plain copy (raw, fixed VHD) is read back; the other formats
    /// read through the page cache.
    pub from: ReadBack,
    /// Check the decoded disk's GPT (`Layer::Disk` findings). The
    /// dispatcher ([`crate::verify::verify_file_with`]) does, once, on the
    /// disk the verifier hands back; a caller that has proven the disk
    /// identical to one it checked already can leave it out.
    pub check_disk: bool,
}

impl Default for VerifyOptions<'_> {
    fn default() -> Self {
        VerifyOptions {
            digest: DiskDigest::new(),
            from: ReadBack::PageCache,
            check_disk: true,
        }
    }
}

/// A decoded disk as a verifier hands it back, for the GPT check.
pub trait DecodedDisk: VirtualDisk {
    /// A read the GPT check made that this view of the disk could not
    /// serve, as a finding (a streamed disk keeps only its two ends).
    fn unserved_read(&self) -> Option<Finding> {
        None
    }
}

impl DecodedDisk for Box<dyn VirtualDisk> {}

/// What a format's verifier found: its report (container findings only)
/// and the decoded disk, when it was decoded in full, whose GPT the
/// dispatcher checks.
pub struct Verified {
    /// The report, without findings about the decoded disk's GPT.
    pub report: Report,
    /// The decoded disk, if decoding got that far.
    pub disk: Option<Box<dyn DecodedDisk>>,
}

impl Verified {
    /// A report with no decoded disk to check.
    pub fn report_only(report: Report) -> Self {
        Verified { report, disk: None }
    }
    /// A report and the disk it decoded.
    pub fn with_disk(report: Report, disk: impl VirtualDisk + 'static) -> Self {
        Verified {
            report,
            disk: Some(Box::new(Box::new(disk) as Box<dyn VirtualDisk>)),
        }
    }
}

/// Decode and check `file` in full; every problem is a finding, `Err`
/// only when it cannot be decoded at all.
pub type VerifyFn = fn(file: &File, opts: VerifyOptions<'_>) -> Result<Verified>;

/// Extract the disk QEMU boots from a container `file` into `out`;
/// return its size.
pub type ExtractFn = fn(file: &File, out: &File) -> Result<u64>;

/// What QEMU opens when given a file in a format (issue 13: nothing but
/// the one artifact may reach the guest).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QemuOpens {
    /// Only the file given: the format cannot name another file (raw).
    OnlyTheFile,
    /// Whatever the file names, too: a QCOW2's backing file, a VMDK's
    /// extents (and a descriptor in place of a sparse header), a
    /// differencing VHD's or VHDX's parent (QEMU's vhdx driver refuses
    /// those today, block/vhdx.c "until differencing files are supported";
    /// vpc's not checked [U]; both are kept here so that a QEMU that
    /// follows parents is still gated). QEMU is given such a file only
    /// after cloudimg's own reading has accepted it, which refuses every
    /// one of those.
    WhatItNames,
}

/// How QEMU reads a format.
#[derive(Clone, Copy)]
pub enum QemuDrive {
    /// The file itself, with this `format=` driver.
    File {
        /// QEMU's `format=` driver.
        driver: &'static str,
        /// What QEMU opens besides the file.
        opens: QemuOpens,
    },
    /// A member extracted first to `file_name` in a scratch directory,
    /// read with `driver`; `what` names the member in errors.
    Extracted {
        /// QEMU's `format=` driver for the extracted file.
        driver: &'static str,
        /// What QEMU opens besides the extracted file.
        opens: QemuOpens,
        /// Name of the extracted file.
        file_name: &'static str,
        /// What is extracted, for messages.
        what: &'static str,
        /// How.
        extract: ExtractFn,
    },
    /// QEMU is not given this format.
    None,
}

/// How the opener ([`open::open_file_disk`]) reads a format's file.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Reading {
    /// In place, through the row's opener, as a raw disk or a VHD: a read
    /// costs no decompression. A container is verified in full first.
    InPlace,
    /// Every read of the container costs decompression (or extraction):
    /// its verifier's one decode copies the disk to an unnamed scratch
    /// file as it checks it, and that copy is read.
    Decoded {
        /// Run the row's opener first, for its own refusals (it reads
        /// headers and tables only: VMDK, QCOW2). Not for an opener that
        /// would itself decode the whole file (a GCP tarball, an OVA).
        opener_first: bool,
    },
}

/// Everything cloudimg knows how to do with one format.
pub struct FormatSpec {
    /// The format.
    pub format: Format,
    /// Its name: lower case, no spaces (`raw`, `vhd-fixed`, `tar-gz`,
    /// ...), the one spelling of a format in text and in every JSON
    /// document (`"format"`).
    pub name: &'static str,
    /// Its detector; `None` for the fallback ([`Format::Raw`]).
    pub detect: Option<DetectFn>,
    /// Its opener (an error saying why, for what cloudimg does not read).
    pub open: OpenFn,
    /// Its cheap inspection; `None`: no header facts, the disk [`open`]
    /// gives.
    ///
    /// [`open`]: FormatSpec::open
    pub inspect: Option<InspectFn>,
    /// How [`open::open_file_disk`] reads it.
    pub reading: Reading,
    /// Its writer, for the formats cloudimg writes.
    pub write: Option<WriteFn>,
    /// Its verifier.
    pub verify: VerifyFn,
    /// How QEMU boots it.
    pub qemu: QemuDrive,
}

/// The row of `format`.
pub fn spec(format: Format) -> &'static FormatSpec {
    TABLE
        .iter()
        .find(|s| s.format == format)
        .expect("every format has a row in the table")
}

/// Every format, in detection order.
pub static TABLE: [FormatSpec; 10] = [
    FormatSpec {
        format: Format::Gzip,
        name: "tar-gz",
        detect: Some(gcp::detect),
        open: gcp::open,
        inspect: Some(gcp::inspect),
        reading: Reading::Decoded {
            opener_first: false,
        },
        write: Some(gcp::write_artifact),
        verify: gcp::verify,
        qemu: QemuDrive::Extracted {
            driver: "raw",
            opens: QemuOpens::OnlyTheFile,
            file_name: "disk.raw",
            what: "disk.raw",
            extract: gcp::extract_disk,
        },
    },
    FormatSpec {
        format: Format::Vmdk,
        name: "vmdk",
        detect: Some(vmdk::detect),
        open: vmdk::open_disk,
        inspect: Some(vmdk::inspect),
        reading: Reading::Decoded { opener_first: true },
        write: Some(vmdk::write_artifact),
        verify: vmdk::verify,
        qemu: QemuDrive::File {
            driver: "vmdk",
            opens: QemuOpens::WhatItNames,
        },
    },
    FormatSpec {
        format: Format::VmdkDescriptor,
        name: "vmdk-descriptor",
        detect: Some(vmdk::detect_descriptor),
        open: vmdk::refuse_descriptor,
        inspect: Some(no_disk),
        reading: Reading::InPlace,
        write: None,
        verify: vmdk::verify_descriptor,
        qemu: QemuDrive::None,
    },
    FormatSpec {
        format: Format::Qcow2,
        name: "qcow2",
        detect: Some(qcow2::detect),
        open: qcow2::open_disk,
        inspect: None,
        reading: Reading::Decoded { opener_first: true },
        write: Some(qcow2::write_artifact),
        verify: qcow2::verify,
        qemu: QemuDrive::File {
            driver: "qcow2",
            opens: QemuOpens::WhatItNames,
        },
    },
    FormatSpec {
        format: Format::Vhdx,
        name: "vhdx",
        detect: Some(vhdx::detect),
        open: vhdx::open_disk,
        inspect: None,
        reading: Reading::InPlace,
        write: Some(vhdx::write_artifact),
        verify: vhdx::verify,
        qemu: QemuDrive::File {
            driver: "vhdx",
            opens: QemuOpens::WhatItNames,
        },
    },
    FormatSpec {
        format: Format::VhdDynamic,
        name: "vhd-dynamic",
        detect: Some(vhd::detect_dynamic),
        open: vhd::open_disk,
        inspect: Some(vhd::inspect),
        reading: Reading::InPlace,
        write: None,
        verify: vhd::verify,
        qemu: QemuDrive::File {
            driver: "vpc",
            opens: QemuOpens::WhatItNames,
        },
    },
    FormatSpec {
        format: Format::VhdFixed,
        name: "vhd-fixed",
        detect: Some(vhd::detect_fixed),
        open: vhd::open_disk,
        inspect: Some(vhd::inspect),
        reading: Reading::InPlace,
        write: Some(vhd::write_artifact),
        verify: vhd::verify,
        qemu: QemuDrive::File {
            driver: "vpc",
            opens: QemuOpens::WhatItNames,
        },
    },
    FormatSpec {
        format: Format::Ova,
        name: "ova",
        detect: Some(ova::detect),
        open: ova::open_disk,
        inspect: None,
        reading: Reading::Decoded {
            opener_first: false,
        },
        write: Some(ova::write_artifact),
        verify: ova::verify,
        qemu: QemuDrive::Extracted {
            driver: "vmdk",
            opens: QemuOpens::WhatItNames,
            file_name: "disk.vmdk",
            what: "the VMDK",
            extract: open::extract_ova_vmdk,
        },
    },
    FormatSpec {
        format: Format::Tar,
        name: "tar",
        detect: Some(detect_tar),
        open: refuse_tar,
        inspect: Some(no_disk),
        reading: Reading::InPlace,
        write: None,
        verify: verify_tar,
        qemu: QemuDrive::None,
    },
    FormatSpec {
        format: Format::Raw,
        name: "raw",
        detect: None,
        open: raw::open_disk,
        inspect: None,
        reading: Reading::InPlace,
        write: Some(raw::write_artifact),
        verify: raw::verify,
        qemu: QemuDrive::File {
            driver: "raw",
            opens: QemuOpens::OnlyTheFile,
        },
    },
];

/// Run a streaming writer on `file` through a buffer of
/// [`crate::disk::BUFFER_SIZE`] bytes, then flush it.
pub(crate) fn through_buffer(
    file: &File,
    write: impl FnOnce(&mut BufWriter<&File>) -> Result<()>,
) -> Result<()> {
    let mut w = BufWriter::with_capacity(crate::disk::BUFFER_SIZE, file);
    write(&mut w)?;
    let mut inner = w
        .into_inner()
        .map_err(|e| Error::io("writing", e.into_error()))?;
    inner.flush().ctx("writing")
}

/// Detect `file`'s format: the first row whose detector says yes; then
/// a refusal of what [`foreign`] recognises; else raw.
pub(crate) fn detect_probe(probe: &Probe<'_>) -> Result<Format> {
    for row in &TABLE {
        if let Some(detect) = row.detect {
            if detect(probe)? {
                return Ok(row.format);
            }
        }
    }
    match foreign::sniff(probe.head) {
        Some(f) => Err(Error::unsupported(f.refusal(probe.path))),
        None => Ok(Format::Raw),
    }
}

/// Inspection of a file that holds no disk cloudimg reads.
fn no_disk(_: File, _: u64, _: &Path) -> Result<Inspected> {
    Ok(Inspected::default())
}

/// The start of a USTAR header's magic field (POSIX.1-2008 `pax`, ustar
/// header block: `magic` at offset 257, "ustar").
const USTAR_MAGIC_AT: usize = 257;

/// A USTAR tar (any tar that is not an OVA: the OVA row comes first).
fn detect_tar(p: &Probe<'_>) -> Result<bool> {
    Ok(p.head.len() >= USTAR_MAGIC_AT + 6
        && &p.head[USTAR_MAGIC_AT..USTAR_MAGIC_AT + 5] == b"ustar")
}

fn refuse_tar(_: File, _: u64, _: &Path) -> Result<Box<dyn VirtualDisk>> {
    Err(Error::unsupported(
        "is a tar archive that is neither a GCP disk.raw.tar.gz nor an OVA",
    ))
}

fn verify_tar(_: &File, _: VerifyOptions<'_>) -> Result<Verified> {
    Err(Error::unsupported("cannot verify tar files yet"))
}
