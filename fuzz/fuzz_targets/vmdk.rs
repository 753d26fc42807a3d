//! VMDK sparse extent: header, embedded descriptor, markers, grain
//! directory and tables, grains: `formats::vmdk::open` (then reads and the
//! extent map) and `formats::vmdk::verify`, on the input in a memfd; the
//! descriptor parser also on the raw input.
//!
//! Seeds (scripts/fuzz.sh): `cloudimg-fuzz-seedgen` writes `vmdk-*.vmdk`
//! (stream-optimized, from `vmdk::write_stream_optimized`);
//! shared/corpus/vmdk-rs/streamOptimized.vmdk, dfvfs/ext2.vmdk and
//! qemu/sample_images/afl9.vmdk.bz2 (decompressed) are added as they are.
#![no_main]

use cloudimg_disk::formats::vmdk;
use cloudimg_disk::VirtualDisk;
use cloudimg_fuzz::{exercise, memfd, MAX_VERIFY_BYTES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = vmdk::descriptor::Descriptor::parse(data);
    let f = memfd(data);
    let size = match vmdk::open(f.try_clone().unwrap()) {
        Ok(d) => {
            exercise(&d);
            Some(d.size())
        }
        // A header the opener refuses still declares a size, which the
        // verifier hashes (a documented cost): bound it by the header.
        Err(_) => data.get(..512).and_then(|h| {
            let h: &[u8; 512] = h.try_into().ok()?;
            vmdk::wire::SparseExtentHeader::parse(h)
                .ok()
                .map(|h| h.capacity.saturating_mul(512))
        }),
    };
    if size.is_none_or(|s| s <= MAX_VERIFY_BYTES) {
        let _ = vmdk::verify(&f, Default::default()).map(|v| v.report);
    }
});
