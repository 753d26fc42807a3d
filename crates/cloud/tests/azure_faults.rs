//! Azure faults injected in the az stand-in (Azure compute has no
//! emulator): each ends with a failed run, a clear message, and no
//! resource left in the stand-in; a transient failure once is retried
//! and the run passes. AWS and GCP faults are injected at the API behind
//! the real CLIs (aws_faults.rs, gcp_flow.rs, real_cli_*.rs).

mod common;

use std::time::Duration;

use cloudimg_cloud::{flow, ErrorKind, Summary, Target};
use cloudimg_disk::vocab::Firmware;
use common::{artifact_for, assert_failed_clean, options, StandIn};

fn run_with(
    target: &Target,
    faults: &str,
    boot_timeout: Duration,
) -> (Summary, StandIn, tempfile::TempDir) {
    let si = StandIn::new(faults);
    let ev = tempfile::Builder::new()
        .prefix("evidence-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let mut o = options(artifact_for(target), ev.path().join("ev"), &si);
    o.boot_timeout = boot_timeout;
    let s = flow::run(target, "fault-run", &o).unwrap();
    (s, si, ev)
}

const LONG: Duration = Duration::from_secs(90);

// ----------------------------------------------------------------- azure ----

fn azure(name: &str) -> Target {
    // BIOS (V1): the fast boot.
    common::azure_target(name, Firmware::Bios)
}

#[test]
fn azure_disk_import_rejected() {
    if !common::ready() {
        return;
    }
    let (s, si, _e) = run_with(&azure("capos-af1"), "import-fail", LONG);
    assert_failed_clean(
        &s,
        si.leftovers(),
        ErrorKind::ImportFailed,
        "is not a supported VHD. Disk is expected to have cookie value 'conectix'.",
    );
    let msg = s.error.as_deref().unwrap();
    assert!(
        msg.starts_with("Azure rejected the import: `az disk create` failed (exit 1): ERROR: (BadRequest) The specified cookie value in VHD footer"),
        "{msg}"
    );
    // Only the blob had been made; it is gone.
    assert_eq!(s.teardown.as_ref().unwrap().deleted.len(), 1, "{s:#?}");
}

#[test]
fn azure_vm_quota() {
    if !common::ready() {
        return;
    }
    let (s, si, _e) = run_with(&azure("capos-af2"), "quota=vm-create", LONG);
    assert_failed_clean(&s, si.leftovers(), ErrorKind::Quota, "quota exceeded: ERROR: (QuotaExceeded) Operation could not be completed as it results in exceeding approved standardBSFamily Cores quota.");
    // Blob, disk, vnet, NIC deleted; the VM never existed: refused
    // outright, it is journaled as not created and not looked for.
    let td = s.teardown.as_ref().unwrap();
    assert_eq!(td.deleted.len(), 4, "{td:?}");
    assert!(td.already_gone.is_empty(), "{td:?}");
    let j: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(s.evidence_dir.join("resources.json")).unwrap(),
    )
    .unwrap();
    let vm = &j["resources"][4];
    assert_eq!(vm["resource"]["kind"], "azure-vm", "{j}");
    assert_eq!(vm["state"], "deleted", "{j}");
    assert!(
        vm["error"].as_str().unwrap().starts_with("not created: "),
        "{j}"
    );
}

#[test]
fn azure_permission_denied_on_the_disk() {
    if !common::ready() {
        return;
    }
    let (s, si, _e) = run_with(&azure("capos-af3"), "permission=disk-create", LONG);
    assert_failed_clean(&s, si.leftovers(), ErrorKind::Permission, "permission denied: ERROR: (AuthorizationFailed) The client 'user@example.com' with object id '00000000-0000-0000-0000-000000000001' does not have authorization to perform action 'Microsoft.Compute/disks/write'");
}

#[test]
fn azure_permission_denied_on_the_upload() {
    if !common::ready() {
        return;
    }
    let (s, si, _e) = run_with(&azure("capos-af4"), "permission=blob-upload", LONG);
    assert_failed_clean(&s, si.leftovers(), ErrorKind::Permission, "permission denied: You do not have the required permissions needed to perform this operation.");
}

#[test]
fn azure_transient_failures_are_retried() {
    if !common::ready() {
        return;
    }
    let (s, si, _e) = run_with(
        &azure("capos-af5"),
        "transient=disk-create,transient=blob-upload:2,transient=get-boot-log",
        LONG,
    );
    assert!(s.passed, "{s:#?}");
    assert_eq!(si.leftovers(), Vec::<String>::new());
    let cmds = std::fs::read_to_string(s.evidence_dir.join("commands.jsonl")).unwrap();
    let count = |what: &str| cmds.lines().filter(|l| l.contains(what)).count();
    assert_eq!(count("az disk create"), 2, "{cmds}");
    assert_eq!(count("az storage blob upload"), 3, "{cmds}");
}

#[test]
fn azure_landmark_never_printed_times_out() {
    if !common::ready() {
        return;
    }
    let (s, si, _e) = run_with(&azure("capos-af6"), "no-landmark", Duration::from_secs(3));
    assert_failed_clean(&s, si.leftovers(), ErrorKind::Timeout, "landmark \"capos kernel starting\" not seen on the serial console within 3 s (0 bytes of output, see serial.log)");
    assert!(s.instance_id.is_some());
}

#[test]
fn azure_vm_create_whose_answer_was_lost_updates_the_same_vm() {
    if !common::ready() {
        return;
    }
    // vm create starts the VM, then reports a throttling error; the retry
    // is a create-or-update of the same name: still one VM.
    let (s, si, _e) = run_with(&azure("capos-af7"), "lost-response=vm-create", LONG);
    assert!(s.passed, "{s:#?}");
    let td = s.teardown.as_ref().unwrap();
    assert!(td.is_clean() && td.deleted.len() == 5, "{td:?}");
    assert_eq!(si.leftovers(), Vec::<String>::new());
    let calls = std::fs::read_to_string(si.state().join("calls.log")).unwrap();
    assert_eq!(
        calls.matches("[\"az\", \"vm\", \"create\"").count(),
        2,
        "{calls}"
    );
}

#[test]
fn azure_teardown_failure_is_reported_and_a_later_teardown_finishes() {
    if !common::ready() {
        return;
    }
    let (s, si, _e) = run_with(&azure("capos-af8"), "permission=vm-delete", LONG);
    // The boot passed; the VM could not be deleted, so neither could its
    // NIC, the vnet the NIC is in, nor its attached disk. The blob could.
    assert!(s.passed, "{s:#?}");
    let td = s.teardown.as_ref().unwrap();
    let failed: Vec<&str> = td.failed.iter().map(|(w, _)| w.as_str()).collect();
    assert_eq!(failed.len(), 4, "{td:?}");
    assert!(failed[0].starts_with("Azure VM capos-af8"), "{td:?}");
    assert!(td.failed[1].1.contains("(NicInUse)"), "{td:?}");
    assert!(
        td.failed[2].1.contains("(InUseSubnetCannotBeDeleted)"),
        "{td:?}"
    );
    assert!(td.failed[3].1.contains("is attached to VM"), "{td:?}");
    assert_eq!(td.deleted.len(), 1, "{td:?}");
    assert!(!si.leftovers().is_empty());
    let journal = s.evidence_dir.join("resources.json");
    let mut fixed = si.env();
    fixed.retain(|(k, _)| k != "CLOUDIMG_STANDIN_FAULTS");
    let mut runner = cloudimg_cloud::Runner::new(cloudimg_cloud::command::quiet());
    runner.env = fixed;
    let r = cloudimg_cloud::teardown_journal(&journal, &runner).unwrap();
    assert!(r.is_clean(), "{r:?}");
    assert_eq!(r.deleted.len(), 4, "{r:?}");
    assert_eq!(si.leftovers(), Vec::<String>::new());
}
