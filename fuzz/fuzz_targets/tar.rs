//! GNU/ustar/pax tar headers, GNU old sparse maps and extension blocks:
//! `codec::tar::TarReader` over the input, reading every member's
//! content (holes are not materialised). Header checksums are recomputed
//! when the first byte is odd.
//!
//! Seeds (scripts/fuzz.sh): `cloudimg-fuzz-seedgen` writes `tar-*.tar`
//! (the tar streams of our GCP writer: sparse with extension blocks, and
//! regular); shared/corpus/golang-go/archive-tar/*.tar, tar-rs/*.tar and
//! cpython/testtar.tar are added as they are.
#![no_main]

use cloudimg_disk::codec::tar::{TarChunk, TarReader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut bytes = data.to_vec();
    if cloudimg_fuzz::fixing(data) {
        cloudimg_fuzz::fix_tar(&mut bytes);
    }
    let data = &bytes[..];
    let mut tar = TarReader::new(data);
    for _ in 0..1000 {
        match tar.next_entry() {
            Ok(Some(e)) => {
                let _ = e.name_str();
                let mut total = 0u64;
                let _ = tar.read_content(|_, c| {
                    if let TarChunk::Data(d) = c {
                        total += d.len() as u64;
                    }
                    Ok(())
                });
                assert!(total <= data.len() as u64, "more data than input");
            }
            Ok(None) | Err(_) => break,
        }
    }
    let _ = tar.end();
});
