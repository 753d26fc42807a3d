//! Differential test of issue 13: cloudimg's reading of a file against an
//! independent one, on mutants of valid files of every format.
//!
//! Seeds (`differential/seeds.rs`): one small GPT disk written by qemu-img
//! (QCOW2 v2/v3, plain and compressed; VHD dynamic and fixed; VMDK
//! monolithic sparse and stream-optimized; VHDX dynamic and fixed), by GNU
//! tar (a GCP tarball) and by cloudimg's `package` (every shape).
//! Mutators (`differential/mutate.rs`, `differential/tar_mut.rs`): seeded
//! and deterministic changes to header fields, flags, counts, offsets,
//! table entries (L1/L2, refcount, BAT, grain directory and tables),
//! duplicated references, one copy of a doubled structure (VHD footers,
//! VMDK header/footer, VHDX headers and region tables), tar members
//! (repeated names, hard links, pax paths) and OVA members and manifests,
//! byte flips; checksums recomputed unless the mutator says otherwise.
//! Readings (`differential/oracle.rs`): cloudimg's `open_disk` and
//! `verify_path` in a bounded child process; qemu-img `convert -f FMT -O
//! raw` (GNU tar for tarballs and OVAs).
//!
//! A mutant agrees when cloudimg refuses it, or decodes the bytes the
//! reference decodes and its verifier finds nothing the seed did not
//! already have, decoding the same bytes. Anything else is a disagreement
//! of a class (see `differential/cases.txt`).
//!
//! `differential_against_qemu_and_gnu_tar` runs the unmutated seeds, every
//! named case of `differential/cases.txt`, then explores mutants in a fixed
//! order for `DIFF_SECONDS` (default 30). It fails when a named case that
//! agreed disagrees, or when a case or the exploration finds a
//! disagreement whose (seed, mutator, class) is not one of the known ones
//! the file lists (the to-do list of issue 13). Known cases that now agree
//! are printed, so that fixes shrink the list. `DIFF_START=N` starts the
//! exploration at mutation number N (to explore further than `make test`
//! does), `DIFF_SEEDS=a,b` explores only those seeds.

mod common;
#[path = "differential/mutate.rs"]
mod mutate;
#[path = "differential/oracle.rs"]
mod oracle;
#[path = "differential/seeds.rs"]
mod seeds;
#[path = "differential/tar_mut.rs"]
mod tar_mut;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use common::require_tool;
use oracle::Child;
use seeds::Seed;

/// The named cases and known disagreements.
const CASES: &str = include_str!("differential/cases.txt");

/// Default seconds of exploration.
const DEFAULT_SECONDS: u64 = 30;

/// The entry point of the child process that reads one file as cloudimg
/// does (`oracle::child_main`). The harness runs this test binary with
/// `DIFF_CHILD_INPUT` set; in an ordinary run it has nothing to do.
#[test]
fn child_process_entry() {
    let Some(input) = std::env::var_os("DIFF_CHILD_INPUT") else {
        return;
    };
    let out = std::env::var_os("DIFF_CHILD_OUT").unwrap();
    let result = std::env::var_os("DIFF_CHILD_RESULT").unwrap();
    oracle::child_main(Path::new(&input), Path::new(&out), Path::new(&result));
}

/// What one mutant did.
#[derive(Debug, Clone)]
struct Verdict {
    /// "agree" or a disagreement class.
    class: String,
    /// What each side said.
    detail: String,
}

impl Verdict {
    fn agree(detail: impl Into<String>) -> Self {
        Verdict {
            class: "agree".into(),
            detail: detail.into(),
        }
    }
    fn disagree(class: &str, detail: impl Into<String>) -> Self {
        Verdict {
            class: class.into(),
            detail: detail.into(),
        }
    }
}

/// A line of `cases.txt`.
struct Case {
    name: String,
    seed: String,
    mutator: String,
    n: u64,
    expect: String,
}

fn parse_cases() -> Vec<Case> {
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
fn normalized(findings: &Value) -> BTreeSet<String> {
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
fn evaluate(
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
    let v = judge(&input, &ours, &dir, baseline);
    let _ = fs::remove_dir_all(&dir);
    v
}

fn judge(input: &Path, ours: &Path, dir: &Path, baseline: &BTreeSet<String>) -> Verdict {
    let v = match oracle::cloudimg_read(input, ours, &dir.join("result.json")) {
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
fn baseline_of(seed: &Seed, root: &Path) -> (Verdict, BTreeSet<String>) {
    let dir = oracle::mutant_dir(root, usize::MAX);
    let input = dir.join("m").join(format!("m.{}", seed.ext));
    fs::write(&input, &seed.bytes).unwrap();
    let r = dir.join("result.json");
    let base = match oracle::cloudimg_read(&input, &dir.join("cloudimg.raw"), &r) {
        Child::Done(v) => normalized(&v["verify"]["findings"]),
        Child::Died(..) => BTreeSet::new(),
    };
    let v = judge(&input, &dir.join("cloudimg.raw"), &dir, &base);
    let _ = fs::remove_dir_all(&dir);
    (v, base)
}

/// At most 240 characters of `s`, on one line.
fn clip(s: &str) -> String {
    let s = s.replace('\n', " ");
    match s.char_indices().nth(240) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s,
    }
}

/// A disagreement found, for the summary.
struct Found {
    seed: String,
    mutator: String,
    n: u64,
    desc: String,
    verdict: Verdict,
}

impl Found {
    fn signature(&self) -> (String, String, String) {
        (
            self.seed.clone(),
            self.mutator.clone(),
            self.verdict.class.clone(),
        )
    }
    fn case_line(&self) -> String {
        format!(
            "{}-{}-{}  {} {} {} {}  # {} => {}",
            self.seed,
            self.mutator,
            self.n,
            self.seed,
            self.mutator,
            self.n,
            self.verdict.class,
            clip(&self.desc),
            clip(&self.verdict.detail)
        )
    }
}

#[test]
fn differential_against_qemu_and_gnu_tar() {
    if !(require_tool("qemu-img") && require_tool("tar") && require_tool("timeout")) {
        return;
    }
    let start = Instant::now();
    let secs: u64 = std::env::var("DIFF_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SECONDS);
    let first_round: u64 = std::env::var("DIFF_START")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let only: Option<Vec<String>> = std::env::var("DIFF_SEEDS")
        .ok()
        .map(|s| s.split(',').map(String::from).collect());
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let (seeds, extra) = seeds::build(&root.join("seeds"));
    let by_name: BTreeMap<&str, &Seed> = seeds.iter().map(|s| (s.name, s)).collect();
    let cases = parse_cases();
    let known: BTreeSet<(String, String, String)> = cases
        .iter()
        .filter(|c| c.expect != "agree")
        .map(|c| (c.seed.clone(), c.mutator.clone(), c.expect.clone()))
        .collect();
    let mut failures: Vec<String> = Vec::new();
    let mut fixed: Vec<String> = Vec::new();
    let mut found: Vec<Found> = Vec::new();
    let mut k = 0usize;

    // The seeds themselves, unmutated (mutator "none").
    let mut baselines = BTreeMap::new();
    for s in &seeds {
        let (v, base) = baseline_of(s, root);
        if v.class != "agree" {
            found.push(Found {
                seed: s.name.into(),
                mutator: "none".into(),
                n: 0,
                desc: "unmutated".into(),
                verdict: v,
            });
        }
        if !base.is_empty() {
            eprintln!(
                "differential: seed {} has findings of its own (not counted): {base:?}",
                s.name
            );
        }
        baselines.insert(s.name, base);
    }
    let setup = start.elapsed();

    // Every named case.
    for c in &cases {
        let seed = by_name
            .get(c.seed.as_str())
            .unwrap_or_else(|| panic!("cases.txt: {}: no seed {}", c.name, c.seed));
        let v = if c.mutator == "none" {
            baseline_of(seed, root).0
        } else {
            let Some((bytes, desc)) =
                mutate::apply(seed.kind, &c.mutator, &seed.bytes, c.n, &extra)
            else {
                failures.push(format!(
                    "case {}: mutator {} does not apply to {}",
                    c.name, c.mutator, c.seed
                ));
                continue;
            };
            k += 1;
            let v = evaluate(seed, &bytes, &baselines[seed.name], root, k);
            if v.class != "agree" {
                found.push(Found {
                    seed: c.seed.clone(),
                    mutator: c.mutator.clone(),
                    n: c.n,
                    desc,
                    verdict: v.clone(),
                });
            }
            v
        };
        if v.class == c.expect {
            continue;
        }
        if v.class == "agree" {
            fixed.push(format!(
                "case {} ({}) now agrees: {}; set its expectation to agree",
                c.name, c.expect, v.detail
            ));
        } else if !known.contains(&(c.seed.clone(), c.mutator.clone(), v.class.clone())) {
            failures.push(format!(
                "case {} expected {}, got {}: {}",
                c.name, c.expect, v.class, v.detail
            ));
        } else {
            eprintln!(
                "differential: case {} expected {}, now {} (a known class): {}",
                c.name, c.expect, v.class, v.detail
            );
        }
    }
    let cases_done = start.elapsed();

    // Exploration, in a fixed order, for a bounded time.
    let pairs: Vec<(&Seed, &str)> = seeds
        .iter()
        .filter(|s| only.as_ref().is_none_or(|o| o.iter().any(|n| n == s.name)))
        .flat_map(|s| mutate::mutators(s.kind).iter().map(move |m| (s, *m)))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let (mut explored, mut stats) = (0u64, BTreeMap::<String, u64>::new());
    let mut times = BTreeMap::<&str, (u32, Duration)>::new();
    let mut i = 0u64;
    while Instant::now() < deadline && !pairs.is_empty() {
        let (seed, m) = pairs[(i % pairs.len() as u64) as usize];
        let n = first_round + i / pairs.len() as u64;
        i += 1;
        if seed.costly && n % 8 != 0 {
            continue;
        }
        let Some((bytes, desc)) = mutate::apply(seed.kind, m, &seed.bytes, n, &extra) else {
            continue;
        };
        k += 1;
        explored += 1;
        let t = Instant::now();
        let v = evaluate(seed, &bytes, &baselines[seed.name], root, k);
        let e = times.entry(seed.name).or_default();
        e.0 += 1;
        e.1 += t.elapsed();
        let key = if v.class == "agree" {
            v.detail.split(':').next().unwrap().to_string()
        } else {
            v.class.clone()
        };
        *stats.entry(key).or_default() += 1;
        if v.class != "agree" {
            found.push(Found {
                seed: seed.name.into(),
                mutator: m.into(),
                n,
                desc,
                verdict: v,
            });
        }
    }

    // Summary.
    let mut by_class: BTreeMap<&str, Vec<&Found>> = BTreeMap::new();
    for f in &found {
        by_class.entry(&f.verdict.class).or_default().push(f);
    }
    eprintln!(
        "differential: seeds {:.1}s, {} cases {:.1}s, {explored} mutants explored (rounds {first_round}..{}) in {:.1}s; outcomes {stats:?}",
        setup.as_secs_f64(),
        cases.len(),
        (cases_done - setup).as_secs_f64(),
        first_round + i / pairs.len().max(1) as u64,
        (start.elapsed() - cases_done).as_secs_f64(),
    );
    for (s, (n, d)) in &times {
        eprintln!(
            "differential: {s}: {n} mutants, {:.0} ms each",
            d.as_secs_f64() * 1000.0 / *n as f64
        );
    }
    for (class, fs) in &by_class {
        eprintln!(
            "differential: {} disagreement(s) of class {class}:",
            fs.len()
        );
        for f in fs.iter().take(40) {
            eprintln!("  {}", f.case_line());
        }
    }
    let mut new_sigs = BTreeSet::new();
    for f in &found {
        let sig = f.signature();
        if !known.contains(&sig) && new_sigs.insert(sig) {
            failures.push(format!(
                "new disagreement, add it to differential/cases.txt:\n{}",
                f.case_line()
            ));
        }
    }
    for f in &fixed {
        eprintln!("differential: FIXED? {f}");
    }
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
