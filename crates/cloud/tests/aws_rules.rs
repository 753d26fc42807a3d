//! Our EC2 endpoint (standin/api) is honest about imports: through the
//! real `aws` CLI, it applies VM Import's documented format rules with
//! tools independent of cloudimg (qemu-img, the VHD footer read in
//! Python) and fails the way the service does; a snapshot it makes holds
//! exactly the disk's bytes.

mod common;

use std::path::Path;

use common::real::{ready_aws, AwsEmu};
use common::{sh, text};

/// Upload `file`, import it declared as `format`, poll until the task
/// ends; the task's SnapshotTaskDetail.
fn aws_import(emu: &AwsEmu, file: &Path, format: &str) -> serde_json::Value {
    let up = emu.aws(&["s3", "cp", file.to_str().unwrap(), "s3://bkt/k"]);
    assert!(up.status.success(), "{}", text(&up.stderr));
    let dc = format!(r#"{{"Format":"{format}","UserBucket":{{"S3Bucket":"bkt","S3Key":"k"}}}}"#);
    let v = emu.json(&["ec2", "import-snapshot", "--disk-container", &dc]);
    let id = v["ImportTaskId"].as_str().unwrap().to_string();
    for _ in 0..300 {
        std::thread::sleep(std::time::Duration::from_millis(100));
        let v = emu.json(&[
            "ec2",
            "describe-import-snapshot-tasks",
            "--import-task-ids",
            &id,
        ]);
        let d = v["ImportSnapshotTasks"][0]["SnapshotTaskDetail"].clone();
        if d["Status"] != "active" {
            return d;
        }
    }
    panic!("import never ended");
}

#[test]
fn aws_rejects_disks_whose_format_does_not_match() {
    if !(ready_aws() && common::require_tool("qemu-img")) {
        return;
    }
    let emu = AwsEmu::start("");
    let w = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let d = w.path();
    // Made by qemu-img, not by cloudimg.
    sh(d, "head -c 2097152 /dev/urandom > disk.raw \
        && qemu-img convert -f raw -O vmdk -o subformat=streamOptimized disk.raw stream.vmdk \
        && qemu-img convert -f raw -O vmdk disk.raw mono.vmdk \
        && qemu-img convert -f raw -O vpc -o subformat=fixed,force_size disk.raw fixed.vhd \
        && cp fixed.vhd badsum.vhd && printf x | dd of=badsum.vhd bs=1 seek=$((2097152+28)) conv=notrunc 2>/dev/null");
    let mismatch = "ClientError: Disk validation failed [Unsupported specified file format]";
    for (file, fmt, want) in [
        ("stream.vmdk", "RAW", mismatch),
        ("disk.raw", "VHD", mismatch),
        ("disk.raw", "VMDK", mismatch),
        ("fixed.vhd", "VMDK", mismatch),
        (
            "mono.vmdk",
            "VMDK",
            "ClientError: Disk validation failed [Unsupported VMDK File Format]",
        ),
        (
            "badsum.vhd",
            "VHD",
            "ClientError: Disk validation failed [Unsupported VHD Footer]",
        ),
    ] {
        let det = aws_import(&emu, &d.join(file), fmt);
        assert_eq!(det["Status"], "deleted", "{file} as {fmt}: {det}");
        assert_eq!(det["StatusMessage"], want, "{file} as {fmt}");
        assert!(det.get("SnapshotId").is_none());
    }
    for (file, fmt) in [
        ("disk.raw", "RAW"),
        ("stream.vmdk", "VMDK"),
        ("fixed.vhd", "VHD"),
    ] {
        let det = aws_import(&emu, &d.join(file), fmt);
        assert_eq!(det["Status"], "completed", "{file} as {fmt}: {det}");
        let snap = det["SnapshotId"].as_str().unwrap();
        // The snapshot holds exactly the disk's bytes.
        let raw = std::fs::read(emu.dir().join(format!("state/snapshots/{snap}.raw"))).unwrap();
        assert_eq!(raw, std::fs::read(d.join("disk.raw")).unwrap(), "{file}");
        let del = emu.aws(&["ec2", "delete-snapshot", "--snapshot-id", snap]);
        assert!(del.status.success(), "{del:?}");
    }
    let gone = emu.aws(&["ec2", "delete-snapshot", "--snapshot-id", "snap-0"]);
    assert_eq!(
        gone.status.code(),
        Some(255),
        "awscli v1's exit for a service error"
    );
    assert_eq!(
        text(&gone.stderr).trim(),
        "An error occurred (InvalidSnapshot.NotFound) when calling the DeleteSnapshot operation: The snapshot 'snap-0' does not exist."
    );
    let rm = emu.aws(&["s3", "rm", "s3://bkt/k"]);
    assert!(rm.status.success(), "{rm:?}");
    assert_eq!(emu.leftovers(), Vec::<String>::new());
}
