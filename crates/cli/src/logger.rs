//! The stderr logger behind the `log` facade: `cloudimg: ` and the
//! message, one line each (`error: `, `warning: `, `note: `, `debug: `
//! before it by level). `-q` shows warnings and errors only (no
//! progress, notes or summaries: quiet for scripts); the default adds
//! information; `-v` debug messages, `-vv` trace. Nothing is coloured, so
//! `NO_COLOR` has nothing to turn off here (clap's own help and errors
//! follow `NO_COLOR` through anstream).

use std::io::Write;

use log::{Level, LevelFilter, Log, Metadata, Record};

/// The logger: every record at or above the level set by [`init`].
struct Stderr;

impl Log for Stderr {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let tag = match record.level() {
            // A warning about something the user may want to know but
            // need not act on (`log::warn!(target: "note", ...)`).
            Level::Warn if record.target() == "note" => "note: ",
            Level::Error => "error: ",
            Level::Warn => "warning: ",
            Level::Info => "",
            Level::Debug => "debug: ",
            Level::Trace => "trace: ",
        };
        // A closed stderr leaves nothing to tell: the write's error is
        // dropped.
        let _ = writeln!(std::io::stderr().lock(), "cloudimg: {tag}{}", record.args());
    }

    fn flush(&self) {}
}

/// The level `-q` and `-v` (counted) ask for.
pub fn level(quiet: bool, verbose: u8) -> LevelFilter {
    match (quiet, verbose) {
        (true, _) => LevelFilter::Warn,
        (false, 0) => LevelFilter::Info,
        (false, 1) => LevelFilter::Debug,
        (false, _) => LevelFilter::Trace,
    }
}

/// Install the logger at `level` (once, at start).
pub fn init(level: LevelFilter) {
    static LOGGER: Stderr = Stderr;
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(level);
    }
}
