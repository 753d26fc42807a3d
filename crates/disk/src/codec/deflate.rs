//! Deflate helpers shared by the compressing writers (VMDK grains, QCOW2
//! clusters, the gzip stream of [`super::gzip`]): telling incompressible
//! data apart cheaply, and writing it as stored blocks (RFC 1951 §3.2.4)
//! instead of spending deflate effort that would not shrink it.
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
    // The byte histogram of the first 16 KiB (enough to tell text from
    // random: 16 Ki samples put random data at 7.99 bits); a segment that
    // turns compressible further on is caught by the repeat check below,
    // which looks at all of it. Four histograms, so that consecutive equal
    // bytes do not wait on one another's counter update; summed after.
    const HIST_BYTES: usize = 16 * 1024;
    let sample = &data[..data.len().min(HIST_BYTES)];
    let mut hists = [[0u32; 256]; 4];
    let mut words = sample.chunks_exact(4);
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
    let n = sample.len() as f64;
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
    // Repeats: remember the 8-byte sequence last seen at each hash slot,
    // every 4th position, and count the sequences seen again. Keeping the
    // sequence itself rather than where it was saves a second, random
    // read per position (2.5 times faster on random data). An empty slot
    // holds a sequence that does not hash to it (0 hashes to slot 0, so
    // slot 0 starts with 1), so it never counts as a repeat.
    const TABLE_BITS: u32 = 12;
    let slot = |w: u64| (w.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - TABLE_BITS)) as usize;
    let mut table = [0u64; 1 << TABLE_BITS];
    table[0] = 1;
    debug_assert!(slot(0) == 0 && slot(1) != 0);
    let mut repeats = 0usize;
    let mut i = 0usize;
    while i + 8 <= data.len() {
        let w = u64::from_le_bytes(data[i..i + 8].try_into().expect("8 bytes"));
        let h = slot(w);
        repeats += usize::from(table[h] == w);
        table[h] = w;
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

/// Turn a complete raw deflate stream (RFC 1951, as libdeflate writes
/// one) into a *sync-flushed, non-final* piece that more deflate data can
/// follow: clear the BFINAL bit of its last block, cut the stream right
/// after that block's end-of-block code and append an empty stored block
/// (3 header bits, padding to the byte, `00 00 FF FF`), as zlib's
/// `Z_SYNC_FLUSH` does. Pieces made this way concatenate into one stream.
///
/// This needs the bit position where the last block ends, which deflate
/// does not record: the blocks are walked, decoding every Huffman code
/// (but writing no output). Fails on a malformed stream.
pub fn make_nonfinal(stream: &mut Vec<u8>) -> Result<(), &'static str> {
    let mut r = BitReader {
        data: stream,
        pos: 0,
    };
    loop {
        let header_at = r.pos;
        let last = r.bits(1)? == 1;
        match r.bits(2)? {
            0 => {
                r.pos = r.pos.div_ceil(8) * 8;
                let len = r.bits(16)?;
                let nlen = r.bits(16)?;
                if len != !nlen & 0xffff {
                    return Err("stored block length check failed");
                }
                r.skip(len as usize * 8)?;
            }
            1 => {
                let mut lens = [0u8; 288];
                lens[..144].fill(8);
                lens[144..256].fill(9);
                lens[256..280].fill(7);
                lens[280..].fill(8);
                let lit = Huffman::new(&lens)?;
                let dist = Huffman::new(&[5u8; 30])?;
                r.codes(&lit, &dist)?;
            }
            2 => {
                let (lit, dist) = r.dynamic_tables()?;
                r.codes(&lit, &dist)?;
            }
            _ => return Err("reserved block type 3"),
        }
        if last {
            let end = r.pos;
            // Clear BFINAL, cut after the end-of-block code, then 3 zero
            // bits (non-final stored block), padding, LEN 0, NLEN FFFF.
            stream[header_at / 8] &= !(1 << (header_at % 8));
            let keep = (end + 3).div_ceil(8);
            stream.resize(keep, 0);
            if end % 8 != 0 {
                let mask = (1u16 << (end % 8)) - 1;
                stream[end / 8] &= mask as u8;
            }
            for b in stream.iter_mut().skip(end.div_ceil(8)) {
                *b = 0;
            }
            stream.extend_from_slice(&[0, 0, 0xff, 0xff]);
            return Ok(());
        }
    }
}

/// Reads bits least significant first, as deflate packs them.
struct BitReader<'a> {
    data: &'a [u8],
    /// Position in bits.
    pos: usize,
}

impl BitReader<'_> {
    /// Up to 32 bits without consuming them (zeros past the end).
    fn peek(&self, n: u32) -> u32 {
        let byte = self.pos / 8;
        let mut word = [0u8; 8];
        if let Some(rest) = self.data.get(byte..) {
            let avail = rest.len().min(8);
            word[..avail].copy_from_slice(&rest[..avail]);
        }
        let v = u64::from_le_bytes(word) >> (self.pos % 8);
        (v & ((1u64 << n) - 1)) as u32
    }

    /// Up to 32 bits at bit position `at` (zeros past the end).
    fn peek_at(&self, at: usize, n: u32) -> u32 {
        BitReader {
            data: self.data,
            pos: at,
        }
        .peek(n)
    }

    fn skip(&mut self, n: usize) -> Result<(), &'static str> {
        if self.pos + n > self.data.len() * 8 {
            return Err("stream ends early");
        }
        self.pos += n;
        Ok(())
    }

    fn bits(&mut self, n: u32) -> Result<u32, &'static str> {
        let v = self.peek(n);
        self.skip(n as usize)?;
        Ok(v)
    }

    fn decode(&mut self, h: &Huffman) -> Result<u16, &'static str> {
        let (sym, len) = h.lookup(u64::from(self.peek(16)));
        if len == 0 {
            return Err("invalid Huffman code");
        }
        self.skip(len as usize)?;
        Ok(sym)
    }

    /// Walk literal/length and distance codes up to the end-of-block code.
    /// The hot loop of [`make_nonfinal`]: bits are taken from a 64-bit
    /// buffer refilled 7 bytes at a time while far from the end.
    fn codes(&mut self, lit: &Huffman, dist: &Huffman) -> Result<(), &'static str> {
        const LEN_EXTRA: [u8; 29] = [
            0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
        ];
        const DIST_EXTRA: [u8; 32] = [
            0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12,
            12, 13, 13, 0xff, 0xff,
        ];
        let data = self.data;
        let total_bits = data.len() * 8;
        // Fast path, while 8 bytes can be loaded: a 64-bit bit buffer kept
        // in a register and topped up before each symbol to at least 56
        // bits (libdeflate's refill: the bytes that fit whole are counted,
        // the bits of a partial one are loaded again next time). A symbol
        // takes at most 48 bits, so the buffer never runs dry and every
        // bit read is within the data.
        let (mut next, mut have) = (self.pos / 8, 0u32);
        let mut buf = 0u64;
        if next + 8 <= data.len() {
            buf = u64::from_le_bytes(data[next..next + 8].try_into().expect("8 bytes"));
            let skip = (self.pos % 8) as u32;
            buf >>= skip;
            have = 64 - skip;
            next += 8;
        }
        while next + 8 <= data.len() {
            if have < 56 {
                let word = u64::from_le_bytes(data[next..next + 8].try_into().expect("8 bytes"));
                buf |= word << have;
                next += ((63 - have) / 8) as usize;
                have |= 56;
            }
            let (sym, len) = lit.lookup(buf);
            if len == 0 {
                return Err("invalid Huffman code");
            }
            let used = match sym {
                0..=255 => len,
                256 => {
                    self.pos = next * 8 - have as usize + len as usize;
                    return Ok(());
                }
                257..=285 => {
                    let l = len + u32::from(LEN_EXTRA[usize::from(sym - 257)]);
                    let (d, dlen) = dist.lookup(buf >> l);
                    let extra = DIST_EXTRA[usize::from(d & 0x1f)];
                    if dlen == 0 || extra == 0xff {
                        return Err("invalid distance code");
                    }
                    l + dlen + u32::from(extra)
                }
                _ => return Err("invalid length code"),
            };
            buf >>= used;
            have -= used;
        }
        // The last bytes, read with bounds checks.
        let mut pos = if have == 0 {
            self.pos
        } else {
            next * 8 - have as usize
        };
        loop {
            // At most 15 + 5 + 15 + 13 = 48 bits per symbol: one refill.
            let byte = pos / 8;
            let buf = if byte + 8 <= data.len() {
                u64::from_le_bytes(data[byte..byte + 8].try_into().expect("8 bytes")) >> (pos % 8)
            } else {
                self.pos = pos;
                self.peek(32) as u64 | (u64::from(self.peek_at(pos + 32, 24)) << 32)
            };
            let (sym, len) = lit.lookup(buf);
            if len == 0 {
                return Err("invalid Huffman code");
            }
            let mut used = len;
            match sym {
                0..=255 => {}
                256 => {
                    pos += used as usize;
                    if pos > total_bits {
                        return Err("stream ends early");
                    }
                    self.pos = pos;
                    return Ok(());
                }
                257..=285 => {
                    used += u32::from(LEN_EXTRA[usize::from(sym - 257)]);
                    let (d, dlen) = dist.lookup(buf >> used);
                    let extra = DIST_EXTRA[usize::from(d & 0x1f)];
                    if dlen == 0 || extra == 0xff {
                        return Err("invalid distance code");
                    }
                    used += dlen + u32::from(extra);
                }
                _ => return Err("invalid length code"),
            }
            pos += used as usize;
            if pos > total_bits {
                return Err("stream ends early");
            }
        }
    }

    /// The code tables of a dynamic block (RFC 1951 §3.2.7).
    fn dynamic_tables(&mut self) -> Result<(Huffman, Huffman), &'static str> {
        const ORDER: [usize; 19] = [
            16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
        ];
        let hlit = self.bits(5)? as usize + 257;
        let hdist = self.bits(5)? as usize + 1;
        let hclen = self.bits(4)? as usize + 4;
        // RFC 1951 §3.2.7: 257-286 literal/length codes, 1-32 distance
        // codes of which only 30 are used (zlib refuses more as well).
        if hlit > 286 || hdist > 30 {
            return Err("too many length or distance codes");
        }
        let mut cl = [0u8; 19];
        for &i in &ORDER[..hclen] {
            cl[i] = self.bits(3)? as u8;
        }
        let clh = Huffman::new(&cl)?;
        let mut lens = [0u8; 286 + 32];
        let mut i = 0;
        while i < hlit + hdist {
            let sym = self.decode(&clh)?;
            let (value, repeat) = match sym {
                0..=15 => (sym as u8, 1),
                16 => {
                    let prev = *lens[..i].last().ok_or("repeat with no previous length")?;
                    (prev, 3 + self.bits(2)? as usize)
                }
                17 => (0, 3 + self.bits(3)? as usize),
                _ => (0, 11 + self.bits(7)? as usize),
            };
            if i + repeat > hlit + hdist {
                return Err("code lengths overflow");
            }
            lens[i..i + repeat].fill(value);
            i += repeat;
        }
        Ok((
            Huffman::new(&lens[..hlit])?,
            Huffman::new(&lens[hlit..hlit + hdist])?,
        ))
    }
}

/// A canonical Huffman code as lookup tables: a primary table indexed by
/// the next [`Huffman::PRIMARY`] input bits (small enough to stay in the
/// L1 cache), and subtables for the longer codes. See [`Huffman::lookup`].
struct Huffman {
    /// Entry: `symbol | length << 16` for a code of up to `PRIMARY` bits;
    /// `SUB | offset | sub_bits << 24` for a prefix of longer codes; 0 for
    /// no code.
    primary: Vec<u32>,
    /// Entries `symbol | length << 16` (length counted from the start).
    sub: Vec<u32>,
}

impl Huffman {
    const PRIMARY: u32 = 10;
    const SUB: u32 = 1 << 31;

    fn new(lens: &[u8]) -> Result<Self, &'static str> {
        let mut count = [0u16; 16];
        for &l in lens {
            count[usize::from(l)] += 1;
        }
        count[0] = 0;
        let mut next = [0u32; 16];
        let mut code = 0u32;
        for bits in 1..16 {
            code = (code + u32::from(count[bits - 1])) << 1;
            next[bits] = code;
        }
        // Every code, bit-reversed (deflate sends codes most significant
        // bit first into a stream read least significant bit first).
        let mut codes = Vec::with_capacity(lens.len());
        for (sym, &l) in lens.iter().enumerate() {
            if l == 0 {
                continue;
            }
            let l = u32::from(l);
            let c = next[l as usize];
            next[l as usize] += 1;
            if c >= 1 << l {
                return Err("over-subscribed Huffman code");
            }
            codes.push((sym as u32, l, c.reverse_bits() >> (32 - l)));
        }
        let p = Self::PRIMARY;
        let pmask = (1u32 << p) - 1;
        let mut primary = vec![0u32; 1 << p];
        // Longest code length beyond `p` for each primary prefix.
        let mut sub_bits = vec![0u32; 1 << p];
        for &(sym, l, rev) in &codes {
            if l <= p {
                let mut i = rev as usize;
                while i < primary.len() {
                    primary[i] = sym | l << 16;
                    i += 1 << l;
                }
            } else {
                let pre = (rev & pmask) as usize;
                sub_bits[pre] = sub_bits[pre].max(l - p);
            }
        }
        let mut sub = Vec::new();
        for (pre, &bits) in sub_bits.iter().enumerate() {
            if bits > 0 {
                primary[pre] = Self::SUB | sub.len() as u32 | bits << 24;
                sub.resize(sub.len() + (1 << bits), 0);
            }
        }
        for &(sym, l, rev) in &codes {
            if l > p {
                let e = primary[(rev & pmask) as usize];
                let (offset, bits) = ((e & 0xffff) as usize, (e >> 24) & 0x1f);
                let mut i = (rev >> p) as usize;
                while i < 1 << bits {
                    sub[offset + i] = sym | l << 16;
                    i += 1 << (l - p);
                }
            }
        }
        Ok(Huffman { primary, sub })
    }

    /// The symbol and code length at the start of `bits` (length 0: no
    /// such code).
    #[inline]
    fn lookup(&self, bits: u64) -> (u16, u32) {
        let e = self.primary[(bits & ((1 << Self::PRIMARY) - 1)) as usize];
        let e = if e & Self::SUB == 0 {
            e
        } else {
            let (offset, n) = ((e & 0xffff) as usize, (e >> 24) & 0x1f);
            self.sub[offset + ((bits >> Self::PRIMARY) & ((1 << n) - 1)) as usize]
        };
        ((e & 0xffff) as u16, e >> 16)
    }
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

    /// The repeat check as first written: a table of positions, the
    /// sequence at the remembered position read again to confirm.
    fn repeats_by_position(data: &[u8]) -> usize {
        let mut table = [u32::MAX; 1 << 12];
        let (mut repeats, mut i) = (0, 0);
        while i + 8 <= data.len() {
            let w = u64::from_le_bytes(data[i..i + 8].try_into().unwrap());
            let h = (w.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 52) as usize;
            if table[h] != u32::MAX {
                let p = table[h] as usize;
                repeats += usize::from(data[p..p + 8] == data[i..i + 8]);
            }
            table[h] = i as u32;
            i += 4;
        }
        repeats
    }

    #[test]
    fn repeat_check_decides_as_the_position_table_did() {
        // Random data with more and more copied runs, across the
        // threshold (one repeat in 512 sampled positions), and runs of
        // zeros (whose sequence hashes to slot 0).
        for copies in [0usize, 1, 4, 8, 15, 16, 17, 24, 32, 64, 200] {
            for zeros in [false, true] {
                let mut d = xorshift(65536, copies as u64 + 1);
                let mut x = 12345u64 + copies as u64;
                for k in 0..copies {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let from = (x >> 33) as usize % 60000;
                    let to = (from + 64 + k * 4) % 60000;
                    let run: Vec<u8> = if zeros {
                        vec![0; 32]
                    } else {
                        d[from..from + 32].to_vec()
                    };
                    d[to..to + 32].copy_from_slice(&run);
                }
                let want = repeats_by_position(&d) * 512 < d.len() / 4;
                assert_eq!(
                    looks_incompressible(&d),
                    want,
                    "{copies} copies, zeros {zeros}"
                );
            }
        }
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
    fn nonfinal_pieces_concatenate_into_one_stream() {
        let text: Vec<u8> = (0..300_000u32)
            .map(|i| {
                b"capos kernel starting, firmware=uefi\n"[(i % 37) as usize] ^ (i / 4099) as u8
            })
            .collect();
        let random = xorshift(70_000, 11);
        let pieces: Vec<&[u8]> = vec![&text[..100_000], &random, b"", &text[100_000..], b"x"];
        for level in [1, 4, 6, 12] {
            let mut c =
                libdeflater::Compressor::new(libdeflater::CompressionLvl::new(level).unwrap());
            let mut stream = Vec::new();
            for p in &pieces {
                let mut out = vec![0u8; c.deflate_compress_bound(p.len())];
                let n = c.deflate_compress(p, &mut out).unwrap();
                out.truncate(n);
                make_nonfinal(&mut out).unwrap();
                assert_eq!(&out[out.len() - 4..], &[0, 0, 0xff, 0xff]);
                stream.extend_from_slice(&out);
            }
            push_stored(&[], true, &mut stream);
            let mut d = Decompress::new(false);
            let mut back = Vec::with_capacity(text.len() + random.len() + 10);
            let st = d
                .decompress_vec(&stream, &mut back, FlushDecompress::Finish)
                .unwrap();
            assert_eq!(st, flate2::Status::StreamEnd, "level {level}");
            assert_eq!(back, pieces.concat(), "level {level}");
        }
        assert!(make_nonfinal(&mut vec![0xff]).is_err());
        // HLIT 288 and HDIST 31 (found by fuzzing): refused, as zlib does.
        let mut bad = vec![0xfd, 0xfe, 0xff];
        bad.resize(40, 0);
        assert_eq!(
            make_nonfinal(&mut bad),
            Err("too many length or distance codes")
        );
        assert!(make_nonfinal(&mut Vec::new()).is_err());
        // Garbage, and every truncation of a real piece: errors, no panic.
        for seed in 0..2000u64 {
            let mut junk = xorshift((seed % 300) as usize, seed + 1);
            let _ = make_nonfinal(&mut junk);
        }
        let mut c = libdeflater::Compressor::new(libdeflater::CompressionLvl::new(6).unwrap());
        let mut out = vec![0u8; c.deflate_compress_bound(text.len())];
        let n = c.deflate_compress(&text[..20_000], &mut out).unwrap();
        for cut in 0..n {
            let mut piece = out[..cut].to_vec();
            assert!(make_nonfinal(&mut piece).is_err(), "cut {cut}");
        }
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
