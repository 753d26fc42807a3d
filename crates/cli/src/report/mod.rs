//! The one-page report of an evidence directory: `report.html`
//! (self-contained: inline CSS, no scripts, no external resources) and
//! `report.md`, listing every boot found in the directory with its
//! artifact, firmware, disk interface, result, time to landmark and
//! serial tail.
//!
//! Two kinds of evidence are read (see [`evidence`]): the records
//! `cloudimg boot --log DIR` writes (`boot-<firmware>-<disk>.json`,
//! fields of `cloudimg_boot::BootRecord`) and the `summary.json` (with
//! `serial.log` beside it) of a `cloudimg cloud ... --evidence DIR` run.
//! Both are searched for in DIR and its subdirectories (as `make demo`
//! lays them out: one per artifact), symlinks never followed.
//!
//! Everything shown comes from files a guest or a cloud influenced (the
//! serial console above all), so every value is escaped for its output:
//! HTML text in `html.rs`, Markdown in `markdown.rs`.

pub mod evidence;
mod html;
mod markdown;

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

use cloudimg_disk::io::OutputFile;

pub use evidence::{load, Entry};

/// The name of the HTML report in the evidence directory.
pub const HTML_NAME: &str = "report.html";
/// The name of the Markdown report in the evidence directory.
pub const MARKDOWN_NAME: &str = "report.md";

/// What the report lists: every boot found, in the order of their record
/// paths (so two runs over the same evidence give the same report).
#[derive(Debug, Clone)]
pub struct Report {
    /// The evidence directory as given.
    pub dir: PathBuf,
    /// One entry per boot.
    pub entries: Vec<Entry>,
}

impl Report {
    /// How many boots reached their landmark.
    pub fn passed(&self) -> usize {
        self.entries.iter().filter(|e| e.passed).count()
    }

    /// The one-line verdict at the top of both reports.
    pub fn verdict(&self) -> String {
        format!(
            "{} of {} boots reached the landmark",
            self.passed(),
            self.entries.len()
        )
    }

    /// The report as a self-contained HTML page.
    pub fn to_html(&self) -> String {
        html::render(self)
    }

    /// The report as Markdown.
    pub fn to_markdown(&self) -> String {
        markdown::render(self)
    }
}

/// The files [`write_report`] wrote.
#[derive(Debug, Clone)]
pub struct Written {
    /// `DIR/report.html`.
    pub html: PathBuf,
    /// `DIR/report.md`.
    pub markdown: PathBuf,
    /// The report they hold.
    pub report: Report,
}

/// Read the evidence in `dir` and write `report.html` and `report.md`
/// into it. Each file is written under a new temporary name (created
/// exclusively, owner-only, never through a symlink) and renamed over the
/// old report, so a reader never sees half a report and a symlink planted
/// at either name is replaced, not followed. Errors name the file.
///
/// This is what `boot --log DIR` and `cloud ... --evidence DIR` call once
/// their records are written.
pub fn write_report(dir: &Path) -> anyhow::Result<Written> {
    let report = load(dir)?;
    let html = dir.join(HTML_NAME);
    let markdown = dir.join(MARKDOWN_NAME);
    write_file(&html, report.to_html().as_bytes())?;
    write_file(&markdown, report.to_markdown().as_bytes())?;
    Ok(Written {
        html,
        markdown,
        report,
    })
}

/// [`write_report`] at the end of a command that wrote evidence into
/// `dir` (`boot --log DIR`, `cloud ... --evidence DIR`): the report's
/// path is logged, and a failure is a warning, never the command's
/// result (the boots themselves are what the command reports).
pub fn write_report_logged(dir: &Path) -> Option<Written> {
    match write_report(dir) {
        Ok(w) => {
            log::info!("report: {}", w.html.display());
            Some(w)
        }
        Err(e) => {
            log::warn!("no report written: {e:#}");
            None
        }
    }
}

/// Write `bytes` as `path` through a temporary file renamed over it.
fn write_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let write = || -> std::io::Result<()> {
        let out = OutputFile::create(path)?;
        out.file().write_all(bytes)?;
        out.commit().map(drop)
    };
    write().with_context(|| format!("writing {}", path.display()))
}

/// Seconds to a landmark as both reports show them (and as the demo's
/// table does): two decimals.
pub fn seconds_text(s: Option<f64>) -> String {
    s.map_or_else(|| "-".to_string(), |s| format!("{s:.2}"))
}
