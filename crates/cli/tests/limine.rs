//! Real Limine images, built by `cloudimg image build --limine DIR` from
//! the two Limine binary releases in the corpus (8.2.0 and 10.4.0) with
//! each release's own host tool (`limine bios-install`): capOS's layout,
//! the same with a hybrid MBR, and the 10.x layout with a BIOS boot
//! partition. Oracles: sgdisk -v, sgdisk -h (the hybrid MBR), fsck.fat -n,
//! mtools, the corpus files, QEMU with OVMF and SeaBIOS, qemu-img and tar
//! to decode every packaged shape for a byte comparison. Also: the
//! operator's image is never overwritten (image build, make targets).

mod common;

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{cloudimg, ok, require_tool, run, sha256};

const ESP_OFFSET: u64 = 2048 * 512;

/// The tools these tests need; each is required under CI.
fn tools() -> bool {
    [
        "sgdisk",
        "fsck.fat",
        "mdir",
        "mcopy",
        "dd",
        "sha256sum",
        "cc",
    ]
    .iter()
    .all(|t| require_tool(t))
}

/// Build a Limine image `name` in `dir` from corpus release `version`.
fn build(dir: &Path, name: &str, version: &str, flags: &[&str]) -> Option<PathBuf> {
    let release = cloudimg_testkit::limine_release(version)?;
    let mut args = vec!["image", "build", "--limine", release.to_str().unwrap()];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["-o", name]);
    ok(cloudimg(&args, dir));
    Some(dir.join(name))
}

fn read_at(path: &Path, offset: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    std::fs::File::open(path)
        .unwrap()
        .read_exact_at(&mut buf, offset)
        .unwrap();
    buf
}

fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

/// A file on the image's ESP, read by mtools.
fn esp_file(img: &Path, path: &str) -> Vec<u8> {
    let out = Command::new("mcopy")
        .arg("-n")
        .arg("-i")
        .arg(format!("{}@@{ESP_OFFSET}", img.display()))
        .arg(format!("::{path}"))
        .arg("-")
        .output()
        .unwrap();
    assert!(out.status.success(), "mcopy {path}: {:?}", out);
    out.stdout
}

/// Where Limine's stage 2 is, as its stage 1 records it at MBR offset
/// 0x1A4 (limine.c, bios_install): up to 9.x two halves {u16 size_a,
/// u16 size_b, u64 loc_a, u64 loc_b}; from 10.x one u64 byte offset.
fn stage2_ranges(img: &Path, major: u32) -> Vec<(u64, u64)> {
    let mbr = read_at(img, 0, 512);
    if major >= 10 {
        vec![(le64(&mbr, 0x1A4), 512)]
    } else {
        let size_a = u64::from(u16::from_le_bytes([mbr[0x1A4], mbr[0x1A5]]));
        let size_b = u64::from(u16::from_le_bytes([mbr[0x1A6], mbr[0x1A7]]));
        vec![(le64(&mbr, 0x1A8), size_a), (le64(&mbr, 0x1B0), size_b)]
    }
}

/// Check one built image against the oracles.
fn check_image(img: &Path, version: &str, corpus_dir: &Path, bios_boot: bool) {
    let v = run(Command::new("sgdisk").arg("-v").arg(img));
    assert!(v.contains("No problems found"), "{}: {v}", img.display());
    let esp = img.with_extension("esp");
    run(Command::new("dd")
        .arg(format!("if={}", img.display()))
        .arg(format!("of={}", esp.display()))
        .args(["bs=1M", "skip=1", "count=128", "status=none"]));
    run(Command::new("fsck.fat").arg("-n").arg(&esp));
    std::fs::remove_file(&esp).unwrap();
    let listing = run(Command::new("mdir")
        .arg("-/")
        .arg("-i")
        .arg(format!("{}@@{ESP_OFFSET}", img.display()))
        .arg("::/"));
    for name in ["BOOTX64.EFI", "limine-bios.sys", "limine.conf", "capos.elf"] {
        assert!(listing.contains(name), "{name} not in {listing}");
    }
    for (on_esp, file) in [
        ("/EFI/BOOT/BOOTX64.EFI", "BOOTX64.EFI"),
        ("/boot/limine/limine-bios.sys", "limine-bios.sys"),
    ] {
        assert!(
            esp_file(img, on_esp) == std::fs::read(corpus_dir.join(file)).unwrap(),
            "{on_esp} differs from the corpus {file}"
        );
    }
    assert!(esp_file(img, "/boot/capos.elf").starts_with(b"\x7fELF"));
    let conf = String::from_utf8(esp_file(img, "/boot/limine/limine.conf")).unwrap();
    let major: u32 = version.split('.').next().unwrap().parse().unwrap();
    let key = if major <= 8 { "kernel_path" } else { "path" };
    assert!(
        conf.contains(&format!(
            "timeout: 0\nserial: yes\n\n/capOS\n    protocol: multiboot2\n    {key}: boot():/boot/capos.elf\n"
        )),
        "{conf}"
    );
    // Limine's stage 1: `EB 3C 90` then `LIMINE  ` (corpus README).
    let mbr = read_at(img, 0, 512);
    assert_eq!(&mbr[..11], b"\xEB\x3C\x90LIMINE  ");
    assert_eq!(&mbr[510..], [0x55, 0xAA]);
    let stage2 = stage2_ranges(img, major);
    if bios_boot {
        // Stage 2 starts the BIOS boot partition (LBA 40).
        assert_eq!(stage2[0].0, 40 * 512, "{stage2:?}");
    } else {
        // 8.x embeds: half A right after the shrunk primary array, half
        // B right before the backup header.
        let hdr = read_at(img, 512, 92);
        let array_end = (le64(&hdr, 72) + (u64::from(le32(&hdr, 80)) * 128).div_ceil(512)) * 512;
        assert_eq!(stage2[0].0, array_end, "{stage2:?}");
        assert_eq!(
            stage2[1].0 + stage2[1].1,
            le64(&hdr, 32) * 512,
            "{stage2:?}"
        );
    }
    for (loc, len) in stage2 {
        assert!(
            read_at(img, loc, len as usize).iter().any(|b| *b != 0),
            "stage 2 at {loc} is empty"
        );
    }
}

#[test]
fn limine_layouts_pass_the_oracles() {
    if !tools() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let layouts: [(&str, &str, &[&str], bool); 4] = [
        ("a.raw", "8.2.0", &[], false),
        ("b.raw", "8.2.0", &["--hybrid-mbr"], false),
        ("c.raw", "10.4.0", &["--bios-boot-partition"], true),
        (
            "d.raw",
            "10.4.0",
            &["--bios-boot-partition", "--hybrid-mbr"],
            true,
        ),
    ];
    for (name, version, flags, bios_boot) in layouts {
        let Some(img) = build(d, name, version, flags) else {
            return;
        };
        let corpus_dir = cloudimg_testkit::corpus(&format!("limine/limine-{version}")).unwrap();
        check_image(&img, version, &corpus_dir, bios_boot);
    }
    // The hybrid MBR is the one sgdisk -h writes for the ESP.
    for (plain, hybrid, esp_number) in [("a.raw", "b.raw", "1"), ("c.raw", "d.raw", "2")] {
        let copy = d.join("copy.raw");
        std::fs::copy(d.join(plain), &copy).unwrap();
        run(Command::new("sgdisk")
            .arg(format!("--hybrid={esp_number}"))
            .arg(&copy));
        assert_eq!(
            read_at(&copy, 446, 64),
            read_at(&d.join(hybrid), 446, 64),
            "{hybrid} vs sgdisk -h {esp_number} {plain}"
        );
    }
    // Reproducible: the same inputs give the same bytes.
    let again = build(d, "a2.raw", "8.2.0", &[]).unwrap();
    assert_eq!(sha256(&again), sha256(&d.join("a.raw")));
    // Straight from the (read-only) corpus folder, which has limine.c but
    // no `limine`: the host tool is compiled in a private directory, and
    // the image is the same.
    let corpus_dir = cloudimg_testkit::corpus("limine/limine-8.2.0").unwrap();
    ok(cloudimg(
        &[
            "image",
            "build",
            "--limine",
            corpus_dir.to_str().unwrap(),
            "-o",
            "direct.raw",
        ],
        d,
    ));
    assert_eq!(sha256(&d.join("direct.raw")), sha256(&d.join("a.raw")));
}

fn fails(out: std::process::Output) -> String {
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    err
}

/// Only the files the test made: no partial image left behind.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn limine_build_errors_are_one_clear_line() {
    if !tools() {
        return;
    }
    let (Some(r8), Some(r10)) = (
        cloudimg_testkit::limine_release("8.2.0"),
        cloudimg_testkit::limine_release("10.4.0"),
    ) else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let build = |release: &Path, flags: &[&str]| {
        let mut args = vec!["image", "build", "--limine", release.to_str().unwrap()];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["-o", "x.raw"]);
        cloudimg(&args, d)
    };
    let err = fails(build(&r10, &[]));
    assert!(
        err.contains("Limine 10.4.0 installs its BIOS stage 2 only into a BIOS boot partition on a GPT disk: add --bios-boot-partition"),
        "{err}"
    );
    // A release missing a file.
    let partial = d.join("partial");
    std::fs::create_dir(&partial).unwrap();
    std::fs::copy(r8.join("BOOTX64.EFI"), partial.join("BOOTX64.EFI")).unwrap();
    let err = fails(build(&partial, &[]));
    assert!(
        err.contains("partial/limine-bios.sys: No such file"),
        "{err}"
    );
    // Binaries of two releases.
    std::fs::copy(r10.join("limine-bios.sys"), partial.join("limine-bios.sys")).unwrap();
    let err = fails(build(&partial, &[]));
    assert!(
        err.contains("BOOTX64.EFI is Limine 8.2.0 but limine-bios.sys is Limine 10.4.0"),
        "{err}"
    );
    // No host tool.
    std::fs::copy(r8.join("limine-bios.sys"), partial.join("limine-bios.sys")).unwrap();
    let err = fails(build(&partial, &[]));
    assert!(err.contains("holds neither limine nor limine.c"), "{err}");
    // A host tool of another release.
    std::fs::copy(r10.join("limine"), partial.join("limine")).unwrap();
    let err = fails(build(&partial, &[]));
    assert!(
        err.contains("is Limine 10.4.0 but") && err.contains("holds Limine 8.2.0"),
        "{err}"
    );
    // A host tool whose bios-install fails: its stderr is quoted.
    let tool = partial.join("limine");
    std::fs::remove_file(&tool).unwrap();
    std::fs::write(
        &tool,
        "#!/bin/sh\nif [ \"$1\" = --version ]; then echo 'Limine 8.2.0'; exit 0; fi\necho 'error: Secondary header not valid, aborting.' >&2\nexit 1\n",
    )
    .unwrap();
    run(Command::new("chmod").arg("+x").arg(&tool));
    let err = fails(build(&partial, &[]));
    assert!(
        err.contains("bios-install: exit status: 1: error: Secondary header not valid, aborting."),
        "{err}"
    );
    // GRUB does not take Limine's layout flags.
    let err = fails(cloudimg(
        &["image", "build", "--hybrid-mbr", "-o", "x.raw"],
        d,
    ));
    assert!(err.contains("are for --loader limine"), "{err}");
    let err = fails(cloudimg(
        &["image", "build", "--loader", "limine", "-o", "x.raw"],
        d,
    ));
    assert!(err.contains("--loader limine needs --limine DIR"), "{err}");
    assert_eq!(names(d), ["partial"]);
}

#[test]
fn image_build_never_replaces_an_existing_file_without_force() {
    if !tools() {
        return;
    }
    let Some(release) = cloudimg_testkit::limine_release("8.2.0") else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    std::fs::write(d.join("mine.raw"), b"the operator's image").unwrap();
    let before = sha256(&d.join("mine.raw"));
    let args = |extra: &[&'static str]| {
        let mut a = vec!["image", "build", "--limine", release.to_str().unwrap()];
        a.extend_from_slice(extra);
        a.extend_from_slice(&["-o", "mine.raw"]);
        a.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let run_args = |a: Vec<String>| {
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        cloudimg(&a, d)
    };
    let err = fails(run_args(args(&[])));
    assert_eq!(
        err,
        "cloudimg: error: mine.raw exists; not replacing it (pass --force to replace it)\n"
    );
    assert_eq!(sha256(&d.join("mine.raw")), before);
    // The GRUB default is refused the same way, and a dangling symlink
    // is never followed.
    let err = fails(cloudimg(&["image", "build", "-o", "mine.raw"], d));
    assert!(err.contains("mine.raw exists"), "{err}");
    std::os::unix::fs::symlink(d.join("elsewhere.raw"), d.join("link.raw")).unwrap();
    let err = fails(cloudimg(&["image", "build", "-o", "link.raw"], d));
    assert!(err.contains("link.raw exists"), "{err}");
    assert!(!d.join("elsewhere.raw").exists());
    assert_eq!(names(d), ["link.raw", "mine.raw"]);
    // --force replaces it.
    ok(run_args(args(&["--force"])));
    assert_ne!(sha256(&d.join("mine.raw")), before);
    let v = run(Command::new("sgdisk").arg("-v").arg(d.join("mine.raw")));
    assert!(v.contains("No problems found"), "{v}");
}

/// The repository root (the Makefile's directory).
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn make(args: &[&str]) -> std::process::Output {
    Command::new("make")
        .arg("-C")
        .arg(repo())
        .arg("--no-print-directory")
        .args(args)
        .arg(format!("CLOUDIMG={}", env!("CARGO_BIN_EXE_cloudimg")))
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .expect("running make")
}

#[test]
fn make_targets_package_and_boot_the_given_image_untouched() {
    if !(tools() && require_tool("make") && require_tool("qemu-system-x86_64")) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let Some(img) = build(d, "mine.raw", "8.2.0", &[]) else {
        return;
    };
    let before = sha256(&img);
    let out_dir = d.join("out");
    let image_arg = format!("IMAGE={}", img.display());
    let out = make(&[
        "package-cloud-image",
        &image_arg,
        &format!("OUT={}", out_dir.display()),
    ]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        sha256(&img),
        before,
        "make package-cloud-image changed IMAGE"
    );
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m["source"]["sha256"], before.as_str(), "{m}");
    assert_eq!(
        sha256(&out_dir.join("capos-aws.raw")),
        before,
        "the AWS raw disk is the given image"
    );
    let out = make(&["run-disk-bios", &image_arg]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("PASS bios"),
        "{out:?}"
    );
    assert_eq!(sha256(&img), before, "make run-disk-bios changed IMAGE");
    let _ = make(&["check-image", &image_arg]);
    assert_eq!(sha256(&img), before, "make check-image changed IMAGE");
    // A given IMAGE that does not exist is an error, never built.
    let missing = d.join("missing.raw");
    let out = make(&[
        "package-gcp-image",
        &format!("IMAGE={}", missing.display()),
        &format!("OUT={}", out_dir.display()),
    ]);
    assert!(!out.status.success(), "{out:?}");
    assert!(!missing.exists());
}

#[test]
fn make_builds_the_default_image_only_when_it_is_missing() {
    if !(require_tool("make") && common::require_grub()) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    // Stand-in for the default path, so the repository's own
    // target/capos-image.raw is not touched.
    let img = d.join("capos-image.raw");
    let vars = [
        format!("IMAGE={}", img.display()),
        format!("DEFAULT_IMAGE={}", img.display()),
        format!("OUT={}", d.join("out").display()),
    ];
    let args = |target: &'static str| {
        let mut a = vec![target.to_string()];
        a.extend(vars.iter().cloned());
        a
    };
    let run_make = |a: Vec<String>| {
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        make(&a)
    };
    let out = run_make(args("package-aws-image"));
    assert!(out.status.success(), "{out:?}");
    let first = sha256(&img);
    let modified = std::fs::metadata(&img).unwrap().modified().unwrap();
    let out = run_make(args("package-aws-image"));
    assert!(out.status.success(), "{out:?}");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("image build"),
        "rebuilt: {out:?}"
    );
    assert_eq!(sha256(&img), first);
    assert_eq!(
        std::fs::metadata(&img).unwrap().modified().unwrap(),
        modified
    );
}

/// Every shape `package --all` writes.
const SHAPES: [&str; 8] = [
    "capos-aws.raw",
    "capos-aws.vhd",
    "capos-aws.vmdk",
    "disk.raw.tar.gz",
    "capos-azure.vhd",
    "capos.qcow2",
    "capos.vhdx",
    "capos.ova",
];

/// The raw disk inside an artifact, decoded by tools we did not write:
/// GNU tar for the GCP tarball and the OVA, qemu-img for the rest.
fn decode(artifact: &Path, scratch: &Path) -> PathBuf {
    let name = artifact.file_name().unwrap().to_str().unwrap();
    let into = scratch.join(name.replace('.', "-"));
    std::fs::create_dir_all(&into).unwrap();
    let convert = |from: &Path, format: &str| {
        let raw = into.join("disk.raw");
        run(Command::new("qemu-img")
            .args(["convert", "-f", format, "-O", "raw"])
            .arg(from)
            .arg(&raw));
        raw
    };
    match name {
        n if n.ends_with(".raw") => artifact.to_path_buf(),
        "disk.raw.tar.gz" => {
            run(Command::new("tar")
                .arg("-xzf")
                .arg(artifact)
                .arg("-C")
                .arg(&into));
            into.join("disk.raw")
        }
        "capos.ova" => {
            run(Command::new("tar")
                .arg("-xf")
                .arg(artifact)
                .arg("-C")
                .arg(&into));
            let vmdk = std::fs::read_dir(&into)
                .unwrap()
                .map(|e| e.unwrap().path())
                .find(|p| p.extension().is_some_and(|e| e == "vmdk"))
                .expect("the OVA holds a VMDK");
            convert(&vmdk, "vmdk")
        }
        n if n.ends_with(".vhd") => convert(artifact, "vpc"),
        n if n.ends_with(".vmdk") => convert(artifact, "vmdk"),
        n if n.ends_with(".qcow2") => convert(artifact, "qcow2"),
        n if n.ends_with(".vhdx") => convert(artifact, "vhdx"),
        n => panic!("no decoder for {n}"),
    }
}

/// The sectors of `input` its GPT owns (protective MBR, headers, both
/// arrays as sized by the headers), as sorted half-open LBA ranges.
fn gpt_owned(input: &Path) -> Vec<(u64, u64)> {
    let primary = read_at(input, 512, 92);
    let array = |h: &[u8]| (u64::from(le32(h, 80)) * u64::from(le32(h, 84))).div_ceil(512);
    let alternate = le64(&primary, 32);
    let backup = read_at(input, alternate * 512, 92);
    let mut owned = vec![
        (0, 2),
        (le64(&primary, 72), le64(&primary, 72) + array(&primary)),
        (le64(&backup, 72), le64(&backup, 72) + array(&backup)),
        (alternate, alternate + 1),
    ];
    owned.sort();
    owned
}

/// Every sector of `input` outside its GPT's own sectors (and the MBR's
/// boot code, bytes 0..440) is in `decoded`, byte for byte: Limine's
/// stage 1 and stage 2 wherever it put them, and the partitions.
fn assert_limine_bytes_kept(input: &Path, decoded: &Path, what: &str) {
    let size = std::fs::metadata(input).unwrap().len();
    assert!(std::fs::metadata(decoded).unwrap().len() >= size, "{what}");
    assert_eq!(
        read_at(input, 0, 440),
        read_at(decoded, 0, 440),
        "{what}: MBR boot code"
    );
    let mut at = 0;
    let mut ranges = Vec::new();
    for (start, end) in gpt_owned(input) {
        if start > at {
            ranges.push((at, start));
        }
        at = at.max(end);
    }
    ranges.push((at, size / 512));
    let (a, b) = (
        std::fs::File::open(input).unwrap(),
        std::fs::File::open(decoded).unwrap(),
    );
    for (start, end) in ranges {
        let mut lba = start;
        while lba < end {
            let n = (end - lba).min(4096) as usize;
            let (mut x, mut y) = (vec![0u8; n * 512], vec![0u8; n * 512]);
            a.read_exact_at(&mut x, lba * 512).unwrap();
            b.read_exact_at(&mut y, lba * 512).unwrap();
            if x != y {
                let i = (0..n).find(|i| x[i * 512..][..512] != y[i * 512..][..512]);
                panic!(
                    "{what}: LBA {} differs from the input",
                    lba + i.unwrap() as u64
                );
            }
            lba += n as u64;
        }
    }
}

/// The JSON record `cloudimg boot --log` left: passed, the landmark and
/// the firmware the demo kernel says started it.
fn assert_booted(log: &Path, what: &str, fw: &str, disk: &str) {
    let rec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(log.join(format!("boot-{fw}-{disk}.json"))).unwrap())
            .unwrap();
    assert_eq!(rec["passed"], true, "{what} {fw} {disk}: {rec}");
    let tail = rec["serial_tail"].as_str().unwrap();
    assert!(
        tail.contains("capos kernel starting"),
        "{what} {fw}: {tail}"
    );
    assert!(
        tail.contains(&format!("firmware={fw}")),
        "{what} {fw}: {tail}"
    );
}

fn boot(d: &Path, artifact: &str, disk: &str) {
    let log = d
        .join("ev")
        .join(format!("{}-{disk}", artifact.replace('/', "-")));
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
        assert_booted(&log, artifact, fw, disk);
    }
}

fn firmware_present() -> bool {
    ["qemu-system-x86_64", "qemu-img", "tar"]
        .iter()
        .all(|t| require_tool(t))
        && common::require_file("/usr/share/OVMF/OVMF_CODE_4M.fd")
        && common::require_file("/usr/share/seabios/bios-256k.bin")
}

/// Build one layout, boot it under both firmwares, package every shape,
/// check Limine's bytes in each decoded shape, and boot each under both
/// firmwares over NVMe and virtio-scsi.
fn every_shape_boots(version: &str, flags: &[&str]) {
    if !(tools() && firmware_present()) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let Some(img) = build(d, "limine.raw", version, flags) else {
        return;
    };
    let before = sha256(&img);
    boot(d, "limine.raw", "virtio");
    ok(cloudimg(
        &["package", "limine.raw", "--all", "-o", "cloud"],
        d,
    ));
    assert_eq!(sha256(&img), before, "packaging changed the input");
    let scratch = d.join("decoded");
    for shape in SHAPES {
        let artifact = d.join("cloud").join(shape);
        let raw = decode(&artifact, &scratch);
        assert_limine_bytes_kept(&img, &raw, shape);
        if raw != artifact {
            std::fs::remove_file(&raw).unwrap();
        }
        for disk in ["nvme", "scsi"] {
            boot(d, &format!("cloud/{shape}"), disk);
        }
    }
}

#[test]
fn limine_8_capos_layout_boots_in_every_shape() {
    every_shape_boots("8.2.0", &[]);
}

#[test]
fn limine_8_hybrid_mbr_boots_in_every_shape() {
    every_shape_boots("8.2.0", &["--hybrid-mbr"]);
}

#[test]
fn limine_10_bios_boot_partition_boots_in_every_shape() {
    every_shape_boots("10.4.0", &["--bios-boot-partition"]);
}

#[test]
fn make_limine_image_builds_the_example_from_the_corpus_once() {
    if !(tools() && require_tool("make"))
        || cloudimg_testkit::corpus("limine/limine-8.2.0").is_none()
    {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let img = t.path().join("limine-image.raw");
    let var = format!("LIMINE_IMAGE={}", img.display());
    let out = make(&["limine-image", &var]);
    assert!(out.status.success(), "{out:?}");
    let v = run(Command::new("sgdisk").arg("-v").arg(&img));
    assert!(v.contains("No problems found"), "{v}");
    assert_eq!(&read_at(&img, 3, 8), b"LIMINE  ");
    let first = sha256(&img);
    let out = make(&["limine-image", &var]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("image build"),
        "rebuilt: {out:?}"
    );
    assert_eq!(sha256(&img), first);
}

/// Limine 10.x with a BIOS boot partition and a hybrid MBR boots under
/// both firmwares, and the command line reaches the kernel through
/// limine.conf's `cmdline:`.
#[test]
fn limine_10_hybrid_mbr_boots_with_its_cmdline() {
    if !(tools() && firmware_present()) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let flags = [
        "--bios-boot-partition",
        "--hybrid-mbr",
        "--cmdline",
        "console=ttyS0 capos.x=1",
    ];
    if build(d, "d.raw", "10.4.0", &flags).is_none() {
        return;
    }
    boot(d, "d.raw", "virtio");
    for fw in ["bios", "uefi"] {
        let log = d.join("ev/d.raw-virtio");
        let rec: serde_json::Value = serde_json::from_slice(
            &std::fs::read(log.join(format!("boot-{fw}-virtio.json"))).unwrap(),
        )
        .unwrap();
        let tail = rec["serial_tail"].as_str().unwrap();
        assert!(
            tail.contains("capos demo kernel: cmdline=console=ttyS0 capos.x=1"),
            "{fw}: {tail}"
        );
    }
}
