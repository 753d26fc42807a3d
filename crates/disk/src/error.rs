//! The library's error type: a kind, a message that names the problem,
//! and the file (and offset) it concerns.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// What sort of failure an [`Error`] is.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The operating system refused a read, write, open or rename.
    Io,
    /// The bytes are not the format they were taken for.
    InvalidFormat,
    /// A valid file that uses a feature cloudimg does not handle.
    Unsupported,
    /// The format is recognised but its contents are inconsistent.
    Corrupt,
    /// The caller asked for something that cannot be done (bad size, bad
    /// output path).
    InvalidInput,
    /// The operation was interrupted by a signal.
    Interrupted,
}

/// A library error: kind, message, optional path and byte offset.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    path: Option<PathBuf>,
    offset: Option<u64>,
    source: Option<io::Error>,
}

/// Result alias for the library.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// A new error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            path: None,
            offset: None,
            source: None,
        }
    }
    /// Shorthand for [`ErrorKind::InvalidFormat`].
    pub fn invalid_format(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidFormat, message)
    }
    /// Shorthand for [`ErrorKind::Corrupt`].
    pub fn corrupt(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Corrupt, message)
    }
    /// Shorthand for [`ErrorKind::Unsupported`].
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unsupported, message)
    }
    /// Shorthand for [`ErrorKind::InvalidInput`].
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, message)
    }
    /// An I/O error with a gerund describing what was being done
    /// ("reading", "writing", ...).
    pub fn io(doing: impl Into<String>, err: io::Error) -> Self {
        let kind = if err.kind() == io::ErrorKind::Interrupted {
            ErrorKind::Interrupted
        } else {
            ErrorKind::Io
        };
        let message = format!("{}: {}", doing.into(), describe_io(&err));
        Error {
            kind,
            message,
            path: None,
            offset: None,
            source: Some(err),
        }
    }
    /// Attach the path this error concerns (kept if already set).
    pub fn with_path(mut self, path: impl AsRef<Path>) -> Self {
        if self.path.is_none() {
            self.path = Some(path.as_ref().to_path_buf());
        }
        self
    }
    /// Attach the byte offset this error concerns (kept if already set).
    pub fn at(mut self, offset: u64) -> Self {
        if self.offset.is_none() {
            self.offset = Some(offset);
        }
        self
    }
    /// The kind of error.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
    /// The message without path or offset.
    pub fn message(&self) -> &str {
        &self.message
    }
    /// The path, if known.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }
    /// The byte offset, if known.
    pub fn offset(&self) -> Option<u64> {
        self.offset
    }
}

/// Describe an I/O error without Rust's "(os error N)" noise.
fn describe_io(err: &io::Error) -> String {
    match err.raw_os_error() {
        Some(28) => "no space left on device".into(),
        Some(_) => {
            let s = err.to_string();
            match s.find(" (os error") {
                Some(i) => s[..i].to_lowercase(),
                None => s,
            }
        }
        None => err.to_string(),
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(p) = &self.path {
            write!(f, "{}: ", p.display())?;
        }
        f.write_str(&self.message)?;
        if let Some(o) = self.offset {
            write!(f, " (at byte {o})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_ref().map(|e| e as _)
    }
}

impl From<io::Error> for Error {
    fn from(err: io::Error) -> Self {
        Error::io("i/o error", err)
    }
}

/// Extension to turn `io::Result` into [`Result`] with a gerund context.
pub trait IoContext<T> {
    /// Wrap an I/O error as "`doing`: reason".
    fn ctx(self, doing: &str) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, doing: &str) -> Result<T> {
        self.map_err(|e| Error::io(doing, e))
    }
}
