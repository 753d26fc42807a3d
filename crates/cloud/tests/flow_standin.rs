//! The cloud flow end to end against the local stand-ins (standin/bin):
//! the demo image packaged for GCP and for AWS in every format and boot
//! mode reaches the landmark, the evidence is complete, and nothing is
//! left in the stand-in afterwards.

mod common;

use std::path::Path;

use cloudimg_cloud::{flow, AwsFormat, BootMode, ErrorKind, Summary, Target};
use cloudimg_disk::vocab::Firmware;
use common::{artifact_for, aws_target, gcp_target, options, StandIn};

fn run(
    target: &Target,
    standin: &StandIn,
    tweak: impl FnOnce(&mut cloudimg_cloud::RunOptions),
) -> (Summary, tempfile::TempDir) {
    let ev = tempfile::Builder::new()
        .prefix("evidence-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let mut o = options(artifact_for(target), ev.path().join("ev"), standin);
    tweak(&mut o);
    let s = flow::run(target, "test-run", &o).expect("evidence can be written");
    (s, ev)
}

fn read_json(p: &Path) -> serde_json::Value {
    serde_json::from_str(
        &std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
    )
    .unwrap()
}

/// The evidence of a passing run: serial log with the landmark, a journal
/// where everything is deleted, one record per command with exit status
/// and timing, the manifest entry, and the summary.
fn assert_evidence(s: &Summary, firmware: &str) {
    let ev = &s.evidence_dir;
    let serial = std::fs::read_to_string(ev.join("serial.log")).unwrap();
    assert!(serial.contains("capos kernel starting"), "{serial}");
    assert!(serial.contains(&format!("firmware={firmware}")), "{serial}");
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
            ["gcloud ", "gsutil ", "aws "]
                .iter()
                .any(|p| line.starts_with(p)),
            "{l}"
        );
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

fn assert_passed(s: &Summary, standin: &StandIn, firmware: &str) {
    assert!(s.passed, "{s:#?}");
    assert!(s.teardown.as_ref().unwrap().is_clean(), "{s:#?}");
    assert_evidence(s, firmware);
    assert_eq!(standin.leftovers(), Vec::<String>::new());
}

#[test]
fn aws_raw_uefi_boots_over_nvme() {
    if !common::ready() {
        return;
    }
    let si = StandIn::new("");
    let (s, _ev) = run(
        &aws_target("capos-raw-uefi", AwsFormat::Raw, BootMode::Uefi),
        &si,
        |_| {},
    );
    assert_passed(&s, &si, "uefi");
    assert!(s.image_id.as_deref().unwrap().starts_with("ami-"));
    assert!(s.instance_id.as_deref().unwrap().starts_with("i-"));
}

#[test]
fn aws_vhd_legacy_bios_boots() {
    if !common::ready() {
        return;
    }
    let si = StandIn::new("");
    let (s, _ev) = run(
        &aws_target("capos-vhd-bios", AwsFormat::Vhd, BootMode::LegacyBios),
        &si,
        |_| {},
    );
    assert_passed(&s, &si, "bios");
    assert_eq!(s.boot_mode, "legacy-bios");
}

#[test]
fn aws_vmdk_uefi_preferred_boots() {
    if !common::ready() {
        return;
    }
    let si = StandIn::new("");
    let (s, _ev) = run(
        &aws_target("capos-vmdk-pref", AwsFormat::Vmdk, BootMode::UefiPreferred),
        &si,
        |_| {},
    );
    assert_passed(&s, &si, "uefi");
    assert_eq!(s.boot_mode, "uefi-preferred");
}

#[test]
fn aws_raw_legacy_bios_boots() {
    if !common::ready() {
        return;
    }
    let si = StandIn::new("");
    let (s, _ev) = run(
        &aws_target("capos-raw-bios", AwsFormat::Raw, BootMode::LegacyBios),
        &si,
        |_| {},
    );
    assert_passed(&s, &si, "bios");
}

#[test]
fn keep_leaves_resources_and_teardown_removes_them_later() {
    if !common::ready() {
        return;
    }
    let si = StandIn::new("");
    let (s, _ev) = run(
        &aws_target("capos-keep", AwsFormat::Raw, BootMode::LegacyBios),
        &si,
        |o| o.keep = true,
    );
    assert!(s.passed && s.kept && s.teardown.is_none(), "{s:#?}");
    assert!(!si.leftovers().is_empty());
    let mut runner = cloudimg_cloud::Runner::new(cloudimg_cloud::command::quiet());
    runner.env = si.env();
    let r =
        cloudimg_cloud::teardown_journal(&s.evidence_dir.join("resources.json"), &runner).unwrap();
    assert!(r.is_clean(), "{r:?}");
    // Instance, AMI, snapshot, object; the completed import task has
    // nothing left to remove.
    assert_eq!(r.deleted.len(), 4, "{r:?}");
    assert_eq!(r.already_gone.len(), 1, "{r:?}");
    assert_eq!(si.leftovers(), Vec::<String>::new());
    // Again: nothing to do, nothing fails.
    let r =
        cloudimg_cloud::teardown_journal(&s.evidence_dir.join("resources.json"), &runner).unwrap();
    assert!(r.is_clean() && r.deleted.is_empty(), "{r:?}");
}

#[test]
fn wrong_format_for_artifact_is_refused_before_any_upload() {
    if !common::ready() {
        return;
    }
    let si = StandIn::new("");
    let t = aws_target("capos-mismatch", AwsFormat::Vhd, BootMode::Uefi);
    let (s, _ev) = run(&t, &si, |o| {
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
    assert!(!si.state().join("calls.log").exists(), "no CLI ran");
}

#[test]
fn artifact_without_manifest_gets_a_computed_entry() {
    if !common::ready() {
        return;
    }
    let si = StandIn::new("");
    let d = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let art = d.path().join("capos-aws.raw");
    std::fs::hard_link(common::artifacts().join("capos-aws.raw"), &art).unwrap();
    let t = aws_target("capos-nomanifest", AwsFormat::Raw, BootMode::LegacyBios);
    let (s, _ev) = run(&t, &si, |o| o.artifact = art.clone());
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
    assert_eq!(si.leftovers(), Vec::<String>::new());
}

#[test]
fn artifact_disagreeing_with_its_manifest_is_refused() {
    if !common::ready() {
        return;
    }
    let si = StandIn::new("");
    let d = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let art = d.path().join("disk.raw.tar.gz");
    std::fs::hard_link(common::artifacts().join("disk.raw.tar.gz"), &art).unwrap();
    let bad = "0".repeat(64);
    std::fs::write(
        d.path().join("manifest.json"),
        format!(r#"{{"artifacts":[{{"file":"disk.raw.tar.gz","virtual_sha256":"{bad}"}}]}}"#),
    )
    .unwrap();
    let (s, _ev) = run(&gcp_target("capos-badmanifest"), &si, |o| {
        o.artifact = art.clone()
    });
    assert!(!s.passed);
    assert_eq!(s.error_kind, Some(ErrorKind::Artifact));
    let msg = s.error.unwrap();
    assert!(
        msg.ends_with(&format!("but its manifest says {bad}")),
        "{msg}"
    );
    assert!(!si.state().join("calls.log").exists(), "no CLI ran");
}

// ----------------------------------------------------------------- azure ----

/// A passing Azure run: the specialized-disk route (no image, no admin
/// user), every resource journaled and deleted in reverse creation order,
/// nothing left in the stand-in.
fn assert_azure_passed(s: &Summary, si: &StandIn, firmware: &str, generation: &str) {
    assert!(s.passed, "{s:#?}");
    assert_eq!(s.provider, cloudimg_disk::vocab::Provider::Azure);
    assert_eq!(s.boot_mode, generation);
    let td = s.teardown.as_ref().unwrap();
    assert!(td.is_clean(), "{td:?}");
    assert_eq!(td.deleted.len(), 5, "{td:?}");
    assert_eq!(si.leftovers(), Vec::<String>::new());
    let ev = &s.evidence_dir;
    let serial = std::fs::read_to_string(ev.join("serial.log")).unwrap();
    assert!(serial.contains("capos kernel starting"), "{serial}");
    assert!(serial.contains(&format!("firmware={firmware}")), "{serial}");
    let j = read_json(&ev.join("resources.json"));
    assert_eq!(j["provider"], "azure");
    let kinds: Vec<&str> = j["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r["state"], "deleted", "{j}");
            r["resource"]["kind"].as_str().unwrap()
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "azure-blob",
            "azure-disk",
            "azure-vnet",
            "azure-nic",
            "azure-vm"
        ]
    );
    assert!(s
        .image_id
        .as_deref()
        .unwrap()
        .ends_with("/providers/Microsoft.Compute/disks/capos-az-osdisk"));
    assert!(s
        .instance_id
        .as_deref()
        .unwrap()
        .ends_with("/providers/Microsoft.Compute/virtualMachines/capos-az"));
    let cmds = std::fs::read_to_string(ev.join("commands.jsonl")).unwrap();
    for l in cmds.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert!(v["line"].as_str().unwrap().starts_with("az "), "{v}");
        assert!(v["exit"].is_i64(), "{v}");
    }
    let art = read_json(&ev.join("artifact.json"));
    assert!(art["entry"]["virtual_sha256"].is_string(), "{art}");
    assert_eq!(read_json(&ev.join("verify.json"))["format"], "vhd-fixed");
    // What the stand-in was asked: the disk made as the right generation,
    // the VM attaching it with no admin credentials, teardown in reverse.
    let calls: Vec<Vec<String>> = std::fs::read_to_string(si.state().join("calls.log"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let disk = calls.iter().find(|c| c[1] == "disk").unwrap();
    let g = disk
        .iter()
        .position(|a| a == "--hyper-v-generation")
        .unwrap();
    assert_eq!(disk[g + 1], generation);
    let vm = calls
        .iter()
        .find(|c| c[1] == "vm" && c[2] == "create")
        .unwrap();
    assert!(vm.iter().any(|a| a == "--attach-os-disk"), "{vm:?}");
    assert!(
        !vm.iter()
            .any(|a| a == "--image" || a.starts_with("--admin") || a.contains("ssh")),
        "{vm:?}"
    );
    let deletes: Vec<String> = calls
        .iter()
        .filter(|c| c.iter().any(|a| a == "delete"))
        .map(|c| c[1..c.iter().position(|a| a == "delete").unwrap()].join(" "))
        .collect();
    assert_eq!(
        deletes,
        ["vm", "network nic", "network vnet", "disk", "storage blob"]
    );
}

#[test]
fn azure_v2_boots_uefi_from_an_attached_specialized_disk() {
    if !common::ready() {
        return;
    }
    let si = StandIn::new("");
    let t = common::azure_target("capos-az", Firmware::Uefi);
    let (s, _ev) = run(&t, &si, |_| {});
    assert_azure_passed(&s, &si, "uefi", "V2");
}

#[test]
fn azure_v1_boots_bios() {
    if !common::ready() {
        return;
    }
    let si = StandIn::new("");
    let t = common::azure_target("capos-az", Firmware::Bios);
    let (s, _ev) = run(&t, &si, |_| {});
    assert_azure_passed(&s, &si, "bios", "V1");
}

#[test]
fn azure_refuses_a_vhd_azure_would_refuse_before_any_upload() {
    if !common::ready() {
        return;
    }
    let si = StandIn::new("");
    let t = common::azure_target("capos-az", Firmware::Bios);
    // A fixed VHD, but the AWS one is fine; a dynamic one is not, nor a
    // raw disk.
    let (s, _ev) = run(&t, &si, |o| {
        o.artifact = common::artifacts().join("capos-aws.vmdk")
    });
    assert_eq!(s.error_kind, Some(ErrorKind::Artifact), "{s:#?}");
    assert!(
        s.error
            .as_deref()
            .unwrap()
            .ends_with("is a vmdk file, expected a fixed VHD (cloudimg package --azure)"),
        "{s:#?}"
    );
    assert!(!si.state().join("calls.log").exists(), "no CLI ran");
}

#[test]
fn azure_v2_needs_a_uefi_bootable_disk_v1_does_not() {
    if !(common::ready() && common::require_tool("mdel") && common::require_tool("sgdisk")) {
        return;
    }
    // The demo disk without its UEFI loader (EFI/BOOT/BOOTX64.EFI, deleted
    // with mtools in a copy): OVMF (V2) finds nothing to boot, SeaBIOS (V1)
    // still boots it through the BIOS boot partition.
    let w = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let raw = w.path().join("bios-only.raw");
    let demo = common::artifacts().parent().unwrap().join("demo.raw");
    common::run(
        std::process::Command::new("cp")
            .args(["--sparse=always"])
            .arg(&demo)
            .arg(&raw),
    );
    let table = common::run(std::process::Command::new("sgdisk").arg("-p").arg(&raw));
    let esp_start: u64 = table
        .lines()
        .find(|l| l.contains(" EF00 "))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .parse()
        .unwrap();
    common::run(
        std::process::Command::new("mdel")
            .arg("-i")
            .arg(format!("{}@@{}", raw.display(), esp_start * 512))
            .arg("::/EFI/BOOT/BOOTX64.EFI"),
    );
    let vhd = w.path().join("bios-only.vhd");
    common::azure_vhd(&raw, &vhd);

    let si = StandIn::new("");
    let t = common::azure_target("capos-az", Firmware::Uefi);
    let (s, _ev) = run(&t, &si, |o| {
        o.artifact = vhd.clone();
        o.boot_timeout = std::time::Duration::from_secs(15);
    });
    assert!(!s.passed, "{s:#?}");
    assert_eq!(s.error_kind, Some(ErrorKind::Timeout), "{s:#?}");
    assert!(s.teardown.as_ref().unwrap().is_clean());
    assert_eq!(si.leftovers(), Vec::<String>::new());

    let si = StandIn::new("");
    let t = common::azure_target("capos-az", Firmware::Bios);
    let (s, _ev) = run(&t, &si, |o| o.artifact = vhd.clone());
    assert!(s.passed, "{s:#?}");
    assert_eq!(si.leftovers(), Vec::<String>::new());
}
