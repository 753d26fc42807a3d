//! Findings and reports shared by every format's deep verifier.
//!
//! A verifier decodes an artifact in full and reports *every* problem it
//! finds, each with the byte offset it concerns. An artifact that cannot
//! be decoded at all is an error (`Err`), not a report.

use serde::Serialize;

use crate::formats::Format;
use crate::io::Sha256Hex;

/// Which layer of an artifact a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Layer {
    /// The container format (footer, header, markers, tar, gzip); offsets
    /// are in the artifact file (or the tar stream, as the message says).
    Container,
    /// The decoded virtual disk's own structures (its GPT); offsets are in
    /// the decoded disk.
    Disk,
    /// A provider's rule for the shape, not a fault in decoding it (a GCP
    /// tarball's disk that is not a whole GiB, a POSIX ustar header where
    /// GCP wants oldgnu): the artifact is unfit for that provider, yet it
    /// reads unambiguously, so it may still be an input.
    Provider,
}

/// One problem found in an artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Byte offset (in the artifact for container findings, in the decoded
    /// disk for disk findings).
    pub offset: Option<u64>,
    /// What is wrong, in one line.
    pub message: String,
    /// The layer it is about.
    pub layer: Layer,
}

impl Finding {
    /// A finding at `offset`.
    pub fn at(offset: u64, message: impl Into<String>) -> Self {
        Finding {
            offset: Some(offset),
            message: message.into(),
            layer: Layer::Container,
        }
    }
    /// A finding about the artifact as a whole.
    pub fn whole(message: impl Into<String>) -> Self {
        Finding {
            offset: None,
            message: message.into(),
            layer: Layer::Container,
        }
    }
    /// The same finding, about a provider's rule for the shape.
    pub fn provider_rule(mut self) -> Self {
        self.layer = Layer::Provider;
        self
    }
    /// The same finding, about the decoded disk.
    pub fn in_disk(mut self) -> Self {
        self.layer = Layer::Disk;
        self
    }
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.offset {
            Some(o) => write!(f, "at byte {o}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// The result of decoding and checking one artifact.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Detected format.
    pub format: Format,
    /// Size of the artifact file in bytes.
    pub file_size: u64,
    /// Size of the decoded virtual disk, if decoding got that far.
    pub virtual_size: Option<u64>,
    /// SHA-256 of the decoded virtual disk, if it was decoded in full.
    pub virtual_sha256: Option<Sha256Hex>,
    /// Every problem found; empty means the artifact is sound.
    pub findings: Vec<Finding>,
    /// Facts read from the artifact (format-specific), for `--json`.
    pub details: serde_json::Map<String, serde_json::Value>,
}

impl Report {
    /// An empty report for `format`.
    pub fn new(format: Format, file_size: u64) -> Self {
        Report {
            format,
            file_size,
            virtual_size: None,
            virtual_sha256: None,
            findings: Vec::new(),
            details: serde_json::Map::new(),
        }
    }
    /// Record a finding.
    pub fn push(&mut self, f: Finding) {
        self.findings.push(f);
    }
    /// Record a fact.
    pub fn detail(&mut self, key: &str, value: impl Into<serde_json::Value>) {
        self.details.insert(key.to_string(), value.into());
    }
    /// True when nothing was found wrong.
    pub fn is_ok(&self) -> bool {
        self.findings.is_empty()
    }
}

impl Serialize for Sha256Hex {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}
