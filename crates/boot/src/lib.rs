//! cloudimg-boot: boot a disk image under QEMU with OVMF (UEFI) or
//! SeaBIOS (BIOS) and watch its serial console for a landmark line.
//!
//! The artifact is attached with `snapshot=on`, so it is never modified;
//! QEMU opens no file the artifact names ([`drive`]). The serial console
//! is watched for the landmark and for `--fail-on` texts, and can be
//! streamed live ([`BootWatcher`]); the firmware's debug port is kept
//! beside it.
//! Every QEMU child and temporary directory is registered so that
//! [`cleanup`] (called from the CLI's Ctrl-C handler) can kill and remove
//! them; they are also removed when a boot returns.
#![deny(missing_docs)]

pub mod drive;
pub mod error;
pub mod firmware;
pub mod harness;
pub mod record;
pub mod serial;

pub use drive::artifact_drive;
pub use error::{Error, Result};
pub use firmware::FirmwarePaths;
pub use harness::{boot, cleanup, Accel, BootOptions, DiskInterface, Firmware};
pub use record::BootRecord;
pub use serial::{BootWatcher, ConsoleFilter, FailOnMatch};
