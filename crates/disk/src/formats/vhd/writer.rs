//! Fixed VHD writer: the disk's bytes, then the footer.

use std::fs::File;
use std::os::unix::fs::FileExt;

use sha2::{Digest, Sha256};

use crate::disk::{VirtualDisk, SECTOR_SIZE};
use crate::error::{Error, IoContext, Result};
use crate::formats::WriteOptions;

use super::wire::*;

/// The footer cloudimg writes for a fixed VHD of `size` bytes.
///
/// - timestamp: `opts.mtime` in VHD time (Unix − 946684800), clamped to
///   0..=u32::MAX;
/// - creator `qem2` version 0x00050003 on `Wi2k`, geometry 65535/16/255:
///   exactly what `qemu-img ... -o subformat=fixed,force_size` writes, so
///   qemu 7.2 and 10.x both report `size` as the virtual size;
/// - original size = current size = `size`;
/// - UUID: the first 16 bytes of SHA-256("cloudimg vhd uuid\0" ‖ seed) with
///   the RFC 4122 version-4 and variant bits set, stored in RFC 4122 (big
///   endian) byte order. The spec does not fix the byte order (unconfirmed).
pub fn fixed_footer(size: u64, opts: &WriteOptions) -> VhdFooter {
    let timestamp = opts
        .mtime
        .saturating_sub(VHD_EPOCH_UNIX)
        .min(u32::MAX as u64) as u32;
    let mut h = Sha256::new();
    h.update(b"cloudimg vhd uuid\0");
    h.update(opts.seed);
    let digest = h.finalize();
    let mut uuid: [u8; 16] = digest[..16].try_into().expect("SHA-256 has 32 bytes");
    uuid[6] = (uuid[6] & 0x0f) | 0x40;
    uuid[8] = (uuid[8] & 0x3f) | 0x80;
    let (cylinders, heads, sectors_per_track) = MAX_CHS;
    VhdFooter {
        cookie: FOOTER_COOKIE,
        features: FEATURES_RESERVED,
        version: FORMAT_VERSION,
        data_offset: FIXED_DATA_OFFSET,
        timestamp,
        creator_app: CREATOR_APP,
        creator_version: CREATOR_VERSION,
        creator_host_os: CREATOR_HOST_OS,
        original_size: size,
        current_size: size,
        cylinders,
        heads,
        sectors_per_track,
        disk_type: DISK_TYPE_FIXED,
        checksum: 0,
        uuid,
        saved_state: 0,
        reserved_zero: true,
    }
    .with_checksum()
}

/// Write `disk` as a fixed VHD into `out` (which should be empty): data
/// extents with positioned writes, zero extents left as holes, then the
/// footer at `disk.size()`. The disk size must be a non-zero multiple of
/// 512 bytes (it is never rounded: a VHD's size is its disk's size).
pub fn write_fixed(disk: &dyn VirtualDisk, out: &File, opts: &WriteOptions) -> Result<()> {
    write_fixed_with(disk, out, None, opts)
}

/// [`write_fixed`], the data going through `direct` (a direct-I/O handle
/// on `out`) when given ([`crate::formats::raw::write_data_with`]).
pub fn write_fixed_with(
    disk: &dyn VirtualDisk,
    out: &File,
    direct: Option<&crate::io::direct::Direct>,
    opts: &WriteOptions,
) -> Result<()> {
    let size = disk.size();
    if size == 0 || size % SECTOR_SIZE != 0 {
        return Err(Error::invalid_input(format!(
            "a VHD needs a disk size that is a non-zero multiple of 512 bytes, not {size}"
        )));
    }
    crate::formats::raw::write_data_with(disk, out, direct)?;
    let footer = fixed_footer(size, opts).to_bytes();
    out.write_all_at(&footer, size)
        .ctx("writing the VHD footer")?;
    // In case `out` was longer: the footer must be the last sector.
    out.set_len(size + FOOTER_SIZE)
        .ctx("setting the file size")?;
    Ok(())
}
