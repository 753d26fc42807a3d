//! QCOW2 header, extensions, L1/L2 tables, refcounts, compressed and zero
//! clusters: `formats::qcow2::open` (a few reads, then the whole disk
//! through its extent map when at most 64 MiB) and `formats::qcow2::verify`,
//! on the input in a memfd. Reader and verifier must decode the same disk
//! when the verifier finds nothing wrong with the container.
//!
//! An input starting with the `QFI\xfb` magic is the image itself; any
//! other input is page-encoded (see `cloudimg_fuzz::page_records`), so
//! that a 64 KiB-cluster image, mostly zeros, is a small input.
//!
//! Bound: the verifier runs only when the header's virtual size is at
//! most 64 MiB (or the header cannot be read): it hashes the whole
//! declared disk, so a tiny file declaring a 2 TiB disk takes minutes
//! (proportional to the declared size, not a bug).
//!
//! Seeds (scripts/fuzz.sh): `cloudimg-fuzz-seedgen` writes `qcow2-*`
//! (`qcow2::write`, plain and compressed, raw and page-encoded);
//! shared/corpus/dfvfs/ext2.qcow2 is added as it is.
#![no_main]

use cloudimg_disk::formats::qcow2;
use cloudimg_fuzz::{agree, exercise, input_file, read_all, skip_known, MAX_READ_BYTES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let f = input_file(data, b"QFI\xfb");
    let read = match qcow2::open(f.try_clone().unwrap()) {
        Ok(d) => {
            exercise(&*d);
            read_all(&*d)
        }
        Err(_) => None,
    };
    let declared = qcow2::reader::read_header(&f).ok().map(|(h, _)| h.size);
    // Known bug, reported: see `cloudimg_fuzz::qcow2_refcount_entry_overflows`.
    let known = skip_known() && cloudimg_fuzz::qcow2_refcount_entry_overflows(&f);
    if declared.is_none_or(|s| s <= MAX_READ_BYTES) && !known {
        let report = qcow2::verify(&f, Default::default()).map(|v| v.report);
        agree(read, &report);
    }
});
