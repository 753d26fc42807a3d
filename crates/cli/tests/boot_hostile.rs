//! `cloudimg boot` on files made to reach the host (issue 13): QEMU never
//! opens a file the artifact names, and evidence is never written through
//! a symlink planted in the log directory.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::{cloudimg, ok, require_tool};

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
    let names = ["boot-bios-virtio.serial.log", "boot-bios-virtio.json"];
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
