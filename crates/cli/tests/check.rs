//! `cloudimg check` on the GRUB demo image built by `cloudimg image
//! build`, clean and broken one way each (bytes zeroed, files deleted
//! with mtools' `mdel`), and on its packaged VHD and VMDK: exit codes,
//! the table, and the `--json` shape.

mod common;

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Output;

use common::{cloudimg, corpus, ok, require_grub, require_tool, run};

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
        [
            "checks",
            "limine",
            "path",
            "ready",
            "schema",
            "verdicts",
            "virtual_size_bytes"
        ]
    );
    assert_eq!(v["limine"], serde_json::Value::Null, "a GRUB image");
    assert_eq!(v["path"], "demo.raw");
    assert_eq!(v["ready"], true);
    assert_eq!(v["schema"], "cloudimg.check/1");
    assert_eq!(v["virtual_size_bytes"], 256u64 << 20);
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
            {"target": "aws-uefi", "provider": "aws", "firmware": "uefi", "ready": true, "failing": [], "warnings": []},
            {"target": "aws-bios", "provider": "aws", "firmware": "bios", "ready": true, "failing": [], "warnings": []},
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
        assert_eq!(json(&out)["virtual_size_bytes"], 256u64 << 20, "{f}");
    }
    // The GCP tarball is read too: its disk is the image grown to 1 GiB.
    let out = cloudimg(&["check", "out/disk.raw.tar.gz", "--json"], t.path());
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(json(&out)["virtual_size_bytes"], 1u64 << 30);
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

/// Real Limine images (the corpus's releases; host tool compiled once per
/// test binary), checked through the CLI: the table's Limine line and
/// the `limine` object of `--json`.
mod real_limine {
    use super::*;
    use std::path::PathBuf;
    use std::process::Command;
    fn tools() -> bool {
        ["cc", "sgdisk", "mkfs.fat", "mcopy", "mmd"]
            .iter()
            .all(|t| require_tool(t))
    }

    fn release(v: &str) -> Option<PathBuf> {
        corpus(&format!("limine/limine-{v}/limine.c")).map(|p| p.parent().unwrap().to_path_buf())
    }

    /// The host tool of `v`, compiled once (testkit's `limine_release`).
    fn host_tool(v: &'static str) -> PathBuf {
        cloudimg_testkit::limine_release(v)
            .expect("the release was found by the caller")
            .join("limine")
    }

    fn mcopy(esp: &str, data: &[u8], to: &str, dir: &Path) {
        let f = dir.join("put.tmp");
        std::fs::write(&f, data).unwrap();
        run(Command::new("mcopy")
            .args(["-o", "-i", esp])
            .arg(&f)
            .arg(format!("::{to}")));
    }

    /// `dir/limine.raw`: 256 MiB GPT, (10.x: BIOS boot partition at LBA
    /// 40-2047,) 128 MiB FAT32 ESP at LBA 2048 with Limine's files and
    /// /boot/limine/limine.conf, then `limine bios-install`.
    fn build(v: &'static str, dir: &Path) -> PathBuf {
        let src = release(v).unwrap();
        let img = dir.join("limine.raw");
        std::fs::File::create(&img)
            .unwrap()
            .set_len(256 << 20)
            .unwrap();
        let mut sg = Command::new("sgdisk");
        if v.starts_with("10.") {
            sg.args(["-a", "1", "-n", "1:40:2047", "-t", "1:EF02", "-a", "2048"]);
            sg.args(["-n", "2:2048:+128M", "-t", "2:EF00"]);
        } else {
            sg.args(["-n", "1:2048:+128M", "-t", "1:EF00"]);
        }
        run(sg.arg(&img));
        run(Command::new("mkfs.fat")
            .args(["-F", "32", "--offset", "2048"])
            .arg(&img)
            .arg("131072"));
        let esp = format!("{}@@{}", img.display(), ESP_FIRST_LBA_LIMINE * 512);
        run(Command::new("mmd").args([
            "-i",
            &esp,
            "::/EFI",
            "::/EFI/BOOT",
            "::/boot",
            "::/boot/limine",
        ]));
        for (f, to) in [
            ("BOOTX64.EFI", "/EFI/BOOT/BOOTX64.EFI"),
            ("limine-bios.sys", "/boot/limine/limine-bios.sys"),
        ] {
            mcopy(&esp, &std::fs::read(src.join(f)).unwrap(), to, dir);
        }
        let key = if v.starts_with("10.") {
            "path"
        } else {
            "kernel_path"
        };
        mcopy(
            &esp,
            format!("timeout: 0\n\n/capOS\n    protocol: multiboot2\n    {key}: boot():/boot/capos.elf\n").as_bytes(),
            "/boot/limine/limine.conf",
            dir,
        );
        mcopy(&esp, &[0x7F; 4000], "/boot/capos.elf", dir);
        run(Command::new(host_tool(v)).arg("bios-install").arg(&img));
        img
    }

    /// First LBA of the ESP in these images.
    const ESP_FIRST_LBA_LIMINE: u64 = 2048;

    #[test]
    fn limine_8_image_is_ready_and_named_in_the_table() {
        let t = tempfile::tempdir().unwrap();
        if !tools() || release("8.2.0").is_none() {
            return;
        }
        build("8.2.0", t.path());
        let out = cloudimg(&["check", "limine.raw"], t.path());
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains("\nLimine: MBR code of the 9.x-or-earlier layout; BOOTX64.EFI 8.2.0; limine-bios.sys 8.2.0; UEFI reads partition 1: /boot/limine/limine.conf; BIOS reads partition 1: /boot/limine/limine.conf\n"), "{text}");
        assert!(text.contains("bios-stage2     pass    Limine stage 2: two halves (9.x or earlier layout): half A (10752 bytes at byte 6656, LBA 13-33); half B (10240 bytes at byte 268424704, LBA 524267-524286); "), "{text}");
        assert!(text.contains("bios-stage3     pass    limine-bios.sys (partition 1): /boot/limine/limine-bios.sys on partition 1, "), "{text}");
        assert!(text.ends_with("azure-gen1  ready\n"), "{text}");
    }

    #[test]
    fn limine_10_shadowed_config_in_json() {
        let t = tempfile::tempdir().unwrap();
        if !tools() || release("10.4.0").is_none() {
            return;
        }
        let img = build("10.4.0", t.path());
        let esp = format!("{}@@{}", img.display(), ESP_FIRST_LBA_LIMINE * 512);
        mcopy(
            &esp,
            b"timeout: 0\n\n/x\n    protocol: multiboot2\n    path: boot():/boot/missing.elf\n",
            "/EFI/BOOT/limine.conf",
            t.path(),
        );
        let out = cloudimg(&["check", "limine.raw", "--json"], t.path());
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let v = json(&out);
        assert_eq!(
            v["limine"],
            serde_json::json!({
                "family": "10.x-or-later",
                "uefi_version": "10.4.0",
                "bios_version": "10.4.0",
                "stage2": [{"offset": 20480, "len": 32256, "what": "Limine stage 2, stage 2", "partition": 1}],
                "stage3": "partition 2: /boot/limine/limine-bios.sys",
                "uefi_config": "partition 2: /EFI/BOOT/limine.conf",
                "bios_config": "partition 2: /boot/limine/limine.conf",
            })
        );
        assert_eq!(check_of(&v, "kernel:uefi")["status"], "fail");
        assert_eq!(
            check_of(&v, "kernel:uefi")["paths"],
            serde_json::json!(["gcp-uefi", "aws-uefi", "azure-gen2"])
        );
        assert_eq!(check_of(&v, "kernel:bios")["status"], "pass");
        assert_eq!(check_of(&v, "alignment")["status"], "pass");
        assert_eq!(not_ready(&v), ["gcp-uefi", "aws-uefi", "azure-gen2"]);
    }
}
