//! The GCP flow through the real `gcloud` (the Google Cloud SDK installed
//! on the machine) against a local GCP: fake-gcs-server for Cloud Storage
//! and our Compute API endpoint (standin/api) that imports the tarball
//! with GCP's rawDisk rules and boots the image in QEMU. After every run
//! the emulator itself is asked what it still holds.

mod common;

use std::sync::Arc;
use std::time::Duration;

use cloudimg_cloud::{flow, ErrorKind, RunOptions, Runner, Summary, Target};
use cloudimg_disk::vocab::Firmware;
use common::real::{assert_passed, ready_gcloud, GcpEmu};
use common::{artifact_for, gcp_target};

fn run(
    target: &Target,
    emu: &GcpEmu,
    tweak: impl FnOnce(&mut RunOptions),
) -> (Summary, tempfile::TempDir) {
    let ev = tempfile::Builder::new()
        .prefix("evidence-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let log: cloudimg_cloud::Log = Arc::new(|s: &str| eprintln!("{s}"));
    let mut o = RunOptions::new(artifact_for(target), ev.path().join("ev"), log);
    o.env = emu.env();
    o.poll_interval = Duration::from_millis(500);
    o.boot_timeout = Duration::from_secs(120);
    o.backoff = Duration::from_millis(200);
    o.command_timeout = Duration::from_secs(300);
    tweak(&mut o);
    let s = flow::run(target, "real-run", &o).expect("evidence can be written");
    (s, ev)
}

#[test]
fn gcloud_honours_the_endpoint_overrides() {
    if !ready_gcloud() {
        return;
    }
    let emu = GcpEmu::start("");
    let v = emu.gcloud(&["--version"]);
    eprintln!("{}", String::from_utf8_lossy(&v.stdout));
    assert!(v.status.success(), "{v:?}");
    // Storage: the empty bucket of the fake GCS server.
    let ls = emu.gcloud(&["storage", "ls", "gs://bkt"]);
    assert!(ls.status.success(), "{ls:?}");
    assert!(ls.stdout.is_empty(), "{ls:?}");
    // Compute: our endpoint's NotFound for an image that does not exist.
    let img = emu.gcloud(&["compute", "images", "describe", "nothing-here"]);
    assert!(!img.status.success());
    let err = String::from_utf8_lossy(&img.stderr);
    assert!(
        err.contains("projects/capos-proj/global/images/nothing-here' was not found"),
        "{err}"
    );
}

#[test]
fn uefi_image_boots() {
    if !ready_gcloud() {
        return;
    }
    let emu = GcpEmu::start("");
    let (s, _ev) = run(&gcp_target("capos-gcp"), &emu, |_| {});
    assert_passed(&s, || emu.leftovers(), "uefi");
    assert_eq!(s.boot_mode, "UEFI_COMPATIBLE");
}

#[test]
fn bios_image_boots() {
    if !ready_gcloud() {
        return;
    }
    let emu = GcpEmu::start("");
    let mut t = gcp_target("capos-gcp-bios");
    if let Target::Gcp(g) = &mut t {
        g.firmware = Firmware::Bios;
    }
    let (s, _ev) = run(&t, &emu, |_| {});
    assert_passed(&s, || emu.leftovers(), "bios");
}

#[test]
fn import_failure_is_reported_and_nothing_is_left() {
    if !ready_gcloud() {
        return;
    }
    let emu = GcpEmu::start("import-fail");
    let (s, _ev) = run(&gcp_target("capos-gcp-fail"), &emu, |_| {});
    assert!(!s.passed);
    assert_eq!(s.error_kind, Some(ErrorKind::ImportFailed), "{s:#?}");
    assert!(
        s.error.as_deref().unwrap().contains("not a valid image"),
        "{s:#?}"
    );
    assert!(s.teardown.as_ref().unwrap().is_clean(), "{s:#?}");
    assert_eq!(emu.leftovers(), Vec::<String>::new());
}

#[test]
fn no_landmark_times_out_and_tears_down() {
    if !ready_gcloud() {
        return;
    }
    let emu = GcpEmu::start("no-landmark");
    let (s, _ev) = run(&gcp_target("capos-gcp-quiet"), &emu, |o| {
        o.boot_timeout = Duration::from_secs(15)
    });
    assert!(!s.passed);
    assert_eq!(s.error_kind, Some(ErrorKind::Timeout), "{s:#?}");
    assert!(s.teardown.as_ref().unwrap().is_clean(), "{s:#?}");
    assert_eq!(emu.leftovers(), Vec::<String>::new());
}

#[test]
fn transient_backend_error_is_retried() {
    if !ready_gcloud() {
        return;
    }
    // gcloud prints a 500's message only ("Could not fetch resource: -
    // Internal error. Please try again ..."), which cloudimg reads as
    // transient.
    let emu = GcpEmu::start("transient=instances.insert:1");
    let (s, _ev) = run(&gcp_target("capos-gcp-5xx"), &emu, |_| {});
    assert_passed(&s, || emu.leftovers(), "uefi");
}

/// What gcloud prints for a rate quota (403 rateLimitExceeded) and a 503:
/// the message only, after `Could not fetch resource:`, and it does not
/// retry either (one injected fault reaches the caller).
#[test]
fn gcloud_prints_throttling_and_503_as_their_message() {
    if !ready_gcloud() {
        return;
    }
    let emu = GcpEmu::start("throttle=images.get:1,unavailable=instances.get:1");
    let img = emu.gcloud(&["compute", "images", "describe", "x"]);
    let err = String::from_utf8_lossy(&img.stderr);
    assert!(
        err.contains("Could not fetch resource:\n - Rate Limit Exceeded"),
        "{err}"
    );
    assert_eq!(
        cloudimg_cloud::command::classify(&err),
        cloudimg_cloud::command::Failure::Transient
    );
    let inst = emu.gcloud(&["compute", "instances", "describe", "x"]);
    let err = String::from_utf8_lossy(&inst.stderr);
    assert!(
        err.contains("Could not fetch resource:\n - The service is currently unavailable."),
        "{err}"
    );
    assert_eq!(
        cloudimg_cloud::command::classify(&err),
        cloudimg_cloud::command::Failure::Transient
    );
    // The next call is answered: NotFound, which is not transient.
    let again = emu.gcloud(&["compute", "images", "describe", "x"]);
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("was not found"), "{err}");
    assert_eq!(
        cloudimg_cloud::command::classify(&err),
        cloudimg_cloud::command::Failure::NotFound
    );
}

#[test]
fn throttling_and_unavailable_are_retried() {
    if !ready_gcloud() {
        return;
    }
    let emu = GcpEmu::start("throttle=images.insert:1,unavailable=instances.insert:1");
    let (s, ev) = run(&gcp_target("capos-gcp-429"), &emu, |_| {});
    assert_passed(&s, || emu.leftovers(), "uefi");
    // Each create was tried twice (the fault, then the retry).
    let log = std::fs::read_to_string(ev.path().join("ev/commands.jsonl")).unwrap();
    for what in ["compute images create", "compute instances create"] {
        let n = log.lines().filter(|l| l.contains(what)).count();
        assert_eq!(n, 2, "{what}: {log}");
    }
}

/// A deleted instance (STOPPING) and image (DELETING) stay described for
/// three gets: teardown describes until they are gone (the emulator
/// lists them until the gets are used up).
#[test]
fn deletions_are_confirmed_by_describing() {
    if !ready_gcloud() {
        return;
    }
    let emu = GcpEmu::start("visible-after-delete=3");
    let (s, ev) = run(&gcp_target("capos-gcp-ghost"), &emu, |_| {});
    assert_passed(&s, || emu.leftovers(), "uefi");
    let log = std::fs::read_to_string(ev.path().join("ev/commands.jsonl")).unwrap();
    for what in ["compute instances describe", "compute images describe"] {
        let n = log.lines().filter(|l| l.contains(what)).count();
        assert_eq!(n, 4, "{what}: three while visible, one NotFound: {log}");
    }
}

#[test]
fn publish_keeps_the_image_until_the_journal_teardown() {
    if !ready_gcloud() {
        return;
    }
    let emu = GcpEmu::start("");
    let mut t = gcp_target("capos-gcp-pub");
    if let Target::Gcp(g) = &mut t {
        g.firmware = Firmware::Bios;
        g.family = Some("capos".into());
        g.labels = vec![
            ("os".into(), "capos".into()),
            ("release".into(), "v1-2".into()),
        ];
    }
    let (s, _ev) = run(&t, &emu, |o| o.publish = true);
    assert!(s.passed, "{s:#?}");
    assert!(s.teardown.as_ref().unwrap().is_clean(), "{s:#?}");
    let p = s.published.clone().expect("published");
    assert_eq!(p.image_id, s.image_id);
    // Asked of the emulator: the image alone stays (no instance, no
    // QEMU, no object), with its family and labels.
    assert_eq!(emu.leftovers(), vec!["image capos-gcp-pub".to_string()]);
    let d = emu.gcloud(&[
        "compute",
        "images",
        "describe",
        "capos-gcp-pub",
        "--format=json",
    ]);
    assert!(d.status.success(), "{d:?}");
    let v: serde_json::Value = serde_json::from_slice(&d.stdout).unwrap();
    assert_eq!(v["family"], "capos", "{v}");
    assert_eq!(v["labels"]["release"], "v1-2", "{v}");
    // Later, `cloud teardown --journal` (teardown_journal) removes it.
    let mut runner = Runner::new(Arc::new(|s: &str| eprintln!("{s}")));
    runner.env = emu.env();
    runner.backoff = Duration::from_millis(200);
    runner.poll = Duration::from_millis(500);
    let r = cloudimg_cloud::teardown_journal(&p.journal, &runner).unwrap();
    assert!(r.is_clean(), "{r:?}");
    assert_eq!(r.deleted.len(), 1, "{r:?}");
    assert_eq!(emu.leftovers(), Vec::<String>::new());
}

/// No account and no access token: the preflight stops the run before
/// anything is uploaded or created, and says what to run.
#[test]
fn not_logged_in_fails_the_preflight_and_creates_nothing() {
    if !ready_gcloud() {
        return;
    }
    let emu = GcpEmu::start("");
    let (s, _ev) = run(&gcp_target("capos-gcp-nologin"), &emu, |o| {
        o.env.retain(|(k, _)| {
            k != "CLOUDSDK_CORE_ACCOUNT" && k != "CLOUDSDK_AUTH_ACCESS_TOKEN_FILE"
        });
    });
    assert!(!s.passed);
    assert_eq!(s.error_kind, Some(ErrorKind::Permission), "{s:#?}");
    let e = s.error.as_deref().unwrap();
    assert!(e.contains("gcloud auth login"), "{e}");
    assert!(e.contains("nothing was created"), "{e}");
    let td = s.teardown.as_ref();
    assert!(
        td.is_none_or(|t| t.is_clean() && t.deleted.is_empty()),
        "{s:#?}"
    );
    assert_eq!(emu.leftovers(), Vec::<String>::new());
}

/// A CLI killed on its time limit leaves no process: `gsutil` is a shell
/// script running Python, which runs gsutil, which forks workers (five
/// processes, seen with the Google Cloud SDK 528). Here it lists a bucket
/// on a local port that never answers, so gsutil waits 60 s for its TLS
/// handshake. Were only the direct child killed (tried: it is so), the
/// grandchildren would keep the output pipes open and `run_raw` would
/// return only when they give up, 60 s later: the test waits 45 s (the
/// command's limit is 8 s), then names what still runs, kills it and
/// fails.
#[test]
fn a_timed_out_cli_leaves_no_process() {
    if !ready_gcloud() || !common::real::require_installed(std::path::Path::new("/usr/bin/gsutil"))
    {
        return;
    }
    let port = silent_server();
    let emu = GcpEmu::start("");
    let boto = emu.emu.dir.path().join("boto");
    std::fs::write(
        &boto,
        format!(
            "[Credentials]\ngs_json_host = 127.0.0.1\ngs_json_port = {port}\n\
             [Boto]\nnum_retries = 0\n"
        ),
    )
    .unwrap();
    let marker = format!("cloudimg-tree-{}", std::process::id());
    let mut runner = Runner::new(cloudimg_cloud::command::quiet());
    runner.env = emu.env();
    runner.env.push(("BOTO_CONFIG".into(), boto.into()));
    runner
        .env
        .push(("CLOUDIMG_TEST_MARK".into(), marker.clone().into()));
    runner.timeout = Duration::from_secs(8);
    runner.retries = 0;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let cmd = cloudimg_cloud::CloudCommand::new("gsutil", ["ls", "gs://bkt"]);
        let _ = tx.send(runner.run_raw(&cmd).map(|o| o.status));
    });
    // A hang guard, not a timing assertion: the limit is 8 s.
    let Ok(res) = rx.recv_timeout(Duration::from_secs(45)) else {
        let left = marked(&marker);
        for (pid, _) in &left {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        panic!("run_raw did not return: the timed-out tree still runs: {left:?}");
    };
    let err = res.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Timeout, "{err:?}");
    // SIGKILL is delivered at once, but a process leaves /proc only once
    // its parent reaps it: look again for a while before failing.
    let mut left = marked(&marker);
    for _ in 0..100 {
        if left.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
        left = marked(&marker);
    }
    assert!(left.is_empty(), "still running: {left:?}");
}

/// A local port that accepts connections and never answers: the TLS
/// handshake of a client waits until its own socket timeout (gsutil:
/// 60 s, "The handshake operation timed out", seen with `gsutil -D`).
fn silent_server() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in listener.incoming() {
            held.push(c);
        }
    });
    port
}

/// Processes whose environment holds `CLOUDIMG_TEST_MARK=marker`: pid
/// and command line.
fn marked(marker: &str) -> Vec<(u32, String)> {
    let needle = format!("CLOUDIMG_TEST_MARK={marker}");
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_str()?.parse::<u32>().ok()?;
            let env = std::fs::read(e.path().join("environ")).ok()?;
            let hit = env.split(|&b| b == 0).any(|v| v == needle.as_bytes());
            let cmd = std::fs::read_to_string(e.path().join("cmdline")).ok()?;
            hit.then(|| (pid, cmd.replace('\0', " ")))
        })
        .collect()
}

#[test]
fn runs_where_external_ips_are_forbidden() {
    if !ready_gcloud() {
        return;
    }
    let emu = GcpEmu::start("no-external-ip");
    let (s, _ev) = run(&gcp_target("capos-gcp-noip"), &emu, |_| {});
    assert_passed(&s, || emu.leftovers(), "uefi");
}

/// Logged in by an access token alone (`CLOUDSDK_AUTH_ACCESS_TOKEN_FILE`,
/// no account): the real `gcloud config get-value account` prints nothing
/// (and `(unset)` on stderr), and the preflight accepts the token; the
/// project and zone come from gcloud's configuration.
#[test]
fn an_access_token_alone_passes_the_preflight() {
    if !ready_gcloud() {
        return;
    }
    let emu = GcpEmu::start("");
    let mut runner = Runner::new(cloudimg_cloud::command::quiet());
    runner.env = emu.env();
    runner.env.retain(|(k, _)| k != "CLOUDSDK_CORE_ACCOUNT");
    let out = runner
        .run_raw(&cloudimg_cloud::preflight::gcloud_config("account"))
        .unwrap();
    assert!(out.success() && out.stdout.trim().is_empty(), "{out:?}");
    let id = cloudimg_cloud::preflight::gcloud(&runner).unwrap();
    assert!(id.principal.contains("access token"), "{id:?}");
    assert_eq!(id.account, common::real::PROJECT);
    assert_eq!(id.zone.as_deref(), Some("us-central1-a"));
    assert!(
        id.version.starts_with(|c: char| c.is_ascii_digit()),
        "{id:?}"
    );
}
