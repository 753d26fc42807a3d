//! The crate's error: a kind (what the caller may act on) and a one-line
//! message naming the failed step and the provider's reason.

use serde::Serialize;

/// What went wrong, broadly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// `gcloud`/`gsutil`/`aws` is not on PATH.
    MissingCli,
    /// The provider refused for lack of permission (IAM, the `vmimport`
    /// role, no credentials).
    Permission,
    /// A quota or limit was hit.
    Quota,
    /// The provider rejected the import of the artifact.
    ImportFailed,
    /// A CLI command failed for another reason.
    CommandFailed,
    /// A CLI answered with output that could not be understood.
    BadOutput,
    /// A step or the landmark wait ran out of time.
    Timeout,
    /// The run was interrupted (Ctrl-C, SIGTERM).
    Interrupted,
    /// The artifact is missing, unverifiable or not what was asked for.
    Artifact,
    /// Bad arguments (names, formats).
    InvalidInput,
    /// Local I/O (evidence directory, journal).
    Io,
}

/// An error with its kind and a one-line message.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    /// What went wrong.
    pub kind: ErrorKind,
    /// One line naming the problem.
    pub message: String,
}

impl Error {
    /// An error of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into().replace('\n', " "),
        }
    }

    /// Local I/O failed while `doing` something with `path`.
    pub fn io(doing: &str, path: &std::path::Path, e: std::io::Error) -> Self {
        Error::new(ErrorKind::Io, format!("{doing} {}: {e}", path.display()))
    }
}

/// The crate's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
