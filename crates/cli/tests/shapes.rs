//! End to end, at the command line: the shapes added with issue 7 (Azure
//! VHD, QCOW2, VHDX, OVA) and packaging from any input format, each
//! checked by tools we did not write: `qemu-img` (check, compare, info,
//! convert), GNU tar, Python's tarfile and XML parser, `sha256sum`,
//! `truncate` + `sgdisk -e` / `sgdisk -v`; and by `cloudimg verify`,
//! `inspect` and `check`. Also: the new shapes are reproducible whatever
//! the threads, a corrupted one is caught and removed, and input that is
//! no disk is refused. Inputs are the demo image `cloudimg image build`
//! makes and small GPT images made by sgdisk.

mod common;

use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{cloudimg, ok, require_grub, require_tool, run, Rng};

const MIB: u64 = 1 << 20;

fn oracles() -> bool {
    [
        "qemu-img",
        "sgdisk",
        "tar",
        "python3",
        "sha256sum",
        "cmp",
        "truncate",
    ]
    .iter()
    .all(|t| require_tool(t))
}

/// The demo image (`cloudimg image build`) as `dir/name`.
fn demo(dir: &Path, name: &str) -> PathBuf {
    ok(cloudimg(&["image", "build", "-o", name], dir));
    dir.join(name)
}

/// A sparse GPT disk of `size` bytes (any multiple of 512) made by
/// sgdisk: BIOS boot, ESP and Linux partitions, GUIDs fixed, seeded
/// random data in each.
fn gpt_image(dir: &Path, name: &str, size: u64, seed: u64) -> PathBuf {
    let p = dir.join(name);
    File::create(&p).unwrap().set_len(size).unwrap();
    run(Command::new("sgdisk")
        .args(["-U", "21111111-2222-4333-8444-555555555555"])
        .args(["-n", "1:2048:+1M", "-t", "1:ef02", "-c", "1:bios"])
        .args(["-u", "1:A2111111-2222-4333-8444-555555555555"])
        .args(["-n", "2:0:+8M", "-t", "2:ef00", "-c", "2:esp"])
        .args(["-u", "2:B2111111-2222-4333-8444-555555555555"])
        .args(["-n", "3:0:0", "-t", "3:8300", "-c", "3:root"])
        .args(["-u", "3:C2111111-2222-4333-8444-555555555555"])
        .arg(&p));
    let f = fs::OpenOptions::new().write(true).open(&p).unwrap();
    let mut rng = Rng::new(seed);
    let mut buf = vec![0u8; 200_000];
    for off in [MIB, 3 * MIB + 512, 11 * MIB, size - 40 * 512 - 200_000] {
        rng.fill(&mut buf);
        f.write_all_at(&buf, off).unwrap();
    }
    // Compressible text too.
    let text: Vec<u8> = b"capos kernel starting\n"
        .iter()
        .cycle()
        .take(300_000)
        .copied()
        .collect();
    f.write_all_at(&text, 6 * MIB).unwrap();
    p
}

/// What `truncate -s SIZE` + `sgdisk -e` make of a sparse copy of `input`.
fn stock_grown(input: &Path, out: &Path, size: u64) {
    run(Command::new("cp")
        .args(["--sparse=always"])
        .arg(input)
        .arg(out));
    run(Command::new("truncate")
        .args(["-s", &size.to_string()])
        .arg(out));
    run(Command::new("sgdisk").arg("-e").arg(out));
}

fn qemu_img(args: &[&str], files: &[&Path]) -> String {
    run(Command::new("qemu-img").args(args).args(files))
}

/// `qemu-img compare` says the two disks hold the same bytes.
fn same_disk(raw: &Path, fmt: &str, image: &Path) {
    let out = qemu_img(&["compare", "-f", "raw", "-F", fmt], &[raw, image]);
    assert_eq!(out.trim(), "Images are identical.", "{image:?}");
}

/// `qemu-img info`'s virtual size of `image` read as `fmt`.
fn virtual_size(fmt: &str, image: &Path) -> u64 {
    let info: serde_json::Value =
        serde_json::from_str(&qemu_img(&["info", "--output=json", "-f", fmt], &[image])).unwrap();
    info["virtual-size"].as_u64().unwrap()
}

/// Python over a sparse file: its holes (found with SEEK_DATA/SEEK_HOLE)
/// read as zeros without reading them, which keeps the 1 GiB disks fast.
/// `sha256 FILE` prints its SHA-256 (hashlib); `cmp A B` checks the sizes
/// are equal and every byte in the union of both files' data segments is
/// (outside it both are holes), and prints `identical`.
const SPARSE_PY: &str = r#"
import hashlib, os, sys

def segments(fd, size):
    out, off = [], 0
    while off < size:
        try:
            d = os.lseek(fd, off, os.SEEK_DATA)
        except OSError:
            break
        h = os.lseek(fd, d, os.SEEK_HOLE)
        out.append((d, h))
        off = h
    return out

mode, paths = sys.argv[1], sys.argv[2:]
fds = [os.open(p, os.O_RDONLY) for p in paths]
size = os.fstat(fds[0]).st_size
if mode == "sha256":
    h, zero, pos = hashlib.sha256(), bytes(1 << 20), 0
    for d, e in segments(fds[0], size) + [(size, size)]:
        while pos < d:
            n = min(d - pos, len(zero))
            h.update(zero[:n])
            pos += n
        while pos < e:
            b = os.pread(fds[0], min(e - pos, 1 << 20), pos)
            assert b, "short read"
            h.update(b)
            pos += len(b)
    print(h.hexdigest())
else:
    sizes = [os.fstat(fd).st_size for fd in fds]
    assert sizes[0] == sizes[1], f"sizes differ: {sizes}"
    merged = []
    for a, b in sorted(s for fd in fds for s in segments(fd, size)):
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    for a, b in merged:
        for pos in range(a, b, 1 << 20):
            n = min(b - pos, 1 << 20)
            x, y = (os.pread(fd, n, pos) for fd in fds)
            assert len(x) == n and x == y, f"{paths} differ in bytes {pos}..{pos + n}"
    print("identical")
"#;

/// SHA-256 of a (sparse) file, by Python's hashlib.
fn sha256(path: &Path) -> String {
    run(Command::new("python3")
        .args(["-c", SPARSE_PY, "sha256"])
        .arg(path))
    .trim()
    .to_string()
}

/// Two (sparse) files hold the same bytes.
fn sparse_cmp(a: &Path, b: &Path) {
    let out = run(Command::new("python3")
        .args(["-c", SPARSE_PY, "cmp"])
        .arg(a)
        .arg(b));
    assert_eq!(out.trim(), "identical");
}

/// SHA-256 of a file, by `sha256sum`.
fn sha256sum(path: &Path) -> String {
    run(Command::new("sha256sum").arg(path))
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

fn manifest(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&fs::read(dir.join("manifest.json")).unwrap()).unwrap()
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
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

/// Every new shape of `input` in `out` (made by `package --all`), checked
/// by the oracles. `scratch` is an empty directory for extracted files.
fn check_new_shapes(input: &Path, out: &Path, scratch: &Path) {
    let size = fs::metadata(input).unwrap().len();
    let azure_size = size.div_ceil(MIB) * MIB;
    let qcow2 = out.join("capos.qcow2");
    let vhdx = out.join("capos.vhdx");
    let azure = out.join("capos-azure.vhd");
    let ova = out.join("capos.ova");

    // QCOW2 and VHDX: qemu-img finds no error and reads the input.
    for (fmt, image) in [("qcow2", &qcow2), ("vhdx", &vhdx)] {
        let c = qemu_img(&["check", "-f", fmt], &[image]);
        assert!(c.contains("No errors were found on the image."), "{c}");
        same_disk(input, fmt, image);
        assert_eq!(virtual_size(fmt, image), size, "{image:?}");
    }
    let info: serde_json::Value = serde_json::from_str(&qemu_img(
        &["info", "--output=json", "-f", "qcow2"],
        &[&qcow2],
    ))
    .unwrap();
    assert_eq!(info["format-specific"]["data"]["compat"], "1.1", "v3");

    // Azure: a fixed VHD (disk + 512-byte footer) of the disk grown to the
    // MiB; its data is the input, or what truncate + sgdisk -e make.
    let expected = if azure_size == size {
        input.to_path_buf()
    } else {
        let e = scratch.join("azure-expected.raw");
        stock_grown(input, &e, azure_size);
        e
    };
    same_disk(&expected, "vpc", &azure);
    assert_eq!(virtual_size("vpc", &azure), azure_size);
    assert_eq!(fs::metadata(&azure).unwrap().len(), azure_size + 512);
    let decoded = scratch.join("azure-decoded.raw");
    run(Command::new("qemu-img")
        .args(["convert", "-f", "vpc", "-O", "raw"])
        .arg(&azure)
        .arg(&decoded));
    run(Command::new("cmp").arg(&expected).arg(&decoded));
    let v = run(Command::new("sgdisk").arg("-v").arg(&decoded));
    assert!(v.contains("No problems found."), "{v}");

    // OVA: GNU tar lists the members in order; their SHA-256 match the
    // manifest; the VMDK is the input for qemu-img; Python sees ustar
    // headers and the same members; the OVF parses and names the VMDK.
    let listing = run(Command::new("tar").arg("-tf").arg(&ova));
    assert_eq!(
        listing.lines().collect::<Vec<_>>(),
        ["capos.ovf", "capos-disk1.vmdk", "capos.mf"]
    );
    let x = scratch.join("ova");
    fs::create_dir(&x).unwrap();
    run(Command::new("tar").arg("-xf").arg(&ova).arg("-C").arg(&x));
    let mf = fs::read_to_string(x.join("capos.mf")).unwrap();
    let mut want = Vec::new();
    for member in ["capos.ovf", "capos-disk1.vmdk"] {
        want.push(format!("SHA256({member})= {}", sha256sum(&x.join(member))));
    }
    assert_eq!(mf.lines().collect::<Vec<_>>(), want, "{mf}");
    let vmdk = x.join("capos-disk1.vmdk");
    let c = qemu_img(&["check", "-f", "vmdk"], &[&vmdk]);
    assert!(c.contains("No errors were found on the image."), "{c}");
    same_disk(input, "vmdk", &vmdk);
    let info: serde_json::Value = serde_json::from_str(&qemu_img(
        &["info", "--output=json", "-f", "vmdk"],
        &[&vmdk],
    ))
    .unwrap();
    assert_eq!(info["virtual-size"], size);
    assert_eq!(
        info["format-specific"]["data"]["create-type"],
        "streamOptimized"
    );
    let py = run(Command::new("python3")
        .arg("-c")
        .arg(
            "import sys, tarfile, xml.etree.ElementTree as ET\n\
             path = sys.argv[1]\n\
             t = tarfile.open(path)\n\
             raw = open(path, 'rb')\n\
             for m in t.getmembers():\n\
             \x20   raw.seek(m.offset)\n\
             \x20   h = raw.read(512)\n\
             \x20   assert h[257:265] == b'ustar\\x0000', (m.name, h[257:265])\n\
             \x20   assert m.isreg(), m.name\n\
             \x20   print(m.name, m.size)\n\
             ovf = ET.fromstring(t.extractfile('capos.ovf').read())\n\
             ns = {'o': 'http://schemas.dmtf.org/ovf/envelope/1'}\n\
             a = '{http://schemas.dmtf.org/ovf/envelope/1}'\n\
             f = ovf.find('o:References/o:File', ns)\n\
             d = ovf.find('o:DiskSection/o:Disk', ns)\n\
             print(f.get(a + 'href'), f.get(a + 'size'), d.get(a + 'capacity'))\n",
        )
        .arg(&ova));
    let vmdk_len = fs::metadata(&vmdk).unwrap().len();
    let ovf_len = fs::metadata(x.join("capos.ovf")).unwrap().len();
    assert_eq!(
        py.lines().collect::<Vec<_>>(),
        [
            format!("capos.ovf {ovf_len}"),
            format!("capos-disk1.vmdk {vmdk_len}"),
            format!("capos.mf {}", mf.len()),
            format!("capos-disk1.vmdk {vmdk_len} {size}"),
        ]
    );

    // The manifest matches the files and the disks they hold.
    let m = manifest(out);
    let input_sha = sha256(input);
    let expected_sha = if azure_size == size {
        input_sha.clone()
    } else {
        sha256(&expected)
    };
    let arts = m["artifacts"].as_array().unwrap();
    let files: Vec<_> = arts.iter().map(|a| a["file"].as_str().unwrap()).collect();
    assert_eq!(
        files,
        [
            "capos-aws.raw",
            "capos-aws.vhd",
            "capos-aws.vmdk",
            "disk.raw.tar.gz",
            "capos-azure.vhd",
            "capos.qcow2",
            "capos.vhdx",
            "capos.ova"
        ]
    );
    for a in arts {
        let f = out.join(a["file"].as_str().unwrap());
        assert_eq!(a["sha256"], sha256(&f), "{f:?}");
        assert_eq!(a["size_bytes"], fs::metadata(&f).unwrap().len(), "{f:?}");
        match a["file"].as_str().unwrap() {
            "disk.raw.tar.gz" => {}
            "capos-azure.vhd" => {
                assert_eq!(a["virtual_size_bytes"], azure_size);
                assert_eq!(a["virtual_sha256"], expected_sha);
            }
            _ => {
                assert_eq!(a["virtual_size_bytes"], size, "{f:?}");
                assert_eq!(a["virtual_sha256"], input_sha, "{f:?}");
            }
        }
    }
    let mut names = files.clone();
    names.push("manifest.json");
    names.push("SHA256SUMS");
    names.sort();
    assert_eq!(entries(out), names, "nothing else is left");
}

#[test]
fn every_new_shape_of_the_demo_image_passes_the_oracles() {
    if !(oracles() && require_grub()) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let img = demo(d, "capos-image.raw");
    assert_eq!(fs::metadata(&img).unwrap().len() % MIB, 0);
    ok(cloudimg(
        &["package", "capos-image.raw", "--all", "-o", "out"],
        d,
    ));
    let scratch = d.join("scratch");
    fs::create_dir(&scratch).unwrap();
    check_new_shapes(&img, &d.join("out"), &scratch);
    // A whole MiB already: the Azure VHD is the input and a footer, and so
    // is byte for byte the AWS VHD.
    run(Command::new("cmp")
        .arg(d.join("out/capos-azure.vhd"))
        .arg(d.join("out/capos-aws.vhd")));

    // --compress-qcow2: qemu-img finds compressed clusters, no error, and
    // the input.
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
    let z = d.join("deflated/capos.qcow2");
    let c = qemu_img(&["check", "-f", "qcow2"], &[&z]);
    assert!(c.contains("No errors were found on the image."), "{c}");
    assert!(compressed_share(&c) > 50.0, "{c}");
    same_disk(&img, "qcow2", &z);
    assert_eq!(virtual_size("qcow2", &z), fs::metadata(&img).unwrap().len());
    assert!(
        fs::metadata(&z).unwrap().len() < fs::metadata(d.join("out/capos.qcow2")).unwrap().len()
    );
    assert_eq!(
        entries(&d.join("deflated")),
        ["SHA256SUMS", "capos.qcow2", "manifest.json"]
    );
}

#[test]
fn every_new_shape_of_a_gpt_image_not_a_whole_mib_passes_the_oracles() {
    if !oracles() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let img = gpt_image(d, "disk.img", 40 * MIB + 3 * 512, 7);
    ok(cloudimg(&["package", "disk.img", "--all", "-o", "out"], d));
    let scratch = d.join("scratch");
    fs::create_dir(&scratch).unwrap();
    check_new_shapes(&img, &d.join("out"), &scratch);

    // Deflated: the random clusters do not shrink and are stored as they
    // are, the text clusters are compressed; qemu-img reads them all.
    ok(cloudimg(
        &[
            "package",
            "disk.img",
            "--qcow2",
            "--compress-qcow2",
            "-o",
            "deflated",
        ],
        d,
    ));
    let z = d.join("deflated/capos.qcow2");
    let c = qemu_img(&["check", "-f", "qcow2"], &[&z]);
    assert!(c.contains("No errors were found on the image."), "{c}");
    let share = compressed_share(&c);
    assert!(share > 0.0 && share < 100.0, "{c}");
    same_disk(&img, "qcow2", &z);
}

/// The share of compressed clusters `qemu-img check` reports, in percent.
fn compressed_share(check: &str) -> f64 {
    check
        .lines()
        .flat_map(|l| l.split(", "))
        .find_map(|p| p.strip_suffix("% compressed clusters"))
        .unwrap_or_else(|| panic!("{check}"))
        .parse()
        .unwrap()
}

/// The Azure shape grows the disk as `truncate` + `sgdisk -e` do (the same
/// proof as GCP's whole GiB in tests/package.rs), to the next MiB.
#[test]
fn azure_grows_to_the_next_mib_like_truncate_and_sgdisk_e() {
    if !oracles() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let size = 64 * MIB + 512;
    let img = gpt_image(d, "odd.img", size, 8);
    let before = sha256(&img);
    ok(cloudimg(&["package", "odd.img", "--azure", "-o", "az"], d));
    assert_eq!(sha256(&img), before, "input untouched");
    assert_eq!(
        entries(&d.join("az")),
        ["SHA256SUMS", "capos-azure.vhd", "manifest.json"]
    );
    let vhd = d.join("az/capos-azure.vhd");
    let grown = 65 * MIB;
    let expected = d.join("expected.raw");
    stock_grown(&img, &expected, grown);

    // The fixed VHD's data is the grown disk, byte for byte.
    assert_eq!(fs::metadata(&vhd).unwrap().len(), grown + 512);
    let data = d.join("data.raw");
    run(Command::new("head")
        .args(["-c", &grown.to_string()])
        .arg(&vhd)
        .stdout(File::create(&data).unwrap()));
    run(Command::new("cmp").arg(&expected).arg(&data));
    let v = run(Command::new("sgdisk").arg("-v").arg(&data));
    assert!(v.contains("No problems found."), "{v}");
    same_disk(&expected, "vpc", &vhd);
    assert_eq!(virtual_size("vpc", &vhd), grown);

    // The footer: cookie, fixed disk type, original and current size.
    let mut footer = [0u8; 512];
    File::open(&vhd)
        .unwrap()
        .read_exact_at(&mut footer, grown)
        .unwrap();
    let be64 = |at: usize| u64::from_be_bytes(footer[at..at + 8].try_into().unwrap());
    assert_eq!(&footer[..8], b"conectix");
    assert_eq!(be64(40), grown, "original size");
    assert_eq!(be64(48), grown, "current size");
    assert_eq!(u32::from_be_bytes(footer[60..64].try_into().unwrap()), 2);
    // The checksum: ones' complement of the sum of the other bytes.
    let sum = footer
        .iter()
        .enumerate()
        .filter(|(i, _)| !(64..68).contains(i))
        .fold(0u32, |s, (_, b)| s.wrapping_add(u32::from(*b)));
    assert_eq!(u32::from_be_bytes(footer[64..68].try_into().unwrap()), !sum);

    let m = manifest(&d.join("az"));
    assert_eq!(m["source"]["size_bytes"], size);
    assert_eq!(m["artifacts"][0]["virtual_size_bytes"], grown);
    assert_eq!(m["artifacts"][0]["virtual_sha256"], sha256(&expected));
    // `cloudimg verify` agrees: the grown disk's GPT is sound.
    let out = cloudimg(&["verify", "--json", "az/capos-azure.vhd"], d);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let v = &json(&out)["results"];
    assert_eq!(v[0]["findings"], serde_json::json!([]), "{v:#}");
    assert_eq!(v[0]["virtual_size_bytes"], grown);
}

const DEFAULT_SHAPES: [&str; 4] = [
    "capos-aws.raw",
    "capos-aws.vhd",
    "capos-aws.vmdk",
    "disk.raw.tar.gz",
];

/// `package INPUT --gcp --aws -o OUT` in `dir`; its manifest without the
/// input's file name (the one thing that may differ between inputs).
fn package_default(dir: &Path, input: &str, out: &str) -> serde_json::Value {
    ok(cloudimg(
        &["package", input, "--gcp", "--aws", "-o", out],
        dir,
    ));
    let mut m = manifest(&dir.join(out));
    m["source"]["file"] = serde_json::Value::Null;
    m
}

/// The two output directories' artifacts are identical, by `cmp` (by
/// [`sparse_cmp`] when `sparse`, for the 1 GiB disks).
fn same_outputs(dir: &Path, a: &str, b: &str, sparse: bool) {
    assert_eq!(entries(&dir.join(b)), entries(&dir.join(a)), "{a} {b}");
    for f in DEFAULT_SHAPES {
        let (x, y) = (dir.join(a).join(f), dir.join(b).join(f));
        if sparse {
            sparse_cmp(&x, &y);
        } else {
            run(Command::new("cmp").arg(x).arg(y));
        }
    }
}

/// Disks qemu-img made in other formats package the same as the raw
/// image: the artifacts and the manifest (digests, sizes) are byte for
/// byte those of the raw input (the seed of the identifiers derives from
/// the disk's content, not its container).
#[test]
fn any_input_format_packages_to_the_same_bytes() {
    if !(oracles() && require_grub()) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let img = demo(d, "capos-image.raw");
    let reference = package_default(d, "capos-image.raw", "ref");
    // A dynamic VHD needs force_size: without it qemu-img rounds the disk
    // up to a CHS geometry (268886016 bytes for this 256 MiB image) and
    // records that size in the footer, so it is another disk.
    let conversions: [(&str, &[&str]); 7] = [
        ("in.vmdk", &["-O", "vmdk"]),
        (
            "in-stream.vmdk",
            &["-O", "vmdk", "-o", "subformat=streamOptimized"],
        ),
        ("in.qcow2", &["-O", "qcow2"]),
        ("in-c.qcow2", &["-O", "qcow2", "-c"]),
        ("in.vhdx", &["-O", "vhdx"]),
        ("in-fixed.vhdx", &["-O", "vhdx", "-o", "subformat=fixed"]),
        (
            "in.vhd",
            &["-O", "vpc", "-o", "subformat=dynamic,force_size=on"],
        ),
    ];
    for (name, args) in conversions {
        run(Command::new("qemu-img")
            .args(["convert", "-f", "raw"])
            .args(args)
            .arg(&img)
            .arg(d.join(name)));
        same_disk(&img, qemu_format(name), &d.join(name));
        let out = format!("out-{name}");
        assert_eq!(package_default(d, name, &out), reference, "{name}");
        same_outputs(d, "ref", &out, false);
    }

    // Containers made by GNU tar: GCP's documented recipe (oldgnu, sparse,
    // gzip) of the image as it is, and an OVA (ustar) of an OVF and the
    // stream-optimized VMDK qemu-img made.
    let gtar = d.join("gtar");
    fs::create_dir(&gtar).unwrap();
    run(Command::new("cp")
        .arg("--sparse=always")
        .arg(&img)
        .arg(gtar.join("disk.raw")));
    run(Command::new("tar")
        .args(["--format=oldgnu", "-Sczf", "disk.raw.tar.gz", "disk.raw"])
        .current_dir(&gtar));
    fs::copy(d.join("in-stream.vmdk"), gtar.join("x-disk1.vmdk")).unwrap();
    fs::write(
        gtar.join("x.ovf"),
        "<?xml version=\"1.0\"?>\n<Envelope xmlns=\"http://schemas.dmtf.org/ovf/envelope/1\" \
         xmlns:ovf=\"http://schemas.dmtf.org/ovf/envelope/1\"><References>\
         <File ovf:href=\"x-disk1.vmdk\" ovf:id=\"file1\"/></References></Envelope>\n",
    )
    .unwrap();
    run(Command::new("tar")
        .args(["--format=ustar", "-cf", "x.ova", "x.ovf", "x-disk1.vmdk"])
        .current_dir(&gtar));
    for (name, out) in [
        ("gtar/disk.raw.tar.gz", "out-gtar"),
        ("gtar/x.ova", "out-gtar-ova"),
    ] {
        assert_eq!(package_default(d, name, out), reference, "{name}");
        same_outputs(d, "ref", out, false);
    }
}

/// cloudimg's own containers as input: its OVA holds the input as it is;
/// its GCP tarball holds the disk grown to 1 GiB, so packaging it is
/// packaging that disk as GNU tar extracts it.
#[test]
fn own_ova_and_gcp_tarball_package_as_the_disks_they_hold() {
    if !(oracles() && require_grub()) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    demo(d, "capos-image.raw");
    ok(cloudimg(
        &["package", "capos-image.raw", "--all", "-o", "made"],
        d,
    ));
    let reference = package_default(d, "capos-image.raw", "ref");
    assert_eq!(package_default(d, "made/capos.ova", "out-ova"), reference);
    same_outputs(d, "ref", "out-ova", false);

    run(Command::new("tar")
        .arg("-xSf")
        .arg(d.join("made/disk.raw.tar.gz"))
        .arg("-C")
        .arg(d));
    let from_tar = package_default(d, "made/disk.raw.tar.gz", "out-tar");
    assert_eq!(from_tar, package_default(d, "disk.raw", "out-extracted"));
    same_outputs(d, "out-extracted", "out-tar", true);
    // Every shape of the tarball holds the tarball's disk, which is the
    // GCP shape's disk of the raw image (already a whole GiB: not grown
    // again).
    let grown_sha = sha256(&d.join("disk.raw"));
    assert_eq!(from_tar["source"]["sha256"], grown_sha);
    assert_eq!(from_tar["source"]["size_bytes"], 1u64 << 30);
    for a in from_tar["artifacts"].as_array().unwrap() {
        assert_eq!(a["virtual_sha256"], grown_sha, "{a}");
    }
    let gcp = reference["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["file"] == "disk.raw.tar.gz")
        .unwrap();
    assert_eq!(gcp["virtual_sha256"], grown_sha);
}

fn qemu_format(name: &str) -> &'static str {
    match name.rsplit('.').next() {
        Some("vmdk") => "vmdk",
        Some("qcow2") => "qcow2",
        Some("vhdx") => "vhdx",
        Some("vhd") => "vpc",
        _ => "raw",
    }
}

/// `verify`, `inspect` and `check` read every new shape.
#[test]
fn verify_inspect_and_check_read_every_new_shape() {
    if !(oracles() && require_grub()) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    demo(d, "capos-image.raw");
    ok(cloudimg(
        &["package", "capos-image.raw", "--all", "-o", "out"],
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
    let m = manifest(&d.join("out"));
    let source_sha = m["source"]["sha256"].clone();
    // The whole manifest re-checks: 8 artifacts, each sound.
    let out = cloudimg(&["verify", "--json", "--manifest", "out/manifest.json"], d);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let v = json(&out);
    assert_eq!(v["schema"], "cloudimg.verify/1", "{v:#}");
    assert_eq!(v["ok"], true, "{v:#}");
    let reports = v["results"].as_array().unwrap();
    assert_eq!(reports.len(), 8, "{v:#}");
    assert!(reports.iter().all(|r| r["ok"] == true), "{v:#}");
    let raw = json(&cloudimg(&["inspect", "--json", "capos-image.raw"], d));
    let table = &raw["partition_table"];
    assert_eq!(table["kind"], "gpt", "{raw:#}");
    assert_eq!(table["partitions"].as_array().unwrap().len(), 2, "{raw:#}");

    for (file, format) in [
        ("out/capos-azure.vhd", "vhd-fixed"),
        ("out/capos.qcow2", "qcow2"),
        ("deflated/capos.qcow2", "qcow2"),
        ("out/capos.vhdx", "vhdx"),
        ("out/capos.ova", "ova"),
    ] {
        let out = cloudimg(&["verify", "--json", file], d);
        assert_eq!(out.status.code(), Some(0), "{file}: {out:?}");
        let v = &json(&out)["results"];
        assert_eq!(v[0]["ok"], true, "{file}: {v:#}");
        assert_eq!(v[0]["format"], format, "{file}: {v:#}");
        assert_eq!(v[0]["findings"], serde_json::json!([]), "{file}: {v:#}");
        assert_eq!(v[0]["virtual_sha256"], source_sha, "{file}: {v:#}");

        let out = cloudimg(&["inspect", "--json", file], d);
        assert_eq!(out.status.code(), Some(0), "{file}: {out:?}");
        let i = json(&out);
        assert_eq!(i["format"], format, "{file}: {i:#}");
        assert_eq!(i["virtual_size_bytes"], raw["virtual_size_bytes"], "{file}");
        assert_eq!(&i["partition_table"], table, "{file}: {i:#}");

        let out = cloudimg(&["check", "--json", file], d);
        assert_eq!(out.status.code(), Some(0), "{file}: {out:?}");
        let c = json(&out);
        assert_eq!(c["ready"], true, "{file}: {c:#}");
        let verdicts = c["verdicts"].as_array().unwrap();
        assert_eq!(verdicts.len(), 6, "{file}: {c:#}");
        assert!(verdicts.iter().all(|v| v["ready"] == true), "{file}: {c:#}");
        let text = ok(cloudimg(&["check", file], d));
        assert!(text.lines().any(|l| l == "azure-gen2  ready"), "{text}");
    }
}

/// Every new shape is the same bytes whatever the number of threads, and
/// from one run to the next.
#[test]
fn new_shapes_are_reproducible_whatever_the_threads() {
    if !oracles() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    gpt_image(d, "disk.img", 24 * MIB + 512, 10);
    for (out, jobs) in [("a", "1"), ("b", "2"), ("c", "2")] {
        ok(cloudimg(
            &["package", "disk.img", "--all", "-j", jobs, "-o", out],
            d,
        ));
        ok(cloudimg(
            &[
                "package",
                "disk.img",
                "--qcow2",
                "--compress-qcow2",
                "-j",
                jobs,
                "-o",
                &format!("{out}-deflated"),
            ],
            d,
        ));
    }
    for other in ["b", "c"] {
        for dir in ["", "-deflated"] {
            let (a, b) = (d.join(format!("a{dir}")), d.join(format!("{other}{dir}")));
            assert_eq!(entries(&a), entries(&b));
            for f in entries(&a) {
                run(Command::new("cmp").arg(a.join(&f)).arg(b.join(&f)));
            }
        }
    }
}

/// A new shape that does not decode back to the input (one byte flipped
/// by the test hook after writing) is reported and removed; the other
/// shapes are still made.
#[test]
fn failed_verification_removes_each_new_shape() {
    if !oracles() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    gpt_image(d, "disk.img", 24 * MIB + 512, 11);
    for victim in ["capos-azure.vhd", "capos.qcow2", "capos.vhdx", "capos.ova"] {
        let dir = d.join(format!("out-{victim}"));
        let out = Command::new(env!("CARGO_BIN_EXE_cloudimg"))
            .args(["package", "disk.img", "--all", "-q", "-o"])
            .arg(&dir)
            .current_dir(d)
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .env("CLOUDIMG_TEST_CORRUPT_AFTER_WRITE", victim)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{victim}: {err}");
        assert_eq!(err.lines().count(), 1, "{victim}: {err}");
        assert!(
            err.starts_with(&format!(
                "cloudimg: error: {}: ",
                dir.join(victim).display()
            )) && err.contains("verification failed")
                && !err
                    .split_once(&format!("{victim}: "))
                    .unwrap()
                    .1
                    .contains(victim),
            "{victim}: {err}"
        );
        let left = entries(&dir);
        assert!(!left.contains(&victim.to_string()), "{victim}: {left:?}");
        assert_eq!(
            left.len(),
            9,
            "the 7 other shapes, the manifest and SHA256SUMS: {left:?}"
        );
        let m = manifest(&dir);
        let files: Vec<_> = m["artifacts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["file"].as_str().unwrap())
            .collect();
        assert_eq!(files.len(), 7, "{files:?}");
        assert!(!files.contains(&victim), "{files:?}");
    }
}

/// A pax (POSIX) sparse tarball is not a GCP tarball (GCP wants oldgnu;
/// shared/reference/cloud-formats.md §1), so refusing it is right, but
/// the refusal should say so: GNU tar lists its member as disk.raw.
#[test]
fn pax_sparse_tarball_is_refused_saying_why() {
    if !oracles() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    gpt_image(d, "disk.raw", 24 * MIB, 12);
    run(Command::new("tar")
        .args(["--format=posix", "-Sczf", "posix.tar.gz", "disk.raw"])
        .current_dir(d));
    assert_eq!(
        run(Command::new("tar")
            .args(["-tf", "posix.tar.gz"])
            .current_dir(d)),
        "disk.raw\n"
    );
    let out = cloudimg(&["package", "posix.tar.gz", "-o", "out"], d);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.strip_prefix("cloudimg: error: posix.tar.gz: ")
            .is_some_and(|m| m.contains("pax")),
        "{err}"
    );
}

/// Input that is no disk cloudimg reads: one line naming the file, exit 2,
/// and nothing written.
#[test]
fn unreadable_inputs_are_refused_naming_the_file() {
    if !oracles() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    // A tar of a text file: neither an OVA nor a GCP tarball.
    fs::write(d.join("notes.txt"), "not a disk\n").unwrap();
    run(Command::new("tar")
        .args(["-cf", "notes.tar", "notes.txt"])
        .current_dir(d));
    // A VMDK text descriptor (its extent is a separate file).
    run(Command::new("qemu-img")
        .args([
            "create",
            "-q",
            "-f",
            "vmdk",
            "-o",
            "subformat=monolithicFlat",
        ])
        .arg(d.join("flat.vmdk"))
        .arg("16M"));
    assert!(d.join("flat-flat.vmdk").exists());
    // A QCOW2 cut short in its tables, and one cut short in its data.
    let img = gpt_image(d, "disk.img", 16 * MIB, 9);
    let qcow2 = d.join("full.qcow2");
    run(Command::new("qemu-img")
        .args(["convert", "-f", "raw", "-O", "qcow2"])
        .arg(&img)
        .arg(&qcow2));
    let full = fs::read(&qcow2).unwrap();
    fs::write(d.join("short-tables.qcow2"), &full[..70_000]).unwrap();
    fs::write(d.join("short-data.qcow2"), &full[..full.len() - 65536]).unwrap();
    // The last cluster in the file holds the disk's last (the backup GPT).
    let (last, at) = (16 * MIB / 65536 - 1, full.len() - 65536);
    // Where its L2 entry is: the L1 table's offset (header bytes 40..48),
    // its first entry (the L2 table's offset, flags masked), entry `last`.
    let be64 = |o: usize| u64::from_be_bytes(full[o..o + 8].try_into().unwrap());
    let l2_entry = (be64(be64(40) as usize) & 0x00ff_ffff_ffff_fe00) + 8 * last;

    for (input, message) in [
        (
            "notes.tar",
            "is a tar archive that is neither a GCP disk.raw.tar.gz nor an OVA".to_string(),
        ),
        (
            "flat.vmdk",
            "is a VMDK text descriptor without data: give the extent file it names instead (\"flat-flat.vmdk\")".to_string(),
        ),
        (
            "short-tables.qcow2",
            "L1 table of 1 entries at offset 0x30000 runs past the end of the 70000-byte file (at byte 40)".to_string(),
        ),
        (
            "short-data.qcow2",
            // Refused when opened: its verifier finds the entry pointing
            // past the end of the file.
            format!(
                "is a defective qcow2: at byte {l2_entry}: L2 entry {last} of table 0 points at {at:#x}, not a cluster inside the {at}-byte file",
            ),
        ),
    ] {
        for all in [false, true] {
            let out_dir = d.join(format!("out-{input}-{all}"));
            fs::create_dir(&out_dir).unwrap();
            let mut args = vec!["package", input, "-o", out_dir.to_str().unwrap()];
            if all {
                args.push("--all");
            }
            let out = cloudimg(&args, d);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{input}: {err}");
            assert_eq!(err, format!("cloudimg: error: {input}: {message}\n"));
            assert!(out.stdout.is_empty(), "{input}: {out:?}");
            assert!(entries(&out_dir).is_empty(), "{input}: {:?}", entries(&out_dir));
        }
    }
}

/// cloudimg's own containers cut short are refused the same way: one line
/// naming the file and what is missing, exit 2, nothing written.
#[test]
fn cut_short_containers_are_refused_naming_the_file() {
    if !oracles() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    gpt_image(d, "disk.img", 16 * MIB, 13);
    ok(cloudimg(
        &[
            "package", "disk.img", "--vhdx", "--ova", "--aws", "-o", "made",
        ],
        d,
    ));
    let cut = |file: &str, keep: fn(usize) -> usize, name: &str| {
        let bytes = fs::read(d.join("made").join(file)).unwrap();
        fs::write(d.join(name), &bytes[..keep(bytes.len())]).unwrap();
    };
    cut("capos.vhdx", |n| n / 2, "half.vhdx");
    cut("capos.ova", |n| n / 2, "half.ova");
    cut("capos-aws.vmdk", |n| n - 700, "short.vmdk");
    for (input, phrase) in [
        ("half.vhdx", "runs past the end of the"),
        ("half.ova", "truncated"),
        ("short.vmdk", "no footer marker"),
    ] {
        let out_dir = d.join(format!("out-{input}"));
        fs::create_dir(&out_dir).unwrap();
        let out = cloudimg(
            &["package", input, "--all", "-o", out_dir.to_str().unwrap()],
            d,
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{input}: {err}");
        assert_eq!(err.lines().count(), 1, "{input}: {err}");
        assert!(
            err.strip_prefix(&format!("cloudimg: error: {input}: "))
                .is_some_and(|m| m.contains(phrase)),
            "{input}: {err}"
        );
        assert!(
            entries(&out_dir).is_empty(),
            "{input}: {:?}",
            entries(&out_dir)
        );
    }
}
