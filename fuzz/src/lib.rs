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
    for off in [
        0,
        size / 2,
        size.saturating_sub(4096),
        size.saturating_sub(100),
    ] {
        let n = (size - off.min(size)).min(buf.len() as u64) as usize;
        let _ = disk.read_at(&mut buf[..n], off);
    }
    // Reading past the end must be an error, never a panic.
    let _ = disk.read_at(&mut buf[..512], size.saturating_sub(256));
    let _ = disk.read_at(&mut buf[..512], u64::MAX - 100);
}

// Checksum fix-ups: libFuzzer almost never guesses a CRC, so every target
// also runs on a copy of the input whose checksums are recomputed, which
// lets mutations reach the code behind the checks.

/// Whether to fix checksums: chosen by the input's first byte, so that
/// both variants are explored.
pub fn fixing(data: &[u8]) -> bool {
    data.first().is_some_and(|b| b & 1 == 1)
}

/// Recompute the array and header CRCs of the GPT headers at LBA 1 and at
/// the last LBA (when they carry the signature and sane sizes).
pub fn fix_gpt(d: &mut [u8]) {
    use cloudimg_disk::layout::gpt::{crc32, GptHeaderRaw, MAX_ARRAY_BYTES};
    let sectors = d.len() / 512;
    for lba in [1, sectors.saturating_sub(1)] {
        if lba == 0 || lba >= sectors {
            continue;
        }
        let at = lba * 512;
        let mut raw = GptHeaderRaw([0; 512]);
        raw.0.copy_from_slice(&d[at..at + 512]);
        if !raw.has_signature() {
            continue;
        }
        let h = raw.header();
        let bytes = h.array_bytes();
        let start = h.entries_lba.checked_mul(512);
        if let Some(s) = start.filter(|_| bytes <= MAX_ARRAY_BYTES) {
            if let Some(a) = d.get(s as usize..(s + bytes) as usize) {
                raw.0[88..92].copy_from_slice(&crc32(a).to_le_bytes());
            }
        }
        raw.update_crc();
        d[at..at + 512].copy_from_slice(&raw.0);
    }
}

/// Recompute the VHD footer checksums (at the end and the start) and the
/// dynamic header checksum.
pub fn fix_vhd(d: &mut [u8]) {
    use cloudimg_disk::formats::vhd::wire::{checksum, off, DYNAMIC_CHECKSUM_OFFSET};
    let n = d.len();
    if n < 512 {
        return;
    }
    for at in [0, n - 512] {
        if &d[at..at + 8] == b"conectix" {
            let c = checksum(&d[at..at + 512], off::CHECKSUM);
            d[at + off::CHECKSUM..at + off::CHECKSUM + 4].copy_from_slice(&c.to_be_bytes());
            let ho = u64::from_be_bytes(d[at + 16..at + 24].try_into().unwrap());
            if let Some(h) = usize::try_from(ho)
                .ok()
                .filter(|&h| h.saturating_add(1024) <= n)
            {
                let c = checksum(&d[h..h + 1024], DYNAMIC_CHECKSUM_OFFSET);
                d[h + DYNAMIC_CHECKSUM_OFFSET..h + DYNAMIC_CHECKSUM_OFFSET + 4]
                    .copy_from_slice(&c.to_be_bytes());
            }
        }
    }
}

/// Recompute the checksum of every 512-byte block that looks like a tar
/// header (ustar magic).
pub fn fix_tar(d: &mut [u8]) {
    use cloudimg_disk::formats::gcp::tar::header_checksum;
    for b in d.chunks_exact_mut(512) {
        if &b[257..262] != b"ustar" {
            continue;
        }
        let block: &mut [u8; 512] = b.try_into().unwrap();
        let (sum, _) = header_checksum(block);
        let s = format!("{sum:06o}\0 ");
        block[148..156].copy_from_slice(s.as_bytes());
    }
}
