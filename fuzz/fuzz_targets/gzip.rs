//! gzip framing and the GCP tarball verifier: `codec::gzip::
//! GzipReader` over the input (decompressing at most 64 MiB), and
//! `formats::gcp::verify` on the input in a memfd when its tar members
//! are not larger than the fuzzing bound. An input of whole 512-byte
//! blocks is also taken as a tar stream: its header checksums are fixed,
//! it is gzipped by our writer and verified.
//!
//! Seeds (scripts/fuzz.sh): `cloudimg-fuzz-seedgen` writes `targz-*.tar.gz`
//! (our GCP writer's output for small sparse GiB disks) and `gz-*.gz`;
//! shared/corpus/flate2-rs/*.gz, dfvfs/*.gz are added as they are; the
//! `tar` target's seeds are added too (for the tar-stream mode).
#![no_main]

use std::io::Read;

use cloudimg_disk::codec::gzip::{self, GzipReader};
use cloudimg_disk::codec::tar::TarReader;
use cloudimg_disk::formats::gcp;
use cloudimg_fuzz::{memfd, MAX_VERIFY_BYTES};
use libfuzzer_sys::fuzz_target;

const MAX_INFLATE: u64 = 64 << 20;

fuzz_target!(|data: &[u8]| {
    if let Ok(gz) = GzipReader::new(data) {
        let mut out = Vec::new();
        let mut gz = gz.take(MAX_INFLATE);
        let _ = gz.read_to_end(&mut out);
        let gz = gz.into_inner();
        let _ = gz.findings();
        let _ = gz.facts();
    }
    // Only verify archives whose members are small enough to hash quickly
    // (the verifier itself caps at 64 TiB).
    let small = match GzipReader::new(data) {
        Ok(gz) => {
            let mut tar = TarReader::new(gz.take(MAX_INFLATE));
            let mut ok = true;
            while let Ok(Some(e)) = tar.next_entry() {
                if e.realsize > MAX_VERIFY_BYTES || e.size > MAX_VERIFY_BYTES {
                    ok = false;
                    break;
                }
            }
            ok
        }
        Err(_) => true,
    };
    if small {
        let f = memfd(data);
        let _ = gcp::verify(&f, Default::default()).map(|v| v.report);
    }
    // The input as a tar stream (header checksums fixed) gzipped by our
    // writer: reaches the verifier's tar checks, which a mutated gzip
    // stream rarely does.
    if data.len() >= 1024 && data.len().is_multiple_of(512) {
        let mut tar = data.to_vec();
        cloudimg_fuzz::fix_tar(&mut tar);
        let mut small = true;
        let mut tr = TarReader::new(&tar[..]);
        while let Ok(Some(e)) = tr.next_entry() {
            small &= e.realsize <= MAX_VERIFY_BYTES && e.size <= MAX_VERIFY_BYTES;
        }
        if small {
            let mut w = gzip::GzipWriter::with_jobs(Vec::new(), 1).unwrap();
            std::io::Write::write_all(&mut w, &tar).unwrap();
            let _ = gcp::verify(&memfd(&w.finish().unwrap()), Default::default());
        }
    }
});
