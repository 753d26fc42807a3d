//! On-disk structures of a hosted sparse VMDK extent: the 512-byte sparse
//! extent header, grain records and metadata markers.
//!
//! Sources: VMware "Virtual Disk Format 5.0" technote (hosted sparse
//! extents, stream-optimized compressed extents); open-vmdk
//! `vmdk/vmware_vmdk.h` and `vmdk/sparse.c`; qemu `block/vmdk.c`
//! (`VMDK4Header`, `vmdk_open_vmdk4`). See also
//! shared/reference/cloud-formats.md §4b. Every field is little-endian.

use crate::error::{Error, Result};

/// Bytes per VMDK sector (every offset and size in the header counts these).
pub const SECTOR_BYTES: u64 = 512;

/// `magicNumber` at byte 0: the ASCII bytes `KDMV` (u32 LE 0x564D444B).
pub const MAGIC: [u8; 4] = *b"KDMV";

/// Header `version` for stream-optimized extents. ESX refuses
/// stream-optimized files with another version ("sparse VMDK version too
/// old"), and qemu writes 3 since 2.5.1.
pub const VERSION_STREAM_OPTIMIZED: u32 = 3;
/// Highest header version any reader we know accepts (qemu, open-vmdk).
pub const VERSION_MAX: u32 = 3;

/// Flag bit 0: the newline-detection check characters are valid.
pub const FLAG_NEWLINE_TEST: u32 = 1 << 0;
/// Flag bit 1: a redundant grain directory is kept at `rgdOffset`.
pub const FLAG_REDUNDANT_GD: u32 = 1 << 1;
/// Flag bit 2: grain table entry 1 means "zeroed grain" (version 2+).
pub const FLAG_ZEROED_GTE: u32 = 1 << 2;
/// Flag bit 16: grains are compressed.
pub const FLAG_COMPRESSED: u32 = 1 << 16;
/// Flag bit 17: grains carry an embedded LBA marker and metadata is
/// introduced by markers.
pub const FLAG_MARKERS: u32 = 1 << 17;
/// The flag bits cloudimg understands; others are incompatible features.
pub const FLAGS_KNOWN: u32 =
    FLAG_NEWLINE_TEST | FLAG_REDUNDANT_GD | FLAG_ZEROED_GTE | FLAG_COMPRESSED | FLAG_MARKERS;

/// Flags written by cloudimg: newline test, compressed grains, markers.
///
/// The redundant-GD bit is deliberately *not* set. A redundant grain
/// directory protects a file that is updated in place; a stream-optimized
/// file is written once and never updated, VMware's own writer (open-vmdk
/// `StreamOptimized_Create`, flags 0x30001) leaves the bit clear, and with
/// `gdOffset = GD_AT_END` there is no place for an `rgdOffset` known before
/// the stream ends. qemu sets the bit (0x30003) only because it
/// preallocates its tables like a monolithic sparse file.
pub const FLAGS_STREAM_OPTIMIZED: u32 = FLAG_NEWLINE_TEST | FLAG_COMPRESSED | FLAG_MARKERS;

/// `gdOffset` meaning "the grain directory is at the end: read the footer".
pub const GD_AT_END: u64 = u64::MAX;

/// Grain size written by cloudimg, in sectors (64 KiB). VMware limits the
/// grain size to at most 128 sectors.
pub const GRAIN_SIZE_SECTORS: u64 = 128;
/// Largest grain size (sectors) VMware accepts (open-vmdk `getGDGT`).
pub const GRAIN_SIZE_SECTORS_MAX: u64 = 128;
/// Largest grain size (sectors) cloudimg's reader accepts: bounds the
/// memory of one inflated grain to 1 MiB.
pub const GRAIN_SIZE_SECTORS_READ_MAX: u64 = 2048;

/// Grain table entries per grain table. VMware's disk library supports
/// only 512 (a 2 KiB table); qemu refuses more than 512.
pub const NUM_GTES_PER_GT: u32 = 512;

/// Where cloudimg puts the embedded descriptor (sector 1, right after the
/// header) and how many sectors it reserves for it (open-vmdk: 20).
pub const DESCRIPTOR_OFFSET_SECTORS: u64 = 1;
/// Sectors reserved for the embedded descriptor.
pub const DESCRIPTOR_SIZE_SECTORS: u64 = 20;

/// The newline-detection characters at header bytes 73..77: `\n`, ` `,
/// `\r`, `\n`. A file that went through a text-mode transfer breaks them.
pub const CHECK_CHARS: [u8; 4] = [0x0A, 0x20, 0x0D, 0x0A];

/// `compressAlgorithm` 0: no compression.
pub const COMPRESS_NONE: u16 = 0;
/// `compressAlgorithm` 1: deflate, stored as a zlib stream (RFC 1950).
pub const COMPRESS_DEFLATE: u16 = 1;

/// Metadata marker types (the `type` field of a marker whose `size` is 0).
pub const MARKER_EOS: u32 = 0;
/// Grain table marker.
pub const MARKER_GT: u32 = 1;
/// Grain directory marker.
pub const MARKER_GD: u32 = 2;
/// Footer marker (followed by a copy of the header with the real
/// `gdOffset`).
pub const MARKER_FOOTER: u32 = 3;

/// Bytes of a grain record before its compressed data: `lba u64`,
/// `size u32`.
pub const GRAIN_RECORD_HEADER_BYTES: usize = 12;

/// A grain table entry that means "this grain reads as zeros" when the
/// zeroed-GTE flag is set.
pub const GTE_ZEROED: u32 = 1;

/// Byte ranges of the header fields (offset, length), after the layout in
/// the VMDK 5.0 technote `SparseExtentHeader` (packed).
pub(crate) mod field {
    pub const MAGIC: usize = 0;
    pub const VERSION: usize = 4;
    pub const FLAGS: usize = 8;
    pub const CAPACITY: usize = 12;
    pub const GRAIN_SIZE: usize = 20;
    pub const DESCRIPTOR_OFFSET: usize = 28;
    pub const DESCRIPTOR_SIZE: usize = 36;
    pub const NUM_GTES_PER_GT: usize = 44;
    pub const RGD_OFFSET: usize = 48;
    pub const GD_OFFSET: usize = 56;
    pub const OVERHEAD: usize = 64;
    pub const UNCLEAN_SHUTDOWN: usize = 72;
    pub const CHECK_CHARS: usize = 73;
    pub const COMPRESS_ALGORITHM: usize = 77;
    /// First padding byte; 79..512 is zero.
    pub const END: usize = 79;
}

fn le_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn le_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}
fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// The sparse extent header (sector 0, and again in the footer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SparseExtentHeader {
    /// Format version (1, 2 or 3).
    pub version: u32,
    /// Flag bits (`FLAG_*`).
    pub flags: u32,
    /// Virtual size in sectors.
    pub capacity: u64,
    /// Grain size in sectors (a power of 2).
    pub grain_size: u64,
    /// Sector of the embedded descriptor, or 0.
    pub descriptor_offset: u64,
    /// Sectors reserved for the embedded descriptor.
    pub descriptor_size: u64,
    /// Entries per grain table.
    pub num_gtes_per_gt: u32,
    /// Sector of the redundant grain directory, or 0.
    pub rgd_offset: u64,
    /// Sector of the grain directory, or [`GD_AT_END`].
    pub gd_offset: u64,
    /// Sectors of metadata before the first grain.
    pub overhead: u64,
    /// Non-zero when the file was not closed cleanly.
    pub unclean_shutdown: u8,
    /// The four newline-detection bytes.
    pub check_chars: [u8; 4],
    /// `COMPRESS_NONE` or `COMPRESS_DEFLATE`.
    pub compress_algorithm: u16,
}

impl SparseExtentHeader {
    /// The header cloudimg writes for a stream-optimized extent of
    /// `capacity` sectors, with the given `gd_offset` (GD_AT_END in the
    /// leading header, the real sector in the footer).
    pub fn stream_optimized(capacity: u64, gd_offset: u64) -> Self {
        SparseExtentHeader {
            version: VERSION_STREAM_OPTIMIZED,
            flags: FLAGS_STREAM_OPTIMIZED,
            capacity,
            grain_size: GRAIN_SIZE_SECTORS,
            descriptor_offset: DESCRIPTOR_OFFSET_SECTORS,
            descriptor_size: DESCRIPTOR_SIZE_SECTORS,
            num_gtes_per_gt: NUM_GTES_PER_GT,
            rgd_offset: 0,
            gd_offset,
            // Metadata before the first grain: header and descriptor. Not
            // rounded to a grain: stream readers start at `overHead`, and
            // VMware's own writer does not round it either.
            overhead: DESCRIPTOR_OFFSET_SECTORS + DESCRIPTOR_SIZE_SECTORS,
            unclean_shutdown: 0,
            check_chars: CHECK_CHARS,
            compress_algorithm: COMPRESS_DEFLATE,
        }
    }

    /// Parse a header sector. Only the magic is checked here; see
    /// [`problems`](Self::problems) for validation.
    pub fn parse(sector: &[u8; 512]) -> Result<Self> {
        if sector[..4] != MAGIC {
            return Err(Error::invalid_format(format!(
                "not a VMDK sparse extent: magic is {:02x?}, expected \"KDMV\"",
                &sector[..4]
            )));
        }
        let mut check_chars = [0u8; 4];
        check_chars.copy_from_slice(&sector[field::CHECK_CHARS..field::CHECK_CHARS + 4]);
        Ok(SparseExtentHeader {
            version: le_u32(sector, field::VERSION),
            flags: le_u32(sector, field::FLAGS),
            capacity: le_u64(sector, field::CAPACITY),
            grain_size: le_u64(sector, field::GRAIN_SIZE),
            descriptor_offset: le_u64(sector, field::DESCRIPTOR_OFFSET),
            descriptor_size: le_u64(sector, field::DESCRIPTOR_SIZE),
            num_gtes_per_gt: le_u32(sector, field::NUM_GTES_PER_GT),
            rgd_offset: le_u64(sector, field::RGD_OFFSET),
            gd_offset: le_u64(sector, field::GD_OFFSET),
            overhead: le_u64(sector, field::OVERHEAD),
            unclean_shutdown: sector[field::UNCLEAN_SHUTDOWN],
            check_chars,
            compress_algorithm: le_u16(sector, field::COMPRESS_ALGORITHM),
        })
    }

    /// The 512-byte sector.
    pub fn to_bytes(&self) -> [u8; 512] {
        let mut s = [0u8; 512];
        s[field::MAGIC..field::MAGIC + 4].copy_from_slice(&MAGIC);
        s[field::VERSION..field::VERSION + 4].copy_from_slice(&self.version.to_le_bytes());
        s[field::FLAGS..field::FLAGS + 4].copy_from_slice(&self.flags.to_le_bytes());
        s[field::CAPACITY..field::CAPACITY + 8].copy_from_slice(&self.capacity.to_le_bytes());
        s[field::GRAIN_SIZE..field::GRAIN_SIZE + 8].copy_from_slice(&self.grain_size.to_le_bytes());
        s[field::DESCRIPTOR_OFFSET..field::DESCRIPTOR_OFFSET + 8]
            .copy_from_slice(&self.descriptor_offset.to_le_bytes());
        s[field::DESCRIPTOR_SIZE..field::DESCRIPTOR_SIZE + 8]
            .copy_from_slice(&self.descriptor_size.to_le_bytes());
        s[field::NUM_GTES_PER_GT..field::NUM_GTES_PER_GT + 4]
            .copy_from_slice(&self.num_gtes_per_gt.to_le_bytes());
        s[field::RGD_OFFSET..field::RGD_OFFSET + 8].copy_from_slice(&self.rgd_offset.to_le_bytes());
        s[field::GD_OFFSET..field::GD_OFFSET + 8].copy_from_slice(&self.gd_offset.to_le_bytes());
        s[field::OVERHEAD..field::OVERHEAD + 8].copy_from_slice(&self.overhead.to_le_bytes());
        s[field::UNCLEAN_SHUTDOWN] = self.unclean_shutdown;
        s[field::CHECK_CHARS..field::CHECK_CHARS + 4].copy_from_slice(&self.check_chars);
        s[field::COMPRESS_ALGORITHM..field::COMPRESS_ALGORITHM + 2]
            .copy_from_slice(&self.compress_algorithm.to_le_bytes());
        debug_assert!(s[field::END..].iter().all(|&b| b == 0));
        s
    }

    /// Whether grains are deflate-compressed.
    pub fn compressed(&self) -> bool {
        self.flags & FLAG_COMPRESSED != 0 || self.compress_algorithm == COMPRESS_DEFLATE
    }

    /// Whether grains have embedded-LBA markers.
    pub fn markers(&self) -> bool {
        self.flags & FLAG_MARKERS != 0
    }

    /// Whether GT entry 1 means a zeroed grain.
    pub fn zeroed_gte(&self) -> bool {
        self.version >= 2 && self.flags & FLAG_ZEROED_GTE != 0
    }

    /// Grain size in bytes (callers validate the grain size first).
    pub fn grain_bytes(&self) -> u64 {
        self.grain_size * SECTOR_BYTES
    }

    /// Structural problems that make the header undecodable: these are
    /// what a reader must refuse. Each is one line.
    pub fn fatal_problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.version == 0 || self.version > VERSION_MAX {
            p.push(format!(
                "unsupported version {} (expected 1 to {VERSION_MAX})",
                self.version
            ));
        }
        if self.flags & !FLAGS_KNOWN != 0 {
            p.push(format!(
                "unknown flag bits {:#x}",
                self.flags & !FLAGS_KNOWN
            ));
        }
        if self.grain_size == 0
            || !self.grain_size.is_power_of_two()
            || self.grain_size > GRAIN_SIZE_SECTORS_READ_MAX
        {
            p.push(format!(
                "grain size {} sectors is not a power of 2 between 1 and {GRAIN_SIZE_SECTORS_READ_MAX}",
                self.grain_size
            ));
        }
        if self.num_gtes_per_gt == 0 || self.num_gtes_per_gt > NUM_GTES_PER_GT {
            p.push(format!(
                "{} grain table entries per table (expected 1 to {NUM_GTES_PER_GT})",
                self.num_gtes_per_gt
            ));
        }
        if self.capacity == 0 {
            p.push("capacity is 0 sectors".to_string());
        } else if self.capacity > MAX_CAPACITY_SECTORS {
            p.push(format!(
                "capacity of {} sectors is too large (at most {MAX_CAPACITY_SECTORS})",
                self.capacity
            ));
        }
        if self.compress_algorithm > COMPRESS_DEFLATE {
            p.push(format!(
                "unsupported compression algorithm {}",
                self.compress_algorithm
            ));
        }
        p
    }

    /// Number of grains covering the capacity.
    pub fn grain_count(&self) -> u64 {
        self.capacity.div_ceil(self.grain_size)
    }

    /// Number of grain directory entries (grain tables).
    pub fn gd_entries(&self) -> u64 {
        self.grain_count().div_ceil(u64::from(self.num_gtes_per_gt))
    }

    /// Sectors one grain table occupies.
    pub fn gt_sectors(&self) -> u64 {
        (u64::from(self.num_gtes_per_gt) * 4).div_ceil(SECTOR_BYTES)
    }

    /// Sectors the grain directory occupies.
    pub fn gd_sectors(&self) -> u64 {
        (self.gd_entries() * 4).div_ceil(SECTOR_BYTES)
    }
}

/// Largest capacity (sectors) accepted: 2^48 sectors (128 PiB), far above
/// anything a cloud imports, and small enough that byte sizes never
/// overflow.
pub const MAX_CAPACITY_SECTORS: u64 = 1 << 48;

/// The first 16 bytes of a marker sector or grain record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    /// For a grain: its first virtual sector (LBA). For metadata: the
    /// number of sectors of metadata that follow the marker.
    pub val: u64,
    /// For a grain: the compressed length in bytes (non-zero). For
    /// metadata: 0.
    pub size: u32,
    /// For metadata: `MARKER_*`. For a grain: the first compressed bytes.
    pub kind: u32,
}

impl Marker {
    /// Parse the first 16 bytes of `b` (which must hold at least 16).
    pub fn parse(b: &[u8]) -> Self {
        Marker {
            val: le_u64(b, 0),
            size: le_u32(b, 8),
            kind: le_u32(b, 12),
        }
    }

    /// Whether this is a grain record (its size is non-zero).
    pub fn is_grain(&self) -> bool {
        self.size != 0
    }

    /// A metadata marker sector.
    pub fn metadata(kind: u32, sectors: u64) -> [u8; 512] {
        let mut s = [0u8; 512];
        s[0..8].copy_from_slice(&sectors.to_le_bytes());
        s[12..16].copy_from_slice(&kind.to_le_bytes());
        s
    }
}

/// Name of a metadata marker type, for messages.
pub fn marker_name(kind: u32) -> String {
    match kind {
        MARKER_EOS => "end-of-stream".into(),
        MARKER_GT => "grain table".into(),
        MARKER_GD => "grain directory".into(),
        MARKER_FOOTER => "footer".into(),
        k => format!("unknown type {k}"),
    }
}

/// Decode little-endian u32 table entries.
pub fn parse_table(bytes: &[u8]) -> Vec<u32> {
    bytes.chunks_exact(4).map(|c| le_u32(c, 0)).collect()
}

/// Encode u32 table entries, zero-padded to whole sectors.
pub fn table_bytes(entries: &[u32]) -> Vec<u8> {
    let mut out: Vec<u8> = entries.iter().flat_map(|e| e.to_le_bytes()).collect();
    out.resize(
        (out.len() as u64).div_ceil(SECTOR_BYTES) as usize * SECTOR_BYTES as usize,
        0,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips() {
        let h = SparseExtentHeader::stream_optimized(20480, GD_AT_END);
        let b = h.to_bytes();
        assert_eq!(&b[..4], b"KDMV");
        assert_eq!(&b[73..77], &CHECK_CHARS);
        assert_eq!(SparseExtentHeader::parse(&b).unwrap(), h);
        assert!(h.fatal_problems().is_empty());
    }

    #[test]
    fn header_layout_matches_corpus_bytes() {
        // First 80 bytes of vmdk-rs streamOptimized.vmdk (see corpus README §5).
        let mut s = [0u8; 512];
        let head = "4b444d560300000001000300005000000000000080000000000000000100000000000000\
                    14000000000000000002000000000000000000001500000000000000800000000000\
                    0000000a200d0a0100";
        let bytes = hex::decode(head).unwrap();
        s[..bytes.len()].copy_from_slice(&bytes);
        let h = SparseExtentHeader::parse(&s).unwrap();
        assert_eq!(h.version, 3);
        assert_eq!(h.flags, 0x30001);
        assert_eq!(h.capacity, 20480);
        assert_eq!(h.grain_size, 128);
        assert_eq!(h.gd_offset, 0x15);
        assert_eq!(h.overhead, 128);
        assert_eq!(h.check_chars, CHECK_CHARS);
        assert_eq!(h.compress_algorithm, 1);
        assert_eq!(&h.to_bytes()[..], &s[..]);
    }

    #[test]
    fn table_sizes() {
        let h = SparseExtentHeader::stream_optimized(512 * 128 + 1, GD_AT_END);
        assert_eq!(h.grain_count(), 513);
        assert_eq!(h.gd_entries(), 2);
        assert_eq!(h.gd_sectors(), 1);
        assert_eq!(h.gt_sectors(), 4);
    }
}
