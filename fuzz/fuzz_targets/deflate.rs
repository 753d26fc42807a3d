//! `codec::deflate::make_nonfinal`, the deflate block walker the GCP
//! packager uses to join libdeflate streams:
//!
//! 1. on the raw input: it must never panic; when libdeflate inflates the
//!    input (to at most 1 MiB) and the walker accepts it, the walked stream
//!    plus a final empty block must inflate to the same bytes;
//! 2. on the input compressed by libdeflate (level from the first byte,
//!    0..=12, split in two pieces at a point from the second byte): each
//!    piece made non-final must succeed, and the pieces concatenated plus
//!    a final empty block must inflate to the input.
//!
//! Seeds (scripts/fuzz.sh): `cloudimg-fuzz-seedgen` writes `deflate-*`
//! (raw deflate streams of text and of a GPT disk, levels 1, 4, 12, and
//! the disk itself).
#![no_main]

use cloudimg_disk::codec::deflate::make_nonfinal;
use cloudimg_fuzz::skip_known;
use libdeflater::{CompressionLvl, Compressor, Decompressor};
use libfuzzer_sys::fuzz_target;

/// A final, empty, fixed-Huffman block: BFINAL=1, BTYPE=01, code 256.
const FINAL_EMPTY: [u8; 2] = [0x03, 0x00];

fn inflate(stream: &[u8], max: usize) -> Option<Vec<u8>> {
    let mut out = vec![0u8; max];
    let n = Decompressor::new()
        .deflate_decompress(stream, &mut out)
        .ok()?;
    out.truncate(n);
    Some(out)
}

fn deflate(data: &[u8], level: i32) -> Vec<u8> {
    let mut c = Compressor::new(CompressionLvl::new(level).unwrap());
    let mut out = vec![0u8; c.deflate_compress_bound(data.len())];
    let n = c.deflate_compress(data, &mut out).unwrap();
    out.truncate(n);
    out
}

fuzz_target!(|data: &[u8]| {
    // 1. Any input. Known bug, reported (artifacts/deflate/
    // hlit-288-hdist-31.deflate): a dynamic block declaring more than 286
    // literal/length or 30 distance codes indexes past the code length
    // array; `CLOUDIMG_FUZZ_SKIP_KNOWN=1` walks only the inputs libdeflate
    // inflates.
    let want = inflate(data, 1 << 20);
    let mut s = data.to_vec();
    if !(skip_known() && want.is_none()) && make_nonfinal(&mut s).is_ok() {
        if let Some(want) = want {
            s.extend_from_slice(&FINAL_EMPTY);
            let got = inflate(&s, want.len() + 1);
            assert!(
                got.as_deref() == Some(&want[..]),
                "walked stream inflates differently: {} bytes expected, got {:?} bytes",
                want.len(),
                got.map(|g| g.len())
            );
        }
    }

    // 2. Streams libdeflate writes.
    let level = i32::from(data.first().copied().unwrap_or(0) % 13);
    let cut = data.get(1).map_or(0, |&b| data.len() * b as usize / 255);
    let mut joined = Vec::new();
    for piece in [&data[..cut], &data[cut..]] {
        let mut z = deflate(piece, level);
        make_nonfinal(&mut z).unwrap_or_else(|e| {
            panic!(
                "make_nonfinal refused libdeflate level {level} output of {} bytes: {e}",
                piece.len()
            )
        });
        joined.extend_from_slice(&z);
    }
    joined.extend_from_slice(&FINAL_EMPTY);
    let got = inflate(&joined, data.len() + 1);
    assert!(
        got.as_deref() == Some(data),
        "joined pieces (level {level}, cut {cut}) do not inflate to the input"
    );
});
