//! Firmware files: OVMF (UEFI) found where Debian, Fedora and Arch
//! install it, its variable store copied for each boot, and SeaBIOS
//! (QEMU's default BIOS) or a BIOS image named by the caller.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::harness::{BootOptions, Firmware};

/// Where distributions install OVMF: (code, variable-store template)
/// pairs, in the order they are tried. A code file only works with the
/// variable store built with it, so they go in pairs.
///
/// - Debian and Ubuntu, package `ovmf`: the 4 MiB pair, and the 2 MiB one
///   older releases ship (Debian's `ovmf` README.Debian; both seen on
///   this Debian 12 host).
/// - Fedora, package `edk2-ovmf`: `/usr/share/edk2/ovmf/OVMF_CODE.fd`
///   (PhyllomeOS wiki "Virtualization paths on Linux", based on Fedora);
///   `OVMF_VARS.fd` beside it [U: the VARS name is inferred, not seen].
/// - Arch, package `edk2-ovmf`: `/usr/share/edk2/x64/OVMF_CODE.4m.fd`
///   and `OVMF_VARS.4m.fd` (the package's file list), and the
///   `OVMF_CODE.fd`/`OVMF_VARS.fd` names older releases used (seen in
///   scripts written for Arch, e.g. memflow-efi `scripts/run_with_qemu.sh`).
pub const OVMF_CANDIDATES: [(&str, &str); 5] = [
    (
        "/usr/share/OVMF/OVMF_CODE_4M.fd",
        "/usr/share/OVMF/OVMF_VARS_4M.fd",
    ),
    (
        "/usr/share/OVMF/OVMF_CODE.fd",
        "/usr/share/OVMF/OVMF_VARS.fd",
    ),
    (
        "/usr/share/edk2/ovmf/OVMF_CODE.fd",
        "/usr/share/edk2/ovmf/OVMF_VARS.fd",
    ),
    (
        "/usr/share/edk2/x64/OVMF_CODE.4m.fd",
        "/usr/share/edk2/x64/OVMF_VARS.4m.fd",
    ),
    (
        "/usr/share/edk2/x64/OVMF_CODE.fd",
        "/usr/share/edk2/x64/OVMF_VARS.fd",
    ),
];

/// What to do when OVMF is missing.
pub const OVMF_HINT: &str = "install the ovmf package (Debian, Ubuntu) or edk2-ovmf \
     (Fedora, Arch), or name the files with --ovmf CODE,VARS";

/// What to do when SeaBIOS is missing. Fedora's package name is
/// `seabios-bin` [U: not confirmed at its source].
pub const SEABIOS_HINT: &str = "install the seabios package (Debian, Ubuntu, Arch) or \
     seabios-bin (Fedora), or name a BIOS image with --bios PATH";

/// What QEMU prints when it cannot load its BIOS, then exits 1
/// (`x86_bios_rom_init`, hw/i386/x86.c: "qemu: could not load PC BIOS
/// '%s'"; seen with QEMU 7.2 and `-bios nonexistent.bin`).
const QEMU_NO_BIOS: &str = "could not load PC BIOS '";

/// Firmware files.
#[derive(Debug, Clone)]
pub struct FirmwarePaths {
    /// OVMF code, attached read-only.
    pub ovmf_code: PathBuf,
    /// OVMF variable store template, copied for each boot (never written).
    pub ovmf_vars: PathBuf,
    /// The BIOS image (None: QEMU's default, SeaBIOS).
    pub bios: Option<PathBuf>,
}

impl Default for FirmwarePaths {
    /// The first of [`OVMF_CANDIDATES`] installed (Debian's names when
    /// none is: a UEFI boot then fails naming the package), and QEMU's
    /// default BIOS.
    fn default() -> Self {
        let (code, vars) = OVMF_CANDIDATES
            .iter()
            .find(|(c, v)| Path::new(c).is_file() && Path::new(v).is_file())
            .unwrap_or(&OVMF_CANDIDATES[0]);
        FirmwarePaths {
            ovmf_code: code.into(),
            ovmf_vars: vars.into(),
            bios: None,
        }
    }
}

impl FirmwarePaths {
    /// Check that the files a boot with `firmware` needs are there (the
    /// error names the file and the package to install), so that a run of
    /// several boots can refuse before the first.
    pub fn check(&self, firmware: Firmware) -> Result<()> {
        match firmware {
            Firmware::Uefi => {
                require(&self.ovmf_code, OVMF_HINT)?;
                require(&self.ovmf_vars, OVMF_HINT)
            }
            Firmware::Bios => self
                .bios
                .as_deref()
                .map_or(Ok(()), |b| require(b, SEABIOS_HINT)),
        }
    }

    /// The variable store beside an OVMF code file, named as every
    /// distribution above names it: `CODE` replaced by `VARS` in the file
    /// name (`OVMF_CODE_4M.fd` → `OVMF_VARS_4M.fd`). `None` when the name
    /// has no `CODE`.
    pub fn ovmf_vars_beside(code: &Path) -> Option<PathBuf> {
        let name = code.file_name()?.to_str()?;
        name.contains("CODE")
            .then(|| code.with_file_name(name.replacen("CODE", "VARS", 1)))
    }
}

/// A firmware file that must be there.
fn require(path: &Path, hint: &'static str) -> Result<()> {
    if path.is_file() {
        Ok(())
    } else {
        Err(Error::Firmware {
            path: path.to_path_buf(),
            hint,
        })
    }
}

/// Check the firmware files a boot needs, and for UEFI copy OVMF's
/// variable store into the private directory `dir` (QEMU writes to the
/// copy; the template is never written). The copy's path, for UEFI.
pub(crate) fn prepare(opts: &BootOptions, dir: &Path) -> Result<Option<PathBuf>> {
    let fw = &opts.firmware_paths;
    fw.check(opts.firmware)?;
    match opts.firmware {
        Firmware::Uefi => {
            let vars = dir.join("OVMF_VARS.fd");
            fs::copy(&fw.ovmf_vars, &vars)
                .map_err(|e| Error::io(format!("copying {}", fw.ovmf_vars.display()), e))?;
            Ok(Some(vars))
        }
        Firmware::Bios => Ok(None),
    }
}

/// The firmware error QEMU's stderr reports, if any: its default BIOS
/// (SeaBIOS) not installed.
pub(crate) fn missing_from_qemu_stderr(stderr: &str) -> Option<Error> {
    let at = stderr.find(QEMU_NO_BIOS)? + QEMU_NO_BIOS.len();
    let name = stderr[at..].split('\'').next().unwrap_or_default();
    Some(Error::Firmware {
        path: PathBuf::from(name),
        hint: SEABIOS_HINT,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vars_are_named_beside_code() {
        let v = |c: &str| FirmwarePaths::ovmf_vars_beside(Path::new(c));
        assert_eq!(
            v("/usr/share/OVMF/OVMF_CODE_4M.fd").unwrap(),
            Path::new("/usr/share/OVMF/OVMF_VARS_4M.fd")
        );
        assert_eq!(
            v("/usr/share/edk2/x64/OVMF_CODE.4m.fd").unwrap(),
            Path::new("/usr/share/edk2/x64/OVMF_VARS.4m.fd")
        );
        assert_eq!(v("/fw/OVMF.fd"), None);
    }

    #[test]
    fn qemu_without_its_bios_is_a_firmware_error() {
        let e = missing_from_qemu_stderr("qemu: could not load PC BIOS 'bios-256k.bin'\n").unwrap();
        assert_eq!(
            e.to_string(),
            format!("firmware file bios-256k.bin is missing: {SEABIOS_HINT}")
        );
        assert!(missing_from_qemu_stderr("qemu: some other trouble").is_none());
    }
}
