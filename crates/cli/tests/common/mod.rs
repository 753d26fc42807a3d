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

// ------------------------------------------------------------ JSON ----

/// The repository's docs/ directory.
pub fn docs() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs")
}

/// Whether Python's `jsonschema` can be imported (a missing one fails
/// under CI / REQUIRE_ORACLES=1, as any oracle).
pub fn require_validator() -> bool {
    if !require_tool("python3") {
        return false;
    }
    let ok = std::process::Command::new("python3")
        .args(["-c", "import jsonschema"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            !strict(),
            "Python's jsonschema is required (Debian: python3-jsonschema)"
        );
        eprintln!("skipping: Python's jsonschema is not installed");
    }
    ok
}

/// Validate `doc` against docs/schema/`kind`.schema.json with the draft
/// 2020-12 validator (the schema itself checked first); panic with every
/// error found.
pub fn validate(kind: &str, doc: &serde_json::Value, what: &str) {
    const SCRIPT: &str = "\
import json, sys
import jsonschema
schema = json.load(open(sys.argv[1]))
jsonschema.Draft202012Validator.check_schema(schema)
doc = json.load(sys.stdin)
errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(doc), key=str)
for e in errors:
    print('/'.join(map(str, e.absolute_path)) + ': ' + e.message)
sys.exit(1 if errors else 0)
";
    let schema = docs().join(format!("schema/{kind}.schema.json"));
    let mut child = std::process::Command::new("python3")
        .args(["-c", SCRIPT])
        .arg(&schema)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("running python3");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(doc.to_string().as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{what}: not a valid {kind} document:\n{}{}\n{doc:#}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(doc["schema"], format!("cloudimg.{kind}/1"), "{what}");
}

// ----------------------------------------------------------- cloud ----

// The real cloud CLIs against the local emulators (standin/api): the
// cloud crate's own test helpers, included by path rather than copied.

/// Emulators, their CLI environments, their leftovers.
#[path = "../../../cloud/tests/common/real.rs"]
pub mod real;

/// Logging wrappers and tripwires named like the cloud CLIs.
#[path = "../../../cloud/tests/common/calls.rs"]
pub mod calls;

/// EC2 resources made cheaply with the real `aws`.
#[path = "../../../cloud/tests/common/seed.rs"]
pub mod seed;

/// A run killed mid-way (SIGKILL to its process group) on a journal state.
#[path = "../../../cloud/tests/common/killed.rs"]
pub mod killed;
