//! Unnamed temporary files: created under a unique name and unlinked at
//! once, so the open file is the only reference and nothing is left
//! behind, whatever happens to the process. Used for scratch copies
//! (an OVA's VMDK, a decoded input disk), never for artifacts (those are
//! [`OutputFile`](super::OutputFile)s).

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, IoContext, Result};

/// An unnamed temporary file in `dir`; `what` names it in errors ("a
/// temporary VMDK").
pub fn unnamed_temp_in(dir: &Path, what: &str) -> Result<File> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    for _ in 0..100 {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!(".cloudimg-scratch.{}.{n}.tmp", std::process::id()));
        match OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
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
