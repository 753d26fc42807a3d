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
#[path = "differential/judge.rs"]
mod judge;
#[path = "differential/mutate.rs"]
mod mutate;
#[path = "differential/oracle.rs"]
mod oracle;
#[path = "differential/seeds.rs"]
mod seeds;
#[path = "differential/tar_mut.rs"]
mod tar_mut;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use common::require_tool;
use judge::{baseline_of, evaluate, parse_cases, Verdict};
use seeds::Seed;

/// cloudimg's reading: in a child process, this test binary again.
const READ: judge::Reader = oracle::cloudimg_read;

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
        let (v, base) = baseline_of(READ, s, root);
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
            baseline_of(READ, seed, root).0
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
            let v = evaluate(READ, seed, &bytes, &baselines[seed.name], root, k);
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
        let v = evaluate(READ, seed, &bytes, &baselines[seed.name], root, k);
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
