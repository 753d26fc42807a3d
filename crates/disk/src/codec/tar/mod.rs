//! GNU tar: the header wire format (this file), a writer of a disk as one
//! member ([`write_disk_tar`], in `writer.rs`), and a general streaming
//! reader ([`TarReader`], in `reader.rs`).
//!
//! Wire format: 512-byte blocks; v7 header fields, then either the ustar
//! `prefix` or the GNU/oldgnu fields (atime, ctime, old sparse map,
//! isextended, realsize) (reference §4c; GNU tar manual "Old GNU Format";
//! Go `archive/tar/format.go`). The reader accepts v7, ustar (with the
//! star variant of `prefix`) and GNU headers, base-256 numbers, GNU `L`/`K`
//! long names (the last one wins), and old GNU sparse members (`S`) with
//! extension blocks. Pax extended headers (`x`) are collected and their
//! `path`, `linkpath`, `size`, `uid`, `gid` and `mtime` records applied to
//! the next member; global headers (`g`) are returned as ordinary entries.
//! Which of these a format accepts is that format's rule: the GCP verifier
//! (`formats::gcp`) wants oldgnu without pax, the OVA one (`formats::ova`)
//! ustar.
//!
//! Sparse data chunks are read back to back (as Go and CPython do). GNU tar
//! 1.34 instead expects each chunk to start on a 512-byte boundary, so the
//! writer only ever emits 512-byte aligned chunks.

mod reader;
#[cfg(test)]
mod tests;
mod writer;

pub use reader::{TarChunk, TarEnd, TarEntry, TarReader};
pub use writer::{member_headers, sparse_map, write_disk_tar, MemberSpec};

/// Size of a tar block.
pub const BLOCK_SIZE: u64 = 512;
/// Size of a tar record at the default blocking factor 20: an archive is
/// padded with zero blocks to a multiple of this.
pub const RECORD_SIZE: u64 = 20 * BLOCK_SIZE;

// Header field ranges (reference §4c).
const NAME: std::ops::Range<usize> = 0..100;
const MODE: std::ops::Range<usize> = 100..108;
const UID: std::ops::Range<usize> = 108..116;
const GID: std::ops::Range<usize> = 116..124;
const SIZE: std::ops::Range<usize> = 124..136;
const MTIME: std::ops::Range<usize> = 136..148;
const CHKSUM: std::ops::Range<usize> = 148..156;
const TYPEFLAG: usize = 156;
const LINKNAME: std::ops::Range<usize> = 157..257;
const MAGIC: std::ops::Range<usize> = 257..263;
const VERSION: std::ops::Range<usize> = 263..265;
const UNAME: std::ops::Range<usize> = 265..297;
const GNAME: std::ops::Range<usize> = 297..329;
/// ustar only: the name prefix.
const PREFIX: std::ops::Range<usize> = 345..500;
/// star: the prefix is 131 bytes, followed by atime/ctime, and the
/// header ends in this trailer.
const STAR_PREFIX: std::ops::Range<usize> = 345..476;
const STAR_TRAILER: std::ops::Range<usize> = 508..512;
/// GNU only: first old sparse map entry (4 × {offset 12, numbytes 12}).
const GNU_SPARSE: usize = 386;
/// Sparse entries held in the header itself.
const GNU_SPARSE_IN_HEADER: usize = 4;
const GNU_ISEXTENDED: usize = 482;
const GNU_REALSIZE: std::ops::Range<usize> = 483..495;
/// Sparse entries held in one extension block; its isextended flag
/// follows at byte 504.
const GNU_SPARSE_IN_EXT: usize = 21;
const EXT_ISEXTENDED: usize = 504;

/// Magic + version of GNU and oldgnu headers: `"ustar "` `" \0"`.
pub const MAGIC_GNU: &[u8; 8] = b"ustar  \0";
/// Magic + version of POSIX ustar/pax headers: `"ustar\0"` `"00"`.
pub const MAGIC_USTAR: &[u8; 8] = b"ustar\x0000";

/// Typeflags used here.
pub mod typeflag {
    /// Regular file.
    pub const REGULAR: u8 = b'0';
    /// Regular file (v7: NUL).
    pub const REGULAR_V7: u8 = 0;
    /// GNU old-style sparse file.
    pub const GNU_SPARSE: u8 = b'S';
    /// GNU long name for the next member.
    pub const GNU_LONGNAME: u8 = b'L';
    /// GNU long link name for the next member.
    pub const GNU_LONGLINK: u8 = b'K';
    /// PAX extended header for the next member.
    pub const PAX: u8 = b'x';
    /// PAX global header.
    pub const PAX_GLOBAL: u8 = b'g';
}

/// Largest GNU `L`/`K` payload accepted (GNU tar's PATH_MAX is 4096; this
/// leaves room while refusing allocation bombs).
pub const MAX_LONG_NAME: u64 = 64 * 1024;
/// Largest pax extended header payload accepted.
pub const MAX_PAX_SIZE: u64 = 1 << 20;
/// Most old-sparse map entries accepted for one member (each costs 16
/// bytes of memory). A disk with more separate data runs than this would
/// be pathological.
pub const MAX_SPARSE_ENTRIES: usize = 1 << 20;
/// Most sparse extension blocks accepted for one member: enough for
/// [`MAX_SPARSE_ENTRIES`] entries (21 per block).
pub const MAX_SPARSE_EXT_BLOCKS: usize = MAX_SPARSE_ENTRIES.div_ceil(GNU_SPARSE_IN_EXT);

/// The checksum of a header: the unsigned sum of its bytes with the
/// checksum field counted as spaces. Also returns the signed sum, which
/// some old writers used.
pub fn header_checksum(block: &[u8; 512]) -> (u64, i64) {
    let mut unsigned = 0u64;
    let mut signed = 0i64;
    for (i, &b) in block.iter().enumerate() {
        let b = if CHKSUM.contains(&i) { b' ' } else { b };
        unsigned += u64::from(b);
        signed += i64::from(b as i8);
    }
    (unsigned, signed)
}

/// Which header layout a block uses, from its magic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TarFormat {
    /// No magic: Unix v7.
    V7,
    /// `ustar\0` `00` (POSIX ustar, pax, star).
    Ustar,
    /// `ustar ` ` \0` (GNU and oldgnu).
    Gnu,
}

impl TarFormat {
    /// Lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            TarFormat::V7 => "v7",
            TarFormat::Ustar => "ustar",
            TarFormat::Gnu => "gnu",
        }
    }
}

/// One entry of an old GNU sparse map, in logical-file coordinates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SparseEntry {
    /// Where the data chunk goes in the logical file.
    pub offset: u64,
    /// Its length.
    pub numbytes: u64,
}

// ---------------------------------------------------------------------------
// Numbers

/// Parse a numeric field: octal (leading spaces/NULs allowed, ended by NUL
/// or space) or GNU base-256 (first byte has the top bit set). Negative
/// base-256 values and values above `i64::MAX` are refused.
pub fn parse_number(field: &[u8]) -> std::result::Result<u64, String> {
    let Some(&first) = field.first() else {
        return Ok(0);
    };
    if first & 0x80 != 0 {
        // Base-256, two's complement: bit 6 of the first byte is the sign
        // (as Go's archive/tar reads it; GNU writes 0x80 or 0xff).
        if first & 0x40 != 0 {
            return Err("is a negative base-256 number".into());
        }
        let mut v: u64 = u64::from(first & 0x7f);
        for &b in &field[1..] {
            if v >> 55 != 0 {
                return Err("is a base-256 number too large for 64 bits".into());
            }
            v = (v << 8) | u64::from(b);
        }
        return Ok(v);
    }
    let s: &[u8] = {
        let start = field
            .iter()
            .position(|&b| b != b' ' && b != 0)
            .unwrap_or(field.len());
        let rest = &field[start..];
        let end = rest
            .iter()
            .position(|&b| b == b' ' || b == 0)
            .unwrap_or(rest.len());
        // Whatever follows the terminator is ignored, as GNU tar and Go do.
        &rest[..end]
    };
    let mut v: u64 = 0;
    for &b in s {
        if !(b'0'..=b'7').contains(&b) {
            return Err(format!(
                "is not an octal number: {:?}",
                String::from_utf8_lossy(field)
            ));
        }
        v = v
            .checked_mul(8)
            .and_then(|v| v.checked_add(u64::from(b - b'0')))
            .filter(|&v| v <= i64::MAX as u64)
            .ok_or_else(|| "is an octal number too large for 64 bits".to_string())?;
    }
    Ok(v)
}

/// Write `value` into `field`: zero-padded octal with a trailing NUL when
/// it fits (`len - 1` digits), else GNU base-256 (0x80, then big-endian).
pub fn put_number(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    if digits >= 22 || value < 1u64 << (3 * digits) {
        let s = format!("{value:0digits$o}");
        field[..digits].copy_from_slice(s.as_bytes());
        field[digits] = 0;
    } else {
        field.fill(0);
        field[0] = 0x80;
        let be = value.to_be_bytes();
        let n = be.len().min(field.len() - 1);
        let flen = field.len();
        field[flen - n..].copy_from_slice(&be[be.len() - n..]);
    }
}

fn cstr(field: &[u8]) -> &[u8] {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    &field[..end]
}

/// Typeflags whose size field does not describe stored data (Go
/// `isHeaderOnlyType`): hard link, symlink, char/block device, directory,
/// fifo.
fn is_header_only(t: u8) -> bool {
    matches!(t, b'1' | b'2' | b'3' | b'4' | b'5' | b'6')
}

/// Zero bytes that pad `n` bytes of data to a whole block.
pub fn pad(n: u64) -> u64 {
    (BLOCK_SIZE - n % BLOCK_SIZE) % BLOCK_SIZE
}

/// Check an old GNU sparse map: sorted, non-overlapping, within
/// `realsize`, holding exactly `size` bytes of data.
pub fn check_sparse_map(
    map: &[SparseEntry],
    size: u64,
    realsize: u64,
) -> std::result::Result<(), String> {
    let mut end = 0u64;
    let mut total = 0u64;
    for (i, e) in map.iter().enumerate() {
        let e_end = e
            .offset
            .checked_add(e.numbytes)
            .ok_or_else(|| format!("sparse map entry {i} overflows 64 bits"))?;
        if e.offset < end {
            return Err(format!(
                "sparse map entry {i} (offset {}) overlaps or precedes the previous one (ending at {end})",
                e.offset
            ));
        }
        if e_end > realsize {
            return Err(format!(
                "sparse map entry {i} ends at {e_end}, past the real size {realsize}"
            ));
        }
        end = e_end;
        total += e.numbytes;
    }
    if total != size {
        return Err(format!(
            "sparse map holds {total} bytes of data but the size field says {size}"
        ));
    }
    Ok(())
}
