//! Format detection, `inspect` and the any-format opener:
//! `formats::detect_file`, `inspect::inspect` (header facts, the GPT of
//! the disk inside) and `formats::open::open_file_disk` (then reads, and
//! the whole disk through its extent map when at most 64 MiB) on the input
//! in a memfd. A GCP tarball is not opened here (that extracts the disk
//! it declares, possibly TiBs of holes); the gzip target covers it.
//!
//! Seeds (scripts/fuzz.sh): every seed of the other targets (raw GPT
//! disks, VHD, VMDK, tar.gz, tar, QCOW2, OVA, page-encoded images), so
//! that each format's branch is reached.
#![no_main]

use std::path::Path;

use cloudimg_disk::formats::{self, open, Format};
use cloudimg_disk::inspect;
use cloudimg_fuzz::{exercise, memfd, proc_path, read_all};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let f = memfd(data);
    let format = formats::detect_file(&f);
    let _ = inspect::inspect(&proc_path(&f));
    if let Some(format) = format.ok().filter(|&f| f != Format::Gzip) {
        let path = Path::new("fuzz.img");
        if let Ok(d) = open::open_file_disk(f, data.len() as u64, format, path) {
            exercise(&*d);
            let _ = read_all(&*d);
        }
    }
});
