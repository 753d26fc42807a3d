//! One provider CLI command line, and the runner that executes it with
//! retries, a time limit, interruption and a record in `commands.jsonl`.

use std::ffi::OsString;
use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::error::{Error, ErrorKind, Result};

/// Set by [`crate::cleanup`]: interruptible commands are killed and the
/// flow stops starting new steps.
pub(crate) static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Whether an interruption was requested.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// The default [`Runner::settle`]: 5 minutes, the "few minutes" AWS
/// gives for its eventual consistency (see the field).
pub const SETTLE: Duration = Duration::from_secs(300);

/// A progress sink: one human-readable line per call (stderr in the CLI).
pub type Log = Arc<dyn Fn(&str) + Send + Sync>;

/// A log that drops everything.
pub fn quiet() -> Log {
    Arc::new(|_| {})
}

/// A program and its arguments, exactly as run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudCommand {
    /// `gcloud`, `gsutil` or `aws`.
    pub program: String,
    /// The arguments.
    pub args: Vec<String>,
}

impl CloudCommand {
    /// `program` with `args`.
    pub fn new<S: Into<String>>(program: &str, args: impl IntoIterator<Item = S>) -> Self {
        CloudCommand {
            program: program.to_string(),
            args: args.into_iter().map(Into::into).collect(),
        }
    }

    /// The command as one shell line (arguments quoted where needed).
    pub fn line(&self) -> String {
        std::iter::once(self.program.as_str())
            .chain(self.args.iter().map(String::as_str))
            .map(shell_quote)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The first words that name the operation (`gcloud compute images
    /// create`), for messages.
    pub fn name(&self) -> String {
        std::iter::once(self.program.as_str())
            .chain(
                self.args
                    .iter()
                    .take_while(|a| !a.starts_with('-'))
                    .take(3)
                    .map(String::as_str),
            )
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Quote `s` for a POSIX shell when it holds anything but safe characters.
pub fn shell_quote(s: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "_-./:=,@%+".contains(c);
    if !s.is_empty() && s.chars().all(safe) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// A local path as a CLI argument: one starting with `-` gets `./` in
/// front, so that no CLI reads the artifact's name as an option.
pub fn path_arg(p: &Path) -> String {
    let s = p.display().to_string();
    if s.starts_with('-') {
        format!("./{s}")
    } else {
        s
    }
}

/// How to get `program` (`aws`, `az`, else the Google Cloud CLI).
pub fn install_hint(program: &str) -> &'static str {
    match program {
        "aws" => "install the AWS CLI v2 (https://aws.amazon.com/cli/)",
        "az" => "install the Azure CLI (https://learn.microsoft.com/cli/azure/install-azure-cli)",
        _ => "install the Google Cloud CLI (https://cloud.google.com/sdk/docs/install)",
    }
}

/// What a command printed and how it ended.
#[derive(Debug, Clone)]
pub struct CmdOutput {
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// Exit status (-1 when killed by a signal).
    pub status: i32,
}

impl CmdOutput {
    /// Exit status 0.
    pub fn success(&self) -> bool {
        self.status == 0
    }
}

/// How a failure reads, from the providers' error texts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Worth retrying: throttling, 5xx, connection trouble.
    Transient,
    /// The resource does not exist (a delete of something already gone).
    NotFound,
    /// The `vmimport` service role is missing or lacks permissions.
    VmImportRole,
    /// Permission denied or no credentials.
    Permission,
    /// A quota or limit.
    Quota,
    /// Anything else.
    Other,
}

/// Classify a failed command's stderr. Texts are the ones the AWS CLI
/// (`An error occurred (Code) when calling the X operation: ...`) and
/// gcloud (`ERROR: (gcloud.x) ... - reason`) print.
pub fn classify(stderr: &str) -> Failure {
    let has = |pats: &[&str]| pats.iter().any(|p| stderr.contains(p));
    let lower = stderr.to_ascii_lowercase();
    if has(&[
        "RequestLimitExceeded",
        "Throttling",
        "ThrottlingException",
        "ServiceUnavailable",
        "InternalError",
        "InternalFailure",
        "Could not connect to the endpoint URL",
        "Connection was closed",
        "Read timeout on endpoint",
        "SlowDown",
        "HTTPError 5",
        "HTTPError 429",
        "(Code: '503')",
        "(Code: '500')",
        "Internal error. Please try again",
        "rateLimitExceeded",
        "backendError",
        "Connection reset by peer",
        "TLS handshake timeout",
        // Azure (ARM error codes as `az` prints them: `ERROR: (Code) ...`).
        "(TooManyRequests)",
        "(InternalServerError)",
        "(GatewayTimeout)",
        "(RetryableError)",
        "ErrorCode:ServerBusy",
        "ErrorCode:InternalError",
        "ErrorCode:OperationTimedOut",
        // EC2's 503: "Unavailable: The server is overloaded and can't
        // handle the request" (EC2 API reference, "Error codes for the
        // Amazon EC2 API", server errors).
        "(Unavailable)",
        // botocore appends "(reached max retries: N)" to the error only
        // when its retry handler gave up on an error it counts as
        // retryable (throttling, 5xx): `ClientError._get_retry_info` in
        // botocore/exceptions.py reads `MaxAttemptsReached`, set by
        // retryhandler.py (legacy mode) and retries/standard.py.
        "(reached max retries:",
        // Compute Engine rate quotas: "a 403 error with the reason
        // rateLimitExceeded. To resolve this error, wait a minute then try
        // your request again", message "Rate Limit Exceeded"
        // (cloud.google.com/compute/api-quota and the operation-limits
        // troubleshooting page). gcloud prints only the message
        // (`Could not fetch resource: - Rate Limit Exceeded`, seen with
        // the Google Cloud SDK 528 against standin/api).
        "Rate Limit Exceeded",
        // google.rpc.Code UNAVAILABLE (HTTP 503): "The service is
        // currently unavailable. This is most likely a transient
        // condition" (googleapis google/rpc/code.proto); gcloud prints
        // the message only.
        "The service is currently unavailable",
    ]) || rate_quota(&lower)
    {
        return Failure::Transient;
    }
    if lower.contains("vmimport") {
        return Failure::VmImportRole;
    }
    if has(&[
        "was not found",
        "matched no objects",
        "No URLs matched",
        ".NotFound",
        "InvalidAMIID.Unavailable",
        "NoSuchKey",
        "InvalidConversionTaskId",
        "(ResourceNotFound)",
        "ErrorCode:BlobNotFound",
    ]) {
        return Failure::NotFound;
    }
    if has(&[
        "UnauthorizedOperation",
        "AccessDenied",
        "Access Denied",
        "AuthFailure",
        "Unable to locate credentials",
        "ExpiredToken",
        "PERMISSION_DENIED",
        "Required '",
        "HTTPError 403",
        "HTTPError 401",
        "does not have storage.",
        "You do not currently have an active account selected",
        "(AuthorizationFailed)",
        "AuthorizationPermissionMismatch",
        "Please run 'az login'",
        "You do not have the required permissions needed to perform this operation",
    ]) {
        return Failure::Permission;
    }
    if has(&[
        "LimitExceeded",
        "QUOTA_EXCEEDED",
        "Quota '",
        "ResourceLimitExceeded",
        "InsufficientInstanceCapacity",
        "(QuotaExceeded)",
        "(OperationNotAllowed) Operation could not be completed as it results in exceeding approved",
    ]) || lower.contains("quota exceeded")
    {
        return Failure::Quota;
    }
    Failure::Other
}

/// A per-minute rate quota (the 429 `RESOURCE_EXHAUSTED` form of Google
/// APIs: "Quota exceeded for quota metric 'Read requests' and limit
/// 'Read requests per minute' of service 'compute.googleapis.com'"): it
/// refills within the minute, so it is transient, unlike a resource
/// quota (`Quota 'CPUS' exceeded`), which is not.
fn rate_quota(lower: &str) -> bool {
    lower.contains("quota exceeded for quota metric")
        && (lower.contains("per minute") || lower.contains("per 100 seconds"))
}

/// The meaningful part of a CLI's stderr, on one line.
pub fn reason(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let text = lines.join(" ");
    const MAX: usize = 400;
    if text.len() > MAX {
        let mut end = MAX;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &text[..end])
    } else {
        text
    }
}

/// Runs commands: environment, retries with backoff for transient
/// failures, a time limit, and one `commands.jsonl` record per attempt.
#[derive(Clone)]
pub struct Runner {
    /// Extra environment for every command (e.g. PATH for the stand-ins).
    pub env: Vec<(OsString, OsString)>,
    /// Where each attempt is recorded (`commands.jsonl`).
    pub record: Option<PathBuf>,
    /// Attempts after the first for transient failures.
    pub retries: u32,
    /// The first backoff; doubled on each retry.
    pub backoff: Duration,
    /// Limit for one command.
    pub timeout: Duration,
    /// Whether [`crate::cleanup`] kills this runner's commands (false for
    /// teardown, which must finish).
    pub interruptible: bool,
    /// How long a provider may take to show a change everywhere: a
    /// NotFound for a resource just created is retried this long, and
    /// teardown waits this long for a deletion to be confirmed. AWS: "run
    /// the Describe command repeatedly, starting with a couple of seconds
    /// of wait time, and increasing gradually up to a few minutes"
    /// (docs.aws.amazon.com/ec2/latest/devguide/eventual-consistency.html).
    pub settle: Duration,
    /// Between two looks while settling.
    pub poll: Duration,
    /// Progress.
    pub log: Log,
}

impl Runner {
    /// A runner with 3 retries from 2 s, a 1 h limit per command.
    pub fn new(log: Log) -> Self {
        Runner {
            env: Vec::new(),
            record: None,
            retries: 3,
            backoff: Duration::from_secs(2),
            timeout: Duration::from_secs(3600),
            interruptible: true,
            settle: SETTLE,
            poll: Duration::from_secs(5),
            log,
        }
    }

    /// Sleep `d`, or less when interrupted (interruptible runners only).
    pub(crate) fn pause(&self, d: Duration) -> Result<()> {
        let until = Instant::now() + d;
        while Instant::now() < until {
            if self.interruptible && interrupted() {
                return Err(Error::new(ErrorKind::Interrupted, "interrupted"));
            }
            std::thread::sleep(Duration::from_millis(20).min(d));
        }
        Ok(())
    }

    /// Run a command about a resource just created, and require success:
    /// a NotFound answer is the provider's eventual consistency ("If you
    /// run a command to modify or describe the resource that you just
    /// created, its ID might not have propagated throughout the system",
    /// AWS, ibid.), retried with a doubling pause for up to
    /// [`Runner::settle`].
    pub fn run_settled(&self, cmd: &CloudCommand) -> Result<CmdOutput> {
        let deadline = Instant::now() + self.settle;
        let mut delay = self.poll.min(Duration::from_secs(2));
        loop {
            let out = self.run_raw(cmd)?;
            if out.success() {
                return Ok(out);
            }
            if classify(&out.stderr) != Failure::NotFound || Instant::now() >= deadline {
                return Err(failure_error(cmd, &out));
            }
            (self.log)(&format!(
                "{}: not found yet ({}); the provider is eventually consistent, asking again in {:.1} s",
                cmd.name(),
                reason(&out.stderr),
                delay.as_secs_f64()
            ));
            self.pause(delay)?;
            delay = delay.saturating_mul(2).min(Duration::from_secs(30));
        }
    }

    /// Run `cmd`, retrying transient failures; Ok with the output even if
    /// the final attempt failed. Err only if it could not run at all
    /// (missing CLI), timed out or was interrupted.
    pub fn run_raw(&self, cmd: &CloudCommand) -> Result<CmdOutput> {
        let mut attempt = 0;
        let mut delay = self.backoff;
        loop {
            attempt += 1;
            let out = self.once(cmd, attempt)?;
            if out.success()
                || attempt > self.retries
                || classify(&out.stderr) != Failure::Transient
            {
                return Ok(out);
            }
            (self.log)(&format!(
                "{}: transient failure ({}); retrying in {:.1} s (attempt {} of {})",
                cmd.name(),
                reason(&out.stderr),
                delay.as_secs_f64(),
                attempt + 1,
                self.retries + 1
            ));
            self.pause(delay)?;
            delay = delay.saturating_mul(2);
        }
    }

    /// Run `cmd` and require success; a failure becomes an error whose
    /// kind says whether it was permission, quota or else.
    pub fn run(&self, cmd: &CloudCommand) -> Result<CmdOutput> {
        let out = self.run_raw(cmd)?;
        if out.success() {
            return Ok(out);
        }
        Err(failure_error(cmd, &out))
    }

    fn once(&self, cmd: &CloudCommand, attempt: u32) -> Result<CmdOutput> {
        let started = Instant::now();
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        // The CLI stays in cloudimg's process group, so that whatever ends
        // cloudimg's group (a terminal's hang-up, a CI job killed) ends
        // it too; a timeout or an interrupt ends its whole tree
        // ([`kill_tree`]).
        let mut c = Command::new(&cmd.program);
        c.args(&cmd.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &self.env {
            c.env(k, v);
        }
        let mut child = match c.spawn() {
            Ok(ch) => ch,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let hint = install_hint(&cmd.program);
                self.record(cmd, attempt, wall, 0.0, None, "", "not found on PATH");
                return Err(Error::new(
                    ErrorKind::MissingCli,
                    format!("`{}` not found on PATH: {hint}; `--plan` prints the commands without running them", cmd.program),
                ));
            }
            Err(e) => {
                return Err(Error::new(
                    ErrorKind::CommandFailed,
                    format!("starting `{}`: {e}", cmd.name()),
                ))
            }
        };
        let mut so = child.stdout.take();
        let mut se = child.stderr.take();
        let t_out = std::thread::spawn(move || {
            let mut s = Vec::new();
            if let Some(p) = so.as_mut() {
                let _ = p.read_to_end(&mut s);
            }
            s
        });
        let t_err = std::thread::spawn(move || {
            let mut s = Vec::new();
            if let Some(p) = se.as_mut() {
                let _ = p.read_to_end(&mut s);
            }
            s
        });
        let mut stopped: Option<Error> = None;
        let status = loop {
            match child.try_wait() {
                Ok(Some(st)) => break st.code().unwrap_or(-1),
                Ok(None) => {}
                Err(e) => {
                    stopped = Some(Error::new(
                        ErrorKind::CommandFailed,
                        format!("waiting for `{}`: {e}", cmd.name()),
                    ));
                }
            }
            if stopped.is_none() && self.interruptible && interrupted() {
                stopped = Some(Error::new(
                    ErrorKind::Interrupted,
                    format!("interrupted during `{}`", cmd.name()),
                ));
            }
            if stopped.is_none() && started.elapsed() > self.timeout {
                stopped = Some(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "`{}` did not finish within {} s",
                        cmd.name(),
                        self.timeout.as_secs()
                    ),
                ));
            }
            if stopped.is_some() {
                kill_tree(&mut child);
                break -1;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let stdout = String::from_utf8_lossy(&t_out.join().unwrap_or_default()).into_owned();
        let stderr = String::from_utf8_lossy(&t_err.join().unwrap_or_default()).into_owned();
        let secs = started.elapsed().as_secs_f64();
        self.record(cmd, attempt, wall, secs, Some(status), &stdout, &stderr);
        if let Some(e) = stopped {
            return Err(e);
        }
        Ok(CmdOutput {
            stdout,
            stderr,
            status,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        cmd: &CloudCommand,
        attempt: u32,
        started: f64,
        seconds: f64,
        exit: Option<i32>,
        stdout: &str,
        stderr: &str,
    ) {
        let Some(path) = &self.record else { return };
        let tail = |s: &str, n: usize| -> String {
            let mut start = s.len().saturating_sub(n);
            while !s.is_char_boundary(start) {
                start += 1;
            }
            s[start..].to_string()
        };
        let v = serde_json::json!({
            "line": cmd.line(),
            "argv": std::iter::once(&cmd.program).chain(cmd.args.iter()).collect::<Vec<_>>(),
            "attempt": attempt,
            "started_unix": (started * 1000.0).round() / 1000.0,
            "seconds": (seconds * 1000.0).round() / 1000.0,
            "exit": exit,
            "stdout_bytes": stdout.len(),
            "stdout_tail": tail(stdout, 2000),
            "stderr_tail": tail(stderr, 2000),
        });
        if let Ok(mut f) = open_log(path, false) {
            let _ = f.write_all(format!("{v}\n").as_bytes());
        }
    }
}

/// A process's parent and session, from `/proc/PID/stat` (fields 4
/// and 6, after the parenthesised command name: proc(5)).
fn proc_stat(pid: i32) -> Option<(i32, i32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = text.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some((f.get(1)?.parse().ok()?, f.get(3)?.parse().ok()?))
}

/// Kill `child` and every process it started that is still in its
/// session: `gsutil` and `gcloud` are wrappers that run further Python
/// processes, which would outlive the limit and hold the output pipes
/// (and so the readers) open. The tree is stopped (SIGSTOP) while it is
/// walked, so that nothing forks past the walk, then killed; a process
/// that left the session (a daemon) is not cloudimg's to kill.
fn kill_tree(child: &mut std::process::Child) {
    use rustix::process::{kill_process, Pid, Signal};
    let signal = |pid: i32, sig: Signal| {
        if let Some(p) = Pid::from_raw(pid) {
            let _ = kill_process(p, sig);
        }
    };
    let root = i32::try_from(child.id()).unwrap_or(0);
    if let Some((_, session)) = proc_stat(root) {
        let mut tree = vec![root];
        // Bounded: each round stops what the last one found.
        for _ in 0..16 {
            tree.iter().for_each(|&p| signal(p, Signal::STOP));
            let found: Vec<i32> = std::fs::read_dir("/proc")
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
                .filter(|p| !tree.contains(p))
                .filter(|&p| {
                    proc_stat(p).is_some_and(|(ppid, sid)| sid == session && tree.contains(&ppid))
                })
                .collect();
            if found.is_empty() {
                break;
            }
            tree.extend(found);
        }
        tree.iter().for_each(|&p| signal(p, Signal::KILL));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Open the command log `path` for appending: owner-only, never through
/// a symlink (`O_NOFOLLOW`), and with `new` created exclusively (the run
/// claims it once, so it never appends to a file someone else made).
pub(crate) fn open_log(path: &Path, new: bool) -> std::io::Result<std::fs::File> {
    let mut o = OpenOptions::new();
    o.append(true)
        .mode(0o600)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32);
    if new {
        o.create_new(true);
    } else {
        o.create(true);
    }
    o.open(path)
}

/// The error for a command that failed for good.
pub fn failure_error(cmd: &CloudCommand, out: &CmdOutput) -> Error {
    let why = reason(&out.stderr);
    let what = format!("`{}` failed (exit {})", cmd.name(), out.status);
    match classify(&out.stderr) {
        Failure::VmImportRole => Error::new(
            ErrorKind::Permission,
            format!("{what}: {why} (VM Import needs the `vmimport` service role with access to the bucket: https://docs.aws.amazon.com/vm-import/latest/userguide/required-permissions.html)"),
        ),
        Failure::Permission => Error::new(
            ErrorKind::Permission,
            format!("{what}: permission denied: {why}"),
        ),
        Failure::Quota => Error::new(ErrorKind::Quota, format!("{what}: quota exceeded: {why}")),
        Failure::Transient => Error::new(
            ErrorKind::CommandFailed,
            format!("{what} after retries: {why}"),
        ),
        _ => Error::new(ErrorKind::CommandFailed, format!("{what}: {why}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_leaves_plain_words_alone() {
        assert_eq!(shell_quote("gs://b/x.tar.gz"), "gs://b/x.tar.gz");
        assert_eq!(shell_quote("--zone=us-central1-a"), "--zone=us-central1-a");
        assert_eq!(shell_quote("{\"a\":1}"), "'{\"a\":1}'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn a_path_is_never_an_option() {
        assert_eq!(path_arg(Path::new("--recursive")), "./--recursive");
        assert_eq!(path_arg(Path::new("-x.raw")), "./-x.raw");
        assert_eq!(path_arg(Path::new("out/disk.raw")), "out/disk.raw");
        assert_eq!(path_arg(Path::new("/abs/-x")), "/abs/-x");
    }

    #[test]
    fn provider_error_texts_are_classified() {
        let aws = |code: &str| {
            format!("\nAn error occurred ({code}) when calling the RunInstances operation: x\n")
        };
        assert_eq!(classify(&aws("RequestLimitExceeded")), Failure::Transient);
        assert_eq!(classify(&aws("VcpuLimitExceeded")), Failure::Quota);
        assert_eq!(classify(&aws("InstanceLimitExceeded")), Failure::Quota);
        assert_eq!(classify(&aws("UnauthorizedOperation")), Failure::Permission);
        assert_eq!(
            classify(&aws("InvalidInstanceID.NotFound")),
            Failure::NotFound
        );
        assert_eq!(
            classify("An error occurred (InvalidParameter) when calling the ImportSnapshot operation: The service role vmimport provided does not exist or does not have sufficient permissions"),
            Failure::VmImportRole
        );
        assert_eq!(
            classify("ERROR: (gcloud.compute.instances.create) Could not fetch resource:\n - Quota 'CPUS' exceeded.  Limit: 0.0 in region us-central1.\n"),
            Failure::Quota
        );
        assert_eq!(
            classify("ERROR: (gcloud.compute.images.delete) Could not fetch resource:\n - The resource 'projects/p/global/images/x' was not found\n"),
            Failure::NotFound
        );
        assert_eq!(
            classify("ERROR: (gcloud.compute.images.create) Could not fetch resource:\n - Required 'compute.images.create' permission for 'projects/p'\n"),
            Failure::Permission
        );
        assert_eq!(
            classify("ERROR: (gcloud.storage.cp) HTTPError 503: Service Unavailable"),
            Failure::Transient
        );
        assert_eq!(
            classify("ERROR: (gcloud.storage.rm) The following URLs matched no objects or files:\ngs://b/x\n"),
            Failure::NotFound
        );
        assert_eq!(
            classify("CommandException: No URLs matched: gs://b/x"),
            Failure::NotFound
        );
        assert_eq!(
            classify("ERROR: (gcloud.compute.images.create) Could not fetch resource:\n - The tar archive is not a valid image.\n"),
            Failure::Other
        );
        // EC2's 503 past botocore's retries, as awscli 1.46 prints it.
        assert_eq!(
            classify("\nAn error occurred (Unavailable) when calling the RegisterImage operation (reached max retries: 4): The server is overloaded and can't handle the request.\n"),
            Failure::Transient
        );
        assert_eq!(
            classify(&aws("InvalidAMIID.Unavailable")),
            Failure::NotFound
        );
        // gcloud: the message of a 403 rateLimitExceeded and of a 503.
        assert_eq!(
            classify("ERROR: (gcloud.compute.images.create) Could not fetch resource:\n - Rate Limit Exceeded\n"),
            Failure::Transient
        );
        assert_eq!(
            classify("ERROR: (gcloud.compute.instances.create) Could not fetch resource:\n - The service is currently unavailable.\n"),
            Failure::Transient
        );
        assert_eq!(
            classify("ERROR: (gcloud.compute.instances.list) Could not fetch resource:\n - Quota exceeded for quota metric 'Read requests' and limit 'Read requests per minute' of service 'compute.googleapis.com' for consumer 'project_number:1'.\n"),
            Failure::Transient
        );
        // az: ARM errors as `ERROR: (Code) Message`, blob errors with an
        // `ErrorCode:` line.
        let arm = |code: &str| format!("ERROR: ({code}) x\nCode: {code}\nMessage: x\n");
        assert_eq!(classify(&arm("TooManyRequests")), Failure::Transient);
        assert_eq!(classify(&arm("ResourceNotFound")), Failure::NotFound);
        assert_eq!(classify(&arm("AuthorizationFailed")), Failure::Permission);
        assert_eq!(classify(&arm("QuotaExceeded")), Failure::Quota);
        assert_eq!(classify(&arm("BadRequest")), Failure::Other);
        assert_eq!(
            classify(
                "The specified blob does not exist.\nRequestId:1\nTime:t\nErrorCode:BlobNotFound\n"
            ),
            Failure::NotFound
        );
        assert_eq!(
            classify("The server is busy.\nErrorCode:ServerBusy\n"),
            Failure::Transient
        );
    }
}
