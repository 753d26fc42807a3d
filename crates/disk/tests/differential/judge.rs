//! The judgement of one mutant: cloudimg's reading against the
//! independent one (see `differential.rs`'s header), shared by the
//! differential test and the `differential` fuzz target (fuzz/), which
//! include this file with `#[path]`. How cloudimg's reading is run is the
//! caller's [`Reader`] (a child process of the test binary, or of the fuzz
//! target).

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use serde_json::Value;

use crate::oracle::{self, Child};
use crate::seeds::Seed;

/// Runs cloudimg's reading of `input`, its decoded disk to `out`, its
/// JSON result to `result` ([`oracle::cloudimg_read`]).
pub type Reader = fn(input: &Path, out: &Path, result: &Path) -> Child;

/// The named cases and known disagreements.
pub const CASES: &str = include_str!("cases.txt");

/// What one mutant did.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// "agree" or a disagreement class.
    pub class: String,
    /// What each side said.
    pub detail: String,
}

impl Verdict {
    pub fn agree(detail: impl Into<String>) -> Self {
        Verdict {
            class: "agree".into(),
            detail: detail.into(),
        }
    }
    pub fn disagree(class: &str, detail: impl Into<String>) -> Self {
        Verdict {
            class: class.into(),
            detail: detail.into(),
        }
    }
}

/// A line of `cases.txt`.
pub struct Case {
    pub name: String,
    pub seed: String,
    pub mutator: String,
    pub n: u64,
    pub expect: String,
}

pub fn parse_cases() -> Vec<Case> {
    CASES
        .lines()
        .map(|l| l.split('#').next().unwrap().trim())
        .filter(|l| !l.is_empty())
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            assert!(
                w.len() == 5,
                "cases.txt: {l:?} is not NAME SEED MUTATOR N EXPECT"
            );
            Case {
                name: w[0].into(),
                seed: w[1].into(),
                mutator: w[2].into(),
                n: w[3]
                    .parse()
                    .unwrap_or_else(|_| panic!("cases.txt: {l:?}: N is not a number")),
                expect: w[4].into(),
            }
        })
        .collect()
}

/// Findings with their numbers blanked, to compare a mutant's with its
/// seed's.
pub fn normalized(findings: &Value) -> BTreeSet<String> {
    findings
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f.as_str())
        // The decoded disk's own GPT is not the container's business:
        // package writes a disk with a broken GPT for AWS, with warnings.
        .filter(|s| !s.contains("decoded disk: "))
        .map(|s| {
            let mut out = String::new();
            for c in s.chars() {
                if c.is_ascii_digit() {
                    if !out.ends_with('#') {
                        out.push('#');
                    }
                } else {
                    out.push(c);
                }
            }
            out
        })
        .collect()
}

/// Read `bytes` (a file of `seed`'s kind) both ways and judge.
pub fn evaluate(
    read: Reader,
    seed: &Seed,
    bytes: &[u8],
    baseline: &BTreeSet<String>,
    root: &Path,
    k: usize,
) -> Verdict {
    let dir = oracle::mutant_dir(root, k);
    let input = dir.join("m").join(format!("m.{}", seed.ext));
    fs::write(&input, bytes).unwrap();
    let ours = dir.join("cloudimg.raw");
    let v = judge(read, &input, &ours, &dir, baseline);
    let _ = fs::remove_dir_all(&dir);
    v
}

fn judge(
    read: Reader,
    input: &Path,
    ours: &Path,
    dir: &Path,
    baseline: &BTreeSet<String>,
) -> Verdict {
    let v = match read(input, ours, &dir.join("result.json")) {
        Child::Done(v) => v,
        Child::Died(partial, how) => {
            let refused = partial.as_ref().is_some_and(|p| p["open"]["ok"] == false);
            let class = if how.contains("panicked") {
                "panic"
            } else {
                "resource"
            };
            if refused && class == "resource" && how.starts_with("killed") {
                // open_disk refused it; verify hashes the size a header
                // declares (a documented cost), and ran out of time.
                return Verdict::agree(format!("refused; verify did not finish: {how}"));
            }
            let during = if partial.is_some() {
                "verify"
            } else {
                "open_disk"
            };
            return Verdict::disagree(class, format!("cloudimg {during}: {how}"));
        }
    };
    let open = &v["open"];
    let verify = &v["verify"];
    let findings = normalized(&verify["findings"]);
    let new: Vec<&String> = findings.difference(baseline).collect();
    if open["ok"] == false {
        let err = open["error"].as_str().unwrap_or("");
        // open_disk refuses a container its verifier finds anything wrong
        // with, so refusing is a disagreement only when verify finds
        // nothing at all (a seed's own finding, such as a tarball that is
        // not a whole GiB, is reason enough).
        if verify["ok"] == true && findings.is_empty() && verify["virtual_sha256"].is_string() {
            return Verdict::disagree(
                "verify-accepts-open-refuses",
                format!("open_disk: {err}; verify decodes it with no finding"),
            );
        }
        return Verdict::agree(format!("refused: {err}"));
    }
    if let Some(s) = open["skipped"].as_str() {
        return Verdict::agree(format!("not compared: {s}"));
    }
    let format = v["format"].as_str().unwrap_or("");
    let reference = dir.join("reference.raw");
    let said = format!("cloudimg decodes it as {format} ({} bytes)", open["size"]);
    match oracle::reference(format, input, &reference, dir) {
        Err(e) if e.starts_with("UNSAFE") => {
            return Verdict::disagree("names-other-file", format!("{said}; {e}"));
        }
        Err(e) => {
            return Verdict::disagree(
                "reference-refuses",
                format!("{said}; the reference refuses it: {e}"),
            )
        }
        Ok(()) => {
            if let Some(d) = oracle::compare(ours, &reference) {
                let class = if d.starts_with("sizes") {
                    "size-differs"
                } else {
                    "bytes-differ"
                };
                return Verdict::disagree(class, format!("{said}; {d}"));
            }
        }
    }
    if verify["ok"] == false {
        return Verdict::disagree(
            "verify-errs-open-decodes",
            format!(
                "{said} as the reference does; verify: {}",
                verify["error"].as_str().unwrap_or("")
            ),
        );
    }
    if !new.is_empty() {
        return Verdict::disagree(
            "verify-defective-open-decodes",
            format!(
                "{said} as the reference does; verify finds {} new: {}",
                new.len(),
                new[0]
            ),
        );
    }
    if verify["virtual_sha256"] != open["sha256"] {
        return Verdict::disagree(
            "verify-reads-differently",
            format!(
                "{said} (sha256 {}); verify decodes sha256 {}",
                open["sha256"], verify["virtual_sha256"]
            ),
        );
    }
    Verdict::agree("same bytes")
}

/// The seed's own verify findings, normalized.
pub fn baseline_of(read: Reader, seed: &Seed, root: &Path) -> (Verdict, BTreeSet<String>) {
    let dir = oracle::mutant_dir(root, usize::MAX);
    let input = dir.join("m").join(format!("m.{}", seed.ext));
    fs::write(&input, &seed.bytes).unwrap();
    let r = dir.join("result.json");
    let base = match read(&input, &dir.join("cloudimg.raw"), &r) {
        Child::Done(v) => normalized(&v["verify"]["findings"]),
        Child::Died(..) => BTreeSet::new(),
    };
    let v = judge(read, &input, &dir.join("cloudimg.raw"), &dir, &base);
    let _ = fs::remove_dir_all(&dir);
    (v, base)
}
