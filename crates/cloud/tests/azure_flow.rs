//! The Azure flow end to end against the az stand-in (standin/bin/az;
//! Azure compute has no emulator): the demo image as a fixed VHD boots as
//! V2 (UEFI) and V1 (BIOS) from an attached specialized disk, what Azure
//! refuses is refused before any upload, and nothing is left in the
//! stand-in afterwards. AWS and GCP run through the real CLIs
//! (real_cli_aws.rs, real_cli_gcp.rs).

mod common;

use cloudimg_cloud::{flow, ErrorKind, Summary, Target};
use cloudimg_disk::vocab::Firmware;
use common::{artifact_for, options, read_json, StandIn};

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
