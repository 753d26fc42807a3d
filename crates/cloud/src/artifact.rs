//! The artifact, checked before anything is uploaded: decoded in full by
//! the disk crate's verifier, as `cloudimg verify` does, and judged by
//! what its report says (format, findings, virtual size) against the
//! provider's rules. Nothing here reads a format's internals.

use std::fs;
use std::path::Path;

use cloudimg_disk::verify::{verify_path, Report};

use crate::error::{Error, ErrorKind, Result};
use crate::provider::ProviderFlow;

fn refused(path: &Path, msg: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::Artifact, format!("{}: {msg}", path.display()))
}

/// Verify `path` in full and check that it is a sound artifact of the
/// shape `target` imports and within the provider's rules. Returns the
/// verifier's report; every refusal is one line naming the file.
pub(crate) fn check(target: &dyn ProviderFlow, path: &Path) -> Result<Report> {
    let report = verify(target, path)?;
    judge(target, path, &report)?;
    Ok(report)
}

/// Decode `path` in full with the disk crate's verifier (`Err` when it
/// is missing or cannot be decoded at all).
pub(crate) fn verify(target: &dyn ProviderFlow, path: &Path) -> Result<Report> {
    if !path.exists() {
        return Err(refused(
            path,
            format!(
                "does not exist (run `cloudimg package --{}` first)",
                target.provider().id()
            ),
        ));
    }
    verify_path(path).map_err(|e| Error::new(ErrorKind::Artifact, e.to_string()))
}

/// The shape first (no use listing the defects of a file the provider
/// would not take), then the verifier's findings, then the provider's
/// own rules.
pub(crate) fn judge(target: &dyn ProviderFlow, path: &Path, report: &Report) -> Result<()> {
    if !target.takes(report) {
        return Err(refused(
            path,
            format!(
                "is a {} file, expected {}",
                report.format,
                target.expected_shape()
            ),
        ));
    }
    if let Some(f) = report.findings.first() {
        let more = match report.findings.len() {
            1 => String::new(),
            n => format!(" (and {} more findings)", n - 1),
        };
        return Err(refused(path, format!("failed verification: {f}{more}")));
    }
    target.check_rules(report).map_err(|why| refused(path, why))
}

/// What `artifact.json` records: the artifact's entry in the
/// `manifest.json` beside it, else one computed here with the manifest's
/// keys (`size_bytes`, `virtual_size_bytes`). An entry whose
/// decoded SHA-256 differs from the report's is refused.
pub(crate) fn record(path: &Path, report: &Report) -> Result<serde_json::Value> {
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let manifest = path
        .parent()
        .map(|d| d.join("manifest.json"))
        .filter(|p| p.is_file());
    let entry = manifest.as_deref().and_then(|m| manifest_entry(m, &file));
    let decoded = report.virtual_sha256.map(|s| s.to_string());
    match entry {
        Some(e) => {
            if e["virtual_sha256"].as_str().map(str::to_string) != decoded {
                return Err(Error::new(
                    ErrorKind::Artifact,
                    format!(
                        "artifact {} decodes to SHA-256 {} but its manifest says {}",
                        path.display(),
                        decoded.unwrap_or_else(|| "?".into()),
                        e["virtual_sha256"].as_str().unwrap_or("nothing")
                    ),
                ));
            }
            Ok(serde_json::json!({"source": "manifest", "manifest": manifest, "entry": e}))
        }
        None => {
            let sha =
                cloudimg_disk::io::sha256_file(path).map_err(|e| Error::io("hashing", path, e))?;
            Ok(serde_json::json!({"source": "computed", "entry": {
                "file": file, "size_bytes": report.file_size, "sha256": sha.to_string(),
                "format": report.format, "virtual_size_bytes": report.virtual_size,
                "virtual_sha256": decoded,
            }}))
        }
    }
}

/// The entry for `file` in the manifest at `manifest` (None when the
/// manifest cannot be read or does not list it).
fn manifest_entry(manifest: &Path, file: &str) -> Option<serde_json::Value> {
    let text = fs::read_to_string(manifest).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["artifacts"]
        .as_array()?
        .iter()
        .find(|e| e["file"].as_str() == Some(file))
        .cloned()
}
