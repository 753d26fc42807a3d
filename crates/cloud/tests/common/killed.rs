//! The harness killed mid-run (SIGKILL to its process group, the CLI it
//! was running included: no chance to clean up), as when a CI job or a
//! terminal session dies. The test binary re-runs itself as a child that
//! runs only its `child_flow` test, which calls [`child_options`] and
//! does nothing unless the parent set the variables below. The journal
//! the child wrote is then all `cloud teardown --journal` has.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cloudimg_cloud::{teardown_journal, RunOptions, Runner};

/// The child's evidence directory (and the sign that this process is one).
const EVIDENCE: &str = "CLOUDIMG_TEST_CHILD_EVIDENCE";
/// The artifact the child runs.
const ARTIFACT: &str = "CLOUDIMG_TEST_CHILD_ARTIFACT";
/// The cloud's environment for the flow's CLIs, as JSON pairs.
const ENV: &str = "CLOUDIMG_TEST_CHILD_ENV";

/// In the child: the run options the parent described; `None` in any
/// other process (the `child_flow` test is then a no-op).
pub fn child_options() -> Option<RunOptions> {
    let evidence = PathBuf::from(std::env::var_os(EVIDENCE)?);
    let artifact = PathBuf::from(std::env::var_os(ARTIFACT).unwrap());
    let env: Vec<(String, String)> = serde_json::from_str(&std::env::var(ENV).unwrap()).unwrap();
    let log: cloudimg_cloud::Log = Arc::new(|s: &str| eprintln!("child: {s}"));
    let mut o = RunOptions::new(artifact, evidence, log);
    o.env = env.into_iter().map(|(k, v)| (k.into(), v.into())).collect();
    o.poll_interval = Duration::from_millis(300);
    o.boot_timeout = Duration::from_secs(300);
    Some(o)
}

/// Whether the journal at `path` shows a resource of `kind` in `state`.
pub fn journal_has(path: &Path, kind: &str, state: &str) -> bool {
    let Ok(text) = std::fs::read_to_string(path) else {
        return false;
    };
    let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
        return false;
    };
    v["resources"].as_array().is_some_and(|a| {
        a.iter()
            .any(|r| r["resource"]["kind"] == kind && r["state"] == state)
    })
}

/// Run `child_flow` in a child process with the cloud environment `env`,
/// artifact and evidence directory, and SIGKILL its process group once
/// its journal shows `kind` in `state`; the journal's path.
pub fn run_and_kill(
    env: Vec<(OsString, OsString)>,
    artifact: &Path,
    evidence: &Path,
    kind: &str,
    state: &str,
) -> PathBuf {
    let journal = evidence.join("resources.json");
    let env: Vec<(String, String)> = env
        .into_iter()
        .map(|(k, v)| (k.into_string().unwrap(), v.into_string().unwrap()))
        .collect();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["child_flow", "--exact", "--nocapture", "--test-threads=1"])
        .env(ENV, serde_json::to_string(&env).unwrap())
        .env(EVIDENCE, evidence)
        .env(ARTIFACT, artifact)
        .stdout(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    kill_when(&mut child, &journal, kind, state, Duration::from_secs(300));
    journal
}

/// SIGKILL the process group of `child` (started with `process_group(0)`)
/// once the journal at `journal` shows `kind` in `state`; it must get
/// there within `limit` and not end before.
pub fn kill_when(child: &mut Child, journal: &Path, kind: &str, state: &str, limit: Duration) {
    let t0 = Instant::now();
    while !journal_has(journal, kind, state) {
        assert!(
            t0.elapsed() < limit,
            "journal never showed {kind} {state}: {}",
            std::fs::read_to_string(journal).unwrap_or_default()
        );
        assert!(child.try_wait().unwrap().is_none(), "child ended early");
        std::thread::sleep(Duration::from_millis(20));
    }
    let k = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .status()
        .unwrap();
    assert!(k.success());
    child.wait().unwrap();
}

/// Tear down from `journal`: everything is deleted and `leftovers` (asked
/// of the cloud, not the journal) is empty afterwards; a second teardown
/// finds nothing to do. What the killed run had left.
pub fn teardown_twice(
    journal: &Path,
    runner: &Runner,
    leftovers: impl Fn() -> Vec<String>,
) -> Vec<String> {
    let left = leftovers();
    assert!(!left.is_empty(), "the killed run left nothing behind?");
    let r = teardown_journal(journal, runner).unwrap();
    assert!(r.is_clean(), "{r:?}");
    assert!(!r.deleted.is_empty(), "{r:?}");
    assert_eq!(
        leftovers(),
        Vec::<String>::new(),
        "after teardown (was {left:?})"
    );
    let again = teardown_journal(journal, runner).unwrap();
    assert!(
        again.is_clean() && again.deleted.is_empty() && again.already_gone.is_empty(),
        "{again:?}"
    );
    left
}
