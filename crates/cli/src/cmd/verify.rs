//! `cloudimg verify ARTIFACT`: decode an artifact in full and report
//! every defect.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use cloudimg_disk::io::Sha256Hex;
use cloudimg_disk::package::{sums_line, SHA256SUMS};
use cloudimg_disk::verify::Finding;
use cloudimg_disk::verify::Report;
use cloudimg_disk::verify::{is_manifest, read_manifest, verify_manifest, verify_path};

/// Decode an artifact in full and report every defect found.
///
/// The format is detected from the content, not the file name: raw
/// images, fixed VHD, stream-optimized VMDK and the GCP disk.raw.tar.gz.
/// A cloudimg `manifest.json` among the artifacts is checked as
/// `--manifest`, and a `SHA256SUMS` against the manifest beside it, so
/// `cloudimg verify target/cloud-image/*` checks a whole output
/// directory. Exit status: 0 sound, 1 defects found, 2 unusable (cannot
/// be decoded).
#[derive(Debug, clap::Args)]
#[command(override_usage = "cloudimg verify [OPTIONS] <ARTIFACTS>...\n       \
cloudimg verify [OPTIONS] --manifest <FILE> [ARTIFACTS]...")]
pub struct Args {
    /// The artifacts to check (none needed with --manifest).
    #[arg(required_unless_present = "manifest")]
    pub artifacts: Vec<PathBuf>,
    /// Re-check every artifact a `manifest.json` lists: file size and
    /// SHA-256, full decode, decoded size and SHA-256.
    #[arg(long, value_name = "FILE", conflicts_with = "expect_sha256")]
    pub manifest: Option<PathBuf>,
    /// The SHA-256 the decoded virtual disk must have (the manifest's
    /// `virtual_sha256`).
    #[arg(long, value_name = "HEX")]
    pub expect_sha256: Option<Sha256Hex>,
    /// Print the reports as JSON (`cloudimg.verify/1`) on stdout.
    #[arg(long)]
    pub json: bool,
}

/// The detail naming the manifest a checked `SHA256SUMS` belongs to.
const SUMS_OF: &str = "checksums_of";

/// The `"format"` of a checked `SHA256SUMS` in `--json`.
const SUMS_FORMAT: &str = "sha256sums";

/// One thing to check, in the order given.
enum Item {
    /// A `manifest.json`: every artifact it lists.
    Manifest(PathBuf),
    /// A `SHA256SUMS` with a cloudimg manifest beside it: it must list
    /// what the manifest lists, with the same digests.
    Sums(PathBuf, PathBuf),
    /// An artifact on its own.
    Artifact(PathBuf),
}

/// What to check: `--manifest`, then the arguments in order. An argument
/// that is a cloudimg manifest by its content is checked as `--manifest`
/// (so `verify dir/*` works); an artifact a manifest lists is checked
/// once, through the manifest; a manifest given twice is checked once; a
/// `SHA256SUMS` is checked against the manifest beside it.
fn plan(args: &Args) -> anyhow::Result<Vec<Item>> {
    let key = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let mut manifests: Vec<PathBuf> = args.manifest.iter().cloned().collect();
    manifests.extend(args.artifacts.iter().filter(|p| is_manifest(p)).cloned());
    let mut seen = HashSet::new();
    let mut listed = HashSet::new();
    let mut items = Vec::new();
    for m in manifests {
        if !seen.insert(key(&m)) {
            continue;
        }
        // An unreadable --manifest is reported by verify_manifest.
        if let Ok(manifest) = read_manifest(&m) {
            let dir = m.parent().map(Path::to_path_buf).unwrap_or_default();
            listed.extend(manifest.artifacts.iter().map(|a| key(&dir.join(&a.file))));
        }
        items.push(Item::Manifest(m));
    }
    for p in &args.artifacts {
        let k = key(p);
        if seen.contains(&k) || listed.contains(&k) {
            continue;
        }
        match sums_manifest(p) {
            Some(m) => items.push(Item::Sums(p.clone(), m)),
            None => items.push(Item::Artifact(p.clone())),
        }
    }
    Ok(items)
}

/// The manifest a `SHA256SUMS` belongs to: the cloudimg `manifest.json`
/// beside it (`package` writes the two together); none for another file.
fn sums_manifest(p: &Path) -> Option<PathBuf> {
    if p.file_name()? != SHA256SUMS {
        return None;
    }
    let m = p.with_file_name("manifest.json");
    is_manifest(&m).then_some(m)
}

/// Run the command.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut worst = 0u8;
    let mut json = Vec::new();
    let mut out = std::io::stdout().lock();
    let mut results: Vec<(PathBuf, Result<Report, String>, bool)> = Vec::new();
    for item in plan(&args)? {
        match item {
            Item::Manifest(m) => {
                for c in verify_manifest(&m)? {
                    let r = c.report.ok_or_else(|| c.error.unwrap_or_default());
                    results.push((c.path, r, false));
                }
            }
            Item::Sums(sums, manifest) => {
                let r = check_sums(&sums, &manifest).map_err(|e| e.to_string());
                results.push((sums, r, false));
            }
            Item::Artifact(path) => {
                let r = verify_path(&path).map_err(|e| e.to_string());
                results.push((path, r, true));
            }
        }
    }
    for (path, result, plain) in results {
        let path = &path;
        match result {
            Ok(mut report) => {
                if let Some(want) = args.expect_sha256.filter(|_| plain) {
                    if report.virtual_sha256 != Some(want) {
                        report.findings.push(Finding::whole(format!(
                            "decoded disk SHA-256 is {}, expected {want}",
                            report
                                .virtual_sha256
                                .map_or("unknown".into(), |s| s.to_string())
                        )));
                    }
                }
                let ok = report.is_ok();
                if !ok {
                    worst = worst.max(1);
                }
                if args.json {
                    json.push(result_json(path, &report)?);
                } else {
                    let size = report.virtual_size.map_or("?".into(), |s| s.to_string());
                    let sha = report.virtual_sha256.map_or("?".into(), |s| s.to_string());
                    let verdict = if ok { "ok" } else { "DEFECTIVE" };
                    if let Some(m) = report.details.get(SUMS_OF).and_then(|m| m.as_str()) {
                        writeln!(out, "{}: {verdict}: checksums of {m}", path.display())?;
                    } else {
                        writeln!(
                            out,
                            "{}: {verdict}: {}, virtual size {size}, decoded SHA-256 {sha}",
                            path.display(),
                            report.format
                        )?;
                    }
                    for f in &report.findings {
                        writeln!(out, "{}: {f}", path.display())?;
                    }
                }
            }
            Err(e) => {
                worst = 2;
                if args.json {
                    json.push(
                        serde_json::json!({"path": path, "ok": false, "error": e.to_string()}),
                    );
                } else {
                    log::error!("{e}");
                }
            }
        }
    }
    if args.json {
        drop(out);
        super::print_json(
            "verify",
            &serde_json::json!({"ok": worst == 0, "results": json}),
        )?;
    }
    Ok(ExitCode::from(worst))
}

/// One result of the `cloudimg.verify/1` document: the report, its sizes
/// under `_bytes` keys, the path and the verdict.
fn result_json(path: &Path, report: &Report) -> anyhow::Result<serde_json::Value> {
    let mut v = serde_json::to_value(report)?;
    super::rename_key(&mut v, "file_size", "file_size_bytes");
    super::rename_key(&mut v, "virtual_size", "virtual_size_bytes");
    v["path"] = serde_json::json!(path);
    v["ok"] = serde_json::json!(report.is_ok());
    if report.details.contains_key(SUMS_OF) {
        v["format"] = serde_json::json!(SUMS_FORMAT);
    }
    Ok(v)
}

/// Check a `SHA256SUMS` against the manifest beside it: the same lines
/// `package` writes for the artifacts the manifest lists, in its order.
/// A difference is a finding; the file is reported as plain text.
fn check_sums(sums: &Path, manifest: &Path) -> anyhow::Result<Report> {
    use std::io::Read;
    let m = read_manifest(manifest)?;
    let want: String = m.artifacts.iter().map(sums_line).collect();
    // One byte more than the expected text is enough to tell it differs
    // (a large file of that name is not read whole).
    let cannot = |e: std::io::Error| anyhow::anyhow!("{}: cannot be read: {e}", sums.display());
    let file = std::fs::File::open(sums).map_err(cannot)?;
    let size = file.metadata().map_err(cannot)?.len();
    let mut text = Vec::new();
    file.take(want.len() as u64 + 1)
        .read_to_end(&mut text)
        .map_err(cannot)?;
    let mut report = Report::new(cloudimg_disk::formats::Format::Raw, size);
    if text != want.as_bytes() {
        report.findings.push(Finding::whole(format!(
            "does not list the digests {} lists (run `sha256sum -c {SHA256SUMS}` in its directory)",
            manifest.display()
        )));
    }
    report.detail(SUMS_OF, manifest.display().to_string());
    Ok(report)
}
