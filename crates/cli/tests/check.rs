//! `cloudimg check` on the GRUB demo image built by `cloudimg image
//! build`, clean and broken one way each (bytes zeroed, files deleted
//! with mtools' `mdel`), and on its packaged VHD and VMDK: exit codes,
//! the table, and the `--json` shape.

mod common;

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Output;

use common::{cloudimg, ok, require_grub, require_tool, run};

/// First LBA of the demo image's ESP (crates/image hybrid.rs).
const ESP_FIRST_LBA: u64 = 4096;

fn build(dir: &Path) -> bool {
    if !require_grub() {
        return false;
    }
    ok(cloudimg(&["image", "build", "-o", "demo.raw"], dir));
    true
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn check_of<'a>(v: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no check {id}: {v:#}"))
}

fn not_ready(v: &serde_json::Value) -> Vec<String> {
    v["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["ready"] == false)
        .map(|v| v["target"].as_str().unwrap().to_string())
        .collect()
}

fn zero(path: &Path, off: u64, len: usize) {
    let f = OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(&vec![0u8; len], off).unwrap();
}

#[test]
fn demo_image_is_ready_everywhere() {
    let t = tempfile::tempdir().unwrap();
    if !build(t.path()) {
        return;
    }
    let out = cloudimg(&["check", "demo.raw"], t.path());
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    for path in [
        "gcp-uefi",
        "gcp-bios",
        "aws-uefi",
        "aws-bios",
        "azure-gen2",
        "azure-gen1",
    ] {
        assert!(
            text.lines().any(|l| l == format!("{path:<11} ready")),
            "{text}"
        );
    }
    assert!(text.contains(
        "bios-boot-code  pass    MBR boot code: GRUB boot.img (\"GRUB \" string at byte 0..440)\n"
    ));
    assert!(text.contains("bios-stage2     pass    GRUB core.img: boot.img loads core.img from LBA 2048, in BIOS boot partition 1; its blocklist loads "), "{text}");
    assert!(
        text.contains("kernel (/EFI/BOOT/grub.cfg): /EFI/BOOT/grub.cfg boots /capos/kernel.elf ("),
        "{text}"
    );
    assert!(out.stderr.is_empty());
}

#[test]
fn json_shape() {
    let t = tempfile::tempdir().unwrap();
    if !build(t.path()) {
        return;
    }
    let out = cloudimg(
        &["check", "demo.raw", "--json", "--provider", "aws"],
        t.path(),
    );
    assert_eq!(out.status.code(), Some(0));
    let v = json(&out);
    let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        ["checks", "limine", "path", "ready", "verdicts", "virtual_size"]
    );
    assert_eq!(v["limine"], serde_json::Value::Null, "a GRUB image");
    assert_eq!(v["path"], "demo.raw");
    assert_eq!(v["ready"], true);
    assert_eq!(v["virtual_size"], 256u64 << 20);
    let ids: Vec<&str> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "size-sector",
            "mbr",
            "gpt",
            "bios-boot-code",
            "bios-stage2",
            "esp",
            "efi-loader",
            "alignment",
            "kernel",
            "size:aws"
        ]
    );
    let c = check_of(&v, "bios-boot-code");
    let mut ck: Vec<&str> = c.as_object().unwrap().keys().map(String::as_str).collect();
    ck.sort();
    assert_eq!(ck, ["fix", "id", "message", "paths", "status", "subject"]);
    assert_eq!(c["status"], "pass");
    assert_eq!(c["fix"], serde_json::Value::Null);
    assert_eq!(c["paths"], serde_json::json!(["aws-bios"]));
    assert_eq!(
        v["verdicts"],
        serde_json::json!([
            {"target": "aws-uefi", "cloud": "aws", "firmware": "uefi", "ready": true, "failing": [], "warnings": []},
            {"target": "aws-bios", "cloud": "aws", "firmware": "bios", "ready": true, "failing": [], "warnings": []},
        ])
    );
}

#[test]
fn zeroed_core_img_makes_bios_paths_not_ready() {
    let t = tempfile::tempdir().unwrap();
    if !build(t.path()) {
        return;
    }
    zero(&t.path().join("demo.raw"), 2048 * 512, 512);
    let out = cloudimg(&["check", "demo.raw", "--json"], t.path());
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    let c = check_of(&v, "bios-stage2");
    assert_eq!(c["status"], "fail");
    assert_eq!(
        c["message"],
        "boot.img loads core.img from LBA 2048 (BIOS boot partition 1), but that sector is all zero"
    );
    assert_eq!(not_ready(&v), ["gcp-bios", "aws-bios", "azure-gen1"]);
    assert_eq!(v["ready"], false);
}

#[test]
fn empty_core_img_blocklist_makes_bios_paths_not_ready() {
    let t = tempfile::tempdir().unwrap();
    if !build(t.path()) {
        return;
    }
    // diskboot.img's first blocklist entry: LBA u64 at 500, sectors u16 at 508.
    zero(&t.path().join("demo.raw"), 2048 * 512 + 508, 2);
    let out = cloudimg(
        &["check", "demo.raw", "--json", "--provider", "azure"],
        t.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    assert_eq!(
        check_of(&v, "bios-stage2")["message"],
        "core.img's first sector at LBA 2048 (BIOS boot partition 1) has an empty blocklist: the rest of core.img is never loaded"
    );
    assert_eq!(not_ready(&v), ["azure-gen1"]);
}

#[test]
fn zeroed_mbr_code_is_reported_in_the_table() {
    let t = tempfile::tempdir().unwrap();
    if !build(t.path()) {
        return;
    }
    zero(&t.path().join("demo.raw"), 0, 440);
    let out = cloudimg(&["check", "demo.raw", "--provider", "gcp"], t.path());
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("bios-boot-code  FAIL    MBR boot code: MBR bytes 0..440 are all zero: BIOS firmware has no code to run\n                        fix: install a BIOS loader"), "{text}");
    assert!(
        text.contains("gcp-uefi    ready\ngcp-bios    NOT READY: bios-boot-code\n"),
        "{text}"
    );
    assert!(!text.contains("aws"), "only the provider asked for: {text}");
}

#[test]
fn deleted_loader_and_kernel() {
    let t = tempfile::tempdir().unwrap();
    if !build(t.path()) || !require_tool("mdel") {
        return;
    }
    let esp = format!("demo.raw@@{}", ESP_FIRST_LBA * 512);
    run(std::process::Command::new("mdel")
        .current_dir(t.path())
        .args(["-i", &esp, "::/EFI/BOOT/BOOTX64.EFI"]));
    let out = cloudimg(&["check", "demo.raw", "--json"], t.path());
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    assert_eq!(check_of(&v, "efi-loader")["status"], "fail");
    // The config is still found in GRUB's usual place.
    assert_eq!(check_of(&v, "kernel")["status"], "pass");
    assert_eq!(not_ready(&v), ["gcp-uefi", "aws-uefi", "azure-gen2"]);

    run(std::process::Command::new("mdel")
        .current_dir(t.path())
        .args(["-i", &esp, "::/capos/kernel.elf"]));
    let v = json(&cloudimg(&["check", "demo.raw", "--json"], t.path()));
    let k = check_of(&v, "kernel");
    assert_eq!(k["status"], "fail");
    assert_eq!(
        k["message"],
        "/EFI/BOOT/grub.cfg boots /capos/kernel.elf: /capos/kernel.elf is missing (no kernel.elf)"
    );
    assert_eq!(not_ready(&v).len(), 6);
}

#[test]
fn corrupt_backup_gpt_fails() {
    let t = tempfile::tempdir().unwrap();
    if !build(t.path()) {
        return;
    }
    let p = t.path().join("demo.raw");
    zero(&p, (256 << 20) - 512, 8);
    let out = cloudimg(&["check", "demo.raw", "--json"], t.path());
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    let g = check_of(&v, "gpt");
    assert_eq!(g["status"], "fail");
    assert_eq!(
        g["message"],
        "1 problem(s): at byte 268434944: backup GPT header missing: no \"EFI PART\" signature at LBA 524287"
    );
}

#[test]
fn packaged_vhd_and_vmdk_are_checked_like_the_raw_image() {
    let t = tempfile::tempdir().unwrap();
    if !build(t.path()) {
        return;
    }
    ok(cloudimg(&["package", "demo.raw", "-o", "out"], t.path()));
    for f in ["out/capos-aws.vhd", "out/capos-aws.vmdk"] {
        let out = cloudimg(&["check", f, "--json"], t.path());
        assert_eq!(out.status.code(), Some(0), "{f}: {out:?}");
        assert_eq!(json(&out)["virtual_size"], 256u64 << 20, "{f}");
    }
    // The GCP tarball is read too: its disk is the image grown to 1 GiB.
    let out = cloudimg(&["check", "out/disk.raw.tar.gz", "--json"], t.path());
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(json(&out)["virtual_size"], 1u64 << 30);
}

#[test]
fn unreadable_input_exits_2() {
    let t = tempfile::tempdir().unwrap();
    let out = cloudimg(&["check", "nope.raw"], t.path());
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("nope.raw") && err.contains("no such file or directory"),
        "{err}"
    );
    std::fs::write(t.path().join("e.raw"), b"").unwrap();
    let out = cloudimg(&["check", "e.raw"], t.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("e.raw: is empty"));
    let out = cloudimg(&["check", "x.raw", "--provider", "ibm"], t.path());
    assert_eq!(out.status.code(), Some(2), "clap usage errors exit 2");
}

#[test]
fn blank_disk_is_not_ready_anywhere() {
    let t = tempfile::tempdir().unwrap();
    let f = std::fs::File::create(t.path().join("blank.raw")).unwrap();
    f.set_len(64 << 20).unwrap();
    let out = cloudimg(&["check", "blank.raw", "--json"], t.path());
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    assert_eq!(check_of(&v, "mbr")["status"], "fail");
    assert_eq!(check_of(&v, "gpt")["status"], "fail");
    assert_eq!(not_ready(&v).len(), 6);
}
