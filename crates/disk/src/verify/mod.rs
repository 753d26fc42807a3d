//! Verification: the findings and reports every format's deep verifier
//! produces ([`findings`]), decoding any artifact in full by its format
//! ([`artifact`]), and re-checking everything a `manifest.json` lists
//! ([`manifest`]). `package`, `cloudimg verify` and the `cloud` crate all
//! verify through here.

pub mod artifact;
pub mod findings;
pub mod manifest;

pub use crate::formats::table::VerifyOptions;
pub use artifact::{check_report, disk_findings, verify_file, verify_file_with, verify_path};
pub use findings::*;
pub use manifest::{is_manifest, read_manifest, verify_manifest, ManifestCheck};
