//! Finding and reading the evidence a report lists.
//!
//! - A boot record: a JSON object with the fields of
//!   `cloudimg_boot::BootRecord` (`artifact`, `artifact_format`,
//!   `firmware`, `disk_interface`, `accel`, `landmark`, `passed`,
//!   `seconds_to_landmark`, `failure`, `serial_tail`, ...), written by
//!   `cloudimg boot --log DIR` as `boot-<firmware>-<disk>.json`; told by
//!   `"schema": "cloudimg.boot/..."` or, without a schema, by its
//!   `firmware`, `disk_interface` and `passed` keys.
//! - A cloud run: `summary.json` of `cloudimg cloud ... --evidence DIR`
//!   (`provider`, `run_id`, `artifact`, `artifact_format`, `boot_mode`,
//!   `passed`, `seconds_to_landmark`, `error`), told by
//!   `"schema": "cloudimg.cloud-run/..."` or by its `provider`, `run_id`
//!   and `passed` keys; its serial tail is read from `serial.log` beside
//!   it.
//!
//! Other JSON files (manifests, `verify.json`, ...) are not boots and are
//! passed over; a file named as a record (`boot-*.json`, `summary.json`)
//! that cannot be read as one is an error naming it.

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};
use serde_json::Value;

use super::Report;

/// How deep below the evidence directory records are looked for:
/// `make demo` puts them one level down (`evidence/<artifact>/`), a cloud
/// run's default directory is one level down too; two more levels leave
/// room for a directory of such directories.
const MAX_DEPTH: usize = 4;

/// The largest JSON file read as a record. A boot record is a few KiB
/// (20 lines of serial tail and a QEMU command line); anything this large
/// is not one.
const MAX_RECORD_BYTES: u64 = 16 << 20;

/// How much of the end of a cloud run's `serial.log` is read for its tail.
const SERIAL_TAIL_BYTES: u64 = 64 << 10;

/// Lines of serial console shown per boot, as `cloudimg boot` keeps in
/// its records (`serial_tail`, harness.rs: `log_tail(&log, 20)`).
pub const SERIAL_TAIL_LINES: usize = 20;

/// Where a boot ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Where {
    /// Under QEMU on this machine, with this accelerator (`tcg`, `kvm`).
    Qemu(String),
    /// In a cloud (`gcp`, `aws`, `azure`).
    Cloud(String),
}

impl std::fmt::Display for Where {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Where::Qemu(accel) => write!(f, "qemu {accel}"),
            Where::Cloud(provider) => f.write_str(provider),
        }
    }
}

/// One boot, as the report shows it.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The record's path relative to the evidence directory.
    pub record: PathBuf,
    /// The artifact as recorded (a path).
    pub artifact: String,
    /// The artifact's format name (`raw`, `vhd`, ...), `-` when unknown.
    pub format: String,
    /// `uefi`/`bios` for a local boot; the provider's boot mode for a
    /// cloud run (`UEFI_COMPATIBLE`, `uefi-preferred`, `V2`, ...).
    pub firmware: String,
    /// `virtio`, `nvme`, `scsi`, `ide`; `-` in a cloud (the provider's).
    pub disk: String,
    /// Where it ran.
    pub place: Where,
    /// Whether the landmark was seen.
    pub passed: bool,
    /// Seconds to the landmark.
    pub seconds: Option<f64>,
    /// The line waited for (not recorded by cloud runs).
    pub landmark: Option<String>,
    /// Why it failed.
    pub failure: Option<String>,
    /// The last lines of the serial console.
    pub serial_tail: String,
    /// SHA-256 of the artifact, when recorded.
    pub sha256: Option<String>,
}

impl Entry {
    /// The artifact's file name (what the table shows).
    pub fn artifact_name(&self) -> String {
        Path::new(&self.artifact).file_name().map_or_else(
            || self.artifact.clone(),
            |n| n.to_string_lossy().into_owned(),
        )
    }

    /// The details both reports list for this boot, in order, as
    /// (label, value); optional ones only when recorded.
    pub fn details(&self) -> Vec<(&'static str, String)> {
        let mut d = vec![("Artifact", self.artifact.clone())];
        if let Some(sha) = &self.sha256 {
            d.push(("SHA-256", sha.clone()));
        }
        d.push(("Format", self.format.clone()));
        d.push(("Where", self.place.to_string()));
        if let Some(l) = &self.landmark {
            d.push(("Landmark", l.clone()));
        }
        d.push(("Seconds to landmark", super::seconds_text(self.seconds)));
        if let Some(f) = &self.failure {
            d.push(("Failure", f.clone()));
        }
        d.push(("Record", self.record.display().to_string()));
        d
    }

    /// `PASS` or `FAIL`.
    pub fn result(&self) -> &'static str {
        if self.passed {
            "PASS"
        } else {
            "FAIL"
        }
    }
}

/// Read every boot recorded in `dir` (and its subdirectories), sorted by
/// record path. An evidence directory with no boot in it is an error.
pub fn load(dir: &Path) -> anyhow::Result<Report> {
    let meta = fs::metadata(dir).with_context(|| format!("reading {}", dir.display()))?;
    if !meta.is_dir() {
        bail!("{}: not a directory (give an evidence directory: boot --log DIR, cloud --evidence DIR)", dir.display());
    }
    let mut files = Vec::new();
    walk(dir, 0, &mut files)?;
    files.sort();
    let mut entries = Vec::new();
    for f in files {
        if let Some(e) = read_record(dir, &f)? {
            entries.push(e);
        }
    }
    if entries.is_empty() {
        bail!(
            "{}: no boot records (boot-*.json of `cloudimg boot --log`) or cloud run summaries (summary.json of `cloudimg cloud --evidence`) in it",
            dir.display()
        );
    }
    Ok(Report {
        dir: dir.to_path_buf(),
        entries,
    })
}

/// Collect the `*.json` files under `dir`, never through a symlink.
fn walk(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let rd = fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    for ent in rd {
        let ent = ent.with_context(|| format!("reading {}", dir.display()))?;
        let path = ent.path();
        let ft = ent
            .file_type()
            .with_context(|| format!("reading {}", path.display()))?;
        if ft.is_dir() && depth + 1 < MAX_DEPTH {
            walk(&path, depth + 1, out)?;
        } else if ft.is_file() && path.extension().is_some_and(|x| x == "json") {
            out.push(path);
        }
    }
    Ok(())
}

/// Whether a file's name says it is a record (so it must read as one).
fn named_as_record(path: &Path) -> bool {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    name == "summary.json" || (name.starts_with("boot-") && name.ends_with(".json"))
}

/// What kind of evidence a JSON document is.
enum Kind {
    Boot,
    CloudRun,
    Other,
}

fn kind(v: &Value) -> Kind {
    let has = |k: &str| v.get(k).is_some();
    match v.get("schema").and_then(Value::as_str) {
        Some(s) if s.starts_with("cloudimg.boot/") => Kind::Boot,
        Some(s) if s.starts_with("cloudimg.cloud-run/") => Kind::CloudRun,
        Some(_) => Kind::Other,
        None if has("firmware") && has("disk_interface") && has("passed") => Kind::Boot,
        None if has("provider") && has("run_id") && has("passed") => Kind::CloudRun,
        None => Kind::Other,
    }
}

/// The entry `path` records, None when it is not a boot.
fn read_record(dir: &Path, path: &Path) -> anyhow::Result<Option<Entry>> {
    let must = named_as_record(path);
    let v = match read_json(path) {
        Ok(v) => v,
        Err(e) if must => return Err(e),
        Err(_) => return Ok(None),
    };
    let rel = path.strip_prefix(dir).unwrap_or(path).to_path_buf();
    let entry = match kind(&v) {
        Kind::Boot => boot_entry(&v, rel),
        Kind::CloudRun => cloud_entry(&v, rel, path),
        Kind::Other if must => Err(anyhow!(
            "not a boot record or cloud run summary (no firmware/disk_interface/passed or provider/run_id/passed keys)"
        )),
        Kind::Other => return Ok(None),
    };
    entry
        .map(Some)
        .with_context(|| format!("reading {}", path.display()))
}

/// A JSON object from `path`, of bounded size.
fn read_json(path: &Path) -> anyhow::Result<Value> {
    let ctx = || format!("reading {}", path.display());
    let f = fs::File::open(path).with_context(ctx)?;
    let mut text = String::new();
    f.take(MAX_RECORD_BYTES + 1)
        .read_to_string(&mut text)
        .with_context(ctx)?;
    if text.len() as u64 > MAX_RECORD_BYTES {
        bail!(
            "{}: larger than 16 MiB, not a cloudimg record",
            path.display()
        );
    }
    let v: Value =
        serde_json::from_str(&text).with_context(|| format!("{}: invalid JSON", path.display()))?;
    if !v.is_object() {
        bail!("{}: not a JSON object", path.display());
    }
    Ok(v)
}

fn string(v: &Value, key: &str) -> anyhow::Result<String> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| anyhow!("key {key:?} missing or not a string"))
}

fn opt_string(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string)
}

fn passed(v: &Value) -> anyhow::Result<bool> {
    v.get("passed")
        .and_then(Value::as_bool)
        .ok_or_else(|| anyhow!("key \"passed\" missing or not true/false"))
}

fn seconds(v: &Value) -> anyhow::Result<Option<f64>> {
    match v.get("seconds_to_landmark") {
        None | Some(Value::Null) => Ok(None),
        Some(s) => s
            .as_f64()
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(Some)
            .ok_or_else(|| anyhow!("key \"seconds_to_landmark\" is not a number of seconds")),
    }
}

fn boot_entry(v: &Value, record: PathBuf) -> anyhow::Result<Entry> {
    Ok(Entry {
        record,
        artifact: string(v, "artifact")?,
        format: opt_string(v, "artifact_format").unwrap_or_else(|| "-".into()),
        firmware: string(v, "firmware")?,
        disk: string(v, "disk_interface")?,
        place: Where::Qemu(opt_string(v, "accel").unwrap_or_else(|| "-".into())),
        passed: passed(v)?,
        seconds: seconds(v)?,
        landmark: opt_string(v, "landmark"),
        failure: opt_string(v, "failure"),
        serial_tail: opt_string(v, "serial_tail").unwrap_or_default(),
        sha256: opt_string(v, "artifact_sha256"),
    })
}

fn cloud_entry(v: &Value, record: PathBuf, path: &Path) -> anyhow::Result<Entry> {
    let serial = path.with_file_name("serial.log");
    Ok(Entry {
        record,
        artifact: string(v, "artifact")?,
        format: opt_string(v, "artifact_format").unwrap_or_else(|| "-".into()),
        firmware: opt_string(v, "boot_mode").unwrap_or_else(|| "-".into()),
        disk: "-".into(),
        place: Where::Cloud(string(v, "provider")?),
        passed: passed(v)?,
        seconds: seconds(v)?,
        landmark: None,
        failure: opt_string(v, "error"),
        serial_tail: serial_tail(&serial)?,
        sha256: None,
    })
}

/// The last lines of a cloud run's `serial.log` (empty when there is
/// none, e.g. the run failed before the instance booted; a symlink at
/// that name is not followed).
fn serial_tail(path: &Path) -> anyhow::Result<String> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_file() => {}
        _ => return Ok(String::new()),
    }
    let ctx = || format!("reading {}", path.display());
    let mut f = fs::File::open(path).with_context(ctx)?;
    let len = f.metadata().with_context(ctx)?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(SERIAL_TAIL_BYTES)))
        .with_context(ctx)?;
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes).with_context(ctx)?;
    Ok(cloudimg_boot::harness::log_tail(&bytes, SERIAL_TAIL_LINES))
}
