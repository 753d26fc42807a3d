//! Files cloudimg does not read: compressed images (xz, zstd, gzip that is
//! not a GCP tarball, bzip2, LZ4, zip) and the image formats it does not
//! decode (VirtualBox VDI, QED). Each is made by the real tool from a GPT
//! disk and must be refused by every command that reads images, in one
//! line naming the file, the format and what to do, exit 2, nothing
//! written, the input untouched. A raw disk whose boot code happens to
//! start with a compressor's magic is still a disk.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::*;

/// A 4 MiB GPT disk with one partition holding seeded data.
fn gpt_disk(dir: &Path) -> std::path::PathBuf {
    let p = dir.join("disk.raw");
    let mut data = vec![0u8; 4 << 20];
    Rng::new(11).fill(&mut data[1 << 20..2 << 20]);
    fs::write(&p, &data).unwrap();
    run(Command::new("sgdisk").args(["-n", "1:2048:6143"]).arg(&p));
    p
}

/// Every command that reads an image, with its arguments for `file`.
fn commands(file: &str) -> Vec<Vec<String>> {
    let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    vec![
        v(&["package", file, "-o", "out", "--all"]),
        v(&["verify", file]),
        v(&["inspect", file]),
        v(&["check", file]),
        v(&["boot", file]),
    ]
}

fn assert_refused(dir: &Path, file: &str, message: &str) {
    let before = sha256(&dir.join(file));
    for args in commands(file) {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = cloudimg(&args, dir);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(
            err,
            format!("cloudimg: error: {file}: {message}\n"),
            "{args:?}"
        );
        assert!(out.stdout.is_empty(), "{args:?}");
        assert!(!dir.join("out").exists(), "{args:?} wrote out/");
    }
    assert_eq!(sha256(&dir.join(file)), before, "{file} was modified");
}

#[test]
fn compressed_images_are_refused_naming_the_tool() {
    if !require_tool("sgdisk") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    gpt_disk(dir);
    let cases: &[(&str, &[&str], &str, &str)] = &[
        ("xz", &["xz", "-k"], "disk.raw.xz", "xz-compressed data, not a disk image: decompress it first (unxz -k disk.raw.xz) and give the result"),
        ("zstd", &["zstd", "-q", "-k"], "disk.raw.zst", "zstd-compressed data, not a disk image: decompress it first (unzstd disk.raw.zst) and give the result"),
        ("gzip", &["gzip", "-k"], "disk.raw.gz", "gzip-compressed data that is not a GCP disk.raw.tar.gz (it holds no tar archive): decompress it first (gunzip -k disk.raw.gz) and give the result"),
        ("bzip2", &["bzip2", "-k"], "disk.raw.bz2", "bzip2-compressed data, not a disk image: decompress it first (bunzip2 -k disk.raw.bz2) and give the result"),
        ("lz4", &["lz4", "-q"], "disk.raw.lz4", "LZ4-compressed data, not a disk image: decompress it first (unlz4 disk.raw.lz4) and give the result"),
    ];
    for (tool, cmd, file, message) in cases {
        if !require_tool(tool) {
            continue;
        }
        let mut c = Command::new(cmd[0]);
        c.args(&cmd[1..]).arg("disk.raw").current_dir(dir);
        if *tool == "lz4" {
            c.arg(file);
        }
        run(&mut c);
        assert_refused(dir, file, message);
    }
    if require_tool("zip") {
        run(Command::new("zip")
            .args(["-q", "disk.zip", "disk.raw"])
            .current_dir(dir));
        assert_refused(
            dir,
            "disk.zip",
            "a zip archive, not a disk image: extract the disk image from it first (unzip disk.zip) and give that",
        );
    }
}

#[test]
fn vdi_and_qed_are_refused_naming_qemu_img() {
    if !require_tool("sgdisk") || !require_tool("qemu-img") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    gpt_disk(dir);
    for (fmt, file, what) in [
        ("vdi", "disk.vdi", "a VirtualBox VDI image"),
        ("qed", "disk.qed", "a QED image"),
    ] {
        // disk.raw exists: the suggested output is another name.
        run(Command::new("qemu-img")
            .args(["convert", "-f", "raw", "-O", fmt, "disk.raw", file])
            .current_dir(dir));
        // The oracle agrees on what the file is.
        let info = run(Command::new("qemu-img")
            .args(["info", "--output=json", file])
            .current_dir(dir));
        assert!(info.contains(&format!("\"format\": \"{fmt}\"")), "{info}");
        assert_refused(
            dir,
            file,
            &format!(
                "{what} is not read by cloudimg: convert it first (qemu-img convert -O raw {file} disk-converted.raw) and give the result"
            ),
        );
    }
    // Named .raw already: the suggested output does not overwrite it.
    fs::copy(dir.join("disk.vdi"), dir.join("v.raw")).unwrap();
    assert_refused(
        dir,
        "v.raw",
        "a VirtualBox VDI image is not read by cloudimg: convert it first (qemu-img convert -O raw v.raw v-converted.raw) and give the result",
    );
}

#[test]
fn a_disk_whose_boot_code_starts_with_a_magic_is_still_a_disk() {
    if !require_tool("sgdisk") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let disk = gpt_disk(dir);
    // The xz magic as the first bytes of the protective MBR's boot code.
    let mut b = fs::read(&disk).unwrap();
    b[..6].copy_from_slice(b"\xFD7zXZ\0");
    fs::write(&disk, &b).unwrap();
    let out = ok(cloudimg(&["verify", "disk.raw"], dir));
    assert!(out.starts_with("disk.raw: ok: raw,"), "{out}");
    ok(cloudimg(&["package", "disk.raw", "-o", "out"], dir));
    assert!(dir.join("out/manifest.json").exists());
}

/// A VMDK text descriptor whose first line is another comment is still a
/// descriptor (qemu-img reads it as one), not a raw disk of text: it is
/// refused naming the extent file to give instead.
#[test]
fn text_descriptor_with_another_first_comment_names_its_extent() {
    if !require_tool("qemu-img") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    run(Command::new("qemu-img")
        .args([
            "create",
            "-q",
            "-f",
            "vmdk",
            "-o",
            "subformat=monolithicFlat",
            "flat.vmdk",
            "1M",
        ])
        .current_dir(dir));
    let text = fs::read_to_string(dir.join("flat.vmdk")).unwrap();
    let (first, rest) = text.split_once('\n').unwrap();
    assert_eq!(first, "# Disk DescriptorFile");
    fs::write(
        dir.join("d.vmdk"),
        format!("# Description file written by another tool\n{rest}"),
    )
    .unwrap();
    // The oracle still reads it as a VMDK.
    let info = run(Command::new("qemu-img")
        .args(["info", "--output=json", "d.vmdk"])
        .current_dir(dir));
    assert!(info.contains("\"format\": \"vmdk\""), "{info}");
    for args in [
        ["package", "d.vmdk", "-o", "out"].as_slice(),
        ["verify", "d.vmdk"].as_slice(),
    ] {
        let out = cloudimg(args, dir);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "cloudimg: error: d.vmdk: is a VMDK text descriptor without data: \
             give the extent file it names instead (\"flat-flat.vmdk\")\n"
        );
    }
    assert!(!dir.join("out").exists());
}

/// An OVA whose OVF references two disks (made from cloudimg's own OVA
/// with GNU tar, its manifest's digests recomputed with `sha256sum`) is
/// not packaged from one of them: `package` and `check` refuse it in one
/// line naming the second disk, `verify` calls it defective, nothing is
/// written.
#[test]
fn ova_with_two_disks_is_refused() {
    if !require_tool("sgdisk") || !require_tool("tar") || !require_tool("sha256sum") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    gpt_disk(d);
    ok(cloudimg(&["package", "disk.raw", "--ova", "-o", "one"], d));
    let x = d.join("x");
    fs::create_dir(&x).unwrap();
    run(Command::new("tar")
        .arg("-xf")
        .arg(d.join("one/capos.ova"))
        .current_dir(&x));
    fs::copy(x.join("capos-disk1.vmdk"), x.join("capos-disk2.vmdk")).unwrap();
    let ovf = fs::read_to_string(x.join("capos.ovf")).unwrap();
    let twice = |text: &str, start: &str, from: &str, to: &str| -> String {
        let at = text.find(start).unwrap();
        let end = at + text[at..].find('\n').unwrap() + 1;
        let line = text[at..end].replace(from, to).replace("file1", "file2");
        format!("{}{}{}", &text[..end], line, &text[end..])
    };
    let ovf = twice(&ovf, "<File ", "disk1", "disk2");
    let ovf = twice(&ovf, "<Disk ", "vmdisk1", "vmdisk2");
    assert_eq!(ovf.matches("<Disk ").count(), 2, "{ovf}");
    fs::write(x.join("capos.ovf"), ovf).unwrap();
    let mut mf = String::new();
    for f in ["capos.ovf", "capos-disk1.vmdk", "capos-disk2.vmdk"] {
        mf += &format!("SHA256({f})= {}\n", sha256(&x.join(f)));
    }
    fs::write(x.join("capos.mf"), mf).unwrap();
    run(Command::new("tar")
        .args(["--format=ustar", "-cf", "../two.ova"])
        .args([
            "capos.ovf",
            "capos-disk1.vmdk",
            "capos-disk2.vmdk",
            "capos.mf",
        ])
        .current_dir(&x));
    let before = sha256(&d.join("two.ova"));
    for (args, code) in [
        (&["package", "two.ova", "--gcp", "-o", "out"][..], 2),
        (&["check", "two.ova"][..], 2),
        (&["verify", "two.ova"][..], 1),
    ] {
        let out = cloudimg(args, d);
        let text = String::from_utf8_lossy(if code == 2 { &out.stderr } else { &out.stdout });
        assert_eq!(out.status.code(), Some(code), "{args:?}: {text}");
        assert!(
            text.contains("capos.ovf: 2 disks: cloudimg reads an OVA of one disk"),
            "{args:?}: {text}"
        );
        if code == 2 {
            assert_eq!(text.lines().count(), 1, "{args:?}: {text}");
        }
    }
    assert!(!d.join("out").exists());
    assert_eq!(sha256(&d.join("two.ova")), before);
}
