//! GPT and MBR: `layout::read_table`, `layout::gpt::verify` and
//! `layout::gpt::grow` (then the grown disk read back) on the input as a
//! MemDisk (with the GPT CRCs recomputed when the first byte is odd).
//!
//! Seeds (scripts/fuzz.sh does this): `cloudimg-fuzz-seedgen` writes
//! `gpt-*.img` (GPT disks made by `gpt::create`, protective and hybrid
//! MBRs, damaged copies); shared/corpus/gpt-rs/gpt-disk.img and
//! util-linux/gpt.img.xz (decompressed) are added as they are.
#![no_main]

use cloudimg_disk::layout::{self, gpt};
use cloudimg_disk::{MemDisk, VirtualDisk};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut bytes = data.to_vec();
    if cloudimg_fuzz::fixing(data) {
        cloudimg_fuzz::fix_gpt(&mut bytes);
    }
    let disk = MemDisk::new(bytes);
    let _ = layout::read_table(&disk);
    let _ = gpt::verify(&disk);
    // Grow by 0..=255 sectors plus an odd amount chosen by the input.
    let extra = data.last().copied().unwrap_or(0) as u64;
    let new_size = (disk.size().div_ceil(512) + extra) * 512;
    for size in [new_size, disk.size(), new_size + 1] {
        if let Ok(grown) = gpt::grow(&disk, size) {
            let _ = layout::read_table(&grown);
            let _ = gpt::verify(&grown);
            let _ = grown.extents();
        }
    }
});
