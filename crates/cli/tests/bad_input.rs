//! Bad input to `cloudimg package` and `verify`: a one-line error naming
//! the file and the problem, exit status 2, nothing left behind, the input
//! untouched.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

fn cloudimg(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cloudimg"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("running cloudimg")
}

/// Assert exit 2, one line on stderr containing every `needle`.
fn assert_error(out: &Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(!err.contains("panicked"), "{err}");
    for n in needles {
        assert!(err.contains(n), "{err:?} should contain {n:?}");
    }
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|r| {
            r.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn missing_input_is_named() {
    let t = tempfile::tempdir().unwrap();
    let out = cloudimg(&["package", "nope.raw", "-o", "out"], t.path());
    assert_error(&out, &["nope.raw", "no such file or directory"]);
    assert!(entries(&t.path().join("out")).is_empty());
}

#[test]
fn directory_input_is_refused() {
    let t = tempfile::tempdir().unwrap();
    fs::create_dir(t.path().join("d")).unwrap();
    let out = cloudimg(&["package", "d", "-o", "out"], t.path());
    assert_error(&out, &["d: is a directory"]);
}

#[test]
fn empty_input_is_refused() {
    let t = tempfile::tempdir().unwrap();
    fs::write(t.path().join("e.raw"), b"").unwrap();
    let out = cloudimg(&["package", "e.raw", "-o", "out"], t.path());
    assert_error(&out, &["e.raw: is empty"]);
}

#[test]
fn size_not_multiple_of_512_is_refused() {
    let t = tempfile::tempdir().unwrap();
    fs::write(t.path().join("odd.raw"), vec![1u8; 1000]).unwrap();
    let out = cloudimg(&["package", "odd.raw", "-o", "out"], t.path());
    assert_error(&out, &["odd.raw: size 1000 is not a multiple of 512 bytes"]);
    assert_eq!(fs::read(t.path().join("odd.raw")).unwrap(), vec![1u8; 1000]);
    assert!(entries(&t.path().join("out")).is_empty());
}

#[test]
fn output_path_that_is_a_file_is_refused() {
    let t = tempfile::tempdir().unwrap();
    fs::write(t.path().join("in.raw"), vec![0u8; 4096]).unwrap();
    fs::write(t.path().join("out"), b"x").unwrap();
    let out = cloudimg(&["package", "in.raw", "-o", "out"], t.path());
    assert_error(&out, &["out: output path exists and is not a directory"]);
}

#[test]
fn artifact_path_that_is_a_directory_is_refused() {
    let t = tempfile::tempdir().unwrap();
    fs::write(t.path().join("in.raw"), vec![0u8; 4096]).unwrap();
    fs::create_dir_all(t.path().join("out/capos-aws.vmdk")).unwrap();
    let out = cloudimg(&["package", "in.raw", "-o", "out"], t.path());
    assert_error(
        &out,
        &["out/capos-aws.vmdk: output path is an existing directory"],
    );
    assert_eq!(entries(&t.path().join("out")), vec!["capos-aws.vmdk"]);
}

#[test]
fn output_equal_to_input_is_refused() {
    let t = tempfile::tempdir().unwrap();
    fs::write(t.path().join("capos-aws.raw"), vec![0u8; 4096]).unwrap();
    let out = cloudimg(&["package", "capos-aws.raw", "--aws", "-o", "."], t.path());
    assert_error(&out, &["is the input image itself"]);
    assert_eq!(
        fs::read(t.path().join("capos-aws.raw")).unwrap(),
        vec![0u8; 4096]
    );
    assert_eq!(entries(t.path()), vec!["capos-aws.raw"]);
}

#[test]
fn names_no_artifact_can_carry_are_refused_before_any_work() {
    let t = tempfile::tempdir().unwrap();
    fs::write(t.path().join("in.raw"), vec![0u8; 4096]).unwrap();
    let out = cloudimg(
        &[
            "package", "in.raw", "--ova", "--name", "my disk", "-o", "out",
        ],
        t.path(),
    );
    assert_error(&out, &["--name cannot name the OVA", "\"my disk\""]);
    assert!(entries(&t.path().join("out")).is_empty());
    // The same name is fine for the shapes that are plain file names.
    let ok = cloudimg(
        &[
            "package", "in.raw", "--aws", "--name", "my disk", "-o", "aws",
        ],
        t.path(),
    );
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(t.path().join("aws/my disk-aws.vmdk").is_file());
    let long = "n".repeat(195);
    let out = cloudimg(
        &["package", "in.raw", "--name", &long, "-o", "long"],
        t.path(),
    );
    assert_error(&out, &["is too long", "over 200"]);
    assert!(entries(&t.path().join("long")).is_empty());
}

#[test]
fn unwritable_output_directory_is_refused() {
    if !is_root() {
        eprintln!("SKIP: needs root to mount a read-only filesystem");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    fs::write(t.path().join("in.raw"), vec![0u8; 4096]).unwrap();
    let ro = t.path().join("ro");
    fs::create_dir(&ro).unwrap();
    let _m = Mount::tmpfs(&ro, "ro,size=1m");
    let out = cloudimg(&["package", "in.raw", "-o", "ro"], t.path());
    assert_error(
        &out,
        &["ro: writing to the output directory: read-only file system"],
    );
}

#[test]
fn verify_missing_and_empty_files() {
    let t = tempfile::tempdir().unwrap();
    let out = cloudimg(&["verify", "gone.vmdk"], t.path());
    assert_error(&out, &["gone.vmdk: opening: no such file or directory"]);
    fs::write(t.path().join("e.vhd"), b"").unwrap();
    let out = cloudimg(&["verify", "e.vhd"], t.path());
    assert_error(&out, &["e.vhd: is empty"]);
}

pub fn is_root() -> bool {
    rustix_uid() == 0
}

fn rustix_uid() -> u32 {
    // `id -u` keeps this test free of extra dependencies.
    let out = Command::new("id").arg("-u").output().expect("running id");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(1)
}

/// A tmpfs mounted for the life of the value.
pub struct Mount(std::path::PathBuf);

impl Mount {
    pub fn tmpfs(at: &Path, opts: &str) -> Mount {
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", opts, "tmpfs"])
            .arg(at)
            .status()
            .expect("running mount");
        assert!(st.success(), "mounting tmpfs at {}", at.display());
        Mount(at.to_path_buf())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// A FIFO (or any file that is not a regular file) is refused at once by
/// every command that reads an image: opening it never waits for a writer.
/// `timeout` ends a command that would hang, which then fails the test.
#[test]
fn fifo_input_is_refused_without_waiting() {
    let t = tempfile::tempdir().unwrap();
    let made = Command::new("mkfifo")
        .arg("p")
        .current_dir(t.path())
        .status();
    assert!(made.unwrap().success(), "mkfifo");
    let cases: [&[&str]; 5] = [
        &["verify", "p"],
        &["inspect", "p"],
        &["check", "p"],
        &["boot", "p"],
        &["package", "p", "-o", "out"],
    ];
    for args in cases {
        let out = Command::new("timeout")
            .arg("60")
            .arg(env!("CARGO_BIN_EXE_cloudimg"))
            .args(args)
            .current_dir(t.path())
            .output()
            .expect("running cloudimg");
        assert_ne!(out.status.code(), Some(124), "{args:?} waited on the FIFO");
        assert_error(&out, &["p: ", "not a regular file"]);
    }
}

/// A closed stdout (`cloudimg ... | head` once head has what it wants)
/// ends the command quietly: exit 0, nothing on stderr, never a panic.
/// The pipe's reading end is closed before cloudimg writes anything.
#[test]
fn closed_stdout_ends_quietly() {
    let t = tempfile::tempdir().unwrap();
    let built = cloudimg(&["image", "build", "-o", "d.raw"], t.path());
    assert!(built.status.success(), "{built:?}");
    let cases: [&[&str]; 6] = [
        &["check", "d.raw"],
        &["check", "--json", "d.raw"],
        &["inspect", "d.raw"],
        &["inspect", "--json", "d.raw"],
        &["verify", "d.raw"],
        &["verify", "--json", "d.raw"],
    ];
    for args in cases {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = Command::new(env!("CARGO_BIN_EXE_cloudimg"))
            .args(args)
            .current_dir(t.path())
            .stdout(writer)
            .output()
            .expect("running cloudimg");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
        assert!(err.is_empty(), "{args:?}: {err}");
    }
}

/// Thread counts and durations out of range are refused before any work
/// with a message naming the option: never a thread panic, a clock
/// overflow or half-written `.partial` files.
#[test]
fn jobs_and_durations_out_of_range_are_refused() {
    let t = tempfile::tempdir().unwrap();
    fs::write(t.path().join("d.raw"), vec![0u8; 1 << 20]).unwrap();
    for jobs in ["0", "100000"] {
        let out = cloudimg(&["package", "d.raw", "-j", jobs, "-o", "out"], t.path());
        assert_error(&out, &["--jobs must be from 1 to 1024"]);
        assert!(entries(&t.path().join("out")).is_empty());
    }
    for timeout in ["1e20", "inf", "NaN", "0", "-1"] {
        let out = cloudimg(
            &["boot", "d.raw", &format!("--timeout={timeout}")],
            t.path(),
        );
        assert_error(&out, &["--timeout must be a positive number of seconds"]);
    }
    let out = cloudimg(
        &["cloud", "gcp", "--timeout", "99999999999999", "--plan"],
        t.path(),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--timeout") && !err.contains("panicked"),
        "{err}"
    );
}
