//! OVA (vSphere): a POSIX ustar archive of an OVF descriptor, a
//! stream-optimized VMDK and a SHA-256 manifest.
//!
//! Layout written (in this order):
//!
//! 1. `<name>.ovf`: the OVF 1.0 envelope (DMTF DSP0243), see [`ovf`];
//! 2. `<name>-disk1.vmdk`: the stream-optimized VMDK;
//! 3. `<name>.mf`: `SHA256(<member>)= <hex>` for the `.ovf` and the `.vmdk`.
//!
//! Sources for the member order and the tar dialect:
//! - DSP0243 (quoted in the IBM OVF toolkit's documentation): "For OVF TAR
//!   archives, the files shall be in the following order inside the archive:
//!   .ovf descriptor file, .mf manifest file (optional), .cert certificate
//!   file (optional), the remaining files in the same order as listed in the
//!   References section, .mf manifest file (optional), .cert (optional). If
//!   the manifest or certificate files are present, they shall either both
//!   be placed after the OVF descriptor file, or both be placed at the end of
//!   the archive." and "The TAR format used shall comply with the USTAR
//!   format as defined by the POSIX IEEE 1003.1 standards group." The
//!   section number (§5.3) was not confirmed.
//! - VMware open-vmdk `ova/mkova.sh` writes `.ovf`, `.mf`, `.vmdk`, and uses
//!   SHA-256 manifests for `vmx-13`/`vmx-14` (SHA-1 before, SHA-512 after);
//!   kali-vm `scripts/export-ova.sh` writes `.ovf`, `.vmdk`, `.mf` ("the .mf
//!   comes either second or last"). Both orders are accepted by the
//!   verifier; the writer puts the manifest last, so that the VMDK is hashed
//!   while it is copied into the archive.
//! - What ovftool itself writes was not confirmed [U].
//!
//! Every header is POSIX ustar (`ustar\0` `00`), owner 0/0 `root`/`root`,
//! mode 0644, mtime from [`WriteOptions`](crate::formats::WriteOptions).
//! A VMDK of 8 GiB or more does not fit the 11 octal digits of a ustar size
//! field: it is written in base-256 (a GNU extension that GNU tar, Go and
//! CPython read); whether vSphere accepts that was not confirmed [U].

pub mod ovf;
pub mod verify;
pub mod writer;

pub use verify::verify;
pub use writer::{write, write_in};

use std::fs::File;
use std::path::Path;

use crate::codec::tar::{header_checksum, put_number, MAGIC_USTAR};
use crate::disk::VirtualDisk;
use crate::error::Result;
use crate::formats::table::{self, Output, Probe};
use crate::formats::WriteOptions;
use crate::io::unnamed_temp_beside;

/// The format table's detector: a USTAR archive whose first member's name
/// ends in `.ovf` (DSP0243: the descriptor comes first).
pub fn detect(p: &Probe<'_>) -> Result<bool> {
    // ustar header: name at 0 (100 bytes), magic "ustar" at 257.
    if p.head.len() < 263 || &p.head[257..262] != b"ustar" {
        return Ok(false);
    }
    let name = &p.head[..100];
    let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(100)];
    Ok(name.to_ascii_lowercase().ends_with(b".ovf"))
}

/// The format table's opener: the disk member copied to an unnamed
/// temporary file beside `file` (or in `$TMPDIR`) and read as a VMDK.
pub fn open_disk(file: File, _len: u64, _path: &Path) -> Result<Box<dyn VirtualDisk>> {
    let out = unnamed_temp_beside(&file, "a temporary VMDK")?;
    crate::formats::open::extract_ova_vmdk(&file, &out)?;
    Ok(Box::new(crate::formats::vmdk::open(out)?))
}

/// The format table's writer: the OVA of image `out.image_name`, its VMDK
/// staged in `out.scratch_dir`.
pub fn write_artifact(disk: &dyn VirtualDisk, out: &Output<'_>, opts: &WriteOptions) -> Result<()> {
    table::through_buffer(out.file, |w| {
        write_in(disk, w, out.image_name, opts, out.jobs, out.scratch_dir)
    })
}

/// Permission bits of every member.
pub const MEMBER_MODE: u64 = 0o644;
/// The format URI of a stream-optimized VMDK in an OVF `Disk` element
/// (VMware; also in open-vmdk's templates).
pub const VMDK_STREAM_OPTIMIZED_URI: &str =
    "http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized";
/// Longest `name` accepted: `<name>-disk1.vmdk` must fit the 100-byte
/// ustar name field.
pub const MAX_NAME_LEN: usize = 80;

/// The member names for an OVA called `name`: (`.ovf`, `.vmdk`, `.mf`).
pub fn member_names(name: &str) -> (String, String, String) {
    (
        format!("{name}.ovf"),
        format!("{name}-disk1.vmdk"),
        format!("{name}.mf"),
    )
}

/// Check an OVA name: 1 to [`MAX_NAME_LEN`] ASCII letters, digits, `.`,
/// `_`, `-` or `+`, not starting with `.` or `-` (it goes into tar names,
/// XML attributes and manifest lines unescaped).
pub fn check_name(name: &str) -> std::result::Result<(), String> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+');
    if name.is_empty()
        || name.len() > MAX_NAME_LEN
        || name.starts_with(['.', '-'])
        || !name.chars().all(ok_char)
    {
        return Err(format!(
            "OVA name {name:?} must be 1 to {MAX_NAME_LEN} ASCII letters, digits, '.', '_', '-' or '+', not starting with '.' or '-'"
        ));
    }
    Ok(())
}

/// A POSIX ustar header block for a regular file.
pub fn ustar_header(name: &str, size: u64, mtime: u64) -> [u8; 512] {
    let mut h = [0u8; 512];
    let n = name.len().min(100);
    h[..n].copy_from_slice(&name.as_bytes()[..n]);
    put_number(&mut h[100..108], MEMBER_MODE);
    put_number(&mut h[108..116], 0);
    put_number(&mut h[116..124], 0);
    put_number(&mut h[124..136], size);
    put_number(&mut h[136..148], mtime);
    h[156] = b'0';
    h[257..265].copy_from_slice(MAGIC_USTAR);
    h[265..269].copy_from_slice(b"root");
    h[297..301].copy_from_slice(b"root");
    put_number(&mut h[329..337], 0);
    put_number(&mut h[337..345], 0);
    let (sum, _) = header_checksum(&h);
    h[148..154].copy_from_slice(format!("{sum:06o}").as_bytes());
    h[154] = 0;
    h[155] = b' ';
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(check_name("capos").is_ok());
        assert!(check_name("capos-1.0_x86+64").is_ok());
        for bad in ["", ".x", "-x", "a/b", "a b", "a\"b", "a<b", &"x".repeat(81)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn header_is_posix_ustar_with_checksum() {
        let h = ustar_header("a.ovf", 1234, 1_700_000_000);
        assert_eq!(&h[257..265], b"ustar\x0000");
        assert_eq!(&h[124..136], b"00000002322\0");
        let (sum, _) = header_checksum(&h);
        assert_eq!(&h[148..156], format!("{sum:06o}\0 ").as_bytes());
    }
}
