//! Ctrl-C: the CLI's signal handler calls `cloudimg_cloud::cleanup()`
//! while a run waits for its landmark; the run's resources are torn down
//! and the run ends as interrupted (AWS, then Azure). (Its own test binary: `cleanup` acts
//! on the process-wide run in progress.) AWS runs through the real `aws`
//! against the local emulator (standin/api), which is then asked what it
//! still holds; Azure compute has no emulator and runs on the stand-in
//! standin/bin/az.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use cloudimg_cloud::{flow, AwsFormat, BootMode, ErrorKind, RunOptions};
use cloudimg_disk::vocab::Firmware;
use common::real::{ready_aws, AwsEmu};
use common::{artifact_for, aws_target, options, StandIn};

#[test]
fn cleanup_tears_down_the_run_in_progress() {
    if !ready_aws() {
        return;
    }
    let emu = AwsEmu::start("no-landmark");
    let t = aws_target("capos-intr", AwsFormat::Raw, BootMode::LegacyBios);
    let ev = emu.dir().join("evidence");
    let log: cloudimg_cloud::Log = Arc::new(|s: &str| eprintln!("{s}"));
    let mut o = RunOptions::new(artifact_for(&t), ev.clone(), log);
    o.env = emu.env();
    o.poll_interval = Duration::from_millis(300);
    o.backoff = Duration::from_millis(100);
    o.command_timeout = Duration::from_secs(300);
    o.boot_timeout = Duration::from_secs(300);
    let runner = std::thread::spawn(move || flow::run(&t, "intr", &o).unwrap());
    let journal = ev.join("resources.json");
    let t0 = Instant::now();
    loop {
        let text = std::fs::read_to_string(&journal).unwrap_or_default();
        if text.contains("\"aws-instance\"") && text.contains("\"i-") {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "no instance: {text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // `cleanup` (what the signal handler calls) and the interrupted run's
    // own teardown race for the journal's entries: each is deleted once,
    // by one or the other.
    let deleted = cloudimg_cloud::cleanup();
    let s = runner.join().unwrap();
    let by_run = s.teardown.as_ref().map_or(0, |t| t.deleted.len());
    assert_eq!(deleted + by_run, 4, "instance, AMI, snapshot, object");
    assert_eq!(emu.leftovers(), Vec::<String>::new());
    assert!(!s.passed);
    assert_eq!(s.error_kind, Some(ErrorKind::Interrupted), "{s:#?}");
    assert!(s.teardown.unwrap().is_clean());

    // The same on Azure (in this test: `cleanup` acts on the one run in
    // progress).
    let si = StandIn::new("no-landmark");
    let t = common::azure_target("capos-intr", Firmware::Bios);
    let ev = si.state().join("evidence");
    let mut o = options(artifact_for(&t), ev.clone(), &si);
    o.boot_timeout = Duration::from_secs(300);
    let runner = std::thread::spawn(move || flow::run(&t, "intr-az", &o).unwrap());
    let journal = ev.join("resources.json");
    let t0 = Instant::now();
    loop {
        let text = std::fs::read_to_string(&journal).unwrap_or_default();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        let vm_up = v["resources"].as_array().is_some_and(|a| {
            a.iter()
                .any(|r| r["resource"]["kind"] == "azure-vm" && r["state"] == "created")
        });
        if vm_up {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(120), "no VM: {text}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let deleted = cloudimg_cloud::cleanup();
    let s = runner.join().unwrap();
    let by_run = s.teardown.as_ref().map_or(0, |t| t.deleted.len());
    assert_eq!(deleted + by_run, 5, "VM, NIC, vnet, disk, blob");
    assert_eq!(si.leftovers(), Vec::<String>::new());
    assert_eq!(s.error_kind, Some(ErrorKind::Interrupted), "{s:#?}");
    assert!(s.teardown.unwrap().is_clean());
}
