//! The one file QEMU is given for an artifact, and the QEMU arguments of a
//! boot (issue 13: nothing but that file may reach the guest).

use std::path::{Path, PathBuf};

use cloudimg_disk::formats::table::{QemuDrive, QemuOpens};
use cloudimg_disk::formats::{self, Format};

use crate::error::{Error, Result};
use crate::harness::{BootOptions, DiskInterface, Firmware};

/// The file QEMU should open for `artifact` and its `format=` name, as
/// the format table says ([`QemuDrive`]): the artifact itself, or the
/// member a container holds (a GCP tarball's sparse `disk.raw`, an OVA's
/// VMDK) extracted into `scratch`. The path is absolute: QEMU takes a
/// relative `file=` name with a colon before any slash (`nbd:...`) as a
/// protocol (`path_has_protocol`, QEMU block.c), never as a file.
pub fn artifact_drive(artifact: &Path, scratch: &Path) -> Result<(PathBuf, Format, &'static str)> {
    let bad = |message: String| Error::Artifact {
        path: artifact.to_path_buf(),
        message,
    };
    let format = formats::detect(artifact).map_err(|e| bad(e.message().to_string()))?;
    match format.spec().qemu {
        QemuDrive::File { driver, opens } => {
            refuse_what_cloudimg_refuses(artifact, opens).map_err(bad)?;
            let path = std::path::absolute(artifact).map_err(|e| bad(e.to_string()))?;
            Ok((path, format, driver))
        }
        QemuDrive::Extracted {
            driver,
            opens,
            file_name,
            what,
            extract,
        } => {
            let out = scratch.join(file_name);
            let input = std::fs::File::open(artifact).map_err(|e| bad(format!("opening: {e}")))?;
            // `scratch` is the boot's private directory (mode 0700).
            let output = std::fs::File::create(&out)
                .map_err(|e| bad(format!("creating {}: {e}", out.display())))?;
            extract(&input, &output)
                .map_err(|e| bad(format!("extracting {what}: {}", e.message())))?;
            refuse_what_cloudimg_refuses(&out, opens).map_err(|m| bad(format!("{what}: {m}")))?;
            Ok((out, format, driver))
        }
        QemuDrive::None => Err(bad(format!("a {format} cannot be booted directly"))),
    }
}

/// QEMU opens what a file names: a QCOW2's backing file, a VMDK's
/// extents. Before QEMU sees a file that can name others
/// ([`QemuOpens::WhatItNames`]), cloudimg opens it itself, and a file
/// cloudimg refuses (a backing file, an external or several extents, a
/// header cloudimg does not read as qemu does) is not booted: QEMU then
/// never opens anything but the one file given.
fn refuse_what_cloudimg_refuses(drive: &Path, opens: QemuOpens) -> std::result::Result<(), String> {
    match opens {
        QemuOpens::OnlyTheFile => Ok(()),
        QemuOpens::WhatItNames => cloudimg_disk::formats::open::check_readable(drive)
            .map(drop)
            .map_err(|e| e.message().to_string()),
    }
}

/// A path as a QEMU option value: commas doubled (QEMU's escape).
pub(crate) fn qemu_path(p: &Path) -> String {
    p.display().to_string().replace(',', ",,")
}

/// The files of one boot QEMU writes or reads besides the disk.
pub(crate) struct BootFiles<'a> {
    /// The disk QEMU opens (from [`artifact_drive`]) and its driver.
    pub drive: &'a Path,
    /// QEMU's `format=` driver for it.
    pub format: &'a str,
    /// Where the serial console goes.
    pub serial: &'a Path,
    /// Where the firmware's debug port (0x402) goes.
    pub debugcon: &'a Path,
    /// The private copy of OVMF's variable store (UEFI).
    pub vars: Option<&'a Path>,
}

/// The I/O port SeaBIOS and OVMF write their debug text to on QEMU, as
/// QEMU's `isa-debugcon` device must be told (its default is 0xe9): SeaBIOS
/// docs/Debugging.md ("-device isa-debugcon,iobase=0x402"), the tianocore
/// wiki "How to debug OVMF with QEMU using GDB" ("-debugcon file:debug.log
/// -global isa-debugcon.iobase=0x402"). Debian's SeaBIOS writes its boot
/// messages there ("No bootable device."); Debian's OVMF is a release build
/// and writes nothing (both seen with QEMU 7.2).
const FIRMWARE_DEBUG_PORT: &str = "0x402";

/// The QEMU arguments (without the program) for one boot.
pub(crate) fn qemu_args(opts: &BootOptions, files: &BootFiles<'_>) -> Vec<String> {
    let mut a: Vec<String> = Vec::new();
    let mut push = |s: &[&str]| a.extend(s.iter().map(|x| x.to_string()));
    // IDE means the legacy PIIX controller of the `pc` machine (q35's
    // controller is AHCI); everything else runs on q35.
    let machine = if opts.disk == DiskInterface::Ide {
        "pc"
    } else {
        "q35"
    };
    push(&[
        "-machine",
        machine,
        "-accel",
        opts.accel.name(),
        "-m",
        &opts.memory_mib.to_string(),
    ]);
    push(&[
        "-display",
        "none",
        "-no-reboot",
        "-nodefaults",
        "-nic",
        "none",
        "-monitor",
        "none",
    ]);
    push(&["-serial", &format!("file:{}", files.serial.display())]);
    push(&["-debugcon", &format!("file:{}", files.debugcon.display())]);
    push(&[
        "-global",
        &format!("isa-debugcon.iobase={FIRMWARE_DEBUG_PORT}"),
    ]);
    push_firmware(opts, files.vars, &mut push);
    push(&[
        "-drive",
        &format!(
            "file={},format={},if=none,id=disk0,snapshot=on",
            qemu_path(files.drive),
            files.format
        ),
    ]);
    match opts.disk {
        DiskInterface::Virtio => push(&["-device", "virtio-blk-pci,drive=disk0,bootindex=0"]),
        DiskInterface::Nvme => push(&["-device", "nvme,serial=cloudimg0,drive=disk0,bootindex=0"]),
        DiskInterface::Scsi => {
            push(&["-device", "virtio-scsi-pci,id=scsi0"]);
            push(&["-device", "scsi-hd,bus=scsi0.0,drive=disk0,bootindex=0"]);
        }
        DiskInterface::Ide => push(&["-device", "ide-hd,bus=ide.0,drive=disk0,bootindex=0"]),
    }
    a
}

/// OVMF as two pflash drives (code read-only, the private variable
/// store copy), or a BIOS image when one is named.
fn push_firmware(opts: &BootOptions, vars: Option<&Path>, push: &mut impl FnMut(&[&str])) {
    match (opts.firmware, vars) {
        (Firmware::Uefi, Some(vars)) => {
            let code = &opts.firmware_paths.ovmf_code;
            push(&[
                "-drive",
                &format!(
                    "if=pflash,format=raw,unit=0,readonly=on,file={}",
                    qemu_path(code)
                ),
            ]);
            push(&[
                "-drive",
                &format!("if=pflash,format=raw,unit=1,file={}", qemu_path(vars)),
            ]);
        }
        _ => {
            if let Some(bios) = &opts.firmware_paths.bios {
                push(&["-bios", &bios.display().to_string()]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files<'a>(drive: &'a str, vars: Option<&'a str>) -> BootFiles<'a> {
        BootFiles {
            drive: Path::new(drive),
            format: "raw",
            serial: Path::new("/s.log"),
            debugcon: Path::new("/fw.log"),
            vars: vars.map(Path::new),
        }
    }

    #[test]
    fn qemu_args_attach_the_disk_read_only() {
        let mut o = BootOptions {
            disk: DiskInterface::Nvme,
            memory_mib: 300,
            ..BootOptions::new(Firmware::Uefi)
        };
        o.firmware_paths.ovmf_code = "/fw/OVMF_CODE_4M.fd".into();
        let s = qemu_args(&o, &files("/d.raw", Some("/v.fd"))).join(" ");
        assert!(
            s.contains("-drive file=/d.raw,format=raw,if=none,id=disk0,snapshot=on"),
            "{s}"
        );
        assert!(
            s.contains("-device nvme,serial=cloudimg0,drive=disk0"),
            "{s}"
        );
        assert!(
            s.contains("if=pflash,format=raw,unit=0,readonly=on,file=/fw/OVMF_CODE_4M.fd"),
            "{s}"
        );
        assert!(s.contains("if=pflash,format=raw,unit=1,file=/v.fd"), "{s}");
        assert!(s.contains("-m 300 "), "{s}");
        assert!(s.contains("-serial file:/s.log -"), "{s}");
        assert!(
            s.contains("-debugcon file:/fw.log -global isa-debugcon.iobase=0x402 "),
            "{s}"
        );
        let a = qemu_args(&o, &files("/a,b.raw", None));
        assert!(
            a.contains(&"file=/a,,b.raw,format=raw,if=none,id=disk0,snapshot=on".to_string()),
            "{a:?}"
        );
    }
}
