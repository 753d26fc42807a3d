//! `cloudimg report DIR`: the one-page report of an evidence directory.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args as ClapArgs;

/// `cloudimg report ...`
#[derive(Debug, ClapArgs)]
#[command(after_help = "\
Writes report.html (one self-contained page: inline CSS, no scripts, nothing
loaded from elsewhere) and report.md into DIR: every boot recorded there
(`boot --log DIR`, `cloud ... --evidence DIR`, make demo's
target/demo/evidence) with its artifact, firmware, disk interface, result,
time to landmark and serial tail. Reports already there are replaced.

Examples:
  cloudimg report target/demo/evidence
  cloudimg boot disk.raw --log evidence && cloudimg report evidence

Exit codes: 0 report written, every boot passed; 1 report written, a boot
failed; 2 error (no evidence, unreadable record).")]
pub struct Args {
    /// The evidence directory (searched to a depth of four, symlinks not
    /// followed); the report is written into it.
    dir: PathBuf,
}

/// Run `cloudimg report`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let w = crate::report::write_report(&args.dir)?;
    super::outln!("{}", w.report.verdict())?;
    super::outln!("report: {}", w.html.display())?;
    super::outln!("report: {}", w.markdown.display())?;
    Ok(if w.report.passed() == w.report.entries.len() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
