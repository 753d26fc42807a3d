//! The UEFI path: the EFI system partition (`esp`) and the removable-media
//! loader on it (`efi-loader`).

use super::{fat, find, fix, pe_efi_app, Ctx, Firmware, Part, Status};
use super::{EFI_LOADER_PATH, ESP_TYPE, MAX_FILE_READ};

/// The ESP, opened.
pub(super) struct Esp<'a> {
    pub(super) index: u32,
    pub(super) fs: fat::Fat<'a>,
}

/// Read a file whole (at most [`MAX_FILE_READ`] bytes).
pub(super) fn read_file(esp: &Esp<'_>, path: &str) -> std::result::Result<Vec<u8>, String> {
    let f = esp.fs.lookup(path)?;
    esp.fs.read(&f, MAX_FILE_READ)
}

pub(super) fn check_uefi<'a>(cx: &mut Ctx<'a>, parts: Option<&[Part]>) -> Option<Esp<'a>> {
    let uefi = Some(Firmware::Uefi);
    let Some(parts) = parts else {
        cx.push(
            "esp",
            "EFI system partition",
            Status::Fail,
            "no readable partition table, so no ESP",
            fix("see the gpt check"),
            uefi,
        );
        return None;
    };
    let esps: Vec<&Part> = parts.iter().filter(|p| p.esp).collect();
    let Some(p) = esps.first() else {
        cx.push(
            "esp",
            "EFI system partition",
            Status::Fail,
            format!("no partition of the ESP type {ESP_TYPE} among {}", parts.len()),
            fix("add an ESP (sgdisk -n 0:0:+128M -t 0:EF00) with a FAT32 file system holding /EFI/BOOT/BOOTX64.EFI"),
            uefi,
        );
        return None;
    };
    let fs = match fat::Fat::open(cx.disk, p.offset(), p.len()) {
        Ok(fs) => fs,
        Err(e) => {
            cx.push(
                "esp",
                format!("EFI system partition {}", p.index),
                Status::Fail,
                format!("partition {}: {e}", p.index),
                fix("format it FAT32 (mkfs.fat -F 32) and install the loader again"),
                uefi,
            );
            return None;
        }
    };
    let fat = fs.kind();
    cx.push(
        "esp",
        format!("EFI system partition {}", p.index),
        if esps.len() > 1 {
            Status::Warn
        } else {
            Status::Pass
        },
        if esps.len() > 1 {
            format!(
                "{} ESPs; firmware may boot any of them; partition {} checked ({fat})",
                esps.len(),
                p.index
            )
        } else {
            format!(
                "partition {} (LBA {}+{}), {fat}",
                p.index, p.first_lba, p.sectors
            )
        },
        fix("keep one ESP"),
        uefi,
    );
    let esp = Esp { index: p.index, fs };
    let subject = EFI_LOADER_PATH;
    let reinstall = fix("install a x86-64 UEFI loader at /EFI/BOOT/BOOTX64.EFI (grub-install --target=x86_64-efi --removable, or copy Limine's BOOTX64.EFI)");
    match read_file(&esp, EFI_LOADER_PATH) {
        Err(e) => cx.push(
            "efi-loader",
            subject,
            Status::Fail,
            format!("not on the ESP ({e}): UEFI firmware has nothing to boot from this disk"),
            reinstall,
            uefi,
        ),
        Ok(bytes) => match pe_efi_app(&bytes) {
            Err(e) => cx.push("efi-loader", subject, Status::Fail, e, reinstall, uefi),
            Ok(()) => {
                let who = if find(&bytes, b"GNU GRUB").is_some() {
                    "GRUB"
                } else if find(&bytes, b"Limine").is_some() {
                    "Limine"
                } else {
                    "unrecognised loader"
                };
                cx.push(
                    "efi-loader",
                    subject,
                    Status::Pass,
                    format!(
                        "{} bytes, PE32+ x86-64 EFI application ({who})",
                        bytes.len()
                    ),
                    None,
                    uefi,
                );
            }
        },
    }
    Some(esp)
}
