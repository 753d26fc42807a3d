//! SHA-256 (FIPS 180-4) of two streams at once, for `package`, which needs
//! the digests of both the input disk and the disk grown for GCP: the same
//! bytes at the same offsets, apart from a few patched sectors and the
//! grown tail.
//!
//! One SHA-256 stream cannot go faster than the latency of its compression
//! rounds: on x86-64 with the SHA extensions, each `sha256rnds2` waits for
//! the previous one. Two independent streams interleaved round by round
//! keep the unit busy while each waits, and blocks of zeros (the holes of
//! a sparse disk, most of a cloud image) need no message schedule at all:
//! every message word is zero, so a round adds only its constant. Measured
//! on this project's 2-core machine (AMD EPYC, Zen 4): one stream 1.8 GB/s,
//! two streams of zeros 3.6 GB/s together, two streams of data 2.3 GB/s.
//!
//! This is the crate's one module with `unsafe`: the SHA intrinsics. It is
//! used only after the CPU has been seen to support them; elsewhere (and
//! on other architectures) the same API runs on `sha2`'s own compression
//! function, one stream after the other. Tests compare every path with
//! `sha2` over awkward lengths and offsets.
#![allow(unsafe_code)]

use std::io;
use std::ops::Range;

use sha2::digest::generic_array::GenericArray;

use crate::disk::{Extent, ExtentKind, VirtualDisk, BUFFER_SIZE};

const BLOCK: usize = 64;

const H0: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

static ZEROS: [u8; BUFFER_SIZE] = [0; BUFFER_SIZE];

/// One SHA-256 stream: state, a partial block, the length so far.
#[derive(Clone)]
pub struct Lane {
    state: [u32; 8],
    buf: [u8; BLOCK],
    buf_len: usize,
    total: u64,
}

impl Default for Lane {
    fn default() -> Self {
        Lane {
            state: H0,
            buf: [0; BLOCK],
            buf_len: 0,
            total: 0,
        }
    }
}

impl Lane {
    /// An empty stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes fed so far.
    pub fn len(&self) -> u64 {
        self.total
    }

    /// Whether nothing has been fed.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Feed `data`.
    pub fn update(&mut self, data: &[u8]) {
        let rest = self.fill_buf(data);
        let whole = rest.len() / BLOCK * BLOCK;
        compress_blocks(&mut self.state, &rest[..whole]);
        self.total += whole as u64;
        self.fill_buf(&rest[whole..]);
    }

    /// Feed `n` zero bytes.
    pub fn zeros(&mut self, mut n: u64) {
        while self.buf_len != 0 && n > 0 {
            let k = (BLOCK - self.buf_len).min(n as usize);
            self.fill_buf(&ZEROS[..k]);
            n -= k as u64;
        }
        let blocks = n / BLOCK as u64;
        zero_blocks1(&mut self.state, blocks);
        self.total += blocks * BLOCK as u64;
        self.fill_buf(&ZEROS[..(n % BLOCK as u64) as usize]);
    }

    /// The digest of everything fed.
    pub fn finish(mut self) -> [u8; 32] {
        let bits = self.total.wrapping_mul(8);
        let mut pad = [0u8; 2 * BLOCK];
        pad[..self.buf_len].copy_from_slice(&self.buf[..self.buf_len]);
        pad[self.buf_len] = 0x80;
        let len = if self.buf_len < BLOCK - 8 {
            BLOCK
        } else {
            2 * BLOCK
        };
        pad[len - 8..len].copy_from_slice(&bits.to_be_bytes());
        compress_blocks(&mut self.state, &pad[..len]);
        let mut out = [0u8; 32];
        for (o, w) in out.chunks_exact_mut(4).zip(self.state) {
            o.copy_from_slice(&w.to_be_bytes());
        }
        out
    }

    /// Append to the partial block what fits; return the rest of `data`
    /// (all of it when the partial block was empty and stays so).
    fn fill_buf<'d>(&mut self, data: &'d [u8]) -> &'d [u8] {
        if self.buf_len == 0 && data.len() >= BLOCK {
            return data;
        }
        let k = (BLOCK - self.buf_len).min(data.len());
        self.buf[self.buf_len..self.buf_len + k].copy_from_slice(&data[..k]);
        self.buf_len += k;
        self.total += k as u64;
        if self.buf_len == BLOCK {
            let block = self.buf;
            compress_blocks(&mut self.state, &block);
            self.buf_len = 0;
        }
        &data[k..]
    }
}

/// Feed `da` to `a` and `db` to `b`, in step when they are aligned alike.
pub fn update2(a: &mut Lane, b: &mut Lane, da: &[u8], db: &[u8]) {
    if a.buf_len != b.buf_len || da.len() != db.len() {
        a.update(da);
        b.update(db);
        return;
    }
    let (ra, rb) = (a.fill_buf(da), b.fill_buf(db));
    let whole = ra.len() / BLOCK * BLOCK;
    compress_blocks2(&mut a.state, &mut b.state, &ra[..whole], &rb[..whole]);
    a.total += whole as u64;
    b.total += whole as u64;
    a.fill_buf(&ra[whole..]);
    b.fill_buf(&rb[whole..]);
}

/// Feed `n` zero bytes to both `a` and `b`, in step when they are aligned
/// alike.
pub fn zeros2(a: &mut Lane, b: &mut Lane, mut n: u64) {
    if a.buf_len != b.buf_len {
        a.zeros(n);
        b.zeros(n);
        return;
    }
    while a.buf_len != 0 && n > 0 {
        let k = (BLOCK - a.buf_len).min(n as usize);
        a.fill_buf(&ZEROS[..k]);
        b.fill_buf(&ZEROS[..k]);
        n -= k as u64;
    }
    let blocks = n / BLOCK as u64;
    zero_blocks2(&mut a.state, &mut b.state, blocks);
    a.total += blocks * BLOCK as u64;
    b.total += blocks * BLOCK as u64;
    let tail = (n % BLOCK as u64) as usize;
    a.fill_buf(&ZEROS[..tail]);
    b.fill_buf(&ZEROS[..tail]);
}

/// Hash one disk, holes without reading; return the stream unfinished.
pub fn hash_one(disk: &dyn VirtualDisk) -> io::Result<Lane> {
    let mut lane = Lane::new();
    let mut buf = vec![0u8; BUFFER_SIZE];
    for e in disk.extents()? {
        let mut at = e.offset;
        while at < e.end() {
            let n = (e.end() - at).min(BUFFER_SIZE as u64);
            match e.kind {
                ExtentKind::Zero => lane.zeros(n),
                ExtentKind::Data => {
                    disk.read_at(&mut buf[..n as usize], at)?;
                    lane.update(&buf[..n as usize]);
                }
            }
            at += n;
        }
    }
    Ok(lane)
}

/// Hash two disks, reading them in step over their common length and then
/// the rest of the longer one; return both streams unfinished (so a caller
/// can go on, e.g. with a VHD footer). Holes cost no reading; where both
/// disks have holes, no message schedule either.
///
/// With `differs` given, `b` is known to hold the same bytes as `a` over
/// their common length except in those (sorted) ranges, as a disk grown
/// from `a` does: the bytes are then read once, from `a`.
pub fn hash_two(
    a: &dyn VirtualDisk,
    b: &dyn VirtualDisk,
    differs: Option<&[Range<u64>]>,
) -> io::Result<(Lane, Lane)> {
    let (mut la, mut lb) = (Lane::new(), Lane::new());
    let (ea, eb) = (a.extents()?, b.extents()?);
    let common = a.size().min(b.size());
    let (mut ia, mut ib) = (0usize, 0usize);
    let (mut bufa, mut bufb) = (vec![0u8; BUFFER_SIZE], vec![0u8; BUFFER_SIZE]);
    let mut pos = 0u64;
    let mut id = 0usize;
    while pos < common {
        let ka = kind_at(&ea, &mut ia, pos);
        let kb = kind_at(&eb, &mut ib, pos);
        // Where b may differ from a: inside a listed range, or everywhere
        // when none are given.
        let (same, same_end) = match differs {
            None => (false, u64::MAX),
            Some(d) => {
                while id < d.len() && d[id].end <= pos {
                    id += 1;
                }
                match d.get(id) {
                    Some(r) if r.start <= pos => (false, r.end),
                    Some(r) => (true, r.start),
                    None => (true, u64::MAX),
                }
            }
        };
        let end = [
            ka.1,
            kb.1,
            same_end,
            common,
            pos.saturating_add(BUFFER_SIZE as u64),
        ]
        .into_iter()
        .min()
        .unwrap_or(common);
        let n = end - pos;
        if ka.0 == ExtentKind::Zero && kb.0 == ExtentKind::Zero {
            zeros2(&mut la, &mut lb, n);
        } else if same && ka.0 == ExtentKind::Data && kb.0 == ExtentKind::Data {
            let k = n as usize;
            a.read_at(&mut bufa[..k], pos)?;
            update2(&mut la, &mut lb, &bufa[..k], &bufa[..k]);
        } else {
            let k = n as usize;
            let da: &[u8] = match ka.0 {
                ExtentKind::Data => {
                    a.read_at(&mut bufa[..k], pos)?;
                    &bufa[..k]
                }
                ExtentKind::Zero => &ZEROS[..k],
            };
            let db: &[u8] = match kb.0 {
                ExtentKind::Data => {
                    b.read_at(&mut bufb[..k], pos)?;
                    &bufb[..k]
                }
                ExtentKind::Zero => &ZEROS[..k],
            };
            update2(&mut la, &mut lb, da, db);
        }
        pos = end;
    }
    let (longer, lane, ext, idx) = if a.size() > common {
        (a, &mut la, &ea, &mut ia)
    } else {
        (b, &mut lb, &eb, &mut ib)
    };
    while pos < longer.size() {
        let (kind, ext_end) = kind_at(ext, idx, pos);
        let end = ext_end.min(pos.saturating_add(BUFFER_SIZE as u64));
        let n = end - pos;
        match kind {
            ExtentKind::Zero => lane.zeros(n),
            ExtentKind::Data => {
                longer.read_at(&mut bufa[..n as usize], pos)?;
                lane.update(&bufa[..n as usize]);
            }
        }
        pos = end;
    }
    Ok((la, lb))
}

/// The kind of the extent holding `pos` and where it ends, advancing
/// `cursor` (extents are sorted and cover the disk). Past the listed
/// extents (which a correct disk never has) reads as zeros to the end.
fn kind_at(extents: &[Extent], cursor: &mut usize, pos: u64) -> (ExtentKind, u64) {
    while *cursor < extents.len() && extents[*cursor].end() <= pos {
        *cursor += 1;
    }
    match extents.get(*cursor) {
        Some(e) if e.offset <= pos => (e.kind, e.end()),
        Some(e) => (ExtentKind::Zero, e.offset),
        None => (ExtentKind::Zero, u64::MAX),
    }
}

/// Compress whole blocks with `sha2`'s own compression function (which
/// uses the SHA extensions itself when it can).
fn compress_blocks(state: &mut [u32; 8], blocks: &[u8]) {
    for b in blocks.chunks_exact(BLOCK) {
        sha2::compress256(state, std::slice::from_ref(GenericArray::from_slice(b)));
    }
}

fn compress_blocks2(sa: &mut [u32; 8], sb: &mut [u32; 8], a: &[u8], b: &[u8]) {
    debug_assert!(a.len() == b.len() && a.len() % BLOCK == 0);
    #[cfg(target_arch = "x86_64")]
    if x86::available() {
        // SAFETY: the CPU supports the SHA, SSSE3 and SSE4.1 instructions
        // (checked just above), and both inputs are whole blocks of equal
        // length (asserted by every caller: `update2` passes `whole`).
        unsafe { x86::compress2(sa, sb, a, b) };
        return;
    }
    compress_blocks(sa, a);
    compress_blocks(sb, b);
}

fn zero_blocks1(state: &mut [u32; 8], n: u64) {
    #[cfg(target_arch = "x86_64")]
    if x86::available() {
        // SAFETY: the CPU supports the instructions used (checked above).
        unsafe { x86::zero_blocks::<1>([state], n) };
        return;
    }
    zero_blocks_portable(state, n);
}

fn zero_blocks2(sa: &mut [u32; 8], sb: &mut [u32; 8], n: u64) {
    #[cfg(target_arch = "x86_64")]
    if x86::available() {
        // SAFETY: the CPU supports the instructions used (checked above).
        unsafe { x86::zero_blocks::<2>([sa, sb], n) };
        return;
    }
    zero_blocks_portable(sa, n);
    zero_blocks_portable(sb, n);
}

fn zero_blocks_portable(state: &mut [u32; 8], mut n: u64) {
    while n > 0 {
        let k = n.min((ZEROS.len() / BLOCK) as u64);
        compress_blocks(state, &ZEROS[..k as usize * BLOCK]);
        n -= k;
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! The SHA-NI rounds, after Intel's reference code ("Intel SHA
    //! Extensions", Gulley et al., 2013) as `sha2` also follows it; here
    //! with two independent states advanced round by round.
    use std::arch::x86_64::*;

    use super::BLOCK;

    /// The round constants, four per 128-bit load.
    static K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];

    /// Whether the instructions used here are available.
    pub fn available() -> bool {
        std::is_x86_feature_detected!("sha")
            && std::is_x86_feature_detected!("ssse3")
            && std::is_x86_feature_detected!("sse4.1")
    }

    /// The state as the two registers the rounds work on (ABEF, CDGH).
    ///
    /// # Safety
    /// The CPU must support SHA, SSSE3 and SSE4.1 ([`available`]); so for
    /// the other helpers here.
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    unsafe fn load(state: &[u32; 8]) -> (__m128i, __m128i) {
        let p = state.as_ptr().cast::<__m128i>();
        // SAFETY: `state` is 32 readable bytes; unaligned loads.
        let (dcba, efgh) = unsafe { (_mm_loadu_si128(p), _mm_loadu_si128(p.add(1))) };
        let cdab = _mm_shuffle_epi32(dcba, 0xB1);
        let efgh = _mm_shuffle_epi32(efgh, 0x1B);
        (
            _mm_alignr_epi8(cdab, efgh, 8),
            _mm_blend_epi16(efgh, cdab, 0xF0),
        )
    }

    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    unsafe fn store(state: &mut [u32; 8], abef: __m128i, cdgh: __m128i) {
        let feba = _mm_shuffle_epi32(abef, 0x1B);
        let dchg = _mm_shuffle_epi32(cdgh, 0xB1);
        let dcba = _mm_blend_epi16(feba, dchg, 0xF0);
        let hgef = _mm_alignr_epi8(dchg, feba, 8);
        let p = state.as_mut_ptr().cast::<__m128i>();
        // SAFETY: `state` is 32 writable bytes; unaligned stores.
        unsafe {
            _mm_storeu_si128(p, dcba);
            _mm_storeu_si128(p.add(1), hgef);
        }
    }

    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    unsafe fn k4(i: usize) -> __m128i {
        debug_assert!(i < 16);
        // SAFETY: `K` has 64 words; `i < 16` reads words 4i..4i+4.
        unsafe { _mm_loadu_si128(K.as_ptr().cast::<__m128i>().add(i)) }
    }

    /// Compress the blocks of `a` into `sa` and those of `b` into `sb`.
    ///
    /// # Safety
    /// The CPU must support SHA, SSSE3 and SSE4.1 ([`available`]).
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    pub unsafe fn compress2(sa: &mut [u32; 8], sb: &mut [u32; 8], a: &[u8], b: &[u8]) {
        let bswap = _mm_set_epi64x(
            0x0C0D_0E0F_0809_0A0Bu64 as i64,
            0x0405_0607_0001_0203u64 as i64,
        );
        // SAFETY: this function's own contract (the CPU features).
        let ((a0, c0), (a1, c1)) = unsafe { (load(sa), load(sb)) };
        let mut abef = [a0, a1];
        let mut cdgh = [c0, c1];
        for (ba, bb) in a.chunks_exact(BLOCK).zip(b.chunks_exact(BLOCK)) {
            let saved = (abef, cdgh);
            let mut w = [[_mm_setzero_si128(); 4]; 2];
            for (lane, block) in [ba, bb].into_iter().enumerate() {
                for (j, word) in block.chunks_exact(16).enumerate() {
                    // SAFETY: `word` is 16 readable bytes; unaligned load.
                    let v = unsafe { _mm_loadu_si128(word.as_ptr().cast::<__m128i>()) };
                    w[lane][j] = _mm_shuffle_epi8(v, bswap);
                }
            }
            for i in 0..16 {
                // SAFETY: the CPU features, and i < 16.
                let k = unsafe { k4(i) };
                for l in 0..2 {
                    if i >= 4 {
                        let w0 = w[l][i % 4];
                        let w1 = w[l][(i + 1) % 4];
                        let w2 = w[l][(i + 2) % 4];
                        let w3 = w[l][(i + 3) % 4];
                        w[l][i % 4] = _mm_sha256msg2_epu32(
                            _mm_add_epi32(_mm_sha256msg1_epu32(w0, w1), _mm_alignr_epi8(w3, w2, 4)),
                            w3,
                        );
                    }
                    let t = _mm_add_epi32(w[l][i % 4], k);
                    cdgh[l] = _mm_sha256rnds2_epu32(cdgh[l], abef[l], t);
                    abef[l] = _mm_sha256rnds2_epu32(abef[l], cdgh[l], _mm_shuffle_epi32(t, 0x0E));
                }
            }
            for l in 0..2 {
                abef[l] = _mm_add_epi32(abef[l], saved.0[l]);
                cdgh[l] = _mm_add_epi32(cdgh[l], saved.1[l]);
            }
        }
        // SAFETY: this function's own contract (the CPU features).
        unsafe {
            store(sa, abef[0], cdgh[0]);
            store(sb, abef[1], cdgh[1]);
        }
    }

    /// Compress `n` all-zero blocks into each of `states`, advanced
    /// together: a zero block's message schedule is all zeros, so each
    /// round adds only its constant.
    ///
    /// # Safety
    /// The CPU must support SHA, SSSE3 and SSE4.1 ([`available`]).
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    pub unsafe fn zero_blocks<const L: usize>(states: [&mut [u32; 8]; L], n: u64) {
        let mut abef = [_mm_setzero_si128(); L];
        let mut cdgh = [_mm_setzero_si128(); L];
        for l in 0..L {
            // SAFETY: this function's own contract (the CPU features).
            (abef[l], cdgh[l]) = unsafe { load(states[l]) };
        }
        let mut lo = [_mm_setzero_si128(); 16];
        let mut hi = [_mm_setzero_si128(); 16];
        for i in 0..16 {
            // SAFETY: the CPU features, and i < 16.
            lo[i] = unsafe { k4(i) };
            hi[i] = _mm_shuffle_epi32(lo[i], 0x0E);
        }
        for _ in 0..n {
            let saved = (abef, cdgh);
            for i in 0..16 {
                for l in 0..L {
                    cdgh[l] = _mm_sha256rnds2_epu32(cdgh[l], abef[l], lo[i]);
                    abef[l] = _mm_sha256rnds2_epu32(abef[l], cdgh[l], hi[i]);
                }
            }
            for l in 0..L {
                abef[l] = _mm_add_epi32(abef[l], saved.0[l]);
                cdgh[l] = _mm_add_epi32(cdgh[l], saved.1[l]);
            }
        }
        for (l, s) in states.into_iter().enumerate() {
            // SAFETY: this function's own contract (the CPU features).
            unsafe { store(s, abef[l], cdgh[l]) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::{MemDisk, PatchedDisk};
    use sha2::{Digest, Sha256};

    fn sha(data: &[u8]) -> [u8; 32] {
        Sha256::digest(data).into()
    }

    fn bytes(n: usize, seed: u8) -> Vec<u8> {
        (0..n)
            .map(|i| {
                (i as u32)
                    .wrapping_mul(2_654_435_761)
                    .rotate_left(u32::from(seed)) as u8
            })
            .collect()
    }

    #[test]
    fn one_lane_matches_sha2_at_every_split() {
        let data = bytes(1000, 3);
        for split in [0, 1, 55, 56, 63, 64, 65, 128, 999, 1000] {
            let mut l = Lane::new();
            l.update(&data[..split]);
            l.update(&data[split..]);
            assert_eq!(l.finish(), sha(&data), "split {split}");
        }
        assert_eq!(Lane::new().finish(), sha(b""));
    }

    #[test]
    fn zeros_match_sha2() {
        for (lead, n) in [
            (0usize, 0u64),
            (0, 64),
            (3, 200),
            (63, 1),
            (10, 70_000),
            (0, 1 << 20),
        ] {
            let mut data = bytes(lead, 5);
            data.resize(lead + n as usize, 0);
            let mut l = Lane::new();
            l.update(&data[..lead]);
            l.zeros(n);
            assert_eq!(l.finish(), sha(&data), "lead {lead} n {n}");
        }
    }

    #[test]
    fn two_lanes_match_sha2_aligned_or_not() {
        let a = bytes(5000, 1);
        let b = bytes(5000, 2);
        let (mut la, mut lb) = (Lane::new(), Lane::new());
        update2(&mut la, &mut lb, &a[..7], &b[..7]);
        zeros2(&mut la, &mut lb, 4096 + 3);
        update2(&mut la, &mut lb, &a[7..], &b[7..]);
        // Misaligned: different lengths in one call.
        update2(&mut la, &mut lb, &a[..10], &b[..20]);
        zeros2(&mut la, &mut lb, 100);
        let mut ea = a[..7].to_vec();
        ea.resize(7 + 4099, 0);
        ea.extend_from_slice(&a[7..]);
        let mut eb = b[..7].to_vec();
        eb.resize(7 + 4099, 0);
        eb.extend_from_slice(&b[7..]);
        ea.extend_from_slice(&a[..10]);
        eb.extend_from_slice(&b[..20]);
        ea.resize(ea.len() + 100, 0);
        eb.resize(eb.len() + 100, 0);
        assert_eq!(la.clone().finish(), sha(&ea));
        assert_eq!(lb.finish(), sha(&eb));
        // A lane goes on alone after the pair.
        la.update(b"footer");
        ea.extend_from_slice(b"footer");
        assert_eq!(la.finish(), sha(&ea));
    }

    #[test]
    fn portable_zero_blocks_match() {
        let (mut a, mut b) = (H0, H0);
        zero_blocks_portable(&mut a, 40_000);
        zero_blocks2(&mut b, &mut [0; 8], 40_000);
        assert_eq!(a, b);
    }

    #[test]
    fn two_disks_hash_like_sha2() {
        let mut base = vec![0u8; 3 << 20];
        base[1000..5000].copy_from_slice(&bytes(4000, 7));
        base[(2 << 20) + 17..(2 << 20) + 9000].copy_from_slice(&bytes(8983, 9));
        let a = MemDisk::new(base.clone());
        let mut grown = PatchedDisk::new(&a, (5 << 20) + 512);
        grown.patch(512, bytes(512, 4));
        grown.patch(5 << 20, bytes(512, 6));
        let mut eg = base.clone();
        eg[512..1024].copy_from_slice(&bytes(512, 4));
        eg.resize((5 << 20) + 512, 0);
        eg[5 << 20..].copy_from_slice(&bytes(512, 6));
        let differs = [512..1024, (5 << 20)..(5 << 20) + 512];
        for hint in [None, Some(&differs[..])] {
            let (la, lg) = hash_two(&a, &grown, hint).unwrap();
            assert_eq!(la.finish(), sha(&base));
            assert_eq!(lg.finish(), sha(&eg));
        }
        assert_eq!(hash_one(&grown).unwrap().finish(), sha(&eg));
        // Either order.
        let (lg, la) = hash_two(&grown, &a, None).unwrap();
        assert_eq!((la.finish(), lg.finish()), (sha(&base), sha(&eg)));
    }
}
