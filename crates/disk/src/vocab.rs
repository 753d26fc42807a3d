//! The words every crate shares: which firmware starts a disk (and,
//! in time, which provider it is for). `check`, `boot` and the CLI all
//! use these types rather than their own.

use serde::Serialize;

/// How the firmware starts the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Firmware {
    /// Legacy BIOS (SeaBIOS under QEMU): MBR boot code.
    Bios,
    /// UEFI (OVMF under QEMU): `/EFI/BOOT/BOOTX64.EFI` on the ESP.
    Uefi,
}

impl Firmware {
    /// `BIOS`, `UEFI`: the name in messages.
    pub fn name(self) -> &'static str {
        match self {
            Firmware::Bios => "BIOS",
            Firmware::Uefi => "UEFI",
        }
    }

    /// `bios`, `uefi`: the name in file names, JSON and command lines.
    pub fn id(self) -> &'static str {
        match self {
            Firmware::Bios => "bios",
            Firmware::Uefi => "uefi",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn firmware_id_is_its_json_name() {
        for fw in [Firmware::Bios, Firmware::Uefi] {
            assert_eq!(serde_json::to_value(fw).unwrap(), fw.id());
            assert_eq!(fw.name(), fw.id().to_uppercase());
        }
    }
}
