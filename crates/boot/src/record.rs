//! The evidence of one boot, written as JSON to the log directory.

use std::path::PathBuf;

use serde::Serialize;

use crate::serial::FailOnMatch;

/// What happened in one boot.
#[derive(Debug, Clone, Serialize)]
pub struct BootRecord {
    /// The artifact as given.
    pub artifact: PathBuf,
    /// SHA-256 of the artifact's bytes.
    pub artifact_sha256: String,
    /// The detected format.
    pub artifact_format: String,
    /// `uefi` or `bios`.
    pub firmware: String,
    /// `virtio`, `nvme`, `scsi` or `ide`.
    pub disk_interface: String,
    /// `tcg` or `kvm`.
    pub accel: String,
    /// The line waited for.
    pub landmark: String,
    /// Whether the landmark appeared in time.
    pub passed: bool,
    /// Seconds from QEMU's start to the landmark.
    pub seconds_to_landmark: Option<f64>,
    /// The time allowed.
    pub timeout_seconds: f64,
    /// Why the boot failed.
    pub failure: Option<String>,
    /// The last lines of the serial console.
    pub serial_tail: String,
    /// The serial log kept in the log directory, if one was given.
    pub serial_log: Option<PathBuf>,
    /// This record's path, if a log directory was given.
    pub record_path: Option<PathBuf>,
    /// The QEMU command line (program first).
    pub qemu_command: Vec<String>,
    /// Guest memory, in bytes.
    pub memory_bytes: u64,
    /// The `--fail-on` texts watched for.
    pub fail_on: Vec<String>,
    /// The `--fail-on` text that failed the boot, with its line.
    pub fail_on_match: Option<FailOnMatch>,
    /// The firmware's debug output (I/O port 0x402) kept in the log
    /// directory, if one was given.
    pub firmware_log: Option<PathBuf>,
    /// The last lines of the firmware's debug output (empty for a
    /// firmware that prints none, as Debian's release build of OVMF).
    pub firmware_tail: String,
}

impl BootRecord {
    /// A one-line summary.
    pub fn summary(&self) -> String {
        match (self.passed, self.seconds_to_landmark, &self.failure) {
            (true, Some(s), _) => format!(
                "PASS {} {}: {:?} after {s:.2} s ({})",
                self.firmware,
                self.disk_interface,
                self.landmark,
                self.artifact.display()
            ),
            (_, _, f) => format!(
                "FAIL {} {}: {} ({})",
                self.firmware,
                self.disk_interface,
                f.as_deref().unwrap_or("unknown failure"),
                self.artifact.display()
            ),
        }
    }
}
