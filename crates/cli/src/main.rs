//! The `cloudimg` command: a thin dispatcher over the `cloudimg-*`
//! libraries. Logs and progress go to stderr, data (tables, `--json`) to
//! stdout.
//!
//! Exit codes: 0 success; 1 `verify` found defects, `check` found a path
//! not ready or a `boot` did not reach its landmark; 2 error (bad input,
//! failed step); 130 interrupted by SIGINT; 143 terminated by SIGTERM.

mod cmd;
mod config;
mod help;
mod logger;
mod report;
mod signals;

use std::io::Write;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// Take a bootable disk image to cloud-importable shapes, verified.
#[derive(Debug, Parser)]
#[command(name = "cloudimg", version, about, long_about = None, help_expected = true)]
#[command(max_term_width = 80, term_width = 80)]
struct Cli {
    /// More messages on stderr (-v debug, -vv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Only warnings and errors on stderr: no progress, notes or
    /// summaries (for scripts).
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Package a disk image into cloud shapes, each verified.
    Package(cmd::package::Args),
    /// Decode an artifact in full and report every defect found.
    Verify(cmd::verify::Args),
    /// Say whether an image can boot on each cloud and firmware, and why not.
    Check(cmd::check::Args),
    /// Show a file's format, sizes, header facts and partition table.
    Inspect(cmd::inspect::Args),
    /// Build a hybrid BIOS+UEFI disk image with GRUB or Limine.
    Image(cmd::image::Args),
    /// Boot an image or artifact under QEMU and wait for a serial landmark.
    Boot(cmd::boot::Args),
    /// Import an artifact into GCP, AWS or Azure and boot it there.
    Cloud(cmd::cloud::Args),
    /// Write a one-page report (HTML and Markdown) of an evidence directory.
    Report(cmd::report::Args),
    /// Show the cloud defaults in effect and where each one came from.
    Config(cmd::config::Args),
    /// Write man pages or shell completions (for packagers; `make
    /// install` runs it).
    #[command(hide = true)]
    Generate(cmd::generate::Args),
}

/// The command-line definition: clap's, with every command's examples and
/// exit codes ([`help::decorate`]). `--help`, the man pages and the
/// completions all come from it.
pub fn command() -> clap::Command {
    help::decorate(Cli::command())
}

fn main() -> ExitCode {
    signals::install();
    let cli = match Cli::from_arg_matches(&command().get_matches()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    logger::init(logger::level(cli.quiet, cli.verbose));
    let result = match cli.cmd {
        Cmd::Package(a) => cmd::package::run(a),
        Cmd::Verify(a) => cmd::verify::run(a),
        Cmd::Check(a) => cmd::check::run(a),
        Cmd::Inspect(a) => cmd::inspect::run(a),
        Cmd::Image(a) => cmd::image::run(a),
        Cmd::Boot(a) => cmd::boot::run(a),
        Cmd::Cloud(a) => cmd::cloud::run(a),
        Cmd::Report(a) => cmd::report::run(a),
        Cmd::Config(a) => cmd::config::run(a),
        Cmd::Generate(a) => cmd::generate::run(a),
    };
    signals::settle();
    match result {
        Ok(code) => code,
        Err(e) => {
            if is_broken_pipe(&e) {
                return ExitCode::SUCCESS;
            }
            let _ = writeln!(std::io::stderr(), "cloudimg: error: {}", one_line(&e));
            ExitCode::from(2)
        }
    }
}

/// Whether the command failed writing to a closed stdout (`| head`): a
/// plain write's error, or one inside a JSON serializer's.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    let broken = Some(std::io::ErrorKind::BrokenPipe);
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>().map(|io| io.kind()) == broken
            || c.downcast_ref::<serde_json::Error>()
                .and_then(|j| j.io_error_kind())
                == broken
    })
}

/// The error and its causes on one line. A library error already names
/// its file and reason, so the OS error beneath it is not repeated.
fn one_line(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let text = cause.to_string();
        // An error that shows its source in its own text (`starting X:
        // No such file`) is not followed by that source again.
        if !parts.last().is_some_and(|p| p.ends_with(&text)) {
            parts.push(text);
        }
        if cause.is::<cloudimg_disk::Error>() {
            break;
        }
    }
    parts.join(": ").replace('\n', " ")
}
