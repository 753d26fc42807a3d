//! Helpers shared by the CLI tests; the general ones come from
//! `cloudimg-testkit`.
#![allow(dead_code, unused_imports)]

pub use cloudimg_testkit::*;

use std::path::Path;
use std::process::{Command, Output};

/// Run the built `cloudimg` in `cwd` with `SOURCE_DATE_EPOCH` fixed.
pub fn cloudimg(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cloudimg"))
        .args(args)
        .current_dir(cwd)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .expect("running cloudimg")
}

/// Assert that a run succeeded (showing its output if not); its stdout.
pub fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "cloudimg failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// SHA-256 of a file, by `sha256sum`.
pub fn sha256(path: &Path) -> String {
    run(Command::new("sha256sum").arg(path))
        .split_whitespace()
        .next()
        .expect("sha256sum prints a digest")
        .to_string()
}
