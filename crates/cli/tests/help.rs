//! Every command has `--help` that fits in 80 columns, with a description,
//! examples and its exit codes; usage lines are true.

use std::process::Command;

fn cloudimg(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_cloudimg"))
        .args(args)
        .env("COLUMNS", "80")
        .output()
        .expect("running cloudimg")
}

fn help(args: &[&str]) -> String {
    let mut a = args.to_vec();
    a.push("--help");
    let out = cloudimg(&a);
    assert!(out.status.success(), "{args:?} --help failed");
    String::from_utf8(out.stdout).expect("help is UTF-8")
}

/// The subcommands a help text lists (without `help`).
fn subcommands(text: &str) -> Vec<String> {
    text.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        // A wrapped description line is indented further.
        .filter(|l| !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .filter(|c| c != "help")
        .collect()
}

/// Every command path below `cloudimg` (the tree clap prints), with its
/// `--help` text, depth first: `[]`, `["package"]`, `["image"]`,
/// `["image", "build"]`, ...
fn tree() -> Vec<(Vec<String>, String)> {
    let mut out = Vec::new();
    let mut todo = vec![Vec::<String>::new()];
    while let Some(path) = todo.pop() {
        let args: Vec<&str> = path.iter().map(String::as_str).collect();
        let text = help(&args);
        for sub in subcommands(&text) {
            let mut p = path.clone();
            p.push(sub);
            todo.push(p);
        }
        out.push((path, text));
    }
    out
}

#[test]
fn every_command_has_help_within_80_columns() {
    let all = tree();
    assert!(all.iter().any(|(p, _)| p == &["package"]), "{all:?}");
    assert!(all.iter().any(|(p, _)| p == &["image", "build"]), "{all:?}");
    for (path, text) in &all {
        // clap does not wrap a usage line: a command with many required
        // options has a long one.
        for line in text.lines().filter(|l| !l.starts_with("Usage: ")) {
            assert!(
                line.chars().count() <= 80,
                "{path:?}: help line over 80 columns: {line:?}"
            );
        }
    }
}

/// Walks clap's command tree: each command says what it does (its first
/// line), shows at least one example (a line running `cloudimg`) and
/// lists its exit codes.
#[test]
fn every_command_has_a_description_examples_and_exit_codes() {
    for (path, text) in tree() {
        let first = text.lines().next().unwrap_or("");
        assert!(
            !first.trim().is_empty() && !first.starts_with("Usage:"),
            "{path:?}: no description:\n{text}"
        );
        let examples = text
            .split("Examples:\n")
            .nth(1)
            .unwrap_or_else(|| panic!("{path:?}: no Examples:\n{text}"));
        assert!(
            examples
                .lines()
                .next()
                .is_some_and(|l| l.trim_start().starts_with("cloudimg ")
                    || l.trim_start().starts_with("(cd ")),
            "{path:?}: the first example does not run cloudimg:\n{text}"
        );
        let prefix = ["cloudimg"]
            .into_iter()
            .chain(path.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ");
        assert!(
            examples.contains(&prefix),
            "{path:?}: no example runs `{prefix}`:\n{text}"
        );
        let codes = text
            .split("Exit codes:")
            .nth(1)
            .unwrap_or_else(|| panic!("{path:?}: no Exit codes:\n{text}"));
        assert!(
            codes.contains("0 ") && codes.contains("2 "),
            "{path:?}: {codes}"
        );
    }
}

/// `verify --manifest F` needs no artifact, and its usage says so.
#[test]
fn verify_usage_allows_manifest_alone() {
    let text = help(&["verify"]);
    assert!(
        text.contains("cloudimg verify [OPTIONS] --manifest <FILE>"),
        "{text}"
    );
    let t = tempfile::tempdir().unwrap();
    let missing = t.path().join("manifest.json");
    let out = cloudimg(&["verify", "--manifest", missing.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(!err.contains("required"), "{err}");
    assert!(err.contains("manifest.json"), "{err}");
    // Without either, clap says what is missing.
    let out = cloudimg(&["verify"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("<ARTIFACTS>"));
}

/// `-q` and `-v` are accepted before and after any subcommand, and not
/// together.
#[test]
fn global_verbosity_flags() {
    for args in [
        ["-q", "inspect", "--help"],
        ["inspect", "-q", "--help"],
        ["-v", "inspect", "--help"],
        ["inspect", "-vv", "--help"],
    ] {
        assert!(cloudimg(&args).status.success(), "{args:?}");
    }
    let out = cloudimg(&["-q", "-v", "inspect", "x"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be used with"));
}

/// On a terminal clap styles the help (bold headings); `NO_COLOR` turns
/// every escape sequence off. (cloudimg's own messages are never
/// coloured.)
#[test]
fn no_color_is_respected_on_a_terminal() {
    if !cloudimg_testkit::require_tool("script") {
        return;
    }
    let bin = env!("CARGO_BIN_EXE_cloudimg");
    let on_tty = |no_color: bool| {
        let mut cmd = Command::new("script");
        cmd.args(["-q", "-e", "-c"])
            .arg(format!("{bin} inspect --help"))
            .arg("/dev/null")
            .env_remove("NO_COLOR")
            .env_remove("CLICOLOR_FORCE")
            .env("TERM", "xterm");
        if no_color {
            cmd.env("NO_COLOR", "1");
        }
        let out = cmd.output().expect("running script");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let styled = on_tty(false);
    assert!(
        styled.contains("\x1b["),
        "no styling on a terminal: {styled:?}"
    );
    let plain = on_tty(true);
    assert!(plain.contains("Usage:"), "{plain:?}");
    assert!(!plain.contains('\x1b'), "NO_COLOR ignored: {plain:?}");
}
