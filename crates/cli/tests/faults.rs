//! Faults while writing and running: a full disk, signals at any moment,
//! two runs into one directory, reproducibility across SOURCE_DATE_EPOCH,
//! and `verify --manifest`.

mod common;

use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{cloudimg, ok, require_tool, run, sha256, Rng};

const MIB: u64 = 1 << 20;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cloudimg"));
    c.env("SOURCE_DATE_EPOCH", "1700000000");
    c
}

fn is_root() -> bool {
    let out = Command::new("id").arg("-u").output().expect("running id");
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

/// A sparse image of `size` bytes with `data` bytes of seeded random data
/// spread over it (incompressible, so every shape is large).
fn image(dir: &Path, name: &str, size: u64, data: u64, seed: u64) -> PathBuf {
    let p = dir.join(name);
    let f = File::create(&p).unwrap();
    f.set_len(size).unwrap();
    let mut rng = Rng::new(seed);
    let mut buf = vec![0u8; MIB as usize];
    let step = size / (data / MIB).max(1);
    for i in 0..data / MIB {
        rng.fill(&mut buf);
        f.write_all_at(&buf, (i * step).max(MIB) / MIB * MIB)
            .unwrap();
    }
    p
}

fn leftovers(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .map(|r| {
            r.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains(".partial"))
                .collect()
        })
        .unwrap_or_default()
}

/// A tmpfs mounted for the life of the value.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(at: &Path, opts: &str) -> Mount {
        fs::create_dir_all(at).unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", opts, "tmpfs"])
            .arg(at)
            .status();
        assert!(
            st.is_ok_and(|s| s.success()),
            "mounting a tmpfs at {}",
            at.display()
        );
        Mount(at.to_path_buf())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn disk_full_gives_a_clear_error_and_leaves_nothing() {
    if !is_root() {
        assert!(std::env::var_os("CI").is_none(), "CI runs as root");
        eprintln!("SKIP: needs root to mount a small tmpfs");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let img = image(t.path(), "in.raw", 64 * MIB, 24 * MIB, 1);
    let before = sha256(&img);
    let full = t.path().join("full");
    let _m = Mount::tmpfs(&full, "size=16m");
    for shapes in [&["--aws"][..], &["--gcp"][..], &[][..]] {
        let mut args = vec!["package", "in.raw", "-o", "full"];
        args.extend_from_slice(shapes);
        let out = cloudimg(&args, t.path());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{shapes:?}: {err}");
        assert!(err.contains("no space left on device"), "{shapes:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
        assert!(leftovers(&full).is_empty(), "{:?}", leftovers(&full));
        for f in [
            "capos-aws.raw",
            "capos-aws.vhd",
            "capos-aws.vmdk",
            "disk.raw.tar.gz",
        ] {
            if full.join(f).exists() {
                // Whatever got its final name was verified in full.
                ok(cloudimg(&["verify", &format!("full/{f}")], t.path()));
                fs::remove_file(full.join(f)).unwrap();
            }
        }
    }
    assert_eq!(sha256(&img), before, "input untouched");
}

/// Start `cloudimg ARGS`, send `sig` once `ready()` holds (or after 30 s),
/// and return its exit code and stderr.
fn interrupt(
    args: &[&str],
    cwd: &Path,
    sig: &str,
    ready: impl Fn() -> bool,
) -> (Option<i32>, String) {
    let child: Child = bin()
        .args(args)
        .current_dir(cwd)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting cloudimg");
    let start = Instant::now();
    while !ready() && start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(20));
    }
    run(Command::new("kill").args(["-s", sig, &child.id().to_string()]));
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn signals_during_package_remove_temporary_files() {
    let t = tempfile::tempdir().unwrap();
    let img = image(t.path(), "in.raw", 1 << 30, 400 * MIB, 2);
    let before = sha256(&img);
    for (sig, code) in [("INT", 130), ("TERM", 143)] {
        let out = t.path().join(format!("out-{sig}"));
        let probe = out.clone();
        let (status, err) = interrupt(
            &["package", "in.raw", "-o", out.to_str().unwrap()],
            t.path(),
            sig,
            move || !leftovers(&probe).is_empty(),
        );
        assert_eq!(status, Some(code), "SIG{sig}: {err}");
        assert!(
            err.contains(if sig == "INT" {
                "interrupted"
            } else {
                "terminated"
            }),
            "{err}"
        );
        assert!(
            leftovers(&out).is_empty(),
            "SIG{sig}: {:?}",
            leftovers(&out)
        );
    }
    assert_eq!(sha256(&img), before, "input untouched");
}

#[test]
fn signal_during_boot_kills_qemu() {
    if !require_tool("qemu-system-x86_64") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    ok(cloudimg(&["image", "build", "-o", "img.raw"], t.path()));
    // OVMF takes seconds to reach the kernel: interrupt while QEMU runs.
    let start = Instant::now();
    let (status, err) = interrupt(
        &["boot", "img.raw", "--firmware", "uefi", "--log", "ev"],
        t.path(),
        "INT",
        move || start.elapsed() > Duration::from_millis(1500),
    );
    assert_eq!(status, Some(130), "{err}");
    let img = t.path().join("img.raw");
    let ps = run(Command::new("ps").args(["-eo", "args"]));
    assert!(
        !ps.lines()
            .any(|l| l.contains("qemu-system") && l.contains(img.to_str().unwrap())),
        "QEMU left running:\n{ps}"
    );
}

#[test]
fn two_runs_into_one_directory_do_not_interleave() {
    let t = tempfile::tempdir().unwrap();
    image(t.path(), "a.raw", 96 * MIB, 20 * MIB, 3);
    image(t.path(), "b.raw", 96 * MIB, 20 * MIB, 4);
    let spawn = |img: &str| {
        bin()
            .args(["package", img, "--aws", "-o", "out"])
            .current_dir(t.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn("a.raw"), spawn("b.raw"));
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    // One run at a time per directory: when the two overlap, the second
    // is refused at once (exit 2, one line) by the first's lock; when they
    // do not, both succeed.
    for r in [&a, &b] {
        let err = String::from_utf8_lossy(&r.stderr);
        assert!(
            r.status.success()
                || (r.status.code() == Some(2)
                    && err.contains("another cloudimg package is writing to this directory")),
            "{err}"
        );
    }
    assert!(a.status.success() || b.status.success());
    assert!(leftovers(&t.path().join("out")).is_empty());
    // The manifest holds what is in the directory, whoever wrote last.
    ok(cloudimg(
        &["verify", "--manifest", "out/manifest.json"],
        t.path(),
    ));
    // Each final file is whole: one of the two inputs, never a mix.
    let (sa, sb) = (
        sha256(&t.path().join("a.raw")),
        sha256(&t.path().join("b.raw")),
    );
    let raw = sha256(&t.path().join("out/capos-aws.raw"));
    assert!(raw == sa || raw == sb);
    for f in ["capos-aws.vhd", "capos-aws.vmdk"] {
        let v = ok(cloudimg(&["verify", &format!("out/{f}")], t.path()));
        assert!(v.contains(&sa) || v.contains(&sb), "{v}");
    }
}

#[test]
fn source_date_epoch_changes_only_timestamps() {
    let t = tempfile::tempdir().unwrap();
    image(t.path(), "in.raw", 64 * MIB, 4 * MIB, 5);
    for (sde, dir) in [("1000000000", "one"), ("1700000000", "two")] {
        ok(bin()
            .env("SOURCE_DATE_EPOCH", sde)
            .args(["package", "in.raw", "-o", dir])
            .current_dir(t.path())
            .output()
            .unwrap());
    }
    let read = |d: &str, f: &str| fs::read(t.path().join(d).join(f)).unwrap();
    // Raw and VMDK carry no time.
    for f in ["capos-aws.raw", "capos-aws.vmdk"] {
        assert!(read("one", f) == read("two", f), "{f} differs");
    }
    // The VHD differs only in the footer's timestamp and checksum.
    let (a, b) = (read("one", "capos-aws.vhd"), read("two", "capos-aws.vhd"));
    let footer = a.len() - 512;
    let diff: Vec<usize> = (0..a.len())
        .filter(|&i| a[i] != b[i])
        .map(|i| i - footer.min(i))
        .collect();
    assert!(!diff.is_empty());
    assert!(
        diff.iter()
            .all(|&o| (24..28).contains(&o) || (64..68).contains(&o)),
        "{diff:?}"
    );
    // The tarball's tar stream differs only in the header's mtime and checksum.
    let tar = |d: &str| {
        let out = Command::new("gzip")
            .arg("-dc")
            .arg(t.path().join(d).join("disk.raw.tar.gz"))
            .output()
            .unwrap();
        out.stdout
    };
    let (a, b) = (tar("one"), tar("two"));
    assert_eq!(a.len(), b.len());
    let diff: Vec<usize> = (0..a.len()).filter(|&i| a[i] != b[i]).collect();
    assert!(!diff.is_empty());
    assert!(diff.iter().all(|&o| (136..156).contains(&o)), "{diff:?}");
}

#[test]
fn verify_manifest_rechecks_every_artifact() {
    let t = tempfile::tempdir().unwrap();
    image(t.path(), "in.raw", 64 * MIB, 4 * MIB, 6);
    ok(cloudimg(&["package", "in.raw", "-o", "out"], t.path()));
    let v = ok(cloudimg(
        &["verify", "--manifest", "out/manifest.json"],
        t.path(),
    ));
    assert_eq!(v.lines().filter(|l| l.contains(": ok: ")).count(), 4, "{v}");

    // Replace the VMDK with a valid VMDK of another disk: it decodes
    // cleanly, but not to what the manifest recorded.
    image(t.path(), "other.raw", 64 * MIB, 4 * MIB, 7);
    ok(cloudimg(
        &["package", "other.raw", "--aws", "-o", "other"],
        t.path(),
    ));
    fs::copy(
        t.path().join("other/capos-aws.vmdk"),
        t.path().join("out/capos-aws.vmdk"),
    )
    .unwrap();
    let out = cloudimg(&["verify", "--manifest", "out/manifest.json"], t.path());
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("capos-aws.vmdk: file SHA-256 is"), "{text}");
    assert!(
        text.contains("capos-aws.vmdk: decoded disk SHA-256 is"),
        "{text}"
    );
    // A listed artifact that is gone is unusable.
    fs::remove_file(t.path().join("out/capos-aws.raw")).unwrap();
    let out = cloudimg(&["verify", "--manifest", "out/manifest.json"], t.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("capos-aws.raw: opening: no such file or directory"));
}

#[test]
fn signals_at_any_moment_of_image_build_leave_no_partial_image() {
    if !(require_tool("grub-mkimage") && require_tool("sgdisk")) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    for (i, delay_ms) in [0u64, 10, 30, 60, 120, 250].into_iter().enumerate() {
        let out = format!("img{i}.raw");
        let start = Instant::now();
        let (status, err) = interrupt(
            &["image", "build", "--size", "10G", "-o", &out],
            t.path(),
            "TERM",
            move || start.elapsed() >= Duration::from_millis(delay_ms),
        );
        // The signal came first (143), or the build had finished (0), or
        // the signal arrived before the handler was installed, at the very
        // start, and its default action ended the process (None): in every
        // case nothing partial may be left.
        assert!(
            matches!(status, Some(143) | Some(0) | None),
            "after {delay_ms} ms: {status:?} {err}"
        );
        assert!(leftovers(t.path()).is_empty(), "{:?}", leftovers(t.path()));
        let img = t.path().join(&out);
        if status == Some(0) || img.exists() {
            // An image under its final name is whole.
            run(Command::new("sgdisk").arg("-v").arg(&img));
        }
    }
}

/// While a `package` holds an output directory, a second one into it is
/// refused at once, writing nothing: the lock is taken on the directory
/// itself (here by `flock(1)`, as another run would hold it).
#[test]
fn a_second_run_into_a_locked_directory_is_refused() {
    let t = tempfile::tempdir().unwrap();
    image(t.path(), "a.raw", 16 * MIB, 2 * MIB, 6);
    fs::create_dir(t.path().join("out")).unwrap();
    let mut holder = Command::new("flock")
        .args(["--exclusive", "out", "sleep", "30"])
        .current_dir(t.path())
        .spawn()
        .unwrap();
    // Wait until flock holds the lock (a test lock with -n fails then).
    let held = || {
        !Command::new("flock")
            .args(["--nonblock", "out", "true"])
            .current_dir(t.path())
            .status()
            .unwrap()
            .success()
    };
    while !held() {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = bin()
        .args(["package", "a.raw", "--aws", "-o", "out"])
        .current_dir(t.path())
        .output()
        .unwrap();
    holder.kill().unwrap();
    holder.wait().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("out: another cloudimg package is writing to this directory"),
        "{err}"
    );
    assert_eq!(fs::read_dir(t.path().join("out")).unwrap().count(), 0);
}
