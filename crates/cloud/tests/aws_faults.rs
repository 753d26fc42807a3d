//! AWS faults and eventual consistency (issue 14, items 1, 2 and 6)
//! through the real `aws` CLI against the local AWS (standin/api: moto
//! and our EC2 endpoint), the faults injected at the API
//! (standin/api/faults.py) so that the CLI's own retries happen first.
//! Each run ends with a clear message (or passes), and the emulator
//! itself, not the journal, is asked what is left.

mod common;

use std::time::Duration;

use cloudimg_cloud::{flow, AwsFormat, BootMode, ErrorKind, RunOptions, Target};
use common::real::{lines_with, ready_aws, AwsEmu};
use common::{artifact_for, assert_failed_clean, aws_target};

/// The attempts botocore's legacy retry mode makes for a 5xx before the
/// CLI gives up (`max_attempts` 5 in botocore/data/_retry.json).
const CLI_ATTEMPTS: u32 = 5;

// ------------------------------------------------------- refusals ----

#[test]
fn missing_vmimport_role_is_a_permission_error() {
    if !ready_aws() {
        return;
    }
    let emu = AwsEmu::start("no-vmimport");
    let t = aws_target("capos-f3", AwsFormat::Raw, BootMode::Uefi);
    let (s, _ev) = emu.run(&t, |_| {});
    assert_failed_clean(
        &s,
        emu.leftovers(),
        ErrorKind::Permission,
        "VM Import needs the `vmimport` service role",
    );
    assert!(
        s.error
            .as_deref()
            .unwrap()
            .contains("The service role vmimport provided does not exist"),
        "{s:?}"
    );
}

#[test]
fn vcpu_quota_is_a_quota_error() {
    if !ready_aws() {
        return;
    }
    let emu = AwsEmu::start("quota=RunInstances");
    let t = aws_target("capos-f5", AwsFormat::Raw, BootMode::LegacyBios);
    let (s, _ev) = emu.run(&t, |_| {});
    assert_failed_clean(
        &s,
        emu.leftovers(),
        ErrorKind::Quota,
        "An error occurred (VcpuLimitExceeded) when calling the RunInstances operation",
    );
}

#[test]
fn transient_failure_that_persists_fails_after_retries() {
    if !ready_aws() {
        return;
    }
    // Every RegisterImage answers 500: the CLI's 5 attempts, then
    // cloudimg's 1 try + 3 retries, then the run fails.
    let emu = AwsEmu::start("transient=RegisterImage:999");
    let t = aws_target("capos-f8", AwsFormat::Raw, BootMode::LegacyBios);
    let (s, _ev) = emu.run(&t, |_| {});
    assert_failed_clean(&s, emu.leftovers(),
        ErrorKind::CommandFailed,
        "`aws ec2 register-image` failed (exit 255) after retries: An error occurred (InternalError) when calling the RegisterImage operation (reached max retries: 4)",
    );
    assert_eq!(
        lines_with(&s, "ec2 register-image").len(),
        4,
        "1 try + 3 retries"
    );
}

#[test]
fn missing_cli_is_reported_before_anything_runs() {
    if !common::ready() {
        return;
    }
    let d = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let empty = d.path().join("empty-path");
    std::fs::create_dir(&empty).unwrap();
    let t = aws_target("capos-f11", AwsFormat::Raw, BootMode::Uefi);
    let log: cloudimg_cloud::Log = std::sync::Arc::new(|s: &str| eprintln!("{s}"));
    let mut o = RunOptions::new(artifact_for(&t), d.path().join("ev"), log);
    o.env = vec![("PATH".into(), empty.into())];
    let s = flow::run(&t, "r", &o).unwrap();
    assert_eq!(s.error_kind, Some(ErrorKind::MissingCli));
    assert_eq!(
        s.error.as_deref().unwrap(),
        "`aws` not found on PATH: install the AWS CLI v2 (https://aws.amazon.com/cli/); `--plan` prints the commands without running them"
    );
    assert!(!d.path().join("ev/resources.json").exists());
}

// ------------------------------------------------------ teardown ----

#[test]
fn teardown_failure_is_reported_and_a_later_teardown_finishes() {
    if !ready_aws() {
        return;
    }
    let emu = AwsEmu::start("permission=DeregisterImage");
    let t = aws_target("capos-f12", AwsFormat::Raw, BootMode::LegacyBios);
    let (s, _ev) = emu.run(&t, |_| {});
    // The boot passed, but the AMI could not be deregistered, and so its
    // snapshot (still in use) could not be deleted either.
    assert!(s.passed, "{s:#?}");
    let td = s.teardown.as_ref().unwrap();
    let failed: Vec<&str> = td.failed.iter().map(|(w, _)| w.as_str()).collect();
    assert_eq!(failed.len(), 2, "{td:?}");
    assert!(failed[0].starts_with("AMI ami-"), "{td:?}");
    assert!(failed[1].starts_with("snapshot snap-"), "{td:?}");
    assert!(td.failed[0].1.contains("permission denied: An error occurred (UnauthorizedOperation) when calling the DeregisterImage operation"), "{td:?}");
    assert!(td.failed[1].1.contains("InvalidSnapshot.InUse"), "{td:?}");
    let journal = s.evidence_dir.join("resources.json");
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&journal).unwrap()).unwrap();
    let failed_states = j["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["state"] == "delete-failed")
        .count();
    assert_eq!(failed_states, 2, "{j}");
    // Asked of the emulator: the AMI and its snapshot, nothing else.
    let mut left = emu.leftovers();
    left.sort();
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left[0].starts_with("image ami-"), "{left:?}");
    assert!(left[1].starts_with("snapshot snap-"), "{left:?}");
    // Permission fixed: the teardown from the journal finishes the job.
    emu.emu.set_faults("");
    let r = cloudimg_cloud::teardown_journal(&journal, &emu.runner()).unwrap();
    assert!(r.is_clean(), "{r:?}");
    assert_eq!(r.deleted.len(), 2, "{r:?}");
    assert_eq!(emu.leftovers(), Vec::<String>::new());
}

#[test]
fn launch_whose_answer_was_lost_leaves_no_second_instance() {
    if !ready_aws() {
        return;
    }
    // RunInstances starts the instance, then answers 500 to the CLI's 5
    // attempts (the CLI's own retries reuse the request's ClientToken);
    // cloudimg retries the command with the same --client-token, and EC2
    // answers with the same instance instead of starting a second one.
    let emu = AwsEmu::start(&format!("lost-response=RunInstances:{CLI_ATTEMPTS}"));
    let t = aws_target("capos-f13", AwsFormat::Raw, BootMode::LegacyBios);
    let (s, _ev) = emu.run(&t, |_| {});
    assert!(s.passed, "{s:#?}");
    let td = s.teardown.as_ref().unwrap();
    assert!(td.is_clean(), "{td:?}");
    let instances = td
        .deleted
        .iter()
        .filter(|d| d.starts_with("instance "))
        .count();
    assert_eq!(instances, 1, "one journal entry: {td:?}");
    assert_eq!(emu.leftovers(), Vec::<String>::new());
    let launches = lines_with(&s, "ec2 run-instances");
    assert_eq!(launches.len(), 2, "{launches:?}");
    for l in &launches {
        assert!(
            l.contains("--client-token=real-run-capos-f13"),
            "{launches:?}"
        );
    }
    // Asked of the emulator: one instance was ever started.
    let all = emu.json(&["ec2", "describe-instances"]);
    let ids: Vec<&str> = all["Reservations"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["Instances"].as_array().unwrap())
        .map(|i| i["InstanceId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![s.instance_id.as_deref().unwrap()]);
}

// --------------------------------------------- eventual consistency ----

/// A Xen instance type (no `--latest` console output) in a subnet with
/// two security groups.
fn xen_target(name: &str) -> Target {
    let mut t = aws_target(name, AwsFormat::Raw, BootMode::LegacyBios);
    if let Target::Aws(a) = &mut t {
        a.instance_type = "t2.micro".into();
        a.subnet_id = Some("subnet-08fc749671b2d077c".into());
        a.security_group_ids = vec!["sg-0b0384b66d7d692f9".into(), "sg-0123456789abcdef0".into()];
    }
    t
}

#[test]
fn not_found_right_after_create_is_waited_for() {
    if !ready_aws() {
        return;
    }
    // The AMI answers NotFound twice after RegisterImage, the instance
    // three times after RunInstances; the account has no default VPC
    // (RunInstances without a subnet is refused); the first two
    // TerminateInstances answer NotFound and leave the instance running.
    let emu = AwsEmu::start(
        "notfound-after-register=2,notfound-after-run=3,no-default-vpc,notfound-on-terminate=2",
    );
    let (s, _ev) = emu.run(&xen_target("capos-c1"), |o| {
        o.settle = Duration::from_secs(60)
    });
    assert!(s.passed, "{s:#?}");
    let td = s.teardown.as_ref().unwrap();
    assert!(td.is_clean(), "{td:?}");
    assert_eq!(emu.leftovers(), Vec::<String>::new());
    // run-instances was retried on the AMI's NotFound with one client
    // token.
    let launches = lines_with(&s, "ec2 run-instances");
    assert_eq!(launches.len(), 3, "{launches:?}");
    assert!(launches
        .iter()
        .all(|l| l.contains("--client-token=real-run-capos-c1")));
    // Asked of the emulator: the instance got the subnet, the groups and
    // the token.
    let id = s.instance_id.clone().unwrap();
    let d = emu.json(&["ec2", "describe-instances", "--instance-ids", &id]);
    let inst = &d["Reservations"][0]["Instances"][0];
    assert_eq!(inst["SubnetId"], "subnet-08fc749671b2d077c", "{inst}");
    assert_eq!(inst["ClientToken"], "real-run-capos-c1", "{inst}");
    let groups: Vec<&str> = inst["SecurityGroups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["GroupId"].as_str().unwrap())
        .collect();
    assert_eq!(groups, ["sg-0b0384b66d7d692f9", "sg-0123456789abcdef0"]);
    assert_eq!(inst["State"]["Name"], "terminated", "{inst}");
    // The console was read without --latest (t2 is Xen: our endpoint
    // refuses --latest there), its NotFound answers retried.
    let consoles = lines_with(&s, "ec2 get-console-output");
    assert!(consoles.len() >= 4, "{consoles:?}");
    assert!(consoles.iter().all(|l| !l.contains("--latest")));
    // Teardown did not believe the NotFound from terminate: it asked
    // again, and confirmed the instance terminated by describing it.
    let terminates = lines_with(&s, "ec2 terminate-instances");
    assert!(terminates.len() >= 3, "{terminates:?}");
    assert!(lines_with(&s, "ec2 describe-instances")
        .iter()
        .any(|l| l.contains(&format!("--instance-ids={id}"))));
}

#[test]
fn an_instance_never_seen_terminated_is_left_behind_then_finished() {
    if !ready_aws() {
        return;
    }
    // After terminate the instance stays shutting-down (QEMU running)
    // for 40 describes: longer than the run's 3 s of settling.
    let emu = AwsEmu::start("shutting-down=40");
    let t = aws_target("capos-c3", AwsFormat::Raw, BootMode::LegacyBios);
    let (s, _ev) = emu.run(&t, |o| {
        o.settle = Duration::from_secs(3);
        o.poll_interval = Duration::from_millis(300);
    });
    assert!(s.passed, "{s:#?}");
    let td = s.teardown.as_ref().unwrap();
    assert_eq!(td.failed.len(), 1, "{td:?}");
    let (what, why) = &td.failed[0];
    assert!(what.starts_with("instance i-"), "{td:?}");
    assert!(
        why.contains("not confirmed gone within 3 s (last seen: shutting-down)"),
        "{why}"
    );
    // The AMI, snapshot and object went; the instance is still there
    // (its QEMU, if the guest has not powered off by itself, too).
    let left = emu.leftovers();
    assert!(
        left.iter().any(|l| l.ends_with(" shutting-down")),
        "{left:?}"
    );
    assert!(
        left.iter()
            .all(|l| l.starts_with("instance ") || l.starts_with("qemu pid ")),
        "{left:?}"
    );
    // A later teardown with time to settle finishes it.
    let r = cloudimg_cloud::teardown_journal(&s.evidence_dir.join("resources.json"), &emu.runner())
        .unwrap();
    assert!(r.is_clean(), "{r:?}");
    assert_eq!(emu.leftovers(), Vec::<String>::new());
}
