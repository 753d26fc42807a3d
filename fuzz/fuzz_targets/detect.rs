//! Format detection and `inspect`: `formats::detect_file` and
//! `inspect::inspect` (header facts, the GPT of the disk inside) on the
//! input in a memfd.
//!
//! Seeds (scripts/fuzz.sh): every seed of the other targets (raw GPT
//! disks, VHD, VMDK, tar.gz, tar), so that each format's branch is
//! reached.
#![no_main]

use cloudimg_disk::{formats, inspect};
use cloudimg_fuzz::{memfd, proc_path};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let f = memfd(data);
    let _ = formats::detect_file(&f);
    let _ = inspect::inspect(&proc_path(&f));
});
