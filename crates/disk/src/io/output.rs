//! Output files that are written under a unique temporary name in the
//! destination directory and renamed to their final name only once
//! verified, so a half-written artifact never looks finished.
//!
//! Every temporary path is kept in a process-wide registry so that a
//! signal handler can remove them ([`cleanup_registered`]).

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rustix::fs::OFlags;

/// The temporary files alive, and whether the process is shutting down.
/// Files are created and registered under this lock, so a cleanup can
/// never miss one that is being created at the same moment.
struct Registry {
    paths: Vec<PathBuf>,
    closed: bool,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    paths: Vec::new(),
    closed: false,
});

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

fn unregister(p: &Path) {
    registry().paths.retain(|q| q != p);
}

/// Remove every temporary file still registered, and refuse to create new
/// ones from now on (the process is exiting). Called from signal handlers;
/// returns how many were removed.
pub fn cleanup_registered() -> usize {
    let mut r = registry();
    r.closed = true;
    let paths = std::mem::take(&mut r.paths);
    paths.iter().filter(|p| fs::remove_file(p).is_ok()).count()
}

/// A file being written under a temporary name beside its final path.
#[derive(Debug)]
pub struct OutputFile {
    file: Option<File>,
    temp: PathBuf,
    target: PathBuf,
}

impl OutputFile {
    /// Create a new, empty temporary file for `target`, in the same
    /// directory (so the final rename is atomic). The temporary name is
    /// unique to this process and call: two runs writing the same target
    /// never share a file.
    pub fn create(target: impl AsRef<Path>) -> io::Result<Self> {
        let target = target.as_ref().to_path_buf();
        let dir = match target.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = target
            .file_name()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "output has no file name"))?
            .to_string_lossy()
            .into_owned();
        let mut r = registry();
        if r.closed {
            return Err(io::Error::new(io::ErrorKind::Interrupted, "interrupted"));
        }
        // A name another user took (a file, a symlink) is skipped for
        // another; the name is unpredictable, the file owner-only (it holds
        // image data) and never reached through a symlink.
        let mut tries = 0;
        let (file, temp) = loop {
            let temp = dir.join(format!(".{name}.{}.partial", super::temp::unpredictable()));
            match OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(OFlags::NOFOLLOW.bits() as i32)
                .open(&temp)
            {
                Ok(f) => break (f, temp),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && tries < 100 => tries += 1,
                Err(e) => return Err(e),
            }
        };
        r.paths.push(temp.clone());
        drop(r);
        Ok(OutputFile {
            file: Some(file),
            temp,
            target,
        })
    }

    /// The open temporary file.
    pub fn file(&self) -> &File {
        self.file.as_ref().expect("file is open until commit")
    }

    /// The temporary path.
    pub fn temp_path(&self) -> &Path {
        &self.temp
    }

    /// The final path.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Flush the file to stable storage and give it its final name only
    /// if nothing has that name yet: the file is hard-linked to its final
    /// name (which fails with `AlreadyExists` when the name is taken, even
    /// by a dangling symlink, and never follows one), then the temporary
    /// name is removed. On failure the temporary file is removed.
    pub fn commit_new(mut self) -> io::Result<PathBuf> {
        let file = self.file.take().expect("file is open until commit");
        let linked = file
            .sync_all()
            .and_then(|()| fs::hard_link(&self.temp, &self.target));
        drop(file);
        let _ = fs::remove_file(&self.temp);
        unregister(&self.temp);
        linked.map(|()| self.target.clone())
    }

    /// Flush the file to stable storage and give it its final name.
    pub fn commit(mut self) -> io::Result<PathBuf> {
        let file = self.file.take().expect("file is open until commit");
        file.sync_all()?;
        drop(file);
        fs::rename(&self.temp, &self.target)?;
        unregister(&self.temp);
        Ok(self.target.clone())
    }
}

impl Drop for OutputFile {
    fn drop(&mut self) {
        if self.file.is_some() {
            self.file = None;
            let _ = fs::remove_file(&self.temp);
            unregister(&self.temp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn dropped_output_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let out = OutputFile::create(dir.path().join("a.raw")).unwrap();
        out.file().write_all(b"x").unwrap();
        drop(out);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn commit_new_never_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("a.raw");
        fs::write(&target, b"mine").unwrap();
        let out = OutputFile::create(&target).unwrap();
        out.file().write_all(b"x").unwrap();
        let err = out.commit_new().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&target).unwrap(), b"mine");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        fs::remove_file(&target).unwrap();
        let out = OutputFile::create(&target).unwrap();
        out.file().write_all(b"x").unwrap();
        assert_eq!(fs::read(out.commit_new().unwrap()).unwrap(), b"x");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn committed_output_has_final_name() {
        let dir = tempfile::tempdir().unwrap();
        let out = OutputFile::create(dir.path().join("a.raw")).unwrap();
        out.file().write_all(b"x").unwrap();
        let p = out.commit().unwrap();
        assert_eq!(fs::read(p).unwrap(), b"x");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn temporary_output_is_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let out = OutputFile::create(dir.path().join("a.raw")).unwrap();
        let mode = fs::symlink_metadata(out.temp_path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let p = out.commit().unwrap();
        let mode = fs::metadata(p).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
