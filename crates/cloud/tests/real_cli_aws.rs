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

use std::time::Duration;

use cloudimg_cloud::{flow, AwsFormat, BootMode, ErrorKind, RunOptions, Summary, Target};
use common::real::{assert_passed, commands, lines_with, ready_aws, AwsEmu};
use common::{artifact_for, aws_target, killed, read_json};

/// The attempts botocore's default (legacy) retry mode makes for a 5xx or
/// a throttling error before the CLI gives up: `max_attempts` 5 in
/// botocore/data/_retry.json. A fault repeated this often reaches
/// cloudimg once.
const CLI_ATTEMPTS: u32 = 5;

fn run(
    target: &Target,
    emu: &AwsEmu,
    tweak: impl FnOnce(&mut RunOptions),
) -> (Summary, tempfile::TempDir) {
    emu.run(target, tweak)
}

/// The evidence of a passing run: a journal where everything is deleted,
/// one record per `aws` command with exit status and timing, the
/// manifest entry, the summary and an empty verify report.
fn assert_evidence(s: &Summary) {
    let ev = &s.evidence_dir;
    let j = read_json(&ev.join("resources.json"));
    let res = j["resources"].as_array().unwrap();
    assert!(res.len() >= 3, "{j}");
    assert!(res.iter().all(|r| r["state"] == "deleted"), "{j}");
    let lines = commands(s);
    assert!(lines.len() >= 6, "{lines:?}");
    for l in &lines {
        assert!(l["exit"].is_i64(), "{l}");
        assert!(l["seconds"].is_f64() || l["seconds"].is_i64(), "{l}");
        assert!(l["line"].as_str().unwrap().starts_with("aws "), "{l}");
    }
    let art = read_json(&ev.join("artifact.json"));
    assert_eq!(art["source"], "manifest", "{art}");
    assert!(art["entry"]["virtual_sha256"].is_string(), "{art}");
    let sum = read_json(&ev.join("summary.json"));
    assert_eq!(sum["passed"], true, "{sum}");
    assert_eq!(sum["provider"], s.provider.id());
    assert!(sum["image_id"].is_string(), "{sum}");
    assert!(sum["seconds_to_landmark"].is_f64(), "{sum}");
    assert_eq!(sum["boot_mode"], s.boot_mode);
    assert!(read_json(&ev.join("verify.json"))["findings"]
        .as_array()
        .unwrap()
        .is_empty());
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
    assert_evidence(&s);
    assert!(s.image_id.as_deref().unwrap().starts_with("ami-"));
    assert!(s.instance_id.as_deref().unwrap().starts_with("i-"));
    // t3.micro is a Nitro type (moto's DescribeInstanceTypes): the console
    // is read with --latest, which our endpoint refuses on Xen types.
    let consoles = lines_with(&s, "ec2 get-console-output");
    assert!(!consoles.is_empty());
    assert!(
        consoles.iter().all(|l| l.contains("--latest")),
        "{consoles:?}"
    );
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
    assert_eq!(s.boot_mode, "legacy-bios");
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
    assert_eq!(s.boot_mode, "uefi-preferred");
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
    let e = s.error.as_deref().unwrap();
    assert!(
        e.starts_with("AWS rejected the import (import-snap-"),
        "{e}"
    );
    assert!(
        e.ends_with("ClientError: Disk validation failed [Unsupported specified file format]"),
        "{e}"
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
    assert_eq!(
        s.error.as_deref().unwrap(),
        "landmark \"capos kernel starting\" not seen on the serial console within 15 s (0 bytes of output, see serial.log)"
    );
    assert!(s.instance_id.is_some());
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
    emu.json(args)
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
    assert_eq!(p.resources.len(), 2, "{p:?}");
    assert!(p.resources[0].starts_with("snapshot snap-"), "{p:?}");
    assert!(p.resources[1].starts_with("AMI ami-"), "{p:?}");
    // The journal says kept; the summary says published.
    let j = read_json(&p.journal);
    let kept = j["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["state"] == "kept")
        .count();
    assert_eq!(kept, 2, "{j}");
    let sum = read_json(&s.evidence_dir.join("summary.json"));
    assert_eq!(sum["schema"], "cloudimg.cloud-run/1");
    assert_eq!(sum["published"]["image_id"], ami);
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
    let r = cloudimg_cloud::teardown_journal(&p.journal, &emu.runner()).unwrap();
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
    // No journal, no teardown, nothing to report left behind.
    assert!(s.teardown.is_none(), "{s:#?}");
    assert!(!s.evidence_dir.join("resources.json").exists());
    // Only the read-only preflight ran.
    for l in lines_with(&s, "aws ") {
        assert!(
            l.contains("--version") || l.contains("get-caller-identity"),
            "{l}"
        );
    }
    // Asked of the emulator: nothing (no object, task, AMI, instance).
    assert_eq!(emu.leftovers(), Vec::<String>::new());
    let objects = emu.aws(&["s3", "ls", "s3://bkt"]);
    assert!(objects.stdout.is_empty(), "{objects:?}");
}

// ------------------------------------------------------ killed harness ----

/// The child's body: the flow against the emulator the parent started
/// (common::killed); a no-op in any other process.
#[test]
fn child_flow() {
    if let Some(o) = killed::child_options() {
        let target = aws_target("capos-killed", AwsFormat::Raw, BootMode::LegacyBios);
        let _ = flow::run(&target, "killed-run", &o);
    }
}

/// Run the flow in a child process against a fresh emulator, SIGKILL it
/// once its journal shows `kind` in `state` (the `aws` it was running
/// dies with it; what it made stays, as in a cloud), then tear down from
/// the journal: the emulator holds nothing afterwards, and a second
/// teardown finds nothing to do. What the killed run left.
fn kill_then_teardown(kind: &str, state: &str) -> Vec<String> {
    let emu = AwsEmu::start("no-landmark");
    let target = aws_target("capos-killed", AwsFormat::Raw, BootMode::LegacyBios);
    let journal = killed::run_and_kill(
        emu.env(),
        &artifact_for(&target),
        &emu.dir().join("evidence"),
        kind,
        state,
    );
    killed::teardown_twice(&journal, &emu.runner(), || emu.leftovers())
}

#[test]
fn killed_harness_then_teardown_from_the_journal_leaves_nothing() {
    if !ready_aws() {
        return;
    }
    let left = kill_then_teardown("aws-instance", "created");
    assert!(left.iter().any(|l| l.starts_with("instance ")), "{left:?}");
}

#[test]
fn killed_after_the_import_started_then_teardown_leaves_nothing() {
    if !ready_aws() {
        return;
    }
    // The import task (active, or done with its snapshot) and the object.
    kill_then_teardown("aws-import-task", "created");
}

#[test]
fn killed_while_starting_the_import_then_teardown_leaves_nothing() {
    if !ready_aws() {
        return;
    }
    // The task's id was never journaled: teardown looks for it by its
    // description (a task the CLI did start is found and cancelled).
    kill_then_teardown("aws-import-task", "creating");
}
