//! OVA: the tar, the OVF descriptor (roxmltree), the SHA-256
//! manifest and the VMDK inside: `formats::ova::ovf::parse` on the raw
//! input, `formats::open::open_file_disk` as an OVA (the VMDK member
//! copied out and opened; a few reads, then the whole disk when at most
//! 64 MiB) and `formats::ova::verify`, on the input in a memfd (tar header
//! checksums recomputed when the first byte is odd). Reader and verifier
//! must decode the same disk when the verifier finds nothing wrong with
//! the container.
//!
//! Bound: the verifier runs only when the VMDK's virtual size is at most
//! 64 MiB (or the VMDK cannot be opened): it hashes the whole declared
//! disk (proportional to the declared size, not a bug).
//!
//! Seeds (scripts/fuzz.sh): `cloudimg-fuzz-seedgen` writes `ova-*.ova`
//! (`ova::write` of small GPT disks) and `ovf-*.ovf` (their descriptors).
#![no_main]

use std::path::Path;

use cloudimg_disk::formats::{open, ova, Format};
use cloudimg_fuzz::{agree, exercise, memfd, read_all, skip_known, MAX_READ_BYTES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = ova::ovf::parse(text);
    }
    let mut bytes = data.to_vec();
    if cloudimg_fuzz::fixing(data) {
        cloudimg_fuzz::fix_tar(&mut bytes);
    }
    let f = memfd(&bytes);
    let opened = open::open_file_disk(
        f.try_clone().unwrap(),
        bytes.len() as u64,
        Format::Ova,
        Path::new("fuzz.ova"),
    );
    let (read, size) = match opened {
        Ok(d) => {
            exercise(&*d);
            (read_all(&*d), Some(d.size()))
        }
        Err(_) => (None, None),
    };
    // Known bug, reported: see `cloudimg_fuzz::ova_vmdk_finding_overflows`.
    let known = skip_known() && cloudimg_fuzz::ova_vmdk_finding_overflows(&f, bytes.len() as u64);
    if size.is_none_or(|s| s <= MAX_READ_BYTES) && !known {
        let report = ova::verify(&f, Default::default()).map(|v| v.report);
        agree(read, &report);
    }
});
