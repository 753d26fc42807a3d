//! A sparse copy of a decoded disk, written while a verifier feeds its
//! [`DiskDigest`](super::DiskDigest): the opener reads a compressed
//! container once, the verifier's decode doing both the checking and the
//! copying ([`crate::formats::open::open_file_disk`]).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Mutex;

use crate::error::{Error, IoContext, Result};
use crate::io::Sha256Hex;

/// Block size used to leave all-zero blocks of a decoded copy as holes
/// (the common file system block size).
pub const HOLE_BLOCK: usize = 4096;

/// Write `data` at `offset`, skipping all-zero blocks aligned to
/// [`HOLE_BLOCK`] so they stay holes.
pub(crate) fn write_nonzero(out: &File, data: &[u8], offset: u64) -> Result<()> {
    let mut i = 0usize;
    while i < data.len() {
        let abs = offset + i as u64;
        let to_boundary = HOLE_BLOCK - (abs % HOLE_BLOCK as u64) as usize;
        let n = to_boundary.min(data.len() - i);
        let piece = &data[i..i + n];
        if piece.iter().any(|&b| b != 0) {
            out.write_all_at(piece, abs)
                .ctx("writing the extracted disk")?;
        }
        i += n;
    }
    Ok(())
}

/// The file a digest copies the content it is fed into, in place (data
/// at its offset in the disk, all-zero blocks left as holes), and what
/// became of the copy.
pub struct DecodedCopy {
    file: File,
    state: Mutex<CopyState>,
}

#[derive(Default)]
struct CopyState {
    /// The first write that failed.
    error: Option<Error>,
    /// The length and SHA-256 of the content fed, once the digest that
    /// fed it finished.
    finished: Option<(u64, Sha256Hex)>,
}

impl DecodedCopy {
    /// A copy into `file`, which must be empty.
    pub fn new(file: File) -> Self {
        DecodedCopy {
            file,
            state: Mutex::new(CopyState::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, CopyState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Copy `data`, found at `offset` of the disk.
    pub(crate) fn data(&self, offset: u64, data: &[u8]) {
        if self.state().error.is_some() {
            return;
        }
        if let Err(e) = write_nonzero(&self.file, data, offset) {
            self.state().error = Some(e);
        }
    }

    /// The digest that fed this copy finished: its content was `len`
    /// bytes long with SHA-256 `sha256`.
    pub(crate) fn finished(&self, len: u64, sha256: Sha256Hex) {
        self.state().finished = Some((len, sha256));
    }

    /// The copied file, sized to `size`, when the content fed to it is
    /// exactly the disk of `size` bytes whose SHA-256 is `sha256` (the
    /// one a verifier reported); `Ok(None)` when it is not (the digest
    /// fed was dropped, or another one's result was reported).
    pub fn into_file(self, size: u64, sha256: Sha256Hex) -> Result<Option<File>> {
        let state = self.state.into_inner().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = state.error {
            return Err(e);
        }
        if state.finished != Some((size, sha256)) {
            return Ok(None);
        }
        self.file
            .set_len(size)
            .ctx("sizing the temporary decoded disk")?;
        Ok(Some(self.file))
    }
}
