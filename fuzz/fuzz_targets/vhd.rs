//! VHD footer, dynamic header and BAT: `formats::vhd::open` (then reads
//! and the extent map) and `formats::vhd::verify`, on the input in a memfd (with the footer
//! and dynamic header checksums recomputed when the first byte is odd).
//!
//! Seeds (scripts/fuzz.sh): `cloudimg-fuzz-seedgen` writes `vhd-*.vhd`
//! (fixed VHDs from `vhd::write_fixed`, and a small dynamic VHD built by
//! hand); shared/corpus/qemu/sample_images/*.vhd.bz2 and afl5.img.bz2
//! (decompressed) are added as they are. dfvfs/ext2.vhd (2 MiB) is too
//! large for libFuzzer's default max_len and is left out.
#![no_main]

use cloudimg_disk::formats::vhd;
use cloudimg_fuzz::{exercise, memfd, MAX_VERIFY_BYTES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut bytes = data.to_vec();
    if cloudimg_fuzz::fixing(data) {
        cloudimg_fuzz::fix_vhd(&mut bytes);
    }
    let f = memfd(&bytes);
    let size = match vhd::open(f.try_clone().unwrap()) {
        Ok(d) => {
            exercise(&d);
            Some(d.size())
        }
        // A file the opener refuses still declares a size in each footer
        // copy, which the verifier may hash (a documented cost): bound it
        // by the largest either copy declares.
        Err(_) => Some(declared(&bytes)),
    };
    if size.is_none_or(|s| s <= MAX_VERIFY_BYTES) {
        let _ = vhd::verify(&f, Default::default()).map(|v| v.report);
    }
});

/// The largest disk size the footer copies at the start and end declare.
fn declared(b: &[u8]) -> u64 {
    let copies = [
        b.get(..512),
        b.len().checked_sub(512).and_then(|at| b.get(at..)),
    ];
    copies
        .into_iter()
        .flatten()
        .filter_map(|c| <&[u8; 512]>::try_from(c).ok())
        .map(|c| {
            let f = vhd::wire::VhdFooter::parse(c);
            f.virtual_size()
                .max(f.virtual_size_qemu10())
                .max(f.chs_bytes())
        })
        .max()
        .unwrap_or(0)
}
