//! `cloudimg boot` on files made to reach the host (issue 13): QEMU never
//! opens a file the artifact names, and evidence is never written through
//! a symlink planted in the log directory.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::{cloudimg, ok, require_tool, run};

/// A QCOW2 whose backing file is a host file: QEMU would open the host
/// file and show its bytes to the guest. cloudimg refuses it in one line,
/// before QEMU runs (no evidence is written, the secret is never read).
#[test]
fn qcow2_naming_a_host_file_is_not_booted() {
    if !require_tool("qemu-img") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let secret = d.join("secret.raw");
    fs::write(&secret, vec![0x5a; 1 << 20]).unwrap();
    let made = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", "-F", "raw", "-b"])
        .arg(&secret)
        .arg(d.join("evil.qcow2"))
        .status()
        .unwrap();
    assert!(made.success());
    let out = cloudimg(
        &[
            "boot",
            "evil.qcow2",
            "--firmware",
            "bios",
            "--timeout",
            "5",
            "--log",
            "ev",
        ],
        d,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("evil.qcow2") && err.contains("backing"),
        "{err}"
    );
    assert!(!d.join("ev").exists(), "nothing booted, nothing recorded");
}

/// Symlinks planted at the names `boot --log DIR` writes: each is replaced
/// by the evidence file, its target never written; evidence is 0600.
#[test]
fn boot_log_never_follows_a_planted_symlink() {
    if !(require_tool("qemu-system-x86_64") && require_tool("grub-mkimage")) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    ok(cloudimg(&["image", "build", "-o", "img.raw"], d));
    let victim = d.join("victim");
    fs::write(&victim, b"precious").unwrap();
    let ev = d.join("ev");
    fs::create_dir(&ev).unwrap();
    let names = [
        "boot-bios-virtio.serial.log",
        "boot-bios-virtio.firmware.log",
        "boot-bios-virtio.json",
    ];
    for n in names {
        std::os::unix::fs::symlink(&victim, ev.join(n)).unwrap();
    }
    ok(cloudimg(
        &["boot", "img.raw", "--firmware", "bios", "--log", "ev"],
        d,
    ));
    assert_eq!(fs::read(&victim).unwrap(), b"precious");
    for n in names {
        let p: &Path = &ev.join(n);
        let meta = fs::symlink_metadata(p).unwrap();
        assert!(meta.file_type().is_file(), "{n} is a file now");
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{n}");
    }
    let log = fs::read_to_string(ev.join(names[0])).unwrap();
    assert!(log.contains("capos kernel starting"), "{log}");
}

/// Where a hosted sparse VMDK's header keeps the fields the attack below
/// rewrites, little-endian u64 counts of 512-byte sectors (VMware "Virtual
/// Disk Format 5.0", SparseExtentHeader: capacity at byte 12,
/// descriptorOffset at 28, descriptorSize at 36).
const VMDK_CAPACITY_AT: usize = 12;
const VMDK_DESCRIPTOR_OFFSET_AT: usize = 28;
const VMDK_DESCRIPTOR_SIZE_AT: usize = 36;

fn le_u64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// A VMDK made by `qemu-img` in `subformat` whose embedded descriptor is
/// replaced by one naming `host_file` as a FLAT extent of `sectors`; with
/// `zero_capacity` its header's capacity is set to 0, which makes QEMU
/// open that descriptor as a descriptor file (`vmdk_open_vmdk4`).
fn vmdk_naming(
    dir: &Path,
    subformat: &str,
    host_file: &Path,
    sectors: u64,
    zero_capacity: bool,
) -> std::path::PathBuf {
    let p = dir.join(format!("evil-{subformat}-{zero_capacity}.vmdk"));
    let made = Command::new("qemu-img")
        .args(["create", "-q", "-f", "vmdk", "-o"])
        .arg(format!("subformat={subformat}"))
        .arg(&p)
        .arg((sectors * 512).to_string())
        .status()
        .unwrap();
    assert!(made.success());
    let mut b = fs::read(&p).unwrap();
    let at = le_u64(&b, VMDK_DESCRIPTOR_OFFSET_AT) as usize * 512;
    let len = le_u64(&b, VMDK_DESCRIPTOR_SIZE_AT) as usize * 512;
    let text = format!(
        "# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\n\
         createType=\"monolithicFlat\"\n\nRW {sectors} FLAT \"{}\" 0\n",
        host_file.display()
    );
    assert!(text.len() <= len && len > 0, "qemu-img embeds a descriptor");
    b[at..at + len].fill(0);
    b[at..at + text.len()].copy_from_slice(text.as_bytes());
    if zero_capacity {
        b[VMDK_CAPACITY_AT..VMDK_CAPACITY_AT + 8].fill(0);
    }
    fs::write(&p, b).unwrap();
    p
}

/// A VMDK (monolithicSparse or streamOptimized) whose embedded descriptor
/// names a host file as a FLAT extent: with a capacity of 0 QEMU reads the
/// host file as the disk (shown by `qemu-img convert`, the oracle). Every
/// variant is refused in one line before QEMU runs: no QEMU command line,
/// no evidence, the host file's bytes nowhere in the output.
#[test]
fn vmdk_naming_a_host_file_as_a_flat_extent_is_not_booted() {
    if !require_tool("qemu-img") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let secret = d.join("secret.raw");
    let secret_bytes = b"TOP-SECRET-HOST-BYTES\n".repeat(2048);
    fs::write(&secret, &secret_bytes[..1 << 15]).unwrap();
    let sectors = (1 << 15) / 512;
    for subformat in ["monolithicSparse", "streamOptimized"] {
        for zero_capacity in [true, false] {
            let evil = vmdk_naming(d, subformat, &secret, sectors, zero_capacity);
            let name = evil.file_name().unwrap().to_str().unwrap();
            if zero_capacity {
                // The attack is real: QEMU's reading of the file is the
                // host file.
                let decoded = d.join("decoded.raw");
                let _ = fs::remove_file(&decoded);
                run(Command::new("qemu-img")
                    .args(["convert", "-O", "raw"])
                    .arg(&evil)
                    .arg(&decoded));
                let decoded = fs::read(&decoded).unwrap();
                assert!(decoded.starts_with(b"TOP-SECRET-HOST-BYTES"), "{name}");
            }
            let ev = format!("ev-{name}");
            let out = cloudimg(
                &[
                    "boot",
                    name,
                    "--firmware",
                    "bios",
                    "--timeout",
                    "5",
                    "--log",
                    &ev,
                    "--json",
                ],
                d,
            );
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{name}: {err}");
            assert_eq!(err.lines().count(), 1, "{name}: {err}");
            assert!(err.contains(name), "{name}: {err}");
            assert!(
                out.stdout.is_empty(),
                "{name}: no JSON for a boot never run"
            );
            assert!(!err.contains("SECRET"), "{name}: {err}");
            assert!(
                !d.join(&ev).exists(),
                "{name}: nothing booted, nothing recorded"
            );
        }
    }
}
