//! SHA-256 of a virtual disk's decoded content, fed data and zero runs in
//! order.

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use sha2::{Digest, Sha256};

use super::DecodedCopy;
use crate::disk::{for_each_chunk, Chunk, Extent, ExtentKind, VirtualDisk, BUFFER_SIZE};

/// A SHA-256 digest, shown as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sha256Hex(pub [u8; 32]);

impl fmt::Display for Sha256Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Sha256Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl<'de> serde::Deserialize<'de> for Sha256Hex {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl std::str::FromStr for Sha256Hex {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s.trim(), &mut out)
            .map_err(|_| format!("{s:?} is not a SHA-256 (64 hex digits)"))?;
        Ok(Sha256Hex(out))
    }
}

/// The decoded content of a disk, fed in order as data and zero runs, and
/// either hashed (SHA-256) or compared with an expected disk.
///
/// Comparing is how `package` verifies what it wrote: the decoded
/// artifact must equal, byte for byte, the disk it was made from, whose
/// SHA-256 is known; equal content has equal digests, so [`finish`]
/// returns that digest without hashing every byte again. Zero runs are
/// checked against the expected disk's extent map, so holes cost nothing.
///
/// [`finish`]: DiskDigest::finish
pub struct DiskDigest<'a> {
    mode: Mode<'a>,
    len: u64,
    /// Where the content fed is also copied, if anywhere.
    copy: Option<&'a DecodedCopy>,
}

enum Mode<'a> {
    Hash(Sha256),
    Compare(Box<Compare<'a>>),
}

struct Compare<'a> {
    expected: &'a dyn VirtualDisk,
    sha256: Sha256Hex,
    extents: Vec<Extent>,
    /// Index of the first extent that may still overlap the position.
    cursor: usize,
    scratch: Vec<u8>,
    mismatch: Option<u64>,
}

impl Default for DiskDigest<'_> {
    fn default() -> Self {
        DiskDigest {
            mode: Mode::Hash(Sha256::new()),
            len: 0,
            copy: None,
        }
    }
}

static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];

impl<'a> DiskDigest<'a> {
    /// A new, empty digest that hashes.
    pub fn new() -> Self {
        Self::default()
    }

    /// A digest that compares the content with `expected`, whose SHA-256
    /// is `sha256`, instead of hashing it.
    pub fn comparing(expected: &'a dyn VirtualDisk, sha256: Sha256Hex) -> io::Result<Self> {
        let extents = expected.extents()?;
        Ok(DiskDigest {
            mode: Mode::Compare(Box::new(Compare {
                expected,
                sha256,
                extents,
                cursor: 0,
                scratch: Vec::new(),
                mismatch: None,
            })),
            len: 0,
            copy: None,
        })
    }

    /// This digest, also copying the content it is fed into `copy` (data
    /// in place, zero runs left as holes), and telling it how the content
    /// ended when it finishes.
    pub fn copying_to(mut self, copy: &'a DecodedCopy) -> Self {
        self.copy = Some(copy);
        self
    }

    /// Feed `data`.
    pub fn data(&mut self, data: &[u8]) {
        if let Some(c) = self.copy {
            c.data(self.len, data);
        }
        match &mut self.mode {
            Mode::Hash(h) => h.update(data),
            Mode::Compare(c) => c.data(self.len, data),
        }
        self.len += data.len() as u64;
    }

    /// Feed `n` zero bytes.
    pub fn zeros(&mut self, n: u64) {
        match &mut self.mode {
            Mode::Hash(h) => {
                let mut left = n;
                while left > 0 {
                    let k = left.min(ZEROS.len() as u64) as usize;
                    h.update(&ZEROS[..k]);
                    left -= k as u64;
                }
            }
            Mode::Compare(c) => c.zeros(self.len, n),
        }
        self.len += n;
    }

    /// Bytes fed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing has been fed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// In compare mode: the first byte offset where the content differs
    /// from the expected disk (or where one of them ends early).
    pub fn mismatch(&self) -> Option<u64> {
        match &self.mode {
            Mode::Hash(_) => None,
            Mode::Compare(c) => c.mismatch.or_else(|| {
                let size = c.expected.size();
                (self.len != size).then_some(self.len.min(size))
            }),
        }
    }

    /// The SHA-256 of the content fed. In compare mode this is the
    /// expected disk's digest when the content matched it in full, and
    /// `Err(offset)` of the first difference otherwise.
    pub fn finish_checked(self) -> Result<Sha256Hex, u64> {
        let mismatch = self.mismatch();
        let (len, copy) = (self.len, self.copy);
        let sha = match self.mode {
            Mode::Hash(h) => Ok(Sha256Hex(h.finalize().into())),
            Mode::Compare(c) => match mismatch {
                None => Ok(c.sha256),
                Some(at) => Err(at),
            },
        };
        if let (Some(c), Ok(s)) = (copy, sha) {
            c.finished(len, s);
        }
        sha
    }

    /// The SHA-256 of the content fed. In compare mode, when the content
    /// differs from the expected disk, this is the SHA-256 of a text naming
    /// the first difference: never the expected digest, so a caller that
    /// compares digests sees the failure (and can ask [`mismatch`]).
    ///
    /// [`mismatch`]: DiskDigest::mismatch
    pub fn finish(self) -> Sha256Hex {
        self.finish_checked().unwrap_or_else(|at| {
            let mut h = Sha256::new();
            h.update(format!(
                "cloudimg: content differs from the expected disk at byte {at}"
            ));
            Sha256Hex(h.finalize().into())
        })
    }
}

impl Compare<'_> {
    fn fail(&mut self, at: u64) {
        if self.mismatch.is_none() {
            self.mismatch = Some(at);
        }
    }

    fn data(&mut self, pos: u64, data: &[u8]) {
        if self.mismatch.is_some() {
            return;
        }
        let end = pos + data.len() as u64;
        if end > self.expected.size() {
            return self.fail(pos.max(self.expected.size().min(end)));
        }
        self.scratch.resize(data.len(), 0);
        if self.expected.read_at(&mut self.scratch, pos).is_err() {
            return self.fail(pos);
        }
        if self.scratch != data {
            let i = self
                .scratch
                .iter()
                .zip(data)
                .position(|(a, b)| a != b)
                .unwrap_or(0);
            self.fail(pos + i as u64);
        }
    }

    fn zeros(&mut self, pos: u64, n: u64) {
        if self.mismatch.is_some() || n == 0 {
            return;
        }
        let end = pos + n;
        if end > self.expected.size() {
            return self.fail(pos.max(self.expected.size().min(end)));
        }
        while self.cursor < self.extents.len() && self.extents[self.cursor].end() <= pos {
            self.cursor += 1;
        }
        let mut i = self.cursor;
        while i < self.extents.len() && self.extents[i].offset < end {
            let e = self.extents[i];
            if e.kind == ExtentKind::Data {
                let mut at = e.offset.max(pos);
                let to = e.end().min(end);
                while at < to {
                    let k = (to - at).min(BUFFER_SIZE as u64) as usize;
                    self.scratch.resize(k, 0);
                    if self.expected.read_at(&mut self.scratch, at).is_err() {
                        return self.fail(at);
                    }
                    if let Some(j) = self.scratch.iter().position(|&b| b != 0) {
                        return self.fail(at + j as u64);
                    }
                    at += k as u64;
                }
            }
            i += 1;
        }
    }
}

/// SHA-256 of a whole virtual disk's content.
pub fn sha256_disk(disk: &(impl VirtualDisk + ?Sized)) -> io::Result<Sha256Hex> {
    let mut d = DiskDigest::new();
    feed_disk(disk, &mut d)?;
    Ok(d.finish())
}

/// Feed a whole disk's content, in order, to `digest`.
pub fn feed_disk(
    disk: &(impl VirtualDisk + ?Sized),
    digest: &mut DiskDigest<'_>,
) -> io::Result<()> {
    for_each_chunk(disk, |_, c| -> io::Result<()> {
        match c {
            Chunk::Data(b) => digest.data(b),
            Chunk::Zero(n) => digest.zeros(n),
        }
        Ok(())
    })
}

/// SHA-256 of a file's bytes (as stored, not decoded), reading holes as
/// zeros through the sparse-aware [`RawFile`](super::RawFile).
pub fn sha256_file(path: &Path) -> io::Result<Sha256Hex> {
    match super::RawFile::open(path) {
        Ok(f) => sha256_disk(&f),
        Err(_) => {
            // Not a regular file we can seek in: hash the stream.
            let mut f = File::open(path)?;
            let mut d = DiskDigest::new();
            let mut buf = vec![0; BUFFER_SIZE];
            loop {
                let n = f.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                d.data(&buf[..n]);
            }
            Ok(d.finish())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeros_hash_like_data() {
        let mut a = DiskDigest::new();
        a.zeros(200_000);
        let mut b = DiskDigest::new();
        b.data(&vec![0; 200_000]);
        assert_eq!(a.len(), 200_000);
        assert_eq!(a.finish(), b.finish());
    }

    #[test]
    fn compare_mode_finds_the_first_difference() {
        let mut bytes = vec![0u8; 20000];
        bytes[3000] = 1;
        let expected = crate::disk::MemDisk::new(bytes.clone());
        let sha = sha256_disk(&expected).unwrap();
        let mut same = DiskDigest::comparing(&expected, sha).unwrap();
        same.zeros(3000);
        same.data(&bytes[3000..10000]);
        same.zeros(10000);
        assert_eq!(same.finish_checked(), Ok(sha));

        let mut diff = DiskDigest::comparing(&expected, sha).unwrap();
        diff.zeros(4000);
        diff.zeros(16000);
        assert_eq!(diff.finish_checked(), Err(3000));

        let mut short = DiskDigest::comparing(&expected, sha).unwrap();
        short.data(&bytes[..19000]);
        assert_eq!(short.mismatch(), Some(19000));
        assert_ne!(short.finish(), sha);
    }

    #[test]
    fn known_empty_digest() {
        assert_eq!(
            DiskDigest::new().finish().to_string(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
