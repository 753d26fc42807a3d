//! Re-check every artifact a `manifest.json` lists, and tell a manifest
//! from a disk image by its content.

use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, IoContext, Result};
use crate::io::sha256_file;
use crate::package::Manifest;

use super::artifact::verify_path;
use super::findings::{Finding, Report};

/// Largest file read as a possible manifest (a manifest lists at most a
/// few dozen artifacts: a few KiB).
const MANIFEST_MAX_BYTES: u64 = 16 << 20;

/// Read and parse the `manifest.json` at `path`.
pub fn read_manifest(path: &Path) -> Result<Manifest> {
    let (file, meta) = crate::formats::open_input(path)?;
    if meta.len() > MANIFEST_MAX_BYTES {
        return Err(Error::invalid_format(format!(
            "is {} bytes, more than a manifest ({MANIFEST_MAX_BYTES} at most)",
            meta.len()
        ))
        .with_path(path));
    }
    let mut text = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(file, MANIFEST_MAX_BYTES + 1),
        &mut text,
    )
    .ctx("reading")
    .map_err(|e| e.with_path(path))?;
    serde_json::from_slice(&text).map_err(|e| {
        Error::invalid_format(format!("is not a cloudimg manifest: {e}")).with_path(path)
    })
}

/// Whether the file at `path` is a cloudimg manifest, judged by its
/// content (whatever its name): a small regular file holding a JSON object
/// that parses as a [`Manifest`]. A disk image never is one.
pub fn is_manifest(path: &Path) -> bool {
    let Ok(meta) = fs::metadata(path) else {
        return false;
    };
    if !meta.is_file() || meta.len() > MANIFEST_MAX_BYTES {
        return false;
    }
    let mut head = [0u8; 1];
    let first = crate::io::open_input(path).and_then(|(f, _)| {
        use std::io::Read;
        let mut r = std::io::BufReader::new(f);
        loop {
            r.read_exact(&mut head)?;
            if !head[0].is_ascii_whitespace() {
                return Ok(head[0]);
            }
        }
    });
    first.is_ok_and(|b| b == b'{') && read_manifest(path).is_ok()
}

/// What re-checking one artifact of a manifest found.
#[derive(Debug, Serialize)]
pub struct ManifestCheck {
    /// The artifact's path.
    pub path: PathBuf,
    /// Its verification report, when it could be decoded.
    pub report: Option<Report>,
    /// Why it could not be checked, if so.
    pub error: Option<String>,
}

/// Re-check every artifact listed in `manifest.json` at `path`: the file
/// must exist with the recorded size and SHA-256, decode in full (format
/// detected from content) with no defect, and decode to the recorded
/// virtual size and SHA-256. Differences are added to each report as
/// findings.
pub fn verify_manifest(path: &Path) -> Result<Vec<ManifestCheck>> {
    let manifest = read_manifest(path)?;
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut out = Vec::new();
    for a in &manifest.artifacts {
        if a.file.contains('/') || a.file.is_empty() {
            out.push(ManifestCheck {
                path: dir.join(&a.file),
                report: None,
                error: Some(format!(
                    "manifest names {:?}, not a file in its directory",
                    a.file
                )),
            });
            continue;
        }
        let file = dir.join(&a.file);
        let mut report = match verify_path(&file) {
            Ok(r) => r,
            Err(e) => {
                out.push(ManifestCheck {
                    path: file,
                    report: None,
                    error: Some(e.to_string()),
                });
                continue;
            }
        };
        if report.file_size != a.size {
            report.push(Finding::whole(format!(
                "file is {} bytes, the manifest says {}",
                report.file_size, a.size
            )));
        }
        match sha256_file(&file) {
            Ok(sha) if sha == a.sha256 => {}
            Ok(sha) => report.push(Finding::whole(format!(
                "file SHA-256 is {sha}, the manifest says {}",
                a.sha256
            ))),
            Err(e) => report.push(Finding::whole(format!("cannot hash the file: {e}"))),
        }
        if report.format != a.shape.format() {
            report.push(Finding::whole(format!(
                "reads as {}, the manifest says {}",
                report.format,
                a.shape.format()
            )));
        }
        if report.virtual_size != Some(a.virtual_size) {
            report.push(Finding::whole(format!(
                "decodes to {} bytes, the manifest says {}",
                report
                    .virtual_size
                    .map_or("an unknown number of".into(), |v| v.to_string()),
                a.virtual_size
            )));
        }
        if report.virtual_sha256 != Some(a.virtual_sha256) {
            report.push(Finding::whole(format!(
                "decoded disk SHA-256 is {}, the manifest says {}",
                report
                    .virtual_sha256
                    .map_or("unknown".into(), |v| v.to_string()),
                a.virtual_sha256
            )));
        }
        out.push(ManifestCheck {
            path: file,
            report: Some(report),
            error: None,
        });
    }
    Ok(out)
}
