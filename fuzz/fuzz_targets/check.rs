//! Preflight `check::check` (MBR, GPT, boot code and stage 2, FAT12/16/32
//! with long names, grub.cfg and limine.conf parsers, the kernel they
//! name, PE headers of the loader) on a `MemDisk` made from the input
//! (page-encoded, see `cloudimg_fuzz::page_records`; at most 64 MiB,
//! padded to a whole number of sectors), with the GPT CRCs recomputed when
//! the first byte is odd; `check::pe_efi_app` on the raw input.
//!
//! Seeds (scripts/fuzz.sh): `cloudimg-fuzz-seedgen` writes `check-*`
//! (GPT disks with an ESP: FAT32 made by cloudimg-image's `build_esp`,
//! FAT12 and FAT16 formatted by `fatfs`, holding BOOTX64.EFI, grub.cfg or
//! limine.conf and a kernel; page-encoded) and the raw GPT seeds
//! page-encoded.
#![no_main]

use cloudimg_disk::{check, MemDisk};
use cloudimg_fuzz::{pages_vec, MAX_READ_BYTES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = check::pe_efi_app(data);
    let mut bytes = pages_vec(data, MAX_READ_BYTES);
    bytes.resize(bytes.len().div_ceil(512) * 512, 0);
    if cloudimg_fuzz::fixing(data) {
        cloudimg_fuzz::fix_gpt(&mut bytes);
    }
    let disk = MemDisk::new(bytes);
    let _ = check::check(&disk, &[]);
});
