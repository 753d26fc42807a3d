//! On-disk structures of VHDX (Microsoft "VHDX Format Specification"
//! v1.00, 2012; field names as in qemu `block/vhdx.h`). Every integer is
//! little-endian; GUIDs are stored mixed-endian like UEFI GUIDs
//! ([`Guid`]). Checksums are CRC-32C over the whole structure with the
//! checksum field taken as zero ([`checksum`]).

use crate::layout::Guid;

/// One MiB: the alignment of every region, log and payload block.
pub use crate::disk::MIB;
/// File type identifier signature at offset 0 (spec 2.2.1).
pub const FILE_SIGNATURE: [u8; 8] = *b"vhdxfile";
/// Creator field: 256 UTF-16LE code units after the signature.
pub const CREATOR_OFFSET: usize = 8;
/// Creator field size in bytes.
pub const CREATOR_SIZE: usize = 512;
/// The two headers (spec 2.2.2), each 4 KiB of a 64 KiB slot.
pub const HEADER_OFFSETS: [u64; 2] = [64 << 10, 128 << 10];
/// Bytes a header checksum covers.
pub const HEADER_SIZE: usize = 4096;
/// Header signature "head".
pub const HEADER_SIGNATURE: [u8; 4] = *b"head";
/// The two region tables (spec 2.2.3), 64 KiB each.
pub const REGION_TABLE_OFFSETS: [u64; 2] = [192 << 10, 256 << 10];
/// Bytes a region table checksum covers.
pub const REGION_TABLE_SIZE: usize = 64 << 10;
/// Region table signature "regi".
pub const REGION_SIGNATURE: [u8; 4] = *b"regi";
/// Most region table entries (spec: 2047).
pub const REGION_MAX_ENTRIES: u32 = 2047;
/// End of the header section: nothing else may start before it.
pub const HEADER_SECTION_END: u64 = MIB;
/// Metadata table signature "metadata" (spec 2.6.1).
pub const METADATA_SIGNATURE: [u8; 8] = *b"metadata";
/// Size of the metadata table at the start of the metadata region; items
/// live after it.
pub const METADATA_TABLE_SIZE: usize = 64 << 10;
/// Most metadata table entries (spec: 2047).
pub const METADATA_MAX_ENTRIES: u16 = 2047;
/// Smallest and largest payload block sizes (spec 2.6.2.1).
pub const BLOCK_SIZE_MIN: u32 = 1 << 20;
/// See [`BLOCK_SIZE_MIN`].
pub const BLOCK_SIZE_MAX: u32 = 256 << 20;
/// Largest virtual disk (spec 2.6.2.2: 64 TiB).
pub const MAX_VIRTUAL_SIZE: u64 = 64 << 40;
/// 2^23 sectors: the span one sector bitmap block describes (spec 2.5.1,
/// "chunk ratio").
pub const MAX_SECTORS_PER_BLOCK: u64 = 1 << 23;
/// Log sector size (spec 2.3).
pub const LOG_SECTOR_SIZE: u64 = 4096;

/// Region table GUIDs (spec 2.2.3.1).
pub const BAT_GUID: Guid = guid(
    0x2dc2_7766,
    0xf623,
    0x4200,
    [0x9d, 0x64, 0x11, 0x5e, 0x9b, 0xfd, 0x4a, 0x08],
);
/// Metadata region.
pub const METADATA_GUID: Guid = guid(
    0x8b7c_a206,
    0x4790,
    0x4b9a,
    [0xb8, 0xfe, 0x57, 0x5f, 0x05, 0x0f, 0x88, 0x6e],
);

/// Metadata item GUIDs (spec 2.6.2).
pub const FILE_PARAMETERS_GUID: Guid = guid(
    0xcaa1_6737,
    0xfa36,
    0x4d43,
    [0xb3, 0xb6, 0x33, 0xf0, 0xaa, 0x44, 0xe7, 0x6b],
);
/// Virtual disk size (u64).
pub const VIRTUAL_DISK_SIZE_GUID: Guid = guid(
    0x2fa5_4224,
    0xcd1b,
    0x4876,
    [0xb2, 0x11, 0x5d, 0xbe, 0xd8, 0x3b, 0xf4, 0xb8],
);
/// SCSI page 83 identifier (GUID).
pub const PAGE83_GUID: Guid = guid(
    0xbeca_12ab,
    0xb2e6,
    0x4523,
    [0x93, 0xef, 0xc3, 0x09, 0xe0, 0x00, 0xc7, 0x46],
);
/// Logical sector size (u32).
pub const LOGICAL_SECTOR_SIZE_GUID: Guid = guid(
    0x8141_bf1d,
    0xa96f,
    0x4709,
    [0xba, 0x47, 0xf2, 0x33, 0xa8, 0xfa, 0xab, 0x5f],
);
/// Physical sector size (u32).
pub const PHYSICAL_SECTOR_SIZE_GUID: Guid = guid(
    0xcda3_48c7,
    0x445d,
    0x4471,
    [0x9c, 0xc9, 0xe9, 0x88, 0x52, 0x51, 0xc5, 0x56],
);
/// Parent locator (differencing disks only).
pub const PARENT_LOCATOR_GUID: Guid = guid(
    0xa8d3_5f2d,
    0xb30b,
    0x454d,
    [0xab, 0xf7, 0xd3, 0xd8, 0x48, 0x34, 0xab, 0x0c],
);

/// File parameters flag: blocks stay allocated (a fixed disk).
pub const PARAMS_LEAVE_BLOCKS_ALLOCATED: u32 = 1;
/// File parameters flag: differencing disk.
pub const PARAMS_HAS_PARENT: u32 = 2;
/// Metadata entry flags (spec 2.6.1.2).
pub const META_IS_USER: u32 = 1;
/// Item describes the virtual disk.
pub const META_IS_VIRTUAL_DISK: u32 = 2;
/// Item must be understood to open the file.
pub const META_IS_REQUIRED: u32 = 4;
/// Region entry flag: must be understood to open the file.
pub const REGION_REQUIRED: u32 = 1;

/// BAT payload block states (spec 2.5.1.1; qemu `vhdx.h`).
pub const PAYLOAD_BLOCK_NOT_PRESENT: u8 = 0;
/// Contents undefined (reads as zero here, as in qemu).
pub const PAYLOAD_BLOCK_UNDEFINED: u8 = 1;
/// Reads as zero.
pub const PAYLOAD_BLOCK_ZERO: u8 = 2;
/// Unmapped (reads as zero).
pub const PAYLOAD_BLOCK_UNMAPPED: u8 = 3;
/// Unmapped in the pre-1.0 draft the first qemu followed (qemu
/// `PAYLOAD_BLOCK_UNMAPPED_v095`); reserved in v1.00.
pub const PAYLOAD_BLOCK_UNMAPPED_V095: u8 = 5;
/// The block's data is in the file.
pub const PAYLOAD_BLOCK_FULLY_PRESENT: u8 = 6;
/// Differencing disks only: the sector bitmap says which sectors.
pub const PAYLOAD_BLOCK_PARTIALLY_PRESENT: u8 = 7;
/// Sector bitmap block states.
pub const SB_BLOCK_NOT_PRESENT: u8 = 0;
/// Sector bitmap block is in the file.
pub const SB_BLOCK_PRESENT: u8 = 6;
/// BAT entry bits holding the state.
pub const BAT_STATE_MASK: u64 = 0x7;
/// BAT entry bits holding the file offset (in MiB, bits 20..64: the
/// masked value is the byte offset).
pub const BAT_OFFSET_MASK: u64 = !(MIB - 1);

/// Log entry signatures (spec 2.3.1).
pub const LOG_ENTRY_SIGNATURE: [u8; 4] = *b"loge";
/// Data descriptor.
pub const LOG_DATA_DESC_SIGNATURE: [u8; 4] = *b"desc";
/// Zero descriptor.
pub const LOG_ZERO_DESC_SIGNATURE: [u8; 4] = *b"zero";
/// Data sector.
pub const LOG_DATA_SIGNATURE: [u8; 4] = *b"data";
/// Size of a log entry header.
pub const LOG_ENTRY_HEADER_SIZE: usize = 64;
/// Size of a log descriptor.
pub const LOG_DESCRIPTOR_SIZE: usize = 32;

/// Build a GUID constant from its text fields.
const fn guid(d1: u32, d2: u16, d3: u16, d4: [u8; 8]) -> Guid {
    let a = d1.to_le_bytes();
    let b = d2.to_le_bytes();
    let c = d3.to_le_bytes();
    Guid([
        a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d4[0], d4[1], d4[2], d4[3], d4[4], d4[5],
        d4[6], d4[7],
    ])
}

const CRC32C_TABLE: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0x82f6_3b78
            } else {
                c >> 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
};

/// Incremental CRC-32C (Castagnoli, reflected, initial value and final
/// XOR 0xFFFFFFFF), the checksum of every VHDX structure.
#[derive(Debug, Clone, Copy)]
pub struct Crc32c(u32);

impl Default for Crc32c {
    fn default() -> Self {
        Crc32c(0xffff_ffff)
    }
}

impl Crc32c {
    /// A new computation.
    pub fn new() -> Self {
        Self::default()
    }
    /// Feed bytes.
    pub fn update(&mut self, data: &[u8]) {
        let mut c = self.0;
        for &b in data {
            c = CRC32C_TABLE[((c ^ b as u32) & 0xff) as usize] ^ (c >> 8);
        }
        self.0 = c;
    }
    /// The checksum of everything fed.
    pub fn finish(self) -> u32 {
        self.0 ^ 0xffff_ffff
    }
}

/// CRC-32C of `bytes`.
pub fn crc32c(bytes: &[u8]) -> u32 {
    let mut c = Crc32c::new();
    c.update(bytes);
    c.finish()
}

/// The checksum of a structure whose u32 checksum field is at
/// `checksum_at`: CRC-32C of `bytes` with that field as zero.
pub fn checksum(bytes: &[u8], checksum_at: usize) -> u32 {
    let mut c = Crc32c::new();
    c.update(&bytes[..checksum_at]);
    c.update(&[0; 4]);
    c.update(&bytes[checksum_at + 4..]);
    c.finish()
}

/// Little-endian u16 at `o`.
pub fn le16(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes(b[o..o + 2].try_into().expect("2 bytes"))
}
/// Little-endian u32 at `o`.
pub fn le32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"))
}
/// Little-endian u64 at `o`.
pub fn le64(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"))
}

/// Header field offsets (spec 2.2.2).
pub mod header_off {
    /// Signature "head".
    pub const SIGNATURE: usize = 0;
    /// CRC-32C over the 4 KiB header.
    pub const CHECKSUM: usize = 4;
    /// Sequence number, u64.
    pub const SEQUENCE: usize = 8;
    /// File write GUID.
    pub const FILE_WRITE_GUID: usize = 16;
    /// Data write GUID.
    pub const DATA_WRITE_GUID: usize = 32;
    /// Log GUID (zero: no log to replay).
    pub const LOG_GUID: usize = 48;
    /// Log version, u16 (0).
    pub const LOG_VERSION: usize = 64;
    /// Version, u16 (1).
    pub const VERSION: usize = 66;
    /// Log length, u32.
    pub const LOG_LENGTH: usize = 68;
    /// Log offset, u64.
    pub const LOG_OFFSET: usize = 72;
}

/// A VHDX header (one of two).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VhdxHeader {
    /// Signature (must be "head").
    pub signature: [u8; 4],
    /// Stored checksum.
    pub checksum: u32,
    /// Sequence number: the valid header with the larger one is current.
    pub sequence_number: u64,
    /// Changes whenever the file is written.
    pub file_write_guid: Guid,
    /// Changes whenever the virtual disk's content is written.
    pub data_write_guid: Guid,
    /// Identifies the active log; zero when there is none.
    pub log_guid: Guid,
    /// Log format version (0).
    pub log_version: u16,
    /// Format version (1).
    pub version: u16,
    /// Log length in bytes (a multiple of 1 MiB).
    pub log_length: u32,
    /// Log offset in bytes (a multiple of 1 MiB).
    pub log_offset: u64,
}

impl VhdxHeader {
    /// Decode (no validation).
    pub fn parse(b: &[u8; HEADER_SIZE]) -> VhdxHeader {
        use header_off::*;
        VhdxHeader {
            signature: b[SIGNATURE..SIGNATURE + 4].try_into().expect("4 bytes"),
            checksum: le32(b, CHECKSUM),
            sequence_number: le64(b, SEQUENCE),
            file_write_guid: Guid::from_bytes(&b[FILE_WRITE_GUID..]),
            data_write_guid: Guid::from_bytes(&b[DATA_WRITE_GUID..]),
            log_guid: Guid::from_bytes(&b[LOG_GUID..]),
            log_version: le16(b, LOG_VERSION),
            version: le16(b, VERSION),
            log_length: le32(b, LOG_LENGTH),
            log_offset: le64(b, LOG_OFFSET),
        }
    }

    /// Encode with a fresh checksum (reserved bytes zero).
    pub fn to_bytes(&self) -> [u8; HEADER_SIZE] {
        use header_off::*;
        let mut b = [0u8; HEADER_SIZE];
        b[SIGNATURE..SIGNATURE + 4].copy_from_slice(&self.signature);
        b[SEQUENCE..SEQUENCE + 8].copy_from_slice(&self.sequence_number.to_le_bytes());
        b[FILE_WRITE_GUID..FILE_WRITE_GUID + 16].copy_from_slice(&self.file_write_guid.0);
        b[DATA_WRITE_GUID..DATA_WRITE_GUID + 16].copy_from_slice(&self.data_write_guid.0);
        b[LOG_GUID..LOG_GUID + 16].copy_from_slice(&self.log_guid.0);
        b[LOG_VERSION..LOG_VERSION + 2].copy_from_slice(&self.log_version.to_le_bytes());
        b[VERSION..VERSION + 2].copy_from_slice(&self.version.to_le_bytes());
        b[LOG_LENGTH..LOG_LENGTH + 4].copy_from_slice(&self.log_length.to_le_bytes());
        b[LOG_OFFSET..LOG_OFFSET + 8].copy_from_slice(&self.log_offset.to_le_bytes());
        let crc = checksum(&b, CHECKSUM);
        b[CHECKSUM..CHECKSUM + 4].copy_from_slice(&crc.to_le_bytes());
        b
    }
}

/// A region table entry (spec 2.2.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegionEntry {
    /// Which region (BAT, metadata, or unknown).
    pub guid: Guid,
    /// Byte offset in the file (multiple of 1 MiB).
    pub file_offset: u64,
    /// Length in bytes (multiple of 1 MiB).
    pub length: u32,
    /// Flags; bit 0 = required.
    pub flags: u32,
}

impl RegionEntry {
    /// Region end, saturating.
    pub fn end(&self) -> u64 {
        self.file_offset.saturating_add(self.length as u64)
    }
}

/// A decoded region table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionTable {
    /// Signature (must be "regi").
    pub signature: [u8; 4],
    /// Stored checksum.
    pub checksum: u32,
    /// Entry count as stored.
    pub entry_count: u32,
    /// Entries (at most [`REGION_MAX_ENTRIES`] decoded).
    pub entries: Vec<RegionEntry>,
}

impl RegionTable {
    /// Decode (no validation beyond bounding the entry count).
    pub fn parse(b: &[u8]) -> RegionTable {
        let entry_count = le32(b, 8);
        let n = entry_count.min(REGION_MAX_ENTRIES) as usize;
        let entries = (0..n)
            .map(|i| {
                let o = 16 + 32 * i;
                RegionEntry {
                    guid: Guid::from_bytes(&b[o..]),
                    file_offset: le64(b, o + 16),
                    length: le32(b, o + 24),
                    flags: le32(b, o + 28),
                }
            })
            .collect();
        RegionTable {
            signature: b[0..4].try_into().expect("4 bytes"),
            checksum: le32(b, 4),
            entry_count,
            entries,
        }
    }

    /// Encode `entries` as a 64 KiB table with its checksum.
    pub fn encode(entries: &[RegionEntry]) -> Vec<u8> {
        let mut b = vec![0u8; REGION_TABLE_SIZE];
        b[0..4].copy_from_slice(&REGION_SIGNATURE);
        b[8..12].copy_from_slice(&(entries.len() as u32).to_le_bytes());
        for (i, e) in entries.iter().enumerate() {
            let o = 16 + 32 * i;
            b[o..o + 16].copy_from_slice(&e.guid.0);
            b[o + 16..o + 24].copy_from_slice(&e.file_offset.to_le_bytes());
            b[o + 24..o + 28].copy_from_slice(&e.length.to_le_bytes());
            b[o + 28..o + 32].copy_from_slice(&e.flags.to_le_bytes());
        }
        let crc = checksum(&b, 4);
        b[4..8].copy_from_slice(&crc.to_le_bytes());
        b
    }
}

/// A metadata table entry (spec 2.6.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetadataEntry {
    /// Item GUID.
    pub item_id: Guid,
    /// Offset of the item from the start of the metadata region
    /// (≥ 64 KiB, or 0 with length 0).
    pub offset: u32,
    /// Length of the item.
    pub length: u32,
    /// Flags: [`META_IS_USER`], [`META_IS_VIRTUAL_DISK`], [`META_IS_REQUIRED`].
    pub flags: u32,
}

/// Decode the metadata table at the start of the metadata region: the
/// signature, the entry count as stored, and the entries (as many as fit
/// in the 64 KiB table, at most [`METADATA_MAX_ENTRIES`]).
pub fn parse_metadata_table(b: &[u8]) -> ([u8; 8], u16, Vec<MetadataEntry>) {
    let count = le16(b, 10);
    let fit = (b.len().min(METADATA_TABLE_SIZE) - 32) / 32;
    let n = (count.min(METADATA_MAX_ENTRIES) as usize).min(fit);
    let entries = (0..n)
        .map(|i| {
            let o = 32 + 32 * i;
            MetadataEntry {
                item_id: Guid::from_bytes(&b[o..]),
                offset: le32(b, o + 16),
                length: le32(b, o + 20),
                flags: le32(b, o + 24),
            }
        })
        .collect();
    (b[0..8].try_into().expect("8 bytes"), count, entries)
}

/// Encode a metadata table (64 KiB) listing `entries`.
pub fn encode_metadata_table(entries: &[MetadataEntry]) -> Vec<u8> {
    let mut b = vec![0u8; METADATA_TABLE_SIZE];
    b[0..8].copy_from_slice(&METADATA_SIGNATURE);
    b[10..12].copy_from_slice(&(entries.len() as u16).to_le_bytes());
    for (i, e) in entries.iter().enumerate() {
        let o = 32 + 32 * i;
        b[o..o + 16].copy_from_slice(&e.item_id.0);
        b[o + 16..o + 20].copy_from_slice(&e.offset.to_le_bytes());
        b[o + 20..o + 24].copy_from_slice(&e.length.to_le_bytes());
        b[o + 24..o + 28].copy_from_slice(&e.flags.to_le_bytes());
    }
    b
}

/// Chunk ratio (spec 2.5.1): payload blocks per sector bitmap block,
/// 2^23 × logical sector size / block size.
pub fn chunk_ratio(logical_sector_size: u32, block_size: u32) -> u64 {
    MAX_SECTORS_PER_BLOCK * logical_sector_size as u64 / block_size as u64
}

/// Number of payload blocks of a disk.
pub fn payload_blocks(virtual_size: u64, block_size: u32) -> u64 {
    virtual_size.div_ceil(block_size as u64)
}

/// Number of BAT entries of a disk without parent (spec 2.5.1): the
/// payload entries plus one sector bitmap entry after every `chunk_ratio`
/// of them (none after the last incomplete chunk; as qemu
/// `vhdx_calc_bat_entries`).
pub fn bat_entries(virtual_size: u64, block_size: u32, chunk_ratio: u64) -> u64 {
    let blocks = payload_blocks(virtual_size, block_size);
    if blocks == 0 {
        return 0;
    }
    blocks + (blocks - 1) / chunk_ratio
}

/// BAT index of payload block `block`.
pub fn bat_index(block: u64, chunk_ratio: u64) -> u64 {
    block + block / chunk_ratio
}

/// Whether BAT index `i` is a sector bitmap entry.
pub fn is_bitmap_index(i: u64, chunk_ratio: u64) -> bool {
    (i + 1) % (chunk_ratio + 1) == 0
}

/// A BAT entry: state in bits 0..3, byte offset (a multiple of 1 MiB) in
/// bits 20..64.
pub fn bat_entry(state: u8, file_offset: u64) -> u64 {
    (file_offset & BAT_OFFSET_MASK) | state as u64
}

/// Name of a payload block state.
pub fn payload_state_name(s: u8) -> &'static str {
    match s {
        PAYLOAD_BLOCK_NOT_PRESENT => "not present",
        PAYLOAD_BLOCK_UNDEFINED => "undefined",
        PAYLOAD_BLOCK_ZERO => "zero",
        PAYLOAD_BLOCK_UNMAPPED => "unmapped",
        PAYLOAD_BLOCK_UNMAPPED_V095 => "unmapped (pre-1.0)",
        PAYLOAD_BLOCK_FULLY_PRESENT => "fully present",
        PAYLOAD_BLOCK_PARTIALLY_PRESENT => "partially present",
        _ => "reserved",
    }
}

/// Decode the creator string (UTF-16LE up to the first NUL).
pub fn creator_string(b: &[u8]) -> String {
    let units: Vec<u16> = b
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .take_while(|&u| u != 0)
        .collect();
    String::from_utf16_lossy(&units)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_check_value() {
        // The standard check value of CRC-32C (RFC 3720 B.4 lists the same
        // polynomial).
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(crc32c(&[0u8; 32]), 0x8a91_36aa);
    }

    #[test]
    fn guids_match_their_text() {
        assert_eq!(BAT_GUID.to_string(), "2DC27766-F623-4200-9D64-115E9BFD4A08");
        assert_eq!(
            METADATA_GUID.to_string(),
            "8B7CA206-4790-4B9A-B8FE-575F050F886E"
        );
        assert_eq!(&BAT_GUID.0[..4], &[0x66, 0x77, 0xc2, 0x2d]);
    }

    #[test]
    fn bat_layout_interleaves_bitmaps() {
        // 32 MiB blocks, 512-byte sectors: chunk ratio 128.
        let cr = chunk_ratio(512, 32 << 20);
        assert_eq!(cr, 128);
        assert_eq!(bat_index(127, cr), 127);
        assert_eq!(bat_index(128, cr), 129);
        assert!(is_bitmap_index(128, cr));
        assert!(!is_bitmap_index(129, cr));
        // 200 GiB in 32 MiB blocks (qemu-img create: 6449 entries).
        assert_eq!(bat_entries(200 << 30, 32 << 20, cr), 6449);
        assert_eq!(
            bat_entries(10 << 30, 1 << 20, chunk_ratio(512, 1 << 20)),
            10242
        );
    }

    #[test]
    fn header_round_trips() {
        let h = VhdxHeader {
            signature: HEADER_SIGNATURE,
            checksum: 0,
            sequence_number: 9,
            file_write_guid: Guid([1; 16]),
            data_write_guid: Guid([2; 16]),
            log_guid: Guid::ZERO,
            log_version: 0,
            version: 1,
            log_length: 1 << 20,
            log_offset: 1 << 20,
        };
        let b = h.to_bytes();
        let p = VhdxHeader::parse(&b);
        assert_eq!(p.checksum, checksum(&b, 4));
        assert_eq!(VhdxHeader { checksum: 0, ..p }, h);
    }
}
