//! `cloudimg boot ARTIFACT`: boot an image under QEMU and wait for a
//! landmark on the serial console.
//!
//! The CLI's Ctrl-C handler should call [`cloudimg_boot::cleanup`] to
//! kill running QEMU children and remove temporary files.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args as ClapArgs, ValueEnum};

use cloudimg_boot::{Accel, BootOptions, DiskInterface, Firmware};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum FirmwareArg {
    Uefi,
    Bios,
    Both,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DiskArg {
    Virtio,
    Nvme,
    Scsi,
    Ide,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum AccelArg {
    Tcg,
    Kvm,
}

/// `cloudimg boot ...`
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// The image: raw, VHD, VMDK, QCOW2 or VHDX (the artifact is never
    /// modified: QEMU runs it as a snapshot).
    artifact: PathBuf,
    /// Which firmware to boot with.
    #[arg(long, value_enum, default_value = "both")]
    firmware: FirmwareArg,
    /// How the disk is attached.
    #[arg(long, value_enum, default_value = "virtio")]
    disk: DiskArg,
    /// The serial console line that means success.
    #[arg(long, default_value = "capos kernel starting")]
    expect: String,
    /// Seconds to wait for the landmark, per firmware.
    #[arg(long, default_value_t = 60.0)]
    timeout: f64,
    /// Directory for the serial logs and JSON records.
    #[arg(long)]
    log: Option<PathBuf>,
    /// QEMU accelerator (KVM fails with OVMF on some hosts).
    #[arg(long, value_enum, default_value = "tcg")]
    accel: AccelArg,
}

/// Run `cloudimg boot`. Exit code 0 when every boot passed, 1 when one
/// failed.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let firmwares: &[Firmware] = match args.firmware {
        FirmwareArg::Uefi => &[Firmware::Uefi],
        FirmwareArg::Bios => &[Firmware::Bios],
        FirmwareArg::Both => &[Firmware::Bios, Firmware::Uefi],
    };
    if !(args.timeout > 0.0 && args.timeout <= super::MAX_SECONDS as f64) {
        anyhow::bail!(
            "--timeout must be a positive number of seconds, at most {} (a week)",
            super::MAX_SECONDS
        );
    }
    // A file cloudimg does not read (compressed, VDI, ...) is refused in
    // one line before any firmware is tried.
    cloudimg_disk::formats::detect(&args.artifact)?;
    let mut all_passed = true;
    for &fw in firmwares {
        let mut opts = BootOptions::new(fw);
        opts.disk = match args.disk {
            DiskArg::Virtio => DiskInterface::Virtio,
            DiskArg::Nvme => DiskInterface::Nvme,
            DiskArg::Scsi => DiskInterface::Scsi,
            DiskArg::Ide => DiskInterface::Ide,
        };
        opts.accel = match args.accel {
            AccelArg::Tcg => Accel::Tcg,
            AccelArg::Kvm => Accel::Kvm,
        };
        opts.expect = args.expect.clone();
        opts.timeout = Duration::from_secs_f64(args.timeout);
        opts.log_dir = args.log.clone();
        let record = cloudimg_boot::boot(&args.artifact, &opts);
        // A signal kills QEMU: that boot's failure is not worth reporting.
        crate::signals::settle();
        let record = record
            .with_context(|| format!("booting {} with {}", args.artifact.display(), fw.id()))?;
        super::outln!("{}", record.summary())?;
        if !record.passed {
            all_passed = false;
            eprintln!("serial console (last lines):\n{}", record.serial_tail);
        }
        if let Some(p) = &record.record_path {
            super::outln!("evidence: {}", p.display())?;
        }
    }
    Ok(if all_passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
