//! AWS's eventual consistency (issue 14, items 1 and 2): a resource just
//! created may answer NotFound for a while, and a NotFound after
//! `terminate-instances` does not mean terminated. Each run must pass
//! (or fail) with nothing left running in the stand-in, and teardown
//! must report LEFT BEHIND only what it could not confirm gone.

mod common;

use std::time::Duration;

use cloudimg_cloud::{flow, AwsFormat, BootMode, Summary, Target};
use common::{artifact_for, aws_target, options, StandIn};

fn run_with(
    target: &Target,
    faults: &str,
    settle: Duration,
) -> (Summary, StandIn, tempfile::TempDir) {
    let si = StandIn::new(faults);
    let ev = tempfile::Builder::new()
        .prefix("evidence-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let mut o = options(artifact_for(target), ev.path().join("ev"), &si);
    o.settle = settle;
    let s = flow::run(target, "consistency-run", &o).unwrap();
    (s, si, ev)
}

fn calls(si: &StandIn) -> Vec<serde_json::Value> {
    std::fs::read_to_string(si.state().join("calls.log"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The calls of `op` (`aws ec2 OP ...`).
fn calls_of(si: &StandIn, op: &str) -> Vec<Vec<String>> {
    calls(si)
        .into_iter()
        .map(|v| {
            v.as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        })
        .filter(|argv| argv.get(2).map(String::as_str) == Some(op))
        .collect()
}

fn xen_target(name: &str) -> Target {
    let mut t = aws_target(name, AwsFormat::Raw, BootMode::LegacyBios);
    if let Target::Aws(a) = &mut t {
        // A Xen type: no `--latest` console output.
        a.instance_type = "t2.micro".into();
        a.subnet_id = Some("subnet-08fc749671b2d077c".into());
        a.security_group_ids = vec!["sg-0b0384b66d7d692f9".into(), "sg-0123456789abcdef0".into()];
    }
    t
}

#[test]
fn not_found_right_after_create_is_waited_for() {
    if !common::ready() {
        return;
    }
    // The AMI answers NotFound twice after register-image, the instance
    // three times after run-instances; the account has no default VPC.
    let (s, si, _e) = run_with(
        &xen_target("capos-c1"),
        "notfound-after-create=register-image:2,notfound-after-create=run-instances:3,no-default-vpc",
        Duration::from_secs(60),
    );
    assert!(s.passed, "{s:#?}");
    let td = s.teardown.as_ref().unwrap();
    assert!(td.is_clean(), "{td:?}");
    assert_eq!(si.leftovers(), Vec::<String>::new());
    // run-instances was retried on the AMI's NotFound with one client
    // token; the console was read without --latest (t2 is Xen), the
    // NotFound answers retried.
    let launches = calls_of(&si, "run-instances");
    assert_eq!(launches.len(), 3, "{launches:?}");
    assert!(launches
        .iter()
        .all(|a| a.contains(&"--client-token=consistency-run-capos-c1".to_string())));
    let l = &launches[0];
    assert!(
        l.contains(&"--subnet-id=subnet-08fc749671b2d077c".to_string()),
        "{l:?}"
    );
    let sg = l.iter().position(|a| a == "--security-group-ids").unwrap();
    assert_eq!(
        l[sg + 1..sg + 3],
        ["sg-0b0384b66d7d692f9", "sg-0123456789abcdef0"]
    );
    let consoles = calls_of(&si, "get-console-output");
    assert!(consoles.len() >= 4, "{consoles:?}");
    assert!(consoles
        .iter()
        .all(|a| !a.contains(&"--latest".to_string())));
    // Teardown confirmed the instance terminated by describing it.
    let id = s.instance_id.clone().unwrap();
    assert!(calls_of(&si, "describe-instances")
        .iter()
        .any(|a| a.contains(&format!("--instance-ids={id}"))));
}

#[test]
fn not_found_from_terminate_is_not_believed() {
    if !common::ready() {
        return;
    }
    // terminate-instances answers NotFound and the instance goes on
    // running; then, once terminated, it runs on for three describes.
    let t = aws_target("capos-c2", AwsFormat::Raw, BootMode::LegacyBios);
    let (s, si, _e) = run_with(
        &t,
        "notfound-after-terminate,still-running-after-terminate=3",
        Duration::from_secs(60),
    );
    assert!(s.passed, "{s:#?}");
    let td = s.teardown.as_ref().unwrap();
    assert!(td.is_clean(), "{td:?}");
    assert!(
        td.deleted.iter().any(|d| d.starts_with("instance i-")),
        "{td:?}"
    );
    // Nothing runs: QEMU is gone, the record says terminated.
    assert_eq!(si.leftovers(), Vec::<String>::new());
    assert!(calls_of(&si, "terminate-instances").len() >= 2);
    // The Nitro type's console was read with --latest.
    assert!(calls_of(&si, "get-console-output")
        .iter()
        .all(|a| a.contains(&"--latest".to_string())));
}

#[test]
fn an_instance_never_seen_terminated_is_left_behind_then_finished() {
    if !common::ready() {
        return;
    }
    let t = aws_target("capos-c3", AwsFormat::Raw, BootMode::LegacyBios);
    let (s, si, _e) = run_with(
        &t,
        "still-running-after-terminate=40",
        Duration::from_secs(3),
    );
    assert!(s.passed, "{s:#?}");
    let td = s.teardown.as_ref().unwrap();
    assert_eq!(td.failed.len(), 1, "{td:?}");
    let (what, why) = &td.failed[0];
    assert!(what.starts_with("instance i-"), "{td:?}");
    assert!(
        why.contains("not confirmed gone within 3 s (last seen: running)"),
        "{why}"
    );
    // The AMI, snapshot and object went; the instance still runs.
    assert!(!si.leftovers().is_empty());
    // A later teardown with time to settle finishes it.
    let mut runner = cloudimg_cloud::Runner::new(cloudimg_cloud::command::quiet());
    runner.env = si.env();
    runner.poll = Duration::from_millis(100);
    let r =
        cloudimg_cloud::teardown_journal(&s.evidence_dir.join("resources.json"), &runner).unwrap();
    assert!(r.is_clean(), "{r:?}");
    assert_eq!(si.leftovers(), Vec::<String>::new());
}
