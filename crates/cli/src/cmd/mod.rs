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
pub mod generate;
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

/// A JSON document of kind `cloudimg.<kind>/1`: `"schema"` first, then
/// the body's keys (docs/json.md lists every kind and its schema file).
#[derive(serde::Serialize)]
struct Document<'a, T: serde::Serialize> {
    schema: String,
    #[serde(flatten)]
    body: &'a T,
}

/// The schema name of a document kind: `cloudimg.<kind>/1`.
pub fn schema_name(kind: &str) -> String {
    format!("cloudimg.{kind}/1")
}

/// Print `body` (a JSON object) on stdout as the document
/// `cloudimg.<kind>/1`, pretty, with a final newline.
pub fn print_json(kind: &str, body: &impl serde::Serialize) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let doc = Document {
        schema: schema_name(kind),
        body,
    };
    serde_json::to_writer_pretty(&mut out, &doc)?;
    writeln!(out)?;
    Ok(())
}

/// Rename the key `from` of the JSON object `v` to `to` (when present):
/// the library's field names made the documents' vocabulary (`_bytes`
/// for sizes, `provider`, `format`).
pub fn rename_key(v: &mut serde_json::Value, from: &str, to: &str) {
    if let Some(map) = v.as_object_mut() {
        if let Some(x) = map.remove(from) {
            map.insert(to.to_string(), x);
        }
    }
}

/// Whether messages that are not the command's result are shown (not
/// under `-q`): progress, notes, summaries.
pub fn chatty() -> bool {
    log::log_enabled!(log::Level::Info)
}
