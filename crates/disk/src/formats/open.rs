//! Open any image cloudimg reads as a [`VirtualDisk`], its format told from
//! its content: raw, VHD (fixed, dynamic), VMDK (stream-optimized,
//! monolithic sparse), QCOW2, VHDX, a GCP `disk.raw.tar.gz` and an OVA.
//!
//! The compressed containers cannot be read at random: the disk of a GCP
//! tarball is first extracted (sparse) and the VMDK of an OVA copied, each
//! to an unnamed temporary file beside the input (or in `$TMPDIR`) that
//! disappears with the returned disk.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::codec::tar::TarReader;
use crate::disk::VirtualDisk;
use crate::error::{Error, IoContext, Result};
use crate::formats::{self, gcp, ova, Format};
use crate::io::{unnamed_temp_beside, FileReader, RawFile};

/// Open the image at `path` for reading, whatever its format; return the
/// disk it holds and the format found. Errors name `path`.
pub fn open_disk(path: &Path) -> Result<(Box<dyn VirtualDisk>, Format)> {
    let (file, meta, format) = formats::open_detect(path)?;
    let disk = open_file_disk(file, meta.len(), format, path).map_err(|e| e.with_path(path))?;
    Ok((disk, format))
}

/// [`open_disk`] for an already open `file` of `len` bytes, detected as
/// `format`; `path` only names it in errors of later reads. The format
/// table's opener does the work ([`FormatSpec::open`](super::FormatSpec)).
///
/// A container (any format but raw) opened is then verified in full by
/// the format's own verifier, and refused when it finds anything wrong
/// with the container: what `package`, `check` and `boot` read is never a
/// file `cloudimg verify` finds a container defect in (the decoded disk's
/// own GPT is not judged here, `package` reports it as a warning; nor are
/// a provider's rules, such as GCP's whole GiB).
pub fn open_file_disk(
    file: File,
    len: u64,
    format: Format,
    path: &Path,
) -> Result<Box<dyn VirtualDisk>> {
    let check = file.try_clone().ctx("opening")?;
    let disk = (format.spec().open)(file, len, path)?;
    if format != Format::Raw {
        refuse_defective(&check, format)?;
    }
    Ok(disk)
}

/// Verify a container in full (without the decoded disk's GPT) and refuse
/// it, in one line, at its first finding about the container itself.
fn refuse_defective(file: &File, format: Format) -> Result<()> {
    let opts = formats::VerifyOptions {
        check_disk: false,
        ..formats::VerifyOptions::default()
    };
    let report = crate::verify::verify_file_with(file, format, opts)?;
    // A provider's rule (a GCP tarball that is not a whole GiB) makes an
    // artifact unfit for that provider, not an input read two ways.
    let findings: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.layer == crate::verify::Layer::Container)
        .collect();
    let Some(first) = findings.first() else {
        return Ok(());
    };
    let more = match findings.len() {
        1 => String::new(),
        n => format!(" (and {} more; `cloudimg verify` lists them)", n - 1),
    };
    Err(Error::corrupt(format!(
        "is a defective {format}: {first}{more}"
    )))
}

/// Why a VMDK text descriptor file is not read, and what to give instead:
/// its one extent file (cloudimg reads a sparse extent as a VMDK and a
/// flat one as a raw disk), or a conversion when it has several.
pub(crate) fn descriptor_refusal(file: &File) -> Result<String> {
    let mut head = vec![0u8; 64 << 10];
    let n = formats::read_up_to(file, &mut head, 0)?;
    let d = formats::vmdk::descriptor::Descriptor::parse(&head[..n]);
    Ok(match d.extents.as_slice() {
        [e] => format!(
            "is a VMDK text descriptor without data: give the extent file it names instead ({:?})",
            e.file
        ),
        [] => "is a VMDK text descriptor that names no extent file".to_string(),
        ex => format!(
            "is a VMDK text descriptor of {} extent files: convert it first (qemu-img convert -O raw) and give the result",
            ex.len()
        ),
    })
}

/// For a disk whose every read costs decompression (a stream-optimized or
/// OVA's VMDK, a QCOW2 that may hold compressed clusters): decode it once
/// into an unnamed sparse temporary file beside `near` (or in `$TMPDIR`)
/// and read that instead. Others are returned as they are. `package` reads
/// its input several times (zero scan, digests, every shape, every
/// verification); this keeps that to one decode.
pub fn decoded_once(
    disk: Box<dyn VirtualDisk>,
    format: Format,
    near: &File,
    path: &Path,
) -> Result<Box<dyn VirtualDisk>> {
    if !format.spec().decode_once {
        return Ok(disk);
    }
    let out = unnamed_temp_beside(near, "a temporary decoded disk")?;
    out.set_len(disk.size())
        .ctx("sizing the temporary decoded disk")?;
    let mut buf = vec![0u8; crate::disk::BUFFER_SIZE];
    for e in disk.extents().ctx("listing the disk's extents")? {
        if e.kind != crate::disk::ExtentKind::Data {
            continue;
        }
        let mut at = e.offset;
        while at < e.end() {
            let k = (e.end() - at).min(buf.len() as u64) as usize;
            disk.read_at(&mut buf[..k], at).ctx("reading")?;
            gcp::write_nonzero(&out, &buf[..k], at)?;
            at += k as u64;
        }
    }
    Ok(Box::new(RawFile::window(out, path, 0, disk.size())))
}

/// Copy the disk member of the OVA `file` into `out` (from its start);
/// return the member's size. The disk member is chosen as the verifier
/// chooses it: the file the descriptor's first `References/File` names
/// when the descriptor (the first `.ovf` member, UTF-8, at most
/// [`ova::verify::MAX_TEXT_MEMBER`] bytes) comes before any disk member,
/// else the first `.vmdk` member.
pub fn extract_ova_vmdk(file: &File, out: &File) -> Result<u64> {
    let mut tar = TarReader::new(FileReader::new(file));
    let mut href: Option<String> = None;
    let mut seen_ovf = false;
    while let Some(entry) = tar.next_entry()? {
        let name = entry.name_str();
        if !seen_ovf && name.ends_with(".ovf") {
            seen_ovf = true;
            if entry.size <= ova::verify::MAX_TEXT_MEMBER {
                let mut text = vec![0u8; entry.size as usize];
                crate::io::read_exact_at(file, &mut text, entry.data_offset)
                    .map_err(|e| Error::io("reading the OVA's descriptor", e))?;
                href = String::from_utf8(text)
                    .ok()
                    .and_then(|t| ova::ovf::first_file_href(&t));
            }
            continue;
        }
        let is_disk = match &href {
            Some(h) => *h == name,
            None => name.ends_with(".vmdk"),
        };
        if !is_disk {
            continue;
        }
        let mut buf = vec![0u8; crate::disk::BUFFER_SIZE];
        let mut done = 0u64;
        while done < entry.size {
            let k = (entry.size - done).min(buf.len() as u64) as usize;
            crate::io::read_exact_at(file, &mut buf[..k], entry.data_offset + done).map_err(
                |e| {
                    Error::io(
                        "reading the OVA's VMDK member (the archive is truncated?)",
                        e,
                    )
                },
            )?;
            out.write_all_at(&buf[..k], done)
                .ctx("copying the OVA's VMDK to a temporary file")?;
            done += k as u64;
        }
        return Ok(entry.size);
    }
    Err(Error::invalid_format("the OVA has no .vmdk member"))
}
