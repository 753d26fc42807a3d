//! The differential test of issue 13 as a fuzz target: the input picks a
//! seed file, one of the harness's structural mutators and its mutation
//! number; the mutant is read by cloudimg (`open_disk`, `verify_path`, in
//! a child process: this binary again, under the harness's time and
//! memory limits) and by the independent reader (`qemu-img convert -f FMT
//! -O raw`, GNU tar), and any disagreement that `cases.txt` does not list
//! as known is a crash, whose message is the line to add there.
//!
//! Seeds, mutators, readings and the judgement are the differential
//! test's own (crates/disk/tests/differential/*.rs, included below with
//! `#[path]`): the two never drift apart. Under CI (or with
//! REQUIRE_ORACLES=1) a missing qemu-img, GNU tar or timeout fails at
//! start-up, as the test does; elsewhere every input is skipped.
#![no_main]

#[path = "../../crates/disk/tests/common/mod.rs"]
mod common;
// The test reads the names of its cases and runs its child through its
// own entry; this target does neither.
#[allow(dead_code)]
#[path = "../../crates/disk/tests/differential/judge.rs"]
mod judge;
#[path = "../../crates/disk/tests/differential/mutate.rs"]
mod mutate;
#[allow(dead_code)]
#[path = "../../crates/disk/tests/differential/oracle.rs"]
mod oracle;
#[path = "../../crates/disk/tests/differential/seeds.rs"]
mod seeds;
#[path = "../../crates/disk/tests/differential/tar_mut.rs"]
mod tar_mut;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

/// Everything built once, before the first input.
struct State {
    /// Where mutants are read (each in its own directory, removed after).
    root: PathBuf,
    seeds: Vec<seeds::Seed>,
    extra: mutate::Extra,
    /// Each seed's own verify findings, normalized.
    baselines: BTreeMap<&'static str, BTreeSet<String>>,
    /// (seed, mutator, class) of the disagreements cases.txt lists.
    known: BTreeSet<(String, String, String)>,
}

static STATE: OnceLock<Option<State>> = OnceLock::new();
static MUTANTS: AtomicUsize = AtomicUsize::new(0);

/// cloudimg's reading, in a child: this binary, run without arguments,
/// whose init code sees `DIFF_CHILD_INPUT` ([`child_entry`]).
fn read(input: &Path, out: &Path, result: &Path) -> oracle::Child {
    oracle::cloudimg_read_with(&[], input, out, result)
}

/// The child side: when this process was started by [`read`], read the
/// file as cloudimg does and exit before libFuzzer starts.
fn child_entry() {
    let Some(input) = std::env::var_os("DIFF_CHILD_INPUT") else {
        return;
    };
    let out = std::env::var_os("DIFF_CHILD_OUT").expect("DIFF_CHILD_OUT");
    let result = std::env::var_os("DIFF_CHILD_RESULT").expect("DIFF_CHILD_RESULT");
    oracle::child_main(Path::new(&input), Path::new(&out), Path::new(&result));
    std::process::exit(0);
}

/// Build the seeds and their baselines, or `None` (inputs skipped) when
/// an oracle is missing outside CI.
fn setup() -> Option<State> {
    use common::require_tool;
    if !(require_tool("qemu-img") && require_tool("tar") && require_tool("timeout")) {
        return None;
    }
    let root = std::env::temp_dir().join(format!(
        "cloudimg-fuzz-differential.{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).expect("creating the work directory");
    let (seeds, extra) = seeds::build(&root.join("seeds"));
    // The seeds are in memory now: their files are not needed.
    let _ = std::fs::remove_dir_all(root.join("seeds"));
    let mut baselines = BTreeMap::new();
    for s in &seeds {
        let (v, base) = judge::baseline_of(read, s, &root);
        assert_eq!(v.class, "agree", "seed {} itself: {}", s.name, v.detail);
        baselines.insert(s.name, base);
    }
    let known = judge::parse_cases()
        .into_iter()
        .filter(|c| c.expect != "agree")
        .map(|c| (c.seed, c.mutator, c.expect))
        .collect();
    Some(State {
        root,
        seeds,
        extra,
        baselines,
        known,
    })
}

/// The input: byte 0 picks the seed, byte 1 the mutator, bytes 2..10 the
/// mutation number (the mutator's PRNG seed, as in cases.txt).
fn run(st: &State, data: &[u8]) {
    let [s, m, n @ ..] = data else {
        return;
    };
    let Some(n) = n.get(..8).map(|b| u64::from_le_bytes(b.try_into().unwrap())) else {
        return;
    };
    // The 1 GiB GCP seed costs seconds a mutant: left to the test.
    let seeds: Vec<&seeds::Seed> = st.seeds.iter().filter(|s| !s.costly).collect();
    let seed = seeds[*s as usize % seeds.len()];
    let mutators = mutate::mutators(seed.kind);
    let mutator = mutators[*m as usize % mutators.len()];
    let Some((bytes, desc)) = mutate::apply(seed.kind, mutator, &seed.bytes, n, &st.extra) else {
        return;
    };
    let k = MUTANTS.fetch_add(1, Ordering::Relaxed);
    let v = judge::evaluate(read, seed, &bytes, &st.baselines[seed.name], &st.root, k);
    let sig = (seed.name.to_string(), mutator.to_string(), v.class.clone());
    if v.class != "agree" && !st.known.contains(&sig) {
        panic!(
            "new disagreement, add it to crates/disk/tests/differential/cases.txt:\n\
             {name}-{mutator}-{n}  {name} {mutator} {n} {class}  # {desc} => {detail}",
            name = seed.name,
            class = v.class,
            detail = v.detail
        );
    }
}

fuzz_target!(
    init: {
        child_entry();
        STATE.get_or_init(setup);
    },
    |data: &[u8]| {
        if let Some(Some(st)) = STATE.get() {
            run(st, data);
        }
    }
);
