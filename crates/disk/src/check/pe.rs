//! The PE checks of the UEFI loader (PE format: DOS header `e_lfanew` at
//! 0x3C, `PE\0\0`, COFF Machine, optional header Magic and Subsystem).

use super::{PE32_PLUS_MAGIC, PE_MACHINE_X86_64, PE_SUBSYSTEM_EFI_APPLICATION};

/// Whether `b` is a PE32+ x86-64 EFI application; the first reason not.
pub fn pe_efi_app(b: &[u8]) -> std::result::Result<(), String> {
    let u16at = |i: usize| b.get(i..i + 2).map(|s| u16::from_le_bytes([s[0], s[1]]));
    let u32at = |i: usize| {
        b.get(i..i + 4)
            .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    };
    if b.is_empty() {
        return Err("is empty".into());
    }
    if !b.starts_with(b"MZ") {
        return Err("is not a PE image: no MZ signature".into());
    }
    let pe = u32at(0x3C).ok_or("is not a PE image: truncated DOS header")? as usize;
    if b.get(pe..pe + 4) != Some(b"PE\0\0") {
        return Err(format!(
            "is not a PE image: no PE\\0\\0 signature at byte {pe}"
        ));
    }
    let machine = u16at(pe + 4).ok_or("is a truncated PE image")?;
    if machine != PE_MACHINE_X86_64 {
        let what = match machine {
            0x014C => " (i386)",
            0xAA64 => " (arm64)",
            0x5064 => " (riscv64)",
            _ => "",
        };
        return Err(format!(
            "is a PE image for machine {machine:#06x}{what}, not x86-64 (0x8664)"
        ));
    }
    let opt = pe + 24;
    let magic = u16at(opt).ok_or("is a truncated PE image (no optional header)")?;
    if magic != PE32_PLUS_MAGIC {
        return Err(format!(
            "has optional header magic {magic:#06x}, not PE32+ (0x020b)"
        ));
    }
    let subsystem = u16at(opt + 68).ok_or("is a truncated PE image (short optional header)")?;
    if subsystem != PE_SUBSYSTEM_EFI_APPLICATION {
        return Err(format!(
            "has PE subsystem {subsystem}, not EFI application (10)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pe_checks_name_the_reason() {
        let mut b = vec![0u8; 512];
        b[0..2].copy_from_slice(b"MZ");
        b[0x3C] = 0x80;
        b[0x80..0x84].copy_from_slice(b"PE\0\0");
        b[0x84..0x86].copy_from_slice(&0x8664u16.to_le_bytes());
        b[0x98..0x9A].copy_from_slice(&0x20Bu16.to_le_bytes());
        b[0x98 + 68..0x98 + 70].copy_from_slice(&10u16.to_le_bytes());
        assert_eq!(pe_efi_app(&b), Ok(()));
        b[0x84..0x86].copy_from_slice(&0xAA64u16.to_le_bytes());
        assert_eq!(
            pe_efi_app(&b).unwrap_err(),
            "is a PE image for machine 0xaa64 (arm64), not x86-64 (0x8664)"
        );
        b[0x84..0x86].copy_from_slice(&0x8664u16.to_le_bytes());
        b[0x98 + 68] = 3;
        assert_eq!(
            pe_efi_app(&b).unwrap_err(),
            "has PE subsystem 3, not EFI application (10)"
        );
        b[0x3C] = 0xFF;
        b[0x3D] = 0xFF;
        assert_eq!(
            pe_efi_app(&b).unwrap_err(),
            "is not a PE image: no PE\\0\\0 signature at byte 65535"
        );
        assert_eq!(pe_efi_app(b"").unwrap_err(), "is empty");
    }
}
