//! Errors that keep a boot from being tried at all (a failed boot is a
//! [`BootRecord`](crate::BootRecord) with `passed: false`).

use std::io;
use std::path::PathBuf;

/// Why a boot could not be run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The artifact cannot be given to QEMU.
    #[error("{path}: {message}")]
    Artifact {
        /// The artifact.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A firmware file is missing.
    #[error("firmware file {path} is missing: {hint}")]
    Firmware {
        /// The file.
        path: PathBuf,
        /// How to get it.
        hint: &'static str,
    },
    /// QEMU could not be started.
    #[error("starting {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// The cause.
        source: io::Error,
    },
    /// A file operation failed.
    #[error("{doing}: {source}")]
    Io {
        /// What was being done.
        doing: String,
        /// The cause.
        source: io::Error,
    },
}

impl Error {
    pub(crate) fn io(doing: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            doing: doing.into(),
            source,
        }
    }
}

/// Result alias.
pub type Result<T> = std::result::Result<T, Error>;
