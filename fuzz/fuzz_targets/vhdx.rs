//! VHDX headers, region tables, metadata, BAT, sector bitmaps and log
//! replay: `formats::vhdx::open` (a few reads, then the whole disk through
//! its extent map when at most 64 MiB) and `formats::vhdx::verify`, on the
//! input in a memfd, with the CRC-32C checksums (headers, region tables,
//! log entries) recomputed when the first byte is odd. Reader and verifier
//! must decode the same disk when the verifier finds nothing wrong with
//! the container.
//!
//! A VHDX is at least a few MiB, nearly all zeros (1 MiB header section,
//! 1 MiB-aligned regions), so an input starting with `vhdxfile` is the
//! file itself but any other input is page-encoded (see
//! `cloudimg_fuzz::page_records`).
//!
//! Bound: the verifier runs only when the declared virtual size is at most
//! 64 MiB (or the metadata cannot be parsed): it hashes the whole declared
//! disk (proportional to the declared size, not a bug).
//!
//! Seeds (scripts/fuzz.sh): `cloudimg-fuzz-seedgen` writes `vhdx-*`
//! (`vhdx::write_dynamic`, page-encoded);
//! shared/corpus/qemu/sample_images/*.vhdx.bz2 are decompressed and
//! page-encoded by `cloudimg-fuzz-seedgen --encode`.
#![no_main]

use std::os::unix::fs::FileExt;

use cloudimg_disk::formats::vhdx;
use cloudimg_fuzz::{agree, exercise, input_file, read_all, MAX_READ_BYTES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let f = input_file(data, b"vhdxfile");
    if cloudimg_fuzz::fixing(data) {
        // Fix the checksums of the first 8 MiB (headers, region tables
        // and, in our seeds, the log).
        let len = f.metadata().unwrap().len().min(8 << 20) as usize;
        let mut head = vec![0u8; len];
        f.read_exact_at(&mut head, 0).unwrap();
        cloudimg_fuzz::fix_vhdx(&mut head);
        f.write_all_at(&head, 0).unwrap();
    }
    let (read, size) = match vhdx::open(f.try_clone().unwrap()) {
        Ok(d) => {
            exercise(&*d);
            (read_all(&*d), Some(d.size()))
        }
        Err(_) => (None, None),
    };
    let size = size.or_else(|| {
        vhdx::reader::parse(f.try_clone().unwrap(), &mut Vec::new())
            .ok()
            .map(|i| i.params.virtual_size)
    });
    if size.is_none_or(|s| s <= MAX_READ_BYTES) {
        let report = vhdx::verify(&f, Default::default()).map(|v| v.report);
        agree(read, &report);
    }
});
