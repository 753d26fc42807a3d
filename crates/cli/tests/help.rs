//! Every command has `--help`, and help text fits in 80 columns.

use std::process::Command;

fn help(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_cloudimg"))
        .args(args)
        .arg("--help")
        .env("COLUMNS", "80")
        .output()
        .expect("running cloudimg");
    assert!(out.status.success(), "{args:?} --help failed");
    String::from_utf8(out.stdout).expect("help is UTF-8")
}

#[test]
fn every_command_has_help_within_80_columns() {
    let top = help(&[]);
    let commands: Vec<String> = top
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .filter(|c| c != "help")
        .collect();
    assert!(commands.contains(&"package".to_string()), "{top}");
    for text in std::iter::once(top.clone()).chain(commands.iter().map(|c| help(&[c]))) {
        for line in text.lines() {
            assert!(
                line.chars().count() <= 80,
                "help line over 80 columns: {line:?}"
            );
        }
    }
}
