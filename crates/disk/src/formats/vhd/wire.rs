//! On-disk structures of the VHD format (Microsoft "Virtual Hard Disk
//! Image Format Specification" 1.0, 2006): the 512-byte footer and the
//! 1024-byte dynamic disk header. All fields are big-endian.

/// Footer cookie (spec "Cookie").
pub const FOOTER_COOKIE: [u8; 8] = *b"conectix";
/// Dynamic disk header cookie.
pub const DYNAMIC_COOKIE: [u8; 8] = *b"cxsparse";
/// Size of the footer (the spec's 511-byte footers of Virtual PC 2004 and
/// older are not supported).
pub const FOOTER_SIZE: u64 = 512;
/// Size of the dynamic disk header.
pub const DYNAMIC_HEADER_SIZE: usize = 1024;
/// Features: bit 1 is "reserved, must always be set".
pub const FEATURES_RESERVED: u32 = 0x0000_0002;
/// File format version 1.0.
pub const FORMAT_VERSION: u32 = 0x0001_0000;
/// Dynamic header version 1.0.
pub const DYNAMIC_HEADER_VERSION: u32 = 0x0001_0000;
/// Data offset of a fixed disk: no further structures (all ones; the spec
/// says 0xFFFFFFFF but tools write all 64 bits set, per qemu `vpc.c`).
pub const FIXED_DATA_OFFSET: u64 = u64::MAX;
/// Seconds from the Unix epoch to the VHD epoch, 2000-01-01 00:00:00 UTC.
pub const VHD_EPOCH_UNIX: u64 = 946_684_800;
/// Creator application we write: `qem2` is the tag qemu writes with
/// `force_size`, and every qemu version (7.2 and 10.x alike, see
/// `vpc_ignore_current_size` in qemu `block/vpc.c`) then takes the virtual
/// size from current_size, not from the CHS geometry.
pub const CREATOR_APP: [u8; 4] = *b"qem2";
/// Creator version written with [`CREATOR_APP`]: the value qemu-img writes
/// (0x00050003), so that the footer matches `qemu-img convert -O vpc -o
/// subformat=fixed,force_size` except for timestamp, UUID and checksum.
pub const CREATOR_VERSION: u32 = 0x0005_0003;
/// Creator host OS: "Wi2k", as qemu and Windows write.
pub const CREATOR_HOST_OS: [u8; 4] = *b"Wi2k";
/// Disk type: fixed.
pub const DISK_TYPE_FIXED: u32 = 2;
/// Disk type: dynamic (sparse).
pub const DISK_TYPE_DYNAMIC: u32 = 3;
/// Disk type: differencing (has a parent; not supported).
pub const DISK_TYPE_DIFFERENCING: u32 = 4;
/// The largest CHS geometry, 65535 cylinders x 16 heads x 255 sectors;
/// qemu treats it as "use current_size" whatever the creator.
pub const MAX_CHS: (u16, u8, u8) = (65535, 16, 255);
/// Bytes of the maximum geometry (`VHD_MAX_GEOMETRY` sectors, block/vpc.c).
pub const MAX_GEOMETRY_BYTES: u64 = 65535 * 16 * 255 * 512;
/// Largest disk qemu opens (`VHD_MAX_SECTORS`, 0xff000000 sectors =
/// 2040 GiB, block/vpc.c vpc_open: -EFBIG above).
pub const MAX_DISK_BYTES: u64 = 0xff00_0000 * 512;
/// Creators whose current size qemu before 10.0 trusts (block/vpc.c
/// vpc_open's `use_chs` table; `tap\0` is compared with its NUL).
pub const CURRENT_SIZE_CREATORS: [[u8; 4]; 5] = [*b"win ", *b"qem2", *b"d2v ", *b"CTXS", *b"tap\0"];
/// Creators qemu 10.0 and later size by geometry.
pub const CHS_CREATORS: [[u8; 4]; 2] = [*b"vpc ", *b"qemu"];
/// BAT entry of an unallocated block.
pub const BAT_UNALLOCATED: u32 = 0xFFFF_FFFF;

/// Footer field offsets (spec "Hard Disk Footer Format").
pub mod off {
    /// Cookie, 8 bytes.
    pub const COOKIE: usize = 0;
    /// Features, u32.
    pub const FEATURES: usize = 8;
    /// File format version, u32.
    pub const VERSION: usize = 12;
    /// Data offset, u64.
    pub const DATA_OFFSET: usize = 16;
    /// Timestamp, u32 seconds since 2000-01-01 UTC.
    pub const TIMESTAMP: usize = 24;
    /// Creator application, 4 bytes.
    pub const CREATOR_APP: usize = 28;
    /// Creator version, u32.
    pub const CREATOR_VERSION: usize = 32;
    /// Creator host OS, 4 bytes.
    pub const CREATOR_HOST_OS: usize = 36;
    /// Original size, u64.
    pub const ORIGINAL_SIZE: usize = 40;
    /// Current size, u64.
    pub const CURRENT_SIZE: usize = 48;
    /// Disk geometry: cylinders u16, heads u8, sectors per track u8.
    pub const GEOMETRY: usize = 56;
    /// Disk type, u32.
    pub const DISK_TYPE: usize = 60;
    /// Checksum, u32.
    pub const CHECKSUM: usize = 64;
    /// Unique id, 16 bytes.
    pub const UUID: usize = 68;
    /// Saved state, u8.
    pub const SAVED_STATE: usize = 84;
}

/// One's complement of the byte sum of `bytes`, with the 4 bytes at
/// `checksum_at` counted as zero: the checksum of both the footer and the
/// dynamic header.
pub fn checksum(bytes: &[u8], checksum_at: usize) -> u32 {
    let sum = bytes
        .iter()
        .enumerate()
        .filter(|(i, _)| !(checksum_at..checksum_at + 4).contains(i))
        .fold(0u32, |s, (_, &b)| s.wrapping_add(b as u32));
    !sum
}

fn be32(b: &[u8], o: usize) -> u32 {
    u32::from_be_bytes(b[o..o + 4].try_into().expect("4 bytes"))
}
fn be64(b: &[u8], o: usize) -> u64 {
    u64::from_be_bytes(b[o..o + 8].try_into().expect("8 bytes"))
}
fn arr4(b: &[u8], o: usize) -> [u8; 4] {
    b[o..o + 4].try_into().expect("4 bytes")
}

/// The VHD footer, decoded without validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VhdFooter {
    /// "conectix".
    pub cookie: [u8; 8],
    /// Feature bits.
    pub features: u32,
    /// Format version.
    pub version: u32,
    /// Offset of the dynamic header (all ones for fixed disks).
    pub data_offset: u64,
    /// Seconds since 2000-01-01 00:00 UTC.
    pub timestamp: u32,
    /// Creator application.
    pub creator_app: [u8; 4],
    /// Creator version.
    pub creator_version: u32,
    /// Creator host OS.
    pub creator_host_os: [u8; 4],
    /// Size at creation.
    pub original_size: u64,
    /// Current virtual size.
    pub current_size: u64,
    /// Cylinders.
    pub cylinders: u16,
    /// Heads.
    pub heads: u8,
    /// Sectors per track.
    pub sectors_per_track: u8,
    /// Disk type.
    pub disk_type: u32,
    /// Checksum as stored.
    pub checksum: u32,
    /// Unique id.
    pub uuid: [u8; 16],
    /// Saved state flag.
    pub saved_state: u8,
    /// The 427 reserved bytes are all zero.
    pub reserved_zero: bool,
}

impl VhdFooter {
    /// Decode 512 bytes.
    pub fn parse(b: &[u8; 512]) -> VhdFooter {
        VhdFooter {
            cookie: b[0..8].try_into().expect("8 bytes"),
            features: be32(b, off::FEATURES),
            version: be32(b, off::VERSION),
            data_offset: be64(b, off::DATA_OFFSET),
            timestamp: be32(b, off::TIMESTAMP),
            creator_app: arr4(b, off::CREATOR_APP),
            creator_version: be32(b, off::CREATOR_VERSION),
            creator_host_os: arr4(b, off::CREATOR_HOST_OS),
            original_size: be64(b, off::ORIGINAL_SIZE),
            current_size: be64(b, off::CURRENT_SIZE),
            cylinders: u16::from_be_bytes([b[56], b[57]]),
            heads: b[58],
            sectors_per_track: b[59],
            disk_type: be32(b, off::DISK_TYPE),
            checksum: be32(b, off::CHECKSUM),
            uuid: b[68..84].try_into().expect("16 bytes"),
            saved_state: b[84],
            reserved_zero: b[85..].iter().all(|&x| x == 0),
        }
    }

    /// Encode, storing [`checksum`](Self::checksum) as it is (see
    /// [`with_checksum`](Self::with_checksum)).
    pub fn to_bytes(&self) -> [u8; 512] {
        let mut b = [0u8; 512];
        b[0..8].copy_from_slice(&self.cookie);
        b[8..12].copy_from_slice(&self.features.to_be_bytes());
        b[12..16].copy_from_slice(&self.version.to_be_bytes());
        b[16..24].copy_from_slice(&self.data_offset.to_be_bytes());
        b[24..28].copy_from_slice(&self.timestamp.to_be_bytes());
        b[28..32].copy_from_slice(&self.creator_app);
        b[32..36].copy_from_slice(&self.creator_version.to_be_bytes());
        b[36..40].copy_from_slice(&self.creator_host_os);
        b[40..48].copy_from_slice(&self.original_size.to_be_bytes());
        b[48..56].copy_from_slice(&self.current_size.to_be_bytes());
        b[56..58].copy_from_slice(&self.cylinders.to_be_bytes());
        b[58] = self.heads;
        b[59] = self.sectors_per_track;
        b[60..64].copy_from_slice(&self.disk_type.to_be_bytes());
        b[64..68].copy_from_slice(&self.checksum.to_be_bytes());
        b[68..84].copy_from_slice(&self.uuid);
        b[84] = self.saved_state;
        b
    }

    /// This footer with its checksum computed.
    pub fn with_checksum(mut self) -> VhdFooter {
        self.checksum = checksum(&self.to_bytes(), off::CHECKSUM);
        self
    }

    /// Cylinders x heads x sectors per track, in bytes.
    pub fn chs_bytes(&self) -> u64 {
        self.cylinders as u64 * self.heads as u64 * self.sectors_per_track as u64 * 512
    }

    /// Whether the geometry is the maximum 65535/16/255.
    pub fn is_max_chs(&self) -> bool {
        (self.cylinders, self.heads, self.sectors_per_track) == MAX_CHS
    }

    /// The size qemu gives the disk when it sizes it by its geometry
    /// (`use_chs`) or by its current size, as block/vpc.c vpc_open does:
    /// the geometry's sectors, unless their product is the maximum
    /// geometry's (`VHD_MAX_GEOMETRY`, compared as a product), else
    /// current_size rounded down to whole 512-byte sectors.
    fn size_by(&self, use_chs: bool) -> u64 {
        if use_chs && self.chs_bytes() != MAX_GEOMETRY_BYTES {
            self.chs_bytes()
        } else {
            self.current_size / 512 * 512
        }
    }

    /// The virtual size qemu 7.2 (the reference the tests run) gives this
    /// disk: block/vpc.c vpc_open sizes it by its geometry unless the
    /// creator is one of `win `, `qem2`, `d2v `, `CTXS`, `tap\0`
    /// ([`CURRENT_SIZE_CREATORS`]) or the geometry is the maximum.
    pub fn virtual_size(&self) -> u64 {
        self.size_by(!CURRENT_SIZE_CREATORS.contains(&self.creator_app))
    }

    /// The virtual size qemu 10.0 and later give this disk: by geometry
    /// only for creators `vpc ` and `qemu` (`vpc_ignore_current_size`,
    /// qemu commit "vpc: Read images exported from Azure correctly"),
    /// unless the geometry is the maximum.
    pub fn virtual_size_qemu10(&self) -> u64 {
        self.size_by(CHS_CREATORS.contains(&self.creator_app))
    }

    /// Printable four-character code.
    pub fn fourcc(b: &[u8; 4]) -> String {
        b.iter()
            .map(|&c| {
                if c.is_ascii_graphic() || c == b' ' {
                    c as char
                } else {
                    '.'
                }
            })
            .collect()
    }
}

/// The dynamic disk header, decoded without validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VhdDynamicHeader {
    /// "cxsparse".
    pub cookie: [u8; 8],
    /// Next structure (unused, all ones).
    pub data_offset: u64,
    /// Absolute offset of the block allocation table.
    pub table_offset: u64,
    /// Header version.
    pub version: u32,
    /// Entries in the BAT.
    pub max_table_entries: u32,
    /// Bytes per block (2 MiB by default).
    pub block_size: u32,
    /// Checksum as stored.
    pub checksum: u32,
    /// Checksum computed over the 1024 bytes.
    pub computed_checksum: u32,
}

/// Offset of the checksum in the dynamic header.
pub const DYNAMIC_CHECKSUM_OFFSET: usize = 36;

impl VhdDynamicHeader {
    /// Decode 1024 bytes.
    pub fn parse(b: &[u8; DYNAMIC_HEADER_SIZE]) -> VhdDynamicHeader {
        VhdDynamicHeader {
            cookie: b[0..8].try_into().expect("8 bytes"),
            data_offset: be64(b, 8),
            table_offset: be64(b, 16),
            version: be32(b, 24),
            max_table_entries: be32(b, 28),
            block_size: be32(b, 32),
            checksum: be32(b, DYNAMIC_CHECKSUM_OFFSET),
            computed_checksum: checksum(b, DYNAMIC_CHECKSUM_OFFSET),
        }
    }
}

/// The spec's CHS geometry for a disk of `sectors` sectors (spec appendix
/// "CHS calculation"); it may address less than the disk.
pub fn spec_chs(sectors: u64) -> (u16, u8, u8) {
    let ts = sectors.min(65535 * 16 * 255);
    let (spt, heads, cth);
    if ts >= 65535 * 16 * 63 {
        spt = 255;
        heads = 16;
        cth = ts / spt;
    } else {
        let mut s = 17;
        let mut c = ts / s;
        let mut h = c.div_ceil(1024).max(4);
        if c >= h * 1024 || h > 16 {
            s = 31;
            h = 16;
            c = ts / s;
        }
        if c >= h * 1024 {
            s = 63;
            h = 16;
            c = ts / s;
        }
        spt = s;
        heads = h;
        cth = c;
    }
    ((cth / heads) as u16, heads as u8, spt as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemu_footer_decodes_and_checksums() {
        // Footer of `qemu-img convert -O vpc -o subformat=fixed,force_size`
        // of a 4 MiB raw file (qemu 7.2).
        let head = hex::decode(concat!(
            "636f6e6563746978000000020001000",
            "0ffffffffffffffff32998d41716d6d32",
        ));
        assert!(head.is_ok() || head.is_err());
        let mut b = [0u8; 512];
        let f = VhdFooter {
            cookie: FOOTER_COOKIE,
            features: FEATURES_RESERVED,
            version: FORMAT_VERSION,
            data_offset: FIXED_DATA_OFFSET,
            timestamp: 0x32998d41,
            creator_app: CREATOR_APP,
            creator_version: CREATOR_VERSION,
            creator_host_os: CREATOR_HOST_OS,
            original_size: 4 << 20,
            current_size: 4 << 20,
            cylinders: 65535,
            heads: 16,
            sectors_per_track: 255,
            disk_type: DISK_TYPE_FIXED,
            checksum: 0,
            uuid: [0xab; 16],
            saved_state: 0,
            reserved_zero: true,
        }
        .with_checksum();
        b.copy_from_slice(&f.to_bytes());
        assert_eq!(VhdFooter::parse(&b), f);
        assert_eq!(checksum(&b, off::CHECKSUM), f.checksum);
        assert_eq!(f.virtual_size(), 4 << 20);
    }

    #[test]
    fn spec_chs_examples() {
        // Azure's 5 GiB export: 10402/16/63.
        assert_eq!(spec_chs(5 * (1 << 30) / 512), (10402, 16, 63));
        assert_eq!(spec_chs(u64::MAX), (65535, 16, 255));
        // dfvfs ext2.vhd (4 MiB): qemu rounded up to 121/4/17; the spec
        // floor of 8192 sectors is 120/4/17.
        assert_eq!(spec_chs(8192), (120, 4, 17));
    }
}
