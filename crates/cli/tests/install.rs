//! `make install` puts the binary, a man page per command and the bash,
//! zsh and fish completions under DESTDIR/PREFIX; each man page renders
//! with `man -l` (man-db and groff, tools we did not write) and the bash
//! completion loads in bash and completes a subcommand.

mod common;

use std::path::Path;
use std::process::Command;

use common::{require_tool, run};

/// The repository root (where the Makefile is).
fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

#[test]
fn make_install_installs_binary_man_pages_and_completions() {
    if !["make", "man", "bash", "install"]
        .iter()
        .all(|t| require_tool(t))
    {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let dest = t.path().join("dest");
    run(Command::new("make")
        .current_dir(root())
        .arg("--no-print-directory")
        .arg("install")
        .arg(format!("CLOUDIMG={}", env!("CARGO_BIN_EXE_cloudimg")))
        .arg("PREFIX=/usr")
        .arg(format!("DESTDIR={}", dest.display())));
    let usr = dest.join("usr");
    let bin = usr.join("bin/cloudimg");
    let version = run(Command::new(&bin).arg("--version"));
    assert!(version.starts_with("cloudimg "), "{version}");

    // A page per visible command, each rendering cleanly.
    let man1 = usr.join("share/man/man1");
    let mut pages: Vec<String> = std::fs::read_dir(&man1)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    pages.sort();
    for want in [
        "cloudimg.1",
        "cloudimg-package.1",
        "cloudimg-verify.1",
        "cloudimg-check.1",
        "cloudimg-inspect.1",
        "cloudimg-image-build.1",
        "cloudimg-boot.1",
        "cloudimg-cloud-gcp.1",
    ] {
        assert!(pages.iter().any(|p| p == want), "{want} missing: {pages:?}");
    }
    assert!(!pages.iter().any(|p| p.contains("generate")), "{pages:?}");
    for page in &pages {
        let out = Command::new("man")
            .arg("-l")
            .arg(man1.join(page))
            .env("MANWIDTH", "80")
            .env_remove("MANPAGER")
            .env("PAGER", "cat")
            .output()
            .unwrap();
        let text = plain(&String::from_utf8_lossy(&out.stdout));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "man -l {page}: {err}");
        assert!(err.trim().is_empty(), "man -l {page} warns: {err}");
        assert!(
            text.contains("NAME") && text.contains("SYNOPSIS"),
            "{page}: {text}"
        );
        let stem = page.trim_end_matches(".1");
        assert!(text.contains(stem), "{page}: {text}");
    }
    let package = plain(&run(Command::new("man")
        .arg("-l")
        .arg(man1.join("cloudimg-package.1"))
        .env("MANWIDTH", "80")
        .env("PAGER", "cat")));
    assert!(
        package.contains("Examples:") && package.contains("Exit codes:"),
        "{package}"
    );
    assert!(package.contains("SHA256SUMS"), "{package}");

    // bash: the script loads, registers `cloudimg`, and completes `pa`.
    let bash = usr.join("share/bash-completion/completions/cloudimg");
    let script = format!(
        "source '{}' && complete -p cloudimg && \
         COMP_WORDS=(cloudimg pa) COMP_CWORD=1 COMP_LINE='cloudimg pa' COMP_POINT=11 && \
         _cloudimg cloudimg pa cloudimg && printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        bash.display()
    );
    let out = run(Command::new("bash").args(["--norc", "--noprofile", "-c", &script]));
    assert!(
        out.lines().next().unwrap().starts_with("complete "),
        "{out}"
    );
    assert!(out.lines().any(|l| l == "package"), "{out}");

    for (shell, file) in [
        ("zsh", "share/zsh/site-functions/_cloudimg"),
        ("fish", "share/fish/vendor_completions.d/cloudimg.fish"),
    ] {
        let text = std::fs::read_to_string(usr.join(file)).unwrap();
        assert!(
            text.contains("cloudimg") && text.contains("package"),
            "{file}"
        );
        // Checked by the shell itself when it is installed.
        if which(shell) {
            run(Command::new(shell).arg("-n").arg(usr.join(file)));
        }
    }
}

/// Text without nroff's overstrikes (`X BS X` bold, `_ BS X` underline),
/// which man writes when its output is not a terminal.
fn plain(text: &str) -> String {
    let mut out: Vec<char> = Vec::new();
    for c in text.chars() {
        if c == '\u{8}' {
            out.pop();
        } else {
            out.push(c);
        }
    }
    out.into_iter().collect()
}

fn which(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}
