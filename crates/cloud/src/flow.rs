//! One run: verify the artifact, upload, import, boot, wait for the
//! landmark on the serial console, tear down; with evidence.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use cloudimg_disk::io::OutputFile;
use cloudimg_disk::vocab::Provider;

use crate::artifact;
use crate::aws::AwsTarget;
use crate::azure::AzureTarget;
use crate::command::{interrupted, CloudCommand, Log, Runner, INTERRUPTED};
use crate::error::{Error, ErrorKind, Result};
use crate::gcp::GcpTarget;
use crate::journal::{Journal, Resource, State};
use crate::preflight::Identity;
use crate::provider::ProviderFlow;
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
    /// The provider's part of the run: the one place that matches on the
    /// provider (see [`crate::provider`] for adding one).
    pub(crate) fn flow(&self) -> &dyn ProviderFlow {
        match self {
            Target::Gcp(g) => g,
            Target::Aws(a) => a,
            Target::Azure(z) => z,
        }
    }

    /// The provider (one of [`Provider::CLOUDS`]).
    pub fn provider(&self) -> Provider {
        self.flow().provider()
    }

    /// The boot mode as the provider names it.
    pub fn boot_mode(&self) -> String {
        self.flow().boot_mode()
    }

    /// The run's resource name.
    pub fn name(&self) -> &str {
        self.flow().name()
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
    /// Once the boot is proven, keep the image (GCP image; AWS AMI and
    /// its snapshot; Azure managed disk) and tear down the rest.
    pub publish: bool,
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
    /// How long a NotFound right after a create is retried, and a
    /// deletion is waited for ([`Runner::settle`]).
    pub settle: Duration,
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
            publish: false,
            landmark: "capos kernel starting".into(),
            boot_timeout: Duration::from_secs(300),
            import_timeout: Duration::from_secs(3600),
            poll_interval: Duration::from_secs(5),
            env: Vec::new(),
            retries: 3,
            backoff: Duration::from_secs(2),
            command_timeout: Duration::from_secs(3600),
            settle: crate::command::SETTLE,
            log,
        }
    }
}

/// The `schema` of a run's summary (`summary.json`, `--json`).
pub const RUN_SCHEMA: &str = "cloudimg.cloud-run/1";

/// `summary.json`, and the `--json` output of a run:
/// `cloudimg.cloud-run/1` (docs/schema/cloud-run.schema.json).
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// [`RUN_SCHEMA`].
    pub schema: &'static str,
    /// The provider (`gcp`, `aws` or `azure` in JSON).
    pub provider: Provider,
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
    /// Who the CLI acted as (None when the preflight did not get there).
    pub identity: Option<Identity>,
    /// What `--publish` kept (None unless published).
    pub published: Option<Published>,
}

/// What `--publish` kept: the image, recorded in the journal as `kept`.
#[derive(Debug, Clone, Serialize)]
pub struct Published {
    /// The image (GCP image name and id, AMI id, Azure managed disk id).
    pub image_id: Option<String>,
    /// The resources kept, as the journal names them.
    pub resources: Vec<String>,
    /// The journal that lists them: `cloudimg cloud teardown --journal`
    /// removes them.
    pub journal: PathBuf,
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
pub(crate) fn ph(what: &str) -> String {
    format!("<{what}>")
}

/// The exact command lines a run would execute, in order, with `<...>`
/// for ids that only exist at run time. Lines starting with `#` name the
/// step.
pub fn plan(target: &Target, artifact: &Path) -> Vec<String> {
    let art = crate::command::path_arg(artifact);
    let mut out = vec![format!(
        "# verify\ncloudimg verify {}",
        crate::command::shell_quote(&art)
    )];
    for (name, cmds) in target.flow().steps(&art) {
        let mut s = format!("# {name}");
        for c in cmds {
            s.push('\n');
            s.push_str(&c.line());
        }
        out.push(s);
    }
    out.join("\n").lines().map(str::to_string).collect()
}

/// The files a run writes in its evidence directory.
const EVIDENCE_FILES: [&str; 7] = [
    "resources.json",
    "identity.json",
    "commands.jsonl",
    "verify.json",
    "artifact.json",
    "serial.log",
    "summary.json",
];

/// Write `bytes` as `path`: a new owner-only temporary file beside it
/// (exclusive, never through a symlink), fsynced, then given the name:
/// `replace` renames it over whatever has the name (a symlink is
/// replaced, never written through); otherwise the name must be free.
pub(crate) fn write_file(path: &Path, bytes: &[u8], replace: bool) -> Result<()> {
    use std::io::Write;
    let write = || -> std::io::Result<()> {
        let out = OutputFile::create(path)?;
        out.file().write_all(bytes)?;
        if replace {
            out.commit()?;
        } else {
            out.commit_new()?;
        }
        Ok(())
    };
    write().map_err(|e| Error::io("writing", path, e))
}

/// Write a JSON record that the run writes once (the name must be free).
fn write_json(path: &Path, v: &impl Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(v)
        .map_err(|e| Error::new(ErrorKind::Io, format!("encoding {}: {e}", path.display())))?;
    write_file(path, (text + "\n").as_bytes(), false)
}

/// Make the evidence directory (it may exist) and claim it for this
/// run: none of the run's files may be there already (another run's
/// journal may list live resources; a planted symlink is refused), and
/// `commands.jsonl` is created at once, exclusively and owner-only, so
/// the run appends only to its own file.
fn claim_evidence(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(|e| Error::io("creating the evidence directory", dir, e))?;
    for name in EVIDENCE_FILES {
        let p = dir.join(name);
        if fs::symlink_metadata(&p).is_ok() {
            return Err(Error::new(
                ErrorKind::Io,
                format!(
                    "the evidence directory {} already holds {name} (another run's evidence; its journal may list live resources): choose a new --evidence directory",
                    dir.display()
                ),
            ));
        }
    }
    let log = dir.join("commands.jsonl");
    crate::command::open_log(&log, true)
        .map(drop)
        .map_err(|e| Error::io("creating", &log, e))
}

/// Verify the artifact as `cloudimg verify` does and check it is the
/// shape `target` imports; write `verify.json` (whenever the verifier
/// made a report) and `artifact.json`. Returns the detected format's name.
fn check_artifact(target: &dyn ProviderFlow, opts: &RunOptions) -> Result<String> {
    let art = &opts.artifact;
    let report = artifact::verify(target, art)?;
    write_json(&opts.evidence_dir.join("verify.json"), &report)?;
    artifact::judge(target, art, &report)?;
    let record = artifact::record(art, &report)?;
    write_json(&opts.evidence_dir.join("artifact.json"), &record)?;
    Ok(report.format.name().to_string())
}

/// A run in progress, as a provider's [`ProviderFlow::run`] sees it: the
/// options, the command runner, the journal and the summary being
/// filled in.
pub(crate) struct Session<'a> {
    /// How to run.
    pub(crate) opts: &'a RunOptions,
    /// Runs the CLIs (retries, timeouts, `commands.jsonl`).
    pub(crate) runner: Runner,
    journal: Arc<Mutex<Journal>>,
    /// What the run has found so far (image and instance ids).
    pub(crate) summary: Summary,
}

impl Session<'_> {
    /// A progress line.
    pub(crate) fn log(&self, s: &str) {
        (self.opts.log)(s)
    }

    /// `Err(Interrupted)` once a signal asked the run to stop.
    pub(crate) fn check_interrupt(&self) -> Result<()> {
        if interrupted() {
            return Err(Error::new(ErrorKind::Interrupted, "interrupted"));
        }
        Ok(())
    }

    /// Journal `r` in state `s`; returns its index.
    pub(crate) fn add(&self, r: Resource, s: State) -> Result<usize> {
        self.check_interrupt()?;
        self.journal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .add(r, s)
    }

    /// Mark journal entry `i` created, as `r` (which may now carry its id).
    pub(crate) fn set(&self, i: usize, r: Resource) -> Result<()> {
        self.journal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .update(i, r, State::Created, None)
    }

    /// Run a creating command: journal the resource first (creating),
    /// then mark it created. Returns its index and the command's stdout.
    pub(crate) fn create(&self, r: Resource, cmd: &CloudCommand) -> Result<(usize, String)> {
        self.create_with(r, cmd, false)
    }

    /// [`Session::create`] for a command that names a resource just
    /// created (an AMI from its snapshot, an instance from its AMI): a
    /// NotFound is retried while the provider settles
    /// ([`Runner::run_settled`]).
    pub(crate) fn create_settled(
        &self,
        r: Resource,
        cmd: &CloudCommand,
    ) -> Result<(usize, String)> {
        self.create_with(r, cmd, true)
    }

    fn create_with(
        &self,
        r: Resource,
        cmd: &CloudCommand,
        settled: bool,
    ) -> Result<(usize, String)> {
        let i = self.add(r.clone(), State::Creating)?;
        self.log(&format!("$ {}", cmd.line()));
        let out = if settled {
            self.runner.run_settled(cmd)
        } else {
            self.runner.run(cmd)
        };
        match out {
            Ok(out) => {
                self.set(i, r)?;
                Ok((i, out.stdout))
            }
            Err(e) => {
                // Refused outright (no permission, no quota, the CLI
                // absent): the provider made nothing, so teardown has
                // nothing to look for and reports nothing left behind.
                if matches!(
                    e.kind,
                    ErrorKind::Permission | ErrorKind::Quota | ErrorKind::MissingCli
                ) {
                    let _ = self
                        .journal
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .update(
                            i,
                            r,
                            State::Deleted,
                            Some(format!("not created: {}", e.message)),
                        );
                }
                Err(e)
            }
        }
    }

    fn serial_path(&self) -> PathBuf {
        self.opts.evidence_dir.join("serial.log")
    }

    /// Poll `read` (returns the console text so far) until the landmark.
    pub(crate) fn wait_landmark(
        &mut self,
        started: Instant,
        mut read: impl FnMut(&Self) -> Result<String>,
    ) -> Result<()> {
        let deadline = started + self.opts.boot_timeout;
        let mut shown = 0usize;
        let mut written = None;
        loop {
            self.check_interrupt()?;
            let text = read(self)?;
            if written.as_ref() != Some(&text) {
                // Replaced whole each time it grows (never appended
                // through a symlink); a failure here only loses evidence.
                let _ = write_file(&self.serial_path(), text.as_bytes(), true);
                written = Some(text.clone());
            }
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
}

/// The CLIs `target` needs must be on PATH (the PATH in `opts.env` if
/// given) before anything is created.
fn preflight(target: &dyn ProviderFlow, opts: &RunOptions) -> Result<()> {
    let path = opts
        .env
        .iter()
        .rev()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.clone())
        .or_else(|| std::env::var_os("PATH"))
        .unwrap_or_default();
    for prog in target.clis() {
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

/// A failed creating command that is the import: the provider rejected
/// the artifact (`who`: `GCP`, `Azure`).
pub(crate) fn import_error(who: &str, e: Error) -> Error {
    if e.kind == ErrorKind::CommandFailed {
        Error::new(
            ErrorKind::ImportFailed,
            format!("{who} rejected the import: {}", e.message),
        )
    } else {
        e
    }
}

/// The summary before anything ran.
fn new_summary(target: &dyn ProviderFlow, run_id: &str, opts: &RunOptions) -> Summary {
    Summary {
        schema: RUN_SCHEMA,
        provider: target.provider(),
        run_id: run_id.to_string(),
        name: target.name().to_string(),
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
        identity: None,
        published: None,
    }
}

/// The runner for the CLIs, recording every command in the evidence.
fn new_runner(opts: &RunOptions) -> Runner {
    let mut runner = Runner::new(opts.log.clone());
    runner.env = opts.env.clone();
    runner.record = Some(opts.evidence_dir.join("commands.jsonl"));
    runner.retries = opts.retries;
    runner.backoff = opts.backoff;
    runner.timeout = opts.command_timeout;
    runner.settle = opts.settle;
    runner.poll = opts.poll_interval;
    runner
}

/// Run the whole flow for `target`. Returns the summary (also written as
/// `summary.json`) whether or not the landmark was seen; Err only when
/// the evidence directory cannot be written. Resources are torn down on
/// success, failure, timeout and interruption unless `opts.keep`.
pub fn run(target: &Target, name_run_id: &str, opts: &RunOptions) -> Result<Summary> {
    let t0 = Instant::now();
    let asked = target.flow();
    INTERRUPTED.store(false, Ordering::SeqCst);
    claim_evidence(&opts.evidence_dir)?;
    let mut summary = new_summary(asked, name_run_id, opts);
    let finish = |mut s: Summary, e: Option<Error>| -> Result<Summary> {
        if let Some(e) = e {
            s.error = Some(e.message.clone());
            s.error_kind = Some(e.kind);
        }
        s.total_seconds = (t0.elapsed().as_secs_f64() * 100.0).round() / 100.0;
        write_json(&opts.evidence_dir.join("summary.json"), &s)?;
        Ok(s)
    };
    if let Err(e) = asked.validate().and_then(|_| preflight(asked, opts)) {
        return finish(summary, Some(e));
    }
    (opts.log)(&format!("verifying {}", opts.artifact.display()));
    match check_artifact(asked, opts) {
        Ok(f) => summary.artifact_format = Some(f),
        Err(e) => return finish(summary, Some(e)),
    }
    // Who the CLI acts as, and the defaults its configuration gives;
    // nothing is created before this passes.
    let resolved = match who(asked, opts, &mut summary) {
        Ok(r) => r,
        Err(e) => return finish(summary, Some(e)),
    };
    let target = resolved.as_ref().map_or(asked, Target::flow);
    if let Err(e) = target.validate() {
        return finish(summary, Some(e));
    }
    summary.name = target.name().to_string();
    let (summary, result) = run_journaled(target, name_run_id, opts, summary)?;
    finish(summary, result.err())
}

/// The provider's preflight ([`ProviderFlow::preflight`]): print and
/// record the identity (`identity.json`, the summary); returns the
/// target with the defaults the CLI's configuration gave, if any.
fn who(
    target: &dyn ProviderFlow,
    opts: &RunOptions,
    summary: &mut Summary,
) -> Result<Option<Target>> {
    let runner = new_runner(opts);
    let (identity, resolved) = target.preflight(&runner)?;
    (opts.log)(&identity.line());
    write_json(&opts.evidence_dir.join("identity.json"), &identity)?;
    summary.identity = Some(identity);
    Ok(resolved)
}

/// From the journal's creation to the teardown (or `--keep`): the
/// provider's run, with the run registered for [`cleanup`] meanwhile.
fn run_journaled(
    target: &dyn ProviderFlow,
    run_id: &str,
    opts: &RunOptions,
    summary: Summary,
) -> Result<(Summary, Result<()>)> {
    let journal = Arc::new(Mutex::new(Journal::create(
        &opts.evidence_dir.join("resources.json"),
        target.provider().id(),
        run_id,
    )?));
    let runner = new_runner(opts);
    let mut teardown_runner = runner.clone();
    teardown_runner.interruptible = false;
    *ACTIVE.lock().unwrap_or_else(|e| e.into_inner()) = Some(Active {
        journal: journal.clone(),
        runner: teardown_runner.clone(),
    });
    let mut session = Session {
        opts,
        runner,
        journal: journal.clone(),
        summary,
    };
    let result = target.run(&mut session);
    let mut summary = session.summary;
    summary.passed = result.is_ok();
    if let Err(e) = &result {
        (opts.log)(&format!("FAIL: {e}"));
    }
    if result.is_ok() && opts.publish && !opts.keep && !interrupted() {
        summary.published = Some(publish(target, &journal, &summary, opts)?);
    }
    if opts.keep && !interrupted() {
        summary.kept = true;
        print_kept(&journal, opts);
    } else {
        let report = teardown(&journal, &teardown_runner);
        for (what, why) in &report.failed {
            (opts.log)(&format!("teardown: LEFT BEHIND {what}: {why}"));
        }
        summary.teardown = Some(report);
    }
    let mut active = ACTIVE.lock().unwrap_or_else(|e| e.into_inner());
    if active
        .as_ref()
        .is_some_and(|a| Arc::ptr_eq(&a.journal, &journal))
    {
        *active = None;
    }
    Ok((summary, result))
}

/// `--publish`: mark the provider's image resources kept in the journal
/// (the teardown then leaves them) and say how to remove them later.
fn publish(
    target: &dyn ProviderFlow,
    journal: &Mutex<Journal>,
    summary: &Summary,
    opts: &RunOptions,
) -> Result<Published> {
    let mut j = journal.lock().unwrap_or_else(|e| e.into_inner());
    let mut kept = Vec::new();
    for (i, r) in j.live() {
        if target.publishes(&r) {
            j.keep(i)?;
            kept.push(r.to_string());
        }
    }
    (opts.log)(&format!(
        "published {}: kept {}; remove with `cloudimg cloud teardown --journal {}`",
        summary.image_id.as_deref().unwrap_or("?"),
        kept.join(", "),
        j.path().display()
    ));
    Ok(Published {
        image_id: summary.image_id.clone(),
        resources: kept,
        journal: j.path().to_path_buf(),
    })
}

/// `--keep`: say how to remove what was left up.
fn print_kept(journal: &Mutex<Journal>, opts: &RunOptions) {
    let j = journal.lock().unwrap_or_else(|e| e.into_inner());
    (opts.log)(&format!(
        "--keep: resources left up; remove them with `cloudimg cloud teardown --journal {}`, or:",
        j.path().display()
    ));
    for line in removal_commands(&j) {
        (opts.log)(&format!("  {line}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evidence_files_are_owner_only_and_never_written_through_a_symlink() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        let victim = t.path().join("victim");
        fs::write(&victim, "untouched").unwrap();
        let serial = t.path().join("serial.log");
        std::os::unix::fs::symlink(&victim, &serial).unwrap();
        // Replaced in place: the symlink itself is replaced.
        write_file(&serial, b"console", true).unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "untouched");
        assert_eq!(fs::read_to_string(&serial).unwrap(), "console");
        let mode = fs::symlink_metadata(&serial).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // Written once: a taken name (a symlink) is refused.
        let summary = t.path().join("summary.json");
        std::os::unix::fs::symlink(&victim, &summary).unwrap();
        assert!(write_json(&summary, &1).is_err());
        assert_eq!(fs::read_to_string(&victim).unwrap(), "untouched");
        // The command log is appended to without following a symlink.
        let log = t.path().join("commands.jsonl");
        std::os::unix::fs::symlink(&victim, &log).unwrap();
        assert!(crate::command::open_log(&log, false).is_err());
        assert!(crate::command::open_log(&log, true).is_err());
        // No temporary file left behind.
        let mut names: Vec<_> = fs::read_dir(t.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["commands.jsonl", "serial.log", "summary.json", "victim"]
        );
    }

    #[test]
    fn timestamps_are_utc_civil_dates() {
        assert_eq!(timestamp(0), "19700101-000000");
        assert_eq!(timestamp(1_700_000_000), "20231114-221320");
        assert_eq!(timestamp(951_782_400), "20000229-000000");
    }
}
