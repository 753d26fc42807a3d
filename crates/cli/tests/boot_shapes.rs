//! The main job's promise, in CI: the demo image and every packaged shape
//! (raw, VHD, VMDK, the disk inside the GCP tarball, and the Azure VHD,
//! QCOW2 plain and compressed, VHDX and OVA) reach the landmark under OVMF
//! (UEFI) and SeaBIOS (BIOS), over the disk interfaces the clouds use
//! (NVMe as on AWS Nitro, virtio-scsi as on GCE and for Azure's Hyper-V
//! SCSI, virtio for OpenStack's QCOW2).

mod common;

use std::path::Path;

use common::{cloudimg, ok, require_tool};

fn firmware_present() -> bool {
    let ovmf = Path::new("/usr/share/OVMF/OVMF_CODE_4M.fd").exists()
        || Path::new("/usr/share/OVMF/OVMF_CODE.fd").exists();
    if !ovmf {
        assert!(std::env::var_os("CI").is_none(), "OVMF is missing under CI");
        eprintln!("SKIP: OVMF not installed");
    }
    ovmf
}

#[test]
fn every_packaged_shape_boots_under_uefi_and_bios() {
    if !(require_tool("qemu-system-x86_64") && require_tool("grub-mkimage") && firmware_present()) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    ok(cloudimg(&["image", "build", "-o", "capos-image.raw"], d));
    ok(cloudimg(
        &[
            "boot",
            "capos-image.raw",
            "--firmware",
            "both",
            "--log",
            "ev",
        ],
        d,
    ));
    ok(cloudimg(&["package", "capos-image.raw", "-o", "cloud"], d));
    for (artifact, disk) in [
        ("cloud/capos-aws.raw", "nvme"),
        ("cloud/capos-aws.vhd", "nvme"),
        ("cloud/capos-aws.vmdk", "nvme"),
        ("cloud/disk.raw.tar.gz", "scsi"),
    ] {
        ok(cloudimg(
            &[
                "boot",
                artifact,
                "--firmware",
                "both",
                "--disk",
                disk,
                "--log",
                "ev",
            ],
            d,
        ));
        for fw in ["bios", "uefi"] {
            let rec: serde_json::Value = serde_json::from_slice(
                &std::fs::read(d.join(format!("ev/boot-{fw}-{disk}.json"))).unwrap(),
            )
            .unwrap();
            assert_eq!(rec["passed"], true, "{artifact} {fw}: {rec}");
            let tail = rec["serial_tail"].as_str().unwrap();
            assert!(
                tail.contains("capos kernel starting"),
                "{artifact} {fw}: {tail}"
            );
            assert!(
                tail.contains(&format!("firmware={fw}")),
                "{artifact} {fw}: {tail}"
            );
        }
    }
}

/// Check the JSON record `cloudimg boot --log` left for one firmware: it
/// passed, the kernel said which firmware started it, and QEMU opened the
/// artifact itself (by its absolute path) in `qemu_format` (no conversion
/// to raw first), or, for an OVA, the VMDK extracted from it.
fn assert_booted(log: &Path, artifact: &str, fw: &str, disk: &str, qemu_format: &str) {
    let rec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(log.join(format!("boot-{fw}-{disk}.json"))).unwrap())
            .unwrap();
    assert_eq!(rec["passed"], true, "{artifact} {fw}: {rec}");
    let tail = rec["serial_tail"].as_str().unwrap();
    assert!(
        tail.contains("capos kernel starting"),
        "{artifact} {fw}: {tail}"
    );
    assert!(
        tail.contains(&format!("firmware={fw}")),
        "{artifact} {fw}: {tail}"
    );
    let drive = rec["qemu_command"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a.as_str())
        .find(|a| a.contains("id=disk0"))
        .unwrap_or_else(|| panic!("{artifact} {fw}: no disk drive in {rec}"));
    assert!(
        drive.contains(&format!(",format={qemu_format},")),
        "{artifact} {fw}: {drive}"
    );
    if !artifact.ends_with(".ova") {
        // QEMU is given the artifact by its absolute path (a relative
        // name with a colon could be taken for a protocol).
        let path: std::path::PathBuf = rec["artifact"].as_str().unwrap().into();
        assert!(path.is_relative(), "the record keeps the path as given");
        assert!(
            drive.starts_with("file=/") && drive.contains(&format!("/{artifact},")),
            "{artifact} {fw}: {drive}"
        );
    }
}

/// The shapes added for Azure (a disk a whole MiB already, and one grown
/// to the MiB), OpenStack (QCOW2, plain and deflated), Hyper-V (VHDX) and
/// vSphere (OVA), each over one disk interface.
#[test]
fn every_new_shape_boots_under_uefi_and_bios() {
    if !(require_tool("qemu-system-x86_64") && require_tool("grub-mkimage") && firmware_present()) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    ok(cloudimg(&["image", "build", "-o", "capos-image.raw"], d));
    ok(cloudimg(
        &[
            "package",
            "capos-image.raw",
            "--azure",
            "--qcow2",
            "--vhdx",
            "--ova",
            "-o",
            "cloud",
        ],
        d,
    ));
    ok(cloudimg(
        &[
            "package",
            "capos-image.raw",
            "--qcow2",
            "--compress-qcow2",
            "-o",
            "deflated",
        ],
        d,
    ));
    // The demo image is a whole MiB, so its Azure VHD holds it unchanged;
    // one that is not is grown, its backup GPT moved, and must still boot.
    ok(cloudimg(
        &[
            "image",
            "build",
            "--size",
            &(200 * 1024 * 1024 + 4096).to_string(),
            "-o",
            "odd.raw",
        ],
        d,
    ));
    ok(cloudimg(&["package", "odd.raw", "--azure", "-o", "odd"], d));
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("odd/manifest.json")).unwrap()).unwrap();
    assert_eq!(m["artifacts"][0]["virtual_size_bytes"], 201u64 << 20, "{m}");
    for (artifact, disk, qemu_format) in [
        ("cloud/capos-azure.vhd", "scsi", "vpc"),
        ("odd/capos-azure.vhd", "scsi", "vpc"),
        ("cloud/capos.qcow2", "virtio", "qcow2"),
        ("deflated/capos.qcow2", "virtio", "qcow2"),
        ("cloud/capos.vhdx", "scsi", "vhdx"),
        ("cloud/capos.ova", "nvme", "vmdk"),
    ] {
        let log = d.join("ev").join(artifact.replace('/', "-"));
        ok(cloudimg(
            &[
                "boot",
                artifact,
                "--firmware",
                "both",
                "--disk",
                disk,
                "--log",
                log.to_str().unwrap(),
            ],
            d,
        ));
        for fw in ["bios", "uefi"] {
            assert_booted(&log, artifact, fw, disk, qemu_format);
        }
    }
}

#[test]
fn broken_packaged_disk_fails_to_boot() {
    if !(require_tool("qemu-system-x86_64") && require_tool("grub-mkimage") && firmware_present()) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    ok(cloudimg(&["image", "build", "-o", "img.raw"], d));
    // Zero the BIOS boot code in the MBR: SeaBIOS has nothing to run.
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(d.join("img.raw"))
        .unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &[0u8; 440], 0).unwrap();
    drop(f);
    ok(cloudimg(&["package", "img.raw", "--aws", "-o", "cloud"], d));
    let out = cloudimg(
        &[
            "boot",
            "cloud/capos-aws.vhd",
            "--firmware",
            "bios",
            "--timeout",
            "8",
            "--log",
            "ev",
        ],
        d,
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("FAIL bios"), "{err}");
    // UEFI does not need the MBR code: the same disk still boots.
    ok(cloudimg(
        &[
            "boot",
            "cloud/capos-aws.vhd",
            "--firmware",
            "uefi",
            "--log",
            "ev",
        ],
        d,
    ));
}
