//! Helpers shared by the fuzz targets.

use std::fs::File;
use std::os::unix::fs::FileExt;

use cloudimg_disk::VirtualDisk;

/// Largest virtual disk a target lets a verifier decode in full. Verifiers
/// hash the whole decoded disk, holes included (about 1.5 GB/s), so a
/// 600-byte file may legitimately describe a 2 TiB sparse disk that takes
/// minutes to hash: that is proportional to the declared size, not a bug,
/// and would only make libFuzzer report timeouts.
pub const MAX_VERIFY_BYTES: u64 = 256 << 20;

/// The input as an anonymous in-memory file (memfd), for the verifiers
/// that take a `File`.
pub fn memfd(data: &[u8]) -> File {
    let fd = rustix::fs::memfd_create("cloudimg-fuzz", rustix::fs::MemfdFlags::CLOEXEC)
        .expect("memfd_create");
    let f = File::from(fd);
    f.write_all_at(data, 0).expect("writing the memfd");
    f
}

/// Path of an open file through /proc, for APIs that take a path.
pub fn proc_path(f: &File) -> std::path::PathBuf {
    use std::os::fd::AsRawFd;
    format!("/proc/self/fd/{}", f.as_raw_fd()).into()
}

/// Read a few places of a disk and its extent map: errors are fine,
/// panics are not.
pub fn exercise(disk: &dyn VirtualDisk) {
    let size = disk.size();
    let _ = disk.extents();
    let mut buf = vec![0u8; 4096];
    for off in [0, size / 2, size.saturating_sub(4096), size.saturating_sub(100)] {
        let n = (size - off.min(size)).min(buf.len() as u64) as usize;
        let _ = disk.read_at(&mut buf[..n], off);
    }
    // Reading past the end must be an error, never a panic.
    let _ = disk.read_at(&mut buf[..512], size.saturating_sub(256));
    let _ = disk.read_at(&mut buf[..512], u64::MAX - 100);
}
