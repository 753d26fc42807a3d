//! Errors of the image builder.

use std::io;
use std::path::PathBuf;

/// Why an image could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The options cannot describe a valid disk.
    #[error("invalid layout: {0}")]
    InvalidLayout(String),
    /// A file the image needs could not be read.
    #[error("reading {path}: {source}")]
    ReadInput {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A GRUB file is missing or malformed.
    #[error("grub: {0}")]
    Grub(String),
    /// A Limine release is incomplete, inconsistent or cannot install
    /// into the asked layout.
    #[error("limine: {0}")]
    Limine(String),
    /// An external tool (grub-mkimage) failed or is missing.
    #[error("running {tool}: {message}")]
    Tool {
        /// The program.
        tool: String,
        /// Its error output or the spawn error.
        message: String,
    },
    /// Building the FAT file system failed.
    #[error("building the EFI system partition: {0}")]
    Esp(String),
    /// The output file exists and replacing it was not asked for.
    #[error("{} exists; not replacing it (pass --force to replace it)", .0.display())]
    OutputExists(PathBuf),
    /// Writing the image failed.
    #[error("{doing}: {source}")]
    Io {
        /// What was being done, as a gerund phrase.
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

/// Result alias for the image builder.
pub type Result<T> = std::result::Result<T, Error>;
