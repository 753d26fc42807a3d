//! SHA-256 of a virtual disk's decoded content, fed data and zero runs in
//! order.

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::disk::{for_each_chunk, Chunk, VirtualDisk, BUFFER_SIZE};

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

impl std::str::FromStr for Sha256Hex {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s.trim(), &mut out)
            .map_err(|_| format!("{s:?} is not a SHA-256 (64 hex digits)"))?;
        Ok(Sha256Hex(out))
    }
}

/// Incremental SHA-256 over a disk's content that also counts the bytes,
/// so the caller can check the decoded size.
#[derive(Clone, Default)]
pub struct DiskDigest {
    hasher: Sha256,
    len: u64,
}

static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];

impl DiskDigest {
    /// A new, empty digest.
    pub fn new() -> Self {
        Self::default()
    }
    /// Hash `data`.
    pub fn data(&mut self, data: &[u8]) {
        self.hasher.update(data);
        self.len += data.len() as u64;
    }
    /// Hash `n` zero bytes.
    pub fn zeros(&mut self, mut n: u64) {
        self.len += n;
        while n > 0 {
            let k = n.min(ZEROS.len() as u64) as usize;
            self.hasher.update(&ZEROS[..k]);
            n -= k as u64;
        }
    }
    /// Bytes hashed so far.
    pub fn len(&self) -> u64 {
        self.len
    }
    /// Whether nothing has been hashed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// The digest.
    pub fn finish(self) -> Sha256Hex {
        Sha256Hex(self.hasher.finalize().into())
    }
}

/// SHA-256 of a whole virtual disk's content.
pub fn sha256_disk(disk: &(impl VirtualDisk + ?Sized)) -> io::Result<Sha256Hex> {
    let mut d = DiskDigest::new();
    for_each_chunk(disk, |_, c| -> io::Result<()> {
        match c {
            Chunk::Data(b) => d.data(b),
            Chunk::Zero(n) => d.zeros(n),
        }
        Ok(())
    })?;
    Ok(d.finish())
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
    fn known_empty_digest() {
        assert_eq!(
            DiskDigest::new().finish().to_string(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
