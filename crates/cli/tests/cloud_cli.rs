//! `cloudimg cloud` as a user runs it: the binary, with the provider
//! stand-ins (standin/bin) first on PATH. The flows themselves are tested
//! in depth in crates/cloud/tests; this proves the command line drives them.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{ok, require_tool};

fn standin_bin() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../standin/bin")
        .canonicalize()
        .unwrap()
}

fn cloudimg(args: &[&str], cwd: &Path, state: &Path) -> Output {
    let path = format!(
        "{}:{}",
        standin_bin().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Command::new(env!("CARGO_BIN_EXE_cloudimg"))
        .args(args)
        .current_dir(cwd)
        .env("PATH", path)
        .env("CLOUDIMG_STANDIN_STATE", state)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .expect("running cloudimg")
}

#[test]
fn aws_vmdk_run_boots_keeps_evidence_and_leaves_nothing() {
    if !(require_tool("qemu-system-x86_64") && require_tool("qemu-img") && require_tool("python3"))
    {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let (d, state) = (t.path(), t.path().join("state"));
    std::fs::create_dir_all(state.join("s3/capos-images")).unwrap();
    ok(cloudimg(&["image", "build", "-o", "img.raw"], d, &state));
    ok(cloudimg(
        &["package", "img.raw", "--aws", "-o", "cloud"],
        d,
        &state,
    ));

    let plan = ok(cloudimg(
        &[
            "cloud",
            "aws",
            "--bucket",
            "capos-images",
            "--format",
            "vmdk",
            "--boot-mode",
            "uefi",
            "--artifact",
            "cloud/capos-aws.vmdk",
            "--name",
            "capos-test",
            "--plan",
        ],
        d,
        &state,
    ));
    assert!(
        plan.contains("aws s3 cp cloud/capos-aws.vmdk s3://capos-images/capos-test.vmdk"),
        "{plan}"
    );
    assert!(plan.contains("\"Format\":\"VMDK\""), "{plan}");
    assert!(plan.contains("--boot-mode uefi"), "{plan}");
    assert!(!state.join("calls.log").exists(), "--plan runs nothing");

    ok(cloudimg(
        &[
            "cloud",
            "aws",
            "--bucket",
            "capos-images",
            "--format",
            "vmdk",
            "--boot-mode",
            "uefi",
            "--artifact",
            "cloud/capos-aws.vmdk",
            "--name",
            "capos-test",
            "--evidence",
            "ev",
            "--timeout",
            "120",
        ],
        d,
        &state,
    ));
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("ev/summary.json")).unwrap()).unwrap();
    assert_eq!(summary["passed"], true, "{summary}");
    let serial = std::fs::read_to_string(d.join("ev/serial.log")).unwrap();
    assert!(
        serial.contains("capos kernel starting") && serial.contains("firmware=uefi"),
        "{serial}"
    );
    for f in ["resources.json", "commands.jsonl", "artifact.json"] {
        assert!(d.join("ev").join(f).exists(), "{f} kept as evidence");
    }
    // Teardown left nothing: a second teardown from the journal has nothing to do.
    ok(cloudimg(
        &["cloud", "teardown", "--journal", "ev/resources.json"],
        d,
        &state,
    ));
    let journal: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("ev/resources.json")).unwrap()).unwrap();
    let text = journal.to_string();
    assert!(text.contains("deleted"), "{text}");
    for state in [
        "\"creating\"",
        "\"created\"",
        "delete-failed",
        "delete_failed",
    ] {
        assert!(!text.contains(state), "{state} left in {text}");
    }
}
