//! The GCP flow through the real `gcloud` (the Google Cloud SDK installed
//! on the machine) against a local GCP: fake-gcs-server for Cloud Storage
//! and our Compute API endpoint (standin/api) that imports the tarball
//! with GCP's rawDisk rules and boots the image in QEMU; `gsutil`
//! (`--gsutil`) reaches the same fake GCS server over HTTPS. After every
//! run the emulator itself is asked what it still holds. Faults,
//! import rules, a killed harness and gcloud's configuration are in
//! gcp_flow.rs.

mod common;

use std::path::Path;
use std::time::Duration;

use cloudimg_cloud::{ErrorKind, RunOptions, Runner, Summary, Target};
use cloudimg_disk::vocab::Firmware;
use common::real::{assert_passed, lines_with, ready_gcloud, GcpEmu};
use common::{artifact_for, gcp_target, read_json};

fn run(
    target: &Target,
    emu: &GcpEmu,
    tweak: impl FnOnce(&mut RunOptions),
) -> (Summary, tempfile::TempDir) {
    emu.run(target, tweak)
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

/// The evidence of a passing run: a journal where everything is
/// deleted, one record per command with exit status and timing, each
/// a gcloud or gsutil line, the manifest entry, the summary and an
/// empty verify report.
fn assert_evidence(s: &Summary) {
    let ev = &s.evidence_dir;
    let j = read_json(&ev.join("resources.json"));
    let res = j["resources"].as_array().unwrap();
    assert!(res.len() >= 3, "{j}");
    assert!(res.iter().all(|r| r["state"] == "deleted"), "{j}");
    let cmds = std::fs::read_to_string(ev.join("commands.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = cmds
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.len() >= 6, "{cmds}");
    for l in &lines {
        assert!(l["exit"].is_i64(), "{l}");
        assert!(l["seconds"].is_f64() || l["seconds"].is_i64(), "{l}");
        let line = l["line"].as_str().unwrap();
        assert!(
            line.starts_with("gcloud ") || line.starts_with("gsutil "),
            "{l}"
        );
    }
    let art = read_json(&ev.join("artifact.json"));
    assert_eq!(art["source"], "manifest", "{art}");
    assert!(art["entry"]["virtual_sha256"].is_string(), "{art}");
    let sum = read_json(&ev.join("summary.json"));
    assert_eq!(sum["passed"], true, "{sum}");
    assert_eq!(sum["provider"], "gcp");
    assert!(sum["image_id"].is_string(), "{sum}");
    assert!(sum["seconds_to_landmark"].is_f64(), "{sum}");
    assert_eq!(sum["boot_mode"], s.boot_mode);
    assert!(read_json(&ev.join("verify.json"))["findings"]
        .as_array()
        .unwrap()
        .is_empty());
}

#[test]
fn uefi_image_boots() {
    if !ready_gcloud() {
        return;
    }
    let emu = GcpEmu::start("");
    let (s, _ev) = run(&gcp_target("capos-gcp"), &emu, |_| {});
    assert_passed(&s, || emu.leftovers(), "uefi");
    assert_evidence(&s);
    // The emulator boots OVMF only for an image with UEFI_COMPATIBLE.
    assert_eq!(s.boot_mode, "UEFI_COMPATIBLE");
    let line = lines_with(&s, "compute images create").remove(0);
    assert!(
        line.contains("--guest-os-features=UEFI_COMPATIBLE"),
        "{line}"
    );
}

/// BIOS, with `--gsutil`: the real gsutil uploads to and deletes from
/// the fake GCS server (over the emulator's HTTPS front; see
/// `GcpEmu::write_boto`), and the image imports from what it uploaded.
#[test]
fn bios_image_boots_with_a_gsutil_upload() {
    if !ready_gcloud() || !common::real::require_installed(Path::new("/usr/bin/gsutil")) {
        return;
    }
    let emu = GcpEmu::start("");
    let mut t = gcp_target("capos-gcp-bios");
    if let Target::Gcp(g) = &mut t {
        g.firmware = Firmware::Bios;
        g.gsutil = true;
    }
    let (s, _ev) = run(&t, &emu, |_| {});
    assert_passed(&s, || emu.leftovers(), "bios");
    assert_evidence(&s);
    assert_eq!(
        lines_with(&s, "gsutil cp "),
        vec![format!(
            "gsutil cp {} gs://bkt/capos-gcp-bios.tar.gz",
            artifact_for(&t).display()
        )]
    );
    assert_eq!(
        lines_with(&s, "gsutil rm "),
        vec!["gsutil rm gs://bkt/capos-gcp-bios.tar.gz".to_string()]
    );
    assert!(lines_with(&s, "gcloud storage").is_empty());
}

/// Teardown's object delete through the real gsutil: the object goes,
/// then a second delete (an object already gone, as after a killed run
/// or a retried delete) prints gsutil's `No URLs matched`, which
/// cloudimg reads as NotFound, not as a failure to retry.
#[test]
fn gsutil_delete_of_a_missing_object_is_not_found() {
    if !ready_gcloud() || !common::real::require_installed(Path::new("/usr/bin/gsutil")) {
        return;
    }
    let emu = GcpEmu::start("");
    let f = emu.emu.dir.path().join("obj.tar.gz");
    std::fs::write(&f, b"not a tarball").unwrap();
    let mut runner = Runner::new(cloudimg_cloud::command::quiet());
    runner.env = emu.env();
    runner.retries = 0;
    let uri = "gs://bkt/capos-gone.tar.gz";
    let cp = cloudimg_cloud::CloudCommand::new("gsutil", ["cp", f.to_str().unwrap(), uri]);
    runner.run(&cp).unwrap();
    assert_eq!(
        emu.leftovers(),
        vec![format!("gcs object {uri}")],
        "uploaded by gsutil"
    );
    let rm = cloudimg_cloud::gcp::delete_object(uri, common::real::PROJECT, true);
    runner.run(&rm).unwrap();
    assert_eq!(emu.leftovers(), Vec::<String>::new());
    let again = runner.run_raw(&rm).unwrap();
    assert!(!again.success());
    assert!(
        again
            .stderr
            .contains("CommandException: No URLs matched: gs://bkt/capos-gone.tar.gz"),
        "{again:?}"
    );
    assert_eq!(
        cloudimg_cloud::command::classify(&again.stderr),
        cloudimg_cloud::command::Failure::NotFound
    );
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
    assert_eq!(
        s.error.as_deref().unwrap(),
        "GCP rejected the import: `gcloud compute images create` failed (exit 1): ERROR: (gcloud.compute.images.create) Could not fetch resource: - The tar archive is not a valid image."
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
    let msg = s.error.as_deref().unwrap();
    assert!(
        msg.contains("\"capos kernel starting\" not seen on the serial console within 15 s"),
        "{msg}"
    );
    assert!(!msg.contains('\n'), "{msg:?}");
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
    assert_eq!(
        p.resources,
        vec!["GCP image capos-gcp-pub (project capos-proj)".to_string()]
    );
    // The journal says kept; the summary says published.
    let j = read_json(&p.journal);
    let kept: Vec<_> = j["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["state"] == "kept")
        .collect();
    assert_eq!(kept.len(), 1, "{j}");
    let sum = read_json(&s.evidence_dir.join("summary.json"));
    assert_eq!(sum["schema"], "cloudimg.cloud-run/1");
    assert_eq!(sum["published"]["image_id"], s.image_id.clone().unwrap());
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
    let runner = emu.runner();
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
    assert!(
        e.ends_with("run `gcloud auth login`; nothing was created"),
        "{e}"
    );
    // No journal, no teardown, nothing to report left behind.
    assert!(s.teardown.is_none(), "{s:#?}");
    assert!(!s.evidence_dir.join("resources.json").exists());
    assert_eq!(emu.leftovers(), Vec::<String>::new());
    // Only the read-only preflight ran.
    for line in lines_with(&s, "") {
        assert!(
            line.starts_with("gcloud version") || line.starts_with("gcloud config get-value"),
            "{line}"
        );
    }
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
    let boto = emu.emu.dir.path().join("boto-silent");
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
    assert_eq!(
        err.message,
        "`gsutil ls gs://bkt` did not finish within 8 s"
    );
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
