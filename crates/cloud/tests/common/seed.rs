//! EC2 resources made with the real `aws` against the local emulator
//! (standin/api), without booting anything for long: a snapshot imported
//! from a 1 MiB disk whose boot sector halts, AMIs of it, instances of
//! those (SeaBIOS boots the sector and the CPU halts for good).

use std::path::Path;
use std::time::{Duration, Instant};

use super::real::AwsEmu;

/// The real `aws`'s JSON answer to `args` (which must succeed).
pub fn aws_json(emu: &AwsEmu, args: &[&str]) -> serde_json::Value {
    let out = emu.aws(args);
    assert!(out.status.success(), "aws {args:?}: {out:?}");
    serde_json::from_slice(&out.stdout).unwrap_or_default()
}

/// A 1 MiB raw disk whose MBR boot code is `cli; hlt; jmp $-1`: SeaBIOS
/// boots it and the CPU halts for good (an instance that costs nothing).
pub fn halting_disk(p: &Path) {
    let mut d = vec![0u8; 1 << 20];
    d[..4].copy_from_slice(&[0xFA, 0xF4, 0xEB, 0xFD]);
    d[510..512].copy_from_slice(&[0x55, 0xAA]);
    std::fs::write(p, d).unwrap();
}

/// A snapshot imported with the real CLI from the halting disk (the S3
/// object it came from removed again).
pub fn import_snapshot(emu: &AwsEmu) -> String {
    let disk = emu.dir().join("halt.raw");
    halting_disk(&disk);
    let cp = emu.aws(&["s3", "cp", disk.to_str().unwrap(), "s3://bkt/seed.raw"]);
    assert!(cp.status.success(), "{cp:?}");
    let task = aws_json(
        emu,
        &[
            "ec2",
            "import-snapshot",
            "--disk-container",
            "Format=RAW,UserBucket={S3Bucket=bkt,S3Key=seed.raw}",
        ],
    );
    let tid = task["ImportTaskId"].as_str().unwrap().to_string();
    let t0 = Instant::now();
    let snap = loop {
        let v = aws_json(
            emu,
            &[
                "ec2",
                "describe-import-snapshot-tasks",
                "--import-task-ids",
                &tid,
            ],
        );
        let d = &v["ImportSnapshotTasks"][0]["SnapshotTaskDetail"];
        match d["Status"].as_str().unwrap() {
            "completed" => break d["SnapshotId"].as_str().unwrap().to_string(),
            "active" => {}
            other => panic!("import {other}: {d}"),
        }
        assert!(t0.elapsed() < Duration::from_secs(120), "import: {d}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let rm = emu.aws(&["s3", "rm", "s3://bkt/seed.raw"]);
    assert!(rm.status.success(), "{rm:?}");
    snap
}

/// An AMI named `name` of `snap`, registered with the real CLI.
pub fn register(emu: &AwsEmu, snap: &str, name: &str) -> String {
    let bdm = format!("DeviceName=/dev/xvda,Ebs={{SnapshotId={snap}}}");
    let v = aws_json(
        emu,
        &[
            "ec2",
            "register-image",
            "--name",
            name,
            "--architecture",
            "x86_64",
            "--root-device-name",
            "/dev/xvda",
            "--block-device-mappings",
            &bdm,
            "--boot-mode",
            "legacy-bios",
            "--virtualization-type",
            "hvm",
        ],
    );
    v["ImageId"].as_str().unwrap().to_string()
}

/// An instance of `ami` tagged `Name=name`, started with the real CLI.
pub fn run_instance(emu: &AwsEmu, ami: &str, name: &str) -> String {
    let tags = format!("ResourceType=instance,Tags=[{{Key=Name,Value={name}}}]");
    let v = aws_json(
        emu,
        &[
            "ec2",
            "run-instances",
            "--image-id",
            ami,
            "--instance-type",
            "t3.micro",
            "--count",
            "1",
            "--tag-specifications",
            &tags,
        ],
    );
    v["Instances"][0]["InstanceId"]
        .as_str()
        .unwrap()
        .to_string()
}
