//! The GCP flow's failures and choices through the real `gcloud` against
//! the local GCP (standin/api/gcp_emulator.py): faults injected at the
//! API (quota, permission, transient errors of Compute and of Cloud
//! Storage), GCP's rawDisk rules applied to tarballs, the harness killed
//! mid-run, and project, zone and account from gcloud's own
//! configuration. After every run the emulator itself is asked what it
//! still holds.
//!
//! These replace the tests of the retired gcloud CLI stand-in; the rest
//! of the GCP flow is in real_cli_gcp.rs.

mod common;

use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, Output};

use cloudimg_cloud::{flow, ErrorKind, RunOptions, Summary, Target};
use cloudimg_disk::vocab::Firmware;
use common::real::{ready_gcloud, GcpEmu};
use common::{artifact_for, assert_failed_clean, gcp_target, killed, read_json, sh, text};

/// Run `target` through the real gcloud against `emu`.
fn run(
    target: &Target,
    emu: &GcpEmu,
    tweak: impl FnOnce(&mut RunOptions),
) -> (Summary, tempfile::TempDir) {
    emu.run(target, tweak)
}

/// A BIOS target (the faster boot).
fn bios_target(name: &str) -> Target {
    let mut t = gcp_target(name);
    if let Target::Gcp(g) = &mut t {
        g.firmware = Firmware::Bios;
    }
    t
}

/// Every record of commands.jsonl.
fn commands(s: &Summary) -> Vec<serde_json::Value> {
    std::fs::read_to_string(s.evidence_dir.join("commands.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The records whose command line contains `what`.
fn records_of(s: &Summary, what: &str) -> Vec<serde_json::Value> {
    commands(s)
        .into_iter()
        .filter(|r| r["line"].as_str().unwrap().contains(what))
        .collect()
}

// ------------------------------------------------------------ faults ----

/// The regional CPU quota refuses the instance (HTTP 403 quotaExceeded):
/// a quota error, not retried, the image and object deleted.
#[test]
fn cpu_quota_fails_the_run_and_leaves_nothing() {
    if !ready_gcloud() {
        return;
    }
    let emu = GcpEmu::start("quota=instances.insert");
    let (s, _ev) = run(&bios_target("capos-f4"), &emu, |_| {});
    assert_failed_clean(&s, emu.leftovers(),
        ErrorKind::Quota,
        "quota exceeded: ERROR: (gcloud.compute.instances.create) Could not fetch resource: - Quota 'CPUS' exceeded.  Limit: 0.0 in region us-central1.",
    );
    assert_eq!(records_of(&s, "compute instances create").len(), 1);
}

/// The IAM permission to create images is missing: a permission error,
/// not retried, the uploaded object deleted.
#[test]
fn permission_denied_fails_the_run_and_leaves_nothing() {
    if !ready_gcloud() {
        return;
    }
    let emu = GcpEmu::start("permission=images.insert");
    let (s, _ev) = run(&bios_target("capos-f6"), &emu, |_| {});
    assert_failed_clean(&s, emu.leftovers(),
        ErrorKind::Permission,
        "permission denied: ERROR: (gcloud.compute.images.create) Could not fetch resource: - Required 'compute.images.create' permission for 'projects/capos-proj'",
    );
    assert_eq!(records_of(&s, "compute images create").len(), 1);
}

/// A 500 from Compute on images.insert (once) and from Cloud Storage on
/// the upload (twice). gcloud does not retry the 500 on images.insert:
/// cloudimg does, and commands.jsonl shows it. The real `gcloud storage
/// cp` of the (small, single-request) tarball retries the 500s itself
/// (seen with SDK 528; the emulator shows both answered), so cloudimg
/// sees one successful upload. The run passes.
#[test]
fn transient_failures_are_retried() {
    if !ready_gcloud() {
        return;
    }
    let emu = GcpEmu::start("transient=images.insert,transient=storage.objects.insert:2");
    let (s, _ev) = run(&bios_target("capos-f7"), &emu, |_| {});
    common::real::assert_passed(&s, || emu.leftovers(), "bios");
    let create = records_of(&s, "compute images create");
    assert_eq!(create.len(), 2, "{create:?}");
    assert_eq!(create[0]["exit"], 1);
    assert_eq!(create[1]["exit"], 0);
    assert_eq!(create[1]["attempt"], 2);
    let cp = records_of(&s, "storage cp");
    assert_eq!(cp.len(), 1, "{cp:?}");
    assert_eq!(cp[0]["exit"], 0);
    assert_eq!(
        emu.injected(),
        [
            "storage.objects.insert 500",
            "storage.objects.insert 500",
            "images.insert 500"
        ]
    );
}

// ------------------------------------------------------ import rules ----

/// Run the real gcloud in `cwd` with the emulator's environment.
fn gcloud_in(emu: &GcpEmu, cwd: &Path, args: &[&str]) -> Output {
    Command::new("gcloud")
        .args(args)
        .envs(emu.env())
        .current_dir(cwd)
        .output()
        .unwrap()
}

/// Upload `file` with the real gcloud and make an image of it.
fn gcp_import(emu: &GcpEmu, cwd: &Path, file: &str) -> Output {
    let up = gcloud_in(
        emu,
        cwd,
        &["storage", "cp", file, "gs://bkt/t.tar.gz", "--project=p"],
    );
    assert!(up.status.success(), "{}", text(&up.stderr));
    gcloud_in(
        emu,
        cwd,
        &[
            "compute",
            "images",
            "create",
            "t",
            "--project=p",
            "--source-uri=gs://bkt/t.tar.gz",
            "--format=json",
        ],
    )
}

const NOT_VALID: &str = "ERROR: (gcloud.compute.images.create) Could not fetch resource:\n - The tar archive is not a valid image.";

/// gcloud's error, without the blank line it ends with.
fn error_of(out: &Output) -> String {
    text(&out.stderr).trim_end().to_string()
}

/// The Compute endpoint applies GCP's rawDisk rules (Python
/// gzip/tarfile, GNU tar: tools independent of cloudimg) and the real
/// gcloud prints its refusals; a good tarball gives a READY image of
/// the documented shape, deleted once, then NotFound.
#[test]
fn images_create_applies_gcps_tarball_rules() {
    if !(ready_gcloud() && common::require_tool("gzip")) {
        return;
    }
    let emu = GcpEmu::start("");
    let w = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let d = w.path();
    sh(d, "mkdir m && head -c 1048576 /dev/urandom > m/disk.raw && cp m/disk.raw m/other.raw && truncate -s 1G m/big.raw && printf x | dd of=m/big.raw bs=1 seek=4096 conv=notrunc 2>/dev/null");
    sh(d, "tar -C m --format=pax -czf pax.tar.gz disk.raw");
    sh(d, "tar -C m --format=ustar -czf ustar.tar.gz disk.raw");
    sh(d, "tar -C m --format=oldgnu -czf name.tar.gz other.raw");
    sh(
        d,
        "tar -C m --format=oldgnu -czf two.tar.gz disk.raw other.raw",
    );
    sh(d, "tar -C m --format=oldgnu -czf small.tar.gz disk.raw");
    sh(d, "tar -C m --format=oldgnu -cf plain.tar disk.raw");
    sh(
        d,
        "cd m && mv big.raw disk.raw && tar --format=gnu -Sczf ../good.tar.gz disk.raw",
    );
    for bad in [
        "pax.tar.gz",
        "ustar.tar.gz",
        "name.tar.gz",
        "two.tar.gz",
        "plain.tar",
    ] {
        let out = gcp_import(&emu, d, bad);
        assert_eq!(out.status.code(), Some(1), "{bad}");
        assert!(error_of(&out).ends_with(NOT_VALID), "{bad}: {out:?}");
    }
    let out = gcp_import(&emu, d, "small.tar.gz");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        error_of(&out).ends_with(
            "ERROR: (gcloud.compute.images.create) Could not fetch resource:\n - disk.raw must be a multiple of 1 GB (found 1048576 bytes)"
        ),
        "{out:?}"
    );
    // A GNU sparse tar of a whole-GiB disk is accepted and listed in the
    // API's shape, as gcloud prints it.
    let out = gcp_import(&emu, d, "good.tar.gz");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["name"], "t");
    assert_eq!(v[0]["status"], "READY");
    assert_eq!(v[0]["diskSizeGb"], "1");
    let delete = ["compute", "images", "delete", "t", "--project=p", "--quiet"];
    let del = gcloud_in(&emu, d, &delete);
    assert!(del.status.success(), "{del:?}");
    let again = gcloud_in(&emu, d, &delete);
    assert!(
        error_of(&again).ends_with(
            "ERROR: (gcloud.compute.images.delete) Could not fetch resource:\n - The resource 'projects/p/global/images/t' was not found"
        ),
        "{again:?}"
    );
    let rm = gcloud_in(&emu, d, &["storage", "rm", "gs://bkt/t.tar.gz"]);
    assert!(rm.status.success(), "{rm:?}");
    assert_eq!(emu.leftovers(), Vec::<String>::new());
}

// ------------------------------------------------------------- crash ----

/// The child's body: the GCP flow against the emulator the parent
/// started (common::killed); a no-op in any other process.
#[test]
fn child_flow() {
    if let Some(o) = killed::child_options() {
        let _ = flow::run(&gcp_target("capos-crash"), "crash-run", &o);
    }
}

/// The harness is killed (SIGKILL to its process group, CLIs included)
/// once the journal shows the image created: the emulator still holds
/// what the run made, `teardown_journal` through the real gcloud
/// removes it all, and a second teardown finds nothing to do.
#[test]
fn killed_after_image_created_then_torn_down_from_the_journal() {
    if !ready_gcloud() {
        return;
    }
    let emu = GcpEmu::start("no-landmark");
    let journal = killed::run_and_kill(
        emu.env(),
        &artifact_for(&gcp_target("capos-crash")),
        &emu.emu.dir.path().join("evidence"),
        "gcp-image",
        "created",
    );
    let runner = emu.runner();
    let left = killed::teardown_twice(&journal, &runner, || emu.leftovers());
    assert!(
        left.iter().any(|l| l == "image capos-crash"),
        "the killed run left its image: {left:?}"
    );
}

// --------------------------------------------------------- preflight ----

/// A target with no project or zone (gcloud's configuration gives
/// them), a network and subnet, BIOS.
fn gcp_from_config(name: &str) -> Target {
    let mut t = bios_target(name);
    if let Target::Gcp(g) = &mut t {
        g.project = String::new();
        g.zone = String::new();
        g.network = Some("capos-net".into());
        g.subnet = Some("capos-subnet".into());
    }
    t
}

/// The emulator's environment without the account, project and zone
/// properties (so only gcloud's configuration can give them).
fn config_only_env(emu: &GcpEmu) -> Vec<(OsString, OsString)> {
    let mut env = emu.env();
    env.retain(|(k, _)| {
        k != "CLOUDSDK_CORE_PROJECT" && k != "CLOUDSDK_COMPUTE_ZONE" && k != "CLOUDSDK_CORE_ACCOUNT"
    });
    env
}

/// No project anywhere: a clear error and nothing created. Then
/// `gcloud config set` in the throwaway configuration gives account,
/// project and zone: the run uses them, records who it ran as, and
/// creates the instance without an external address (an organization
/// policy forbids one here) on the network and subnet asked for.
#[test]
fn project_zone_and_account_come_from_gclouds_configuration() {
    if !ready_gcloud() {
        return;
    }
    let emu = GcpEmu::start("no-external-ip");
    let (s, _ev) = run(&gcp_from_config("capos-p2"), &emu, |o| {
        o.env = config_only_env(&emu)
    });
    assert_eq!(s.error_kind, Some(ErrorKind::InvalidInput), "{s:#?}");
    assert_eq!(
        s.error.as_deref(),
        Some("no GCP project: give --project, or set one with `gcloud config set project PROJECT`")
    );
    assert!(!s.evidence_dir.join("resources.json").exists());
    assert_eq!(emu.leftovers(), Vec::<String>::new());

    // The account last: with an account set, `config set project` asks
    // Cloud Resource Manager whether the project exists
    // (WarnIfSettingProjectWithNoAccess in the SDK's
    // command_lib/config/config_validators.py), which is not local.
    for (k, v) in [
        ("project", "capos-conf"),
        ("compute/zone", "europe-west1-b"),
        ("account", "operator@example.com"),
    ] {
        let set = Command::new("gcloud")
            .args(["config", "set", k, v])
            .env_remove("CLOUDSDK_CORE_ACCOUNT")
            .env_remove("CLOUDSDK_CORE_PROJECT")
            .env_remove("CLOUDSDK_COMPUTE_ZONE")
            .envs(config_only_env(&emu))
            .output()
            .unwrap();
        assert!(set.status.success(), "{set:?}");
    }
    let (s, _ev) = run(&gcp_from_config("capos-p3"), &emu, |o| {
        o.env = config_only_env(&emu)
    });
    common::real::assert_passed(&s, || emu.leftovers(), "bios");
    let id = s.identity.clone().unwrap();
    assert_eq!(id.principal, "operator@example.com");
    assert_eq!(id.account, "capos-conf");
    assert_eq!(id.zone.as_deref(), Some("europe-west1-b"));
    let rec = read_json(&s.evidence_dir.join("identity.json"));
    assert_eq!(rec["cli"], "gcloud");
    assert_eq!(rec["version"], gcloud_sdk_version(&emu), "{rec}");
    let create = records_of(&s, "compute instances create");
    let line = create[0]["line"].as_str().unwrap();
    for want in [
        "--project=capos-conf",
        "--zone=europe-west1-b",
        "--no-address",
        "--network=capos-net",
        "--subnet=capos-subnet",
    ] {
        assert!(line.contains(want), "{line}");
    }
}

/// The SDK version the real gcloud reports (`gcloud version
/// --format=json`, key "Google Cloud SDK").
fn gcloud_sdk_version(emu: &GcpEmu) -> String {
    let v = emu.gcloud(&["version", "--format=json"]);
    assert!(v.status.success(), "{v:?}");
    let j: serde_json::Value = serde_json::from_slice(&v.stdout).unwrap();
    j["Google Cloud SDK"].as_str().unwrap().to_string()
}
