//! Azure, against the az stand-in: the harness killed mid-run (SIGKILL,
//! no chance to clean up): the journal it wrote lets `teardown_journal` remove everything, and a
//! second teardown finds nothing to do.
//!
//! The run happens in a child process: this test binary re-executed to
//! run only `child_flow`, which is a no-op unless the parent set
//! CLOUDIMG_TEST_CHILD_STATE.

mod common;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cloudimg_cloud::{flow, RunOptions, Runner, Target};
use cloudimg_disk::vocab::Firmware;
use common::{artifact_for, StandIn};

/// The child's body: run the flow described by the environment.
#[test]
fn child_flow() {
    let Some(state) = std::env::var_os("CLOUDIMG_TEST_CHILD_STATE") else {
        return;
    };
    let evidence = PathBuf::from(std::env::var_os("CLOUDIMG_TEST_CHILD_EVIDENCE").unwrap());
    let artifact = PathBuf::from(std::env::var_os("CLOUDIMG_TEST_CHILD_ARTIFACT").unwrap());
    // Azure only: AWS and GCP are killed mid-run through the real CLIs
    // (real_cli_aws.rs, gcp_flow.rs).
    let target = common::azure_target("capos-crash", Firmware::Bios);
    let mut paths = vec![common::standin_bin()];
    paths.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    let log: cloudimg_cloud::Log = Arc::new(|s: &str| eprintln!("child: {s}"));
    let mut o = RunOptions::new(artifact, evidence, log);
    o.env = vec![
        ("PATH".into(), std::env::join_paths(paths).unwrap()),
        ("CLOUDIMG_STANDIN_STATE".into(), state),
        ("CLOUDIMG_STANDIN_FAULTS".into(), "no-landmark".into()),
    ];
    o.poll_interval = Duration::from_millis(300);
    o.boot_timeout = Duration::from_secs(300);
    let _ = flow::run(&target, "crash-run", &o);
}

fn journal_has(path: &Path, kind: &str, state: &str) -> bool {
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

/// Start the child, kill it once the journal shows `kind` in `state`,
/// then tear down from the journal.
fn kill_then_teardown(target: &Target, provider: &str, kind: &str, state: &str) {
    let si = StandIn::new("no-landmark");
    let evidence = si.state().join("evidence");
    let journal = evidence.join("resources.json");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["child_flow", "--exact", "--nocapture", "--test-threads=1"])
        .env("CLOUDIMG_TEST_CHILD_STATE", si.state())
        .env("CLOUDIMG_TEST_CHILD_EVIDENCE", &evidence)
        .env("CLOUDIMG_TEST_CHILD_ARTIFACT", artifact_for(target))
        .env("CLOUDIMG_TEST_CHILD_PROVIDER", provider)
        .stdout(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while !journal_has(&journal, kind, state) {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "journal never showed {kind} {state}"
        );
        assert!(child.try_wait().unwrap().is_none(), "child ended early");
        std::thread::sleep(Duration::from_millis(20));
    }
    // SIGKILL to the child's process group (as when a CI job or a
    // terminal session dies): no teardown in the child, and any CLI it
    // was running dies with it. Instances keep running, as in a cloud.
    let pgid = format!("-{}", child.id());
    let k = Command::new("kill")
        .args(["-KILL", "--", &pgid])
        .status()
        .unwrap();
    assert!(k.success());
    child.wait().unwrap();
    let left = si.leftovers();
    assert!(!left.is_empty(), "the killed run left resources behind");

    let mut runner = Runner::new(Arc::new(|s: &str| eprintln!("{s}")));
    runner.env = si.env();
    runner.backoff = Duration::from_millis(50);
    let r = cloudimg_cloud::teardown_journal(&journal, &runner).unwrap();
    assert!(r.is_clean(), "{r:?}");
    assert!(!r.deleted.is_empty(), "{r:?}");
    assert_eq!(
        si.leftovers(),
        Vec::<String>::new(),
        "after teardown (was {left:?})"
    );
    let again = cloudimg_cloud::teardown_journal(&journal, &runner).unwrap();
    assert!(
        again.is_clean() && again.deleted.is_empty() && again.already_gone.is_empty(),
        "{again:?}"
    );
}

#[test]
fn azure_killed_while_vm_runs() {
    if !common::ready() {
        return;
    }
    let t = common::azure_target("capos-crash", Firmware::Bios);
    kill_then_teardown(&t, "azure", "azure-vm", "created");
}

#[test]
fn azure_killed_after_the_disk_was_made() {
    if !common::ready() {
        return;
    }
    let t = common::azure_target("capos-crash", Firmware::Bios);
    kill_then_teardown(&t, "azure", "azure-disk", "created");
}
