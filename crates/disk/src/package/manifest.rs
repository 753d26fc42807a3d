//! `manifest.json`: what it records (the source and each verified
//! artifact), merging the entries of a previous run still in the output
//! directory, and writing it with `SHA256SUMS` beside it.
//!
//! The manifest is a JSON document of kind `cloudimg.manifest/1`
//! (docs/schema/manifest.schema.json). Sizes are in bytes under keys
//! ending `_bytes`; manifests written before that (`size`,
//! `virtual_size`) still read.

use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{PackageRequest, Provider, Shape};
use crate::error::{Error, IoContext, Result};
use crate::io::{sha256_file, OutputFile, Sha256Hex};
use crate::layout::gpt::Growth;

/// The source image as recorded in the manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Source {
    /// File name of the input.
    pub file: String,
    /// Size in bytes (of the disk it holds).
    #[serde(rename = "size_bytes", alias = "size")]
    pub size: u64,
    /// SHA-256 of its bytes.
    pub sha256: Sha256Hex,
}

/// One verified artifact as recorded in the manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Artifact {
    /// File name in the output directory.
    pub file: String,
    /// Provider it is for.
    pub provider: Provider,
    /// Its shape.
    pub shape: Shape,
    /// Its format ([`crate::formats::Format`]'s name: `tar-gz`, `raw`,
    /// `vhd-fixed`, ...); absent from manifests written before it was
    /// recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// Size of the file in bytes.
    #[serde(rename = "size_bytes", alias = "size")]
    pub size: u64,
    /// SHA-256 of the file.
    pub sha256: Sha256Hex,
    /// Size of the virtual disk it decodes to.
    #[serde(rename = "virtual_size_bytes", alias = "virtual_size")]
    pub virtual_size: u64,
    /// SHA-256 of the virtual disk it decodes to.
    pub virtual_sha256: Sha256Hex,
    /// The `SOURCE_DATE_EPOCH` it was made with (absent from older
    /// manifests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_date_epoch: Option<u64>,
    /// For a grown disk (GCP, Azure) whose first candidate size was passed
    /// over: `{"from": bytes, "to": bytes, "skipped": [{"size": bytes,
    /// "foreign_lbas": [[first, last], ...]}]}`, the input's size, the
    /// size chosen, and each smaller whole GiB (GCP) or MiB (Azure) not
    /// used because a backup GPT there would have overwritten those LBAs
    /// (inclusive ranges), which held data the GPT does not own (Limine's
    /// BIOS stage 2, say). Absent when the disk was grown to the first
    /// whole GiB or MiB, or not grown; manifests without it read as such.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub growth: Option<Growth>,
}

/// The kind of document `manifest.json` is (its `"schema"`, first key).
pub const MANIFEST_SCHEMA: &str = "cloudimg.manifest/1";

/// The name of the checksum file written beside the artifacts.
pub const SHA256SUMS: &str = "SHA256SUMS";

fn manifest_schema() -> String {
    MANIFEST_SCHEMA.to_string()
}

/// `manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// `cloudimg.manifest/1` ([`MANIFEST_SCHEMA`]); manifests written
    /// before it was recorded read as that.
    #[serde(default = "manifest_schema")]
    pub schema: String,
    /// The tool that wrote it (`cloudimg VERSION`).
    pub generator: String,
    /// The version of cloudimg that wrote it (absent from older
    /// manifests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloudimg_version: Option<String>,
    /// The `SOURCE_DATE_EPOCH` the run used (0 when it was unset): with
    /// the same input, shapes and version, the same artifacts. Artifacts
    /// kept from an earlier run carry their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_date_epoch: Option<u64>,
    /// The input image.
    pub source: Source,
    /// The artifacts, in the order they were written.
    pub artifacts: Vec<Artifact>,
}

/// A manifest as recorded by [`record`].
pub(super) struct Recorded {
    /// The manifest (merged with the previous one, when written).
    pub manifest: Manifest,
    /// Where it was written, if it was.
    pub path: Option<PathBuf>,
    /// Entries of the previous manifest kept.
    pub kept: Vec<String>,
    /// Entries of the previous manifest dropped, with why.
    pub dropped: Vec<String>,
}

/// This run's manifest, written as `manifest.json` in the output
/// directory merged with the entries of a previous run still there
/// ([`merge_previous`]), and `SHA256SUMS` of the artifacts it lists. A
/// run that made nothing writes neither: a manifest listing nothing would
/// replace a previous run's, whose artifacts are still there.
pub(super) fn record(
    req: &PackageRequest,
    source: Source,
    mut artifacts: Vec<Artifact>,
    any_failure: bool,
) -> Result<Recorded> {
    for a in &mut artifacts {
        a.source_date_epoch = Some(req.mtime);
    }
    let mut manifest = Manifest {
        schema: manifest_schema(),
        generator: format!("cloudimg {}", env!("CARGO_PKG_VERSION")),
        cloudimg_version: Some(env!("CARGO_PKG_VERSION").to_string()),
        source_date_epoch: Some(req.mtime),
        source,
        artifacts,
    };
    if manifest.artifacts.is_empty() && any_failure {
        return Ok(Recorded {
            manifest,
            path: None,
            kept: Vec::new(),
            dropped: Vec::new(),
        });
    }
    let p = req.out_dir.join("manifest.json");
    let (kept, dropped) = merge_previous(&p, &mut manifest);
    write_manifest(&manifest, &p)?;
    write_sums(&manifest, &req.out_dir.join(SHA256SUMS))?;
    Ok(Recorded {
        manifest,
        path: Some(p),
        kept,
        dropped,
    })
}

/// Make `m` (this run's manifest) describe the directory: add the entries
/// of the manifest already at `path` that were made from the same source
/// (same SHA-256), that this run did not replace (same file name), and
/// whose file is still there with the recorded size and SHA-256 (hashed
/// again: a file changed since is not listed; decoding it again is left
/// to `verify`). Entries of another source, or whose file is gone or
/// changed, are left out and returned as one-line notes; so is a previous
/// manifest that cannot be read. Returns (kept file names, notes).
fn merge_previous(path: &Path, m: &mut Manifest) -> (Vec<String>, Vec<String>) {
    let (mut kept, mut dropped) = (Vec::new(), Vec::new());
    let text = match fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (kept, dropped),
        Err(e) => {
            dropped.push(format!(
                "{}: the previous manifest cannot be read ({}); it is replaced",
                path.display(),
                Error::io("reading", e).message()
            ));
            return (kept, dropped);
        }
    };
    let old: Manifest = match serde_json::from_slice(&text) {
        Ok(old) => old,
        Err(e) => {
            dropped.push(format!(
                "{}: the previous manifest is not one cloudimg reads ({e}); it is replaced",
                path.display()
            ));
            return (kept, dropped);
        }
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let (same, other): (Vec<Artifact>, Vec<Artifact>) = old
        .artifacts
        .into_iter()
        .filter(|a| !m.artifacts.iter().any(|n| n.file == a.file))
        .partition(|_| old.source.sha256 == m.source.sha256);
    if !other.is_empty() {
        let files: Vec<&str> = other.iter().map(|a| a.file.as_str()).collect();
        dropped.push(format!(
            "{}: no longer lists {} artifact(s) made from another image ({}, SHA-256 {}): {}",
            path.display(),
            files.len(),
            old.source.file,
            old.source.sha256,
            files.join(", ")
        ));
    }
    for a in same {
        match previous_file_problem(dir, &a) {
            Some(why) => dropped.push(format!(
                "{}: no longer lists {}: {why}",
                path.display(),
                a.file
            )),
            None => {
                kept.push(a.file.clone());
                m.artifacts.push(a);
            }
        }
    }
    m.artifacts
        .sort_by_key(|a| (a.shape.index(), a.file.clone()));
    (kept, dropped)
}

/// Why the artifact `a` of a previous manifest is no longer in `dir` as
/// recorded: not a plain file name, gone, not a regular file, another size
/// or another SHA-256.
fn previous_file_problem(dir: &Path, a: &Artifact) -> Option<String> {
    if a.file.is_empty()
        || a.file.contains('/')
        || a.file == "manifest.json"
        || a.file == SHA256SUMS
    {
        return Some("not a file name in the directory".into());
    }
    let p = dir.join(&a.file);
    let meta = match fs::symlink_metadata(&p) {
        Ok(m) => m,
        Err(_) => return Some("the file is gone".into()),
    };
    if !meta.is_file() {
        return Some("not a regular file".into());
    }
    if meta.len() != a.size {
        return Some(format!(
            "the file is {} bytes, the manifest said {}",
            meta.len(),
            a.size
        ));
    }
    match sha256_file(&p) {
        Ok(sha) if sha == a.sha256 => None,
        Ok(sha) => Some(format!(
            "the file's SHA-256 is {sha}, the manifest said {}",
            a.sha256
        )),
        Err(e) => Some(format!(
            "the file cannot be hashed ({})",
            Error::io("reading", e).message()
        )),
    }
}

fn write_manifest(m: &Manifest, path: &Path) -> Result<()> {
    let mut text = serde_json::to_vec_pretty(m).map_err(|e| Error::io("writing", e.into()))?;
    text.push(b'\n');
    write_new(path, &text)
}

/// `SHA256SUMS`: one line per artifact the manifest lists, in its order,
/// as `sha256sum` writes them and `sha256sum -c` reads them.
fn write_sums(m: &Manifest, path: &Path) -> Result<()> {
    let text: String = m.artifacts.iter().map(sums_line).collect();
    write_new(path, text.as_bytes())
}

/// One `SHA256SUMS` line: the digest, two spaces (text mode) and the file
/// name. A name holding a backslash or a newline is escaped as GNU
/// coreutils does (the line starts with `\`, and `\` and newline are
/// written `\\` and `\n`: coreutils manual, "md5sum invocation").
pub fn sums_line(a: &Artifact) -> String {
    if a.file.contains(['\\', '\n']) {
        let name = a.file.replace('\\', "\\\\").replace('\n', "\\n");
        format!("\\{}  {name}\n", a.sha256)
    } else {
        format!("{}  {}\n", a.sha256, a.file)
    }
}

/// Write `bytes` to `path` through a new temporary file (created
/// exclusively, never through a symlink), renamed over `path` once
/// written.
fn write_new(path: &Path, bytes: &[u8]) -> Result<()> {
    let out = OutputFile::create(path)
        .ctx("creating")
        .map_err(|e| e.with_path(path))?;
    let mut w = BufWriter::new(out.file());
    w.write_all(bytes)
        .ctx("writing")
        .map_err(|e| e.with_path(path))?;
    w.flush().ctx("writing").map_err(|e| e.with_path(path))?;
    drop(w);
    out.commit()
        .ctx("renaming")
        .map_err(|e| e.with_path(path))?;
    Ok(())
}
