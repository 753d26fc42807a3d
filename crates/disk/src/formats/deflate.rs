//! Deflate helpers shared by the compressing writers (VMDK grains, the
//! GCP gzip stream): telling incompressible data apart cheaply, and
//! writing it as stored blocks (RFC 1951 §3.2.4) instead of spending
//! deflate effort that would not shrink it.
//!
//! Random or already-compressed data is common in disk images (compressed
//! kernels, encrypted or packed files). zlib at level 6 spends about as
//! long on it as on text, and then emits stored blocks anyway; storing it
//! directly gives the same size for a fraction of the time.

/// Largest payload of one stored block.
pub const STORED_BLOCK_MAX: usize = 65535;

/// Bytes of header per stored block (the 3 header bits padded to a byte,
/// then LEN and NLEN).
pub const STORED_BLOCK_HEADER: usize = 5;

/// Below this many bits of order-0 entropy per byte, data is compressed.
/// Uniformly random bytes give 7.997 or more over 64 KiB.
const ENTROPY_THRESHOLD_BITS: f64 = 7.95;

/// Whether `data` looks incompressible: its byte histogram is nearly flat
/// (order-0 entropy of at least 7.95 bits a byte, so Huffman coding gains
/// nothing) *and* sampled 8-byte sequences do not repeat (so LZ77 matches
/// gain nothing either). Both are cheap next to deflating. Short inputs
/// (under 4 KiB) are never called incompressible.
pub fn looks_incompressible(data: &[u8]) -> bool {
    if data.len() < 4096 {
        return false;
    }
    // Four histograms, so that consecutive equal bytes do not wait on one
    // another's counter update; summed after.
    let mut hists = [[0u32; 256]; 4];
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        hists[0][w[0] as usize] += 1;
        hists[1][w[1] as usize] += 1;
        hists[2][w[2] as usize] += 1;
        hists[3][w[3] as usize] += 1;
    }
    for &b in words.remainder() {
        hists[0][b as usize] += 1;
    }
    let mut hist = [0u32; 256];
    for (i, h) in hist.iter_mut().enumerate() {
        *h = hists[0][i] + hists[1][i] + hists[2][i] + hists[3][i];
    }
    let n = data.len() as f64;
    let entropy: f64 = hist
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum();
    if entropy < ENTROPY_THRESHOLD_BITS {
        return false;
    }
    // Repeats: remember where each (hashed) 8-byte sequence was last seen,
    // every 4th position, and count confirmed repeats.
    const TABLE_BITS: u32 = 12;
    let mut table = [u32::MAX; 1 << TABLE_BITS];
    let mut repeats = 0usize;
    let mut i = 0usize;
    while i + 8 <= data.len() {
        let w = u64::from_le_bytes(data[i..i + 8].try_into().expect("8 bytes"));
        let h = (w.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - TABLE_BITS)) as usize;
        let prev = table[h];
        if prev != u32::MAX {
            let p = prev as usize;
            if data[p..p + 8] == data[i..i + 8] {
                repeats += 1;
            }
        }
        table[h] = i as u32;
        i += 4;
    }
    // One confirmed repeat in 512 sampled positions is already worth
    // deflating.
    repeats * 512 < data.len() / 4
}

/// Adler-32 of `data` (RFC 1950 §8.2), the zlib stream checksum.
pub fn adler32(data: &[u8]) -> u32 {
    const MOD: u32 = 65521;
    // Largest n with 255 n (n + 1) / 2 + (n + 1) (MOD - 1) < 2^32.
    const NMAX: usize = 5552;
    let (mut a, mut b) = (1u32, 0u32);
    for chunk in data.chunks(NMAX) {
        for &x in chunk {
            a += u32::from(x);
            b += a;
        }
        a %= MOD;
        b %= MOD;
    }
    (b << 16) | a
}

/// A complete zlib stream (RFC 1950) holding `data` in stored blocks:
/// header `78 01` (deflate, 32 KiB window, "fastest" level hint), the
/// blocks, the Adler-32.
pub fn zlib_stored(data: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&[0x78, 0x01]);
    push_stored(data, true, out);
    out.extend_from_slice(&adler32(data).to_be_bytes());
}

/// Append `data` as stored blocks. With `last`, the final block has
/// BFINAL set. The output starts and ends on a byte boundary, so it can
/// follow a sync flush and be followed by more deflate data.
pub fn push_stored(data: &[u8], last: bool, out: &mut Vec<u8>) {
    let mut chunks = data.chunks(STORED_BLOCK_MAX).peekable();
    if data.is_empty() {
        push_stored_block(&[], last, out);
    }
    while let Some(c) = chunks.next() {
        push_stored_block(c, last && chunks.peek().is_none(), out);
    }
}

fn push_stored_block(c: &[u8], last: bool, out: &mut Vec<u8>) {
    let len = c.len() as u16;
    out.push(u8::from(last));
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&(!len).to_le_bytes());
    out.extend_from_slice(c);
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{Decompress, FlushDecompress};

    fn xorshift(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    #[test]
    fn random_is_incompressible_text_and_repeats_are_not() {
        assert!(looks_incompressible(&xorshift(65536, 7)));
        let text: Vec<u8> = b"capos kernel starting\n"
            .iter()
            .cycle()
            .take(65536)
            .copied()
            .collect();
        assert!(!looks_incompressible(&text));
        // A random 4 KiB block repeated: flat histogram, but LZ77 wins.
        let block = xorshift(4096, 9);
        let repeated: Vec<u8> = block.iter().cycle().take(65536).copied().collect();
        assert!(!looks_incompressible(&repeated));
        assert!(!looks_incompressible(&[0u8; 65536]));
        assert!(!looks_incompressible(&xorshift(1000, 3)));
    }

    #[test]
    fn adler32_matches_zlib() {
        let data = xorshift(100_000, 5);
        let mut z = flate2::Compress::new(flate2::Compression::new(1), true);
        let mut out = Vec::with_capacity(200_000);
        z.compress_vec(&data, &mut out, flate2::FlushCompress::Finish)
            .unwrap();
        let tail: [u8; 4] = out[out.len() - 4..].try_into().unwrap();
        assert_eq!(adler32(&data), u32::from_be_bytes(tail));
        assert_eq!(adler32(b""), 1);
        let mut stored = Vec::new();
        zlib_stored(&data, &mut stored);
        let mut d = Decompress::new(true);
        let mut back = Vec::with_capacity(data.len());
        let st = d
            .decompress_vec(&stored, &mut back, FlushDecompress::Finish)
            .unwrap();
        assert_eq!((st, back), (flate2::Status::StreamEnd, data));
    }

    #[test]
    fn stored_blocks_inflate_back() {
        for n in [0usize, 1, 65535, 65536, 200_000] {
            let data = xorshift(n, n as u64 + 1);
            let mut raw = Vec::new();
            push_stored(&data, true, &mut raw);
            assert_eq!(
                raw.len(),
                n + STORED_BLOCK_HEADER * n.div_ceil(STORED_BLOCK_MAX).max(1)
            );
            let mut d = Decompress::new(false);
            let mut out = Vec::with_capacity(n + 1);
            let st = d
                .decompress_vec(&raw, &mut out, FlushDecompress::Finish)
                .unwrap();
            assert_eq!(st, flate2::Status::StreamEnd, "n={n}");
            assert_eq!(out, data);
        }
    }
}
