//! Unnamed temporary files: created under a unique name and unlinked at
//! once, so the open file is the only reference and nothing is left
//! behind, whatever happens to the process. Used for scratch copies
//! (an OVA's VMDK, a decoded input disk), never for artifacts (those are
//! [`OutputFile`](super::OutputFile)s).

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::OFlags;

use crate::error::{Error, IoContext, Result};

/// An unnamed temporary file in `dir`, readable by its owner only; `what`
/// names it in errors ("a temporary VMDK").
///
/// Linux's `O_TMPFILE` makes a file that never has a name, so no other
/// user can open it, ever. Where the file system does not offer it, the
/// file is created under an unpredictable name with `O_EXCL` (a name
/// someone else took, a symlink too, is skipped for another), mode 0600,
/// and its name removed at once.
pub fn unnamed_temp_in(dir: &Path, what: &str) -> Result<File> {
    match OpenOptions::new()
        .read(true)
        .write(true)
        .mode(0o600)
        .custom_flags(OFlags::TMPFILE.bits() as i32)
        .open(dir)
    {
        Ok(f) => return Ok(f),
        // EISDIR (kernels before 3.11), EOPNOTSUPP (the file system):
        // fall back to a named file; anything else is an error.
        Err(e) if no_tmpfile(&e) => {}
        Err(e) => return Err(Error::io(format!("creating {what}"), e).with_path(dir)),
    }
    for _ in 0..100 {
        let path = dir.join(format!(".cloudimg-scratch.{}.tmp", unpredictable()));
        match OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(OFlags::NOFOLLOW.bits() as i32)
            .open(&path)
        {
            Ok(f) => {
                std::fs::remove_file(&path)
                    .ctx(&format!("removing the name of {what}"))
                    .map_err(|e| e.with_path(&path))?;
                return Ok(f);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io(format!("creating {what}"), e).with_path(&path)),
        }
    }
    Err(Error::invalid_input(format!("cannot find a free name for {what}")).with_path(dir))
}

/// Whether opening with `O_TMPFILE` failed because it is not offered
/// (open(2): `EISDIR` from kernels before 3.11, `EOPNOTSUPP` from file
/// systems without it).
fn no_tmpfile(e: &io::Error) -> bool {
    use rustix::io::Errno;
    [Errno::ISDIR, Errno::OPNOTSUPP]
        .iter()
        .any(|n| e.raw_os_error() == Some(n.raw_os_error()))
}

/// A name part no other process can predict: the process id, a counter,
/// and 64 bits from the standard library's per-process random hash keys.
pub(crate) fn unpredictable() -> String {
    use std::hash::{BuildHasher, RandomState};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let r = RandomState::new().hash_one((n, nanos));
    format!("{}.{n}.{r:016x}", std::process::id())
}

/// An unnamed temporary file beside `file` when its directory is known
/// and writable, else in [`std::env::temp_dir`].
pub fn unnamed_temp_beside(file: &File, what: &str) -> Result<File> {
    use std::os::fd::AsRawFd;
    let beside = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .ok()
        .filter(|p| p.is_absolute())
        .and_then(|p| p.parent().map(PathBuf::from));
    if let Some(dir) = beside {
        if let Ok(f) = unnamed_temp_in(&dir, what) {
            return Ok(f);
        }
    }
    unnamed_temp_in(&std::env::temp_dir(), what)
}

/// Sequential reads of a file by position (`pread`), so that several
/// readers can share one open file.
pub struct FileReader<'a> {
    file: &'a File,
    pos: u64,
}

impl<'a> FileReader<'a> {
    /// A reader from the start of `file`.
    pub fn new(file: &'a File) -> Self {
        FileReader { file, pos: 0 }
    }
}

impl Read for FileReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn scratch_file_is_unnamed_and_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let f = unnamed_temp_in(dir.path(), "a test file").unwrap();
        f.write_all_at(b"secret", 0).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        assert_eq!(f.metadata().unwrap().permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn unpredictable_names_differ() {
        assert_ne!(unpredictable(), unpredictable());
    }
}
