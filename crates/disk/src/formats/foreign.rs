//! Files that are not disk images cloudimg reads, told from their magic so
//! that they are refused in one line instead of being read as a raw disk
//! (and packaged, exit 0) or decoded into garbage.
//!
//! Every magic is the one the format's own specification (or the reading
//! tool's source) gives; the source is cited at each constant. A raw disk's
//! first sector may hold anything (boot code), so a magic alone never
//! refuses a file whose first sector is also a plausible MBR (boot
//! signature `55 AA` and four partition entries whose status bytes are
//! `00` or `80`, one of them used): an xz stream whose first sector also
//! passes that test is about one in 2^44, while every MBR or protective MBR
//! a partitioning tool writes does. A GCP `disk.raw.tar.gz` is a gzip whose
//! content starts with a tar header; any other gzip is refused.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use crate::codec::tar::header_checksum;
use crate::io::FileReader;

/// xz: "The .xz File Format" 1.0.4, §2.1.1.1 Header Magic Bytes.
pub const XZ_MAGIC: &[u8] = &[0xFD, b'7', b'z', b'X', b'Z', 0x00];
/// zstd frame: RFC 8878 §3.1.1, Magic_Number 0xFD2FB528 (little-endian).
pub const ZSTD_MAGIC: &[u8] = &[0x28, 0xB5, 0x2F, 0xFD];
/// zstd skippable frame: RFC 8878 §3.1.2, 0x184D2A50 to 0x184D2A5F
/// (little-endian): the low nibble of the first byte varies. `pzstd`
/// starts its output with one.
pub const ZSTD_SKIPPABLE_MAGIC_TAIL: &[u8] = &[0x2A, 0x4D, 0x18];
/// gzip: RFC 1952 §2.3.1, ID1 ID2 = 1F 8B.
pub const GZIP_MAGIC: &[u8] = &[0x1F, 0x8B];
/// bzip2: stream header "BZh" and a block size digit '1' to '9' (bzip2's
/// own `bzip2.c`/`decompress.c` check `BZ_HDR_B`, `BZ_HDR_Z`, `BZ_HDR_h`,
/// then `BZ_HDR_0 + 1..=9`).
pub const BZIP2_MAGIC: &[u8] = b"BZh";
/// LZ4 frame: LZ4 Frame Format Description §"General Structure", Magic
/// Number 0x184D2204 (little-endian).
pub const LZ4_MAGIC: &[u8] = &[0x04, 0x22, 0x4D, 0x18];
/// LZ4 legacy frame (`lz4 -l`): the same document, "Legacy frame",
/// 0x184C2102 (little-endian).
pub const LZ4_LEGACY_MAGIC: &[u8] = &[0x02, 0x21, 0x4C, 0x18];
/// zip: PKWARE APPNOTE.TXT §4.3.7, local file header signature 0x04034b50
/// ("PK\3\4"); an empty archive starts with the end of central directory
/// record, §4.3.16, 0x06054b50 ("PK\5\6").
pub const ZIP_MAGICS: [&[u8]; 2] = [b"PK\x03\x04", b"PK\x05\x06"];
/// VirtualBox VDI: the header signature 0xBEDA107F (little-endian) at byte
/// 0x40, after a 64-byte text pre-header such as `<<< Oracle VM VirtualBox
/// Disk Image >>>` (VirtualBox `src/VBox/Storage/VDICore.h`,
/// `VDI_IMAGE_SIGNATURE`; qemu `block/vdi.c` `vdi_probe` checks the same
/// field).
pub const VDI_SIGNATURE: &[u8] = &[0x7F, 0x10, 0xDA, 0xBE];
/// Offset of [`VDI_SIGNATURE`].
pub const VDI_SIGNATURE_OFFSET: usize = 0x40;
/// QED: qemu `block/qed.h`, `QED_MAGIC` = 'Q' | 'E' << 8 | 'D' << 16 | '\0'
/// << 24, stored little-endian: "QED\0".
pub const QED_MAGIC: &[u8] = b"QED\0";
/// VMware's older sparse extent (ESX 2 / GSX, "COWD"): qemu
/// `block/vmdk.c` `VMDK3_MAGIC`, stored big-endian as the text "COWD".
pub const COWD_MAGIC: &[u8] = b"COWD";

/// Offset of the MBR boot signature `55 AA` (UEFI 2.10 §5.2.1, Table 5-1).
const MBR_SIGNATURE_OFFSET: usize = 510;
/// Offset of the first of the MBR's four 16-byte partition records
/// (UEFI 2.10 §5.2.1, Table 5-1).
const MBR_PARTITIONS_OFFSET: usize = 446;

/// A kind of file cloudimg refuses to read as a disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Foreign {
    /// xz-compressed data.
    Xz,
    /// zstd-compressed data.
    Zstd,
    /// gzip-compressed data that holds no tar archive.
    Gzip,
    /// bzip2-compressed data.
    Bzip2,
    /// LZ4-compressed data.
    Lz4,
    /// A zip archive.
    Zip,
    /// A VirtualBox VDI image.
    Vdi,
    /// A QED image.
    Qed,
    /// A VMware COWD sparse extent.
    Cowd,
}

impl Foreign {
    /// The one-line refusal for the file at `path` (the file names are
    /// used in the command to run).
    pub fn refusal(self, path: Option<&Path>) -> String {
        let shown = path.map_or("FILE".to_string(), |p| p.display().to_string());
        let compressed = |what: &str, cmd: &str| {
            format!(
                "{what}-compressed data, not a disk image: decompress it first ({cmd} {shown}) and give the result"
            )
        };
        let convert = |what: &str| {
            let out = path.map_or("disk.raw".into(), |p| raw_name(p).display().to_string());
            format!(
                "{what} is not read by cloudimg: convert it first (qemu-img convert -O raw {shown} {out}) and give the result"
            )
        };
        match self {
            Foreign::Xz => compressed("xz", "unxz -k"),
            Foreign::Zstd => compressed("zstd", "unzstd"),
            Foreign::Gzip => format!(
                "gzip-compressed data that is not a GCP disk.raw.tar.gz (it holds no tar archive): \
                 decompress it first (gunzip -k {shown}) and give the result"
            ),
            Foreign::Bzip2 => compressed("bzip2", "bunzip2 -k"),
            Foreign::Lz4 => compressed("LZ4", "unlz4"),
            Foreign::Zip => format!(
                "a zip archive, not a disk image: extract the disk image from it first (unzip {shown}) and give that"
            ),
            Foreign::Vdi => convert("a VirtualBox VDI image"),
            Foreign::Qed => convert("a QED image"),
            Foreign::Cowd => convert("a VMware COWD (ESX 2 / GSX) sparse disk"),
        }
    }
}

/// Where a converted `path` could go: beside it, its extension replaced by
/// `.raw`, or `-converted.raw` when that names it or another existing
/// file (the suggested command must not overwrite anything).
fn raw_name(path: &Path) -> std::path::PathBuf {
    let out = path.with_extension("raw");
    if out != path && !out.exists() {
        return out;
    }
    let stem = path.file_stem().unwrap_or_default().to_string_lossy();
    path.with_file_name(format!("{stem}-converted.raw"))
}

/// Whether the first sector `head` is a plausible MBR (or protective MBR):
/// boot signature, every partition record's status byte `00` or `80`, and
/// at least one record with a type.
pub fn looks_partitioned(head: &[u8]) -> bool {
    if head.len() < 512 || head[MBR_SIGNATURE_OFFSET..512] != [0x55, 0xAA] {
        return false;
    }
    let records = || head[MBR_PARTITIONS_OFFSET..MBR_SIGNATURE_OFFSET].chunks_exact(16);
    records().all(|r| matches!(r[0], 0x00 | 0x80)) && records().any(|r| r[4] != 0)
}

/// The foreign format whose magic starts `head` (the file's first bytes,
/// up to a sector), unless the sector is also a plausible MBR. A gzip is
/// not judged here (see [`gzip_holds_tar`]).
pub fn sniff(head: &[u8]) -> Option<Foreign> {
    if looks_partitioned(head) {
        return None;
    }
    let bzip2_level = head.get(3).is_some_and(|b| (b'1'..=b'9').contains(b));
    let zstd_skippable =
        head.len() >= 4 && head[0] & 0xF0 == 0x50 && &head[1..4] == ZSTD_SKIPPABLE_MAGIC_TAIL;
    let vdi = head
        .get(VDI_SIGNATURE_OFFSET..VDI_SIGNATURE_OFFSET + 4)
        .is_some_and(|s| s == VDI_SIGNATURE);
    Some(if head.starts_with(XZ_MAGIC) {
        Foreign::Xz
    } else if head.starts_with(ZSTD_MAGIC) || zstd_skippable {
        Foreign::Zstd
    } else if head.starts_with(BZIP2_MAGIC) && bzip2_level {
        Foreign::Bzip2
    } else if head.starts_with(LZ4_MAGIC) || head.starts_with(LZ4_LEGACY_MAGIC) {
        Foreign::Lz4
    } else if ZIP_MAGICS.iter().any(|m| head.starts_with(m)) {
        Foreign::Zip
    } else if vdi {
        Foreign::Vdi
    } else if head.starts_with(QED_MAGIC) {
        Foreign::Qed
    } else if head.starts_with(COWD_MAGIC) {
        Foreign::Cowd
    } else {
        return None;
    })
}

/// Whether the gzip `file` starts, once inflated, with a tar header (the
/// `ustar` magic of POSIX and GNU headers, or a v7 header whose checksum
/// holds). A stream that cannot be inflated counts as a tar: the GCP reader
/// then reports what is wrong with it.
pub fn gzip_holds_tar(file: &File) -> bool {
    let mut block = [0u8; 512];
    let mut gz = flate2::read::MultiGzDecoder::new(FileReader::new(file));
    let mut n = 0;
    while n < block.len() {
        match gz.read(&mut block[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return true,
        }
    }
    if n < block.len() {
        return false;
    }
    if &block[257..262] == b"ustar" {
        return true;
    }
    let stored = std::str::from_utf8(&block[148..156])
        .ok()
        .map(|s| s.trim_matches(|c: char| c == '\0' || c == ' '))
        .and_then(|s| u64::from_str_radix(s, 8).ok());
    let (unsigned, signed) = header_checksum(&block);
    block[0] != 0 && stored.is_some_and(|s| s == unsigned || i64::try_from(s) == Ok(signed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sector(prefix: &[u8]) -> Vec<u8> {
        let mut s = vec![0u8; 512];
        s[..prefix.len()].copy_from_slice(prefix);
        s
    }

    #[test]
    fn magics_are_told_apart() {
        assert_eq!(sniff(&sector(b"\xFD7zXZ\0\0\x04")), Some(Foreign::Xz));
        assert_eq!(
            sniff(&sector(&[0x28, 0xB5, 0x2F, 0xFD])),
            Some(Foreign::Zstd)
        );
        assert_eq!(
            sniff(&sector(&[0x50, 0x2A, 0x4D, 0x18])),
            Some(Foreign::Zstd)
        );
        assert_eq!(sniff(&sector(b"BZh9\x31\x41\x59")), Some(Foreign::Bzip2));
        assert_eq!(sniff(&sector(b"BZhx")), None);
        assert_eq!(sniff(&sector(b"PK\x03\x04")), Some(Foreign::Zip));
        assert_eq!(sniff(&sector(b"QED\0")), Some(Foreign::Qed));
        let mut vdi = sector(b"<<< Oracle VM VirtualBox Disk Image >>>\n");
        vdi[0x40..0x44].copy_from_slice(VDI_SIGNATURE);
        assert_eq!(sniff(&vdi), Some(Foreign::Vdi));
        assert_eq!(sniff(&sector(b"\xEB\x3C\x90LIMINE  ")), None);
        assert_eq!(sniff(&[]), None);
    }

    #[test]
    fn a_plausible_mbr_is_never_refused() {
        // xz magic in the boot code of a sector with a protective MBR.
        let mut s = sector(b"\xFD7zXZ\0");
        s[446 + 4] = 0xEE;
        s[510] = 0x55;
        s[511] = 0xAA;
        assert_eq!(sniff(&s), None);
        // The same bytes with a status byte no MBR has: refused.
        s[446 + 16] = 0x17;
        assert_eq!(sniff(&s), Some(Foreign::Xz));
    }
}
