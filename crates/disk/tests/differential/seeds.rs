//! The valid files the mutators start from: one small disk (4 MiB, a GPT,
//! seeded random, text and pattern runs, holes and explicit zero runs)
//! written by qemu-img in every format and subformat cloudimg reads, by
//! GNU tar as a GCP tarball, and by cloudimg's own `package` (the library
//! call the `cloudimg package` command makes).

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;

use crate::common::{self, run, Rng};
use crate::mutate::{Extra, Kind};

/// One seed file.
pub struct Seed {
    /// Stable name (used in `cases.txt`).
    pub name: &'static str,
    pub kind: Kind,
    /// File name extension (the mutant is written as `m.<ext>`).
    pub ext: &'static str,
    pub bytes: Vec<u8>,
    /// Costly to read (a 1 GiB disk): explored one round in eight.
    pub costly: bool,
}

/// Bytes of the seed disk.
pub const DISK_SIZE: u64 = 4 << 20;

/// Write the seed disk at `path` (a GPT disk from `common::gpt_file`,
/// content seeded by `seed`).
pub fn write_disk(path: &Path, size: u64, seed: u64) {
    let f = common::gpt_file(path, size, seed);
    let mut rng = Rng::new(seed);
    let mut at = 1u64 << 20;
    let mut k = 0u64;
    while at + (80 << 10) < size - (64 << 10) {
        let n = 512 * (1 + rng.next_u64() % 150) as usize;
        let mut buf = vec![0u8; n];
        match k % 4 {
            0 => rng.fill(&mut buf),
            1 => {
                let line = format!("capos differential block {k} ");
                for (i, b) in buf.iter_mut().enumerate() {
                    *b = line.as_bytes()[i % line.len()];
                }
            }
            2 => {} // explicit zeros: data that reads as zero
            _ => buf
                .iter_mut()
                .enumerate()
                .for_each(|(i, b)| *b = (i / 512) as u8 | 1),
        }
        f.write_all_at(&buf, at).unwrap();
        at += n as u64 + (rng.next_u64() % 24) * 4096;
        k += 1;
    }
}

/// qemu-img conversions of the seed disk: (name, kind, ext, -O format,
/// extra arguments).
const QEMU: &[(&str, Kind, &str, &str, &[&str])] = &[
    (
        "qemu-qcow2-v3",
        Kind::Qcow2,
        "qcow2",
        "qcow2",
        &["-o", "compat=1.1"],
    ),
    (
        "qemu-qcow2-v2-4k",
        Kind::Qcow2,
        "qcow2",
        "qcow2",
        &["-o", "compat=0.10,cluster_size=4096"],
    ),
    (
        "qemu-qcow2-v3-compressed",
        Kind::Qcow2,
        "qcow2",
        "qcow2",
        &["-c", "-o", "compat=1.1"],
    ),
    (
        "qemu-vpc-dynamic",
        Kind::Vhd,
        "vhd",
        "vpc",
        &["-o", "subformat=dynamic"],
    ),
    (
        "qemu-vpc-fixed",
        Kind::Vhd,
        "vhd",
        "vpc",
        &["-o", "subformat=fixed,force_size=on"],
    ),
    (
        "qemu-vmdk-sparse",
        Kind::Vmdk,
        "vmdk",
        "vmdk",
        &["-o", "subformat=monolithicSparse"],
    ),
    (
        "qemu-vmdk-stream",
        Kind::Vmdk,
        "vmdk",
        "vmdk",
        &["-o", "subformat=streamOptimized"],
    ),
    (
        "qemu-vhdx-1m",
        Kind::Vhdx,
        "vhdx",
        "vhdx",
        &["-o", "subformat=dynamic,block_size=1048576"],
    ),
    (
        "qemu-vhdx-fixed",
        Kind::Vhdx,
        "vhdx",
        "vhdx",
        &["-o", "subformat=fixed"],
    ),
];

/// Build every seed under `dir`.
pub fn build(dir: &Path) -> (Vec<Seed>, Extra) {
    fs::create_dir_all(dir).unwrap();
    let raw = dir.join("disk.raw");
    write_disk(&raw, DISK_SIZE, 13);
    let mut seeds = Vec::new();
    for &(name, kind, ext, fmt, args) in QEMU {
        let out = dir.join(format!("{name}.{ext}"));
        common::qemu_convert_raw(&raw, fmt, args, &out);
        seeds.push(Seed {
            name,
            kind,
            ext,
            bytes: fs::read(&out).unwrap(),
            costly: false,
        });
    }
    // GNU tar's own GCP-shaped tarball of the disk (old GNU format, holes
    // as a sparse member, as GCP's import documentation's `tar --format=
    // oldgnu -Sczf` has it).
    let t = dir.join("gnu-tar");
    fs::create_dir_all(&t).unwrap();
    fs::copy(&raw, t.join("disk.raw")).unwrap();
    run(Command::new("tar")
        .args(["--format=oldgnu", "-Sczf", "disk.raw.tar.gz", "disk.raw"])
        .current_dir(&t));
    seeds.push(Seed {
        name: "gnu-tar-oldgnu-sparse",
        kind: Kind::TarGz,
        ext: "tar.gz",
        bytes: fs::read(t.join("disk.raw.tar.gz")).unwrap(),
        costly: false,
    });
    // The same tar as two gzip members (`gzip -c a; gzip -c b`, cut in
    // the data): RFC 1952 §2.2 allows a series of members and GNU tar
    // reads them all, as cloudimg must.
    run(Command::new("tar")
        .args(["--format=oldgnu", "-Scf", "disk.raw.tar", "disk.raw"])
        .current_dir(&t));
    let tar = fs::read(t.join("disk.raw.tar")).unwrap();
    let mut two = Vec::new();
    for piece in [&tar[..tar.len() / 2], &tar[tar.len() / 2..]] {
        two.extend_from_slice(&common::gzip_n(piece));
    }
    seeds.push(Seed {
        name: "gnu-tar-two-gzip-members",
        kind: Kind::TarGz,
        ext: "tar.gz",
        bytes: two,
        costly: false,
    });
    // cloudimg's own shapes.
    for (compressed, shapes) in [
        (
            false,
            vec!["gcp", "aws-vhd", "aws-vmdk", "qcow2", "vhdx", "ova"],
        ),
        (true, vec!["qcow2"]),
    ] {
        let out = dir.join(format!("cloudimg-{compressed}"));
        package(&raw, &out, &shapes, compressed);
        for s in shapes {
            let (name, kind, ext, file, costly) = match (s, compressed) {
                ("gcp", _) => (
                    "cloudimg-gcp",
                    Kind::TarGz,
                    "tar.gz",
                    "disk.raw.tar.gz",
                    true,
                ),
                ("aws-vhd", _) => (
                    "cloudimg-vhd-fixed",
                    Kind::Vhd,
                    "vhd",
                    "capos-aws.vhd",
                    false,
                ),
                ("aws-vmdk", _) => (
                    "cloudimg-vmdk-stream",
                    Kind::Vmdk,
                    "vmdk",
                    "capos-aws.vmdk",
                    false,
                ),
                ("qcow2", false) => ("cloudimg-qcow2", Kind::Qcow2, "qcow2", "capos.qcow2", false),
                ("qcow2", true) => (
                    "cloudimg-qcow2-compressed",
                    Kind::Qcow2,
                    "qcow2",
                    "capos.qcow2",
                    false,
                ),
                ("vhdx", _) => ("cloudimg-vhdx", Kind::Vhdx, "vhdx", "capos.vhdx", false),
                _ => ("cloudimg-ova", Kind::Ova, "ova", "capos.ova", false),
            };
            seeds.push(Seed {
                name,
                kind,
                ext,
                bytes: fs::read(out.join(file)).unwrap(),
                costly,
            });
        }
    }
    // Another disk, for mutators that add a second disk (OVA).
    let alt = dir.join("alt.raw");
    write_disk(&alt, 2 << 20, 99);
    let alt_vmdk = dir.join("alt.vmdk");
    crate::common::qemu_stream_vmdk(&alt, &alt_vmdk);
    let extra = Extra {
        alt_vmdk: fs::read(&alt_vmdk).unwrap(),
    };
    (seeds, extra)
}

/// `cloudimg package` through the library: `shapes` of `input` into `out`.
fn package(input: &Path, out: &Path, shapes: &[&str], compressed: bool) {
    use cloudimg_disk::package::{package, PackageRequest, Shape};
    let shapes = shapes
        .iter()
        .map(|s| match *s {
            "gcp" => Shape::GcpTarGz,
            "aws-vhd" => Shape::AwsVhd,
            "aws-vmdk" => Shape::AwsVmdk,
            "qcow2" => Shape::Qcow2,
            "vhdx" => Shape::Vhdx,
            _ => Shape::Ova,
        })
        .collect();
    let req = PackageRequest {
        input: input.to_path_buf(),
        out_dir: out.to_path_buf(),
        name: "capos".into(),
        shapes,
        mtime: 1_700_000_000,
        jobs: 1,
        qcow2_compressed: compressed,
        progress: None,
    };
    let outcome = package(&req, &mut |_| {}).unwrap();
    assert!(
        outcome.failures.is_empty(),
        "package: {:?}",
        outcome.failures
    );
}
