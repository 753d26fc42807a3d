//! The AWS flow's own choices through the real `aws` CLI against the
//! local AWS (standin/api): `--keep` and a later teardown from the
//! journal, and the artifact checks made before anything is uploaded
//! (format, manifest). The emulator itself is asked what is left.

mod common;

use cloudimg_cloud::{AwsFormat, BootMode, ErrorKind};
use common::real::{commands, ready_aws, AwsEmu};
use common::{aws_target, read_json};

#[test]
fn keep_leaves_resources_and_teardown_removes_them_later() {
    if !ready_aws() {
        return;
    }
    let emu = AwsEmu::start("");
    let t = aws_target("capos-keep", AwsFormat::Raw, BootMode::LegacyBios);
    let (s, _ev) = emu.run(&t, |o| o.keep = true);
    assert!(s.passed && s.kept && s.teardown.is_none(), "{s:#?}");
    // Asked of the emulator: the running instance, the AMI, the snapshot
    // and the object stay.
    let left = emu.leftovers();
    for kind in [
        "instance i-",
        "image ami-",
        "snapshot snap-",
        "s3 object s3://bkt/",
    ] {
        assert!(left.iter().any(|l| l.starts_with(kind)), "{kind}: {left:?}");
    }
    let journal = s.evidence_dir.join("resources.json");
    let runner = emu.runner();
    let r = cloudimg_cloud::teardown_journal(&journal, &runner).unwrap();
    assert!(r.is_clean(), "{r:?}");
    // Instance, AMI, snapshot, object; the completed import task has
    // nothing left to remove.
    assert_eq!(r.deleted.len(), 4, "{r:?}");
    assert_eq!(r.already_gone.len(), 1, "{r:?}");
    assert_eq!(emu.leftovers(), Vec::<String>::new());
    // Again: nothing to do, nothing fails.
    let r = cloudimg_cloud::teardown_journal(&journal, &runner).unwrap();
    assert!(r.is_clean() && r.deleted.is_empty(), "{r:?}");
}

#[test]
fn wrong_format_for_artifact_is_refused_before_any_upload() {
    if !ready_aws() {
        return;
    }
    let emu = AwsEmu::start("");
    let t = aws_target("capos-mismatch", AwsFormat::Vhd, BootMode::Uefi);
    let (s, _ev) = emu.run(&t, |o| {
        o.artifact = common::artifacts().join("capos-aws.vmdk")
    });
    assert!(!s.passed);
    assert_eq!(s.error_kind, Some(ErrorKind::Artifact));
    assert!(
        s.error
            .as_deref()
            .unwrap()
            .contains("is a vmdk file, expected VHD (--format vhd)"),
        "{s:#?}"
    );
    assert_eq!(commands(&s), Vec::<serde_json::Value>::new(), "no CLI ran");
    assert_eq!(emu.leftovers(), Vec::<String>::new());
}

#[test]
fn artifact_without_manifest_gets_a_computed_entry() {
    if !ready_aws() {
        return;
    }
    let emu = AwsEmu::start("");
    let d = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let art = d.path().join("capos-aws.raw");
    std::fs::hard_link(common::artifacts().join("capos-aws.raw"), &art).unwrap();
    let t = aws_target("capos-nomanifest", AwsFormat::Raw, BootMode::LegacyBios);
    let (s, _ev) = emu.run(&t, |o| o.artifact = art.clone());
    assert!(s.passed, "{s:#?}");
    let entry = read_json(&s.evidence_dir.join("artifact.json"));
    assert_eq!(entry["source"], "computed", "{entry}");
    let manifest = read_json(&common::artifacts().join("manifest.json"));
    let want = manifest["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["file"] == "capos-aws.raw")
        .unwrap()
        .clone();
    assert_eq!(entry["entry"]["sha256"], want["sha256"]);
    assert_eq!(entry["entry"]["virtual_sha256"], want["virtual_sha256"]);
    assert_eq!(entry["entry"]["size_bytes"], want["size_bytes"]);
    assert_eq!(emu.leftovers(), Vec::<String>::new());
}

#[test]
fn artifact_disagreeing_with_its_manifest_is_refused() {
    if !ready_aws() {
        return;
    }
    let emu = AwsEmu::start("");
    let d = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let art = d.path().join("capos-aws.raw");
    std::fs::hard_link(common::artifacts().join("capos-aws.raw"), &art).unwrap();
    let bad = "0".repeat(64);
    std::fs::write(
        d.path().join("manifest.json"),
        format!(r#"{{"artifacts":[{{"file":"capos-aws.raw","virtual_sha256":"{bad}"}}]}}"#),
    )
    .unwrap();
    let t = aws_target("capos-badmanifest", AwsFormat::Raw, BootMode::LegacyBios);
    let (s, _ev) = emu.run(&t, |o| o.artifact = art.clone());
    assert!(!s.passed);
    assert_eq!(s.error_kind, Some(ErrorKind::Artifact));
    let msg = s.error.clone().unwrap();
    assert!(
        msg.ends_with(&format!("but its manifest says {bad}")),
        "{msg}"
    );
    assert_eq!(commands(&s), Vec::<serde_json::Value>::new(), "no CLI ran");
    assert_eq!(emu.leftovers(), Vec::<String>::new());
}
