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
    use cloudimg_disk::codec::tar::header_checksum;
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

// Page-encoded inputs: VHDX, QCOW2 and ESP images are mostly zeros (a
// VHDX has a 1 MiB header section and 1 MiB-aligned regions; a FAT32 ESP
// is at least 34 MiB), far beyond what libFuzzer mutates well. Their
// targets therefore also take an input as a list of records
// `{ u32 LE sector, u16 LE length, length bytes }` (the last record's
// bytes may be cut short), each written at `sector * 512` of an
// otherwise zero file whose length is the end of the furthest record.
// `cloudimg-fuzz-seedgen` writes seeds in this encoding (and encodes
// corpus files with `--encode IN OUT`).

/// Largest file a page-encoded input may describe (records ending beyond
/// it are dropped).
pub const MAX_PAGED_FILE: u64 = 256 << 20;

/// Largest virtual disk a target reads in full through its extent map,
/// and (for the new targets) lets its verifier decode: 64 MiB keeps an
/// iteration well under a second.
pub const MAX_READ_BYTES: u64 = 64 << 20;

/// The records of a page-encoded input: (file offset, bytes).
pub fn page_records(data: &[u8]) -> Vec<(u64, &[u8])> {
    let mut out = Vec::new();
    let mut rest = data;
    while rest.len() >= 6 {
        let sector = u32::from_le_bytes(rest[..4].try_into().unwrap());
        let len = u16::from_le_bytes(rest[4..6].try_into().unwrap()) as usize;
        let len = len.min(rest.len() - 6);
        let at = u64::from(sector) * 512;
        if at + len as u64 <= MAX_PAGED_FILE {
            out.push((at, &rest[6..6 + len]));
        }
        rest = &rest[6 + len..];
    }
    out
}

/// A page-encoded input as a (sparse) memfd.
pub fn memfd_pages(data: &[u8]) -> File {
    let f = memfd(&[]);
    let mut end = 0;
    for (at, b) in page_records(data) {
        f.write_all_at(b, at).expect("writing the memfd");
        end = end.max(at + b.len() as u64);
    }
    f.set_len(end).expect("sizing the memfd");
    f
}

/// A page-encoded input as bytes, at most `cap` long (records beyond are
/// dropped).
pub fn pages_vec(data: &[u8], cap: u64) -> Vec<u8> {
    let recs: Vec<_> = page_records(data)
        .into_iter()
        .filter(|(at, b)| at + b.len() as u64 <= cap)
        .collect();
    let end = recs.iter().map(|(at, b)| at + b.len() as u64).max();
    let mut v = vec![0u8; end.unwrap_or(0) as usize];
    for (at, b) in recs {
        v[at as usize..at as usize + b.len()].copy_from_slice(b);
    }
    v
}

/// The file an input stands for: the input itself when it starts with
/// `magic` (a raw image, e.g. a corpus file), else the page-decoded
/// input.
pub fn input_file(data: &[u8], magic: &[u8]) -> File {
    if data.starts_with(magic) {
        memfd(data)
    } else {
        memfd_pages(data)
    }
}

/// Read a disk of at most [`MAX_READ_BYTES`] in full through its extent
/// map and hash it (zero extents as zeros, as verifiers feed them).
/// Checks the `VirtualDisk` contract: the extent map is sorted, gapless,
/// covers `0..size` with non-empty extents, and zero extents read as
/// zeros. `None` when the disk is larger or a read fails (an error is
/// fine, a panic or a broken contract is not).
pub fn read_all(disk: &dyn VirtualDisk) -> Option<cloudimg_disk::io::Sha256Hex> {
    use cloudimg_disk::io::DiskDigest;
    use cloudimg_disk::ExtentKind;
    let size = disk.size();
    if size > MAX_READ_BYTES {
        return None;
    }
    let extents = disk.extents().ok()?;
    let mut at = 0;
    for e in &extents {
        assert!(e.len > 0, "empty extent {e:?}");
        assert_eq!(e.offset, at, "extent map has a gap or overlap at {e:?}");
        at = e.end();
    }
    assert_eq!(at, size, "extent map ends at {at}, disk size {size}");
    let mut d = DiskDigest::new();
    let mut buf = vec![0u8; 1 << 20];
    for e in &extents {
        let mut off = e.offset;
        while off < e.end() {
            let n = (e.end() - off).min(buf.len() as u64) as usize;
            disk.read_at(&mut buf[..n], off).ok()?;
            match e.kind {
                ExtentKind::Data => d.data(&buf[..n]),
                ExtentKind::Zero => {
                    if let Some(i) = buf[..n].iter().position(|&b| b != 0) {
                        panic!(
                            "zero extent {e:?} reads non-zero at byte {}",
                            off + i as u64
                        );
                    }
                    d.zeros(n as u64)
                }
            }
            off += n as u64;
        }
    }
    Some(d.finish())
}

/// Reader and verifier must agree: when the reader decoded the whole disk
/// (`read`) and the verifier decoded it with no finding about the
/// container, both must give the same SHA-256.
pub fn agree(
    read: Option<cloudimg_disk::io::Sha256Hex>,
    report: &cloudimg_disk::Result<cloudimg_disk::verify::Report>,
) {
    use cloudimg_disk::verify::Layer;
    let (Some(read), Ok(r)) = (read, report) else {
        return;
    };
    if r.findings.iter().any(|f| f.layer == Layer::Container) {
        return;
    }
    if let Some(v) = &r.virtual_sha256 {
        assert_eq!(
            read.0, v.0,
            "reader and verifier decode different disks (reader {read}, verifier {v}); report: {r:?}"
        );
    }
}

/// Recompute the VHDX checksums (CRC-32C): both headers, both region
/// tables, and the log entries that start on a 4 KiB boundary of the log
/// the first header names (when they fit in the file without wrapping).
pub fn fix_vhdx(d: &mut [u8]) {
    use cloudimg_disk::formats::vhdx::wire::{
        checksum, le32, le64, HEADER_OFFSETS, REGION_TABLE_OFFSETS, REGION_TABLE_SIZE,
    };
    let put = |d: &mut [u8], at: usize, len: usize| {
        if let Some(b) = d.get_mut(at..at + len) {
            let c = checksum(b, 4);
            b[4..8].copy_from_slice(&c.to_le_bytes());
        }
    };
    for h in HEADER_OFFSETS {
        put(d, h as usize, 4096);
    }
    for r in REGION_TABLE_OFFSETS {
        put(d, r as usize, REGION_TABLE_SIZE);
    }
    let Some(h) = d.get(HEADER_OFFSETS[0] as usize..HEADER_OFFSETS[0] as usize + 4096) else {
        return;
    };
    let log_len = le32(h, 68) as usize;
    let log_off = le64(h, 72) as usize;
    if log_len > 64 << 20 || log_off > d.len() {
        return;
    }
    let end = log_off.saturating_add(log_len).min(d.len());
    let mut at = log_off;
    while at + 64 <= end {
        if &d[at..at + 4] == b"loge" {
            let len = le32(d, at + 8) as usize;
            if len >= 64 && at + len <= end {
                put(d, at, len);
            }
        }
        at += 4096;
    }
}

/// Whether to skip inputs that hit a known library bug that has been
/// reported but not fixed yet (`CLOUDIMG_FUZZ_SKIP_KNOWN=1`), so that a
/// local run can look past it. scripts/fuzz.sh does not set it: known
/// bugs fail the run until they are fixed.
pub fn skip_known() -> bool {
    static SKIP: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SKIP.get_or_init(|| std::env::var_os("CLOUDIMG_FUZZ_SKIP_KNOWN").is_some_and(|v| v == "1"))
}

/// Known bug (artifacts/qcow2/refcount-entry-overflow.pages): a QCOW2
/// refcount table entry within one cluster of 2^64 makes
/// `qcow2::verify` overflow (`at + cs` in `read_refcounts`). True when
/// the file has such an entry.
pub fn qcow2_refcount_entry_overflows(f: &File) -> bool {
    use cloudimg_disk::formats::qcow2::{reader::read_header, wire::REFTABLE_OFFSET_MASK};
    let Ok((h, len)) = read_header(f) else {
        return false;
    };
    if !(9..=21).contains(&h.cluster_bits) {
        return false;
    }
    let cs = h.cluster_size();
    let bytes =
        (h.refcount_table_clusters as u64 * cs).min(len.saturating_sub(h.refcount_table_offset));
    let mut t = vec![0u8; bytes.min(64 << 20) as usize];
    if f.read_exact_at(&mut t, h.refcount_table_offset).is_err() {
        return false;
    }
    t.chunks_exact(8)
        .map(|c| u64::from_be_bytes(c.try_into().unwrap()) & REFTABLE_OFFSET_MASK)
        .any(|at| at.checked_add(cs).is_none())
}

/// Known bug (artifacts/ova/vmdk-finding-offset-overflow.ova): the VMDK
/// verifier reports a finding at an offset near 2^64 (a grain directory
/// sector beyond the file, saturated to bytes), and `ova::verify` adds
/// the member's data offset to it (overflow). True when the OVA's first
/// `.vmdk` member, verified alone, has a finding within `slack` of 2^64.
pub fn ova_vmdk_finding_overflows(f: &File, slack: u64) -> bool {
    use cloudimg_disk::formats::{open::extract_ova_vmdk, vmdk};
    let out = memfd(&[]);
    if extract_ova_vmdk(f, &out).is_err() {
        return false;
    }
    vmdk::verify(&out, Default::default()).is_ok_and(|r| {
        r.report
            .findings
            .iter()
            .any(|x| x.offset.is_some_and(|o| o.checked_add(slack).is_none()))
    })
}
