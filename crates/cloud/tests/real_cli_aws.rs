//! The AWS flow through the real `aws` CLI (awscli v1 from .venv/cloud,
//! installed by scripts/setup.sh) against a local AWS: moto for S3 and
//! STS, our EC2 endpoint (standin/api) for the import, the AMI and the
//! instance, which boots the imported disk in QEMU. After every run the
//! emulator itself is asked what it still holds; the journal is not
//! trusted for that.
//!
//! Faults are injected at the API (standin/api/faults.py), so the CLI's
//! own retries happen first, as they would against AWS.

mod common;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cloudimg_cloud::{flow, AwsFormat, BootMode, ErrorKind, RunOptions, Runner, Summary, Target};
use common::real::{assert_passed, ready_aws, AwsEmu};
use common::{artifact_for, aws_target};

/// The attempts botocore's default (legacy) retry mode makes for a 5xx or
/// a throttling error before the CLI gives up: `max_attempts` 5 in
/// botocore/data/_retry.json. A fault repeated this often reaches
/// cloudimg once.
const CLI_ATTEMPTS: u32 = 5;

fn options(target: &Target, ev: &Path, emu: &AwsEmu) -> RunOptions {
    let log: cloudimg_cloud::Log = Arc::new(|s: &str| eprintln!("{s}"));
    let mut o = RunOptions::new(artifact_for(target), ev.join("ev"), log);
    o.env = emu.env();
    o.poll_interval = Duration::from_millis(500);
    o.boot_timeout = Duration::from_secs(120);
    o.backoff = Duration::from_millis(200);
    o.command_timeout = Duration::from_secs(300);
    o
}

fn run(
    target: &Target,
    emu: &AwsEmu,
    tweak: impl FnOnce(&mut RunOptions),
) -> (Summary, tempfile::TempDir) {
    let ev = tempfile::Builder::new()
        .prefix("evidence-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let mut o = options(target, ev.path(), emu);
    tweak(&mut o);
    let s = flow::run(target, "real-run", &o).expect("evidence can be written");
    (s, ev)
}

// --------------------------------------------------------- the flows ----

#[test]
fn cli_honours_the_endpoint_variables() {
    if !ready_aws() {
        return;
    }
    let emu = AwsEmu::start("");
    let v = emu.aws(&["--version"]);
    let version =
        String::from_utf8_lossy(&v.stdout).to_string() + &String::from_utf8_lossy(&v.stderr);
    eprintln!("{version}");
    assert!(version.starts_with("aws-cli/1."), "{version}");
    // STS goes to moto through AWS_ENDPOINT_URL (moto's default account).
    let id = emu.aws(&["sts", "get-caller-identity"]);
    assert!(id.status.success(), "{id:?}");
    assert!(String::from_utf8_lossy(&id.stdout).contains("123456789012"));
    // EC2 goes to ours through AWS_ENDPOINT_URL_EC2: our empty task list
    // (moto has no DescribeImportSnapshotTasks).
    let t = emu.aws(&["ec2", "describe-import-snapshot-tasks"]);
    assert!(t.status.success(), "{t:?}");
    let v: serde_json::Value = serde_json::from_slice(&t.stdout).unwrap();
    assert_eq!(v["ImportSnapshotTasks"], serde_json::json!([]));
}

#[test]
fn raw_uefi_boots() {
    if !ready_aws() {
        return;
    }
    let emu = AwsEmu::start("");
    let t = aws_target("capos-raw-uefi", AwsFormat::Raw, BootMode::Uefi);
    let (s, _ev) = run(&t, &emu, |_| {});
    assert_passed(&s, || emu.leftovers(), "uefi");
    assert!(s.image_id.as_deref().unwrap().starts_with("ami-"));
}

#[test]
fn vhd_legacy_bios_boots() {
    if !ready_aws() {
        return;
    }
    let emu = AwsEmu::start("");
    let t = aws_target("capos-vhd-bios", AwsFormat::Vhd, BootMode::LegacyBios);
    let (s, _ev) = run(&t, &emu, |_| {});
    assert_passed(&s, || emu.leftovers(), "bios");
}

#[test]
fn vmdk_uefi_preferred_boots() {
    if !ready_aws() {
        return;
    }
    let emu = AwsEmu::start("");
    let t = aws_target("capos-vmdk-pref", AwsFormat::Vmdk, BootMode::UefiPreferred);
    let (s, _ev) = run(&t, &emu, |_| {});
    assert_passed(&s, || emu.leftovers(), "uefi");
}

// ------------------------------------------------------------ faults ----

#[test]
fn import_failure_is_reported_and_nothing_is_left() {
    if !ready_aws() {
        return;
    }
    let emu = AwsEmu::start("import-fail");
    let t = aws_target("capos-import-fail", AwsFormat::Raw, BootMode::LegacyBios);
    let (s, _ev) = run(&t, &emu, |_| {});
    assert!(!s.passed);
    assert_eq!(s.error_kind, Some(ErrorKind::ImportFailed), "{s:#?}");
    assert!(
        s.error.as_deref().unwrap().contains("ClientError"),
        "{s:#?}"
    );
    assert!(s.teardown.as_ref().unwrap().is_clean(), "{s:#?}");
    assert_eq!(emu.leftovers(), Vec::<String>::new());
}

#[test]
fn no_landmark_times_out_and_tears_down() {
    if !ready_aws() {
        return;
    }
    let emu = AwsEmu::start("no-landmark");
    let t = aws_target("capos-no-landmark", AwsFormat::Raw, BootMode::LegacyBios);
    let (s, _ev) = run(&t, &emu, |o| o.boot_timeout = Duration::from_secs(15));
    assert!(!s.passed);
    assert_eq!(s.error_kind, Some(ErrorKind::Timeout), "{s:#?}");
    assert!(s.teardown.as_ref().unwrap().is_clean(), "{s:#?}");
    assert_eq!(emu.leftovers(), Vec::<String>::new());
}

#[test]
fn transient_5xx_past_the_cli_retries_is_retried() {
    if !ready_aws() {
        return;
    }
    // The CLI gives up after CLI_ATTEMPTS 500s; cloudimg retries the call.
    let emu = AwsEmu::start(&format!("transient=RegisterImage:{CLI_ATTEMPTS}"));
    let t = aws_target("capos-5xx", AwsFormat::Raw, BootMode::LegacyBios);
    let (s, _ev) = run(&t, &emu, |_| {});
    assert_passed(&s, || emu.leftovers(), "bios");
}

#[test]
fn unavailable_503_past_the_cli_retries_is_retried() {
    if !ready_aws() {
        return;
    }
    let emu = AwsEmu::start(&format!("unavailable=RegisterImage:{CLI_ATTEMPTS}"));
    let t = aws_target("capos-503", AwsFormat::Raw, BootMode::LegacyBios);
    let (s, _ev) = run(&t, &emu, |_| {});
    assert_passed(&s, || emu.leftovers(), "bios");
}

#[test]
fn throttling_past_the_cli_retries_is_retried() {
    if !ready_aws() {
        return;
    }
    let emu = AwsEmu::start(&format!("throttle=ImportSnapshot:{CLI_ATTEMPTS}"));
    let t = aws_target("capos-throttle", AwsFormat::Raw, BootMode::LegacyBios);
    let (s, _ev) = run(&t, &emu, |_| {});
    assert_passed(&s, || emu.leftovers(), "bios");
}

#[test]
fn notfound_right_after_run_instances_is_retried_and_nothing_leaks() {
    if !ready_aws() {
        return;
    }
    // EC2's eventual consistency: the instance runs, but the next calls
    // naming it answer NotFound for a while.
    let emu = AwsEmu::start("notfound-after-run=3");
    let t = aws_target("capos-ec-run", AwsFormat::Raw, BootMode::LegacyBios);
    let (s, _ev) = run(&t, &emu, |_| {});
    assert_passed(&s, || emu.leftovers(), "bios");
}

#[test]
fn teardown_waits_until_the_instance_is_terminated() {
    if !ready_aws() {
        return;
    }
    // After terminate the instance is NotFound twice, then shutting-down
    // (still running) for three describes, then terminated.
    let emu = AwsEmu::start("notfound-after-terminate=2,shutting-down=3");
    let t = aws_target("capos-ec-term", AwsFormat::Raw, BootMode::LegacyBios);
    let (s, _ev) = run(&t, &emu, |_| {});
    assert_passed(&s, || emu.leftovers(), "bios");
}

// ----------------------------------------------------------- publish ----

/// The real `aws`'s JSON answer to `args` (which must succeed).
fn aws_json(emu: &AwsEmu, args: &[&str]) -> serde_json::Value {
    let out = emu.aws(args);
    assert!(out.status.success(), "aws {args:?}: {out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `KEY=VALUE` for each of an EC2 resource's `Tags`.
fn tags(v: &serde_json::Value) -> Vec<String> {
    let mut t: Vec<String> = v["Tags"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            format!(
                "{}={}",
                t["Key"].as_str().unwrap(),
                t["Value"].as_str().unwrap()
            )
        })
        .collect();
    t.sort();
    t
}

#[test]
fn publish_keeps_the_ami_and_its_snapshot_until_the_journal_teardown() {
    if !ready_aws() {
        return;
    }
    let emu = AwsEmu::start("");
    let mut t = aws_target("capos-pub", AwsFormat::Raw, BootMode::LegacyBios);
    if let Target::Aws(a) = &mut t {
        a.labels = vec![
            ("os".into(), "capos".into()),
            ("release".into(), "v1-2".into()),
        ];
    }
    let (s, _ev) = run(&t, &emu, |o| o.publish = true);
    assert!(s.passed, "{s:#?}");
    assert!(s.teardown.as_ref().unwrap().is_clean(), "{s:#?}");
    let p = s.published.clone().expect("published");
    let ami = s.image_id.clone().unwrap();
    assert_eq!(p.image_id.as_deref(), Some(ami.as_str()));
    // Asked of the emulator: exactly the AMI and the snapshot it names
    // stay; the instance, the import task and the S3 object are gone.
    let img = aws_json(&emu, &["ec2", "describe-images", "--image-ids", &ami]);
    let img = &img["Images"][0];
    let snap = img["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
        .as_str()
        .unwrap()
        .to_string();
    let mut left = emu.leftovers();
    left.sort();
    assert_eq!(
        left,
        vec![format!("image {ami}"), format!("snapshot {snap}")]
    );
    // Both tagged, as the real CLI reads them back.
    let want = ["os=capos", "release=v1-2"];
    let sn = aws_json(
        &emu,
        &["ec2", "describe-snapshots", "--snapshot-ids", &snap],
    );
    for v in [img, &sn["Snapshots"][0]] {
        let have = tags(v);
        assert!(
            want.iter().all(|w| have.contains(&w.to_string())),
            "{have:?}"
        );
    }
    // Later, `cloud teardown --journal` (teardown_journal) removes both.
    let mut runner = Runner::new(Arc::new(|s: &str| eprintln!("{s}")));
    runner.env = emu.env();
    runner.backoff = Duration::from_millis(200);
    runner.poll = Duration::from_millis(500);
    let r = cloudimg_cloud::teardown_journal(&p.journal, &runner).unwrap();
    assert!(r.is_clean(), "{r:?}");
    assert_eq!(r.deleted.len(), 2, "{r:?}");
    assert_eq!(emu.leftovers(), Vec::<String>::new());
}

// --------------------------------------------------------- preflight ----

#[test]
fn no_credentials_fails_the_preflight_and_creates_nothing() {
    if !ready_aws() {
        return;
    }
    let emu = AwsEmu::start("");
    let t = aws_target("capos-nocreds", AwsFormat::Raw, BootMode::LegacyBios);
    let (s, _ev) = run(&t, &emu, |o| {
        // No credentials file, no keys, a HOME without ~/.aws.
        for (k, v) in o.env.iter_mut() {
            if k == "AWS_SHARED_CREDENTIALS_FILE" {
                *v = emu.dir().join("no-such-credentials").into();
            }
        }
        o.env.push(("HOME".into(), emu.dir().into()));
        o.env.push(("AWS_ACCESS_KEY_ID".into(), "".into()));
        o.env.push(("AWS_SECRET_ACCESS_KEY".into(), "".into()));
    });
    assert!(!s.passed);
    assert_eq!(s.error_kind, Some(ErrorKind::Permission), "{s:#?}");
    let e = s.error.as_deref().unwrap();
    // The real CLI's words, and what to run.
    assert!(e.contains("Unable to locate credentials"), "{e}");
    assert!(e.contains("aws configure"), "{e}");
    assert!(e.contains("nothing was created"), "{e}");
    let td = s.teardown.as_ref();
    assert!(
        td.is_none_or(|t| t.is_clean() && t.deleted.is_empty()),
        "{s:#?}"
    );
    // Asked of the emulator: nothing (no object, task, AMI, instance).
    assert_eq!(emu.leftovers(), Vec::<String>::new());
    let objects = emu.aws(&["s3", "ls", "s3://bkt"]);
    assert!(objects.stdout.is_empty(), "{objects:?}");
}

// ------------------------------------------------------ killed harness ----

/// The child's body: the flow described by the environment, against the
/// emulator the parent started (its env as JSON). No-op unless the
/// parent set CLOUDIMG_TEST_REAL_ENV.
#[test]
fn child_flow() {
    let Some(env) = std::env::var_os("CLOUDIMG_TEST_REAL_ENV") else {
        return;
    };
    let env: Vec<(String, String)> = serde_json::from_str(env.to_str().unwrap()).unwrap();
    let evidence = PathBuf::from(std::env::var_os("CLOUDIMG_TEST_CHILD_EVIDENCE").unwrap());
    let target = aws_target("capos-killed", AwsFormat::Raw, BootMode::LegacyBios);
    let log: cloudimg_cloud::Log = Arc::new(|s: &str| eprintln!("child: {s}"));
    let mut o = RunOptions::new(artifact_for(&target), evidence, log);
    o.env = env.into_iter().map(|(k, v)| (k.into(), v.into())).collect();
    o.poll_interval = Duration::from_millis(300);
    o.boot_timeout = Duration::from_secs(300);
    let _ = flow::run(&target, "killed-run", &o);
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

#[test]
fn killed_harness_then_teardown_from_the_journal_leaves_nothing() {
    if !ready_aws() {
        return;
    }
    let emu = AwsEmu::start("no-landmark");
    let evidence = emu.dir().join("evidence");
    let journal = evidence.join("resources.json");
    let env: Vec<(String, String)> = emu
        .env()
        .into_iter()
        .map(|(k, v)| (k.into_string().unwrap(), v.into_string().unwrap()))
        .collect();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["child_flow", "--exact", "--nocapture", "--test-threads=1"])
        .env(
            "CLOUDIMG_TEST_REAL_ENV",
            serde_json::to_string(&env).unwrap(),
        )
        .env("CLOUDIMG_TEST_CHILD_EVIDENCE", &evidence)
        .stdout(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while !journal_has(&journal, "aws-instance", "created") {
        assert!(t0.elapsed() < Duration::from_secs(300), "no instance");
        assert!(child.try_wait().unwrap().is_none(), "child ended early");
        std::thread::sleep(Duration::from_millis(50));
    }
    // SIGKILL to the child's process group: no teardown there, and the
    // `aws` it was running dies with it. The instance keeps running.
    let k = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .status()
        .unwrap();
    assert!(k.success());
    child.wait().unwrap();
    let left = emu.leftovers();
    assert!(left.iter().any(|l| l.starts_with("instance ")), "{left:?}");

    let mut runner = Runner::new(Arc::new(|s: &str| eprintln!("{s}")));
    runner.env = emu.env();
    runner.backoff = Duration::from_millis(200);
    let r = cloudimg_cloud::teardown_journal(&journal, &runner).unwrap();
    assert!(r.is_clean(), "{r:?}");
    assert_eq!(emu.leftovers(), Vec::<String>::new(), "was {left:?}");
}
