//! One run: verify the artifact, upload, import, boot, wait for the
//! landmark on the serial console, tear down; with evidence.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use cloudimg_disk::formats::Format;
use cloudimg_disk::verify::verify_path;
use cloudimg_disk::vocab::Provider;

use crate::aws::{self, AwsFormat, AwsTarget};
use crate::azure::{self, AzureTarget};
use crate::command::{interrupted, CloudCommand, Log, Runner, INTERRUPTED};
use crate::error::{Error, ErrorKind, Result};
use crate::gcp::{self, GcpTarget};
use crate::journal::{Journal, Resource, State};
use crate::teardown::{removal_commands, teardown, TeardownReport};

/// Which cloud, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Google Compute Engine.
    Gcp(GcpTarget),
    /// Amazon EC2.
    Aws(AwsTarget),
    /// Microsoft Azure.
    Azure(AzureTarget),
}

impl Target {
    /// The provider (one of [`Provider::CLOUDS`]).
    pub fn provider(&self) -> Provider {
        match self {
            Target::Gcp(_) => Provider::Gcp,
            Target::Aws(_) => Provider::Aws,
            Target::Azure(_) => Provider::Azure,
        }
    }

    /// The boot mode as the provider names it.
    pub fn boot_mode(&self) -> String {
        match self {
            Target::Gcp(g) if g.uefi => "UEFI_COMPATIBLE".into(),
            Target::Gcp(_) => "legacy-bios".into(),
            Target::Aws(a) => a.boot_mode.api_name().into(),
            Target::Azure(z) => z.generation.api_name().into(),
        }
    }

    fn validate(&self) -> Result<()> {
        match self {
            Target::Gcp(g) => g.validate(),
            Target::Aws(a) => a.validate(),
            Target::Azure(z) => z.validate(),
        }
    }
}

/// How to run.
#[derive(Clone)]
pub struct RunOptions {
    /// The artifact to upload.
    pub artifact: PathBuf,
    /// The evidence directory (created).
    pub evidence_dir: PathBuf,
    /// Leave the resources up.
    pub keep: bool,
    /// The line to wait for on the serial console.
    pub landmark: String,
    /// How long to wait for the landmark once the instance runs.
    pub boot_timeout: Duration,
    /// How long the import may take.
    pub import_timeout: Duration,
    /// Between two polls (import task, serial console).
    pub poll_interval: Duration,
    /// Extra environment for the CLIs.
    pub env: Vec<(OsString, OsString)>,
    /// Retries for transient failures.
    pub retries: u32,
    /// First backoff (doubled per retry).
    pub backoff: Duration,
    /// Limit for one CLI command.
    pub command_timeout: Duration,
    /// Progress lines.
    pub log: Log,
}

impl RunOptions {
    /// Defaults: landmark `capos kernel starting`, 300 s boot, 1 h import,
    /// poll every 5 s, 3 retries from 2 s.
    pub fn new(artifact: PathBuf, evidence_dir: PathBuf, log: Log) -> Self {
        RunOptions {
            artifact,
            evidence_dir,
            keep: false,
            landmark: "capos kernel starting".into(),
            boot_timeout: Duration::from_secs(300),
            import_timeout: Duration::from_secs(3600),
            poll_interval: Duration::from_secs(5),
            env: Vec::new(),
            retries: 3,
            backoff: Duration::from_secs(2),
            command_timeout: Duration::from_secs(3600),
            log,
        }
    }
}

/// `summary.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// `gcp`, `aws` or `azure`.
    pub provider: String,
    /// The run id.
    pub run_id: String,
    /// Resource name.
    pub name: String,
    /// The artifact.
    pub artifact: PathBuf,
    /// Its detected format.
    pub artifact_format: Option<String>,
    /// The image (GCP name / AMI id / Azure managed disk id).
    pub image_id: Option<String>,
    /// The instance (GCP name / instance id / Azure VM id).
    pub instance_id: Option<String>,
    /// The boot mode.
    pub boot_mode: String,
    /// Seconds from the instance's creation to the landmark.
    pub seconds_to_landmark: Option<f64>,
    /// The landmark was seen.
    pub passed: bool,
    /// Why not.
    pub error: Option<String>,
    /// The kind of failure.
    pub error_kind: Option<ErrorKind>,
    /// Resources were left up on purpose.
    pub kept: bool,
    /// What teardown did (None when kept).
    pub teardown: Option<TeardownReport>,
    /// Seconds for the whole run.
    pub total_seconds: f64,
    /// The evidence directory.
    pub evidence_dir: PathBuf,
}

/// The run in progress, for [`cleanup`].
struct Active {
    journal: Arc<Mutex<Journal>>,
    runner: Runner,
}

static ACTIVE: Mutex<Option<Active>> = Mutex::new(None);

/// For the CLI's signal handler: stop the run in progress (its current
/// CLI command is killed) and tear down every resource it created.
/// Returns how many resources were deleted. Safe to call with no run.
pub fn cleanup() -> usize {
    INTERRUPTED.store(true, Ordering::SeqCst);
    let active = ACTIVE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .map(|a| (a.journal.clone(), a.runner.clone()));
    match active {
        Some((journal, runner)) => {
            let report = teardown(&journal, &runner);
            for (what, why) in &report.failed {
                (runner.log)(&format!("teardown: LEFT BEHIND {what}: {why}"));
            }
            report.deleted.len()
        }
        None => 0,
    }
}

/// `YYYYMMDD-HHMMSS` (UTC) for `unix` seconds.
pub fn timestamp(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// A fresh run id: UTC time and the process id.
pub fn new_run_id() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!("{}-{:05}", timestamp(now), std::process::id() % 100_000)
}

/// The placeholder shown in plans for a value known only at run time.
fn ph(what: &str) -> String {
    format!("<{what}>")
}

/// The exact command lines a run would execute, in order, with `<...>`
/// for ids that only exist at run time. Lines starting with `#` name the
/// step.
pub fn plan(target: &Target, artifact: &Path) -> Vec<String> {
    let art = artifact.display().to_string();
    let mut out = vec![format!(
        "# verify\ncloudimg verify {}",
        crate::command::shell_quote(&art)
    )];
    let mut step = |name: &str, cmds: Vec<CloudCommand>| {
        let mut s = format!("# {name}");
        for c in cmds {
            s.push('\n');
            s.push_str(&c.line());
        }
        out.push(s);
    };
    match target {
        Target::Gcp(g) => {
            step("upload", vec![g.upload(&art)]);
            step("import", vec![g.create_image()]);
            step("boot", vec![g.create_instance()]);
            step("read serial (repeated, --start=<next>)", vec![g.serial(0)]);
            step(
                "teardown",
                vec![
                    gcp::delete_instance(&g.name, &g.zone, &g.project),
                    gcp::delete_image(&g.name, &g.project),
                    gcp::delete_object(&g.object_uri(), &g.project, g.gsutil),
                ],
            );
        }
        Target::Aws(a) => {
            let r = a.region.as_deref();
            step("upload", vec![a.upload(&art)]);
            step(
                "import (poll the task until completed)",
                vec![
                    a.import_snapshot(),
                    a.describe_import(&ph("import-task-id")),
                ],
            );
            step("register", vec![a.register_image(&ph("snapshot-id"))]);
            step("boot", vec![a.run_instance(&ph("image-id"))]);
            step(
                "read console (repeated)",
                vec![a.console(&ph("instance-id"))],
            );
            step(
                "teardown",
                vec![
                    aws::terminate(&ph("instance-id"), r),
                    aws::deregister(&ph("image-id"), r),
                    aws::delete_snapshot(&ph("snapshot-id"), r),
                    aws::delete_object(&a.object_uri(), r),
                ],
            );
        }
        Target::Azure(z) => {
            step("upload (page blob)", vec![z.upload(&art)]);
            step("import (managed disk from the blob)", vec![z.create_disk()]);
            step("network", vec![z.create_vnet(), z.create_nic()]);
            step("boot (OS disk attached)", vec![z.create_vm()]);
            step("read serial (repeated)", vec![z.boot_log()]);
            step("teardown", z.teardown());
        }
    }
    out.join("\n").lines().map(str::to_string).collect()
}

fn write_json(path: &Path, v: &impl Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(v)
        .map_err(|e| Error::new(ErrorKind::Io, format!("encoding {}: {e}", path.display())))?;
    fs::write(path, text + "\n").map_err(|e| Error::io("writing", path, e))
}

/// Verify the artifact as `cloudimg verify` does and check it is the
/// shape `target` imports; write `verify.json` and `artifact.json`.
/// Returns the detected format's name.
fn check_artifact(target: &Target, opts: &RunOptions) -> Result<String> {
    let art = &opts.artifact;
    if !art.is_file() {
        return Err(Error::new(
            ErrorKind::Artifact,
            format!(
                "artifact {} does not exist (run `cloudimg package` first)",
                art.display()
            ),
        ));
    }
    let report = verify_path(art)
        .map_err(|e| Error::new(ErrorKind::Artifact, format!("verifying the artifact: {e}")))?;
    write_json(&opts.evidence_dir.join("verify.json"), &report)?;
    if let Some(f) = report.findings.first() {
        let more = match report.findings.len() {
            1 => String::new(),
            n => format!(" (and {} more findings)", n - 1),
        };
        return Err(Error::new(
            ErrorKind::Artifact,
            format!("artifact {} failed verification: {f}{more}", art.display()),
        ));
    }
    let wanted = match target {
        Target::Gcp(_) => matches!(report.format, Format::Gzip),
        Target::Aws(a) => matches!(
            (a.format, report.format),
            (AwsFormat::Raw, Format::Raw)
                | (AwsFormat::Vhd, Format::VhdFixed | Format::VhdDynamic)
                | (AwsFormat::Vmdk, Format::Vmdk)
        ),
        Target::Azure(_) => matches!(report.format, Format::VhdFixed),
    };
    if !wanted {
        let want = match target {
            Target::Gcp(_) => "a GCP disk.raw.tar.gz".to_string(),
            Target::Aws(a) => format!("{} (--format {})", a.format.api_name(), a.format.ext()),
            Target::Azure(_) => "a fixed VHD (cloudimg package --azure)".to_string(),
        };
        return Err(Error::new(
            ErrorKind::Artifact,
            format!(
                "artifact {} is a {} file, expected {want}",
                art.display(),
                report.format
            ),
        ));
    }
    if let Target::Azure(_) = target {
        // Azure's own rules (MiB-aligned, >= 20 MiB), which a verified
        // fixed VHD may still break.
        azure::check_artifact(art)?;
    }
    // The manifest entry beside the artifact, else one computed here.
    let file = art
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let manifest = art
        .parent()
        .map(|d| d.join("manifest.json"))
        .filter(|p| p.is_file());
    let mut entry = None;
    if let Some(mp) = &manifest {
        let parsed = fs::read_to_string(mp).map(|t| serde_json::from_str::<serde_json::Value>(&t));
        if let Ok(Ok(v)) = parsed {
            entry = v["artifacts"]
                .as_array()
                .and_then(|a| a.iter().find(|e| e["file"].as_str() == Some(file.as_str())))
                .cloned();
        }
    }
    let decoded = report.virtual_sha256.map(|s| s.to_string());
    let record = match entry {
        Some(e) => {
            if e["virtual_sha256"].as_str().map(str::to_string) != decoded {
                return Err(Error::new(
                    ErrorKind::Artifact,
                    format!(
                        "artifact {} decodes to SHA-256 {} but its manifest says {}",
                        art.display(),
                        decoded.unwrap_or_else(|| "?".into()),
                        e["virtual_sha256"].as_str().unwrap_or("nothing")
                    ),
                ));
            }
            serde_json::json!({"source": "manifest", "manifest": manifest, "entry": e})
        }
        None => {
            let sha =
                cloudimg_disk::io::sha256_file(art).map_err(|e| Error::io("hashing", art, e))?;
            serde_json::json!({"source": "computed", "entry": {
                "file": file, "size": report.file_size, "sha256": sha.to_string(),
                "format": report.format, "virtual_size": report.virtual_size,
                "virtual_sha256": decoded,
            }})
        }
    };
    write_json(&opts.evidence_dir.join("artifact.json"), &record)?;
    Ok(report.format.name().to_string())
}

struct Ctx<'a> {
    opts: &'a RunOptions,
    runner: Runner,
    journal: Arc<Mutex<Journal>>,
    summary: Summary,
}

impl Ctx<'_> {
    fn log(&self, s: &str) {
        (self.opts.log)(s)
    }

    fn check_interrupt(&self) -> Result<()> {
        if interrupted() {
            return Err(Error::new(ErrorKind::Interrupted, "interrupted"));
        }
        Ok(())
    }

    fn add(&self, r: Resource, s: State) -> Result<usize> {
        self.check_interrupt()?;
        self.journal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .add(r, s)
    }

    fn set(&self, i: usize, r: Resource) -> Result<()> {
        self.journal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .update(i, r, State::Created, None)
    }

    /// Run a creating command: journal the resource first (creating),
    /// then mark it created.
    fn create(&self, r: Resource, cmd: &CloudCommand) -> Result<(usize, String)> {
        let i = self.add(r.clone(), State::Creating)?;
        self.log(&format!("$ {}", cmd.line()));
        let out = self.runner.run(cmd)?;
        self.set(i, r)?;
        Ok((i, out.stdout))
    }

    fn serial_path(&self) -> PathBuf {
        self.opts.evidence_dir.join("serial.log")
    }

    /// Poll `read` (returns the console text so far) until the landmark.
    fn wait_landmark(
        &mut self,
        started: Instant,
        mut read: impl FnMut(&Self) -> Result<String>,
    ) -> Result<()> {
        let deadline = started + self.opts.boot_timeout;
        let mut shown = 0usize;
        loop {
            self.check_interrupt()?;
            let text = read(self)?;
            let _ = fs::write(self.serial_path(), &text);
            if text.len() > shown {
                shown = text.len();
            }
            if text.contains(&self.opts.landmark) {
                let secs = started.elapsed().as_secs_f64();
                self.summary.seconds_to_landmark = Some((secs * 100.0).round() / 100.0);
                self.log(&format!(
                    "landmark {:?} seen after {secs:.1} s",
                    self.opts.landmark
                ));
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "landmark {:?} not seen on the serial console within {} s ({} bytes of output, see serial.log)",
                        self.opts.landmark,
                        self.opts.boot_timeout.as_secs(),
                        shown
                    ),
                ));
            }
            std::thread::sleep(self.opts.poll_interval);
        }
    }

    fn run_gcp(&mut self, g: &GcpTarget) -> Result<()> {
        let art = self.opts.artifact.display().to_string();
        let obj = Resource::GcsObject {
            uri: g.object_uri(),
            project: g.project.clone(),
            gsutil: g.gsutil,
        };
        self.create(obj, &g.upload(&art))?;
        let img = Resource::GcpImage {
            name: g.name.clone(),
            project: g.project.clone(),
        };
        let (_, out) = self.create(img, &g.create_image()).map_err(import_error)?;
        let (name, id) = gcp::parse_created(&out, "images")?;
        self.summary.image_id = Some(if id.is_empty() {
            name
        } else {
            format!("{name} ({id})")
        });
        let inst = Resource::GcpInstance {
            name: g.name.clone(),
            zone: g.zone.clone(),
            project: g.project.clone(),
        };
        let (_, out) = self.create(inst, &g.create_instance())?;
        let (iname, _) = gcp::parse_created(&out, "instances")?;
        self.summary.instance_id = Some(iname);
        let started = Instant::now();
        let mut next = 0u64;
        let mut text = String::new();
        self.wait_landmark(started, |c| {
            let out = c.runner.run(&g.serial(next))?;
            let (more, n) = gcp::parse_serial(&out.stdout, next)?;
            text.push_str(&more);
            next = n;
            Ok(text.clone())
        })
    }

    fn run_aws(&mut self, a: &AwsTarget) -> Result<()> {
        let art = self.opts.artifact.display().to_string();
        let region = a.region.clone();
        let obj = Resource::S3Object {
            uri: a.object_uri(),
            region: region.clone(),
        };
        self.create(obj, &a.upload(&art))?;

        let mut task_res = Resource::AwsImportTask {
            id: None,
            description: a.name.clone(),
            region: region.clone(),
        };
        let (i, out) = self.create(task_res.clone(), &a.import_snapshot())?;
        let task = aws::parse_import_task(&out)?;
        if let Resource::AwsImportTask { id, .. } = &mut task_res {
            *id = Some(task.clone());
        }
        self.set(i, task_res)?;
        let deadline = Instant::now() + self.opts.import_timeout;
        let snapshot = loop {
            self.check_interrupt()?;
            let st = aws::parse_import_status(&self.runner.run(&a.describe_import(&task))?.stdout)?;
            match st.status.as_str() {
                "completed" => match st.snapshot_id {
                    Some(s) => break s,
                    None => {
                        return Err(Error::new(
                            ErrorKind::BadOutput,
                            format!("import task {task} completed without a SnapshotId"),
                        ))
                    }
                },
                "deleting" | "deleted" => {
                    let why = st.message.unwrap_or_else(|| "no StatusMessage".into());
                    let kind = if why.contains("vmimport") {
                        ErrorKind::Permission
                    } else {
                        ErrorKind::ImportFailed
                    };
                    return Err(Error::new(
                        kind,
                        format!(
                            "AWS rejected the import ({task}, {} {}): {why}",
                            a.format.api_name(),
                            a.object_uri()
                        ),
                    ));
                }
                s => self.log(&format!(
                    "import {task}: {s} {}% {}",
                    st.progress.as_deref().unwrap_or("?"),
                    st.message.as_deref().unwrap_or("")
                )),
            }
            if Instant::now() >= deadline {
                return Err(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "import task {task} did not complete within {} s",
                        self.opts.import_timeout.as_secs()
                    ),
                ));
            }
            std::thread::sleep(self.opts.poll_interval);
        };
        self.add(
            Resource::AwsSnapshot {
                id: snapshot.clone(),
                region: region.clone(),
            },
            State::Created,
        )?;
        self.log(&format!("imported snapshot {snapshot}"));

        let mut img = Resource::AwsImage {
            id: None,
            name: a.name.clone(),
            region: region.clone(),
        };
        let (i, out) = self.create(img.clone(), &a.register_image(&snapshot))?;
        let ami = aws::parse_image_id(&out)?;
        if let Resource::AwsImage { id, .. } = &mut img {
            *id = Some(ami.clone());
        }
        self.set(i, img)?;
        self.summary.image_id = Some(ami.clone());

        let mut inst = Resource::AwsInstance {
            id: None,
            name: a.name.clone(),
            region: region.clone(),
        };
        let (i, out) = self.create(inst.clone(), &a.run_instance(&ami))?;
        let iid = aws::parse_instance_id(&out)?;
        if let Resource::AwsInstance { id, .. } = &mut inst {
            *id = Some(iid.clone());
        }
        self.set(i, inst)?;
        self.summary.instance_id = Some(iid.clone());
        let started = Instant::now();
        self.wait_landmark(started, |c| {
            let out = c.runner.run(&a.console(&iid))?;
            aws::parse_console(&out.stdout)
        })
    }
}

impl Ctx<'_> {
    fn run_azure(&mut self, z: &AzureTarget) -> Result<()> {
        let art = self.opts.artifact.display().to_string();
        let [blob, disk, vnet, nic, vm] = <[Resource; 5]>::try_from(z.resources())
            .map_err(|_| Error::new(ErrorKind::InvalidInput, "internal: Azure resource list"))?;
        self.create(blob, &z.upload(&art))?;
        let (_, out) = self.create(disk, &z.create_disk()).map_err(|e| {
            if e.kind == ErrorKind::CommandFailed {
                Error::new(
                    ErrorKind::ImportFailed,
                    format!("Azure rejected the import: {}", e.message),
                )
            } else {
                e
            }
        })?;
        let disk_id = azure::parse_id(&out, "disk create")?;
        if let Some(g) = azure::parse_generation(&out) {
            if g != z.generation.api_name() {
                return Err(Error::new(
                    ErrorKind::BadOutput,
                    format!(
                        "az disk create made a {g} disk, {} was asked for",
                        z.generation.api_name()
                    ),
                ));
            }
        }
        self.log(&format!("imported disk {disk_id}"));
        self.summary.image_id = Some(disk_id);
        self.create(vnet, &z.create_vnet())?;
        self.create(nic, &z.create_nic())?;
        let (_, out) = self.create(vm, &z.create_vm())?;
        self.summary.instance_id = Some(azure::parse_id(&out, "vm create")?);
        let started = Instant::now();
        let cmd = z.boot_log();
        self.wait_landmark(started, |c| {
            let out = c.runner.run_raw(&cmd)?;
            if out.success() {
                return Ok(out.stdout);
            }
            // Nothing written yet [U].
            if out.stderr.contains("BlobNotFound") {
                return Ok(String::new());
            }
            Err(crate::command::failure_error(&cmd, &out))
        })
    }
}

/// The CLIs `target` needs must be on PATH (the PATH in `opts.env` if
/// given) before anything is created.
fn preflight(target: &Target, opts: &RunOptions) -> Result<()> {
    let path = opts
        .env
        .iter()
        .rev()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.clone())
        .or_else(|| std::env::var_os("PATH"))
        .unwrap_or_default();
    let needed: &[&str] = match target {
        Target::Gcp(g) if g.gsutil => &["gcloud", "gsutil"],
        Target::Gcp(_) => &["gcloud"],
        Target::Aws(_) => &["aws"],
        Target::Azure(_) => &["az"],
    };
    for prog in needed {
        if !std::env::split_paths(&path).any(|d| d.join(prog).is_file()) {
            let hint = crate::command::install_hint(prog);
            return Err(Error::new(
                ErrorKind::MissingCli,
                format!("`{prog}` not found on PATH: {hint}; `--plan` prints the commands without running them"),
            ));
        }
    }
    Ok(())
}

/// A failed `images create` is GCP rejecting the import.
fn import_error(e: Error) -> Error {
    if e.kind == ErrorKind::CommandFailed {
        Error::new(
            ErrorKind::ImportFailed,
            format!("GCP rejected the import: {}", e.message),
        )
    } else {
        e
    }
}

/// Run the whole flow for `target`. Returns the summary (also written as
/// `summary.json`) whether or not the landmark was seen; Err only when
/// the evidence directory cannot be written. Resources are torn down on
/// success, failure, timeout and interruption unless `opts.keep`.
pub fn run(target: &Target, name_run_id: &str, opts: &RunOptions) -> Result<Summary> {
    let t0 = Instant::now();
    INTERRUPTED.store(false, Ordering::SeqCst);
    fs::create_dir_all(&opts.evidence_dir)
        .map_err(|e| Error::io("creating the evidence directory", &opts.evidence_dir, e))?;
    let name = match target {
        Target::Gcp(g) => g.name.clone(),
        Target::Aws(a) => a.name.clone(),
        Target::Azure(z) => z.name.clone(),
    };
    let mut summary = Summary {
        provider: target.provider().id().into(),
        run_id: name_run_id.to_string(),
        name,
        artifact: opts.artifact.clone(),
        artifact_format: None,
        image_id: None,
        instance_id: None,
        boot_mode: target.boot_mode(),
        seconds_to_landmark: None,
        passed: false,
        error: None,
        error_kind: None,
        kept: false,
        teardown: None,
        total_seconds: 0.0,
        evidence_dir: opts.evidence_dir.clone(),
    };
    let journal_path = opts.evidence_dir.join("resources.json");
    let commands = opts.evidence_dir.join("commands.jsonl");
    let mut runner = Runner::new(opts.log.clone());
    runner.env = opts.env.clone();
    runner.record = Some(commands);
    runner.retries = opts.retries;
    runner.backoff = opts.backoff;
    runner.timeout = opts.command_timeout;

    let finish = |mut s: Summary, e: Option<Error>| -> Result<Summary> {
        if let Some(e) = e {
            s.error = Some(e.message.clone());
            s.error_kind = Some(e.kind);
        }
        s.total_seconds = (t0.elapsed().as_secs_f64() * 100.0).round() / 100.0;
        write_json(&opts.evidence_dir.join("summary.json"), &s)?;
        Ok(s)
    };

    if let Err(e) = target.validate().and_then(|_| preflight(target, opts)) {
        return finish(summary, Some(e));
    }
    (opts.log)(&format!("verifying {}", opts.artifact.display()));
    match check_artifact(target, opts) {
        Ok(f) => summary.artifact_format = Some(f),
        Err(e) => return finish(summary, Some(e)),
    }
    let journal = Arc::new(Mutex::new(Journal::create(
        &journal_path,
        target.provider().id(),
        name_run_id,
    )?));
    let mut teardown_runner = runner.clone();
    teardown_runner.interruptible = false;
    *ACTIVE.lock().unwrap_or_else(|e| e.into_inner()) = Some(Active {
        journal: journal.clone(),
        runner: teardown_runner.clone(),
    });

    let mut ctx = Ctx {
        opts,
        runner,
        journal: journal.clone(),
        summary,
    };
    let result = match target {
        Target::Gcp(g) => ctx.run_gcp(g),
        Target::Aws(a) => ctx.run_aws(a),
        Target::Azure(z) => ctx.run_azure(z),
    };
    let mut summary = ctx.summary;
    summary.passed = result.is_ok();
    if let Err(e) = &result {
        (opts.log)(&format!("FAIL: {e}"));
    }

    if opts.keep && !interrupted() {
        summary.kept = true;
        let j = journal.lock().unwrap_or_else(|e| e.into_inner());
        (opts.log)(&format!(
            "--keep: resources left up; remove them with `cloudimg cloud teardown --journal {}`, or:",
            j.path().display()
        ));
        for line in removal_commands(&j) {
            (opts.log)(&format!("  {line}"));
        }
    } else {
        let report = teardown(&journal, &teardown_runner);
        for (what, why) in &report.failed {
            (opts.log)(&format!("teardown: LEFT BEHIND {what}: {why}"));
        }
        summary.teardown = Some(report);
    }
    {
        let mut active = ACTIVE.lock().unwrap_or_else(|e| e.into_inner());
        if active
            .as_ref()
            .is_some_and(|a| Arc::ptr_eq(&a.journal, &journal))
        {
            *active = None;
        }
    }
    finish(summary, result.err())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_civil_dates() {
        assert_eq!(timestamp(0), "19700101-000000");
        assert_eq!(timestamp(1_700_000_000), "20231114-221320");
        assert_eq!(timestamp(951_782_400), "20000229-000000");
    }
}
