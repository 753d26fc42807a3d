//! Open any image cloudimg reads as a [`VirtualDisk`], its format told from
//! its content: raw, VHD (fixed, dynamic), VMDK (stream-optimized,
//! monolithic sparse), QCOW2, VHDX, a GCP `disk.raw.tar.gz` and an OVA.
//!
//! A container is verified in full before it is read. The compressed
//! ones cannot be read at random: the verifier's decode is copied
//! (sparse) to an unnamed temporary file beside the input (or in
//! `$TMPDIR`), which is read instead and disappears with the returned
//! disk ([`open_file_disk`]).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::codec::tar::TarReader;
use crate::disk::VirtualDisk;
use crate::error::{Error, IoContext, Result};
use crate::formats::{self, ova, Format, Reading};
use crate::io::{unnamed_temp_beside, write_nonzero, DecodedCopy, DiskDigest, FileReader, RawFile};
use crate::verify::Report;

/// Open the image at `path` for reading, whatever its format; return the
/// disk it holds and the format found. Errors name `path`.
pub fn open_disk(path: &Path) -> Result<(Box<dyn VirtualDisk>, Format)> {
    let (file, meta, format) = formats::open_detect(path)?;
    let disk = open_file_disk(file, meta.len(), format, path).map_err(|e| e.with_path(path))?;
    Ok((disk, format))
}

/// Refuse the file at `path` where [`open_disk`] would refuse it, without
/// keeping its decoded disk (no scratch copy is written); return its
/// format. For a caller that hands the file to another reader: `boot`
/// gives it to QEMU, and only needs to know that cloudimg reads it.
pub fn check_readable(path: &Path) -> Result<Format> {
    let (file, meta, format) = formats::open_detect(path)?;
    let spec = format.spec();
    let check = |file: File| -> Result<()> {
        let opener_first = match spec.reading {
            Reading::InPlace => true,
            Reading::Decoded { opener_first } => opener_first,
        };
        if opener_first || format == Format::Raw {
            drop((spec.open)(
                file.try_clone().ctx("opening")?,
                meta.len(),
                path,
            )?);
        }
        if format != Format::Raw {
            verify_container(&file, format, DiskDigest::new())?;
        }
        Ok(())
    };
    check(file).map_err(|e| e.with_path(path))?;
    Ok(format)
}

/// [`open_disk`] for an already open `file` of `len` bytes, detected as
/// `format`; `path` only names it in errors of later reads.
///
/// A raw disk is read in place. A container (any other format) is
/// verified in full by the format's own verifier and refused, in one
/// line, at its first finding about the container itself: what
/// `package`, `check` and `boot` read is never a file `cloudimg verify`
/// finds a container defect in (the decoded disk's own GPT is not judged
/// here, `package` reports it as a warning; nor are a provider's rules,
/// such as GCP's whole GiB: they make an artifact unfit for a provider,
/// not an input read two ways).
///
/// How the container is then read is the table's [`Reading`]: a VHD or
/// VHDX in place, through the row's opener; a compressed one (QCOW2,
/// VMDK, OVA, GCP tarball) from the scratch copy the verifier's decode
/// wrote as it went, so that the file is decoded once, by the code that
/// checked it ([`DecodedCopy`]). When the verifier's decode did not
/// cover the disk in one pass (it reported another reading's digest),
/// the disk is decoded again through the opener, as a fallback.
pub fn open_file_disk(
    file: File,
    len: u64,
    format: Format,
    path: &Path,
) -> Result<Box<dyn VirtualDisk>> {
    let spec = format.spec();
    if format == Format::Raw {
        return (spec.open)(file, len, path);
    }
    match spec.reading {
        Reading::InPlace => {
            let check = file.try_clone().ctx("opening")?;
            let disk = (spec.open)(file, len, path)?;
            verify_container(&check, format, DiskDigest::new())?;
            Ok(disk)
        }
        Reading::Decoded { opener_first } => {
            if opener_first {
                // Its refusals first; the disk itself is read from the copy.
                drop((spec.open)(file.try_clone().ctx("opening")?, len, path)?);
            }
            let copy = DecodedCopy::new(unnamed_temp_beside(&file, "a temporary decoded disk")?);
            let report = verify_container(&file, format, DiskDigest::new().copying_to(&copy))?;
            let copied = match (report.virtual_size, report.virtual_sha256) {
                (Some(size), Some(sha)) => copy.into_file(size, sha)?.map(|f| (f, size)),
                _ => None,
            };
            match copied {
                Some((f, size)) => Ok(Box::new(RawFile::window(f, path, 0, size))),
                None => decode_through_opener(file, len, format, path),
            }
        }
    }
}

/// Verify a container in full (without the decoded disk's GPT), its
/// decoded disk fed to `digest`, and refuse it, in one line, at its first
/// finding about the container itself; return the report.
fn verify_container(file: &File, format: Format, digest: DiskDigest<'_>) -> Result<Report> {
    let opts = formats::VerifyOptions {
        digest,
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
        return Ok(report);
    };
    let more = match findings.len() {
        1 => String::new(),
        n => format!(" (and {} more; `cloudimg verify` lists them)", n - 1),
    };
    Err(Error::corrupt(format!(
        "is a defective {format}: {first}{more}"
    )))
}

/// The fallback of [`open_file_disk`]: open the container with the row's
/// opener and decode its disk (a second pass) into an unnamed sparse
/// scratch file beside it (or in `$TMPDIR`), read instead.
fn decode_through_opener(
    file: File,
    len: u64,
    format: Format,
    path: &Path,
) -> Result<Box<dyn VirtualDisk>> {
    let out = unnamed_temp_beside(&file, "a temporary decoded disk")?;
    let disk = (format.spec().open)(file, len, path)?;
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
            write_nonzero(&out, &buf[..k], at)?;
            at += k as u64;
        }
    }
    Ok(Box::new(RawFile::window(out, path, 0, disk.size())))
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
