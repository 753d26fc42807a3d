//! Decode an artifact in full by its format (the format table's
//! verifier), check the decoded disk's GPT once, here, and check the
//! report against what it must be.

use std::fs::File;
use std::path::Path;

use crate::error::{Error, Result};
use crate::formats::{self, Format, Verified, VerifyOptions};
use crate::io::Sha256Hex;

use super::findings::{Finding, Layer, Report};

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

/// Decode and check an open file as `format`, its decoded disk hashed and
/// its GPT checked.
pub fn verify_file(file: &File, format: Format) -> Result<Report> {
    verify_file_with(file, format, VerifyOptions::default())
}

/// Decode and check an open file as `format` with the format table's
/// verifier, as `opts` says; then, when `opts.check_disk`, check the
/// decoded disk's GPT ([`disk_findings`]): here, once, for every format.
pub fn verify_file_with(file: &File, format: Format, opts: VerifyOptions<'_>) -> Result<Report> {
    let check_disk = opts.check_disk;
    let Verified { mut report, disk } = (format.spec().verify)(file, opts)?;
    if let (true, Some(disk)) = (check_disk, disk) {
        report.findings.extend(disk_findings(&disk));
        if let Some(f) = disk.unserved_read() {
            // A GPT check that failed already says it could not check.
            if !report
                .findings
                .iter()
                .any(|f| f.message.contains("cannot check"))
            {
                report.push(f);
            }
        }
    }
    Ok(report)
}

/// Check the partition table of a decoded disk: every finding of
/// [`crate::layout::gpt::verify`], marked as a disk finding and prefixed
/// "decoded disk: " so that it is told apart from the container's.
pub fn disk_findings(disk: &dyn crate::disk::VirtualDisk) -> Vec<Finding> {
    crate::layout::gpt::verify(disk)
        .into_iter()
        .map(|f| Finding {
            offset: f.offset,
            message: format!("decoded disk: {}", f.message),
            layer: Layer::Disk,
        })
        .collect()
}

/// Detect the format of `path` from its content and verify it in full.
pub fn verify_path(path: &Path) -> Result<Report> {
    let (file, _, format) = formats::open_detect(path)?;
    verify_file(&file, format).map_err(|e| e.with_path(path))
}
