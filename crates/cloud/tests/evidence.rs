//! The evidence directory may be one the user made, shared with others:
//! a run writes its files owner-only, creates them exclusively, and never
//! writes through a symlink planted at one of their names, before or
//! during the run. The runs are AWS runs through the real `aws` against
//! the local emulator (standin/api).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cloudimg_cloud::{flow, AwsFormat, BootMode, RunOptions, Target};
use common::calls::Calls;
use common::real::{ready_aws, venv_bin, AwsEmu};
use common::{artifact_for, aws_target};

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777
}

/// Options for a run of `target` against `emu`, evidence in `ev`, the
/// real `aws` behind `calls`' logging wrapper.
fn options(target: &Target, ev: PathBuf, emu: &AwsEmu, calls: &Calls) -> RunOptions {
    let log: cloudimg_cloud::Log = Arc::new(|s: &str| eprintln!("{s}"));
    let mut o = RunOptions::new(artifact_for(target), ev, log);
    o.env = calls.wrap(emu.env());
    o.poll_interval = Duration::from_millis(300);
    o.boot_timeout = Duration::from_secs(120);
    o.backoff = Duration::from_millis(100);
    o.command_timeout = Duration::from_secs(300);
    o
}

fn aws_calls(emu: &AwsEmu) -> Calls {
    Calls::new(emu.dir(), &[("aws", Some(venv_bin().join("aws")))])
}

#[test]
fn a_symlink_in_the_evidence_directory_is_refused_before_anything_runs() {
    if !ready_aws() {
        return;
    }
    let emu = AwsEmu::start("");
    let calls = aws_calls(&emu);
    let t = aws_target("capos-ev1", AwsFormat::Raw, BootMode::LegacyBios);
    let ev = emu.dir().join("ev");
    std::fs::create_dir_all(&ev).unwrap();
    std::fs::write(ev.join("notes.txt"), "the user's own file").unwrap();
    let victim = emu.dir().join("victim");
    std::fs::write(&victim, "untouched").unwrap();
    std::os::unix::fs::symlink(&victim, ev.join("serial.log")).unwrap();
    let e = flow::run(&t, "r", &options(&t, ev.clone(), &emu, &calls)).unwrap_err();
    assert_eq!(
        e.message,
        format!("the evidence directory {} already holds serial.log (another run's evidence; its journal may list live resources): choose a new --evidence directory", ev.display())
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
    assert_eq!(calls.lines(), Vec::<String>::new(), "nothing ran");
    // An existing directory without the run's files is fine.
    std::fs::remove_file(ev.join("serial.log")).unwrap();
    let s = flow::run(&t, "r", &options(&t, ev.clone(), &emu, &calls)).unwrap();
    assert!(s.passed, "{s:#?}");
    for f in [
        "resources.json",
        "commands.jsonl",
        "verify.json",
        "artifact.json",
        "serial.log",
        "summary.json",
    ] {
        assert_eq!(mode(&ev.join(f)), 0o600, "{f}");
    }
    assert_eq!(
        std::fs::read_to_string(ev.join("notes.txt")).unwrap(),
        "the user's own file"
    );
    assert_eq!(emu.leftovers(), Vec::<String>::new());
}

#[test]
fn a_symlink_planted_during_the_run_is_not_followed() {
    if !ready_aws() {
        return;
    }
    let emu = AwsEmu::start("no-landmark");
    let calls = aws_calls(&emu);
    let t = aws_target("capos-ev2", AwsFormat::Raw, BootMode::LegacyBios);
    let ev = emu.dir().join("ev");
    let victim = emu.dir().join("victim");
    std::fs::write(&victim, "untouched").unwrap();
    let mut o = options(&t, ev.clone(), &emu, &calls);
    o.boot_timeout = Duration::from_secs(4);
    let run = std::thread::spawn(move || flow::run(&t, "r", &o));
    // Once the instance is up, plant symlinks at the journal's name and
    // at the summary's (written last).
    let journal = ev.join("resources.json");
    let t0 = Instant::now();
    loop {
        let text = std::fs::read_to_string(&journal).unwrap_or_default();
        if text.contains("\"aws-instance\"") && text.contains("\"i-") {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(120), "no instance");
        std::thread::sleep(Duration::from_millis(20));
    }
    let saved = std::fs::read(&journal).unwrap();
    std::fs::remove_file(&journal).unwrap();
    std::os::unix::fs::symlink(&victim, &journal).unwrap();
    std::os::unix::fs::symlink(&victim, ev.join("summary.json")).unwrap();
    // The summary's name is taken: the run says so, after tearing down.
    let e = run.join().unwrap().unwrap_err();
    assert!(e.message.contains("summary.json"), "{e}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
    // The journal was replaced (its teardown written), not written through.
    assert!(!std::fs::symlink_metadata(&journal)
        .unwrap()
        .file_type()
        .is_symlink());
    let text = std::fs::read_to_string(&journal).unwrap();
    assert!(
        text.len() >= saved.len() && text.contains("\"deleted\""),
        "{text}"
    );
    assert_eq!(mode(&journal), 0o600);
    assert_eq!(emu.leftovers(), Vec::<String>::new());
}
