//! The example CI workflow (examples/github-actions.yml) is valid YAML,
//! and every `make` target and `cloudimg` subcommand it runs exists.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use common::{ok, require_tool, run};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The workflow as JSON, parsed by PyYAML (python3-yaml), an oracle we
/// did not write.
fn workflow() -> Option<Value> {
    if !require_tool("python3") {
        return None;
    }
    let path = repo().join("examples/github-actions.yml");
    let json = run(Command::new("python3")
        .arg("-c")
        .arg(
            "import json, sys, yaml\n\
         print(json.dumps(yaml.safe_load(open(sys.argv[1])), default=str))",
        )
        .arg(&path));
    Some(serde_json::from_str(&json).unwrap())
}

/// Every `run:` script of every job's steps.
fn scripts(w: &Value) -> Vec<String> {
    let jobs = w["jobs"].as_object().expect("the workflow has jobs");
    assert!(!jobs.is_empty());
    let mut out = Vec::new();
    for (name, job) in jobs {
        assert!(job["runs-on"].is_string(), "job {name} says where it runs");
        for step in job["steps"].as_array().expect("a job has steps") {
            assert!(
                step["run"].is_string() ^ step["uses"].is_string(),
                "each step of {name} runs a script or uses an action: {step}"
            );
            if let Some(s) = step["run"].as_str() {
                out.push(s.to_string());
            }
        }
    }
    out
}

/// The targets of `make` and the subcommands of `cloudimg` in a script
/// (`cloudimg image build` gives `["image", "build"]`).
fn commands(script: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let (mut targets, mut subs) = (Vec::new(), Vec::new());
    for line in script.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        for (i, w) in words.iter().enumerate() {
            let rest = &words[i + 1..];
            let plain = |s: &&&str| !s.starts_with('-') && !s.contains(['=', '"', '$', '/']);
            if *w == "make" {
                targets.extend(rest.iter().take_while(plain).map(|s| s.to_string()));
            } else if *w == "cloudimg" {
                let sub: Vec<String> = rest
                    .iter()
                    .take(2)
                    .take_while(plain)
                    .map(|s| s.to_string())
                    .collect();
                assert!(!sub.is_empty(), "cloudimg without a subcommand: {line}");
                subs.push(sub);
            }
        }
    }
    (targets, subs)
}

#[test]
fn example_workflow_runs_only_documented_commands() {
    let Some(w) = workflow() else { return };
    let makefile = std::fs::read_to_string(repo().join("Makefile")).unwrap();
    let (mut targets, mut subs) = (Vec::new(), Vec::new());
    for s in scripts(&w) {
        let (t, c) = commands(&s);
        targets.extend(t);
        subs.extend(c);
    }
    assert!(targets.contains(&"demo".to_string()), "{targets:?}");
    for t in &targets {
        assert!(
            makefile.lines().any(|l| l.starts_with(&format!("{t}:"))),
            "make {t}: no such target in the Makefile"
        );
    }
    for want in ["check", "boot", "package", "verify", "report"] {
        assert!(subs.iter().any(|s| s[0] == want), "no cloudimg {want}");
    }
    let t = tempfile::tempdir().unwrap();
    for sub in &subs {
        // `cloudimg image build`: both words are subcommands; `cloudimg
        // check target/...`: the second is an argument, and `--help` after
        // it still shows the first one's help.
        let mut args: Vec<&str> = sub.iter().map(String::as_str).collect();
        args.push("--help");
        ok(common::cloudimg(&args, t.path()));
    }
}
