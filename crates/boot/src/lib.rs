//! cloudimg-boot: boot a disk image under QEMU with OVMF (UEFI) or
//! SeaBIOS (BIOS) and watch its serial console for a landmark line.
//!
//! The artifact is attached with `snapshot=on`, so it is never modified.
//! Every QEMU child and temporary directory is registered so that
//! [`cleanup`] (called from the CLI's Ctrl-C handler) can kill and remove
//! them; they are also removed when a boot returns.
#![deny(missing_docs)]

pub mod error;
pub mod harness;
pub mod record;

pub use error::{Error, Result};
pub use harness::{
    artifact_drive, boot, cleanup, Accel, BootOptions, DiskInterface, Firmware, FirmwarePaths,
};
pub use record::BootRecord;
