//! Builds the demo kernel from `kernel/demo.S` with GNU as and ld, twice:
//! the demo kernel itself and a variant that never prints the landmark
//! (assembled with `--defsym NO_LANDMARK=1`), used by the boot tests.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e} (install binutils)"));
    if !out.status.success() {
        panic!(
            "{cmd:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn build(src: &Path, script: &Path, out_dir: &Path, name: &str, defsyms: &[&str]) {
    let obj = out_dir.join(format!("{name}.o"));
    let elf = out_dir.join(format!("{name}.elf"));
    let mut as_cmd = Command::new(env::var("CAPOS_AS").unwrap_or_else(|_| "as".into()));
    as_cmd.arg("--32");
    for d in defsyms {
        as_cmd.args(["--defsym", d]);
    }
    run(as_cmd.arg("-o").arg(&obj).arg(src));
    run(
        Command::new(env::var("CAPOS_LD").unwrap_or_else(|_| "ld".into()))
            .args(["-m", "elf_i386", "--build-id=none", "-n", "-T"])
            .arg(script)
            .arg("-o")
            .arg(&elf)
            .arg(&obj),
    );
}

fn main() {
    let manifest =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let kernel = manifest.join("../../kernel");
    let src = kernel.join("demo.S");
    let script = kernel.join("link.ld");
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    println!("cargo:rerun-if-changed={}", src.display());
    println!("cargo:rerun-if-changed={}", script.display());
    println!("cargo:rerun-if-env-changed=CAPOS_AS");
    println!("cargo:rerun-if-env-changed=CAPOS_LD");
    build(&src, &script, &out_dir, "capos-demo", &[]);
    build(
        &src,
        &script,
        &out_dir,
        "capos-demo-no-landmark",
        &["NO_LANDMARK=1"],
    );
}
