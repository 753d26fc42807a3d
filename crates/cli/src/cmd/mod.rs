//! One module per subcommand: clap arguments and a `run` function.

/// `println!` that returns the write's error instead of panicking: a
/// closed stdout (`cloudimg ... | head`) ends the command quietly through
/// `main`'s broken-pipe check.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
    }};
}
pub(crate) use outln;

pub mod boot;
pub mod check;
pub mod cloud;
pub mod config;
pub mod image;
pub mod inspect;
pub mod package;
pub mod report;
pub mod verify;

/// The longest duration any option takes, in seconds: a week. Longer ones
/// are refused by the argument parser (a larger value would overflow the
/// clock arithmetic of a wait).
pub const MAX_SECONDS: u64 = 7 * 24 * 3600;

/// The most threads `--jobs` may ask for: more is refused in one line (the
/// system would refuse to create them part way through a run).
pub const MAX_JOBS: usize = 1024;

/// Whether stderr is a terminal (progress is shown only then).
pub fn stderr_is_tty() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal()
}

/// The width of the terminal on stderr, in columns (80 when it cannot be
/// told).
pub fn stderr_columns() -> usize {
    match rustix::termios::tcgetwinsize(std::io::stderr()) {
        Ok(w) if w.ws_col > 0 => usize::from(w.ws_col),
        _ => 80,
    }
}

/// `SOURCE_DATE_EPOCH` as Unix seconds, or 0 when unset. A set but
/// unparsable value is an error rather than silently ignored.
pub fn source_date_epoch() -> anyhow::Result<u64> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.trim().is_empty() => v.trim().parse::<u64>().map_err(|_| {
            anyhow::anyhow!("SOURCE_DATE_EPOCH={v:?} is not a whole number of seconds")
        }),
        _ => Ok(0),
    }
}
