//! Decode an artifact in full by its format and check the report against
//! what it must be.

use std::fs::File;
use std::path::Path;

use crate::error::{Error, IoContext, Result};
use crate::formats::{self, Format};
use crate::io::{DiskDigest, RawFile, ReadBack, Sha256Hex};

use super::findings::{disk_findings, Finding, Layer, Report};

/// Check a verification report against what the artifact must be. With
/// `check_disk` false, findings about the decoded disk's own structures
/// (its GPT) do not count: the caller proves the disk identical to an
/// input that has them already.
pub fn check_report(
    report: &Report,
    format: Format,
    expect_size: u64,
    expect_sha: Sha256Hex,
    check_disk: bool,
) -> Result<()> {
    if report.format != format {
        return Err(Error::corrupt(format!(
            "verification failed: reads back as {}, expected {}",
            report.format, format
        )));
    }
    let findings: Vec<&Finding> = report
        .findings
        .iter()
        .filter(|f| check_disk || f.layer != Layer::Disk)
        .collect();
    if let Some(f) = findings.first() {
        let more = match findings.len() {
            1 => String::new(),
            n => format!(" (and {} more findings)", n - 1),
        };
        return Err(Error::corrupt(format!("verification failed: {f}{more}")));
    }
    match report.virtual_size {
        Some(s) if s == expect_size => {}
        found => {
            return Err(Error::corrupt(format!(
                "verification failed: decodes to {} bytes, expected {expect_size}",
                found.map_or("an unknown number of".to_string(), |s| s.to_string())
            )))
        }
    }
    match report.virtual_sha256 {
        Some(s) if s == expect_sha => Ok(()),
        found => Err(Error::corrupt(format!(
            "verification failed: decoded disk SHA-256 is {}, expected {expect_sha}",
            found.map_or("unknown".to_string(), |s| s.to_string())
        ))),
    }
}

/// Decode and check an open file as `format`.
pub fn verify_file(file: &File, format: Format) -> Result<Report> {
    verify_file_with(file, format, DiskDigest::new())
}

/// [`verify_file`], feeding the decoded disk to `digest`.
pub fn verify_file_with(file: &File, format: Format, digest: DiskDigest<'_>) -> Result<Report> {
    verify_file_from(file, format, digest, ReadBack::PageCache)
}

/// [`verify_file_with`], reading a raw or fixed VHD file's data as `from`
/// says (the other formats are read through the page cache).
pub fn verify_file_from(
    file: &File,
    format: Format,
    digest: DiskDigest<'_>,
    from: ReadBack,
) -> Result<Report> {
    match format {
        Format::Raw => {
            let mut report = formats::raw::verify_from(file, digest, from)?;
            let len = report.file_size;
            let f = file.try_clone().ctx("opening")?;
            let disk = RawFile::window(f, "", 0, len);
            report.findings.extend(disk_findings(&disk));
            Ok(report)
        }
        Format::VhdFixed | Format::VhdDynamic => {
            formats::vhd::verify::verify_from(file, digest, from)
        }
        Format::Vmdk => formats::vmdk::verify_with(file, digest),
        Format::Gzip => formats::gcp::verify_with(file, digest),
        Format::Qcow2 => formats::qcow2::verify_with(file, digest),
        Format::Vhdx => formats::vhdx::verify_with(file, digest),
        Format::Ova => formats::ova::verify_with(file, digest),
        Format::VmdkDescriptor => Err(Error::unsupported(formats::open::descriptor_refusal(file)?)),
        other => Err(Error::unsupported(format!(
            "cannot verify {other} files yet"
        ))),
    }
}

/// Detect the format of `path` from its content and verify it in full.
pub fn verify_path(path: &Path) -> Result<Report> {
    let (file, _, format) = formats::open_detect(path)?;
    verify_file(&file, format).map_err(|e| e.with_path(path))
}
