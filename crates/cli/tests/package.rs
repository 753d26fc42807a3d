//! End to end: `cloudimg package` on images built here, every artifact
//! checked by tools we did not write (qemu-img, GNU tar, Python tarfile,
//! gzip, sgdisk) and by `cloudimg verify`.

mod common;

use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{cloudimg, ok, require_tool, run, sha256, Rng};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// A sparse GPT disk of `size` bytes with three partitions (BIOS boot,
/// ESP, Linux) and seeded random data in each, GUIDs fixed.
fn gpt_image(dir: &Path, name: &str, size: u64, seed: u64) -> PathBuf {
    let p = dir.join(name);
    File::create(&p).unwrap().set_len(size).unwrap();
    run(Command::new("sgdisk")
        .args(["-U", "11111111-2222-4333-8444-555555555555"])
        .args([
            "-n",
            "1:2048:+1M",
            "-t",
            "1:ef02",
            "-c",
            "1:bios",
            "-u",
            "1:A1111111-2222-4333-8444-555555555555",
        ])
        .args([
            "-n",
            "2:0:+8M",
            "-t",
            "2:ef00",
            "-c",
            "2:esp",
            "-u",
            "2:B1111111-2222-4333-8444-555555555555",
        ])
        .args([
            "-n",
            "3:0:0",
            "-t",
            "3:8300",
            "-c",
            "3:root",
            "-u",
            "3:C1111111-2222-4333-8444-555555555555",
        ])
        .arg(&p));
    let f = fs::OpenOptions::new().write(true).open(&p).unwrap();
    let mut rng = Rng::new(seed);
    let mut buf = vec![0u8; 300_000];
    for off in [
        MIB,
        2 * MIB + 4096,
        5 * MIB,
        11 * MIB + 512,
        size / 2 + 7 * 512,
    ] {
        if off + buf.len() as u64 <= size - 34 * 512 {
            rng.fill(&mut buf);
            f.write_all_at(&buf, off).unwrap();
        }
    }
    // Text-like, compressible data too.
    let text: Vec<u8> = b"capos kernel starting\n"
        .iter()
        .cycle()
        .take(200_000)
        .copied()
        .collect();
    f.write_all_at(&text, 3 * MIB).unwrap();
    p
}

/// What `truncate -s SIZE` + `sgdisk -e` make of a copy of `input`.
fn stock_grown(input: &Path, out: &Path, size: u64) {
    run(Command::new("cp")
        .args(["--sparse=always"])
        .arg(input)
        .arg(out));
    run(Command::new("truncate")
        .args(["-s", &size.to_string()])
        .arg(out));
    let has_gpt = {
        let mut b = [0u8; 8];
        File::open(input)
            .unwrap()
            .read_exact_at(&mut b, 512)
            .unwrap();
        &b == b"EFI PART"
    };
    if has_gpt {
        run(Command::new("sgdisk").arg("-e").arg(out));
    }
}

fn check_all(input: &Path, out_dir: &Path) {
    let size = fs::metadata(input).unwrap().len();
    let grown_size = size.div_ceil(GIB) * GIB;
    let aws_raw = out_dir.join("capos-aws.raw");
    let vhd = out_dir.join("capos-aws.vhd");
    let vmdk = out_dir.join("capos-aws.vmdk");
    let tgz = out_dir.join("disk.raw.tar.gz");

    // RAW: identical bytes, same size, no more allocated than the input.
    run(Command::new("cmp").arg(input).arg(&aws_raw));
    let blocks = |p: &Path| {
        run(Command::new("stat").args(["-c", "%b"]).arg(p))
            .trim()
            .parse::<u64>()
            .unwrap()
    };
    assert!(blocks(&aws_raw) <= blocks(input) + 8, "holes kept as holes");

    // VHD and VMDK: qemu-img reads the same disk.
    run(Command::new("qemu-img")
        .args(["compare", "-f", "raw", "-F", "vpc"])
        .arg(input)
        .arg(&vhd));
    run(Command::new("qemu-img")
        .args(["compare", "-f", "raw", "-F", "vmdk"])
        .arg(input)
        .arg(&vmdk));
    run(Command::new("qemu-img")
        .args(["check", "-f", "vmdk"])
        .arg(&vmdk));
    let info: serde_json::Value = serde_json::from_str(&run(Command::new("qemu-img")
        .args(["info", "--output=json", "-f", "vpc"])
        .arg(&vhd)))
    .unwrap();
    assert_eq!(info["virtual-size"], size);
    let info: serde_json::Value = serde_json::from_str(&run(Command::new("qemu-img")
        .args(["info", "--output=json", "-f", "vmdk"])
        .arg(&vmdk)))
    .unwrap();
    assert_eq!(info["virtual-size"], size);
    assert_eq!(
        info["format-specific"]["data"]["create-type"],
        "streamOptimized"
    );
    assert_eq!(fs::metadata(&vhd).unwrap().len(), size + 512);
    let mut cookie = [0u8; 8];
    File::open(&vhd)
        .unwrap()
        .read_exact_at(&mut cookie, size)
        .unwrap();
    assert_eq!(&cookie, b"conectix");

    // GCP: gzip -t, GNU tar lists exactly disk.raw at the grown size, and
    // extracts (sparse) to what truncate + sgdisk -e make.
    run(Command::new("gzip").arg("-t").arg(&tgz));
    let listing = run(Command::new("tar").args(["-tvf"]).arg(&tgz));
    assert_eq!(listing.lines().count(), 1, "{listing}");
    assert!(listing.trim_end().ends_with(" disk.raw"), "{listing}");
    assert!(listing.contains(&format!(" {grown_size} ")), "{listing}");
    let x = out_dir.join("x");
    fs::create_dir(&x).unwrap();
    run(Command::new("tar")
        .args(["-xSf"])
        .arg(&tgz)
        .arg("-C")
        .arg(&x));
    let expected = out_dir.join("expected.raw");
    stock_grown(input, &expected, grown_size);
    run(Command::new("cmp").arg(&expected).arg(x.join("disk.raw")));
    if fs::read(input).unwrap()[512..520] == *b"EFI PART" {
        run(Command::new("sgdisk").arg("-v").arg(x.join("disk.raw")));
    }
    // Python's tarfile reads the same member and content.
    let py = run(Command::new("python3")
        .arg("-c")
        .arg(
            "import tarfile,hashlib,sys\n\
         t=tarfile.open(sys.argv[1],'r:gz')\n\
         m=t.getmembers()\n\
         assert len(m)==1 and m[0].name=='disk.raw', m\n\
         h=hashlib.sha256()\n\
         f=t.extractfile(m[0])\n\
         while True:\n\
         \x20b=f.read(1<<20)\n\
         \x20if not b: break\n\
         \x20h.update(b)\n\
         print(m[0].size, h.hexdigest())",
        )
        .arg(&tgz));
    let expected_sha = sha256(&expected);
    assert_eq!(py.trim(), format!("{grown_size} {expected_sha}"));

    // The manifest matches the files.
    let m: serde_json::Value =
        serde_json::from_slice(&fs::read(out_dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m["source"]["size_bytes"], size);
    assert_eq!(m["source"]["sha256"], sha256(input));
    let arts = m["artifacts"].as_array().unwrap();
    assert_eq!(arts.len(), 4);
    for a in arts {
        let f = out_dir.join(a["file"].as_str().unwrap());
        assert_eq!(a["sha256"], sha256(&f), "{f:?}");
        assert_eq!(a["size_bytes"], fs::metadata(&f).unwrap().len());
        if a["provider"] == "gcp" {
            assert_eq!(a["virtual_size_bytes"], grown_size);
            assert_eq!(a["virtual_sha256"], expected_sha);
        } else {
            assert_eq!(a["virtual_size_bytes"], size);
            assert_eq!(a["virtual_sha256"], sha256(input));
        }
        // And `cloudimg verify` agrees, given the manifest's hash.
        let vs = a["virtual_sha256"].as_str().unwrap();
        ok(cloudimg(
            &["verify", "--expect-sha256", vs, f.to_str().unwrap()],
            out_dir,
        ));
    }
    // Nothing else is left in the directory.
    let mut names: Vec<_> = fs::read_dir(out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "x" && n != "expected.raw")
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "SHA256SUMS",
            "capos-aws.raw",
            "capos-aws.vhd",
            "capos-aws.vmdk",
            "disk.raw.tar.gz",
            "manifest.json"
        ]
    );
    // SHA256SUMS lists every artifact, as `sha256sum -c` reads it.
    let check = run(Command::new("sha256sum")
        .args(["-c", "--strict", "SHA256SUMS"])
        .current_dir(out_dir));
    assert_eq!(check.lines().count(), 4, "{check}");
    assert!(check.lines().all(|l| l.ends_with(": OK")), "{check}");
}

fn oracles() -> bool {
    ["qemu-img", "sgdisk", "tar", "gzip", "python3", "cmp"]
        .iter()
        .all(|t| require_tool(t))
}

#[test]
fn gpt_image_round_trips_through_every_shape() {
    if !oracles() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let img = gpt_image(t.path(), "disk.img", 48 * MIB, 1);
    let before = sha256(&img);
    ok(cloudimg(&["package", "disk.img", "-o", "out"], t.path()));
    assert_eq!(sha256(&img), before, "input untouched");
    check_all(&img, &t.path().join("out"));
}

#[test]
fn whole_gib_image_is_not_grown() {
    if !oracles() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let img = gpt_image(t.path(), "gib.img", GIB, 2);
    ok(cloudimg(&["package", "gib.img", "-o", "out"], t.path()));
    check_all(&img, &t.path().join("out"));
}

#[test]
fn mbr_only_and_all_zero_images() {
    if !oracles() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    // MBR-only: one partition entry, boot signature, random data.
    let mbr = t.path().join("mbr.img");
    let f = File::create(&mbr).unwrap();
    f.set_len(20 * MIB).unwrap();
    let mut sector = [0u8; 512];
    sector[446 + 4] = 0x83;
    sector[446 + 8..446 + 12].copy_from_slice(&2048u32.to_le_bytes());
    sector[446 + 12..446 + 16].copy_from_slice(&((20 * MIB / 512 - 2048) as u32).to_le_bytes());
    sector[510] = 0x55;
    sector[511] = 0xAA;
    f.write_all_at(&sector, 0).unwrap();
    let mut data = vec![0u8; 100_000];
    Rng::new(3).fill(&mut data);
    f.write_all_at(&data, MIB).unwrap();
    drop(f);
    ok(cloudimg(&["package", "mbr.img", "-o", "mbr"], t.path()));
    check_all(&mbr, &t.path().join("mbr"));

    let zero = t.path().join("zero.img");
    File::create(&zero).unwrap().set_len(4 * MIB).unwrap();
    ok(cloudimg(&["package", "zero.img", "-o", "zero"], t.path()));
    check_all(&zero, &t.path().join("zero"));
}

#[test]
fn packaging_twice_gives_identical_bytes() {
    if !oracles() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    gpt_image(t.path(), "disk.img", 40 * MIB, 4);
    ok(cloudimg(&["package", "disk.img", "-o", "a"], t.path()));
    ok(cloudimg(&["package", "disk.img", "-o", "b"], t.path()));
    for f in [
        "capos-aws.raw",
        "capos-aws.vhd",
        "capos-aws.vmdk",
        "disk.raw.tar.gz",
        "manifest.json",
        "SHA256SUMS",
    ] {
        run(Command::new("cmp")
            .arg(t.path().join("a").join(f))
            .arg(t.path().join("b").join(f)));
    }
}

#[test]
fn corrupt_gpt_is_refused_for_gcp_but_packaged_for_aws() {
    if !oracles() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let img = gpt_image(t.path(), "bad.img", 40 * MIB, 5);
    // Flip a byte of the first partition's name: the array CRC no longer
    // matches.
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&img)
        .unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, 1024 + 56).unwrap();
    f.write_all_at(&[b[0] ^ 0x20], 1024 + 56).unwrap();
    drop(f);

    let out = cloudimg(&["package", "bad.img", "--gcp", "-o", "gcp"], t.path());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("disk.raw.tar.gz") && err.contains("GPT") && err.contains("corrupt"),
        "{err}"
    );
    assert!(!t.path().join("gcp/disk.raw.tar.gz").exists());
    // Nothing made: no manifest listing nothing, no table.
    assert!(!t.path().join("gcp/manifest.json").exists());
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let out = cloudimg(&["package", "bad.img", "--aws", "-o", "aws"], t.path());
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    ok(out);
    assert!(
        err.contains("warning: bad.img: at byte 1024: primary partition array CRC mismatch"),
        "{err}"
    );
    run(Command::new("cmp")
        .arg(&img)
        .arg(t.path().join("aws/capos-aws.raw")));
    // `verify` still reports the disk's own defect.
    let v = cloudimg(&["verify", "aws/capos-aws.vmdk"], t.path());
    assert_eq!(v.status.code(), Some(1));
}

#[test]
fn failed_verification_removes_the_artifact() {
    if !oracles() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    gpt_image(t.path(), "disk.img", 40 * MIB, 6);
    for victim in ["capos-aws.vhd", "capos-aws.vmdk", "disk.raw.tar.gz"] {
        let dir = t.path().join(format!("out-{victim}"));
        let out = Command::new(env!("CARGO_BIN_EXE_cloudimg"))
            .args(["package", "disk.img", "-o"])
            .arg(&dir)
            .current_dir(t.path())
            .env("CLOUDIMG_TEST_CORRUPT_AFTER_WRITE", victim)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{victim}: {err}");
        assert!(
            err.contains(victim) && err.contains("verification failed"),
            "{victim}: {err}"
        );
        assert!(!dir.join(victim).exists(), "{victim} removed");
        let leftovers: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("partial"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}

/// An input that changes while it is being packaged (here the test hook
/// moves its modification time after every shape is written, as a write
/// would) commits nothing: exit 2, one line naming it, no artifact, no
/// manifest, no temporary file.
#[test]
fn an_input_changed_during_the_run_commits_nothing() {
    let t = tempfile::tempdir().unwrap();
    gpt_image(t.path(), "disk.img", 24 * MIB, 6);
    let out = Command::new(env!("CARGO_BIN_EXE_cloudimg"))
        .args(["package", "disk.img", "--all", "-q", "-o", "out"])
        .current_dir(t.path())
        .env("CLOUDIMG_TEST_TOUCH_INPUT", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("disk.img: changed while it was being packaged"),
        "{err}"
    );
    let left: Vec<_> = fs::read_dir(t.path().join("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn phase_trace_only_when_asked() {
    let t = tempfile::tempdir().unwrap();
    gpt_image(t.path(), "disk.img", 24 * MIB, 6);
    let run_with = |trace: Option<&str>, out: &str| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_cloudimg"));
        c.args(["package", "disk.img", "-q", "-o", out])
            .current_dir(t.path())
            .env_remove("CLOUDIMG_TRACE");
        if let Some(v) = trace {
            c.env("CLOUDIMG_TRACE", v);
        }
        let o = c.output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    assert_eq!(run_with(None, "a"), "");
    assert_eq!(run_with(Some("0"), "b"), "");
    let err = run_with(Some("1"), "c");
    for phase in [
        "input scanned, shapes planned",
        "input and grown disk hashed",
        "aws-raw written",
        "aws-vhd decoded back",
        "aws-vmdk decoded back",
        "gcp-tar-gz decoded back",
        "manifest written",
    ] {
        assert!(
            err.lines()
                .any(|l| l.starts_with("cloudimg: trace ") && l.ends_with(phase)),
            "no {phase:?} in:\n{err}"
        );
    }
}

/// The raw and fixed VHD artifacts are written and read back with direct
/// I/O where the filesystem offers it: after packaging, almost none of
/// their data is in the page cache (util-linux `fincore` counts the
/// resident pages), while the compressed artifacts, written through the
/// cache, are all there.
#[test]
fn raw_copies_bypass_the_page_cache() {
    if !require_tool("fincore") {
        return;
    }
    let t = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let fs = run(Command::new("stat").args(["-f", "-c", "%T"]).arg(t.path()));
    if fs.trim() == "tmpfs" {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI builds on a disk filesystem"
        );
        eprintln!("SKIP: {} is a tmpfs: no direct I/O", t.path().display());
        return;
    }
    let img = t.path().join("disk.img");
    let f = File::create(&img).unwrap();
    f.set_len(64 * MIB).unwrap();
    let mut data = vec![0u8; 40 * MIB as usize];
    Rng::new(8).fill(&mut data);
    f.write_all_at(&data, 8 * MIB).unwrap();
    drop(f);
    ok(cloudimg(
        &["package", "disk.img", "--aws", "-o", "out"],
        t.path(),
    ));
    let resident = |name: &str| -> u64 {
        let out = run(Command::new("fincore")
            .args(["--bytes", "--noheadings", "--output", "RES"])
            .arg(t.path().join("out").join(name)));
        out.trim().parse().unwrap()
    };
    for name in ["capos-aws.raw", "capos-aws.vhd"] {
        assert!(
            resident(name) < MIB,
            "{name}: {} bytes cached",
            resident(name)
        );
    }
    assert!(resident("capos-aws.vmdk") > 30 * MIB);
}

/// On a terminal (a pty made by util-linux `script`), a status line per
/// shape is drawn and redrawn in place, each cut to the terminal's width,
/// and erased before the summary; off a terminal, only the one summary
/// line.
#[test]
fn status_lines_on_a_terminal_and_one_summary_line_otherwise() {
    if !require_tool("script") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    gpt_image(t.path(), "disk.img", 24 * MIB, 7);
    let bin = env!("CARGO_BIN_EXE_cloudimg");
    // What the terminal received: script's own output (its typescript
    // file, with a header of its own, is not kept).
    let text = run(Command::new("script")
        .args(["-q", "-e", "-c"])
        .arg(format!("stty cols 20; {bin} package disk.img -o tty"))
        .arg("/dev/null")
        .current_dir(t.path()));
    // Frames: the lines between redraws (ESC [ 4 F goes back 4 lines).
    let frames: Vec<&str> = text.split("\x1b[4F").collect();
    assert!(frames.len() >= 2, "no redraw in {text:?}");
    let first: Vec<&str> = frames[0]
        .split("\x1b[K")
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(first.len(), 4, "a line per shape: {first:?}");
    // 20 columns: "disk.raw.tar.gz  waiting" (or "writing ...") is cut to
    // 19 characters.
    assert!(first[0].starts_with("capos-aws.raw "), "{first:?}");
    let cut = first[3].trim_end();
    assert!(
        cut.starts_with("disk.raw.tar.gz  w") && cut.chars().count() == 19,
        "{first:?}"
    );
    for frame in &frames[..frames.len() - 1] {
        for line in frame.split("\x1b[K").filter(|l| !l.is_empty()) {
            let shown = line.trim_end_matches(['\r', '\n']);
            assert!(
                shown.chars().count() < 20,
                "{shown:?} is wider than the terminal"
            );
        }
    }
    let last = frames.last().unwrap();
    assert!(last.starts_with("\x1b[J"), "the block is erased: {last:?}");
    assert!(
        last.contains("cloudimg: packaged 4 artifact(s)"),
        "{last:?}"
    );

    let out = cloudimg(&["package", "disk.img", "-o", "plain"], t.path());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(err.lines().count(), 1, "{err:?}");
    assert!(
        err.starts_with("cloudimg: packaged 4 artifact(s) from disk.img"),
        "{err}"
    );
    assert!(!err.contains('\x1b'), "{err:?}");
}

fn manifest_of(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&fs::read(dir.join("manifest.json")).unwrap()).unwrap()
}

fn manifest_files(m: &serde_json::Value) -> Vec<String> {
    m["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["file"].as_str().unwrap().to_string())
        .collect()
}

/// `out/NAME` for every entry of `out`, sorted: what the shell's
/// `out/*` gives.
fn glob(dir: &Path, out: &str) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir.join(out))
        .unwrap()
        .map(|e| format!("{out}/{}", e.unwrap().file_name().to_string_lossy()))
        .collect();
    v.sort();
    v
}

/// Off a terminal, a long run prints a progress line at a steady interval
/// (made short here with CLOUDIMG_PROGRESS_SECONDS), each naming the
/// shapes done; `-q` prints nothing at all on success.
#[test]
fn progress_lines_off_a_terminal_and_none_with_quiet() {
    let t = tempfile::tempdir().unwrap();
    gpt_image(t.path(), "disk.img", 24 * MIB, 8);
    let package = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_cloudimg"))
            .args(["package", "disk.img", "--all"])
            .args(args)
            .current_dir(t.path())
            .env("CLOUDIMG_PROGRESS_SECONDS", "0.01")
            .output()
            .unwrap()
    };
    let out = package(&["-o", "a"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let progress: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("cloudimg: package: "))
        .collect();
    assert!(!progress.is_empty(), "no progress line: {err}");
    for l in &progress {
        assert!(l.contains(" shapes done"), "{l}");
        assert!(
            !l.contains('\x1b'),
            "no terminal codes off a terminal: {l:?}"
        );
    }
    assert!(err
        .lines()
        .last()
        .unwrap()
        .starts_with("cloudimg: packaged 8 artifact(s)"));
    // -q before or after the subcommand: nothing on stderr.
    for args in [["-q", "-o", "b"], ["-o", "c", "--quiet"]] {
        let out = package(&args);
        assert!(out.status.success(), "{out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), "", "{args:?}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_cloudimg"))
        .args(["-q", "package", "disk.img", "-o", "d"])
        .current_dir(t.path())
        .env("CLOUDIMG_PROGRESS_SECONDS", "0.01")
        .output()
        .unwrap();
    assert!(out.status.success() && out.stderr.is_empty(), "{out:?}");
}

/// SHA256SUMS is reproducible (the same bytes from the same input) and
/// written like the other outputs: a file of the same name that is a
/// symlink is replaced, never followed.
#[test]
fn sha256sums_is_reproducible_and_never_follows_a_symlink() {
    if !require_tool("sha256sum") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    gpt_image(d, "disk.img", 24 * MIB, 9);
    fs::create_dir(d.join("b")).unwrap();
    fs::write(d.join("victim"), b"keep me\n").unwrap();
    std::os::unix::fs::symlink(d.join("victim"), d.join("b/SHA256SUMS")).unwrap();
    ok(cloudimg(&["package", "disk.img", "--qcow2", "-o", "a"], d));
    ok(cloudimg(&["package", "disk.img", "--qcow2", "-o", "b"], d));
    assert_eq!(fs::read(d.join("victim")).unwrap(), b"keep me\n");
    assert!(!fs::symlink_metadata(d.join("b/SHA256SUMS"))
        .unwrap()
        .file_type()
        .is_symlink());
    let a = fs::read_to_string(d.join("a/SHA256SUMS")).unwrap();
    assert_eq!(a, fs::read_to_string(d.join("b/SHA256SUMS")).unwrap());
    assert_eq!(
        a,
        format!("{}  capos.qcow2\n", sha256(&d.join("a/capos.qcow2")))
    );
    let m: serde_json::Value =
        serde_json::from_slice(&fs::read(d.join("a/manifest.json")).unwrap()).unwrap();
    assert_eq!(m["schema"], "cloudimg.manifest/1");
    assert_eq!(m["source_date_epoch"], 1_700_000_000u64);
    assert_eq!(m["cloudimg_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(m["artifacts"][0]["source_date_epoch"], 1_700_000_000u64);
    assert_eq!(m["artifacts"][0]["format"], "qcow2");
    // verify checks a SHA256SUMS against the manifest beside it.
    let stdout = ok(cloudimg(&["verify", "a/SHA256SUMS"], d));
    assert_eq!(stdout, "a/SHA256SUMS: ok: checksums of a/manifest.json\n");
    fs::write(d.join("a/SHA256SUMS"), a.replace("  capos", "  other")).unwrap();
    let out = cloudimg(&["verify", "a/SHA256SUMS"], d);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("a/SHA256SUMS: DEFECTIVE: "), "{stdout}");
}

/// `package` (GCP+AWS), then `package --azure` into the same directory:
/// the manifest lists all five artifacts, the first four exactly as the
/// first run recorded them, and `verify out/*` checks each once through
/// the manifest. A kept file changed since is dropped from the next
/// manifest, and a run from another image drops the first image's
/// entries, each saying so on stderr.
#[test]
fn manifest_describes_the_directory_across_runs() {
    if !oracles() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    gpt_image(d, "disk.img", 20 * MIB, 7);
    ok(cloudimg(&["package", "disk.img", "-o", "out"], d));
    let first = manifest_of(&d.join("out"));
    let out = cloudimg(&["package", "disk.img", "--azure", "-o", "out"], d);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    ok(out);
    assert!(
        err.contains(
            "cloudimg: the manifest also lists 4 artifact(s) of the same image from an earlier run: \
             capos-aws.raw, capos-aws.vhd, capos-aws.vmdk, disk.raw.tar.gz\n"
        ),
        "{err}"
    );
    let m = manifest_of(&d.join("out"));
    assert_eq!(
        manifest_files(&m),
        [
            "capos-aws.raw",
            "capos-aws.vhd",
            "capos-aws.vmdk",
            "disk.raw.tar.gz",
            "capos-azure.vhd"
        ]
    );
    assert_eq!(m["source"], first["source"]);
    assert_eq!(
        m["artifacts"].as_array().unwrap()[..4],
        first["artifacts"].as_array().unwrap()[..]
    );

    // The natural glob, manifest and SHA256SUMS included: every artifact
    // once, all ok, and SHA256SUMS agrees with the manifest.
    let files = glob(d, "out");
    assert_eq!(files.len(), 7, "{files:?}");
    let mut args = vec!["verify"];
    args.extend(files.iter().map(String::as_str));
    let stdout = ok(cloudimg(&args, d));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 6, "{stdout}");
    assert!(
        lines.contains(&"out/SHA256SUMS: ok: checksums of out/manifest.json"),
        "{stdout}"
    );
    // sha256sum agrees on the merged listing too.
    let check = run(Command::new("sha256sum")
        .args(["-c", "--strict", "SHA256SUMS"])
        .current_dir(d.join("out")));
    assert_eq!(check.lines().count(), 5, "{check}");
    for f in manifest_files(&m) {
        let n = lines
            .iter()
            .filter(|l| l.starts_with(&format!("out/{f}: ok: ")))
            .count();
        assert_eq!(n, 1, "{f}: {stdout}");
    }
    // Given both ways, an artifact is still reported once.
    let stdout = ok(cloudimg(
        &[
            "verify",
            "out/capos-aws.raw",
            "--manifest",
            "out/manifest.json",
            "out/manifest.json",
        ],
        d,
    ));
    assert_eq!(stdout.lines().count(), 5, "{stdout}");
    // Judged by content, not name: a disk called manifest.json is a disk.
    fs::create_dir(d.join("x")).unwrap();
    fs::copy(d.join("disk.img"), d.join("x/manifest.json")).unwrap();
    let stdout = ok(cloudimg(&["verify", "x/manifest.json"], d));
    assert!(stdout.starts_with("x/manifest.json: ok: raw, "), "{stdout}");

    // A kept file changed since its run is left out, with a note.
    let vmdk = d.join("out/capos-aws.vmdk");
    let size = fs::metadata(&vmdk).unwrap().len();
    fs::OpenOptions::new()
        .append(true)
        .open(&vmdk)
        .unwrap()
        .write_all_at(b"x", size)
        .unwrap();
    let out = cloudimg(&["package", "disk.img", "--qcow2", "-o", "out"], d);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    ok(out);
    assert!(
        err.contains(&format!(
            "cloudimg: note: out/manifest.json: no longer lists capos-aws.vmdk: the file is {} bytes, the manifest said {size}\n",
            size + 1
        )),
        "{err}"
    );
    assert_eq!(
        manifest_files(&manifest_of(&d.join("out"))),
        [
            "capos-aws.raw",
            "capos-aws.vhd",
            "disk.raw.tar.gz",
            "capos-azure.vhd",
            "capos.qcow2"
        ]
    );

    // Another image into the same directory: the first image's entries go.
    gpt_image(d, "other.img", 20 * MIB, 8);
    let out = cloudimg(&["package", "other.img", "--azure", "-o", "out"], d);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    ok(out);
    let sha = sha256(&d.join("disk.img"));
    assert!(
        err.contains(&format!(
            "cloudimg: note: out/manifest.json: no longer lists 4 artifact(s) made from another image \
             (disk.img, SHA-256 {sha}): capos-aws.raw, capos-aws.vhd, disk.raw.tar.gz, capos.qcow2\n"
        )),
        "{err}"
    );
    let m = manifest_of(&d.join("out"));
    assert_eq!(manifest_files(&m), ["capos-azure.vhd"]);
    assert_eq!(m["source"]["file"], "other.img");
}
